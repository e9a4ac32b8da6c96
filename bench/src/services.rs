//! The three services as child processes: started from their release binaries with a
//! controlled environment, their bound address read from their JSON start-up log, their
//! logs scanned for the OpenTelemetry SDK's dropped-span warnings, and stopped with
//! SIGTERM (so they flush their spans) or, failing that, SIGKILL.
//!
//! A [`Service`] that is dropped without [`Service::stop`] is killed (`kill_on_drop`),
//! so an error or Ctrl-C anywhere never leaves a service running.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Problem lines kept verbatim for the report.
const KEPT_LINES: usize = 5;
/// stderr lines kept for error messages.
const STDERR_TAIL: usize = 20;

/// What a service's log said that the benchmark cares about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogSummary {
    /// Lines of stdout.
    pub lines: u64,
    /// Sum of the `dropped_span_count` fields: the SDK's batch span processor logs the
    /// total it dropped (queue full) at shutdown, as `BatchSpanProcessor.SpansDropped`.
    pub dropped_span_count: u64,
    /// Whether `BatchSpanProcessor.SpanDroppingStarted` was logged (the first drop).
    pub dropping_started: bool,
    /// WARN or ERROR lines from the OpenTelemetry crates (export failures and drops).
    pub otel_problems: u64,
    /// WARN lines in all.
    pub warnings: u64,
    /// ERROR lines in all.
    pub errors: u64,
    /// The first few WARN/ERROR lines, verbatim.
    pub problem_lines: Vec<String>,
    /// The last lines of stderr.
    pub stderr_tail: VecDeque<String>,
}

impl LogSummary {
    /// Takes one JSON log line (other lines only count).
    pub fn observe(&mut self, line: &str) {
        self.lines += 1;
        let Ok(serde_json::Value::Object(log)) = serde_json::from_str(line) else {
            return;
        };
        let level = log.get("level").and_then(|v| v.as_str()).unwrap_or("");
        let target = log.get("target").and_then(|v| v.as_str()).unwrap_or("");
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
        let problem = match level {
            "WARN" => {
                self.warnings += 1;
                true
            }
            "ERROR" => {
                self.errors += 1;
                true
            }
            _ => false,
        };
        if problem {
            if target.starts_with("opentelemetry") {
                self.otel_problems += 1;
            }
            if self.problem_lines.len() < KEPT_LINES {
                self.problem_lines.push(line.to_owned());
            }
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

    fn stderr_line(&mut self, line: String) {
        if self.stderr_tail.len() == STDERR_TAIL {
            self.stderr_tail.pop_front();
        }
        self.stderr_tail.push_back(line);
    }
}

/// The directory holding the service binaries: `dir` if given, else the directory of
/// this executable (`target/release` when run as `target/release/bench`).
pub fn binary_dir(dir: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let dir = match dir {
        Some(dir) => dir,
        None => std::env::current_exe()
            .context("cannot find this executable's path")?
            .parent()
            .context("this executable has no directory")?
            .to_path_buf(),
    };
    for name in ["gateway", "checkout-service", "stock-service"] {
        anyhow::ensure!(
            dir.join(name).is_file(),
            "{} is missing: build the services with `cargo build --release --locked --bins`",
            dir.join(name).display()
        );
    }
    Ok(dir)
}

/// A running service process; killed if dropped.
pub struct Service {
    /// `gateway`, `checkout-service` or `stock-service`.
    pub name: &'static str,
    /// Its pid.
    pub pid: u32,
    /// The address it reported listening on.
    pub addr: SocketAddr,
    child: Child,
    logs: Arc<Mutex<LogSummary>>,
    readers: Vec<JoinHandle<()>>,
}

/// How a service stopped.
#[derive(Debug, Clone)]
pub struct Stopped {
    /// Its log summary, read to the end.
    pub logs: LogSummary,
    /// Whether it exited on SIGTERM within the grace period (else it was killed).
    pub graceful: bool,
    /// Its exit status.
    pub status: Option<ExitStatus>,
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
        let mut child = Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let pid = child.id().context("the child has no pid")?;
        let logs = Arc::new(Mutex::new(LogSummary::default()));
        let (found, addr) = oneshot::channel();
        let stdout = child.stdout.take().context("piped stdout")?;
        let stderr = child.stderr.take().context("piped stderr")?;
        let readers = vec![
            tokio::spawn(read_stdout(stdout, logs.clone(), addr_field, found)),
            tokio::spawn(read_stderr(stderr, logs.clone())),
        ];
        let mut service = Self {
            name,
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
            logs,
            readers,
        };
        match tokio::time::timeout(patience, addr).await {
            Ok(Ok(addr)) => {
                service.addr = addr;
                Ok(service)
            }
            Ok(Err(_)) => {
                // stdout closed: the process is exiting; give it a moment to say why.
                let _ = tokio::time::timeout(Duration::from_secs(2), service.child.wait()).await;
                anyhow::bail!(
                    "{name} exited before logging `{addr_field}`{}",
                    service.stderr_excerpt()
                )
            }
            Err(_) => anyhow::bail!(
                "{name} did not log `{addr_field}` within {patience:?}{}",
                service.stderr_excerpt()
            ),
        }
    }

    /// The log summary so far.
    pub fn logs(&self) -> LogSummary {
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn stderr_excerpt(&self) -> String {
        let logs = self.logs();
        let mut lines: Vec<String> = logs.problem_lines.clone();
        lines.extend(logs.stderr_tail.iter().cloned());
        if lines.is_empty() {
            String::new()
        } else {
            format!("; its last words:\n{}", lines.join("\n"))
        }
    }

    /// Sends SIGTERM and waits up to `grace` for the exit (killing it after that), then
    /// reads its logs to the end.
    pub async fn stop(mut self, grace: Duration) -> Stopped {
        let mut graceful = false;
        let mut status = None;
        if let Ok(Some(exited)) = self.child.try_wait() {
            status = Some(exited);
        } else {
            // `kill` is the portable way without unsafe code: the workspace forbids it.
            let signalled = Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await
                .is_ok_and(|s| s.success());
            if signalled
                && let Ok(Ok(exited)) = tokio::time::timeout(grace, self.child.wait()).await
            {
                graceful = true;
                status = Some(exited);
            }
            if status.is_none() {
                let _ = self.child.kill().await;
                status = self.child.try_wait().ok().flatten();
            }
        }
        for reader in std::mem::take(&mut self.readers) {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        Stopped {
            logs: self.logs(),
            graceful,
            status,
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
    }
}

async fn read_stdout(
    stdout: impl AsyncRead + Unpin,
    logs: Arc<Mutex<LogSummary>>,
    addr_field: &'static str,
    found: oneshot::Sender<SocketAddr>,
) {
    let mut found = Some(found);
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if found.is_some()
            && let Some(addr) = address_in(&line, addr_field)
            && let Some(found) = found.take()
        {
            let _ = found.send(addr);
        }
        logs.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .observe(&line);
    }
}

async fn read_stderr(stderr: impl AsyncRead + Unpin, logs: Arc<Mutex<LogSummary>>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        logs.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stderr_line(line);
    }
}

/// The socket address in field `field` of a JSON log line.
pub fn address_in(line: &str, field: &str) -> Option<SocketAddr> {
    let log: serde_json::Value = serde_json::from_str(line).ok()?;
    log.get(field)?.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_address_is_read_from_the_start_up_line() {
        let line = r#"{"timestamp":"…","level":"INFO","target":"service::startup","service":"gateway","version":"0.1.0","http_address":"127.0.0.1:40123","message":"listening"}"#;
        assert_eq!(
            address_in(line, "http_address"),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(address_in(line, "grpc_address"), None);
        assert_eq!(address_in("not json", "http_address"), None);
    }

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
        assert_eq!(logs.lines, 5);
        assert_eq!((logs.warnings, logs.errors, logs.otel_problems), (2, 1, 2));
        assert_eq!(logs.problem_lines.len(), 3);
    }

    #[test]
    fn stderr_keeps_only_its_tail() {
        let mut logs = LogSummary::default();
        for i in 0..(STDERR_TAIL + 5) {
            logs.stderr_line(i.to_string());
        }
        assert_eq!(logs.stderr_tail.len(), STDERR_TAIL);
        assert_eq!(logs.stderr_tail.front().map(String::as_str), Some("5"));
    }
}
