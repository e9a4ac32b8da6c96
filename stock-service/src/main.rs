//! stock-service binary: settings from flags and the environment (`--help`
//! lists them), telemetry, then the application until SIGINT/SIGTERM.
//! Everything else is in the library.

use anyhow::Context;
use stock_service::{Application, NAME, Settings, VERSION};
use telemetry::Telemetry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load();
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
    // Export the spans still queued, including those of a failed start.
    telemetry.shutdown().await;
    result.context("stock-service failed")
}
