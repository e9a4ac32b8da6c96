//! `checkout load`: a load generator that measures latency honestly and can check
//! that every request was traced end to end.
//!
//! Two ways to apply load:
//!
//! - **Open loop** (`--rate R`): requests *arrive* on a fixed schedule, R per second,
//!   whether or not earlier ones have finished, the way independent users arrive.
//!   Latency is measured from each request's *intended* send time, so when the system
//!   (or this generator) stalls, the queueing delay shows up in the percentiles instead
//!   of being silently skipped ("coordinated omission"). Outstanding requests are
//!   capped (`--max-in-flight`); arrivals beyond the cap are counted as not sent.
//! - **Closed loop** (`--concurrency C`): C workers each send the next request as soon
//!   as the previous one completes. Throughput then adapts to the system, which suits
//!   finding the maximum rate but hides queueing delay.
//!
//! The run stops after `--duration`, after `--requests`, or whichever comes first;
//! `--warmup` requests are sent first but not counted. Latencies go into an HDR
//! histogram (microsecond resolution). With `--verify-traces`, every request carries a
//! generated `traceparent`, so the traces of the accepted ones can be checked for
//! completeness afterwards ([`testkit::verify`]). A 202 only says the broker has the
//! order, so by default the command then asks stock-service what it decided for each
//! accepted order ([`crate::order_status`]): a run past the stock shows its rejections.
//!
//! [`run_load`] is the library entry point; the command only parses arguments and
//! prints the [`LoadReport`], which lists every accepted order ([`AcceptedOrder`]).
//!
//! The parts: `config` (what to run), `run` (running it), `report` (what it measured)
//! and `command` (the command line); everything public is re-exported here.

mod command;
mod config;
mod report;
mod run;

pub use command::{LoadArgs, ModeArgs, run};
pub use config::{CheckOrders, LoadConfig, LoadError, LoadMode, VerifyTraces};
pub use report::{AcceptedOrder, LatencySummary, LoadReport, TransportError};
pub use run::run_load;
