//! The `telemetry` crate on its own, against a real OTLP/gRPC receiver: the exporter's
//! channel runs on a runtime of its own, so a service's telemetry can be built and
//! flushed from a thread that has no Tokio runtime, and a flush never needs the
//! caller's runtime to make progress.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::time::Duration;

use checkout_cli::receiver::{OtlpReceiver, SpanKind};
use telemetry::{Telemetry, TelemetryConfig};

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
