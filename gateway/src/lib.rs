//! gateway: the HTTP front door of the checkout pipeline, and the
//! storefront page whose click starts the trace in the browser.
//!
//! `POST /api/checkout` takes a JSON cart, parses it into a [`domain::Cart`],
//! and calls `checkout.Checkout/DoCheckout` on one of checkout-service's
//! replicas, chosen by the checkout's idempotency key, retrying once on
//! another if that one is unavailable. The HTTP SERVER span continues a
//! trace the client started (`traceparent`, `baggage`), and each attempt's
//! gRPC CLIENT span passes it on in the call's metadata.
//!
//! # Layout
//!
//! - [`configuration`]: [`Settings`], from flags and the environment.
//! - [`auth`]: the optional API keys, and the client a request comes from.
//! - [`domain`]: the [`domain::Cart`] a request body parses into, within
//!   every limit of `contracts::limits`, and the checkout's
//!   [`domain::IdempotencyKey`].
//! - [`checkout_client`]: the gRPC client: the replicas (discovery, health),
//!   the choice of replica, the retry, the deadline and the CLIENT spans.
//! - [`stock_client`]: the HTTP client that asks stock-service for an
//!   order's status, with its CLIENT span.
//! - [`state`]: [`state::AppState`], what the handlers share.
//! - [`routes`]: the API handlers (checkout, catalog, order status, health);
//!   every failure is a `contracts::error::ApiError`.
//! - [`fallback`]: the 404 and 405 answers of both routers.
//! - [`storefront`]: the page, its assets, `/config.json` and the relay of
//!   the page's spans (`POST /v1/traces`).
//! - [`openapi`]: the OpenAPI document, generated from the code.
//! - [`startup`]: [`startup::Application`]: the router, its middleware, serving.

pub mod auth;
pub mod checkout_client;
pub mod configuration;
pub mod domain;
pub mod fallback;
pub mod openapi;
pub mod routes;
pub mod startup;
pub mod state;
pub mod stock_client;
pub mod storefront;

pub use configuration::Settings;
pub use startup::Application;

/// The service's name: its binary, and `service.name` unless
/// `OTEL_SERVICE_NAME` says otherwise.
pub const NAME: &str = "gateway";
/// Its version, reported as `service.version` and by `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
