//! Demo fault injection: through the admin endpoints, make
//! checkout-service fail or slow down and stock-service slow down, and see it
//! in the answers and on the spans.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use checkout_cli::receiver::{SpanKind, SpanStatus};
use e2e::TestPipeline;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn put_faults(http: &reqwest::Client, base: &str, faults: Value) -> (StatusCode, Value) {
    let response = http
        .put(format!("{base}/admin/faults"))
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
    let checkout_admin = format!(
        "http://{}",
        pipeline
            .service("checkout-service")
            .admin_addr
            .expect("checkout-service has an admin endpoint")
    );
    let http = pipeline.http.clone();

    // Off by default.
    let current: Value = http
        .get(format!("{checkout_admin}/admin/faults"))
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
        &pipeline.stock_url,
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
    let (status, _) = put_faults(&http, &pipeline.stock_url, json!({"failureRate": 0.5})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    pipeline.shut_down().await;
}
