//! The pipeline scaled out, for the fault tests that kill a broker node or a
//! replica under load: a private three-node RabbitMQ cluster, stock in a
//! PostgreSQL database of the test's own, two checkout-service and two
//! stock-service replicas as child processes (so each can be SIGKILLed), and
//! one gateway in-process balancing over the checkout-service replicas.
//!
//! Every service is given every node's URL and the queue is replicated on
//! all three nodes, as in `docker-compose.cluster.yaml`. The child processes
//! export spans with a short batch delay ([`BATCH_DELAY`]): what a SIGKILL
//! loses is what waited in that batch, and [`ScaledPipeline::account_traces`]
//! checks that nothing else was lost.

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use reqwest::StatusCode;
use testkit::{
    receiver::OtlpReceiver,
    verify::{check_traces, missing_spans},
};

use testkit::{postgres::PostgresDatabase, process::ServiceProcess, rabbitmq::PrivateCluster};

use crate::{
    PATIENCE,
    isolation::Isolation,
    orders::{self, Accepted},
    running::RunningService,
    services::{DEFAULT_TELEMETRY, gateway_settings_for, start_gateway},
};

/// RabbitMQ nodes in the cluster.
pub const NODES: usize = 3;
/// Replicas of checkout-service and of stock-service.
pub const REPLICAS: usize = 2;
/// Units of each item at start: more than any test orders.
pub const INITIAL_STOCK: i64 = 10_000_000;
/// The child processes' `OTEL_BSP_SCHEDULE_DELAY`: the most a SIGKILL can
/// take from a replica's finished spans.
pub const BATCH_DELAY: Duration = Duration::from_millis(1000);

/// A killed child process, and when it was killed.
#[derive(Clone, Copy, Debug)]
pub struct Killed {
    /// `service.name` of the process.
    pub service: &'static str,
    /// Wall-clock time of the SIGKILL (span timestamps are wall-clock).
    pub at: SystemTime,
}

/// The scaled-out pipeline. Dropping it kills the processes, drops the
/// database and removes the cluster.
pub struct ScaledPipeline {
    /// The OTLP receiver every service exports to.
    pub receiver: OtlpReceiver,
    /// The exchange and queue names of this test on the cluster.
    pub isolation: Isolation,
    /// `http://127.0.0.1:PORT` of the gateway.
    pub gateway_url: String,
    /// A plain HTTP client.
    pub http: reqwest::Client,
    /// checkout-service replicas; `None` once killed.
    pub checkout: Vec<Option<ServiceProcess>>,
    /// stock-service replicas; `None` once killed.
    pub stock: Vec<Option<ServiceProcess>>,
    gateway: Option<RunningService>,
    /// The broker nodes.
    pub cluster: PrivateCluster,
    // Last: dropped after the services that use it.
    _database: PostgresDatabase,
}

impl ScaledPipeline {
    /// Starts the cluster, the database, the replicas and the gateway, and
    /// waits until every replica is ready.
    pub async fn start() -> Self {
        let cluster = PrivateCluster::started("e2e-scaled", NODES).await.unwrap();
        let database = PostgresDatabase::for_test("e2e").await.unwrap();
        let receiver = OtlpReceiver::start(([127, 0, 0, 1], 0).into(), None)
            .await
            .expect("OTLP receiver starts");
        let isolation = Isolation::on_broker(cluster.amqp_url());
        let otlp = receiver.grpc_endpoint();
        let common = |extra: &[(&'static str, String)]| {
            let mut env = vec![
                ("AMQP_URL", isolation.amqp_url.clone()),
                ("AMQP_EXCHANGE", isolation.exchange.clone()),
                ("AMQP_ROUTING_KEY", isolation.routing_key.clone()),
                ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp.clone()),
                (
                    "OTEL_BSP_SCHEDULE_DELAY",
                    BATCH_DELAY.as_millis().to_string(),
                ),
                ("RUST_LOG", "info".to_owned()),
            ];
            env.extend_from_slice(extra);
            env
        };

        let mut stock = Vec::new();
        for _ in 0..REPLICAS {
            let env = common(&[
                ("AMQP_QUEUE", isolation.queue.clone()),
                ("AMQP_QUORUM_SIZE", NODES.to_string()),
                ("DATABASE_URL", database.url.clone()),
                ("HTTP_ADDRESS", "127.0.0.1:0".to_owned()),
                ("INITIAL_STOCK", INITIAL_STOCK.to_string()),
            ]);
            stock.push(Some(
                crate::start_process(
                    "stock-service",
                    &env,
                    service::startup::HTTP_ADDRESS_FIELD,
                    PATIENCE * 4,
                )
                .await,
            ));
        }
        let mut checkout = Vec::new();
        for _ in 0..REPLICAS {
            // No order-id key set: each replica makes its own, as a
            // deployment that left the setting at its default does.
            let env = common(&[("GRPC_ADDRESS", "127.0.0.1:0".to_owned())]);
            checkout.push(Some(
                crate::start_process(
                    "checkout-service",
                    &env,
                    service::startup::GRPC_ADDRESS_FIELD,
                    PATIENCE * 4,
                )
                .await,
            ));
        }
        let addresses: Vec<_> = checkout
            .iter()
            .flatten()
            .map(|replica| replica.addr)
            .collect();
        let settings = gateway_settings_for(&addresses);
        let gateway = start_gateway(&otlp, DEFAULT_TELEMETRY, settings).expect("gateway starts");
        let pipeline = Self {
            gateway_url: format!("http://{}", gateway.addr),
            gateway: Some(gateway),
            // Idle connections are dropped before the gateway's 10 s
            // header-read timeout closes them: otherwise a request can
            // race the server's close of the connection it reuses, and a
            // transport error unrelated to the fault counts as a refusal.
            http: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .expect("an HTTP client"),
            receiver,
            isolation,
            checkout,
            stock,
            cluster,
            _database: database,
        };
        pipeline.wait_until_ready().await;
        pipeline
    }

    /// Waits until the gateway and every live stock-service replica report
    /// ready (the gateway: some checkout-service replica serving).
    pub async fn wait_until_ready(&self) {
        let mut urls = vec![format!("{}/readyz", self.gateway_url)];
        urls.extend(
            self.stock
                .iter()
                .flatten()
                .map(|replica| format!("http://{}/readyz", replica.addr)),
        );
        for url in urls {
            testkit::poll::until(format!("{url} ready"), PATIENCE * 4, || async {
                let response = self.http.get(&url).send().await.ok()?;
                (response.status() == StatusCode::OK).then_some(())
            })
            .await;
        }
    }

    /// `http://…` of a live stock-service replica, for the order and stock
    /// queries (both replicas read the one database).
    pub fn stock_url(&self) -> String {
        let replica = self.stock.iter().flatten().next().expect("a live replica");
        format!("http://{}", replica.addr)
    }

    /// SIGKILLs replica `index` of checkout-service.
    pub async fn kill_checkout_service(&mut self, index: usize) -> Killed {
        let replica = self.checkout[index].take().expect("alive");
        let at = SystemTime::now();
        replica.kill().await.unwrap();
        Killed {
            service: "checkout-service",
            at,
        }
    }

    /// SIGKILLs replica `index` of stock-service.
    pub async fn kill_stock_service(&mut self, index: usize) -> Killed {
        let replica = self.stock[index].take().expect("alive");
        let at = SystemTime::now();
        replica.kill().await.unwrap();
        Killed {
            service: "stock-service",
            at,
        }
    }

    /// Waits until every accepted order was applied and checks the stock
    /// moved by exactly their units.
    pub async fn assert_applied_exactly_once(&self, accepted: &[Accepted]) {
        orders::assert_applied_exactly_once(
            &self.http,
            &self.stock_url(),
            accepted,
            INITIAL_STOCK,
            Duration::from_secs(180),
        )
        .await;
    }

    /// Checks every accepted order's trace. With no replica killed, all must
    /// be complete. With `killed`, a trace may lack spans only of the killed
    /// service, and only if the trace ended within its batch delay (plus
    /// slack for a loaded machine) before the kill: spans that waited in
    /// the killed process's export batch. Returns how many traces lost
    /// spans that way.
    pub async fn account_traces(&self, accepted: &[Accepted], killed: Option<Killed>) -> usize {
        if let Some(gateway) = &self.gateway {
            gateway.flush();
        }
        let ids: Vec<String> = accepted.iter().map(|a| a.trace_id.clone()).collect();
        // Everything still alive exports within its batch delay; a killed
        // replica's lost spans never come, so do not wait long for them.
        let patience = if killed.is_some() {
            Duration::from_secs(20)
        } else {
            Duration::from_secs(120)
        };
        let store = self.receiver.store();
        let check = check_traces(&store, &ids, patience).await;
        if check.all_complete() {
            return 0;
        }
        let Some(killed) = killed else {
            panic!("traces incomplete with no replica killed: {check}");
        };
        let slack = BATCH_DELAY + Duration::from_secs(5);
        let earliest = unix_nanos(killed.at.checked_sub(slack).unwrap_or(UNIX_EPOCH));
        let mut lost = 0;
        let mut by_span = BTreeMap::<String, usize>::new();
        for id in &ids {
            let spans = store.trace(id);
            let missing = missing_spans(&spans);
            if missing.is_empty() {
                continue;
            }
            lost += 1;
            for span in &missing {
                *by_span.entry(span.to_string()).or_default() += 1;
                assert_eq!(
                    span.service, killed.service,
                    "trace {id} lacks {span}, which the SIGKILL of {} cannot explain",
                    killed.service
                );
            }
            let last_end = spans.iter().map(|s| s.end_unix_nanos).max().unwrap_or(0);
            assert!(
                last_end >= earliest,
                "trace {id} lacks spans of {} but ended {:?} before the kill, longer than the \
                 batch delay",
                killed.service,
                Duration::from_nanos(unix_nanos(killed.at).saturating_sub(last_end))
            );
        }
        eprintln!(
            "{lost} of {} traces lost spans of the SIGKILLed {}: {by_span:?}",
            ids.len(),
            killed.service
        );
        lost
    }
}

fn unix_nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |elapsed| {
        u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
    })
}

impl Drop for ScaledPipeline {
    fn drop(&mut self) {
        if let Some(mut gateway) = self.gateway.take() {
            let _ = gateway.stop();
        }
        self.checkout.clear();
        self.stock.clear();
        self.isolation.clean_up_blocking();
    }
}
