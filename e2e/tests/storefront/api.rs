//! What the page calls, without a browser: the catalog and an order's
//! status through the gateway, each traced across the services, and the
//! relay taking an export as the OpenTelemetry JS exporter sends it.

use std::time::Duration;

use contracts::metrics::{HTTP_CLIENT_REQUEST_DURATION, HTTP_SERVER_REQUEST_DURATION};
use e2e::{PATIENCE, PipelineOptions, TestPipeline, span_of};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::receiver::{ReceivedSpan, SpanKind};

/// A fresh trace id, for a trace the test starts as a browser's fetch would.
fn new_trace_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// `GET path` on the gateway as a child of span `00f067aa0ba902b7` of `trace_id`.
async fn get_in_trace(pipeline: &TestPipeline, path: &str, trace_id: &str) -> reqwest::Response {
    pipeline
        .http
        .get(format!("{}{path}", pipeline.gateway_url))
        .header("traceparent", traceparent(trace_id))
        .send()
        .await
        .unwrap()
}

fn traceparent(trace_id: &str) -> String {
    format!("00-{trace_id}-00f067aa0ba902b7-01")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_catalog_comes_from_checkout_service_in_one_trace() {
    let pipeline = TestPipeline::start().await;
    let trace_id = new_trace_id();
    let response = get_in_trace(&pipeline, "/api/catalog", &trace_id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"items": [
            {"id": 1, "name": "Espresso cup", "price": 100},
            {"id": 2, "name": "Tea towel", "price": 250},
            {"id": 3, "name": "Notebook", "price": 399},
            {"id": 4, "name": "Desk lamp", "price": 1250},
        ]})
    );

    let spans = pipeline
        .wait_for_trace(&trace_id, |spans| spans.len() >= 3)
        .await;
    let server = span_of(&spans, "gateway", SpanKind::Server);
    assert_eq!(server.name, "GET /api/catalog");
    assert_eq!(server.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
    let client = span_of(&spans, "gateway", SpanKind::Client);
    let served = span_of(&spans, "checkout-service", SpanKind::Server);
    for span in [client, served] {
        assert_eq!(span.name, "checkout.Checkout/ListItems");
        assert_eq!(span.attr_str("rpc.system"), Some("grpc"));
        assert_eq!(span.attr_str("rpc.service"), Some("checkout.Checkout"));
        assert_eq!(span.attr_str("rpc.method"), Some("ListItems"));
        assert_eq!(span.attr_i64("rpc.grpc.status_code"), Some(0));
    }
    assert_eq!(client.parent_span_id.as_ref(), Some(&server.span_id));
    assert_eq!(served.parent_span_id.as_ref(), Some(&client.span_id));
    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_pages_context_is_linked_not_continued() {
    let pipeline = TestPipeline::start_with(PipelineOptions {
        gateway: |settings| settings.trust_client_trace_context = false,
        ..PipelineOptions::default()
    })
    .await;
    let page_trace = new_trace_id();
    let response = get_in_trace(&pipeline, "/api/catalog", &page_trace).await;
    assert_eq!(response.status(), StatusCode::OK);

    let spans = pipeline
        .receiver
        .store()
        .wait_for(PATIENCE, |spans| {
            spans.iter().any(|span| {
                span.name == "GET /api/catalog"
                    && span.links.iter().any(|link| link.trace_id == page_trace)
            })
        })
        .await
        .expect("the gateway's span arrives");
    let server = spans
        .iter()
        .find(|span| span.links.iter().any(|link| link.trace_id == page_trace))
        .unwrap();
    assert_ne!(server.trace_id, page_trace, "a trace of the gateway's own");
    assert!(server.is_root());
    assert_eq!(server.links[0].span_id, "00f067aa0ba902b7");
    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orders_status_comes_from_stock_service_in_the_callers_trace() {
    let pipeline = TestPipeline::start_with(PipelineOptions {
        telemetry: |config| config.metrics.interval = Duration::from_millis(200),
        ..PipelineOptions::default()
    })
    .await;
    let (status, accepted) = pipeline
        .checkout(&json!({"items": [{"id": 1, "quantity": 2}]}), &[])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{accepted}");
    let order_id = accepted["orderId"].as_str().unwrap().to_owned();
    let decided = pipeline.wait_for_order(&order_id).await;

    let trace_id = new_trace_id();
    let response = get_in_trace(&pipeline, &format!("/api/orders/{order_id}"), &trace_id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body, decided,
        "the gateway passes stock-service's answer on"
    );
    assert_eq!(body["status"], "applied");

    let unknown = uuid::Uuid::new_v4();
    let response = pipeline
        .http
        .get(format!("{}/api/orders/{unknown}", pipeline.gateway_url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");

    let spans = pipeline
        .wait_for_trace(&trace_id, |spans| spans.len() >= 3)
        .await;
    let server = gateway_server(&spans);
    assert_eq!(server.name, "GET /api/orders/{orderId}");
    let client = span_of(&spans, "gateway", SpanKind::Client);
    assert_eq!(client.name, "GET /api/orders/{orderId}");
    assert_eq!(client.parent_span_id.as_ref(), Some(&server.span_id));
    assert_eq!(client.attr_str("http.request.method"), Some("GET"));
    assert_eq!(
        client.attr_str("url.full"),
        Some(format!("{}/api/orders/{order_id}", pipeline.stock_url).as_str())
    );
    assert_eq!(client.attr_str("server.address"), Some("127.0.0.1"));
    assert_eq!(client.attr_i64("http.response.status_code"), Some(200));
    let stock = span_of(&spans, "stock-service", SpanKind::Server);
    assert_eq!(stock.name, "GET /api/orders/{order_id}");
    assert_eq!(stock.parent_span_id.as_ref(), Some(&client.span_id));

    // Measured by the route's template and the call's, never by an order id.
    let metrics = pipeline.receiver.metrics();
    let served = metrics
        .wait_for_metric(
            "gateway",
            HTTP_SERVER_REQUEST_DURATION,
            PATIENCE,
            |points| {
                [200, 404].iter().all(|status| {
                    points.iter().any(|p| {
                        p.attr_str("http.route") == Some("/api/orders/{orderId}")
                            && p.attributes
                                .get("http.response.status_code")
                                .map(ToString::to_string)
                                == Some(status.to_string())
                    })
                })
            },
        )
        .await
        .expect("the order-status requests are measured");
    let asked = metrics
        .wait_for_metric(
            "gateway",
            HTTP_CLIENT_REQUEST_DURATION,
            PATIENCE,
            |points| {
                points
                    .iter()
                    .any(|p| p.attr_str("url.template") == Some("/api/orders/{orderId}"))
            },
        )
        .await
        .expect("the calls to stock-service are measured");
    for point in served.iter().chain(&asked) {
        let shown = format!("{:?}", point.attributes);
        assert!(!shown.contains(&order_id), "{shown}");
    }
    assert!(
        asked
            .iter()
            .all(|p| p.attr_str("server.address") == Some("127.0.0.1"))
    );
    pipeline.shut_down().await;
}

fn gateway_server(spans: &[ReceivedSpan]) -> &ReceivedSpan {
    span_of(spans, "gateway", SpanKind::Server)
}

/// An export as `@opentelemetry/exporter-trace-otlp-http` sends it (JSON:
/// hex ids, camelCase, 64-bit integers as strings), in trace `trace_id`:
/// a root INTERNAL span and a CLIENT span under it, in another service's
/// name.
fn js_export(trace_id: &str) -> String {
    json!({"resourceSpans": [{
        "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "stock-service"}},
            {"key": "telemetry.sdk.language", "value": {"stringValue": "webjs"}}
        ], "droppedAttributesCount": 0},
        "scopeSpans": [{
            "scope": {"name": "storefront"},
            "spans": [
                {"traceId": trace_id, "spanId": "1111111111111111", "name": "click Buy",
                 "kind": 1, "startTimeUnixNano": "1718000000000000000",
                 "endTimeUnixNano": "1718000000300000000", "attributes": [],
                 "droppedAttributesCount": 0, "events": [], "droppedEventsCount": 0,
                 "status": {"code": 0}, "links": [], "droppedLinksCount": 0, "flags": 257},
                {"traceId": trace_id, "spanId": "2222222222222222",
                 "parentSpanId": "1111111111111111", "name": "HTTP POST", "kind": 3,
                 "startTimeUnixNano": "1718000000001000000",
                 "endTimeUnixNano": "1718000000123000000",
                 "attributes": [{"key": "http.status_code", "value": {"intValue": 202}}],
                 "droppedAttributesCount": 0, "events": [], "droppedEventsCount": 0,
                 "status": {"code": 0}, "links": [], "droppedLinksCount": 0, "flags": 257}
            ]
        }]
    }]})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_forwards_a_browsers_json_export_as_storefront() {
    let pipeline = TestPipeline::start().await;
    let trace_id = new_trace_id();
    let response = pipeline
        .http
        .post(format!("{}/v1/traces", pipeline.gateway_url))
        .header("content-type", "application/json")
        .body(js_export(&trace_id))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "{}");

    let spans = pipeline
        .receiver
        .store()
        .wait_for_trace(&trace_id, PATIENCE, |spans| spans.len() >= 2)
        .await
        .expect("the relayed spans arrive");
    assert_eq!(spans.len(), 2, "no span of the relay's own: {spans:#?}");
    assert!(spans.iter().all(|span| span.service_name == "storefront"));
    let root = spans.iter().find(|span| span.is_root()).unwrap();
    assert_eq!(root.kind, SpanKind::Internal);
    let fetch = spans
        .iter()
        .find(|span| span.kind == SpanKind::Client)
        .unwrap();
    assert_eq!(fetch.parent_span_id.as_ref(), Some(&root.span_id));

    // Nothing of the gateway's own about the export.
    pipeline.flush_telemetry().await;
    let relay_spans: Vec<_> = pipeline
        .receiver
        .store()
        .all()
        .into_iter()
        .filter(|span| span.service_name == "gateway" && span.name.contains("/v1/traces"))
        .collect();
    assert!(relay_spans.is_empty(), "{relay_spans:#?}");
    pipeline.shut_down().await;
}
