//! Shared helpers: the gateway's router in-process (without API keys, or
//! with [`API_KEYS`]), a way to send it one request and read the answer, and
//! the check of the JSON error body.

use std::time::Duration;

use axum::{Router, body::Body};
use gateway::{
    Settings,
    auth::ApiKeys,
    checkout_client::{CheckoutClient, CheckoutTargets},
    startup::router as gateway_router,
    state::AppState,
    stock_client::{StockClient, parse_stock_url},
    storefront::Storefront,
};
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::Value;
use service::configuration::Configuration;
use telemetry::{OtlpHeaders, OtlpProtocol, SpanForwarder};
use tower::ServiceExt;

/// The checkout route.
pub const CHECKOUT: &str = "/api/checkout";

/// Where checkout-service is supposed to be: port 1 on loopback, where
/// nothing listens, so a call fails at once with "connection refused" and
/// nothing leaves the machine.
const UNREACHABLE_CHECKOUT_SERVICE: &str = "http://127.0.0.1:1";

/// Where stock-service and the trace collector are supposed to be: the same
/// port where nothing listens.
pub const UNREACHABLE: &str = "http://127.0.0.1:1";

/// The `API_KEYS` of [`router_with_api_keys`]: two clients, one with two
/// keys.
pub const API_KEYS: &str =
    "shop=shop-key-0123456789,app=app-key-0123456789,shop=shop-new-key-0123456789";

/// The gateway's router with its default settings, and checkout-service
/// and stock-service clients that cannot connect.
pub async fn router() -> Router {
    router_with(Settings::defaults()).await
}

/// [`router`] with [`API_KEYS`] configured.
pub async fn router_with_api_keys() -> Router {
    let mut settings = Settings::defaults();
    settings.api_keys = Some(ApiKeys::parse(API_KEYS).expect("valid API keys"));
    router_with(settings).await
}

/// [`router`] whose span relay forwards to a collector that does not answer
/// (or, with `exporting` false, whose traces are off), taking
/// `relay_rate` exports a second.
pub async fn router_with_relay(exporting: bool, relay_rate: usize) -> Router {
    let mut settings = Settings::defaults();
    settings.trace_relay_rate_limit = relay_rate;
    settings.stock_service_url = parse_stock_url(UNREACHABLE).expect("a valid URL");
    let forwarder = exporting.then(|| {
        SpanForwarder::new(
            UNREACHABLE,
            OtlpProtocol::Grpc,
            Duration::from_secs(1),
            &OtlpHeaders::default(),
        )
        .expect("a valid endpoint")
    });
    router_from(settings, forwarder).await
}

/// [`router`] asking the stock-service at `stock_url` for order status.
pub async fn router_with_stock(stock_url: &str) -> Router {
    let mut settings = Settings::defaults();
    settings.stock_service_url = parse_stock_url(stock_url).expect("a valid URL");
    router_from(settings, None).await
}

async fn router_with(mut settings: Settings) -> Router {
    settings.stock_service_url = parse_stock_url(UNREACHABLE).expect("a valid URL");
    router_from(settings, None).await
}

async fn router_from(mut settings: Settings, forwarder: Option<SpanForwarder>) -> Router {
    settings.checkout_service_address =
        CheckoutTargets::parse(UNREACHABLE_CHECKOUT_SERVICE).expect("a valid endpoint URL");

    let checkout = CheckoutClient::start(
        &settings.checkout_service_address,
        settings.checkout_deadline,
        settings.checkout_refresh(),
    )
    .await;
    let state = AppState {
        checkout,
        api_keys: settings.api_keys.clone(),
        stock: StockClient::new(settings.stock_service_url.clone()),
        storefront: Storefront::new(
            &settings.jaeger_ui_url,
            forwarder,
            settings.trace_relay_rate_limit,
        ),
    };
    gateway_router(state, &settings)
}

/// Sends `request` to a fresh router and returns the status, the headers and
/// the body, which must be JSON.
pub async fn send(request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    send_to(router().await, request).await
}

/// Sends `request` to `router`; see [`send`].
pub async fn send_to(router: Router, request: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let response = router
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .expect("the body can be read")
        .to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or_else(|error| {
        panic!(
            "{} answered a body that is not JSON ({error}): {}",
            parts.status,
            String::from_utf8_lossy(&bytes)
        )
    });
    (parts.status, parts.headers, json)
}

/// A `POST /api/checkout` with an `application/json` content type; add
/// headers, then a body.
pub fn checkout_request() -> http::request::Builder {
    Request::post(CHECKOUT).header(header::CONTENT_TYPE, "application/json")
}

/// Posts `body` to `/api/checkout` as JSON.
pub async fn post_json(body: impl Into<Body>) -> (StatusCode, HeaderMap, Value) {
    send(checkout_request().body(body.into()).unwrap()).await
}

/// Sends `GET path`.
pub async fn get(path: &str) -> (StatusCode, HeaderMap, Value) {
    send(Request::get(path).body(Body::empty()).unwrap()).await
}

/// Checks an error answer: the expected status, and the body
/// `{"error":{"code":code,"message":…}}` with a message that is not empty.
#[track_caller]
pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|message| !message.is_empty()),
        "the error has a message: {body}"
    );
}
