//! The shape every service's `Application` has ([`Service`]), and the
//! start-up log line: one JSON line per service, with the same fields
//! everywhere, written once every listener is bound.
//!
//! `message` is `listening`; `service` and `version` name the binary;
//! `http_address`, `grpc_address` and `admin_address` are the bound
//! addresses (the real ports when port 0 was asked for), each present when
//! the service has that listener. The end-to-end tests and the benchmark
//! start services on port 0 and read their ports from these fields.

use std::{future::Future, net::SocketAddr};

use anyhow::Context;
use tokio::net::TcpListener;

use crate::shutdown::CancellationToken;

/// Binds a listener on `address` (port 0 picks a free port) and returns it
/// with the address it is bound to; the error names the address.
pub async fn bind(address: SocketAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("cannot listen on {address}"))?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// What each service's `Application` is: built from its settings (binding
/// its ports, port 0 included, and connecting to what it needs, so a
/// misconfigured service fails at start with a clear error), then run until
/// a shutdown token is cancelled. The binaries and the tests start every
/// service through this one shape.
pub trait Service: Sized {
    /// The binary's name, and `service.name` unless `OTEL_SERVICE_NAME`
    /// names another.
    const NAME: &'static str;
    /// Its version: `service.version`, and what `--version` prints.
    const VERSION: &'static str;
    /// Its settings (flags and environment; `--help` lists them).
    type Settings: clap::Parser;

    /// Does everything that can fail at start: binds, connects, migrates.
    fn build(settings: Self::Settings) -> impl Future<Output = anyhow::Result<Self>>;

    /// The addresses it is bound to.
    fn listening(&self) -> Listening;

    /// Serves until `shutdown` is cancelled, then finishes what is in flight
    /// and returns.
    fn run_until_stopped(
        self,
        shutdown: CancellationToken,
    ) -> impl Future<Output = anyhow::Result<()>>;
}

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
