//! checkout-service binary: configuration from the environment, telemetry,
//! then the server until SIGINT/SIGTERM.
//!
//! `checkout-service health-check` instead asks a running instance on this
//! host (`GRPC_ADDRESS`'s port) for its gRPC health and exits 0 if it is
//! serving: the container image has no gRPC client to do it otherwise.

use anyhow::Context;
use checkout_service::{configuration::Settings, startup::Application};
use utils::telemetry::{Telemetry, TelemetryConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    if std::env::args().nth(1).as_deref() == Some("health-check") {
        return checkout_service::startup::health_check(settings.grpc_address.port()).await;
    }
    let telemetry = Telemetry::build(&TelemetryConfig::from_env("checkout-service")?)?;
    telemetry.install_global()?;

    let result = async {
        let application = Application::build(settings).await?;
        application
            .run_until_stopped(utils::shutdown::on_signal())
            .await
    }
    .await;
    if let Err(error) = &result {
        tracing::error!(error = format!("{error:#}"), "checkout-service stopped");
    }
    telemetry.shutdown().await;
    result.context("checkout-service failed")
}
