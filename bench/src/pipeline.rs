//! The pipeline runs: the three release binaries as child processes against the local
//! RabbitMQ, loaded closed-loop through the gateway, untraced (`always_off`) or traced
//! (`always_on`, exported over OTLP/gRPC to a receiver in this process).
//!
//! One run, at one concurrency C:
//!
//! 1. fresh names (exchange, queue, their dead-letter pair), a fresh SQLite file in a
//!    temporary directory, an OTLP receiver on 127.0.0.1 (untraced runs have one too, to
//!    show that nothing is exported);
//! 2. stock-service, then checkout-service, then the gateway, each on 127.0.0.1:0, their
//!    addresses read from their start-up log lines; then both `/readyz` must answer 200;
//! 3. warmup: `run_load` for the warmup time, then wait until stock-service applied
//!    everything accepted so far (stock of item 1 = initial − applied orders);
//! 4. CPU snapshot; the measured `run_load`; wait until every accepted order is applied;
//!    traced: wait (bounded) until every accepted checkout's trace is complete; CPU
//!    snapshot. The CPU window thus covers the work each checkout causes, downstream and
//!    span export included;
//! 5. peak RSS; `processedAt` of a sample of the accepted orders; SIGTERM to all three
//!    (they flush their spans), their logs scanned for dropped spans; the receiver's
//!    spans counted; broker objects, database and receiver removed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use checkout_cli::load::{AcceptedOrder, LoadConfig, LoadMode, LoadReport, run_load};
use checkout_cli::verify::{self, TraceCheck};

use crate::tally::SpanTally;
use futures::StreamExt;
use telemetry::BatchSettings;
use tokio::time::Instant;

use crate::broker::{AMQP_URL, Cleanup};
use service::startup::{GRPC_ADDRESS_FIELD, HTTP_ADDRESS_FIELD};

use crate::procfs::{self, Snapshot};
use crate::services::{LogSummary, Service};
use crate::stats::{self, Latency};

/// The log filter of the services: warnings and errors, plus the start-up module's
/// info line that carries the bound address.
pub const RUST_LOG: &str = "warn,service::startup=info";

/// Whether the services record and export spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tracing {
    /// `OTEL_TRACES_SAMPLER=always_off`.
    Off,
    /// `OTEL_TRACES_SAMPLER=always_on`.
    On,
}

impl Tracing {
    fn sampler(self) -> &'static str {
        match self {
            Self::Off => "always_off",
            Self::On => "always_on",
        }
    }
}

/// What stays the same across pipeline runs.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Where the release binaries are.
    pub binaries: PathBuf,
    /// Unmeasured lead-in.
    pub warmup: Duration,
    /// Measured window.
    pub duration: Duration,
    /// `INITIAL_STOCK` of every item.
    pub initial_stock: u64,
    /// `OTEL_BSP_*`.
    pub batch: BatchSettings,
    /// stock-service's `AMQP_PREFETCH`.
    pub prefetch: u16,
    /// Accepted orders whose `processedAt` is read.
    pub apply_sample: usize,
    /// Longest wait for stock-service to apply the accepted orders.
    pub apply_timeout: Duration,
    /// Longest wait for complete traces.
    pub trace_timeout: Duration,
    /// Longest wait for a service to start (log its address, then be ready).
    pub start_timeout: Duration,
    /// Longest wait for a service to exit after SIGTERM.
    pub stop_timeout: Duration,
}

/// From the 202 to stock-service's `processedAt`, over a sample of the accepted orders.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ApplyLatency {
    /// Orders asked about.
    pub sampled: usize,
    /// Orders stock-service had processed.
    pub found: usize,
    /// Median, ms (1 ms resolution; ≤ 0 when applied before the 202 reached the client).
    pub p50_ms: Option<f64>,
    /// 99th percentile, ms.
    pub p99_ms: Option<f64>,
}

/// The spans of a traced run.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceFigures {
    /// The trace check of the accepted checkouts (after the services' final flush).
    pub check: TraceCheck,
    /// Spans received that belong to the accepted checkouts' traces.
    pub spans_of_checkouts: usize,
    /// Spans expected at least: six per accepted checkout.
    pub spans_expected_min: usize,
}

/// One service's end of run.
#[derive(Debug, Clone)]
pub struct ServiceFigures {
    /// `gateway`, `checkout-service`, `stock-service`.
    pub name: &'static str,
    /// Peak resident set (VmHWM) in kB.
    pub peak_rss_kb: u64,
    /// Spans its exporter dropped, and whether the count is exact.
    pub dropped_spans: (u64, bool),
    /// Its log summary.
    pub logs: LogSummary,
    /// Whether it exited on SIGTERM in time.
    pub graceful: bool,
}

/// What one pipeline run measured (warmup excluded).
#[derive(Debug, Clone)]
pub struct PipelineResult {
    /// Untraced or traced.
    pub tracing: Tracing,
    /// Requests in flight.
    pub concurrency: usize,
    /// The load generator's report of the measured window.
    pub load: LoadReport,
    /// Accepted checkouts during the warmup.
    pub warmup_accepted: u64,
    /// Orders stock-service applied from the start of the window until the end of the
    /// apply wait (normally exactly the accepted ones).
    pub applied: u64,
    /// How long after the window the last accepted order was applied (or the timeout).
    pub apply_wait: Duration,
    /// From the 202 to `processedAt`.
    pub apply_latency: ApplyLatency,
    /// CPU time over the measured window (see the module docs) per process: the three
    /// services, the broker and this process.
    pub cpu: Vec<(String, Duration)>,
    /// Length of the CPU window.
    pub cpu_window: Duration,
    /// Share of the machine's CPU busy over the window.
    pub machine_busy: f64,
    /// Share of the machine's CPU busy in processes not measured (see
    /// [`Usage::unaccounted_busy`](crate::procfs::Usage::unaccounted_busy)).
    pub unaccounted_busy: f64,
    /// Per service: memory, dropped spans, logs.
    pub services: Vec<ServiceFigures>,
    /// All spans the receiver got (also those of the warmup and of the order queries;
    /// 0 when untraced).
    pub spans_received: usize,
    /// Traced runs: the accepted checkouts' traces.
    pub traces: Option<TraceFigures>,
}

impl PipelineResult {
    /// Accepted checkouts in the window.
    pub fn accepted(&self) -> u64 {
        self.load.accepted()
    }

    /// Accepted checkouts per second.
    pub fn throughput(&self) -> f64 {
        self.accepted() as f64 / self.load.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Orders applied per second from the start of the window until the last accepted
    /// one was applied: the end-to-end rate, backlog included.
    pub fn applied_rate(&self) -> f64 {
        let span = self.load.elapsed + self.apply_wait;
        self.applied as f64 / span.as_secs_f64().max(f64::EPSILON)
    }

    /// Response latency.
    pub fn latency(&self) -> Latency {
        Latency::of_load(&self.load.latency)
    }

    /// Requests that did not get a 2xx.
    pub fn failed(&self) -> u64 {
        self.load.errors()
    }

    /// Spans dropped by all exporters, and whether the sum is exact.
    pub fn dropped_spans(&self) -> (u64, bool) {
        self.services
            .iter()
            .fold((0, true), |(sum, exact), service| {
                (
                    sum + service.dropped_spans.0,
                    exact && service.dropped_spans.1,
                )
            })
    }
}

/// The three services of one run, with their isolation; everything is removed or
/// killed when dropped (broker objects by the caller's [`Cleanup`]).
struct Pipeline {
    stock: Service,
    checkout: Service,
    gateway: Service,
    _dir: tempfile::TempDir,
}

impl Pipeline {
    async fn start(
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

    fn processes(&self) -> Vec<(String, u32)> {
        [&self.gateway, &self.checkout, &self.stock]
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
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .context("cannot build an HTTP client")
}

/// Orders stock-service has applied: the initial stock of item 1 minus what is left
/// (each checkout orders one unit of item 1).
async fn applied_orders(
    client: &reqwest::Client,
    stock: SocketAddr,
    initial: u64,
) -> anyhow::Result<u64> {
    let level: serde_json::Value = client
        .get(format!("http://{stock}/api/stock/1"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let available = level["available"]
        .as_u64()
        .context("no `available` in the stock answer")?;
    Ok(initial.saturating_sub(available))
}

/// Polls until at least `target` orders are applied or `timeout` passes; returns the
/// count reached.
async fn wait_applied(
    client: &reqwest::Client,
    stock: SocketAddr,
    initial: u64,
    target: u64,
    timeout: Duration,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let applied = applied_orders(client, stock, initial).await?;
        if applied >= target || Instant::now() >= deadline {
            return Ok(applied);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `processedAt − acceptedAt` of an evenly spread sample of the accepted orders.
async fn apply_latency(
    client: &reqwest::Client,
    stock: SocketAddr,
    accepted: &[AcceptedOrder],
    limit: usize,
) -> ApplyLatency {
    let with_id: Vec<&AcceptedOrder> = accepted
        .iter()
        .filter(|order| order.order_id.is_some())
        .collect();
    let sample: Vec<&AcceptedOrder> = stats::sample_indices(with_id.len(), limit)
        .into_iter()
        .map(|i| with_id[i])
        .collect();
    let mut deltas: Vec<f64> = futures::stream::iter(sample.iter().copied())
        .map(|order| async move {
            let id = order.order_id.as_deref()?;
            let answer: serde_json::Value = client
                .get(format!("http://{stock}/api/orders/{id}"))
                .send()
                .await
                .ok()?
                .error_for_status()
                .ok()?
                .json()
                .await
                .ok()?;
            let processed_ms = answer["processedAt"].as_i64()?;
            Some(processed_ms as f64 - order.accepted_at_unix_micros as f64 / 1_000.0)
        })
        .buffer_unordered(16)
        .filter_map(|delta| async move { delta })
        .collect()
        .await;
    deltas.sort_by(f64::total_cmp);
    ApplyLatency {
        sampled: sample.len(),
        found: deltas.len(),
        p50_ms: stats::percentile(&deltas, 0.5),
        p99_ms: stats::percentile(&deltas, 0.99),
    }
}

/// Runs the pipeline at `concurrency`, untraced or traced.
pub async fn run_pipeline(
    config: &PipelineConfig,
    tracing: Tracing,
    concurrency: usize,
    broker: &[(String, u32)],
    clock_ticks: u64,
    cleanup: &Cleanup,
) -> anyhow::Result<PipelineResult> {
    let receiver = SpanTally::start()
        .await
        .context("cannot start the OTLP receiver")?;
    let result = async {
        let pipeline = Pipeline::start(config, tracing, &receiver.endpoint(), cleanup).await?;
        measure(
            config,
            tracing,
            concurrency,
            broker,
            clock_ticks,
            pipeline,
            &receiver,
        )
        .await
    }
    .await;
    receiver.shutdown().await;
    if let Err(error) = cleanup.run().await {
        eprintln!("warning: {error:#}");
    }
    result
}

async fn measure(
    config: &PipelineConfig,
    tracing: Tracing,
    concurrency: usize,
    broker: &[(String, u32)],
    clock_ticks: u64,
    pipeline: Pipeline,
    receiver: &SpanTally,
) -> anyhow::Result<PipelineResult> {
    let client = http_client()?;
    let gateway = format!("http://{}", pipeline.gateway.addr);
    let stock = pipeline.stock.addr;
    let initial = config.initial_stock;
    let mode = LoadMode::Closed { concurrency };

    let mut warmup_accepted = 0;
    if !config.warmup.is_zero() {
        let warmup = run_load(LoadConfig {
            duration: Some(config.warmup),
            ..LoadConfig::new(gateway.clone(), mode)
        })
        .await?;
        warmup_accepted = warmup.accepted();
    }
    let applied_before = wait_applied(
        &client,
        stock,
        initial,
        warmup_accepted,
        config.apply_timeout,
    )
    .await?;

    let mut measured = pipeline.processes();
    measured.extend(broker.iter().cloned());
    measured.push(("bench".to_owned(), std::process::id()));
    let before = Snapshot::take(&measured)?;
    let window_start = Instant::now();
    let load = run_load(LoadConfig {
        duration: Some(config.duration),
        ..LoadConfig::new(gateway, mode)
    })
    .await?;
    let load_done = Instant::now();
    let applied_after = wait_applied(
        &client,
        stock,
        initial,
        applied_before + load.accepted(),
        config.apply_timeout,
    )
    .await?;
    let apply_wait = load_done.elapsed();
    let first_check = match tracing {
        Tracing::On => Some(
            receiver
                .check(&load.accepted_trace_ids, config.trace_timeout)
                .await,
        ),
        Tracing::Off => None,
    };
    let after = Snapshot::take(&measured)?;
    let cpu_window = window_start.elapsed();
    let usage = before.until(&after, clock_ticks);

    let mut peaks = Vec::new();
    for service in [&pipeline.gateway, &pipeline.checkout, &pipeline.stock] {
        peaks.push(procfs::peak_rss_kb(service.pid)?);
    }
    let apply_latency =
        apply_latency(&client, stock, &load.accepted_orders, config.apply_sample).await;

    // Stop all three at once; each flushes its spans and logs what it dropped.
    let Pipeline {
        stock: stock_service,
        checkout,
        gateway,
        _dir,
    } = pipeline;
    let (gateway, checkout, stock_service) = futures::join!(
        gateway.stop(config.stop_timeout),
        checkout.stop(config.stop_timeout),
        stock_service.stop(config.stop_timeout),
    );
    let services = [
        ("gateway", gateway),
        ("checkout-service", checkout),
        ("stock-service", stock_service),
    ]
    .into_iter()
    .zip(peaks)
    .map(|((name, stopped), peak_rss_kb)| ServiceFigures {
        name,
        peak_rss_kb,
        dropped_spans: stopped.logs.dropped_spans(),
        logs: stopped.logs,
        graceful: stopped.graceful,
    })
    .collect();

    let traces = match first_check {
        Some(check) => {
            // Spans flushed at shutdown may complete traces the first check missed.
            let check = if check.all_complete() {
                check
            } else {
                receiver
                    .check(&load.accepted_trace_ids, Duration::from_secs(3))
                    .await
            };
            let spans_of_checkouts = receiver.spans_of(&load.accepted_trace_ids);
            Some(TraceFigures {
                check,
                spans_of_checkouts,
                spans_expected_min: verify::CHECKOUT_TRACE.len() * load.accepted_trace_ids.len(),
            })
        }
        None => None,
    };
    Ok(PipelineResult {
        tracing,
        concurrency,
        warmup_accepted,
        applied: applied_after.saturating_sub(applied_before),
        apply_wait,
        apply_latency,
        cpu: usage.per_process,
        cpu_window,
        machine_busy: usage.machine_busy,
        unaccounted_busy: usage.unaccounted_busy,
        services,
        spans_received: receiver.spans(),
        traces,
        load,
    })
}
