//! `checkout top`: the pipeline's metrics, live, in the terminal.
//!
//! Runs the OTLP receiver where the services export to (like `checkout traces`) and,
//! every `--interval`, redraws one table from the metric points received: per
//! service and operation the rate, the share of errors and the p50/p99 latency
//! (from the operation-duration histograms named in [`contracts::metrics`]), the
//! order lag, the orders by outcome and the stock per item. `--json` prints one JSON
//! document per refresh instead (for scripts). How the figures are computed from
//! cumulative points is in [`view`].
//!
//! The services export metrics every `OTEL_METRIC_EXPORT_INTERVAL` (60 s by default,
//! as the specification says); the figures cover the last interval exported and
//! change when the next export arrives, so for a live view start the services with
//! e.g. `OTEL_METRIC_EXPORT_INTERVAL=1000` (`scripts/demo` does). Until the first
//! export arrives the table says so, and why it may take that long. Spans are
//! accepted and dropped, and log records are not kept: `top` may run for hours.

pub mod view;

use std::fmt::Write as _;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use testkit::receiver::ReceiverOptions;

use crate::duration::parse_duration;
use crate::traces::start_receiver;
use view::{OperationRow, TopView};

/// Arguments of `checkout top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// OTLP/gRPC address to receive metrics on
    #[arg(long, default_value = "0.0.0.0:4317", value_name = "ADDR")]
    pub listen_grpc: SocketAddr,
    /// OTLP/HTTP (protobuf) address to receive metrics on
    #[arg(long, default_value = "0.0.0.0:4318", value_name = "ADDR")]
    pub listen_http: SocketAddr,
    /// Time between two refreshes
    #[arg(long, value_parser = parse_duration, default_value = "1s", value_name = "DURATION")]
    pub interval: Duration,
    /// Print one JSON document per refresh (one line each) instead of the table
    #[arg(long)]
    pub json: bool,
    /// Exit after this many refreshes
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
}

/// Runs `checkout top` until Ctrl-C, `--count` refreshes, or a closed stdout.
pub async fn run(args: TopArgs) -> anyhow::Result<ExitCode> {
    let options = ReceiverOptions {
        keep_spans: false,
        // `top` reads no log record: keep the least the store allows.
        log_limit: 1,
        ..ReceiverOptions::default()
    };
    let receiver = start_receiver(args.listen_grpc, args.listen_http, options).await?;
    eprintln!(
        "receiving metrics on OTLP/gRPC {} and OTLP/HTTP {}; the figures change at each of the services' exports, every OTEL_METRIC_EXPORT_INTERVAL (60 s by default): for a live view start them with OTEL_METRIC_EXPORT_INTERVAL=1000 (scripts/demo does)",
        receiver.grpc_addr(),
        receiver
            .http_addr()
            .map_or_else(String::new, |addr| addr.to_string()),
    );

    let metrics = receiver.metrics();
    let mut ticks = tokio::time::interval(args.interval.max(Duration::from_millis(10)));
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut refreshes = 0;
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                let view = view::view(&metrics.series());
                let text = if args.json {
                    // Serializing plain structs, strings and numbers cannot fail.
                    serde_json::to_string(&view).unwrap_or_default() + "\n"
                } else {
                    format!("\x1b[2J\x1b[H{}", render(&view, metrics.dropped_points()))
                };
                let mut stdout = std::io::stdout().lock();
                if stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).is_err() {
                    break; // stdout closed, e.g. piped into `head`
                }
                refreshes += 1;
                if args.count.is_some_and(|count| refreshes >= count) {
                    break;
                }
            }
            _ = &mut ctrl_c => break,
        }
    }
    receiver.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

/// The view as the terminal table (sections without rows are left out).
pub fn render(view: &TopView, dropped_points: u64) -> String {
    let mut out = format!(
        "checkout top  {}  (rates and percentiles: the services' last metric export interval)\n",
        clock(view.time_unix_nanos)
    );
    if view.operations.is_empty()
        && view.queue_lag.is_empty()
        && view.orders.is_empty()
        && view.stock.is_empty()
    {
        out.push_str(if view.series_received == 0 {
            "\nwaiting for metrics… The services send them every OTEL_METRIC_EXPORT_INTERVAL\n\
             (60 s by default; scripts/demo sets 1 s), so the first can take that long.\n\
             Still nothing after it? Their OTEL_EXPORTER_OTLP_ENDPOINT must point here.\n"
        } else {
            "\nno metric this view shows has arrived yet\n"
        });
    }
    operations(&mut out, "OPERATIONS", &view.operations);
    operations(&mut out, "QUEUE LAG", &view.queue_lag);
    if !view.orders.is_empty() {
        let width = column(view.orders.iter().map(|row| row.service.len()), "SERVICE");
        let _ = writeln!(
            out,
            "\nORDERS\n{:<width$}  {:<12}  {:>10}  {:>8}",
            "SERVICE", "OUTCOME", "TOTAL", "RATE/s"
        );
        for row in &view.orders {
            let _ = writeln!(
                out,
                "{:<width$}  {:<12}  {:>10.0}  {:>8.1}",
                row.service, row.outcome, row.total, row.rate_per_s
            );
        }
    }
    if !view.stock.is_empty() {
        let width = column(view.stock.iter().map(|row| row.service.len()), "SERVICE");
        let _ = writeln!(
            out,
            "\nSTOCK\n{:<width$}  {:<8}  {:>10}",
            "SERVICE", "ITEM", "AVAILABLE"
        );
        for row in &view.stock {
            let _ = writeln!(
                out,
                "{:<width$}  {:<8}  {:>10.0}",
                row.service, row.item, row.available
            );
        }
    }
    let _ = writeln!(out, "\n{} series received", view.series_received);
    if dropped_points > 0 {
        let _ = writeln!(
            out,
            "\n({dropped_points} points of series past the receiver's limit were dropped)"
        );
    }
    out
}

fn operations(out: &mut String, title: &str, rows: &[OperationRow]) {
    if rows.is_empty() {
        return;
    }
    let service = column(rows.iter().map(|row| row.service.len()), "SERVICE");
    let metric = column(rows.iter().map(|row| row.metric.len()), "METRIC");
    let operation = column(
        rows.iter().map(|row| row.operation.chars().count()),
        "OPERATION",
    );
    let _ = writeln!(
        out,
        "\n{title}\n{:<service$}  {:<metric$}  {:<operation$}  {:>8}  {:>7}  {:>9}  {:>9}",
        "SERVICE", "METRIC", "OPERATION", "RATE/s", "ERRORS", "P50 ms", "P99 ms",
    );
    let optional = |value: Option<f64>, precision: usize| {
        value.map_or_else(|| "-".to_owned(), |value| format!("{value:.precision$}"))
    };
    for row in rows {
        let errors = row
            .error_share
            .map_or_else(|| "-".to_owned(), |share| format!("{:.1}%", share * 100.0));
        let _ = writeln!(
            out,
            "{:<service$}  {:<metric$}  {:<operation$}  {:>8.1}  {:>7}  {:>9}  {:>9}",
            row.service,
            row.metric,
            row.operation,
            row.rate_per_s,
            errors,
            optional(row.p50_ms, 2),
            optional(row.p99_ms, 2),
        );
    }
}

fn column(widths: impl Iterator<Item = usize>, header: &str) -> usize {
    widths.fold(header.len(), usize::max)
}

/// `HH:MM:SS UTC` of a Unix time in nanoseconds (`--:--:--` for none).
fn clock(unix_nanos: u64) -> String {
    if unix_nanos == 0 {
        return "--:--:--".to_owned();
    }
    let seconds = unix_nanos / 1_000_000_000 % 86_400;
    format!(
        "{:02}:{:02}:{:02} UTC",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    )
}
