//! The three service processes of one run: their isolation (fresh broker names, a
//! fresh SQLite file), their environment, starting them in dependency order until
//! both `/readyz` answer 200, and stopping them together. Everything a run needs to
//! know about how the services are launched lives here, so the measurement only sees
//! a [`Pipeline`] with addresses and pids.

use std::time::Duration;

use anyhow::Context;
use service::startup::{GRPC_ADDRESS_FIELD, HTTP_ADDRESS_FIELD};
use tokio::time::Instant;

use super::{PipelineConfig, Tracing, http_client};
use crate::broker::{AMQP_URL, Cleanup};
use crate::services::{Service, Stopped};

/// The log filter of the services: warnings and errors, plus the start-up module's
/// info line that carries the bound address.
pub const RUST_LOG: &str = "warn,service::startup=info";

/// The three services of one run, with their isolation; everything is removed or
/// killed when dropped (broker objects by the caller's [`Cleanup`]).
pub(super) struct Pipeline {
    pub(super) stock: Service,
    pub(super) checkout: Service,
    pub(super) gateway: Service,
    _dir: tempfile::TempDir,
}

impl Pipeline {
    /// Starts stock-service, checkout-service and the gateway, exporting spans (when
    /// `tracing` is on) to `otlp_endpoint`, and waits until they are ready; registers
    /// the run's broker objects with `cleanup`.
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

        let batch = &config.batch;
        let common = vec![
            ("RUST_LOG", RUST_LOG.to_owned()),
            ("AMQP_URL", AMQP_URL.to_owned()),
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
        let database = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("stock.db").display()
        );
        let bin = |name: &str| config.binaries.join(name);
        let patience = config.start_timeout;

        // Stock-service first: it declares the queue and binding the publisher needs.
        let stock = Service::start(
            "stock-service",
            &bin("stock-service"),
            &env(&[
                ("AMQP_QUEUE", queue.clone()),
                ("AMQP_PREFETCH", config.prefetch.to_string()),
                ("DATABASE_URL", database),
                ("HTTP_ADDRESS", "127.0.0.1:0".to_owned()),
                ("INITIAL_STOCK", config.initial_stock.to_string()),
            ]),
            HTTP_ADDRESS_FIELD,
            patience,
        )
        .await?;
        let checkout = Service::start(
            "checkout-service",
            &bin("checkout-service"),
            &env(&[
                ("GRPC_ADDRESS", "127.0.0.1:0".to_owned()),
                // Its fault-injection admin endpoint, where it has one: loopback only.
                ("ADMIN_ADDRESS", "127.0.0.1:0".to_owned()),
            ]),
            GRPC_ADDRESS_FIELD,
            patience,
        )
        .await?;
        let gateway = Service::start(
            "gateway",
            &bin("gateway"),
            &env(&[
                ("HTTP_ADDRESS", "127.0.0.1:0".to_owned()),
                (
                    "CHECKOUT_SERVICE_ADDRESS",
                    format!("http://{}", checkout.addr),
                ),
                ("TRUST_CLIENT_TRACE_CONTEXT", "true".to_owned()),
            ]),
            HTTP_ADDRESS_FIELD,
            patience,
        )
        .await?;
        let pipeline = Self {
            stock,
            checkout,
            gateway,
            _dir: dir,
        };
        pipeline.wait_ready(patience).await?;
        Ok(pipeline)
    }

    /// The three services, gateway first, stock-service last.
    pub(super) fn services(&self) -> [&Service; 3] {
        [&self.gateway, &self.checkout, &self.stock]
    }

    /// Name and pid of each service, in the order of [`Pipeline::services`].
    pub(super) fn processes(&self) -> Vec<(String, u32)> {
        self.services()
            .iter()
            .map(|service| (service.name.to_owned(), service.pid))
            .collect()
    }

    async fn wait_ready(&self, patience: Duration) -> anyhow::Result<()> {
        let client = http_client()?;
        let deadline = Instant::now() + patience;
        for addr in [self.stock.addr, self.gateway.addr] {
            let url = format!("http://{addr}/readyz");
            loop {
                let ready = client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|response| response.status().is_success());
                if ready {
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{url} did not answer 200 within {patience:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Stops all three at once (each flushes its spans and logs what it dropped), each
    /// given `grace` before it is killed; returns how each stopped, in the order of
    /// [`Pipeline::services`]. The temporary directory goes after they have exited.
    pub(super) async fn stop(self, grace: Duration) -> [(&'static str, Stopped); 3] {
        let Self {
            stock,
            checkout,
            gateway,
            _dir,
        } = self;
        let (gateway, checkout, stock) =
            futures::join!(gateway.stop(grace), checkout.stop(grace), stock.stop(grace),);
        [
            ("gateway", gateway),
            ("checkout-service", checkout),
            ("stock-service", stock),
        ]
    }
}
