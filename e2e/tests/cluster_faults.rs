//! The scaled-out pipeline ([`e2e::scaled`]: three RabbitMQ nodes, PostgreSQL,
//! two replicas of checkout-service and of stock-service) under a steady
//! load of about 200 checkouts a second, with one fault each:
//!
//! - SIGKILL the node holding the queue's leader;
//! - SIGKILL the node the publishers are connected to;
//! - SIGKILL a stock-service replica;
//! - SIGKILL a checkout-service replica.
//!
//! Each time: the stock moved by exactly the accepted orders (every order is
//! retried with its key until accepted, so a 503 whose message did reach the
//! broker is the same order as its retry: applied once), every replica left
//! is consuming again, every accepted order's trace is complete (or lacks
//! only spans the SIGKILLed replica still held in its export batch), and
//! the test prints the window of refusals the fault caused. The replica
//! kills may fail no more calls than were in flight when the replica died.
//!
//! The tests run one at a time (each starts its own cluster) and need what
//! `rabbitmqctl` needs: root or the rabbitmq user.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::time::Duration;

use e2e::{
    PATIENCE,
    orders::{Load, Pace},
    scaled::{Killed, ScaledPipeline},
};

/// Checkouts a second.
const RATE: u32 = 200;
/// Seconds of load in all, and before the fault.
const SECONDS: usize = 20;
const SECONDS_BEFORE_FAULT: usize = 5;

/// One cluster at a time: four at once would not fit a 2-core machine.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[derive(Clone, Copy, Debug)]
enum Fault {
    QueueLeaderNode,
    PublisherNode,
    StockServiceReplica,
    CheckoutServiceReplica,
}

async fn under_load(fault: Fault) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let mut pipeline = ScaledPipeline::start().await;
    let load = Load::start_at(
        pipeline.http.clone(),
        pipeline.gateway_url.clone(),
        Pace::PerSecond(RATE),
        Duration::from_secs(300),
    );
    let per_second = RATE as usize;
    load.progress()
        .wait_for_accepted(per_second * SECONDS_BEFORE_FAULT, PATIENCE * 4)
        .await;
    assert_eq!(
        load.progress().refusal_window(),
        None,
        "refusals before the fault: {:?}",
        load.progress().answers()
    );

    let in_flight = load.progress().in_flight();
    let killed: Option<Killed> = match fault {
        Fault::QueueLeaderNode => {
            let leader = leader_of_queue(&pipeline).await;
            eprintln!("killing node {leader}, the queue's leader");
            pipeline.cluster.kill(leader).await.unwrap();
            None
        }
        Fault::PublisherNode => {
            let leader = leader_of_queue(&pipeline).await;
            let publishers = pipeline
                .cluster
                .nodes_of_connection(contracts::amqp::PUBLISHER_APP_ID)
                .await
                .unwrap();
            // Another node than the leader's if a publisher is on one, so
            // this is not the leader test again.
            let node = publishers
                .iter()
                .copied()
                .find(|&node| node != leader)
                .or_else(|| publishers.first().copied())
                .expect("a publisher connection");
            eprintln!("killing node {node}, which publishers are connected to (leader: {leader})");
            pipeline.cluster.kill(node).await.unwrap();
            None
        }
        Fault::StockServiceReplica => Some(pipeline.kill_stock_service(0).await),
        Fault::CheckoutServiceReplica => Some(pipeline.kill_checkout_service(0).await),
    };

    load.progress()
        .wait_for_accepted(per_second * SECONDS, PATIENCE * 8)
        .await;
    let answers = load.progress().answers();
    let window = load.progress().refusal_window();
    let accepted = load.finish().await;
    eprintln!(
        "{fault:?}: {} orders accepted; answers {answers:?}; refusal window {}",
        accepted.len(),
        window.map_or("none".to_owned(), |w| format!("{:.2} s", w.as_secs_f64()))
    );

    pipeline.assert_applied_exactly_once(&accepted).await;
    pipeline.wait_until_ready().await;
    let lost = pipeline.account_traces(&accepted, killed).await;
    eprintln!("{fault:?}: {lost} traces lost spans with the killed replica");

    if killed.is_some() {
        let refused: usize = answers
            .iter()
            .filter(|(answer, _)| *answer != "202")
            .map(|(_, count)| count)
            .sum();
        assert!(
            refused <= in_flight,
            "{fault:?}: {refused} calls failed, more than the {in_flight} in flight at the kill"
        );
    }
}

async fn leader_of_queue(pipeline: &ScaledPipeline) -> usize {
    pipeline
        .cluster
        .leader_of(&pipeline.isolation.queue)
        .await
        .unwrap()
        .expect("the queue has a leader")
}

#[tokio::test]
async fn killing_the_node_of_the_queue_leader_loses_no_order() {
    under_load(Fault::QueueLeaderNode).await;
}

#[tokio::test]
async fn killing_the_node_of_the_publishers_loses_no_order() {
    under_load(Fault::PublisherNode).await;
}

#[tokio::test]
async fn killing_a_stock_service_replica_loses_no_order() {
    under_load(Fault::StockServiceReplica).await;
}

#[tokio::test]
async fn killing_a_checkout_service_replica_loses_no_order() {
    under_load(Fault::CheckoutServiceReplica).await;
}
