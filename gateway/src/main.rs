//! gateway binary: configuration from the environment, telemetry, then the
//! HTTP server until SIGINT/SIGTERM.

use anyhow::Context;
use gateway::{configuration::Settings, startup::Application};
use utils::telemetry::{Telemetry, TelemetryConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::from_env()?;
    let telemetry = Telemetry::build(&TelemetryConfig::from_env("gateway")?)?;
    telemetry.install_global()?;

    let result = async {
        let application = Application::build(settings).await?;
        application
            .run_until_stopped(utils::shutdown::on_signal())
            .await
    }
    .await;
    if let Err(error) = &result {
        tracing::error!(error = format!("{error:#}"), "gateway stopped");
    }
    telemetry.shutdown().await;
    result.context("gateway failed")
}
