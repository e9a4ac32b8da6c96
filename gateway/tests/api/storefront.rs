//! The storefront's routes, in-process: the page and its headers,
//! `/config.json`, every refusal of the span relay, and the API routes the
//! page calls, answered without checkout-service or stock-service.

use axum::{Router, body::Body};
use contracts::limits::{MAX_RELAY_BODY_BYTES, MAX_RELAY_SPANS};
use gateway::storefront::page::CONTENT_SECURITY_POLICY;
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    trace::v1::{ResourceSpans, ScopeSpans, Span},
};
use prost::Message;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::helpers::{assert_error, get, router, router_with_relay, router_with_stock, send_to};

/// Sends `request` to `router`; the status, headers and raw body.
async fn raw(router: Router, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
    let response = router.oneshot(request).await.expect("infallible");
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("a body").to_bytes();
    (parts.status, parts.headers, bytes.to_vec())
}

fn get_request(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn the_page_and_its_assets_carry_the_security_and_cache_headers() {
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/app.css", "text/css; charset=utf-8"),
    ] {
        let (status, headers, body) = raw(router().await, get_request(path)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(!body.is_empty(), "{path}");
        assert_eq!(headers[header::CONTENT_TYPE], content_type, "{path}");
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
             img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        );
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");

        // The browser's copy is current: a 304 without the body.
        let etag = headers[header::ETAG].clone();
        let revalidate = Request::get(path)
            .header(header::IF_NONE_MATCH, etag.clone())
            .body(Body::empty())
            .unwrap();
        let (status, headers, body) = raw(router().await, revalidate).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{path}");
        assert!(body.is_empty());
        assert_eq!(headers[header::ETAG], etag);
        assert_eq!(
            headers[header::CONTENT_SECURITY_POLICY],
            CONTENT_SECURITY_POLICY
        );
    }
}

#[tokio::test]
async fn config_json_names_the_jaeger_ui() {
    let (status, headers, body) = get("/config.json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"jaegerUrl": "http://localhost:16686"}));
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
}

/// A `POST /v1/traces` with this content type and body.
fn export(content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::post("/v1/traces")
        .header(header::CONTENT_TYPE, content_type)
        .body(body.into())
        .unwrap()
}

/// An export of `spans` spans, protobuf-encoded.
fn protobuf_export(spans: usize) -> Vec<u8> {
    let span = Span {
        trace_id: vec![7; 16],
        span_id: vec![9; 8],
        name: "click".to_owned(),
        ..Span::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span; spans],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
    .encode_to_vec()
}

async fn relay(request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    send_to(router_with_relay(true, 100).await, request).await
}

#[tokio::test]
async fn the_relay_takes_otlp_protobuf_or_json_only() {
    let (status, _, body) = relay(export("text/plain", "spans")).await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let gzipped = Request::post("/v1/traces")
        .header(header::CONTENT_TYPE, "application/x-protobuf")
        .header(header::CONTENT_ENCODING, "gzip")
        .body(Body::from(vec![0x1f, 0x8b]))
        .unwrap();
    let (status, _, body) = relay(gzipped).await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
}

#[tokio::test]
async fn an_oversized_export_is_413() {
    let body = vec![b' '; MAX_RELAY_BODY_BYTES + 1];
    let (status, _, body) = relay(export("application/json", body)).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
}

#[tokio::test]
async fn a_malformed_export_is_400() {
    for (content_type, body) in [
        (
            "application/x-protobuf",
            b"\xff\xff\xff not protobuf".to_vec(),
        ),
        ("application/json", b"{\"resourceSpans\": [".to_vec()),
        ("application/json", b"{\"resourceSpans\": 3}".to_vec()),
    ] {
        let (status, _, body) = relay(export(content_type, body)).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "malformed_otlp");
    }
}

#[tokio::test]
async fn an_export_of_too_many_spans_is_413() {
    let body = protobuf_export(MAX_RELAY_SPANS + 1);
    assert!(body.len() < MAX_RELAY_BODY_BYTES);
    let (status, _, body) = relay(export("application/x-protobuf", body)).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_many_spans",
    );
}

#[tokio::test]
async fn a_valid_export_to_an_unreachable_collector_is_503() {
    let (status, headers, body) = relay(export("application/x-protobuf", protobuf_export(2))).await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "collector_unavailable",
    );
    assert!(headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn with_traces_off_the_relay_is_404() {
    let router = router_with_relay(false, 100).await;
    let (status, _, body) =
        send_to(router, export("application/x-protobuf", protobuf_export(1))).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "traces_not_exported");
}

#[tokio::test]
async fn past_the_rate_limit_exports_are_429_with_retry_after() {
    // 1 a second: a burst of 2, then refusals, whatever the bodies are.
    let router = router_with_relay(true, 1).await;
    for _ in 0..2 {
        let (status, _, body) = send_to(router.clone(), export("text/plain", "x")).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    }
    let (status, headers, body) = send_to(router, export("text/plain", "x")).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry_after: u64 = headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
}

#[tokio::test]
async fn an_order_id_that_is_not_a_uuid_is_400_without_asking_stock_service() {
    let (status, _, body) = get("/api/orders/not-a-uuid").await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_order_id");
}

#[tokio::test]
async fn without_stock_service_an_order_status_is_503_with_retry_after() {
    let (status, headers, body) = get("/api/orders/5f0c6e2a-8d1b-4a57-9a43-1f2d3c4b5a69").await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    );
    assert!(headers.contains_key(header::RETRY_AFTER));
}

#[tokio::test]
async fn without_checkout_service_the_catalog_is_503() {
    let (status, _, body) = get("/api/catalog").await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    );
}

#[tokio::test]
async fn openapi_documents_the_pages_api() {
    let (_, _, document) = get("/openapi.json").await;
    let paths = &document["paths"];
    for status in ["200", "503", "504"] {
        assert!(paths["/api/catalog"]["get"]["responses"][status].is_object());
    }
    for status in ["200", "400", "404", "502", "503", "504"] {
        assert!(
            paths["/api/orders/{orderId}"]["get"]["responses"][status].is_object(),
            "{status}"
        );
    }
    assert!(
        paths.get("/v1/traces").is_none(),
        "the relay is not JSON API"
    );
    assert!(document["components"]["schemas"]["CatalogBody"].is_object());
}

/// A stand-in for stock-service on a free port whose order route answers
/// `status` with `body` after `delay`; its base URL.
async fn fake_stock_service(
    status: StatusCode,
    body: &'static str,
    delay: std::time::Duration,
) -> String {
    let app = Router::new().route(
        "/api/orders/{order_id}",
        axum::routing::get(move || async move {
            tokio::time::sleep(delay).await;
            (status, [(header::CONTENT_TYPE, "application/json")], body)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

const SOME_ORDER: &str = "/api/orders/5f0c6e2a-8d1b-4a57-9a43-1f2d3c4b5a69";

#[tokio::test]
async fn stock_services_answer_is_passed_on_as_it_is() {
    let not_yet =
        r#"{"error":{"code":"not_found","message":"order 5f0c… has not been processed"}}"#;
    let stock = fake_stock_service(StatusCode::NOT_FOUND, not_yet, Default::default()).await;
    let (status, headers, body) =
        send_to(router_with_stock(&stock).await, get_request(SOME_ORDER)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, serde_json::from_str::<Value>(not_yet).unwrap());
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
}

#[tokio::test]
async fn an_answer_that_is_not_stock_services_json_is_502() {
    let stock = fake_stock_service(StatusCode::OK, "<html>proxy</html>", Default::default()).await;
    let (status, _, body) = send_to(router_with_stock(&stock).await, get_request(SOME_ORDER)).await;
    assert_error(status, &body, StatusCode::BAD_GATEWAY, "upstream_error");
}

#[tokio::test]
async fn a_stock_service_that_does_not_answer_in_time_is_504() {
    let slow = gateway::stock_client::ORDER_STATUS_TIMEOUT * 3;
    let stock = fake_stock_service(StatusCode::OK, "{}", slow).await;
    let (status, _, body) = send_to(router_with_stock(&stock).await, get_request(SOME_ORDER)).await;
    assert_error(
        status,
        &body,
        StatusCode::GATEWAY_TIMEOUT,
        "deadline_exceeded",
    );
}
