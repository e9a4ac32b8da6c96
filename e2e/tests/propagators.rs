//! `OTEL_PROPAGATORS` across the pipeline: a caller that speaks only B3 or
//! Jaeger is continued when those propagators are on, through every service
//! (HTTP in, gRPC, AMQP), and with `none` no caller context is read.
//! The carriers' own unit tests (`telemetry::propagation`) check each format
//! on each protocol; these check the setting reaches every service.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use e2e::{AdjustTelemetry, PATIENCE, PipelineOptions, TestPipeline, span_of};
use reqwest::StatusCode;
use serde_json::json;
use testkit::receiver::{OtlpReceiver, ReceivedSpan, SpanKind};
use testkit::verify::is_complete;

const CALLER_TRACE_ID: &str = "80f198ee56343ba864fe8b2a57d3eff7";
const CALLER_SPAN_ID: &str = "e457b5a2e4d86bd1";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_b3_only_caller_is_continued_through_every_service() {
    let pipeline = TestPipeline::start_with(PipelineOptions {
        // OTEL_PROPAGATORS=b3multi,tracecontext,baggage in every service.
        telemetry: |config| config.propagators = "b3multi,tracecontext,baggage".parse().unwrap(),
        ..PipelineOptions::default()
    })
    .await;

    let (status, body) = pipeline
        .checkout(
            &json!({"items": [{"id": 2, "quantity": 1}]}),
            &[
                ("X-B3-TraceId", CALLER_TRACE_ID),
                ("X-B3-SpanId", CALLER_SPAN_ID),
                ("X-B3-Sampled", "1"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body["traceId"], CALLER_TRACE_ID,
        "the caller's trace goes on"
    );
    let order_id = body["orderId"].as_str().expect("orderId").to_owned();
    assert_eq!(
        pipeline.wait_for_order(&order_id).await["status"],
        "applied"
    );

    let spans = pipeline.wait_for_trace(CALLER_TRACE_ID, is_complete).await;
    assert!(spans.iter().all(|s| s.trace_id == CALLER_TRACE_ID));
    // Each hop is the child of the one before: HTTP in, gRPC, AMQP.
    let http = span_of(&spans, "gateway", SpanKind::Server);
    assert_eq!(http.parent_span_id.as_deref(), Some(CALLER_SPAN_ID));
    let client = span_of(&spans, "gateway", SpanKind::Client);
    assert_eq!(client.parent_span_id.as_ref(), Some(&http.span_id));
    let server = span_of(&spans, "checkout-service", SpanKind::Server);
    assert_eq!(server.parent_span_id.as_ref(), Some(&client.span_id));
    let producer = span_of(&spans, "checkout-service", SpanKind::Producer);
    assert_eq!(producer.parent_span_id.as_ref(), Some(&server.span_id));
    let consumer = span_of(&spans, "stock-service", SpanKind::Consumer);
    assert_eq!(consumer.parent_span_id.as_ref(), Some(&producer.span_id));

    pipeline.shut_down().await;
}

/// The gateway's SERVER span for a request with `headers` under `telemetry`
/// (a refused empty cart: the gateway answers it alone).
async fn gateway_server_span(
    receiver: &OtlpReceiver,
    telemetry: AdjustTelemetry,
    headers: &[(&str, &str)],
) -> ReceivedSpan {
    let settings = e2e::gateway_settings(e2e::LOCALHOST_ANY_PORT);
    let gateway = e2e::start_gateway(&receiver.grpc_endpoint(), telemetry, settings).unwrap();
    let marker = uuid::Uuid::new_v4().to_string();
    let mut request = reqwest::Client::new()
        .post(format!("http://{}/api/checkout", gateway.addr))
        .header("user-agent", &marker)
        .json(&json!({"items": []}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("gateway answers");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    tokio::task::spawn_blocking(move || drop(gateway))
        .await
        .unwrap();

    let is_ours = |span: &ReceivedSpan| {
        span.kind == SpanKind::Server && span.attr_str("user_agent.original") == Some(&marker)
    };
    let spans = receiver
        .store()
        .wait_for(PATIENCE, |spans| spans.iter().any(is_ours))
        .await
        .unwrap_or_else(|spans| panic!("no server span for {marker}; got {spans:#?}"));
    spans.into_iter().find(is_ours).expect("found above")
}

/// A request to the gateway, and whether the gateway must continue it.
struct Case<'a> {
    name: &'static str,
    telemetry: AdjustTelemetry,
    headers: Vec<(&'static str, &'a str)>,
    continued: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_reads_the_formats_its_propagators_name_and_no_other() {
    let receiver = OtlpReceiver::start(([127, 0, 0, 1], 0).into(), None)
        .await
        .expect("OTLP receiver starts");
    let b3_single = format!("{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-1");
    let jaeger = format!("{CALLER_TRACE_ID}:{CALLER_SPAN_ID}:0:1");
    let traceparent = format!("00-{CALLER_TRACE_ID}-{CALLER_SPAN_ID}-01");
    let cases = [
        Case {
            name: "b3, single header",
            telemetry: |config| config.propagators = "b3".parse().unwrap(),
            headers: vec![("b3", &b3_single)],
            continued: true,
        },
        Case {
            name: "jaeger",
            telemetry: |config| config.propagators = "jaeger".parse().unwrap(),
            headers: vec![("uber-trace-id", &jaeger)],
            continued: true,
        },
        Case {
            name: "the default ignores B3 and Jaeger",
            telemetry: e2e::DEFAULT_TELEMETRY,
            headers: vec![("b3", &b3_single), ("uber-trace-id", &jaeger)],
            continued: false,
        },
        Case {
            name: "b3 ignores W3C",
            telemetry: |config| config.propagators = "b3".parse().unwrap(),
            headers: vec![("traceparent", &traceparent)],
            continued: false,
        },
        Case {
            name: "none reads nothing",
            telemetry: |config| config.propagators = "none".parse().unwrap(),
            headers: vec![
                ("traceparent", &traceparent),
                ("b3", &b3_single),
                ("uber-trace-id", &jaeger),
            ],
            continued: false,
        },
    ];
    for Case {
        name: case,
        telemetry,
        headers,
        continued,
    } in cases
    {
        let span = gateway_server_span(&receiver, telemetry, &headers).await;
        if continued {
            assert_eq!(span.trace_id, CALLER_TRACE_ID, "{case}");
            assert_eq!(
                span.parent_span_id.as_deref(),
                Some(CALLER_SPAN_ID),
                "{case}"
            );
        } else {
            assert_ne!(span.trace_id, CALLER_TRACE_ID, "{case}");
            assert!(span.is_root(), "{case}: {span:#?}");
        }
    }
}
