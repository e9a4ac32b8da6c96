//! gateway binary: settings from flags and the environment (`--help` lists
//! them), telemetry, then the HTTP server until SIGINT/SIGTERM.

use gateway::{Application, Settings};
use service::configuration::Configuration;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load();
    let telemetry = settings.telemetry.clone();
    telemetry::run::<Application>(settings, telemetry).await
}
