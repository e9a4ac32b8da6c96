//! The broker is stopped and started (`rabbitmqctl -n NODE stop_app` /
//! `start_app`) in the middle of the load. Nothing accepted is lost and
//! nothing is applied twice; during the outage the gateway answers 503.
//!
//! The broker is a private RabbitMQ node this test starts on free ports
//! (`scripts/rabbitmq-node`) and stops and removes however it ends: a test
//! never stops the machine's default node, which other tests and people use.
//! It needs what `rabbitmqctl` needs: root or the rabbitmq user.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::{
    net::TcpListener,
    process::{Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use e2e::{PATIENCE, PipelineOptions, TestPipeline, orders::Load, poll};
use reqwest::StatusCode;
use serde_json::json;

const INITIAL_STOCK: i64 = 1_000_000;

/// A private RabbitMQ node, stopped and removed when dropped (however the
/// test ends).
struct PrivateBroker {
    /// `NAME` of `NAME@localhost`.
    name: String,
    /// `amqp://` URL of its listener.
    amqp_url: String,
}

impl PrivateBroker {
    /// Starts a node on free ports and waits until it has started.
    fn start() -> Self {
        let name = format!(
            "e2e-broker-restart-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        let [amqp_port, dist_port] = free_ports();
        let broker = Self {
            amqp_url: format!("amqp://guest:guest@127.0.0.1:{amqp_port}/%2f"),
            name,
        };
        let started = Instant::now();
        let started_ok = Self::script(&[
            "start",
            &broker.name,
            &amqp_port.to_string(),
            &dist_port.to_string(),
        ]);
        assert!(started_ok, "scripts/rabbitmq-node start failed");
        eprintln!("private RabbitMQ node started in {:?}", started.elapsed());
        broker
    }

    /// Runs `scripts/rabbitmq-node ARGS`; whether it succeeded.
    fn script(args: &[&str]) -> bool {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/rabbitmq-node");
        Command::new(script)
            .args(args)
            .status()
            .is_ok_and(|status| status.success())
    }

    /// `rabbitmqctl -n NAME@localhost COMMAND`: this node only.
    fn rabbitmqctl(&self, command: &str) {
        let node = format!("{}@localhost", self.name);
        let status = Command::new("rabbitmqctl")
            .args(["-n", &node, command])
            .stdout(Stdio::null())
            .status()
            .expect("rabbitmqctl runs (is rabbitmq-server installed?)");
        assert!(status.success(), "rabbitmqctl -n {node} {command} failed");
    }

    /// Stops this private node's RabbitMQ application; its VM stays up.
    fn take_down(&self) {
        self.rabbitmqctl("stop_app"); // -n NAME@localhost: never the default node
    }

    /// Starts the application again and waits until it has.
    fn bring_back(&self) {
        self.rabbitmqctl("start_app");
        self.rabbitmqctl("await_startup");
    }
}

impl Drop for PrivateBroker {
    /// Never panics: it may run while a failed assertion unwinds.
    fn drop(&mut self) {
        if !Self::script(&["stop", &self.name]) {
            eprintln!("could not stop the private RabbitMQ node {}", self.name);
        }
    }
}

/// Two loopback ports free a moment ago (the AMQP and distribution ports).
fn free_ports() -> [u16; 2] {
    let listeners = [(); 2].map(|()| TcpListener::bind("127.0.0.1:0").expect("a free port"));
    listeners.map(|listener| listener.local_addr().expect("local address").port())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_loses_nothing_and_applies_nothing_twice() {
    // Declared first, so dropped last: after the pipeline's clean-up.
    let broker = Arc::new(
        tokio::task::spawn_blocking(PrivateBroker::start)
            .await
            .unwrap(),
    );
    let pipeline = TestPipeline::start_with(PipelineOptions {
        initial_stock: INITIAL_STOCK,
        amqp_url: Some(broker.amqp_url.clone()),
        ..PipelineOptions::default()
    })
    .await;
    let load = Load::start(&pipeline, Duration::from_secs(240));
    load.wait_for_more_accepted(150, PATIENCE).await;

    let stopping = Arc::clone(&broker);
    tokio::task::spawn_blocking(move || stopping.take_down())
        .await
        .unwrap();

    // checkout-service notices, reports NOT_SERVING, and the gateway is not
    // ready; a checkout now is refused at once with 503, not left to time out.
    let readyz = format!("{}/readyz", pipeline.gateway_url);
    poll::until(
        "the gateway not ready without a broker",
        PATIENCE,
        || async {
            let ready = pipeline.http.get(&readyz).send().await.unwrap();
            (ready.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(())
        },
    )
    .await;
    let (status, body) = pipeline.checkout(&json!({"itemsID": [1]}), &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["code"], "service_unavailable");
    load.progress().wait_for_a_refusal(PATIENCE).await;

    let starting = Arc::clone(&broker);
    tokio::task::spawn_blocking(move || starting.bring_back())
        .await
        .unwrap();
    // The orders refused during the outage are retried and go through, and
    // so do new ones.
    load.wait_for_more_accepted(150, PATIENCE).await;
    let accepted = load.finish().await;

    pipeline.assert_applied_exactly_once(&accepted).await;
    pipeline.shut_down().await;
    tokio::task::spawn_blocking(move || drop(broker))
        .await
        .unwrap();
}
