//! Test harness: the whole pipeline in one process.
//!
//! [`TestPipeline::start`] runs an OTLP receiver and the three real services,
//! each built with its own `Application::build` on port 0, against the local
//! RabbitMQ and a fresh SQLite file. Every pipeline gets its own exchange,
//! queues and database, so tests running in parallel cannot take each
//! other's messages, and removes them when dropped.
//!
//! Each service runs on its own thread with its own Tokio runtime and its own
//! [`Telemetry`], installed as that thread's default `tracing` dispatcher.
//! That is what keeps three services in one process apart: each exports
//! spans with its own `service.name`, exactly as three processes would.
//!
//! [`orders`] places many orders under faults and checks the exactly-once
//! accounting; [`process`] runs a service as a real child process, for the
//! tests that kill one with SIGKILL.

pub mod orders;
pub mod process;

use std::{
    future::Future, net::SocketAddr, path::PathBuf, pin::Pin, thread::JoinHandle, time::Duration,
};

use anyhow::Context;
use checkout_cli::receiver::{OtlpReceiver, ReceivedSpan};
use lapin::{Connection, ConnectionProperties, options::*};
use reqwest::StatusCode;
use serde_json::Value;
use utils::{
    shutdown::CancellationToken,
    telemetry::{Telemetry, TelemetryConfig},
};

/// Generous deadline for anything a loaded 2-core machine must eventually do.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The local broker used by the tests (`AMQP_URL` overrides).
pub fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@localhost:5672/%2f".into())
}

/// Where a started service listens.
#[derive(Clone, Copy, Debug)]
pub struct ServiceAddrs {
    /// Its main address.
    pub addr: SocketAddr,
    /// Its admin address, if separate.
    pub admin_addr: Option<SocketAddr>,
}

impl From<SocketAddr> for ServiceAddrs {
    fn from(addr: SocketAddr) -> Self {
        Self {
            addr,
            admin_addr: None,
        }
    }
}

/// A service's future, as built on its own thread.
pub type RunFuture = Pin<Box<dyn Future<Output = anyhow::Result<()>>>>;

/// One service running on its own thread and runtime.
pub struct RunningService {
    /// `gateway`, `checkout-service` or `stock-service`.
    pub name: &'static str,
    /// Its bound address.
    pub addr: SocketAddr,
    /// Its admin (fault-injection) address, if it has a separate one.
    pub admin_addr: Option<SocketAddr>,
    stop: CancellationToken,
    telemetry: Telemetry,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
}

impl RunningService {
    /// Starts `build` on a new thread under its own telemetry; `build`
    /// returns the bound address and the future that serves until the token
    /// is cancelled.
    pub fn spawn<B, F>(
        name: &'static str,
        telemetry_config: TelemetryConfig,
        build: B,
    ) -> anyhow::Result<Self>
    where
        B: FnOnce(CancellationToken) -> F + Send + 'static,
        F: Future<Output = anyhow::Result<(ServiceAddrs, RunFuture)>>,
    {
        let stop = CancellationToken::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let token = stop.clone();
        let thread = std::thread::Builder::new().name(name.to_owned()).spawn(
            move || -> anyhow::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                // The exporter's gRPC channel lives on this runtime.
                let telemetry = runtime.block_on(async {
                    Telemetry::build_with_writer(&telemetry_config, log_writer(name))
                });
                let telemetry = match telemetry {
                    Ok(telemetry) => telemetry,
                    Err(error) => {
                        let _ = ready_tx.send(Err(anyhow::anyhow!("{error}")));
                        return Ok(());
                    }
                };
                let _default = tracing::dispatcher::set_default(telemetry.dispatch());
                runtime.block_on(async {
                    let run = match build(token).await {
                        Ok((addrs, run)) => {
                            let _ = ready_tx.send(Ok((addrs, telemetry.clone())));
                            run
                        }
                        Err(error) => {
                            let _ = ready_tx.send(Err(error));
                            return Ok(());
                        }
                    };
                    let result = run.await;
                    telemetry.shutdown().await;
                    result
                })
            },
        )?;
        let (ServiceAddrs { addr, admin_addr }, telemetry) = ready_rx
            .recv()
            .context("service thread ended before it was ready")?
            .with_context(|| format!("{name} did not start"))?;
        Ok(Self {
            name,
            addr,
            admin_addr,
            stop,
            telemetry,
            thread: Some(thread),
        })
    }

    /// Exports every span this service has finished.
    pub fn flush(&self) {
        self.telemetry.force_flush();
    }

    /// Graceful stop: cancel, then wait for the thread to finish.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        match self.thread.take() {
            Some(thread) => thread
                .join()
                .map_err(|_| anyhow::anyhow!("{} panicked", self.name))?,
            None => Ok(()),
        }
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Service logs are discarded unless `E2E_LOGS=1`, which sends them to stderr.
fn log_writer(_service: &str) -> tracing_subscriber_writer::Writer {
    tracing_subscriber_writer::Writer(std::env::var_os("E2E_LOGS").is_some())
}

mod tracing_subscriber_writer {
    /// stderr or nothing.
    #[derive(Clone, Copy)]
    pub struct Writer(pub bool);

    impl std::io::Write for Writer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0 {
                std::io::stderr().write(buf)
            } else {
                Ok(buf.len())
            }
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Writer {
        type Writer = Self;
        fn make_writer(&'a self) -> Self {
            *self
        }
    }
}

/// Names of the broker objects and files one pipeline owns.
#[derive(Clone, Debug)]
pub struct Isolation {
    /// Topic exchange.
    pub exchange: String,
    /// stock-service's queue.
    pub queue: String,
    /// Routing key.
    pub routing_key: String,
    /// Directory holding the SQLite database.
    pub dir: PathBuf,
}

impl Isolation {
    /// Fresh, unique names.
    pub fn new() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = std::env::temp_dir().join(format!("checkout-e2e-{id}"));
        Self {
            exchange: format!("e2e-{id}"),
            queue: format!("e2e-{id}"),
            routing_key: "checkout.processed".to_owned(),
            dir,
        }
    }

    /// The SQLite URL inside [`Isolation::dir`].
    pub fn database_url(&self) -> String {
        format!("sqlite://{}?mode=rwc", self.dir.join("stock.db").display())
    }

    /// Deletes the queues, exchanges and files (best effort).
    pub async fn clean_up(&self) {
        if let Ok(connection) =
            Connection::connect(&amqp_url(), ConnectionProperties::default()).await
            && let Ok(channel) = connection.create_channel().await
        {
            for queue in [self.queue.clone(), format!("{}.dead", self.queue)] {
                let _ = channel
                    .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
            for exchange in [self.exchange.clone(), format!("{}.dlx", self.exchange)] {
                let _ = channel
                    .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                    .await;
            }
            let _ = connection.close(200, "done".into()).await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Default for Isolation {
    fn default() -> Self {
        Self::new()
    }
}

/// Telemetry for a service under test: export quickly to `endpoint`.
pub fn test_telemetry(service: &str, endpoint: &str) -> TelemetryConfig {
    let mut config = TelemetryConfig::new(service, endpoint);
    config.batch.scheduled_delay = Duration::from_millis(100);
    config.log_filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    config
}

/// How to start a [`TestPipeline`].
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    /// Units of each of items 1–4 in the new database.
    pub initial_stock: i64,
    /// Adjusts the gateway's settings (deadline, trust, limits).
    pub gateway: fn(&mut gateway::configuration::Settings),
    /// Where the services export spans; `None`: the pipeline's receiver.
    pub otlp_endpoint: Option<String>,
    /// Run no stock-service in-process (a test runs it as a child process).
    pub without_stock_service: bool,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            initial_stock: 1000,
            gateway: |_| {},
            otlp_endpoint: None,
            without_stock_service: false,
        }
    }
}

/// The three services, an OTLP receiver and an HTTP client.
pub struct TestPipeline {
    /// Receives every span the services export.
    pub receiver: OtlpReceiver,
    /// Broker and file names owned by this pipeline.
    pub isolation: Isolation,
    /// `http://127.0.0.1:PORT` of the gateway.
    pub gateway_url: String,
    /// `http://127.0.0.1:PORT` of stock-service's HTTP API (empty when the
    /// test runs stock-service itself).
    pub stock_url: String,
    /// Where the services export spans.
    pub otlp_endpoint: String,
    /// Units of each item stock-service started with.
    pub initial_stock: i64,
    /// Plain HTTP client.
    pub http: reqwest::Client,
    /// stock-service, checkout-service, gateway (in start order).
    pub services: Vec<RunningService>,
}

impl TestPipeline {
    /// Starts everything with default options.
    pub async fn start() -> Self {
        Self::start_with(PipelineOptions::default()).await
    }

    /// Starts the receiver, then stock-service (which declares the queue),
    /// checkout-service and the gateway.
    pub async fn start_with(options: PipelineOptions) -> Self {
        let receiver = OtlpReceiver::start(([127, 0, 0, 1], 0).into(), None)
            .await
            .expect("OTLP receiver starts");
        let isolation = Isolation::new();
        std::fs::create_dir_all(&isolation.dir).expect("temp dir");
        let otlp_endpoint = options
            .otlp_endpoint
            .clone()
            .unwrap_or_else(|| receiver.grpc_endpoint());

        let mut services = Vec::new();
        let mut stock_url = String::new();
        if !options.without_stock_service {
            let stock = start_stock_service(&otlp_endpoint, &isolation, options.initial_stock)
                .expect("stock-service starts");
            stock_url = format!("http://{}", stock.addr);
            services.push(stock);
        } else {
            declare_queue(&isolation).await;
        }
        let checkout = start_checkout_service(&otlp_endpoint, &isolation, LOCALHOST_ANY_PORT)
            .expect("checkout-service starts");
        let mut gateway_settings = gateway_settings(checkout.addr);
        (options.gateway)(&mut gateway_settings);
        let gateway = start_gateway(&otlp_endpoint, gateway_settings).expect("gateway starts");
        let gateway_url = format!("http://{}", gateway.addr);
        services.extend([checkout, gateway]);

        Self {
            gateway_url,
            stock_url,
            otlp_endpoint,
            initial_stock: options.initial_stock,
            receiver,
            isolation,
            http: reqwest::Client::new(),
            services,
        }
    }

    /// Starts a new checkout-service on the address of the stopped one, so
    /// the gateway's channel reconnects to it.
    pub fn restart_checkout_service(&mut self) {
        let position = self
            .services
            .iter()
            .position(|service| service.name == "checkout-service")
            .expect("a checkout-service");
        let addr = self.services[position].addr;
        let _ = self.services[position].stop();
        self.services[position] =
            start_checkout_service(&self.otlp_endpoint, &self.isolation, addr)
                .expect("checkout-service restarts");
    }

    /// The running service called `name`.
    pub fn service(&mut self, name: &str) -> &mut RunningService {
        self.services
            .iter_mut()
            .find(|service| service.name == name)
            .unwrap_or_else(|| panic!("no service {name}"))
    }

    /// Posts `body` to `/api/checkout` with extra headers; returns the status
    /// and the JSON body.
    pub async fn checkout(&self, body: &Value, headers: &[(&str, &str)]) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(format!("{}/api/checkout", self.gateway_url))
            .json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("gateway answers");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Units of `item` available, from stock-service's API.
    pub async fn stock(&self, item: i64) -> i64 {
        let body: Value = self
            .http
            .get(format!("{}/api/stock/{item}", self.stock_url))
            .send()
            .await
            .expect("stock-service answers")
            .json()
            .await
            .expect("JSON body");
        body["available"].as_i64().expect("available is a number")
    }

    /// Waits until stock-service has processed `order_id`; returns its record.
    pub async fn wait_for_order(&self, order_id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let response = self
                .http
                .get(format!("{}/api/orders/{order_id}", self.stock_url))
                .send()
                .await
                .expect("stock-service answers");
            if response.status() == StatusCode::OK {
                return response.json().await.expect("JSON body");
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "order {order_id} was not processed within {PATIENCE:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until stock-service has applied every accepted order and checks
    /// the stock moved by exactly their units (see [`orders`]).
    pub async fn assert_applied_exactly_once(&self, accepted: &[orders::Accepted]) {
        orders::assert_applied_exactly_once(
            &self.http,
            &self.stock_url,
            accepted,
            self.initial_stock,
            Duration::from_secs(120),
        )
        .await;
    }

    /// Exports every finished span of every service now.
    pub async fn flush_telemetry(&self) {
        let telemetries: Vec<Telemetry> = self
            .services
            .iter()
            .map(|service| service.telemetry.clone())
            .collect();
        tokio::task::spawn_blocking(move || telemetries.iter().for_each(Telemetry::force_flush))
            .await
            .expect("flush");
    }

    /// Flushes, then waits until the trace satisfies `done`.
    pub async fn wait_for_trace(
        &self,
        trace_id: &str,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Vec<ReceivedSpan> {
        self.flush_telemetry().await;
        match self
            .receiver
            .store()
            .wait_for_trace(trace_id, PATIENCE, done)
            .await
        {
            Ok(spans) => spans,
            Err(seen) => panic!(
                "trace {trace_id} incomplete after {PATIENCE:?}; received:\n{}",
                seen.iter()
                    .map(|s| format!("  {} {} {} ({})", s.service_name, s.kind, s.name, s.span_id))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
    }

    /// Stops every service, removes the broker objects and files (what
    /// dropping the pipeline does, off the async threads).
    pub async fn shut_down(self) {
        tokio::task::spawn_blocking(move || drop(self))
            .await
            .expect("pipeline shuts down");
    }
}

impl Drop for TestPipeline {
    /// Runs on success and on a failed assertion alike, so a failing test
    /// leaves no queues behind either.
    fn drop(&mut self) {
        for mut service in self.services.drain(..).rev() {
            let _ = service.stop();
        }
        let isolation = self.isolation.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                runtime.block_on(isolation.clean_up());
            }
        })
        .join();
    }
}

/// Port 0 on the loopback interface.
pub const LOCALHOST_ANY_PORT: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

/// Declares the pipeline's queue the way stock-service does, for tests that
/// start stock-service only later (or as a child process): checkout-service
/// refuses orders that no queue would receive.
pub async fn declare_queue(isolation: &Isolation) {
    let settings = stock_settings(isolation, 0).amqp;
    let session = stock_service::broker::BrokerSession::open(&settings)
        .await
        .expect("topology declared");
    session.close().await;
}

fn stock_settings(
    isolation: &Isolation,
    initial_stock: i64,
) -> stock_service::configuration::Settings {
    let mut settings = stock_service::configuration::Settings::default();
    settings.amqp.url = amqp_url();
    settings.amqp.exchange = isolation.exchange.clone();
    settings.amqp.queue = isolation.queue.clone();
    settings.amqp.routing_key = isolation.routing_key.clone();
    settings.database_url = isolation.database_url();
    settings.http_address = LOCALHOST_ANY_PORT;
    settings.initial_stock = stock_service::configuration::InitialStock::uniform(initial_stock);
    settings
}

/// Starts stock-service on port 0 with the pipeline's names.
pub fn start_stock_service(
    otlp_endpoint: &str,
    isolation: &Isolation,
    initial_stock: i64,
) -> anyhow::Result<RunningService> {
    let settings = stock_settings(isolation, initial_stock);
    RunningService::spawn(
        "stock-service",
        test_telemetry("stock-service", otlp_endpoint),
        move |stop| async move {
            let application = stock_service::startup::Application::build(settings).await?;
            let addr = application.http_addr();
            let run: RunFuture = Box::pin(application.run_until_stopped(stop));
            Ok((addr.into(), run))
        },
    )
}

/// Starts checkout-service on `addr` (port 0 for any) publishing to the
/// pipeline's exchange.
pub fn start_checkout_service(
    otlp_endpoint: &str,
    isolation: &Isolation,
    addr: SocketAddr,
) -> anyhow::Result<RunningService> {
    let settings = checkout_service::configuration::Settings::local(
        addr,
        checkout_service::configuration::AmqpSettings {
            url: amqp_url(),
            exchange: isolation.exchange.clone(),
            routing_key: isolation.routing_key.clone(),
        },
    );
    RunningService::spawn(
        "checkout-service",
        test_telemetry("checkout-service", otlp_endpoint),
        move |stop| async move {
            let application = checkout_service::startup::Application::build(settings).await?;
            let addrs = ServiceAddrs {
                addr: application.local_addr(),
                admin_addr: Some(application.admin_addr()),
            };
            let run: RunFuture = Box::pin(application.run_until_stopped(stop));
            Ok((addrs, run))
        },
    )
}

/// Gateway settings for port 0, calling checkout-service at `checkout_addr`.
pub fn gateway_settings(checkout_addr: SocketAddr) -> gateway::configuration::Settings {
    gateway::configuration::Settings::new(LOCALHOST_ANY_PORT, &format!("http://{checkout_addr}"))
}

/// Starts a gateway with `settings`.
pub fn start_gateway(
    otlp_endpoint: &str,
    settings: gateway::configuration::Settings,
) -> anyhow::Result<RunningService> {
    RunningService::spawn(
        "gateway",
        test_telemetry("gateway", otlp_endpoint),
        move |stop| async move {
            let application = gateway::startup::Application::build(settings).await?;
            let addr = application.local_addr();
            let run: RunFuture = Box::pin(application.run_until_stopped(stop));
            Ok((addr.into(), run))
        },
    )
}
