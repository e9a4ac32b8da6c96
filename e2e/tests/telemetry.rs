//! The `telemetry` crate on its own, against a real OTLP receiver: the exporters'
//! channels run on a runtime of their own, so a service's telemetry can be built and
//! flushed from a thread that has no Tokio runtime, and a flush never needs the
//! caller's runtime to make progress; metrics (through the service's meter) and log
//! events (with the trace and span id of the span they were written in) arrive over
//! gRPC and HTTP; and `OTEL_METRICS_EXPORTER=none` / `OTEL_LOGS_EXPORTER=none` send
//! none of either.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::time::Duration;

use e2e::captured::Captured;
use opentelemetry::KeyValue;
use telemetry::{Telemetry, TelemetryArgs, TelemetryConfig};
use testkit::receiver::{OtlpReceiver, SpanKind};

const WAIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_built_and_flushed_outside_any_runtime_exports_its_spans() {
    let any_port = "127.0.0.1:0".parse().expect("valid address");
    let receiver = OtlpReceiver::start(any_port, None)
        .await
        .expect("receiver starts");
    let endpoint = receiver.grpc_endpoint();

    // A plain thread: no Tokio context to build the exporter in or to flush on.
    let service = format!("telemetry-probe-{}", uuid::Uuid::new_v4());
    let probe_service = service.clone();
    std::thread::spawn(move || {
        let config = TelemetryConfig::new(&probe_service, &endpoint);
        let telemetry = Telemetry::build_with_writer(&config, std::io::sink)
            .expect("telemetry builds without a runtime");
        tracing::dispatcher::with_default(telemetry.dispatch(), || {
            let span = tracing::info_span!("probe", otel.kind = "client");
            span.in_scope(|| {});
        });
        telemetry.force_flush();
    })
    .join()
    .expect("the probe thread finishes");

    let spans = receiver
        .store()
        .wait_for(WAIT, |spans| {
            spans.iter().any(|span| span.service_name == service)
        })
        .await
        .unwrap_or_else(|spans| panic!("no span of {service} arrived; got {spans:?}"));
    let probe = spans
        .iter()
        .find(|span| span.service_name == service)
        .expect("found above");
    assert_eq!(probe.name, "probe");
    assert_eq!(probe.kind, SpanKind::Client);
    assert!(probe.is_root());
}

/// `TelemetryConfig` of `service` exporting to `endpoint` over `protocol`, read from
/// these flags through the services' real settings parsing (the process environment
/// left out), as `OTEL_*` variables would give it.
fn config_from_flags(
    service: &str,
    endpoint: &str,
    protocol: &str,
    flags: &[&str],
) -> TelemetryConfig {
    #[derive(clap::Parser)]
    struct Args {
        #[command(flatten)]
        telemetry: TelemetryArgs,
    }
    let fixed = [
        "--otel-exporter-otlp-endpoint",
        endpoint,
        "--otel-exporter-otlp-protocol",
        protocol,
    ];
    let matches = service::configuration::command::<Args>()
        .mut_args(|arg| arg.env(None::<&str>))
        .try_get_matches_from(
            std::iter::once("service")
                .chain(fixed)
                .chain(flags.iter().copied()),
        )
        .expect("the flags parse");
    <Args as clap::FromArgMatches>::from_arg_matches(&matches)
        .expect("the settings")
        .telemetry
        .into_config(service, "9.9.9")
        .expect("a valid configuration")
}

/// Under `telemetry`'s dispatcher, on a thread without a runtime: a counter through
/// `telemetry::metrics::meter` (the way service code finds its meter), a duration
/// histogram through `Telemetry::meter`, an INFO event inside a span and one given
/// its span explicitly, written outside it; then a flush. The counter gets 2 + 3,
/// the histogram 0.003 s and 0.004 s.
fn record_everything(telemetry: Telemetry) {
    std::thread::spawn(move || {
        tracing::dispatcher::with_default(telemetry.dispatch(), || {
            let counter = telemetry::metrics::meter("probe")
                .u64_counter("probe.requests")
                .build();
            let histogram = telemetry::metrics::duration_histogram(
                &telemetry.meter("probe"),
                "probe.duration",
                "How long a probe took",
            );
            counter.add(2, &[KeyValue::new("outcome", "ok")]);
            counter.add(3, &[KeyValue::new("outcome", "ok")]);
            histogram.record(0.003, &[]);
            histogram.record(0.004, &[]);
            tracing::info_span!("probe-span").in_scope(|| {
                tracing::info!(order_items = 2, "probe order received");
            });
            // Given its span explicitly, outside it (as stock-service reports
            // each order of a batch after the commit).
            let decided = tracing::info_span!("probe-decided");
            tracing::info!(parent: &decided, "probe order decided");
        });
        telemetry.force_flush();
    })
    .join()
    .expect("the probe thread finishes");
}

async fn metrics_and_logs_arrive_over(protocol: &str) {
    let any_port = "127.0.0.1:0".parse().expect("valid address");
    let receiver = OtlpReceiver::start(any_port, Some(any_port))
        .await
        .expect("receiver starts");
    let endpoint = match protocol {
        "grpc" => receiver.grpc_endpoint(),
        _ => format!("http://{}", receiver.http_addr().expect("HTTP bound")),
    };
    let service = format!("telemetry-signals-{}", uuid::Uuid::new_v4());
    let config = config_from_flags(&service, &endpoint, protocol, &[]);
    assert!(
        config.metrics.enabled && config.logs.enabled,
        "on by default"
    );
    let log_lines = Captured::default();
    let telemetry =
        Telemetry::build_with_writer(&config, log_lines.clone()).expect("telemetry builds");
    record_everything(telemetry.clone());

    let counter = receiver
        .metrics()
        .wait_for_metric(&service, "probe.requests", WAIT, |points| {
            points.iter().any(|point| point.number() == Some(5.0))
        })
        .await
        .unwrap_or_else(|points| panic!("no counter at 5 over {protocol}: {points:?}"));
    assert_eq!(counter[0].attr_str("outcome"), Some("ok"));
    let histogram = receiver
        .metrics()
        .wait_for_metric(&service, "probe.duration", WAIT, |points| {
            !points.is_empty()
        })
        .await
        .unwrap_or_else(|points| panic!("no histogram over {protocol}: {points:?}"));
    assert_eq!(histogram[0].unit, "s");
    let buckets = histogram[0].histogram().expect("a histogram point");
    assert_eq!(buckets.count, 2);
    assert!((buckets.sum.expect("a sum") - 0.007).abs() < 1e-9);
    assert_eq!(
        buckets.explicit_bounds,
        telemetry::metric_names::DURATION_BOUNDARIES
    );
    let p50 = buckets.quantile(0.5).expect("a median");
    assert!((0.0025..=0.005).contains(&p50), "{p50}");

    let spans = receiver
        .store()
        .wait_for(WAIT, |spans| {
            spans.iter().filter(|s| s.service_name == service).count() >= 2
        })
        .await
        .unwrap_or_else(|spans| panic!("no two spans over {protocol}: {spans:?}"));
    let span = spans
        .iter()
        .find(|s| s.service_name == service && s.name == "probe-span")
        .expect("found above");
    let logs = receiver
        .logs()
        .wait_for(WAIT, |logs| {
            logs.iter().filter(|l| l.service_name == service).count() >= 2
        })
        .await
        .unwrap_or_else(|logs| panic!("no two log records over {protocol}: {logs:?}"));
    let record = logs
        .iter()
        .find(|l| l.service_name == service && l.message() == "probe order received")
        .expect("the record written in the span");
    let decided_span = spans
        .iter()
        .find(|s| s.service_name == service && s.name == "probe-decided")
        .expect("the explicit parent's span");
    let decided = logs
        .iter()
        .find(|l| l.service_name == service && l.message() == "probe order decided")
        .expect("the record given its span");
    assert_eq!(
        decided.span_id.as_deref(),
        Some(decided_span.span_id.as_str()),
        "an explicit parent gives the record its ids"
    );
    assert_eq!(record.message(), "probe order received");
    assert_eq!(record.severity_text, "INFO");
    assert_eq!(record.trace_id.as_deref(), Some(span.trace_id.as_str()));
    assert_eq!(record.span_id.as_deref(), Some(span.span_id.as_str()));
    assert_eq!(
        record
            .attributes
            .get("order_items")
            .and_then(|v| v.as_i64()),
        Some(2)
    );
    assert_eq!(
        receiver.logs().logs_of_trace(&span.trace_id),
        std::slice::from_ref(record),
        "the record is found by its trace"
    );
    assert!(
        logs.iter()
            .filter(|l| l.service_name == service)
            .all(|l| !l.scope.starts_with("opentelemetry") && !l.scope.starts_with("h2")),
        "the export machinery's own events stay out: {logs:?}"
    );

    telemetry.shutdown().await;
    let lines = log_lines.text();
    let totals: serde_json::Value = lines
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .find(|line: &serde_json::Value| {
            line["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("telemetry export totals"))
        })
        .unwrap_or_else(|| panic!("no totals line at shutdown:\n{lines}"));
    assert!(totals["spans_exported"].as_u64() >= Some(1), "{totals}");
    assert!(
        totals["log_records_exported"].as_u64() >= Some(1),
        "{totals}"
    );
    assert!(
        totals["metric_points_exported"].as_u64() >= Some(2),
        "{totals}"
    );
    assert_eq!(totals["spans_lost"], 0, "{totals}");
    assert!(
        !lines.contains("AfterShutdown"),
        "no record is handed to the logger after its shutdown:\n{lines}"
    );
    receiver.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_logs_reach_the_receiver_over_grpc_with_their_span() {
    metrics_and_logs_arrive_over("grpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_logs_reach_the_receiver_over_http_with_their_span() {
    metrics_and_logs_arrive_over("http/protobuf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_metrics_and_logs_off_only_the_spans_arrive() {
    let any_port = "127.0.0.1:0".parse().expect("valid address");
    let receiver = OtlpReceiver::start(any_port, None)
        .await
        .expect("receiver starts");
    let service = format!("telemetry-spans-only-{}", uuid::Uuid::new_v4());
    let config = config_from_flags(
        &service,
        &receiver.grpc_endpoint(),
        "grpc",
        &[
            "--otel-metrics-exporter",
            "none",
            "--otel-logs-exporter",
            "none",
        ],
    );
    assert!(!config.metrics.enabled && !config.logs.enabled);
    let telemetry = Telemetry::build_with_writer(&config, std::io::sink).expect("telemetry builds");
    record_everything(telemetry.clone());

    // The receiver works: the span recorded beside the metrics and the log arrives.
    receiver
        .store()
        .wait_for(WAIT, |spans| {
            spans.iter().any(|s| s.service_name == service)
        })
        .await
        .unwrap_or_else(|spans| panic!("no span of {service}: {spans:?}"));
    // The flush that sent the span would have sent the rest too; give stragglers a
    // bounded while anyway.
    let quiet = Duration::from_secs(2);
    let metric = receiver
        .metrics()
        .wait_for_metric(&service, "probe.requests", quiet, |points| {
            !points.is_empty()
        })
        .await;
    assert!(metric.is_err(), "a metric arrived: {metric:?}");
    let logs = receiver
        .logs()
        .wait_for(quiet, |logs| logs.iter().any(|l| l.service_name == service))
        .await;
    assert!(logs.is_err(), "a log record arrived: {logs:?}");
    assert!(
        receiver
            .metrics()
            .series()
            .iter()
            .all(|s| s.latest.service_name != service),
        "no metric of the service at all"
    );
    telemetry.shutdown().await;
    receiver.shutdown().await;
}
