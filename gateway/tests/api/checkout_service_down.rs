//! A valid cart while checkout-service cannot be reached: the gateway passes
//! it on, and answers 503 `service_unavailable` with `Retry-After`, telling
//! the client to retry. Carts at the very edge of the limits get the same
//! answer, which shows they passed the gateway's validation.

use axum::body::Body;
use contracts::limits::{MAX_IDEMPOTENCY_KEY_LEN, MAX_LINE_ITEMS, MAX_QUANTITY};
use http::{HeaderMap, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{assert_error, checkout_request, post_json, send};

#[track_caller]
fn assert_unavailable(status: StatusCode, headers: &HeaderMap, body: &Value) {
    assert_error(
        status,
        body,
        StatusCode::SERVICE_UNAVAILABLE,
        "service_unavailable",
    );
    assert!(headers.contains_key(header::RETRY_AFTER), "{headers:?}");
}

#[tokio::test]
async fn a_valid_cart_is_503_service_unavailable_with_retry_after() {
    let (status, headers, body) = post_json(r#"{"itemsID":[1]}"#).await;
    assert_unavailable(status, &headers, &body);
}

#[tokio::test]
async fn carts_and_keys_at_the_limits_pass_validation() {
    let most_lines: Vec<i32> = (1..).take(MAX_LINE_ITEMS).collect();
    for cart in [
        json!({"itemsID": most_lines}),
        json!({"items": [{"id": 1, "quantity": MAX_QUANTITY}]}),
        json!({"items": [{"id": 1, "quantity": MAX_QUANTITY - 1}], "itemsID": [1]}),
    ] {
        let (status, headers, body) = post_json(cart.to_string()).await;
        assert_unavailable(status, &headers, &body);
    }

    let request = checkout_request()
        .header("idempotency-key", "k".repeat(MAX_IDEMPOTENCY_KEY_LEN))
        .body(Body::from(r#"{"itemsID":[1]}"#))
        .unwrap();
    let (status, headers, body) = send(request).await;
    assert_unavailable(status, &headers, &body);
}
