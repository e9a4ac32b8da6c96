//! The broker is stopped and started (`rabbitmqctl -n NODE stop_app` /
//! `start_app`) in the middle of the load. Nothing accepted is lost and
//! nothing is applied twice; during the outage the gateway answers 503.
//! And services started before their broker wait, not ready, and connect
//! once it is up.
//!
//! The broker is a private RabbitMQ node this test starts on free ports (a
//! [`testkit::rabbitmq::PrivateCluster`] of one node) and stops and
//! removes however it ends: a test never stops the machine's default node,
//! which other tests and people use. It needs what `rabbitmqctl` needs: root
//! or the rabbitmq user.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::time::{Duration, Instant};

use e2e::{PATIENCE, PipelineOptions, TestPipeline};
use reqwest::StatusCode;
use serde_json::json;
use testkit::poll;
use testkit::rabbitmq::PrivateCluster;

const INITIAL_STOCK: i64 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_loses_nothing_and_applies_nothing_twice() {
    // Declared first, so dropped last: after the pipeline's clean-up.
    let mut broker = PrivateCluster::started("e2e-broker-restart", 1)
        .await
        .unwrap();
    let pipeline = TestPipeline::start_with(PipelineOptions {
        initial_stock: INITIAL_STOCK,
        amqp_url: Some(broker.amqp_url()),
        ..PipelineOptions::default()
    })
    .await;
    let load = pipeline.load(Duration::from_secs(240));
    load.wait_for_more_accepted(150, PATIENCE).await;

    // The broker application of the test's private node stops (`rabbitmqctl
    // -n NODE`, see `PrivateCluster::rabbitmqctl`); its VM stays up.
    broker.rabbitmqctl(0, &["stop_app"]).await.unwrap();

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

    broker.rabbitmqctl(0, &["start_app"]).await.unwrap();
    broker.rabbitmqctl(0, &["await_startup"]).await.unwrap();
    // The orders refused during the outage are retried and go through, and
    // so do new ones.
    load.wait_for_more_accepted(150, PATIENCE).await;
    let accepted = load.finish().await;

    pipeline.assert_applied_exactly_once(&accepted).await;
    pipeline.shut_down().await;
    broker.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_started_before_any_broker_node_wait_not_ready_then_connect() {
    // Declared first, so dropped last: after the pipeline's clean-up.
    let mut broker = PrivateCluster::new("e2e-broker-late", 1).unwrap();
    // No node answers: both services start anyway, not ready.
    let pipeline = TestPipeline::start_with(PipelineOptions {
        amqp_url: Some(broker.amqp_url()),
        ..PipelineOptions::default()
    })
    .await;
    for readyz in [
        format!("{}/readyz", pipeline.gateway_url),
        format!("{}/readyz", pipeline.stock_url),
    ] {
        let ready = pipeline.http.get(&readyz).send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE, "{readyz}");
    }
    let (status, body) = pipeline.checkout(&json!({"itemsID": [1]}), &[]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    broker.start().await.unwrap();
    let up = Instant::now();
    // They keep trying, and take orders once it is up (stock-service must
    // have declared the queue first: until then a checkout is a 503).
    let order_id = poll::until("a checkout accepted", PATIENCE, || async {
        let (status, body) = pipeline
            .checkout(
                &json!({"itemsID": [1]}),
                &[("idempotency-key", "late-broker-1")],
            )
            .await;
        (status == StatusCode::ACCEPTED).then(|| body["orderId"].as_str().unwrap().to_owned())
    })
    .await;
    eprintln!(
        "first checkout accepted {:?} after the broker node finished starting",
        up.elapsed()
    );
    pipeline.wait_for_order(&order_id).await;
    for readyz in [
        format!("{}/readyz", pipeline.gateway_url),
        format!("{}/readyz", pipeline.stock_url),
    ] {
        let ready = pipeline.http.get(&readyz).send().await.unwrap();
        assert_eq!(ready.status(), StatusCode::OK, "{readyz}");
    }
    pipeline.shut_down().await;
    broker.stop().await.unwrap();
}
