//! Bad input that only the whole pipeline can judge gets the documented
//! status and a JSON error body: an unknown item (checkout-service's call),
//! trace headers the gateway must ignore, headers hyper refuses. The failures
//! that are the server's (checkout-service gone, no queue to route to, a
//! deadline, too many checkouts in flight) get a 503 or 504, the first two
//! recorded as error spans. What the gateway decides alone (malformed JSON,
//! the limits, content type, `Idempotency-Key`, 404, 405, the OpenAPI
//! document) is tested in-process by the gateway's `tests/api`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::{sync::Arc, time::Duration};

use tokio::sync::Notify;

use e2e::{Isolation, TestPipeline};
use reqwest::{StatusCode, header};
use serde_json::{Value, json};
use testkit::receiver::{SpanKind, SpanStatus};

async fn send(request: reqwest::RequestBuilder) -> (StatusCode, header::HeaderMap, Value) {
    let response = request.send().await.expect("gateway answers");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json().await.expect("a JSON body");
    (status, headers, body)
}

/// Posts `{"itemsID":[1]}` to the gateway at `addr`.
async fn post_one_checkout(addr: std::net::SocketAddr) -> (StatusCode, header::HeaderMap, Value) {
    send(
        reqwest::Client::new()
            .post(format!("http://{addr}/api/checkout"))
            .json(&json!({"itemsID": [1]})),
    )
    .await
}

/// An OTLP receiver for a test that starts services by hand.
async fn start_receiver() -> testkit::receiver::OtlpReceiver {
    testkit::receiver::OtlpReceiver::start(([127, 0, 0, 1], 0).into(), None)
        .await
        .expect("OTLP receiver starts")
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_reaching_the_pipeline_gets_clear_json_errors() {
    let pipeline = TestPipeline::start().await;
    let url = format!("{}/api/checkout", pipeline.gateway_url);
    let http = &pipeline.http;

    // An unknown item is checkout-service's to refuse: it owns the catalog.
    let (status, _, body) = send(http.post(&url).json(&json!({"itemsID": [1, 99]}))).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_item",
    );

    // Oversized, malformed trace headers are ignored: the checkout goes
    // through in a trace of its own.
    let (status, _, body) = send(
        http.post(&url)
            .header("traceparent", "00-".repeat(4000))
            .header("baggage", format!("k={}", "v".repeat(16_000)))
            .json(&json!({"itemsID": [1]})),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "bad trace headers are ignored: {body}"
    );
    assert_ne!(body["traceId"], "00000000000000000000000000000000");

    // Past hyper's header limits the connection is refused with a 4xx, and
    // the gateway keeps serving.
    let huge = http
        .post(&url)
        .header("x-padding", "p".repeat(1024 * 1024))
        .json(&json!({"itemsID": [1]}))
        .send()
        .await;
    if let Ok(response) = huge {
        assert!(response.status().is_client_error(), "{}", response.status());
    }

    // With the whole pipeline up, the gateway is ready.
    let ready = http
        .get(format!("{}/readyz", pipeline.gateway_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), StatusCode::OK);

    // Only the one valid checkout above reached the broker.
    let order = pipeline.stock(1).await;
    assert!(
        order >= 999,
        "at most one unit of item 1 was ordered, {order} left"
    );
    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_service_down_gives_503_and_error_spans() {
    let mut pipeline = TestPipeline::start().await;
    pipeline
        .service("checkout-service")
        .stop()
        .expect("checkout-service stops");

    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let started = std::time::Instant::now();
    let (status, body) = pipeline
        .checkout(
            &json!({"itemsID": [1]}),
            &[("traceparent", &format!("00-{trace_id}-b7ad6b7169203331-01"))],
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered within the deadline's order of magnitude, not hung"
    );

    let spans = pipeline
        .wait_for_trace(trace_id, |spans| {
            spans.iter().any(|s| s.kind == SpanKind::Server)
                && spans.iter().any(|s| s.kind == SpanKind::Client)
        })
        .await;
    let server = spans.iter().find(|s| s.kind == SpanKind::Server).unwrap();
    let client = spans.iter().find(|s| s.kind == SpanKind::Client).unwrap();
    assert_eq!(server.attr_i64("http.response.status_code"), Some(503));
    assert!(
        matches!(server.status, SpanStatus::Error { .. }),
        "{server:?}"
    );
    assert!(
        matches!(client.status, SpanStatus::Error { .. }),
        "{client:?}"
    );
    assert_eq!(client.attr_i64("rpc.grpc.status_code"), Some(14)); // UNAVAILABLE

    // Alive, but not ready.
    let get = |path: &str| {
        pipeline
            .http
            .get(format!("{}{path}", pipeline.gateway_url))
            .send()
    };
    assert_eq!(get("/healthz").await.unwrap().status(), StatusCode::OK);
    let (status, _, body) = send(
        pipeline
            .http
            .get(format!("{}/readyz", pipeline.gateway_url)),
    )
    .await;
    assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "not_ready");
    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_order_is_a_503_not_a_silent_drop() {
    // checkout-service publishing to an exchange with no queue bound.
    let receiver = start_receiver().await;
    let isolation = Isolation::new();
    let endpoint = receiver.grpc_endpoint();
    let checkout = e2e::start_checkout_service(
        &endpoint,
        e2e::DEFAULT_TELEMETRY,
        &isolation,
        e2e::LOCALHOST_ANY_PORT,
    )
    .unwrap();
    let gateway = e2e::start_gateway(
        &endpoint,
        e2e::DEFAULT_TELEMETRY,
        e2e::gateway_settings(checkout.addr),
    )
    .unwrap();

    let (status, _, body) = post_one_checkout(gateway.addr).await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    );

    checkout.flush();
    let spans = receiver
        .store()
        .wait_for(e2e::PATIENCE, |spans| {
            spans.iter().any(|s| s.kind == SpanKind::Producer)
        })
        .await
        .expect("the failed publish is traced");
    let producer = spans.iter().find(|s| s.kind == SpanKind::Producer).unwrap();
    assert!(matches!(&producer.status, SpanStatus::Error { message } if message.contains("route")));

    drop((gateway, checkout));
    isolation.clean_up().await;
}

/// A real gRPC checkout server that never answers in time; `arrived` is
/// notified when a call reaches it.
async fn serve_slow(arrived: Arc<Notify>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(contracts::grpc::checkout_server::CheckoutServer::new(
                Slow { arrived },
            ))
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );
    addr
}

struct Slow {
    arrived: Arc<Notify>,
}

#[tonic::async_trait]
impl contracts::grpc::checkout_server::Checkout for Slow {
    async fn do_checkout(
        &self,
        _: tonic::Request<contracts::grpc::CheckoutRequest>,
    ) -> Result<tonic::Response<contracts::grpc::CheckoutResponse>, tonic::Status> {
        self.arrived.notify_one();
        tokio::time::sleep(Duration::from_secs(60)).await;
        Err(tonic::Status::internal("unreachable"))
    }

    async fn list_items(
        &self,
        _: tonic::Request<contracts::grpc::ListItemsRequest>,
    ) -> Result<tonic::Response<contracts::grpc::ListItemsResponse>, tonic::Status> {
        self.arrived.notify_one();
        tokio::time::sleep(Duration::from_secs(60)).await;
        Err(tonic::Status::internal("unreachable"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_checkout_service_gives_504_at_the_deadline() {
    let slow_addr = serve_slow(Arc::default()).await;
    let receiver = start_receiver().await;
    let mut settings = e2e::gateway_settings(slow_addr);
    settings.checkout_deadline = Duration::from_millis(300);
    let gateway =
        e2e::start_gateway(&receiver.grpc_endpoint(), e2e::DEFAULT_TELEMETRY, settings).unwrap();

    let (status, _, body) = post_one_checkout(gateway.addr).await;
    assert_error(
        status,
        &body,
        StatusCode::GATEWAY_TIMEOUT,
        "deadline_exceeded",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_concurrency_limit_checkouts_are_shed_with_503_and_retry_after() {
    let arrived = Arc::new(Notify::new());
    let slow_addr = serve_slow(arrived.clone()).await;
    let receiver = start_receiver().await;
    let mut settings = e2e::gateway_settings(slow_addr);
    settings.max_concurrent_checkouts = 1;
    settings.checkout_deadline = Duration::from_secs(30);
    settings.request_timeout = Duration::from_secs(30);
    let gateway =
        e2e::start_gateway(&receiver.grpc_endpoint(), e2e::DEFAULT_TELEMETRY, settings).unwrap();
    let url = format!("http://{}/api/checkout", gateway.addr);
    let http = reqwest::Client::new();

    // The one allowed checkout is now in flight, held by the slow server.
    let first = tokio::spawn(http.post(&url).json(&json!({"itemsID": [1]})).send());
    tokio::time::timeout(e2e::PATIENCE, arrived.notified())
        .await
        .expect("the first checkout reached checkout-service");

    let (status, headers, body) = send(http.post(&url).json(&json!({"itemsID": [2]}))).await;
    assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    assert_eq!(headers[header::RETRY_AFTER], "1");

    // Health checks are not shed.
    let health = http
        .get(format!("http://{}/healthz", gateway.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    first.abort();
}
