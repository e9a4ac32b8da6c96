//! The command line: argument definitions (clap derive) and dispatch to the subcommands.
//!
//! Kept apart from `main.rs` so the binary stays a two-liner and the argument parsing
//! can be tested like any other library code. Each subcommand's arguments live next
//! to its implementation, in its own module.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::{jaeger, load, send, top, traces};

/// Send checkouts, generate load, and read traces without Jaeger.
///
/// Talks to the checkout pipeline's gateway (POST /api/checkout) and speaks OTLP,
/// so it can stand in for a collector while you watch traces arrive.
#[derive(Debug, Parser)]
#[command(name = "checkout", version, after_long_help = EXAMPLES)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send one checkout in a new trace; print the order, trace id and Jaeger link
    Send(send::SendArgs),
    /// Receive spans over OTLP and print each trace as a waterfall once complete
    ///
    /// Point the services' OTEL_EXPORTER_OTLP_ENDPOINT here instead of at a collector.
    /// OTLP has no "trace finished" signal: a trace counts as complete, and is printed,
    /// once no span arrived for it for --settle (keep it above the exporters' batch
    /// delay, 1 s by default). Spans arriving later are printed as a partial trace of
    /// their own. Ctrl-C prints the traces still settling, then exits.
    Traces(traces::TracesArgs),
    /// Receive metrics over OTLP and show rate, errors and p50/p99 per service and operation, live
    ///
    /// Point the services' OTEL_EXPORTER_OTLP_ENDPOINT here. Every --interval the table
    /// is redrawn from the latest metric points: per service and operation the rate, the
    /// share of errors and the p50/p99 latency over the services' last export interval,
    /// then the order lag, the orders by outcome and the stock per item. The services
    /// export every OTEL_METRIC_EXPORT_INTERVAL (60 s by default): start them with
    /// OTEL_METRIC_EXPORT_INTERVAL=1000 for a live view (scripts/demo does); until the
    /// first export arrives the table says it is waiting. --json prints one JSON
    /// document per refresh. Spans and log records received are dropped.
    Top(top::TopArgs),
    /// Fetch one trace from Jaeger's HTTP API and print it as a waterfall
    Trace(jaeger::TraceArgs),
    /// Generate load (open or closed loop) and report throughput, latency and errors
    ///
    /// --rate R is an open loop: requests arrive on a fixed schedule whatever the
    /// response times, and latency counts from each request's intended send time, so
    /// stalls show up in the percentiles (no coordinated omission). --concurrency C is a
    /// closed loop: C workers send back to back. Every request carries its own
    /// traceparent; with --verify-traces the command receives the services' spans and
    /// checks that each accepted request left a complete six-span trace (exit code 1 if
    /// not). A 202 means the broker has the order, not that stock-service applied it:
    /// after the run the command asks stock-service (--stock) what it decided for each
    /// accepted order and reports applied, rejected (with the most common reasons) and
    /// not yet processed; --no-order-status skips that.
    Load(load::LoadArgs),
}

const EXAMPLES: &str = "\
Examples:
  checkout send --item 1:2 --item 3 --baggage tenant=acme
  checkout traces --settle 3s
  checkout traces --logs
  checkout top --interval 2s
  checkout trace 4bf92f3577b34da6a3ce929d0e0e4736 --jaeger-ui http://localhost:16686
  checkout load --rate 50 --duration 30s --warmup 5s --items 1:2,3:1
  checkout load --concurrency 8 --requests 1000 --verify-traces";

/// The command line as `checkout` parses it: [`Cli`], with `--help` showing an
/// environment variable's value only when that variable is set (clap's own
/// help prints `[env: NAME=]` for an unset one, which reads as if it were set
/// to nothing).
pub fn command() -> clap::Command {
    fn hide_unset(command: clap::Command) -> clap::Command {
        let subcommands: Vec<String> = command
            .get_subcommands()
            .map(|subcommand| subcommand.get_name().to_owned())
            .collect();
        let command = command.mut_args(|arg| {
            let set = arg
                .get_env()
                .and_then(std::env::var_os)
                .is_some_and(|value| !value.is_empty());
            if set { arg } else { arg.hide_env_values(true) }
        });
        subcommands.into_iter().fold(command, |command, name| {
            command.mut_subcommand(name, hide_unset)
        })
    }
    hide_unset(Cli::command())
}

/// Parses the process's arguments with [`command`]; exits with clap's message
/// (or the help, or the version) when they do not parse.
pub fn parse() -> Cli {
    Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|error| error.exit())
}

/// Runs the parsed command; the exit code says whether it succeeded.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Send(args) => send::run(args).await,
        Command::Traces(args) => traces::run(args).await,
        Command::Top(args) => top::run(args).await,
        Command::Trace(args) => jaeger::run(args).await,
        Command::Load(args) => load::run(args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn load_takes_exactly_one_mode_and_a_bound() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["checkout", "load"], args].concat());
        assert!(parse(&["--rate", "10", "--duration", "1s"]).is_ok());
        assert!(parse(&["--concurrency", "2", "--requests", "5"]).is_ok());
        assert!(parse(&["--duration", "1s"]).is_err(), "no mode");
        assert!(parse(&["--rate", "1", "--concurrency", "1", "--duration", "1s"]).is_err());
        assert!(
            parse(&["--rate", "10"]).is_err(),
            "neither duration nor requests"
        );
        assert!(parse(&["--concurrency", "0", "--requests", "5"]).is_err());

        let Ok(Cli {
            command: Command::Load(args),
        }) = parse(&["--concurrency", "2", "--requests", "5", "--items", "1:2,3"])
        else {
            panic!("parses");
        };
        let items: Vec<String> = args.items.iter().map(ToString::to_string).collect();
        assert_eq!(items, ["1:2", "3:1"]);
    }
}
