//! checkout-service binary: settings from flags and the environment
//! (`--help` lists them), telemetry, then the server until SIGINT/SIGTERM.
//!
//! `checkout-service health-check` instead asks a running instance on this
//! host (`GRPC_ADDRESS`'s port) for its gRPC health and exits 0 if it is
//! serving: the container image has no gRPC client to do it otherwise.

use checkout_service::{Application, Settings, configuration::Command, startup::health_check};
use service::configuration::Configuration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load();
    if let Some(Command::HealthCheck) = settings.command {
        return health_check(settings.grpc_address.port()).await;
    }
    let telemetry = settings.telemetry.clone();
    telemetry::run::<Application>(settings, telemetry).await
}
