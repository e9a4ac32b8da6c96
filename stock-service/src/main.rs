//! stock-service binary: settings from flags and the environment (`--help`
//! lists them), telemetry, then the application until SIGINT/SIGTERM.
//! Everything else is in the library.

use service::configuration::Configuration;
use stock_service::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load();
    let telemetry = settings.telemetry.clone();
    telemetry::run::<Application>(settings, telemetry).await
}
