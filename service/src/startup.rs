//! The start-up log line: one JSON line per service, with the same fields
//! everywhere, written once every listener is bound.
//!
//! `message` is `listening`; `service` and `version` name the binary;
//! `http_address`, `grpc_address` and `admin_address` are the bound
//! addresses (the real ports when port 0 was asked for), each present when
//! the service has that listener. The end-to-end tests and the benchmark
//! start services on port 0 and read their ports from these fields.

use std::net::SocketAddr;

/// The addresses a service listens on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Listening {
    /// The HTTP API (gateway, stock-service).
    pub http: Option<SocketAddr>,
    /// The gRPC API (checkout-service).
    pub grpc: Option<SocketAddr>,
    /// The admin endpoint, when it has a port of its own.
    pub admin: Option<SocketAddr>,
}

/// The log field that carries the HTTP address.
pub const HTTP_ADDRESS_FIELD: &str = "http_address";
/// The log field that carries the gRPC address.
pub const GRPC_ADDRESS_FIELD: &str = "grpc_address";
/// The log field that carries the admin address.
pub const ADMIN_ADDRESS_FIELD: &str = "admin_address";

impl Listening {
    /// Writes the start-up line for `service` at `version`.
    pub fn log(&self, service: &str, version: &str) {
        let http = self.http.map(|addr| addr.to_string());
        let grpc = self.grpc.map(|addr| addr.to_string());
        let admin = self.admin.map(|addr| addr.to_string());
        tracing::info!(
            service,
            version,
            { HTTP_ADDRESS_FIELD } = http.as_deref(),
            { GRPC_ADDRESS_FIELD } = grpc.as_deref(),
            { ADMIN_ADDRESS_FIELD } = admin.as_deref(),
            "listening"
        );
    }
}
