//! The pipeline on a three-node RabbitMQ cluster (`AMQP_URL` lists the three
//! nodes) keeps taking and applying orders when a node dies.
//!
//! Under load, the node checkout-service is connected to is SIGKILLed, then
//! (once it is back) the node holding the queue's leader. Each time the
//! services reconnect to another node on their own and orders keep
//! flowing; in the end every accepted order was applied exactly once. The
//! quorum queues have the three members `AMQP_QUORUM_SIZE` (3 by default)
//! asks for, and the spans name the node each message went through. The
//! time from each kill to the first 202 of an order sent after it is
//! printed, never asserted.
//!
//! The cluster is private ([`testkit::rabbitmq::PrivateCluster`],
//! `scripts/rabbitmq-cluster`), on free ports, and stopped and removed
//! however the test ends. Like `rabbitmqctl`, it needs root or the rabbitmq
//! user (CI runs as root). Starting it takes ~30 s on two cores.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::time::{Duration, Instant};

use contracts::amqp::{PUBLISHER_APP_ID, dead_letter_queue};
use e2e::{
    PATIENCE, PipelineOptions, TestPipeline,
    orders::{Accepted, make_order},
    span_of,
};
use reqwest::StatusCode;
use serde_json::json;
use testkit::{rabbitmq::PrivateCluster, receiver::SpanKind};

const INITIAL_STOCK: i64 = 1_000_000;
const NODES: usize = 3;

/// Sends one fresh order until it is accepted (retrying with its
/// `Idempotency-Key`, as a client must: a 503 or 504 may come after the
/// broker took it); returns it and the time from `since` to its 202. It is
/// first sent after `since`, so the 202 is of a publish confirmed after the
/// fault. Also returns the order's trace id.
async fn first_acceptance(
    pipeline: &TestPipeline,
    run: &str,
    since: Instant,
) -> (Duration, Accepted, String) {
    let order = make_order(run, 0);
    let items: Vec<_> = order
        .lines
        .iter()
        .map(|(id, quantity)| json!({"id": id, "quantity": quantity}))
        .collect();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (status, body) = pipeline
            .checkout(
                &json!({ "items": items }),
                &[("idempotency-key", &order.key)],
            )
            .await;
        if status == StatusCode::ACCEPTED {
            let gap = since.elapsed();
            let order_id = body["orderId"].as_str().expect("orderId").to_owned();
            let trace_id = body["traceId"].as_str().expect("traceId").to_owned();
            return (
                gap,
                Accepted {
                    order,
                    order_id,
                    trace_id: trace_id.clone(),
                    attempts,
                },
                trace_id,
            );
        }
        assert!(
            matches!(
                status,
                StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT
            ),
            "{status}: {body}"
        );
        assert!(
            since.elapsed() < PATIENCE * 2,
            "no order accepted {:?} after the kill; the last answer: {status} {body}",
            since.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The one node `connection_name` is connected to, once it is connected.
async fn node_of(cluster: &PrivateCluster, connection_name: &str) -> usize {
    testkit::poll::until(
        format!("{connection_name} connected to one node"),
        PATIENCE,
        || async {
            let nodes = cluster.nodes_of_connection(connection_name).await.unwrap();
            (nodes.len() == 1).then(|| nodes[0])
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_keep_flowing_when_a_cluster_node_dies() {
    // Declared first, so dropped last: after the pipeline's clean-up.
    let mut cluster = PrivateCluster::started("e2e-cluster", NODES).await.unwrap();
    let pipeline = TestPipeline::start_with(PipelineOptions {
        initial_stock: INITIAL_STOCK,
        amqp_url: Some(cluster.amqp_url()),
        ..PipelineOptions::default()
    })
    .await;

    // AMQP_QUORUM_SIZE's default: both queues on every node.
    let queue = pipeline.isolation.queue.clone();
    for name in [queue.clone(), dead_letter_queue(&queue)] {
        let members = cluster.members_of(&name).await.unwrap();
        assert_eq!(members, [0, 1, 2], "the quorum queue's members");
    }

    let load = pipeline.load(Duration::from_secs(240));
    load.wait_for_more_accepted(100, PATIENCE).await;
    let mut probes = Vec::new();
    let run = uuid::Uuid::new_v4().to_string();

    // 1. The node checkout-service publishes through dies.
    let publisher_node = node_of(&cluster, PUBLISHER_APP_ID).await;
    let consumer_node = node_of(&cluster, stock_service::NAME).await;
    let leader = cluster.leader_of(&queue).await.unwrap();
    cluster.kill(publisher_node).await.unwrap();
    let killed = Instant::now();
    let (gap, probe, trace_id) = first_acceptance(&pipeline, &format!("{run}-1"), killed).await;
    probes.push(probe);
    eprintln!(
        "SIGKILL of node {publisher_node} (checkout-service's; stock-service on {consumer_node}, \
         the queue's leader on {leader:?}): first 202 of an order sent after it {gap:?} later"
    );
    load.wait_for_more_accepted(100, PATIENCE).await;
    let publisher_now = node_of(&cluster, PUBLISHER_APP_ID).await;
    assert_ne!(publisher_now, publisher_node, "checkout-service moved");
    // The spans of the order sent after the kill name the nodes it went
    // through: checkout-service's new one, and one stock-service is on
    // now (the killed one is no longer anyone's).
    let spans = pipeline
        .wait_for_trace(&trace_id, |spans| {
            spans.iter().any(|span| span.kind == SpanKind::Consumer)
        })
        .await;
    let producer = span_of(&spans, "checkout-service", SpanKind::Producer);
    assert_eq!(producer.attr_str("server.address"), Some("127.0.0.1"));
    assert_eq!(
        producer.attr_i64("server.port"),
        Some(i64::from(cluster.amqp_port(publisher_now)))
    );
    let consumer = span_of(&spans, "stock-service", SpanKind::Consumer);
    let consumer_port = consumer.attr_i64("server.port").expect("server.port");
    assert!(
        (0..NODES)
            .filter(|&node| node != publisher_node)
            .any(|node| i64::from(cluster.amqp_port(node)) == consumer_port),
        "the consumer span names a live node: {consumer_port}"
    );

    // Back with three nodes, and the queues with three members online, so
    // that losing another node keeps a majority of each.
    cluster.restart(publisher_node).await.unwrap();
    testkit::poll::until("all nodes running again", PATIENCE * 2, || async {
        let running = cluster.running_nodes().await.unwrap();
        (running.len() == NODES).then_some(())
    })
    .await;
    for name in [queue.clone(), dead_letter_queue(&queue)] {
        testkit::poll::until(format!("{name}'s members online"), PATIENCE * 2, || async {
            let online = cluster.online_members_of(&name).await.unwrap();
            (online.len() == NODES).then_some(())
        })
        .await;
    }
    load.wait_for_more_accepted(50, PATIENCE).await;

    // 2. The node holding the queue's leader dies.
    let leader = cluster
        .leader_of(&queue)
        .await
        .unwrap()
        .expect("the queue has a leader");
    let consumer_node = node_of(&cluster, stock_service::NAME).await;
    let publisher_node = node_of(&cluster, PUBLISHER_APP_ID).await;
    eprintln!(
        "killing node {leader} (the queue's leader; checkout-service on {publisher_node}, \
         stock-service on {consumer_node})"
    );
    cluster.kill(leader).await.unwrap();
    let killed = Instant::now();
    let (gap, probe, _) = first_acceptance(&pipeline, &format!("{run}-2"), killed).await;
    probes.push(probe);
    eprintln!(
        "SIGKILL of node {leader} (the queue's leader; checkout-service on {publisher_node}, \
         stock-service on {consumer_node}): first 202 of an order sent after it {gap:?} later"
    );
    load.wait_for_more_accepted(100, PATIENCE).await;

    // What the orders in flight at each kill got: a 503 or 504 (retried
    // with the same key), never a 202 for a publish the broker did not
    // confirm (the accounting below would miss its units).
    eprintln!("the load's answers: {:?}", load.progress().answers());
    let mut accepted = load.finish().await;
    accepted.extend(probes);
    // stock-service, wherever it is connected now, applies every one.
    pipeline.assert_applied_exactly_once(&accepted).await;
    pipeline.shut_down().await;
    cluster.stop().await.unwrap();
}
