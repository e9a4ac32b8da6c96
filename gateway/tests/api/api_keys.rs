//! API keys at the gateway: with `API_KEYS` set, a checkout without a known
//! key in `Authorization: Bearer <key>` is a 401 `unauthorized` with a
//! `WWW-Authenticate` challenge, before anything else is looked at; one with
//! a known key is passed on to checkout-service (unreachable here, hence the
//! 503); the health probes and the OpenAPI document stay open. Without
//! `API_KEYS` no key is asked for (the other tests of this binary).

use axum::body::Body;
use contracts::http::API_KEY_HEADER;
use http::{HeaderMap, Request, StatusCode, header};
use serde_json::Value;

use crate::helpers::{assert_error, checkout_request, router_with_api_keys, send_to};

/// Posts a valid cart with these extra headers to a router with API keys.
async fn checkout_with(headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Value) {
    let mut request = checkout_request();
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Body::from(r#"{"itemsID":[1]}"#)).unwrap();
    send_to(router_with_api_keys().await, request).await
}

#[track_caller]
fn assert_unauthorized(status: StatusCode, headers: &HeaderMap, body: &Value, challenge: &str) {
    assert_error(status, body, StatusCode::UNAUTHORIZED, "unauthorized");
    let sent = headers
        .get(header::WWW_AUTHENTICATE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_else(|| panic!("a 401 has WWW-Authenticate: {headers:?}"));
    assert_eq!(sent, challenge);
}

#[tokio::test]
async fn a_checkout_without_a_key_is_401_with_a_bearer_challenge() {
    let (status, headers, body) = checkout_with(&[]).await;
    assert_unauthorized(status, &headers, &body, r#"Bearer realm="checkout""#);
}

#[tokio::test]
async fn a_checkout_with_a_wrong_key_is_401_invalid_token() {
    for value in [
        "Bearer shop-key-012345678",
        "Bearer shop-key-01234567890",
        "Bearer app-key-0123456789x",
        "Bearer ",
        "Bearer",
        "Basic shop-key-0123456789",
        "shop-key-0123456789",
    ] {
        let (status, headers, body) = checkout_with(&[(API_KEY_HEADER, value)]).await;
        assert_unauthorized(
            status,
            &headers,
            &body,
            r#"Bearer realm="checkout", error="invalid_token""#,
        );
        assert!(
            !body.to_string().contains("key-01234"),
            "the answer quotes no key: {body}"
        );
    }
}

#[tokio::test]
async fn a_checkout_with_a_right_key_is_passed_on_to_checkout_service() {
    for value in [
        "Bearer shop-key-0123456789",
        "Bearer shop-new-key-0123456789",
        "bearer app-key-0123456789",
    ] {
        let (status, headers, body) = checkout_with(&[(API_KEY_HEADER, value)]).await;
        assert_error(
            status,
            &body,
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
        );
        assert!(!headers.contains_key(header::WWW_AUTHENTICATE));
    }
}

#[tokio::test]
async fn the_key_is_checked_before_the_body() {
    let request = checkout_request().body(Body::from("{not json")).unwrap();
    let (status, headers, body) = send_to(router_with_api_keys().await, request).await;
    assert_unauthorized(status, &headers, &body, r#"Bearer realm="checkout""#);
}

#[tokio::test]
async fn health_and_the_openapi_document_need_no_key() {
    for path in ["/healthz", "/openapi.json"] {
        let request = Request::get(path).body(Body::empty()).unwrap();
        let (status, _, body) = send_to(router_with_api_keys().await, request).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    let request = Request::get("/readyz").body(Body::empty()).unwrap();
    let (status, _, body) = send_to(router_with_api_keys().await, request).await;
    assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE, "not_ready");
}

#[tokio::test]
async fn the_openapi_document_declares_the_optional_bearer_key() {
    let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let (_, _, document) = send_to(router_with_api_keys().await, request).await;
    let scheme = &document["components"]["securitySchemes"]["api_key"];
    assert_eq!(scheme["type"], "http", "{scheme}");
    assert_eq!(scheme["scheme"], "bearer", "{scheme}");
    let security = &document["paths"]["/api/checkout"]["post"]["security"];
    assert_eq!(
        security,
        &serde_json::json!([{}, {"api_key": []}]),
        "a key is optional (needed only with API_KEYS)"
    );
}
