//! The gateway's settings: each written once, with its environment variable,
//! default and meaning; `gateway --help` lists them all.

use std::{net::SocketAddr, time::Duration};

use axum::http::Uri;
use clap::Parser;
use service::{
    configuration::{
        parse_bool, parse_endpoint_url, parse_listen_addr, parse_millis, parse_millis_at_least_one,
        parse_positive,
    },
    http::HttpLimits,
    secret::secret_parser,
};
use telemetry::TelemetryArgs;

use crate::{
    auth::ApiKeys,
    checkout_client::{CheckoutTargets, Refresh},
    stock_client::parse_stock_url,
};

/// Everything the gateway needs to start.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "gateway",
    version,
    about = "The HTTP entry point of the traced checkout pipeline: POST /api/checkout → gRPC checkout-service, and the storefront page at /."
)]
pub struct Settings {
    /// Where the HTTP API listens (Go-style `:8081` accepted; port 0 picks a free port).
    #[arg(long, env = "HTTP_ADDRESS", default_value = "0.0.0.0:8081", value_parser = parse_listen_addr)]
    pub http_address: SocketAddr,
    /// checkout-service's gRPC endpoints, `http://host:port,…` (a bare `host:port` is accepted); every address a host name resolves to is one replica, and checkouts are spread over the replicas that are serving.
    #[arg(long, env = "CHECKOUT_SERVICE_ADDRESS", default_value = "http://localhost:8080", value_parser = CheckoutTargets::parse)]
    pub checkout_service_address: CheckoutTargets,
    /// How often the host names of `CHECKOUT_SERVICE_ADDRESS` are resolved again, in milliseconds: a new address is a new replica, one gone from DNS is dropped.
    #[arg(long = "checkout-service-resolve-interval-ms", env = "CHECKOUT_SERVICE_RESOLVE_INTERVAL_MS", default_value = "1000", value_parser = parse_millis_at_least_one)]
    pub checkout_resolve_interval: Duration,
    /// How often each checkout-service replica's gRPC health is checked, in milliseconds: one that stops answering SERVING gets no more checkouts until it answers again.
    #[arg(long = "checkout-service-probe-interval-ms", env = "CHECKOUT_SERVICE_PROBE_INTERVAL_MS", default_value = "1000", value_parser = parse_millis_at_least_one)]
    pub checkout_probe_interval: Duration,
    /// Deadline of each checkout's gRPC call, in milliseconds, its retry on another replica included (sent as `grpc-timeout`; a miss is a 504).
    #[arg(long = "checkout-deadline-ms", env = "CHECKOUT_DEADLINE_MS", default_value = "2000", value_parser = parse_millis)]
    pub checkout_deadline: Duration,
    /// No HTTP request is served for longer, in milliseconds (504 after).
    #[arg(long = "http-request-timeout-ms", env = "HTTP_REQUEST_TIMEOUT_MS", default_value = "5000", value_parser = parse_millis)]
    pub request_timeout: Duration,
    /// Checkouts served at once; more are refused at once with 503 + `Retry-After`.
    #[arg(long, env = "MAX_CONCURRENT_CHECKOUTS", default_value = "512", value_parser = parse_positive)]
    pub max_concurrent_checkouts: usize,
    /// `true`: continue a client's `traceparent` and baggage; `false`: start a new trace that links the client's.
    #[arg(long = "trust-client-trace-context", env = "TRUST_CLIENT_TRACE_CONTEXT", default_value = "true", value_parser = parse_bool, action = clap::ArgAction::Set)]
    pub trust_client_trace_context: bool,
    /// API keys, `client=key,…` (secret): when set, a checkout needs `Authorization: Bearer <key>` and idempotency keys are scoped to the key's client; unset, every caller is one anonymous client.
    #[arg(long, env = "API_KEYS", value_parser = secret_parser(ApiKeys::parse))]
    pub api_keys: Option<ApiKeys>,
    /// stock-service's HTTP API, `http://host:port`, which `GET /api/orders/{orderId}` asks for an order's status (each call within 2 s: 503 if it cannot connect, 504 if it does not answer).
    #[arg(long, env = "STOCK_SERVICE_URL", default_value = "http://127.0.0.1:8082", value_parser = parse_stock_url)]
    pub stock_service_url: Uri,
    /// The Jaeger UI the storefront page links each order's trace to (`GET /config.json`).
    #[arg(long, env = "JAEGER_UI_URL", default_value = "http://localhost:16686", value_parser = parse_endpoint_url)]
    pub jaeger_ui_url: String,
    /// Span exports from browsers the relay (`POST /v1/traces`) takes per second, from all clients together, with bursts of twice as many; more are refused with 429 + `Retry-After`.
    #[arg(long, env = "TRACE_RELAY_RATE_LIMIT", default_value = "20", value_parser = parse_positive)]
    pub trace_relay_rate_limit: usize,
    /// Bounds on the HTTP listener's connections.
    #[command(flatten)]
    pub http: HttpLimits,
    /// Telemetry.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl Settings {
    /// How the checkout-service replicas are watched: these intervals, and
    /// the call deadline as the patience of a probe, a resolution or a
    /// connection attempt.
    pub fn checkout_refresh(&self) -> Refresh {
        Refresh {
            resolve_interval: self.checkout_resolve_interval,
            probe_interval: self.checkout_probe_interval,
            patience: self.checkout_deadline,
        }
    }
}
