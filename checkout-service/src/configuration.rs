//! checkout-service's settings: each written once, with its environment
//! variable, default and meaning; `checkout-service --help` lists them all.

use std::{net::SocketAddr, path::PathBuf};

use amqp::AmqpSettings;
use clap::{Parser, Subcommand};
use service::{
    configuration::{parse_listen_addr, parse_positive},
    faults::FaultArgs,
    secret::secret_parser,
};
use telemetry::TelemetryArgs;

use crate::{catalog::Catalog, idempotency::OrderIdSecret};

/// Everything checkout-service needs to start.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "checkout-service",
    version,
    about = "Prices a cart, publishes checkout.processed to RabbitMQ with confirms, and answers DoCheckout over gRPC."
)]
pub struct Settings {
    /// Where the gRPC API listens (Go-style `:8080` accepted; port 0 picks a free port).
    #[arg(long, env = "GRPC_ADDRESS", default_value = "0.0.0.0:8080", value_parser = parse_listen_addr)]
    pub grpc_address: SocketAddr,
    /// Checkouts served at once; more are refused at once with `RESOURCE_EXHAUSTED` (503 + `Retry-After` at the gateway); a connection may open twice as many HTTP/2 streams.
    #[arg(long, env = "MAX_CONCURRENT_CALLS", default_value = "512", value_parser = parse_positive)]
    pub max_concurrent_calls: usize,
    /// The items on sale, `id=price,…` or `id=price:name,…` (names optional: items 1–4 are then the demo's Espresso cup, Tea towel, Notebook and Desk lamp, any other `Item N`).
    #[arg(long, env = "CATALOG", default_value = "1=100,2=250,3=399,4=1250")]
    pub catalog: Catalog,
    /// Where the fault-injection admin endpoint (`/admin/faults`) listens when `FAULT_ADMIN_TOKEN` is set (loopback by default).
    #[arg(long, env = "ADMIN_ADDRESS", default_value = "127.0.0.1:8083", value_parser = parse_listen_addr)]
    pub admin_address: SocketAddr,
    /// Key of the order ids derived from idempotency keys (secret, 32+ bytes; wins over ORDER_ID_SECRET_FILE). A retry with the same key gets the same order id only from a replica with the same key: set it alike on every replica and keep it across restarts (unset and no file: a random one per start, with a warning; a retry reaching another key gets another order id, which stock-service records as a duplicate and never applies twice).
    #[arg(long, env = "ORDER_ID_SECRET", value_parser = secret_parser(OrderIdSecret::parse))]
    pub order_id_secret: Option<OrderIdSecret>,
    /// A file holding the order-id key, when ORDER_ID_SECRET is not set: read if it exists, otherwise created once with a random key (mode 0600). Replicas sharing the file (a volume) agree on one key, even when they start together, and it outlives restarts.
    #[arg(long, env = "ORDER_ID_SECRET_FILE")]
    pub order_id_secret_file: Option<PathBuf>,
    /// Bytes of (client, Idempotency-Key, cart) remembered to refuse a key reused with another cart, least recently used evicted first (64 MiB: ~500,000 typical keys, ~56,000 of the largest).
    //
    // Why 64 MiB: a typical entry weighs ~128 bytes, so the cache holds
    // ~500,000 keys, minutes to hours of keyed checkouts even at the
    // pipeline's peak rate, far longer than a client takes to retry; the
    // largest entries (1,191 bytes) still leave ~56,000. And it bounds what
    // clients can make the service keep to a fixed share of its memory,
    // whatever the size of their keys and carts.
    #[arg(long, env = "IDEMPOTENCY_CACHE_BYTES", default_value = "67108864", value_parser = parse_positive)]
    pub idempotency_cache_bytes: usize,
    /// The broker.
    #[command(flatten)]
    pub amqp: AmqpSettings,
    /// Demo fault injection.
    #[command(flatten)]
    pub faults: FaultArgs,
    /// Telemetry.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
    /// Instead of serving, run a command.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What the binary can do besides serving.
#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Ask the instance on this host (GRPC_ADDRESS's port) for its gRPC health; exit 0 if serving (the container health check).
    HealthCheck,
}
