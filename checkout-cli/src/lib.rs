//! Library behind the `checkout` command-line tool.
//!
//! The checkout pipeline (gateway HTTP → checkout-service gRPC → RabbitMQ →
//! stock-service) is traced with OpenTelemetry, and exports metrics and logs too. The
//! `checkout` command sees that telemetry without Jaeger or a collector: it sends
//! checkouts, generates load and shows traces (with their logs) and live metrics in
//! the terminal, built on the in-process OTLP receiver and the trace checks of the
//! [`testkit`] crate, which the tests and the benchmark share (so the command does not
//! compile the services).
//!
//! Everything the command does is a library function first (the binary only parses
//! arguments), so tests drive the same code: [`send::send`], [`load::run_load`],
//! [`order_status::check_orders`], [`jaeger::fetch_trace`], [`waterfall::render_waterfall`],
//! [`top::view::view`].
//!
//! # Layout
//!
//! - [`cli`]: the command line (clap) and dispatch to the subcommands:
//!   - [`send`]: `checkout send`, one checkout with its trace id and Jaeger link.
//!   - [`traces`]: `checkout traces`, the receiver printing each completed trace (and,
//!     with `--logs`, its log records).
//!   - [`top`]: `checkout top`, the receiver showing rates, errors and latencies live.
//!   - [`jaeger`]: `checkout trace`, one trace from Jaeger's HTTP API (v3 or legacy).
//!   - [`load`]: `checkout load`, open- or closed-loop load with latency percentiles
//!     and optional trace verification.
//! - [`duration`]: the durations the subcommands take (`10s`, `500ms`).
//! - [`checkout`]: the request all commands send: items, baggage, `traceparent`.
//! - [`waterfall`]: a trace as a terminal waterfall or a JSON line, and its log records.
//! - [`order_status`]: what stock-service decided for accepted orders (applied,
//!   rejected and why, not yet processed).

pub mod checkout;
pub mod cli;
pub mod duration;
pub mod jaeger;
pub mod load;
pub mod order_status;
pub mod send;
pub mod top;
pub mod traces;
pub mod waterfall;
