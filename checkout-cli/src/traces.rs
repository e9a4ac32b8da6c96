//! `checkout traces`: a collector in the terminal.
//!
//! Runs the OTLP receiver where the services export to (instead of Jaeger, or in front
//! of nothing at all) and prints every trace as a waterfall, or as one JSON line, as
//! soon as it is complete. It is the fastest feedback loop when working on the
//! instrumentation: send a checkout, see its spans.
//!
//! OTLP has no "trace finished" signal, so a trace is printed once no new span arrived
//! for it for `--settle` (default 2 s: longer than the services' 1 s batch export
//! delay, so spans exported one batch apart still land in the same trace). A span that
//! arrives later is printed as a separate, partial trace with the same id. On Ctrl-C,
//! traces still settling are printed before exiting.
//!
//! With `--logs`, each trace's log records (the services' log events exported over
//! OTLP, each carrying the trace and span id it was written in) follow its waterfall,
//! in time order. They are looked up when the trace is printed: the services export
//! log records on their own timer (`OTEL_BLRP_SCHEDULE_DELAY`, 1 s), which the settle
//! time covers; a record arriving after its trace was printed is not shown.
//!
//! The receiver keeps every span in memory: this is a tool for interactive sessions,
//! not for following a production load for hours. (Log records are kept within a
//! bound, the newest first.)

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use testkit::receiver::{OtlpReceiver, Protocol, ReceivedSpan, ReceiverOptions};

use crate::duration::parse_duration;
use crate::waterfall;

/// Arguments of `checkout traces`.
#[derive(Debug, Args)]
pub struct TracesArgs {
    /// OTLP/gRPC address to receive spans on
    #[arg(long, default_value = "0.0.0.0:4317", value_name = "ADDR")]
    pub listen_grpc: SocketAddr,
    /// OTLP/HTTP (protobuf) address to receive spans on
    #[arg(long, default_value = "0.0.0.0:4318", value_name = "ADDR")]
    pub listen_http: SocketAddr,
    /// Print a trace once no span arrived for it for this long
    #[arg(long, value_parser = parse_duration, default_value = "2s", value_name = "DURATION")]
    pub settle: Duration,
    /// Print each trace as one line of JSON instead of a waterfall
    #[arg(long)]
    pub json: bool,
    /// Exit after printing this many traces
    #[arg(long, value_name = "N")]
    pub count: Option<usize>,
    /// Width of the timeline bars, in characters
    #[arg(long, default_value_t = 40, value_name = "CHARS")]
    pub width: usize,
    /// Also print each trace's log records under it, in time order (with --json: a `logs` array)
    #[arg(long)]
    pub logs: bool,
}

/// Starts the receiver on `--listen-grpc` and `--listen-http` (also `checkout top`'s), a
/// port that cannot be bound explained with the option that sets it.
pub(crate) async fn start_receiver(
    grpc: SocketAddr,
    http: SocketAddr,
    options: ReceiverOptions,
) -> anyhow::Result<OtlpReceiver> {
    OtlpReceiver::start_with(grpc, Some(http), options)
        .await
        .map_err(|error| {
            let flag = match error.protocol {
                Protocol::Grpc => "--listen-grpc",
                Protocol::Http => "--listen-http",
            };
            anyhow::anyhow!(error.explain(flag))
        })
}

/// Runs `checkout traces` until Ctrl-C, `--count` traces, or a closed stdout.
pub async fn run(args: TracesArgs) -> anyhow::Result<ExitCode> {
    let options = ReceiverOptions::default();
    let receiver = start_receiver(args.listen_grpc, args.listen_http, options).await?;
    eprintln!(
        "receiving spans on OTLP/gRPC {} and OTLP/HTTP {}; a trace is printed {} after its last span",
        receiver.grpc_addr(),
        receiver
            .http_addr()
            .map_or_else(String::new, |addr| addr.to_string()),
        humantime::format_duration(args.settle),
    );

    let log_store = receiver.logs();
    let print = |trace: &[ReceivedSpan]| {
        let logs = match (args.logs, trace.first()) {
            (true, Some(span)) => log_store.logs_of_trace(&span.trace_id),
            _ => Vec::new(),
        };
        let text = match (args.json, args.logs) {
            (true, true) => waterfall::render_json_with_logs(trace, &logs) + "\n",
            (true, false) => waterfall::render_json(trace) + "\n",
            (false, _) => {
                waterfall::render_waterfall(trace, args.width)
                    + &waterfall::render_logs(trace, &logs)
                    + "\n"
            }
        };
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
    };

    let mut traces = receiver.store().completed_traces(args.settle);
    let mut printed = 0;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            trace = traces.next() => {
                let Some(trace) = trace else { break };
                if print(&trace).is_err() {
                    break; // stdout closed, e.g. piped into `head`
                }
                printed += 1;
                if args.count.is_some_and(|count| printed >= count) {
                    break;
                }
            }
            _ = &mut ctrl_c => {
                for trace in traces.take_pending() {
                    if print(&trace).is_err() {
                        break;
                    }
                }
                break;
            }
        }
    }
    receiver.shutdown().await;
    Ok(ExitCode::SUCCESS)
}
