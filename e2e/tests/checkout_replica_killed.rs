//! Two checkout-service replicas, each a process of its own, behind one
//! gateway under a steady load; one is killed with SIGKILL mid-stream.
//!
//! What the gateway promises: a call that was on the killed replica fails
//! at the transport level and is retried once on the survivor, so the
//! client sees no error (at most the calls in flight on the killed replica
//! at that instant, should their retry fail too); the killed replica leaves
//! the balancing at once and every later call goes to the survivor; and
//! every order accepted is applied exactly once, retries included. The test
//! prints what the kill cost, from the gateway's CLIENT spans.
//!
//! The replicas run with every setting at its default: no `ORDER_ID_SECRET`
//! and no key file, so each makes an order-id key of its own, and a retry
//! that reaches the other replica gets another order id. Exactly-once must
//! not depend on that setting: stock-service recognizes the retry by the
//! client and `Idempotency-Key` its message carries, applies it once, and
//! answers the second order id as a `duplicate` of the first.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use e2e::{PATIENCE, PipelineOptions, TestPipeline, amqp_url, get_json, orders::LOAD_CONCURRENCY};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::poll;
use testkit::process::ServiceProcess;
use testkit::receiver::{ReceivedSpan, SpanKind, SpanStatus};

const INITIAL_STOCK: i64 = 1_000_000;

async fn start_replica(pipeline: &TestPipeline) -> ServiceProcess {
    let isolation = &pipeline.isolation;
    let env = [
        ("AMQP_URL", amqp_url()),
        ("AMQP_EXCHANGE", isolation.exchange.clone()),
        ("AMQP_ROUTING_KEY", isolation.routing_key.clone()),
        ("GRPC_ADDRESS", "127.0.0.1:0".to_owned()),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            pipeline.otlp_endpoint.clone(),
        ),
        ("RUST_LOG", "info".to_owned()),
    ];
    e2e::start_process(
        "checkout-service",
        &env,
        service::startup::GRPC_ADDRESS_FIELD,
        PATIENCE,
    )
    .await
}

fn now_unix_nanos() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since_epoch.as_nanos()).unwrap()
}

fn port(span: &ReceivedSpan) -> u16 {
    u16::try_from(span.attr_i64("network.peer.port").unwrap()).unwrap()
}

fn attempt(span: &ReceivedSpan) -> i64 {
    span.attr_i64("checkout.rpc.attempt").unwrap()
}

fn failed(span: &ReceivedSpan) -> bool {
    matches!(span.status, SpanStatus::Error { .. })
}

/// A pipeline with no checkout-service of its own, two replicas as child
/// processes (at their defaults) and the gateway in front of them, ready.
async fn start_with_two_replicas() -> (TestPipeline, ServiceProcess, ServiceProcess) {
    let mut pipeline = TestPipeline::start_with(PipelineOptions {
        checkout_replicas: 0,
        initial_stock: INITIAL_STOCK,
        ..PipelineOptions::default()
    })
    .await;
    let victim = start_replica(&pipeline).await;
    let survivor = start_replica(&pipeline).await;
    pipeline.start_gateway(&[victim.addr, survivor.addr]);
    let readyz = format!("{}/readyz", pipeline.gateway_url);
    poll::until("the gateway ready", PATIENCE, || async {
        let ready = pipeline.http.get(&readyz).send().await.ok()?;
        (ready.status() == StatusCode::OK).then_some(())
    })
    .await;
    (pipeline, victim, survivor)
}

fn order_id(body: &Value) -> String {
    body["orderId"].as_str().expect("an orderId").to_owned()
}

/// Clients retrying after a failover: 40 checkouts, each with its own key,
/// then one replica SIGKILLed and the same 40 sent again. The keys that
/// were on the killed replica reach the survivor, whose order-id key is
/// another: another order id, never a second stock change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_on_a_replica_with_another_key_is_applied_once_and_says_so() {
    let (pipeline, victim, survivor) = start_with_two_replicas().await;
    let before = pipeline.stock(2).await;
    let cart = json!({"items": [{"id": 2, "quantity": 1}]});
    let keys: Vec<String> = (0..40).map(|n| format!("failover-{n}")).collect();
    let mut first = Vec::new();
    for key in &keys {
        let (status, body) = pipeline.checkout(&cart, &[("idempotency-key", key)]).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        first.push(order_id(&body));
    }
    victim.kill().await.unwrap();
    let mut retried = Vec::new();
    for key in &keys {
        let body = poll::until(format!("{key} accepted again"), PATIENCE, || async {
            let (status, body) = pipeline.checkout(&cart, &[("idempotency-key", key)]).await;
            (status == StatusCode::ACCEPTED).then_some(body)
        })
        .await;
        retried.push(order_id(&body));
    }
    let moved: Vec<(&String, &String)> = first
        .iter()
        .zip(&retried)
        .filter(|(first, retried)| first != retried)
        .collect();
    assert!(
        !moved.is_empty() && moved.len() < keys.len(),
        "some keys, not all, were on the killed replica: {} moved",
        moved.len()
    );

    // Every copy is queued before this marker; once it is processed, a
    // duplicate had its chance to be applied too.
    let (_, marker) = pipeline.checkout(&json!({"itemsID": [1]}), &[]).await;
    pipeline.wait_for_order(&order_id(&marker)).await;
    for id in &first {
        let order = pipeline.wait_for_order(id).await;
        assert_eq!(order["status"], "applied", "{order}");
    }
    for (original, duplicate) in &moved {
        // Asked through the gateway, which passes stock-service's answer on.
        let url = format!("{}/api/orders/{duplicate}", pipeline.gateway_url);
        let answer = get_json(&pipeline.http, &url).await;
        assert_eq!(answer["status"], "duplicate", "{answer}");
        assert_eq!(answer["duplicateOf"], original.as_str(), "{answer}");
    }
    assert_eq!(
        pipeline.stock(2).await,
        before - i64::try_from(keys.len()).unwrap(),
        "one stock change per key"
    );
    println!(
        "{} of {} retries reached the other replica and got another order id, each a duplicate",
        moved.len(),
        keys.len()
    );
    drop(survivor);
    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_costs_no_error_and_the_survivor_takes_every_call() {
    let (pipeline, victim, survivor) = start_with_two_replicas().await;
    let (victim_port, survivor_port) = (victim.addr.port(), survivor.addr.port());

    let load = pipeline.load(Duration::from_secs(180));
    load.wait_for_more_accepted(150, PATIENCE).await;
    let killed_at = now_unix_nanos();
    victim.kill().await.unwrap();
    load.wait_for_more_accepted(150, PATIENCE).await;
    // By now the gateway has long noticed: every later call goes to the
    // survivor.
    let settled_at = now_unix_nanos();
    load.wait_for_more_accepted(150, PATIENCE).await;
    let accepted = load.finish().await;
    // The load retries an order after each answer other than a 202.
    let refused: u32 = accepted.iter().map(|order| order.attempts - 1).sum();
    pipeline.assert_applied_exactly_once(&accepted).await;

    // The gateway's CLIENT spans: one per attempt, at least one per request.
    pipeline.flush_telemetry().await;
    let requests = accepted.iter().map(|order| order.attempts).sum::<u32>();
    let spans = pipeline
        .receiver
        .store()
        .wait_for(PATIENCE, |spans| {
            let clients = spans
                .iter()
                .filter(|s| s.service_name == "gateway" && s.kind == SpanKind::Client);
            clients.count() >= requests as usize
        })
        .await
        .unwrap_or_else(|seen| panic!("{} spans, not every attempt's", seen.len()));
    let clients: Vec<&ReceivedSpan> = spans
        .iter()
        .filter(|s| s.service_name == "gateway" && s.kind == SpanKind::Client)
        .collect();

    let before: Vec<_> = clients
        .iter()
        .filter(|s| s.end_unix_nanos < killed_at)
        .collect();
    for replica in [victim_port, survivor_port] {
        assert!(
            before.iter().any(|s| port(s) == replica && !failed(s)),
            "both replicas served calls before the kill ({replica})"
        );
    }
    let in_flight = clients
        .iter()
        .filter(|s| port(s) == victim_port)
        .filter(|s| s.start_unix_nanos < killed_at && s.end_unix_nanos >= killed_at)
        .filter(|s| failed(s))
        .count();
    let sent_after_kill = clients
        .iter()
        .filter(|s| port(s) == victim_port && s.start_unix_nanos >= killed_at)
        .count();
    let retries: Vec<_> = clients.iter().filter(|s| attempt(s) == 2).collect();
    let failed_retries = retries.iter().filter(|s| failed(s)).count();
    println!(
        "replica killed under load: {} orders accepted; calls on it when it died: {in_flight}; \
         attempts sent to it afterwards: {sent_after_kill}; retries: {} ({failed_retries} failed); \
         errors the client saw: {refused}",
        accepted.len(),
        retries.len(),
    );

    // After the kill only the survivor took calls, and no attempt went to
    // the killed replica once the gateway had seen it go.
    for span in clients.iter().filter(|s| s.start_unix_nanos >= killed_at) {
        if port(span) == victim_port {
            assert!(failed(span), "nothing succeeds on a killed replica");
        }
    }
    let late: Vec<_> = clients
        .iter()
        .filter(|s| s.start_unix_nanos >= settled_at && port(s) == victim_port)
        .collect();
    assert!(late.is_empty(), "calls to the killed replica: {late:#?}");
    assert!(
        clients
            .iter()
            .any(|s| s.start_unix_nanos >= settled_at && port(s) == survivor_port),
        "the survivor took the calls"
    );
    // What the client saw: no error, except possibly for calls that were
    // on the killed replica as it died (at most the load's concurrency),
    // should their retry fail too.
    assert!(
        refused as usize <= LOAD_CONCURRENCY,
        "{refused} errors, more than the {LOAD_CONCURRENCY} calls that can be in flight"
    );

    drop(survivor);
    pipeline.shut_down().await;
}
