//! RabbitMQ is stopped and started (`rabbitmqctl stop_app` /
//! `start_app`) in the middle of the load. Nothing accepted is lost and
//! nothing is applied twice; during the outage the gateway answers 503.
//!
//! This is its own test binary on purpose: it takes the broker away from
//! everything using it, and cargo runs test binaries one after another.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::time::Duration;

use e2e::{PATIENCE, PipelineOptions, TestPipeline, orders::Load, poll};
use reqwest::StatusCode;
use serde_json::json;

const INITIAL_STOCK: i64 = 1_000_000;

fn rabbitmqctl(args: &[&str]) {
    let status = std::process::Command::new("rabbitmqctl")
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .expect("rabbitmqctl runs (is rabbitmq-server installed?)");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

/// Starts the broker's app again however the test ends, so a failed
/// assertion cannot leave the broker down for the tests after it.
struct BrokerStopped;

impl BrokerStopped {
    fn stop_app() -> Self {
        rabbitmqctl(&["stop_app"]);
        Self
    }
}

impl Drop for BrokerStopped {
    fn drop(&mut self) {
        rabbitmqctl(&["start_app"]);
        rabbitmqctl(&["await_startup"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_loses_nothing_and_applies_nothing_twice() {
    let pipeline = TestPipeline::start_with(PipelineOptions {
        initial_stock: INITIAL_STOCK,
        ..PipelineOptions::default()
    })
    .await;
    let load = Load::start(&pipeline, Duration::from_secs(240));
    load.wait_for_more_accepted(150, PATIENCE).await;

    let outage = tokio::task::spawn_blocking(BrokerStopped::stop_app)
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

    tokio::task::spawn_blocking(move || drop(outage))
        .await
        .unwrap();
    // The orders refused during the outage are retried and go through, and
    // so do new ones.
    load.wait_for_more_accepted(150, PATIENCE).await;
    let accepted = load.finish().await;

    pipeline.assert_applied_exactly_once(&accepted).await;
    pipeline.shut_down().await;
}
