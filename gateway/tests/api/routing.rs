//! What the router serves besides checkouts: 404 for unknown paths, 405 with
//! `Allow` for a wrong method, the health probes, and the OpenAPI document,
//! whose documented statuses and limits must match what the gateway does.

use contracts::limits::{MAX_LINE_ITEMS, MAX_QUANTITY};
use http::{StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{CHECKOUT, assert_error, get};

#[tokio::test]
async fn an_unknown_path_is_404_not_found() {
    let (status, _, body) = get("/nope").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn get_on_checkout_is_405_method_not_allowed_with_allow_post() {
    let (status, headers, body) = get(CHECKOUT).await;
    assert_error(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    assert_eq!(headers[header::ALLOW], "POST");
}

#[tokio::test]
async fn healthz_is_200_ok_without_checkout_service() {
    let (status, _, body) = get("/healthz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"status": "ok"}));
}

#[tokio::test]
async fn readyz_is_503_not_ready_with_retry_after_without_checkout_service() {
    let (status, headers, body) = get("/readyz").await;
    assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "not_ready");
    assert!(headers.contains_key(header::RETRY_AFTER), "{headers:?}");
}

async fn openapi() -> Value {
    let (status, _, body) = get("/openapi.json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn openapi_documents_every_status_of_checkout() {
    let document = openapi().await;
    let responses = &document["paths"][CHECKOUT]["post"]["responses"];
    for status in ["202", "400", "401", "413", "415", "422", "503", "504"] {
        assert!(
            responses[status].is_object(),
            "{status} is documented: {responses}"
        );
    }
}

#[tokio::test]
async fn openapi_limits_are_the_enforced_limits() {
    let document = openapi().await;
    let schemas = &document["components"]["schemas"];
    for list in ["items", "itemsID"] {
        let max_items = &schemas["CheckoutBody"]["properties"][list]["maxItems"];
        assert_eq!(
            max_items.as_u64(),
            Some(MAX_LINE_ITEMS as u64),
            "CheckoutBody.{list}.maxItems: {max_items}"
        );
    }
    let maximum = &schemas["LineItemBody"]["properties"]["quantity"]["maximum"];
    assert_eq!(
        maximum.as_f64(),
        Some(f64::from(MAX_QUANTITY)),
        "LineItemBody.quantity.maximum: {maximum}"
    );
}
