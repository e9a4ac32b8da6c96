//! The three services as child processes (the test kit's [`ServiceProcess`]): started
//! from their release binaries with a controlled environment, their logs scanned for
//! the OpenTelemetry SDK's dropped-span warnings, and stopped with SIGTERM (so they
//! flush their spans) or, failing that, SIGKILL.
//!
//! A [`Service`] that is dropped without [`Service::stop`] is killed, so an error or
//! Ctrl-C anywhere never leaves a service running.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use testkit::process::{Output, ServiceProcess, binary_in, target_dir};
use tokio::process::Command;

/// Problem lines kept verbatim for the report.
const KEPT_LINES: usize = 5;

/// What a service's log said that the benchmark cares about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSummary {
    /// Sum of the `dropped_span_count` fields: the SDK's batch span processor logs the
    /// total it dropped (queue full) at shutdown, as `BatchSpanProcessor.SpansDropped`.
    pub dropped_span_count: u64,
    /// Whether `BatchSpanProcessor.SpanDroppingStarted` was logged (the first drop).
    pub dropping_started: bool,
    /// WARN lines in all.
    pub warnings: u64,
    /// ERROR lines in all.
    pub errors: u64,
    /// The first few WARN/ERROR lines, verbatim.
    pub problem_lines: Vec<String>,
}

impl LogSummary {
    /// Takes one JSON log line (other lines are passed over).
    pub fn observe(&mut self, line: &str) {
        let Ok(serde_json::Value::Object(log)) = serde_json::from_str(line) else {
            return;
        };
        let level = log.get("level").and_then(|v| v.as_str()).unwrap_or("");
        let name = log.get("name").and_then(|v| v.as_str()).unwrap_or("");
        for field in ["dropped_span_count", "dropped_spans"] {
            if let Some(count) = log.get(field).and_then(serde_json::Value::as_u64) {
                self.dropped_span_count += count;
            }
        }
        let message = log.get("message").and_then(|v| v.as_str()).unwrap_or("");
        // The SDK passes its event name as `name`, which the JSON layer may not print;
        // the message says it too.
        if name == "BatchSpanProcessor.SpanDroppingStarted"
            || message.starts_with("BatchSpanProcessor dropped a Span")
        {
            self.dropping_started = true;
        }
        match level {
            "WARN" => self.warnings += 1,
            "ERROR" => self.errors += 1,
            _ => return,
        }
        if self.problem_lines.len() < KEPT_LINES {
            self.problem_lines.push(line.to_owned());
        }
    }

    /// Spans the exporter dropped, and whether that number is exact: when only the
    /// "dropping started" warning was seen (the process died before logging its total),
    /// at least one span was dropped.
    pub fn dropped_spans(&self) -> (u64, bool) {
        if self.dropped_span_count == 0 && self.dropping_started {
            (1, false)
        } else {
            (self.dropped_span_count, true)
        }
    }
}

/// The directory holding the service binaries: `dir` if given, else the directory of
/// this executable (`target/release` when run as `target/release/bench`).
pub fn binary_dir(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = dir.map_or_else(target_dir, Ok)?;
    for name in ["gateway", "checkout-service", "stock-service"] {
        binary_in(&dir, name)?;
    }
    Ok(dir)
}

/// A running service process, its log summary kept; killed if dropped.
pub struct Service {
    /// `gateway`, `checkout-service` or `stock-service`.
    pub name: &'static str,
    process: ServiceProcess,
    logs: Arc<Mutex<LogSummary>>,
}

/// Its pid and bound address.
impl Deref for Service {
    type Target = ServiceProcess;

    fn deref(&self) -> &ServiceProcess {
        &self.process
    }
}

/// How a service stopped.
#[derive(Debug, Clone)]
pub struct Stopped {
    /// Its log summary, read to the end.
    pub logs: LogSummary,
    /// Whether it exited on SIGTERM within the grace period (else it was killed).
    pub graceful: bool,
}

impl Service {
    /// Starts `binary` with exactly `env` (plus `PATH`), and waits up to `patience` for
    /// the JSON log line whose `addr_field` holds the address it bound.
    pub async fn start(
        name: &'static str,
        binary: &Path,
        env: &[(String, String)],
        addr_field: &'static str,
        patience: Duration,
    ) -> anyhow::Result<Self> {
        let mut command = Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().map(|(key, value)| (key, value)));
        let logs = Arc::new(Mutex::new(LogSummary::default()));
        let summary = logs.clone();
        let observe = move |output, line: &str| {
            if output == Output::Stdout {
                lock(&summary).observe(line);
            }
        };
        let process = ServiceProcess::start(command, addr_field, patience, observe)
            .await
            .with_context(|| format!("{name} did not start"))?;
        Ok(Self {
            name,
            process,
            logs,
        })
    }

    /// Sends SIGTERM and waits up to `grace` for the exit (killing it after that), then
    /// reads its logs to the end.
    pub async fn stop(self, grace: Duration) -> Stopped {
        let graceful = self.process.stop(grace).await.graceful;
        Stopped {
            logs: lock(&self.logs).clone(),
            graceful,
        }
    }
}

fn lock(logs: &Mutex<LogSummary>) -> std::sync::MutexGuard<'_, LogSummary> {
    logs.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropped_spans_are_found_in_the_sdk_warnings() {
        let mut logs = LogSummary::default();
        logs.observe(r#"{"level":"INFO","target":"service::startup","message":"listening"}"#);
        assert_eq!(logs.dropped_spans(), (0, true));
        logs.observe(r#"{"level":"WARN","target":"opentelemetry_sdk","name":"BatchSpanProcessor.SpanDroppingStarted","message":"BatchSpanProcessor dropped a Span due to queue full."}"#);
        assert_eq!(
            logs.dropped_spans(),
            (1, false),
            "at least one, count unknown"
        );
        let mut unnamed = LogSummary::default();
        unnamed.observe(r#"{"level":"WARN","target":"opentelemetry_sdk","message":"BatchSpanProcessor dropped a Span due to queue full. No further log will be emitted."}"#);
        assert_eq!(unnamed.dropped_spans(), (1, false));
        logs.observe(r#"{"level":"WARN","target":"opentelemetry_sdk","name":"BatchSpanProcessor.SpansDropped","dropped_span_count":1234,"max_queue_size":16384,"message":"Spans were dropped"}"#);
        assert_eq!(logs.dropped_spans(), (1234, true));
        logs.observe(r#"{"level":"ERROR","target":"stock_service","message":"boom"}"#);
        logs.observe("plain text");
        assert_eq!((logs.warnings, logs.errors), (2, 1));
        assert_eq!(logs.problem_lines.len(), 3);
    }
}
