//! [`TestPipeline`]: an OTLP receiver and the three real services, with the
//! helpers the end-to-end tests share.

use std::{net::SocketAddr, time::Duration};

use reqwest::StatusCode;
use serde_json::Value;
use telemetry::Telemetry;
use testkit::receiver::{OtlpReceiver, ReceivedSpan};

use crate::{
    PATIENCE,
    isolation::Isolation,
    orders,
    running::RunningService,
    services::{
        AdjustTelemetry, DEFAULT_TELEMETRY, LOCALHOST_ANY_PORT, declare_queue,
        gateway_settings_for, start_checkout_service, start_gateway, start_stock_service,
    },
};
use testkit::poll;

/// How to start a [`TestPipeline`].
#[derive(Clone, Debug)]
pub struct PipelineOptions {
    /// Units of each of items 1–4 in the new database.
    pub initial_stock: i64,
    /// Adjusts the gateway's settings (deadline, trust, limits).
    pub gateway: fn(&mut gateway::Settings),
    /// Where the services export spans; `None`: the pipeline's receiver.
    pub otlp_endpoint: Option<String>,
    /// Run no stock-service in-process (a test runs it as a child process).
    pub without_stock_service: bool,
    /// Adjusts every service's telemetry (propagators, resource), as the
    /// `OTEL_*` variables would.
    pub telemetry: AdjustTelemetry,
    /// The broker every service uses; `None`: [`crate::amqp_url`].
    pub amqp_url: Option<String>,
    /// How many checkout-service replicas run in-process, each on its own
    /// port, all behind the gateway. 0: none, and no gateway either: the
    /// test runs checkout-service itself (as child processes, say) and
    /// starts the gateway with [`TestPipeline::start_gateway`].
    pub checkout_replicas: usize,
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            initial_stock: 1000,
            gateway: |_| {},
            otlp_endpoint: None,
            without_stock_service: false,
            telemetry: DEFAULT_TELEMETRY,
            amqp_url: None,
            checkout_replicas: 1,
        }
    }
}

/// The three services, an OTLP receiver and an HTTP client.
pub struct TestPipeline {
    /// Receives every span the services export.
    pub receiver: OtlpReceiver,
    /// Broker and file names owned by this pipeline.
    pub isolation: Isolation,
    /// `http://127.0.0.1:PORT` of the gateway (empty until it runs).
    pub gateway_url: String,
    /// `http://127.0.0.1:PORT` of stock-service's HTTP API (empty when the
    /// test runs stock-service itself).
    pub stock_url: String,
    /// Where the services export spans.
    pub otlp_endpoint: String,
    /// What the test changed in every service's telemetry.
    pub telemetry: AdjustTelemetry,
    /// Units of each item stock-service started with.
    pub initial_stock: i64,
    /// Plain HTTP client.
    pub http: reqwest::Client,
    /// What the test changes in the gateway's settings.
    adjust_gateway: fn(&mut gateway::Settings),
    /// stock-service, the checkout-service replicas, the gateway (in start
    /// order).
    pub services: Vec<RunningService>,
}

impl TestPipeline {
    /// Starts everything with default options.
    pub async fn start() -> Self {
        Self::start_with(PipelineOptions::default()).await
    }

    /// Starts the receiver, then stock-service (which declares the queue),
    /// the checkout-service replicas and the gateway.
    pub async fn start_with(options: PipelineOptions) -> Self {
        let receiver = OtlpReceiver::start(([127, 0, 0, 1], 0).into(), None)
            .await
            .expect("OTLP receiver starts");
        let isolation = match options.amqp_url.clone() {
            Some(url) => Isolation::on_broker(url),
            None => Isolation::new(),
        };
        std::fs::create_dir_all(&isolation.dir).expect("temp dir");
        let otlp_endpoint = options
            .otlp_endpoint
            .clone()
            .unwrap_or_else(|| receiver.grpc_endpoint());

        let mut services = Vec::new();
        let mut stock_url = String::new();
        if !options.without_stock_service {
            let stock = start_stock_service(
                &otlp_endpoint,
                options.telemetry,
                &isolation,
                options.initial_stock,
            )
            .expect("stock-service starts");
            stock_url = format!("http://{}", stock.addr);
            services.push(stock);
        } else {
            declare_queue(&isolation).await;
        }
        let mut checkout_addrs = Vec::new();
        for _ in 0..options.checkout_replicas {
            let checkout = start_checkout_service(
                &otlp_endpoint,
                options.telemetry,
                &isolation,
                LOCALHOST_ANY_PORT,
            )
            .expect("checkout-service starts");
            checkout_addrs.push(checkout.addr);
            services.push(checkout);
        }

        let mut pipeline = Self {
            gateway_url: String::new(),
            stock_url,
            otlp_endpoint,
            telemetry: options.telemetry,
            initial_stock: options.initial_stock,
            receiver,
            isolation,
            http: reqwest::Client::new(),
            services,
            adjust_gateway: options.gateway,
        };
        if !checkout_addrs.is_empty() {
            pipeline.start_gateway(&checkout_addrs);
        }
        pipeline
    }

    /// Starts the gateway in front of checkout-service replicas at
    /// `checkout_addrs` (for a pipeline started with no replica of its own),
    /// asking the pipeline's stock-service for order status.
    pub fn start_gateway(&mut self, checkout_addrs: &[SocketAddr]) {
        let mut settings = gateway_settings_for(checkout_addrs);
        if !self.stock_url.is_empty() {
            settings.stock_service_url = gateway::stock_client::parse_stock_url(&self.stock_url)
                .expect("stock-service's URL");
        }
        (self.adjust_gateway)(&mut settings);
        let gateway =
            start_gateway(&self.otlp_endpoint, self.telemetry, settings).expect("gateway starts");
        self.gateway_url = format!("http://{}", gateway.addr);
        self.services.push(gateway);
    }

    /// The addresses of the checkout-service replicas running in-process.
    pub fn checkout_addrs(&self) -> Vec<SocketAddr> {
        self.services
            .iter()
            .filter(|service| service.name == "checkout-service")
            .map(|service| service.addr)
            .collect()
    }

    /// Starts a new checkout-service on the address of the stopped one (the
    /// first replica), so the gateway's channel reconnects to it.
    pub fn restart_checkout_service(&mut self) {
        let position = self
            .services
            .iter()
            .position(|service| service.name == "checkout-service")
            .expect("a checkout-service");
        let addr = self.services[position].addr;
        let _ = self.services[position].stop();
        self.services[position] =
            start_checkout_service(&self.otlp_endpoint, self.telemetry, &self.isolation, addr)
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
        let url = format!("{}/api/orders/{order_id}", self.stock_url);
        poll::until(format!("order {order_id} processed"), PATIENCE, || async {
            let response = self.http.get(&url).send().await.ok()?;
            if response.status() != StatusCode::OK {
                return None;
            }
            response.json().await.ok()
        })
        .await
    }

    /// Starts placing fresh orders through the gateway in the background,
    /// [`LOAD_CONCURRENCY`](orders::LOAD_CONCURRENCY) at a time; each is retried for up
    /// to `give_up_after`.
    pub fn load(&self, give_up_after: Duration) -> orders::Load {
        orders::Load::start_at(
            self.http.clone(),
            self.gateway_url.clone(),
            orders::Pace::InFlight(orders::LOAD_CONCURRENCY),
            give_up_after,
        )
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
        self.isolation.clean_up_blocking();
    }
}
