//! The storefront: a page served by the gateway whose click starts the
//! trace in the browser.
//!
//! The page (`GET /`, its script and style under `/assets/`: [`page`]) is
//! built into the binary and runs the OpenTelemetry JS web SDK. A click on
//! Buy opens a span in the browser; the page's `fetch` of
//! `POST /api/checkout` is its child and carries its `traceparent` and
//! `baggage`, so the gateway's SERVER span, and everything after it down to
//! stock-service's SQL, joins the browser's trace. The page reads the
//! catalog from `GET /api/catalog`, polls `GET /api/orders/{orderId}` for
//! what stock-service decided, and links the trace in the Jaeger UI named by
//! `GET /config.json` (`JAEGER_UI_URL`). Those API routes are the gateway's
//! own (`crate::routes`), traced like any other.
//!
//! `TRUST_CLIENT_TRACE_CONTEXT` applies to the page as to any client: with
//! `true` (the default) the gateway's SERVER span continues the browser's
//! trace; with `false` it starts a new trace with a *link* to the browser's
//! span, and the browser's spans stay in a trace of their own.
//!
//! The browser exports its spans over OTLP/HTTP to the gateway's own origin,
//! `POST /v1/traces` ([`relay`]), which checks and bounds them and forwards
//! them to the collector the gateway exports to: the page needs no
//! collector reachable from the browser and no CORS.
//!
//! None of these routes has a SERVER span: the page and its assets are
//! static, and a span for each relayed export would be telemetry about
//! telemetry. They are not in the OpenAPI document either (not JSON API).

pub mod page;
pub mod rate_limit;
pub mod relay;

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use contracts::http::StorefrontConfig;
use telemetry::SpanForwarder;

pub use self::relay::Relay;

/// What the storefront's routes share.
#[derive(Clone, Debug)]
pub struct Storefront {
    /// `GET /config.json`'s body.
    config: Arc<StorefrontConfig>,
    /// The span relay.
    relay: Relay,
}

impl Storefront {
    /// The page linking traces to the Jaeger UI at `jaeger_url`, relaying
    /// spans through `forwarder` (`None`: traces are off, the relay answers
    /// 404) at most `relay_rate` exports a second.
    pub fn new(jaeger_url: &str, forwarder: Option<SpanForwarder>, relay_rate: usize) -> Self {
        Self {
            config: Arc::new(StorefrontConfig {
                jaeger_url: jaeger_url.to_owned(),
            }),
            relay: Relay::new(forwarder, relay_rate),
        }
    }
}

/// The storefront's routes, untraced: the page, its assets,
/// `/config.json` and the relay.
pub fn router(storefront: Storefront) -> Router {
    let relay = Router::new()
        .route("/v1/traces", post(relay::export))
        .with_state(storefront.relay.clone());
    Router::new()
        .route(
            "/",
            get(|headers: HeaderMap| async move { page::INDEX.respond(&headers) }),
        )
        .route(
            "/assets/app.js",
            get(|headers: HeaderMap| async move { page::APP_JS.respond(&headers) }),
        )
        .route(
            "/assets/app.css",
            get(|headers: HeaderMap| async move { page::APP_CSS.respond(&headers) }),
        )
        // Browsers ask for it whatever the page says; nothing to show.
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .route("/config.json", get(config))
        .with_state(storefront)
        .merge(relay)
        .method_not_allowed_fallback(crate::fallback::method_not_allowed)
}

/// `GET /config.json`.
async fn config(State(storefront): State<Storefront>) -> Response {
    let mut response = Json(storefront.config.as_ref().clone()).into_response();
    let headers = response.headers_mut();
    page::with_security_headers(headers);
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    response
}
