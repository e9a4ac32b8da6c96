//! The service processes of one run: their isolation (fresh broker names, a fresh
//! SQLite file or PostgreSQL database), their environment, starting them in dependency
//! order until every `/readyz` answers 200, and stopping them together. Everything a
//! run needs to know about how the services are launched lives here, so the
//! measurement only sees a [`Pipeline`] with addresses and pids.
//!
//! With `replicas` > 1 (`--topology cluster`) each service runs that many times: the
//! stock-services consume one queue and share one PostgreSQL database, every gateway
//! lists every checkout-service in `CHECKOUT_SERVICE_ADDRESS`, and the load generator
//! sends to the gateways in turn. All checkout-services share one `ORDER_ID_SECRET`
//! (a fresh one per run), as replicas must: the gateway's retry of a checkout on another
//! replica then names the same order.

use std::time::Duration;

use anyhow::Context;
use service::startup::{GRPC_ADDRESS_FIELD, HTTP_ADDRESS_FIELD};
use testkit::postgres::PostgresDatabase;

use super::config::{PipelineConfig, Tracing};
use crate::cleanup::Cleanup;
use crate::services::{Service, Stopped};

/// The log filter of the services: warnings and errors, plus the start-up module's
/// info line that carries the bound address.
pub const RUST_LOG: &str = "warn,service::startup=info";

/// The HTTP client of the readiness checks and of the questions to stock-service.
pub(super) fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .context("cannot build an HTTP client")
}

/// The services of one run, with their isolation; everything is removed or killed
/// when dropped (broker objects by the caller's [`Cleanup`]).
pub(super) struct Pipeline {
    pub(super) gateways: Vec<Service>,
    pub(super) checkouts: Vec<Service>,
    pub(super) stocks: Vec<Service>,
    /// The run's queue.
    pub(super) queue: String,
    _dir: tempfile::TempDir,
    /// Dropped after the services (fields drop in order), which hold connections to it.
    database: Option<PostgresDatabase>,
}

impl Pipeline {
    /// Starts the stock-services, the checkout-services and the gateways, exporting
    /// spans (when `tracing` is on) to `otlp_endpoint`, and waits until they are ready;
    /// registers the run's broker objects with `cleanup`.
    pub(super) async fn start(
        config: &PipelineConfig,
        tracing: Tracing,
        otlp_endpoint: &str,
        cleanup: &Cleanup,
    ) -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let name = format!("bench-{}", &id[..12]);
        let (exchange, queue) = (name.clone(), name.clone());
        cleanup.queue(&queue);
        cleanup.queue(&format!("{queue}.dead"));
        cleanup.exchange(&exchange);
        cleanup.exchange(&format!("{exchange}.dlx"));
        let dir = tempfile::Builder::new()
            .prefix("checkout-bench-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        let (database, database_url) = match &config.postgres {
            Some(server) => {
                let database = server.create_database().await?;
                let url = database.url.clone();
                (Some(database), url)
            }
            None => {
                let file = dir.path().join("stock.db");
                (None, format!("sqlite://{}?mode=rwc", file.display()))
            }
        };

        let batch = &config.batch;
        let common = vec![
            ("RUST_LOG", RUST_LOG.to_owned()),
            ("AMQP_URL", config.amqp_url.clone()),
            ("AMQP_EXCHANGE", exchange.clone()),
            (
                "AMQP_ROUTING_KEY",
                contracts::amqp::DEFAULT_ROUTING_KEY.to_owned(),
            ),
            ("OTEL_TRACES_SAMPLER", tracing.sampler().to_owned()),
            // Metrics and OTLP log records only in the "full" runs, which
            // measure what they add to tracing; the sink counts and drops them.
            // Metrics every second, so that a short window sees exports.
            ("OTEL_METRICS_EXPORTER", tracing.other_signals().to_owned()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1000".to_owned()),
            ("OTEL_LOGS_EXPORTER", tracing.other_signals().to_owned()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_endpoint.to_owned()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_owned()),
            ("OTEL_BSP_MAX_QUEUE_SIZE", batch.max_queue_size.to_string()),
            (
                "OTEL_BSP_SCHEDULE_DELAY",
                batch.scheduled_delay.as_millis().to_string(),
            ),
            (
                "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                batch.max_export_batch_size.to_string(),
            ),
        ];
        let env = |extra: &[(&str, String)]| -> Vec<(String, String)> {
            common
                .iter()
                .chain(extra)
                .map(|(key, value)| ((*key).to_owned(), value.clone()))
                .collect()
        };
        let bin = |name: &str| config.binaries.join(name);
        let patience = config.start_timeout;
        let replicas = config.replicas.max(1);

        // The stock-services first: they declare the queue and binding the publisher
        // needs. One after the other, so one creates the schema and the other finds it.
        let mut stock_env = vec![
            ("AMQP_QUEUE", queue.clone()),
            ("AMQP_PREFETCH", config.prefetch.to_string()),
            ("DATABASE_URL", database_url),
            ("HTTP_ADDRESS", "127.0.0.1:0".to_owned()),
            ("ADMIN_ADDRESS", "127.0.0.1:0".to_owned()),
            ("INITIAL_STOCK", config.initial_stock.to_string()),
        ];
        if let Some(size) = config.quorum_size {
            stock_env.push(("AMQP_QUORUM_SIZE", size.to_string()));
        }
        let mut stocks = Vec::new();
        for _ in 0..replicas {
            stocks.push(
                Service::start(
                    "stock-service",
                    &bin("stock-service"),
                    &env(&stock_env),
                    HTTP_ADDRESS_FIELD,
                    patience,
                )
                .await?,
            );
        }
        // Two UUIDs' hex digits: the 32+ bytes ORDER_ID_SECRET needs.
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut checkouts = Vec::new();
        for _ in 0..replicas {
            checkouts.push(
                Service::start(
                    "checkout-service",
                    &bin("checkout-service"),
                    &env(&[
                        ("GRPC_ADDRESS", "127.0.0.1:0".to_owned()),
                        // Its fault-injection admin endpoint, where it has one: loopback only.
                        ("ADMIN_ADDRESS", "127.0.0.1:0".to_owned()),
                        ("ORDER_ID_SECRET", secret.clone()),
                    ]),
                    GRPC_ADDRESS_FIELD,
                    patience,
                )
                .await?,
            );
        }
        let checkout_addresses: Vec<String> = checkouts
            .iter()
            .map(|checkout| format!("http://{}", checkout.addr))
            .collect();
        let mut gateways = Vec::new();
        for _ in 0..replicas {
            gateways.push(
                Service::start(
                    "gateway",
                    &bin("gateway"),
                    &env(&[
                        ("HTTP_ADDRESS", "127.0.0.1:0".to_owned()),
                        ("CHECKOUT_SERVICE_ADDRESS", checkout_addresses.join(",")),
                        ("TRUST_CLIENT_TRACE_CONTEXT", "true".to_owned()),
                    ]),
                    HTTP_ADDRESS_FIELD,
                    patience,
                )
                .await?,
            );
        }
        let pipeline = Self {
            gateways,
            checkouts,
            stocks,
            queue,
            _dir: dir,
            database,
        };
        pipeline.wait_ready(patience).await?;
        Ok(pipeline)
    }

    /// Every service process: the gateways first, the stock-services last.
    pub(super) fn services(&self) -> Vec<&Service> {
        self.gateways
            .iter()
            .chain(&self.checkouts)
            .chain(&self.stocks)
            .collect()
    }

    /// Name and pid of each service process, in the order of [`Pipeline::services`]
    /// (the replicas of a service share its name, so their CPU time is summed).
    pub(super) fn processes(&self) -> Vec<(String, u32)> {
        self.services()
            .iter()
            .map(|service| (service.name.to_owned(), service.pid))
            .collect()
    }

    /// The gateways' base URLs.
    pub(super) fn gateway_urls(&self) -> Vec<String> {
        self.gateways
            .iter()
            .map(|gateway| format!("http://{}", gateway.addr))
            .collect()
    }

    /// The name of the run's PostgreSQL database, if it has one.
    pub(super) fn database_name(&self) -> Option<&str> {
        self.database
            .as_ref()
            .map(|database| database.name.as_str())
    }

    async fn wait_ready(&self, patience: Duration) -> anyhow::Result<()> {
        let client = http_client()?;
        for service in self.stocks.iter().chain(&self.gateways) {
            let url = format!("http://{}/readyz", service.addr);
            testkit::poll::within(
                format!("{} {url} answering 200", service.name),
                patience,
                || async {
                    let response = client.get(&url).send().await.ok()?;
                    response.status().is_success().then_some(())
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Stops every service at once (each flushes its spans and logs what it dropped),
    /// each given `grace` before it is killed; returns how each stopped, in the order of
    /// [`Pipeline::services`]. The temporary directory and the database go after they
    /// have exited.
    pub(super) async fn stop(self, grace: Duration) -> Vec<(&'static str, Stopped)> {
        let Self {
            gateways,
            checkouts,
            stocks,
            queue: _,
            _dir,
            database,
        } = self;
        let stopped = futures::future::join_all(
            gateways
                .into_iter()
                .chain(checkouts)
                .chain(stocks)
                .map(|service| async move { (service.name, service.stop(grace).await) }),
        )
        .await;
        if let Some(database) = database
            && let Err(error) = database.remove().await
        {
            eprintln!("warning: {error:#}");
        }
        stopped
    }
}
