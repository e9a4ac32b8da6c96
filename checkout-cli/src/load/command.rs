//! `checkout load` as a command: its arguments, turned into a [`LoadConfig`], and the
//! report printed. Rejected orders do not fail the command: running out of stock is
//! stock-service working as specified, and the report says how many and why.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use testkit::receiver::OtlpReceiver;
use testkit::verify::TraceCheck;

use super::{CheckOrders, LoadConfig, LoadMode, VerifyTraces, run_load};
use crate::checkout::Item;
use crate::duration::parse_duration;

/// Arguments of `checkout load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Open or closed loop.
    #[command(flatten)]
    pub mode: ModeArgs,
    /// How long to measure, e.g. 10s, 500ms, 2m
    #[arg(long, value_parser = parse_duration, required_unless_present = "requests", value_name = "DURATION")]
    pub duration: Option<Duration>,
    /// Stop after this many requests (with --duration: whichever comes first)
    #[arg(long, value_name = "N")]
    pub requests: Option<u64>,
    /// Cart of every request.
    #[arg(
        long,
        help = "Cart of every request, as ID[:QTY] lines separated by commas",
        value_delimiter = ',',
        default_value = "1:1",
        value_name = "ID[:QTY],.."
    )]
    pub items: Vec<Item>,
    /// Gateway base URL
    #[arg(
        long,
        env = "CHECKOUT_GATEWAY",
        default_value = "http://localhost:8081",
        value_name = "URL"
    )]
    pub gateway: String,
    /// Send load for this long first without measuring it
    #[arg(long, value_parser = parse_duration, default_value = "0s", value_name = "DURATION")]
    pub warmup: Duration,
    /// Open loop: most requests outstanding at once; later arrivals are not sent
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub max_in_flight: usize,
    /// Give up on a request after this long (counted as a transport error)
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub timeout: Duration,
    /// Receive the services' spans over OTLP and check every accepted request left a
    /// complete trace (point OTEL_EXPORTER_OTLP_ENDPOINT at --listen-grpc)
    #[arg(long)]
    pub verify_traces: bool,
    /// OTLP/gRPC address to receive spans on, with --verify-traces
    #[arg(
        long,
        default_value = "0.0.0.0:4317",
        requires = "verify_traces",
        value_name = "ADDR"
    )]
    pub listen_grpc: SocketAddr,
    /// With --verify-traces: longest wait for late spans after the run
    #[arg(long, value_parser = parse_duration, default_value = "30s", requires = "verify_traces", value_name = "DURATION")]
    pub verify_timeout: Duration,
    /// stock-service base URL, asked after the run what it decided for each accepted
    /// order (applied, or rejected and why)
    #[arg(
        long,
        env = "STOCK_SERVICE_URL",
        default_value = "http://localhost:8082",
        value_name = "URL"
    )]
    pub stock: String,
    /// Do not ask stock-service what became of the accepted orders
    #[arg(long)]
    pub no_order_status: bool,
    /// Longest wait after the run for stock-service to process the accepted orders
    #[arg(long, value_parser = parse_duration, default_value = "30s", value_name = "DURATION")]
    pub order_status_timeout: Duration,
}

/// `--rate` or `--concurrency`, exactly one.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ModeArgs {
    /// Open loop: send this many requests per second, on schedule
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Closed loop: this many workers sending back to back
    #[arg(long, value_name = "C")]
    pub concurrency: Option<NonZeroUsize>,
}

/// Runs `checkout load`: fails if verification found incomplete traces.
pub async fn run(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let mode = match (args.mode.rate, args.mode.concurrency) {
        (Some(rate), _) => LoadMode::Open {
            rate,
            max_in_flight: args.max_in_flight,
        },
        (None, Some(concurrency)) => LoadMode::Closed {
            concurrency: concurrency.get(),
        },
        (None, None) => anyhow::bail!("set --rate or --concurrency"),
    };
    let receiver = if args.verify_traces {
        let receiver = OtlpReceiver::start(args.listen_grpc, None)
            .await
            .map_err(|error| anyhow::anyhow!(error.explain("--listen-grpc")))?;
        eprintln!("receiving spans on OTLP/gRPC {}", receiver.grpc_addr());
        Some(receiver)
    } else {
        None
    };
    let config = LoadConfig {
        duration: args.duration,
        requests: args.requests,
        warmup: args.warmup,
        items: args.items,
        timeout: args.timeout,
        verify: receiver.as_ref().map(|receiver| VerifyTraces {
            store: receiver.store(),
            timeout: args.verify_timeout,
        }),
        check_orders: (!args.no_order_status).then_some(CheckOrders {
            stock_url: args.stock,
            timeout: args.order_status_timeout,
        }),
        progress: std::io::stderr().is_terminal(),
        ..LoadConfig::new(args.gateway, mode)
    };
    let report = run_load(config).await?;
    println!("{report}");
    if let Some(receiver) = receiver {
        receiver.shutdown().await;
    }
    let traces_ok = report.traces.as_ref().is_none_or(TraceCheck::all_complete);
    Ok(if traces_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
