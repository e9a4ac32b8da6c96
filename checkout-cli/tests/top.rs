//! `checkout top --json` run as a command against known metric points: two exports
//! of one HTTP operation, 10 s apart by their timestamps, with 75 successes and 25
//! errors in between, must read 10 requests/s, 25 % errors, p50 2.5 ms and p99 9.8 ms
//! (the same points as the unit test of the computation).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_client::MetricsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics,
    metric,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// Generous: only reached when something is broken.
const PATIENCE: Duration = Duration::from_secs(20);
const S: u64 = 1_000_000_000;
const T0: u64 = 1_700_000_000 * S;

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

/// The gateway's `http.server.request.duration` at `time` seconds: the successes'
/// and the errors' cumulative buckets.
fn export(time: u64, ok: [u64; 5], failed: [u64; 5]) -> ExportMetricsServiceRequest {
    let route = [
        kv("http.request.method", "POST"),
        kv("http.route", "/api/checkout"),
    ];
    let point = |extra: Vec<KeyValue>, counts: [u64; 5]| HistogramDataPoint {
        attributes: route.iter().cloned().chain(extra).collect(),
        start_time_unix_nano: T0,
        time_unix_nano: T0 + time * S,
        count: counts.iter().sum(),
        bucket_counts: counts.to_vec(),
        explicit_bounds: vec![0.001, 0.002, 0.005, 0.01],
        ..Default::default()
    };
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "gateway")],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: contracts::metrics::HTTP_SERVER_REQUEST_DURATION.into(),
                    unit: "s".into(),
                    data: Some(metric::Data::Histogram(Histogram {
                        data_points: vec![
                            point(vec![kv("http.response.status_code", "202")], ok),
                            point(
                                vec![
                                    kv("http.response.status_code", "503"),
                                    kv("error.type", "503"),
                                ],
                                failed,
                            ),
                        ],
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Kills the child process if the test ends before it does.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn top_json_shows_rate_errors_and_percentiles_of_known_points() {
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_checkout"))
            .args(["top", "--json", "--interval", "50ms"])
            .args([
                "--listen-grpc",
                "127.0.0.1:0",
                "--listen-http",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts"),
    );
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
        .expect("the gRPC address in the banner");

    // One JSON document per refresh, read on a thread of its own.
    let stdout = child.0.stdout.take().expect("stdout");
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });

    let mut client = MetricsServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connects");
    client
        .export(export(10, [100, 0, 0, 0, 0], [0, 0, 0, 5, 0]))
        .await
        .expect("exported");
    client
        .export(export(20, [100, 45, 30, 0, 0], [0, 0, 0, 30, 0]))
        .await
        .expect("exported");

    let close = |value: &serde_json::Value, expected: f64| {
        value.as_f64().is_some_and(|v| (v - expected).abs() < 1e-6)
    };
    let found = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + PATIENCE;
        let mut last = String::new();
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let Ok(line) = lines.recv_timeout(left) else {
                break;
            };
            let document: serde_json::Value = serde_json::from_str(&line).expect("JSON per line");
            let row = &document["operations"][0];
            if row["count"] == 100 {
                return Ok(document);
            }
            last = line;
        }
        Err(last)
    })
    .await
    .expect("join")
    .unwrap_or_else(|last| panic!("no refresh showed both exports; the last was {last}"));
    let row = &found["operations"][0];
    assert_eq!(row["service"], "gateway");
    assert_eq!(row["metric"], "http.server.request.duration");
    assert_eq!(row["operation"], "POST /api/checkout");
    assert!(close(&row["rate_per_s"], 10.0), "{row}");
    assert!(close(&row["error_share"], 0.25), "{row}");
    assert!(close(&row["p50_ms"], 2.5), "{row}");
    assert!(close(&row["p99_ms"], 9.8), "{row}");
    assert_eq!(found["time_unix_nanos"], T0 + 20 * S);
}
