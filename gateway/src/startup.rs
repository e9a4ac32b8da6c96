//! Building and running the gateway.
//!
//! The middleware, outermost first: the HTTP SERVER span (tower-http
//! `TraceLayer`), a request timeout answering 504, and the 64 KiB body limit
//! the JSON extractor enforces with a 413. The checkout route alone also has
//! a concurrency limit with load shedding: past the limit a request is
//! refused at once (503 + `Retry-After`) instead of queueing without bound,
//! while the health endpoints keep answering.

use std::net::SocketAddr;

use anyhow::Context;
use axum::{
    Router,
    error_handling::HandleErrorLayer,
    extract::DefaultBodyLimit,
    routing::{get, post},
};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, limit::GlobalConcurrencyLimitLayer};
use tower_http::trace::TraceLayer;
use utils::{
    http_span::{MakeServerSpan, RecordResponse},
    shutdown::CancellationToken,
};

use crate::{
    checkout_client::CheckoutClient,
    configuration::Settings,
    error::ApiError,
    routes::{self, AppState},
};

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A bound gateway, ready to run.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    router: Router,
}

impl Application {
    /// Binds the HTTP port and prepares the (lazily connecting) gRPC client.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let checkout = CheckoutClient::new(
            &settings.checkout_service_address,
            settings.checkout_deadline,
        )
        .with_context(|| {
            format!(
                "invalid CHECKOUT_SERVICE_ADDRESS {}",
                settings.checkout_service_address
            )
        })?;
        let listener = TcpListener::bind(settings.http_address)
            .await
            .with_context(|| format!("cannot listen on {}", settings.http_address))?;
        let local_addr = listener.local_addr()?;
        Ok(Self {
            listener,
            local_addr,
            router: router(AppState { checkout }, &settings),
        })
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` is cancelled, then stops accepting connections
    /// and lets the requests in flight finish.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!(address = %self.local_addr, "gateway listening");
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .context("HTTP server failed")
    }
}

/// The routes and their middleware.
pub fn router(state: AppState, settings: &Settings) -> Router {
    Router::new()
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
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(routes::readyz))
        .route("/openapi.json", get(crate::openapi::openapi_json))
        .method_not_allowed_fallback(routes::method_not_allowed)
        .fallback(routes::not_found)
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(
            ServiceBuilder::new()
                .layer(
                    TraceLayer::new_for_http()
                        .make_span_with(MakeServerSpan {
                            trust_client_context: settings.trust_client_trace_context,
                        })
                        .on_response(RecordResponse)
                        .on_failure(()),
                )
                .layer(HandleErrorLayer::new(|_: tower::BoxError| async {
                    ApiError::request_timeout()
                }))
                .timeout(settings.request_timeout),
        )
}
