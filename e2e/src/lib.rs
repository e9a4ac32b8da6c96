//! Test harness: the whole pipeline in one process, against the local
//! RabbitMQ, fresh SQLite files and a real OTLP receiver.
//!
//! [`TestPipeline::start`] runs an OTLP receiver and the three real services,
//! each built with its own `Application::build` on port 0. Every pipeline
//! gets its own exchange, queues and database, so tests running in parallel
//! cannot take each other's messages, and removes them when dropped.
//!
//! What is not about running the services in-process (the OTLP receiver and
//! trace checks, private RabbitMQ nodes, PostgreSQL databases, services as
//! child processes, polling) is the [`testkit`] crate's, shared with the
//! benchmark and the `checkout` command.
//!
//! # Layout
//!
//! - [`pipeline`]: [`TestPipeline`] and its helpers (checkout, stock, wait
//!   for an order or a trace).
//! - [`services`]: starting each service in-process with a test's settings.
//! - [`running`]: one service on its own thread, runtime and telemetry.
//! - [`isolation`]: the names a test owns, and their clean-up.
//! - [`captured`]: a service's log lines kept for the test to read.
//! - [`orders`]: placing many orders under faults and checking the
//!   exactly-once accounting.
//! - [`scaled`]: the pipeline scaled out (three private broker nodes,
//!   PostgreSQL, two replicas of each service as child processes), for the
//!   cluster fault tests.
//! - [`compose`]: the compose files, read and merged for the consistency
//!   tests.
//! - [`docker`]: the compose files run for real (`docker compose up`), for
//!   the compose tests.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test harness: a failed expectation is the test failing"
)]

pub mod captured;
pub mod compose;
pub mod docker;
pub mod isolation;
pub mod orders;
pub mod pipeline;
pub mod running;
pub mod scaled;
pub mod services;

use std::time::Duration;

use testkit::process::{ServiceProcess, show_stderr};

pub use isolation::Isolation;
pub use pipeline::{PipelineOptions, TestPipeline};
pub use running::{RunFuture, RunningService};
pub use services::*;

/// The span of `service` with `kind` among `spans`; fails the test if there
/// is none.
pub fn span_of<'a>(
    spans: &'a [testkit::receiver::ReceivedSpan],
    service: &str,
    kind: testkit::receiver::SpanKind,
) -> &'a testkit::receiver::ReceivedSpan {
    spans
        .iter()
        .find(|s| s.service_name == service && s.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} span from {service} in {spans:#?}"))
}

/// Generous deadline for anything a loaded 2-core machine must eventually do.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// `GET url` answered with JSON, whatever the status; fails the test if
/// there is no answer or it is not JSON.
pub async fn get_json(http: &reqwest::Client, url: &str) -> serde_json::Value {
    let response = http
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    response
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

/// Workspace binary `name` as a child process with `env` added to the
/// test's, once it has logged the address in `addr_field`; its standard
/// error shown with the test's output.
pub async fn start_process(
    name: &str,
    env: &[(&str, String)],
    addr_field: &'static str,
    patience: Duration,
) -> ServiceProcess {
    let mut command = tokio::process::Command::new(testkit::process::binary(name).unwrap());
    command.envs(env.iter().map(|(key, value)| (*key, value.as_str())));
    ServiceProcess::start(command, addr_field, patience, show_stderr)
        .await
        .unwrap()
}

/// The local broker used by the tests (`AMQP_URL` overrides).
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@localhost:5672/%2f".into())
}
