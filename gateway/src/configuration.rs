//! gateway settings, read from the environment.
//!
//! | variable | default |
//! |---|---|
//! | `HTTP_ADDRESS` | `0.0.0.0:8081` (Go-style `:8081` accepted) |
//! | `CHECKOUT_SERVICE_ADDRESS` | `http://localhost:8080` (bare `host:port` accepted) |
//! | `CHECKOUT_DEADLINE_MS` | `2000`: deadline of the gRPC call |
//! | `HTTP_REQUEST_TIMEOUT_MS` | `5000`: no HTTP request is served for longer |
//! | `MAX_CONCURRENT_CHECKOUTS` | `512`: more checkouts in flight are shed with 503 + `Retry-After` |
//! | `TRUST_CLIENT_TRACE_CONTEXT` | `true`: continue a client's `traceparent`; `false`: start a new trace and link the client's |
//!
//! plus the telemetry variables of [`utils::telemetry::TelemetryConfig`].

use std::{net::SocketAddr, time::Duration};

use utils::config::{
    ConfigError, env_bool, env_millis, env_parse, env_socket_addr, parse_endpoint_url,
};

/// Everything the gateway needs to start.
#[derive(Clone, Debug)]
pub struct Settings {
    /// HTTP listen address; port 0 picks a free port.
    pub http_address: SocketAddr,
    /// checkout-service's gRPC endpoint URL.
    pub checkout_service_address: String,
    /// Deadline of each `DoCheckout` call, sent to the server as `grpc-timeout`.
    pub checkout_deadline: Duration,
    /// Upper bound on serving any HTTP request.
    pub request_timeout: Duration,
    /// Checkouts served at once; more are refused at once rather than queued.
    pub max_concurrent_checkouts: usize,
    /// Whether a client's trace context (and baggage) is continued, or only
    /// linked from a new trace (for deployments with untrusted clients).
    pub trust_client_trace_context: bool,
}

impl Settings {
    /// Defaults, for a checkout-service at `checkout_service_address`.
    pub fn new(http_address: SocketAddr, checkout_service_address: &str) -> Self {
        Self {
            http_address,
            checkout_service_address: checkout_service_address.to_owned(),
            checkout_deadline: Duration::from_secs(2),
            request_timeout: Duration::from_secs(5),
            max_concurrent_checkouts: 512,
            trust_client_trace_context: true,
        }
    }

    /// Reads the settings; an unusable value names its variable.
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            http_address: env_socket_addr("HTTP_ADDRESS", "0.0.0.0:8081")?,
            checkout_service_address: env_parse("CHECKOUT_SERVICE_ADDRESS", parse_endpoint_url)?
                .unwrap_or_else(|| "http://localhost:8080".to_owned()),
            checkout_deadline: env_millis("CHECKOUT_DEADLINE_MS", Duration::from_secs(2))?,
            request_timeout: env_millis("HTTP_REQUEST_TIMEOUT_MS", Duration::from_secs(5))?,
            max_concurrent_checkouts: env_parse("MAX_CONCURRENT_CHECKOUTS", |raw| {
                raw.parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or("expected a positive number")
            })?
            .unwrap_or(512),
            trust_client_trace_context: env_bool("TRUST_CLIENT_TRACE_CONTEXT", true)?,
        })
    }
}
