//! The `stock-service` binary: reads its settings, starts telemetry, and runs
//! the application until SIGINT or SIGTERM. Everything else is in the library.

use stock_service::{Application, Settings};
use utils::telemetry::{Telemetry, TelemetryConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Configuration errors name the variable and stop the process before
    // anything starts.
    let settings = Settings::from_env()?;
    let telemetry_config = TelemetryConfig::from_env("stock-service")?;
    // Inside the runtime: the OTLP exporter's gRPC channel lives on it.
    let telemetry = Telemetry::build(&telemetry_config)?;
    telemetry.install_global()?;

    let result = async {
        let application = Application::build(settings).await?;
        application
            .run_until_stopped(utils::shutdown::on_signal())
            .await
    }
    .await;
    if let Err(error) = &result {
        tracing::error!(error = format!("{error:#}"), "stock-service failed");
    }
    // Export the spans still queued, including those of a failed start.
    telemetry.shutdown().await;
    result
}
