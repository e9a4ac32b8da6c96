//! Demo fault injection: through the admin endpoints, make
//! checkout-service fail or slow down and stock-service slow down, and see it
//! in the answers and on the spans; and the admin endpoints are served only
//! when `FAULT_ADMIN_TOKEN` is set, on a port of their own, to callers with
//! the token.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use e2e::{ADMIN_TOKEN, Isolation, TestPipeline};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::receiver::{SpanKind, SpanStatus};

/// `http://ADDR` of the admin endpoint of service `name`.
fn admin_url(pipeline: &mut TestPipeline, name: &str) -> String {
    let addr = pipeline
        .service(name)
        .admin_addr
        .unwrap_or_else(|| panic!("{name} has an admin endpoint"));
    format!("http://{addr}")
}

async fn put_faults(http: &reqwest::Client, base: &str, faults: Value) -> (StatusCode, Value) {
    let response = http
        .put(format!("{base}/admin/faults"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&faults)
        .send()
        .await
        .expect("admin endpoint answers");
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_failures_and_delays_are_answered_and_marked_on_spans() {
    let mut pipeline = TestPipeline::start().await;
    let checkout_admin = admin_url(&mut pipeline, "checkout-service");
    let stock_admin = admin_url(&mut pipeline, "stock-service");
    let http = pipeline.http.clone();

    // Off by default.
    let current: Value = http
        .get(format!("{checkout_admin}/admin/faults"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        current,
        json!({"failureRate": 0.0, "delayMs": 0, "delayRate": 0.0})
    );

    // Every checkout fails: 503, and the checkout-service span says why.
    let (status, _) = put_faults(&http, &checkout_admin, json!({"failureRate": 1.0})).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = pipeline.checkout(&json!({"itemsID": [1]}), &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    // Every checkout is slowed down by 300 ms, and every delivery by 200 ms.
    put_faults(
        &http,
        &checkout_admin,
        json!({"delayMs": 300, "delayRate": 1.0}),
    )
    .await;
    let (status, _) = put_faults(
        &http,
        &stock_admin,
        json!({"delayMs": 200, "delayRate": 1.0}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = pipeline.checkout(&json!({"itemsID": [2]}), &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let trace_id = body["traceId"].as_str().unwrap().to_owned();
    pipeline
        .wait_for_order(body["orderId"].as_str().unwrap())
        .await;

    let spans = pipeline
        .wait_for_trace(&trace_id, |spans| {
            spans.iter().any(|s| s.kind == SpanKind::Consumer)
        })
        .await;
    let server = spans
        .iter()
        .find(|s| s.service_name == "checkout-service" && s.kind == SpanKind::Server)
        .unwrap();
    assert_eq!(server.attr_str("fault.injected"), Some("delay"));
    assert_eq!(server.attr_i64("fault.delay_ms"), Some(300));
    assert!(server.duration().as_millis() >= 300);
    let consumer = spans.iter().find(|s| s.kind == SpanKind::Consumer).unwrap();
    assert_eq!(consumer.attr_str("fault.injected"), Some("delay"));
    assert!(consumer.duration().as_millis() >= 200);

    // The failed checkout's span is an error, marked as injected.
    pipeline.flush_telemetry().await;
    let failed = pipeline
        .receiver
        .store()
        .wait_for(e2e::PATIENCE, |spans| {
            spans
                .iter()
                .any(|s| s.attr_str("fault.injected") == Some("failure"))
        })
        .await
        .expect("the injected failure is traced");
    let failed = failed
        .iter()
        .find(|s| s.attr_str("fault.injected") == Some("failure"))
        .unwrap();
    assert!(matches!(failed.status, SpanStatus::Error { .. }));

    // Bad settings are refused; stock-service only injects delays.
    let (status, body) = put_faults(&http, &checkout_admin, json!({"failureRate": 2})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_faults");
    let (status, _) = put_faults(&http, &stock_admin, json!({"failureRate": 0.5})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    pipeline.shut_down().await;
}

/// `GET /admin/faults` at `base` with `token` as the bearer credential, if any.
async fn get_faults(http: &reqwest::Client, base: &str, token: Option<&str>) -> StatusCode {
    let mut request = http.get(format!("{base}/admin/faults"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("the port answers").status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_endpoints_need_the_token_and_their_own_port() {
    let mut pipeline = TestPipeline::start().await;
    let http = pipeline.http.clone();
    for name in ["checkout-service", "stock-service"] {
        let admin = admin_url(&mut pipeline, name);
        assert_eq!(
            get_faults(&http, &admin, None).await,
            StatusCode::UNAUTHORIZED,
            "{name}"
        );
        assert_eq!(
            get_faults(&http, &admin, Some("not-the-admin-token")).await,
            StatusCode::UNAUTHORIZED,
            "{name}"
        );
        assert_eq!(
            get_faults(&http, &admin, Some(ADMIN_TOKEN)).await,
            StatusCode::OK,
            "{name}"
        );
    }
    // Not on stock-service's public API port, token or not.
    assert_eq!(
        get_faults(&http, &pipeline.stock_url, Some(ADMIN_TOKEN)).await,
        StatusCode::NOT_FOUND
    );
    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_token_no_admin_endpoint_is_served() {
    let receiver = testkit::receiver::OtlpReceiver::start(([127, 0, 0, 1], 0).into(), None)
        .await
        .expect("OTLP receiver starts");
    let endpoint = receiver.grpc_endpoint();
    let isolation = Isolation::new();
    std::fs::create_dir_all(&isolation.dir).unwrap();

    let mut stock_settings = e2e::stock_settings(&isolation, 10);
    stock_settings.faults.fault_admin_token = None;
    let stock =
        e2e::start::<stock_service::Application>(stock_settings, &endpoint, e2e::DEFAULT_TELEMETRY)
            .unwrap();
    let mut checkout_settings = e2e::checkout_settings(&isolation, e2e::LOCALHOST_ANY_PORT);
    checkout_settings.faults.fault_admin_token = None;
    let checkout = e2e::start::<checkout_service::Application>(
        checkout_settings,
        &endpoint,
        e2e::DEFAULT_TELEMETRY,
    )
    .unwrap();

    // No admin port is bound (the start-up line reports none)...
    assert_eq!(checkout.admin_addr, None);
    assert_eq!(stock.admin_addr, None);
    // ...and the public port does not serve the routes either.
    let http = reqwest::Client::new();
    let stock_url = format!("http://{}", stock.addr);
    assert_eq!(
        get_faults(&http, &stock_url, Some(ADMIN_TOKEN)).await,
        StatusCode::NOT_FOUND
    );

    tokio::task::spawn_blocking(move || drop((checkout, stock)))
        .await
        .unwrap();
    isolation.clean_up().await;
}
