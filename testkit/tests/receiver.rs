//! Drives the OTLP receiver through its public API: real gRPC and HTTP exports in,
//! flattened spans out.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::io::Write;
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span};
use prost::Message;
use testkit::receiver::{AttributeValue, OtlpReceiver, SpanKind, SpanStatus, SpanStore};
use tonic::codec::CompressionEncoding;

const TRACE: [u8; 16] = [0xab; 16];
const TRACE_HEX: &str = "abababababababababababababababab";
const ROOT: [u8; 8] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08];
const ROOT_HEX: &str = "0102030405060708";
const CHILD: [u8; 8] = [0xff; 8];
const WAIT: Duration = Duration::from_secs(10);

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn request(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", Value::StringValue(service.into()))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A root server span and its failed client child, as checkout-service would export them.
fn checkout_request() -> ExportTraceServiceRequest {
    let root = Span {
        trace_id: TRACE.to_vec(),
        span_id: ROOT.to_vec(),
        name: "POST /checkout".into(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 5_000,
        attributes: vec![
            kv("http.request.method", Value::StringValue("POST".into())),
            kv("http.response.status_code", Value::IntValue(502)),
        ],
        status: Some(Status {
            code: 1,
            message: String::new(),
        }),
        ..Default::default()
    };
    let child = Span {
        trace_id: TRACE.to_vec(),
        span_id: CHILD.to_vec(),
        parent_span_id: ROOT.to_vec(),
        name: "stock.Reserve".into(),
        kind: span::SpanKind::Client as i32,
        start_time_unix_nano: 2_000,
        end_time_unix_nano: 4_500,
        attributes: vec![
            kv("retry", Value::BoolValue(true)),
            kv("ratio", Value::DoubleValue(0.5)),
            kv(
                "skus",
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::StringValue("a".into())),
                    }],
                }),
            ),
            kv("raw", Value::BytesValue(vec![0xde, 0xad])),
        ],
        status: Some(Status {
            code: 2,
            message: "out of stock".into(),
        }),
        events: vec![span::Event {
            name: "exception".into(),
            time_unix_nano: 4_000,
            attributes: vec![kv("exception.message", Value::StringValue("boom".into()))],
            ..Default::default()
        }],
        links: vec![span::Link {
            trace_id: [0x11; 16].to_vec(),
            span_id: [0x22; 8].to_vec(),
            ..Default::default()
        }],
        ..Default::default()
    };
    // Child first: `trace()` must sort by start time, not arrival order.
    request("checkout-service", vec![child, root])
}

async fn start() -> OtlpReceiver {
    let any_port = "127.0.0.1:0".parse().expect("valid address");
    OtlpReceiver::start(any_port, Some(any_port))
        .await
        .expect("receiver starts")
}

fn assert_checkout_trace(store: &SpanStore) {
    let trace = store.trace(TRACE_HEX);
    assert_eq!(trace.len(), 2);
    let (root, child) = (&trace[0], &trace[1]);

    assert_eq!(root.trace_id, TRACE_HEX);
    assert_eq!(root.span_id, ROOT_HEX);
    assert_eq!(root.parent_span_id, None);
    assert_eq!(root.name, "POST /checkout");
    assert_eq!(root.kind, SpanKind::Server);
    assert_eq!(root.service_name, "checkout-service");
    assert_eq!(root.attr_str("http.request.method"), Some("POST"));
    assert_eq!(root.attr_i64("http.response.status_code"), Some(502));
    assert_eq!(root.status, SpanStatus::Ok);
    assert_eq!(root.duration(), Duration::from_nanos(4_000));

    assert_eq!(child.span_id, "ffffffffffffffff");
    assert_eq!(child.parent_span_id.as_deref(), Some(ROOT_HEX));
    assert_eq!(child.kind, SpanKind::Client);
    assert_eq!(child.kind.to_string(), "client");
    assert_eq!(child.attr("retry"), Some(&AttributeValue::Bool(true)));
    assert_eq!(child.attr("ratio"), Some(&AttributeValue::Double(0.5)));
    assert_eq!(
        child.attr("skus").map(ToString::to_string).as_deref(),
        Some("[a]")
    );
    assert_eq!(
        child.attr("raw").map(ToString::to_string).as_deref(),
        Some("dead")
    );
    assert_eq!(child.attr_str("missing"), None);
    assert_eq!(
        child.status,
        SpanStatus::Error {
            message: "out of stock".into()
        }
    );
    assert_eq!(child.events.len(), 1);
    assert_eq!(child.events[0].name, "exception");
    assert_eq!(child.events[0].time_unix_nanos, 4_000);
    assert_eq!(
        child.events[0].attributes.get("exception.message"),
        Some(&AttributeValue::from("boom"))
    );
    assert_eq!(child.links.len(), 1);
    assert_eq!(child.links[0].trace_id, "11".repeat(16));
    assert_eq!(child.links[0].span_id, "22".repeat(8));
}

#[tokio::test]
async fn grpc_export_is_flattened() {
    let receiver = start().await;
    let mut client = TraceServiceClient::connect(receiver.grpc_endpoint())
        .await
        .expect("connects");
    client
        .export(checkout_request())
        .await
        .expect("export succeeds");

    let spans = receiver
        .store()
        .wait_for_trace(TRACE_HEX, WAIT, |spans| spans.len() == 2)
        .await
        .expect("both spans arrive");
    assert_eq!(spans, receiver.store().trace(TRACE_HEX));
    assert_checkout_trace(&receiver.store());
    receiver.shutdown().await;
}

#[tokio::test]
async fn grpc_accepts_gzip() {
    let receiver = start().await;
    let mut client = TraceServiceClient::connect(receiver.grpc_endpoint())
        .await
        .expect("connects")
        .send_compressed(CompressionEncoding::Gzip);
    client
        .export(checkout_request())
        .await
        .expect("gzip export succeeds");

    receiver
        .store()
        .wait_for(WAIT, |spans| spans.len() == 2)
        .await
        .expect("both spans arrive");
    assert_checkout_trace(&receiver.store());
    receiver.shutdown().await;
}

async fn post(receiver: &OtlpReceiver, body: Vec<u8>, gzip: bool) -> reqwest::Response {
    let url = receiver.http_traces_url().expect("HTTP enabled");
    let mut post = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-protobuf");
    if gzip {
        post = post.header("content-encoding", "gzip");
    }
    post.body(body).send().await.expect("HTTP request succeeds")
}

#[tokio::test]
async fn http_protobuf_export_plain_and_gzip() {
    let receiver = start().await;
    let body = checkout_request().encode_to_vec();
    for gzip in [false, true] {
        let body = if gzip {
            let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
            encoder.write_all(&body).expect("gzip");
            encoder.finish().expect("gzip")
        } else {
            body.clone()
        };
        let response = post(&receiver, body, gzip).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/x-protobuf");
        let bytes = response.bytes().await.expect("response body");
        ExportTraceServiceResponse::decode(bytes).expect("protobuf response");
    }
    // Stored synchronously before the response, so no waiting is needed here.
    assert_eq!(receiver.store().len(), 4);
    assert_eq!(receiver.store().traces()[TRACE_HEX].len(), 4);
    receiver.shutdown().await;
}

#[tokio::test]
async fn http_rejects_malformed_bodies() {
    let receiver = start().await;
    let garbage = vec![0xff; 16];
    assert_eq!(post(&receiver, garbage.clone(), false).await.status(), 400);
    assert_eq!(post(&receiver, garbage, true).await.status(), 400);
    let json = reqwest::Client::new()
        .post(receiver.http_traces_url().expect("HTTP enabled"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("HTTP request succeeds");
    assert_eq!(json.status(), 415);
    assert!(receiver.store().is_empty());
    receiver.shutdown().await;
}

#[tokio::test]
async fn wait_for_trace_wakes_on_insert() {
    let store = SpanStore::new();
    let waiter = tokio::spawn({
        let store = store.clone();
        async move {
            store
                .wait_for_trace(TRACE_HEX, WAIT, |spans| spans.iter().any(|s| s.is_root()))
                .await
        }
    });
    tokio::task::yield_now().await;
    store.insert(checkout_request());
    let spans = waiter.await.expect("waiter task").expect("condition met");
    assert_eq!(spans.len(), 2);
}

#[tokio::test]
async fn wait_for_trace_times_out_with_spans_seen() {
    let store = SpanStore::new();
    store.insert(checkout_request());
    let short = Duration::from_millis(200);

    let seen = store
        .wait_for_trace(TRACE_HEX, short, |spans| spans.len() == 3)
        .await
        .expect_err("third span never arrives");
    assert_eq!(seen.len(), 2);

    let seen = store
        .wait_for_trace(&"00".repeat(16), short, |spans| !spans.is_empty())
        .await
        .expect_err("unknown trace never arrives");
    assert!(seen.is_empty());
}

#[tokio::test]
async fn malformed_spans_are_rendered_not_rejected() {
    let store = SpanStore::new();
    store.insert(ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: None,
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: vec![0xab, 0xc],
                    span_id: Vec::new(),
                    parent_span_id: vec![1],
                    kind: 42,
                    status: Some(Status {
                        code: 7,
                        message: "?".into(),
                    }),
                    attributes: vec![KeyValue {
                        key: "empty".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    });
    let span = &store.all()[0];
    assert_eq!(span.trace_id, "ab0c");
    assert_eq!(span.span_id, "");
    assert_eq!(span.parent_span_id.as_deref(), Some("01"));
    assert_eq!(span.kind, SpanKind::Unspecified);
    assert_eq!(span.status, SpanStatus::Unset);
    assert_eq!(span.service_name, "");
    assert!(span.attributes.is_empty());
}

#[tokio::test]
async fn spans_serialize_to_readable_json() {
    let store = SpanStore::new();
    store.insert(checkout_request());
    let child = &store.trace(TRACE_HEX)[1];
    let json = serde_json::to_value(child).expect("serializes");
    assert_eq!(json["kind"], "client");
    assert_eq!(
        json["status"],
        serde_json::json!({"code": "error", "message": "out of stock"})
    );
    assert_eq!(json["attributes"]["retry"], true);
    assert_eq!(json["attributes"]["raw"], "dead");
}

#[tokio::test]
async fn shutdown_stops_serving_and_drop_does_not_panic() {
    let receiver = start().await;
    let endpoint = receiver.grpc_endpoint();
    receiver.shutdown().await;
    assert!(TraceServiceClient::connect(endpoint).await.is_err());

    drop(start().await);
}
