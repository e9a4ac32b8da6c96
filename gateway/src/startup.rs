//! Building and running the gateway.
//!
//! The listener is served by [`service::http::serve`], which bounds how long
//! a connection may take to send its headers or stay idle, and how many
//! connections are open (`HTTP_*` settings).
//!
//! The middleware of the API routes, outermost first: the HTTP SERVER span
//! (tower-http `TraceLayer`), a request timeout answering 504, and the
//! 64 KiB body limit the JSON extractor enforces with a 413. The checkout
//! route alone also has a concurrency limit with load shedding: past the
//! limit a request is refused at once (503 + `Retry-After`) instead of
//! queueing without bound, while the health endpoints keep answering. The
//! storefront's page, assets, `/config.json` and span relay
//! ([`crate::storefront`]) are merged in beside the API routes, with the
//! same timeout but no SERVER span, and the relay's own bounds.

use std::net::SocketAddr;

use axum::{
    Router,
    error_handling::HandleErrorLayer,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use contracts::{error::ApiError, limits::MAX_BODY_BYTES};
use service::{
    http::{HttpLimits, serve},
    shutdown::CancellationToken,
    startup::{Listening, Service, bind},
};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, limit::GlobalConcurrencyLimitLayer};

use crate::{
    checkout_client::CheckoutClient,
    configuration::Settings,
    fallback, routes,
    state::AppState,
    stock_client::StockClient,
    storefront::{self, Storefront},
};

/// A bound gateway, ready to run.
pub struct Application {
    listener: TcpListener,
    http_addr: SocketAddr,
    router: Router,
    limits: HttpLimits,
}

impl Application {
    /// The bound HTTP address (the real port when 0 was asked for).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }
}

impl Service for Application {
    const NAME: &'static str = crate::NAME;
    const VERSION: &'static str = crate::VERSION;
    type Settings = Settings;

    /// Binds the HTTP port and prepares the gRPC client: resolves the
    /// checkout-service replicas, which it connects to lazily.
    async fn build(settings: Settings) -> anyhow::Result<Self> {
        let (listener, http_addr) = bind(settings.http_address).await?;
        tracing::info!(
            targets = %settings.checkout_service_address,
            "checkout-service replicas: every address of these"
        );
        let checkout = CheckoutClient::start(
            &settings.checkout_service_address,
            settings.checkout_deadline,
            settings.checkout_refresh(),
        )
        .await;
        let forwarder = telemetry::SpanForwarder::current();
        if forwarder.is_none() {
            tracing::info!("traces are not exported: the storefront's span relay answers 404");
        }
        let storefront = Storefront::new(
            &settings.jaeger_ui_url,
            forwarder,
            settings.trace_relay_rate_limit,
        );
        let stock = StockClient::new(settings.stock_service_url.clone());
        match &settings.api_keys {
            Some(keys) => tracing::info!(clients = keys.clients(), "checkouts need an API key"),
            None => tracing::info!(
                "API_KEYS is not set: checkouts are not authenticated, and every caller is one \
                 client whose Idempotency-Keys the whole deployment shares"
            ),
        }
        Ok(Self {
            listener,
            http_addr,
            router: router(
                AppState {
                    checkout,
                    api_keys: settings.api_keys.clone(),
                    stock,
                    storefront,
                },
                &settings,
            ),
            limits: settings.http,
        })
    }

    /// What the start-up log line reports.
    fn listening(&self) -> Listening {
        Listening {
            http: Some(self.http_addr),
            ..Listening::default()
        }
    }

    /// Serves until `shutdown` is cancelled, then stops accepting connections
    /// and lets the requests in flight finish.
    async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        serve(self.listener, self.router, self.limits, shutdown).await;
        Ok(())
    }
}

/// The routes and their middleware.
pub fn router(state: AppState, settings: &Settings) -> Router {
    let storefront = storefront::router(state.storefront.clone());
    let api = Router::new()
        .route(
            "/api/checkout",
            post(routes::checkout).layer(
                ServiceBuilder::new()
                    .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                        ApiError::overloaded()
                    }))
                    .load_shed()
                    .layer(GlobalConcurrencyLimitLayer::new(
                        settings.max_concurrent_checkouts,
                    )),
            ),
        )
        .route("/api/catalog", get(routes::catalog))
        .route("/api/orders/{orderId}", get(routes::order))
        .route("/openapi.json", get(crate::openapi::openapi_json))
        .method_not_allowed_fallback(fallback::method_not_allowed)
        .fallback(fallback::not_found)
        .with_state(state.clone())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            ServiceBuilder::new()
                .layer(telemetry::spans::http::trace_layer(
                    settings.trust_client_trace_context,
                ))
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    ApiError::request_timeout()
                }))
                .timeout(settings.request_timeout),
        );
    // The probes stay outside the trace layer: an orchestrator asks every
    // few seconds, and a trace per probe would drown the ones that matter.
    let health = Router::new()
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .with_state(state);
    storefront
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    ApiError::request_timeout()
                }))
                .timeout(settings.request_timeout),
        )
        .merge(api)
        .merge(health)
}
