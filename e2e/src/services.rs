//! Starting each real service in-process on port 0, with a test's names and
//! telemetry that exports quickly.
//!
//! checkout-service and stock-service start with their fault-injection admin
//! endpoint on (on a loopback port 0, behind [`ADMIN_TOKEN`]), so tests can
//! drive faults; a test that needs it off builds the settings with
//! [`checkout_settings`] or [`stock_settings`] and clears the token.

use service::{configuration::Configuration, faults::AdminToken};
use std::{net::SocketAddr, time::Duration};

use telemetry::TelemetryConfig;

use service::startup::Service;

use crate::{
    isolation::Isolation,
    running::{RunFuture, RunningService},
};

/// Telemetry for a service under test: export quickly to `endpoint`.
pub fn test_telemetry(service: &str, endpoint: &str) -> TelemetryConfig {
    let mut config = TelemetryConfig::new(service, endpoint);
    config.batch.scheduled_delay = Duration::from_millis(100);
    config.log_filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    config
}

/// A change a test makes to each service's [`test_telemetry`] (the
/// propagators, say), as `OTEL_*` variables would.
pub type AdjustTelemetry = fn(&mut TelemetryConfig);

/// The [`AdjustTelemetry`] that changes nothing.
pub const DEFAULT_TELEMETRY: AdjustTelemetry = |_| {};

/// The bearer token of the services' fault-injection admin endpoints.
pub const ADMIN_TOKEN: &str = "e2e-fault-admin-token";

/// [`ADMIN_TOKEN`] as the services' setting.
pub fn admin_token() -> AdminToken {
    AdminToken::new(ADMIN_TOKEN).expect("a valid token")
}

/// Port 0 on the loopback interface.
pub const LOCALHOST_ANY_PORT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// Declares the pipeline's queue the way stock-service does, for tests that
/// start stock-service only later (or as a child process): checkout-service
/// refuses orders that no queue would receive.
pub async fn declare_queue(isolation: &Isolation) {
    let settings = stock_settings(isolation, 0);
    let session = stock_service::broker::BrokerSession::open(&settings)
        .await
        .expect("topology declared");
    session.close().await;
}

/// stock-service's settings for port 0 with the pipeline's names, its admin
/// endpoint on a loopback port 0 behind [`ADMIN_TOKEN`].
pub fn stock_settings(
    isolation: &Isolation,
    initial_stock: i64,
) -> stock_service::configuration::Settings {
    let mut settings = stock_service::Settings::defaults();
    settings.amqp = isolation.amqp_settings();
    settings.queue.name = isolation.queue.clone();
    settings.database_url = isolation.database_url();
    settings.http_address = LOCALHOST_ANY_PORT;
    settings.admin_address = LOCALHOST_ANY_PORT;
    settings.faults.fault_admin_token = Some(admin_token());
    settings.initial_stock = stock_service::configuration::InitialStock::uniform(initial_stock);
    settings
}

/// Starts stock-service on port 0 with the pipeline's names.
pub fn start_stock_service(
    otlp_endpoint: &str,
    telemetry: AdjustTelemetry,
    isolation: &Isolation,
    initial_stock: i64,
) -> anyhow::Result<RunningService> {
    start::<stock_service::Application>(
        stock_settings(isolation, initial_stock),
        otlp_endpoint,
        telemetry,
    )
}

/// checkout-service's settings for `addr` (port 0 for any), publishing to
/// the pipeline's exchange, its admin endpoint on a loopback port 0 behind
/// [`ADMIN_TOKEN`]. Its order-id key is in a key file of the pipeline's
/// (`ORDER_ID_SECRET_FILE`), created by the first replica to start: every
/// replica of the pipeline shares it, and a restarted one reads it again,
/// as in a deployment that shares a volume.
pub fn checkout_settings(isolation: &Isolation, addr: SocketAddr) -> checkout_service::Settings {
    let mut settings = checkout_service::Settings::defaults();
    settings.grpc_address = addr;
    settings.admin_address = LOCALHOST_ANY_PORT;
    settings.faults.fault_admin_token = Some(admin_token());
    settings.amqp = isolation.amqp_settings();
    settings.order_id_secret_file = Some(isolation.dir.join("order-id.key"));
    settings
}

/// Starts checkout-service on `addr` (port 0 for any) publishing to the
/// pipeline's exchange.
pub fn start_checkout_service(
    otlp_endpoint: &str,
    telemetry: AdjustTelemetry,
    isolation: &Isolation,
    addr: SocketAddr,
) -> anyhow::Result<RunningService> {
    start::<checkout_service::Application>(
        checkout_settings(isolation, addr),
        otlp_endpoint,
        telemetry,
    )
}

/// Gateway settings for port 0, calling checkout-service at `checkout_addr`,
/// without API keys (every caller is the anonymous client; see
/// [`with_api_keys`]).
pub fn gateway_settings(checkout_addr: SocketAddr) -> gateway::Settings {
    gateway_settings_for(&[checkout_addr])
}

/// [`gateway_settings`] in front of a replica of checkout-service at each
/// of `checkout_addrs`.
pub fn gateway_settings_for(checkout_addrs: &[SocketAddr]) -> gateway::Settings {
    let mut settings = gateway::Settings::defaults();
    settings.http_address = LOCALHOST_ANY_PORT;
    settings.checkout_service_address =
        gateway::checkout_client::CheckoutTargets::from_addrs(checkout_addrs.iter().copied());
    settings
}

/// Two clients and their API keys, for tests that need clients told apart.
pub const TEST_API_KEYS: [(&str, &str); 2] = [
    ("shop", "e2e-shop-key-0123456789"),
    ("app", "e2e-app-key-0123456789"),
];

/// Requires [`TEST_API_KEYS`] at the gateway (a [`crate::PipelineOptions`]
/// `gateway` adjustment).
pub fn with_api_keys(settings: &mut gateway::Settings) {
    let keys = TEST_API_KEYS
        .iter()
        .map(|(client, key)| format!("{client}={key}"))
        .collect::<Vec<_>>()
        .join(",");
    settings.api_keys = Some(gateway::auth::ApiKeys::parse(&keys).expect("valid API keys"));
}

/// Starts a gateway with `settings`.
pub fn start_gateway(
    otlp_endpoint: &str,
    telemetry: AdjustTelemetry,
    settings: gateway::Settings,
) -> anyhow::Result<RunningService> {
    start::<gateway::Application>(settings, otlp_endpoint, telemetry)
}

/// Starts service `S` with `settings` on a thread of its own, exporting
/// spans to `otlp_endpoint`, its telemetry changed by `telemetry`.
pub fn start<S>(
    settings: S::Settings,
    otlp_endpoint: &str,
    telemetry: AdjustTelemetry,
) -> anyhow::Result<RunningService>
where
    S: Service + 'static,
    S::Settings: Send + 'static,
{
    let mut config = test_telemetry(S::NAME, otlp_endpoint);
    telemetry(&mut config);
    RunningService::spawn(S::NAME, config, move |stop| async move {
        let application = S::build(settings).await?;
        let listening = application.listening();
        let run: RunFuture = Box::pin(application.run_until_stopped(stop));
        Ok((listening, run))
    })
}
