//! checkout-service's settings: each written once, with its environment
//! variable, default and meaning; `checkout-service --help` lists them all.

use std::net::SocketAddr;

use amqp::AmqpSettings;
use clap::{Parser, Subcommand};
use service::{
    configuration::{parse_listen_addr, parse_positive},
    faults::FaultArgs,
};
use telemetry::TelemetryArgs;

use crate::catalog::Catalog;

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
    /// Item prices, `id=price,…`.
    #[arg(long, env = "CATALOG", default_value = "1=100,2=250,3=399,4=1250")]
    pub catalog: Catalog,
    /// Where the fault-injection admin endpoint (`/admin/faults`) listens when `FAULT_ADMIN_TOKEN` is set (loopback by default).
    #[arg(long, env = "ADMIN_ADDRESS", default_value = "127.0.0.1:8083", value_parser = parse_listen_addr)]
    pub admin_address: SocketAddr,
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
