//! checkout-service binary: settings from flags and the environment
//! (`--help` lists them), telemetry, then the server until SIGINT/SIGTERM.
//!
//! `checkout-service health-check` instead asks a running instance on this
//! host (`GRPC_ADDRESS`'s port) for its gRPC health and exits 0 if it is
//! serving: the container image has no gRPC client to do it otherwise.

use anyhow::Context;
use checkout_service::{Application, NAME, Settings, VERSION, configuration::Command};
use telemetry::Telemetry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load();
    if let Some(Command::HealthCheck) = settings.command {
        return checkout_service::startup::health_check(settings.grpc_address.port()).await;
    }
    let config = settings
        .telemetry
        .clone()
        .into_config(NAME, VERSION)
        .map_err(anyhow::Error::msg)?;
    let telemetry = Telemetry::build(&config)?;
    telemetry.install_global()?;

    let result = async {
        let application = Application::build(settings).await?;
        application.listening().log(NAME, VERSION);
        application
            .run_until_stopped(service::shutdown::on_signal())
            .await
    }
    .await;
    if let Err(error) = &result {
        tracing::error!(error = format!("{error:#}"), "{NAME} stopped");
    }
    telemetry.shutdown().await;
    result.context("checkout-service failed")
}
