//! Following a store: span subscriptions and settled traces, the machinery behind
//! `checkout traces` and load-test verification; and the command itself, with the
//! trace's log records under its waterfall (`--logs`).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use testkit::receiver::{CompletedTraces, ReceivedSpan, SpanStore};

/// Generous: only reached when something is broken.
const PATIENCE: Duration = Duration::from_secs(10);

fn export(spans: &[([u8; 16], u8, u64)]) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: spans
                    .iter()
                    .map(|&(trace, span, start)| Span {
                        trace_id: trace.to_vec(),
                        span_id: vec![span; 8],
                        name: format!("span {span}"),
                        start_time_unix_nano: start,
                        end_time_unix_nano: start + 1,
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn names(trace: &[ReceivedSpan]) -> Vec<&str> {
    trace.iter().map(|span| span.name.as_str()).collect()
}

#[tokio::test]
async fn a_subscription_hands_out_every_span_once() {
    let store = SpanStore::new();
    store.insert(export(&[([1; 16], 1, 10)]));
    let mut spans = store.subscribe();
    store.insert(export(&[([1; 16], 2, 20), ([2; 16], 3, 30)]));

    let first = tokio::time::timeout(PATIENCE, spans.next_batch())
        .await
        .expect("in time");
    assert_eq!(names(&first.expect("open")), ["span 1", "span 2", "span 3"]);

    let next = tokio::spawn(async move { spans.next_batch().await });
    store.insert(export(&[([2; 16], 4, 40)]));
    let second = tokio::time::timeout(PATIENCE, next)
        .await
        .expect("in time")
        .expect("join");
    assert_eq!(names(&second.expect("open")), ["span 4"]);
}

async fn next(traces: &mut CompletedTraces) -> Option<Vec<ReceivedSpan>> {
    tokio::time::timeout(PATIENCE, traces.next())
        .await
        .expect("in time")
}

#[tokio::test]
async fn completed_traces_are_released_after_the_settle_time() {
    let store = SpanStore::new();
    let mut traces = store.completed_traces(Duration::from_millis(200));
    // Two traces, the second exported in two batches.
    store.insert(export(&[([1; 16], 2, 20), ([2; 16], 5, 15)]));
    store.insert(export(&[([1; 16], 1, 10)]));
    let first = next(&mut traces).await.expect("a trace");
    let second = next(&mut traces).await.expect("a trace");
    assert_eq!(
        names(&first),
        ["span 1", "span 2"],
        "ordered by first start, spans by start"
    );
    assert_eq!(names(&second), ["span 5"]);

    // A straggler comes out as a partial trace of its own.
    store.insert(export(&[([1; 16], 3, 30)]));
    let late = next(&mut traces).await.expect("a trace");
    assert_eq!(names(&late), ["span 3"]);

    // Spans still settling when the store goes away are released, then the stream ends.
    store.insert(export(&[([3; 16], 4, 40)]));
    drop(store);
    assert_eq!(
        names(&next(&mut traces).await.expect("a trace")),
        ["span 4"]
    );
    assert!(next(&mut traces).await.is_none());
}

/// Kills the child process if the test ends before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `checkout traces` on free ports with `extra` arguments; returns it and its
/// OTLP/gRPC address, read from its banner.
async fn start_traces(extra: &[&str]) -> (KillOnDrop, String) {
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_checkout"))
            .args([
                "traces",
                "--listen-grpc",
                "127.0.0.1:0",
                "--listen-http",
                "127.0.0.1:0",
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts"),
    );
    // "receiving spans on OTLP/gRPC 127.0.0.1:PORT and ..."
    let stderr = child.0.stderr.take().expect("stderr");
    let banner = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stderr).read_line(&mut line).map(|_| line)
    });
    let banner = tokio::time::timeout(PATIENCE, banner)
        .await
        .expect("the receiver starts in time")
        .expect("join")
        .expect("a banner line");
    let addr = banner
        .split_whitespace()
        .skip_while(|word| *word != "OTLP/gRPC")
        .nth(1)
        .expect("the gRPC address in the banner")
        .to_owned();
    (child, addr)
}

/// Waits for the command to exit (it does after `--count` traces) and returns its stdout.
async fn output_of(mut child: KillOnDrop) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while child.0.try_wait().expect("status").is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "checkout traces did not exit"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut stdout = String::new();
    child
        .0
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read");
    stdout
}

#[tokio::test]
async fn the_traces_command_prints_a_trace_once_it_settles() {
    let (child, addr) = start_traces(&["--settle", "100ms", "--count", "1", "--width", "10"]).await;
    let mut client = TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connects");
    client
        .export(export(&[([7; 16], 1, 1_000_000), ([7; 16], 2, 2_000_000)]))
        .await
        .expect("exported");

    // `--count 1`: the command exits on its own once it has printed the trace.
    let stdout = output_of(child).await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!("trace {}  1.00 ms  2 spans  1 services: ?", "07".repeat(16))
    );
    assert_eq!(
        lines.len(),
        2 + 2 + 1,
        "header, column titles, two spans, blank line:\n{stdout}"
    );
}

/// A log record of trace `trace`, written in span `span` at `time` (ns).
fn log_export(trace: [u8; 16], span: u8, time: u64, message: &str) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    trace_id: trace.to_vec(),
                    span_id: vec![span; 8],
                    time_unix_nano: time,
                    severity_number: 13,
                    severity_text: "WARN".into(),
                    body: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(message.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[tokio::test]
async fn with_logs_the_trace_s_log_records_follow_its_waterfall() {
    let (child, addr) = start_traces(&[
        "--settle", "300ms", "--count", "1", "--width", "10", "--logs",
    ])
    .await;
    let channel = format!("http://{addr}");
    let mut logs = LogsServiceClient::connect(channel.clone())
        .await
        .expect("connects");
    // Records of this trace (out of time order) and one of another trace.
    logs.export(log_export([8; 16], 2, 2_500_000, "second, in span 2"))
        .await
        .expect("exported");
    logs.export(log_export([8; 16], 1, 1_500_000, "first, in span 1"))
        .await
        .expect("exported");
    logs.export(log_export([9; 16], 1, 1_600_000, "another trace's"))
        .await
        .expect("exported");
    let mut spans = TraceServiceClient::connect(channel)
        .await
        .expect("connects");
    spans
        .export(export(&[([8; 16], 1, 1_000_000), ([8; 16], 2, 2_000_000)]))
        .await
        .expect("exported");

    let stdout = output_of(child).await;
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        2 + 2 + 3 + 1,
        "waterfall, LOGS and two records, blank:\n{stdout}"
    );
    assert_eq!(lines[4], "LOGS (2)", "{stdout}");
    assert!(
        lines[5].contains("+0.50 ms")
            && lines[5].contains("WARN")
            && lines[5].contains("span 1  first, in span 1"),
        "{stdout}"
    );
    assert!(lines[6].ends_with("span 2  second, in span 2"), "{stdout}");
    assert!(!stdout.contains("another trace's"), "{stdout}");
}
