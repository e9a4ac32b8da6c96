//! Requests the gateway refuses on its own, before any gRPC call: malformed
//! JSON, carts outside the limits of `contracts::limits`, the wrong content
//! type, an oversized body and bad `Idempotency-Key` headers. Each gets its
//! documented status and JSON error code.

use axum::body::Body;
use contracts::limits::{MAX_BODY_BYTES, MAX_IDEMPOTENCY_KEY_LEN, MAX_LINE_ITEMS, MAX_QUANTITY};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::helpers::{CHECKOUT, assert_error, checkout_request, post_json, send};

#[tokio::test]
async fn malformed_json_is_400_malformed_json() {
    for body in [
        "{not json",
        r#"{"items":[{"id":"one"}]}"#,
        r#"{"itemsID":"1"}"#,
        // One past u32: no i32 quantity.
        r#"{"items":[{"id":1,"quantity":4294967296}]}"#,
    ] {
        let (status, _, answer) = post_json(body).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "malformed_json");
    }
}

#[tokio::test]
async fn invalid_utf8_in_the_body_is_400_malformed_json() {
    let (status, _, answer) = post_json(&b"{\"itemsID\":[1],\"x\":\"\xff\"}"[..]).await;
    assert_error(status, &answer, StatusCode::BAD_REQUEST, "malformed_json");
}

#[tokio::test]
async fn empty_carts_are_400_invalid_cart() {
    for body in ["{}", r#"{"items":[]}"#, r#"{"itemsID":[]}"#] {
        let (status, _, answer) = post_json(body).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "invalid_cart");
    }
}

#[tokio::test]
async fn quantities_below_one_are_400_invalid_cart() {
    for quantity in [0, -3] {
        let body = json!({"items": [{"id": 1, "quantity": quantity}]});
        let (status, _, answer) = post_json(body.to_string()).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "invalid_cart");
    }
}

#[tokio::test]
async fn more_than_the_most_line_items_is_400_invalid_cart() {
    let body = json!({"itemsID": vec![1; MAX_LINE_ITEMS + 1]});
    let (status, _, answer) = post_json(body.to_string()).await;
    assert_error(status, &answer, StatusCode::BAD_REQUEST, "invalid_cart");
}

#[tokio::test]
async fn a_quantity_over_the_limit_is_400_invalid_cart() {
    let body = json!({"items": [{"id": 1, "quantity": MAX_QUANTITY + 1}]});
    let (status, _, answer) = post_json(body.to_string()).await;
    assert_error(status, &answer, StatusCode::BAD_REQUEST, "invalid_cart");
}

#[tokio::test]
async fn lines_of_one_item_summing_over_the_limit_are_400_invalid_cart() {
    let body = json!({"items": [{"id": 1, "quantity": MAX_QUANTITY}, {"id": 1, "quantity": 1}]});
    let (status, _, answer) = post_json(body.to_string()).await;
    assert_error(status, &answer, StatusCode::BAD_REQUEST, "invalid_cart");
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_payload_too_large() {
    let pad = "x".repeat(MAX_BODY_BYTES + 1);
    let body = json!({"itemsID": [1], "pad": pad});
    let (status, _, answer) = post_json(body.to_string()).await;
    assert_error(
        status,
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
}

#[tokio::test]
async fn a_content_type_other_than_json_is_415_unsupported_media_type() {
    let request = http::Request::post(CHECKOUT)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(r#"{"itemsID":[1]}"#))
        .unwrap();
    let (status, _, answer) = send(request).await;
    assert_error(
        status,
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
}

#[tokio::test]
async fn bad_idempotency_keys_are_400_invalid_idempotency_key() {
    for key in [
        HeaderValue::from_static("has space"),
        HeaderValue::from_bytes(b"k\xff").unwrap(),
        HeaderValue::try_from("k".repeat(MAX_IDEMPOTENCY_KEY_LEN + 1)).unwrap(),
    ] {
        let request = checkout_request()
            .header("idempotency-key", key)
            .body(Body::from(r#"{"itemsID":[1]}"#))
            .unwrap();
        let (status, _, answer) = send(request).await;
        assert_error(
            status,
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_idempotency_key",
        );
    }
}
