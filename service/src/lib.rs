//! What the three services share as processes, so each is built the same
//! way and a reader learns the shape once.
//!
//! Every service is a library with a thin `main`:
//!
//! ```text
//! main: Settings::load() ─▶ Telemetry::build ─▶ Application::build(settings)
//!       ─▶ Listening::log ─▶ run_until_stopped(shutdown::on_signal()) ─▶ telemetry.shutdown()
//! ```
//!
//! # Layout
//!
//! - [`configuration`]: settings from flags and environment variables
//!   (clap), so each setting's default and meaning are written once and
//!   `--help` and docs/configuration.md's table come from them; the value
//!   parsers every service uses; URL redaction.
//! - [`secret`]: settings that hold secrets, kept out of logs and error
//!   messages.
//! - [`startup`]: the one start-up log line, with the same fields in every
//!   service (tests and the benchmark read the bound ports from it).
//! - [`shutdown`]: SIGINT/SIGTERM as a cancellation token.
//! - [`http`]: serving an axum router with bounds on header time, idle
//!   time and open connections, for every HTTP listener.
//! - [`faults`]: fault injection for demonstrations, and its admin routes.

pub mod configuration;
pub mod faults;
pub mod http;
pub mod secret;
pub mod shutdown;
pub mod startup;
