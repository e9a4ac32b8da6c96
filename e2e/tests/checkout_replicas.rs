//! The gateway in front of two checkout-service replicas, all in-process:
//! checkouts spread over both (counted through the replicas' SERVER spans,
//! each replica its own `service.instance.id`); a key reused with another
//! cart is refused whichever replica it maps to and whichever request comes
//! first; a replica that answers `UNAVAILABLE` costs a retry on the other,
//! one CLIENT span per attempt; and a missed deadline is not retried.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::collections::{BTreeMap, BTreeSet};

use e2e::{ADMIN_TOKEN, PATIENCE, PipelineOptions, TestPipeline};
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::{
    poll,
    receiver::{ReceivedSpan, SpanKind, SpanStatus},
};

/// The attribute that numbers a CLIENT span's attempt.
const ATTEMPT: &str = "checkout.rpc.attempt";

/// The pipeline with two checkout-service replicas, once the gateway
/// balances over both. A replica is out of the balancing until its first
/// health probe answers, and the keys that map to it move to it then: a
/// test of keyed calls that started before would see a key change replica.
async fn two_replicas() -> TestPipeline {
    let pipeline = TestPipeline::start_with(PipelineOptions {
        checkout_replicas: 2,
        ..PipelineOptions::default()
    })
    .await;
    poll::until(
        "keyless checkouts reaching both replicas",
        PATIENCE,
        || async {
            let answers = keyless_checkouts(&pipeline, 16).await;
            pipeline.flush_telemetry().await;
            let mut instances = BTreeSet::new();
            for (_, _, trace_id) in answers {
                let spans = checkout_trace(&pipeline, &trace_id).await;
                let server = server_of(&spans, attempts(&spans).last()?)?;
                instances.insert(server.service_instance_id.clone());
            }
            (instances.len() == 2).then_some(())
        },
    )
    .await;
    pipeline
}

/// Posts `count` checkouts without an `Idempotency-Key`, 8 at a time, each
/// in a trace of its own; returns each answer and its trace id.
async fn keyless_checkouts(
    pipeline: &TestPipeline,
    count: usize,
) -> Vec<(StatusCode, Value, String)> {
    futures::stream::iter(0..count)
        .map(|i| async move {
            let cart = json!({"items": [{"id": i % 4 + 1, "quantity": 1}]});
            let trace_id = uuid::Uuid::new_v4().simple().to_string();
            let traceparent = format!("00-{trace_id}-b7ad6b7169203331-01");
            let (status, body) = pipeline
                .checkout(&cart, &[("traceparent", &traceparent)])
                .await;
            (status, body, trace_id)
        })
        .buffer_unordered(8)
        .collect()
        .await
}

/// The trace of `trace_id` once the gateway's SERVER span is in (it ends
/// after every attempt's CLIENT span) and every CLIENT span has its
/// checkout-service SERVER span.
async fn checkout_trace(pipeline: &TestPipeline, trace_id: &str) -> Vec<ReceivedSpan> {
    let done = |spans: &[ReceivedSpan]| {
        let gateway_server = spans
            .iter()
            .any(|s| s.service_name == "gateway" && s.kind == SpanKind::Server);
        let clients: Vec<_> = spans
            .iter()
            .filter(|s| s.kind == SpanKind::Client)
            .collect();
        gateway_server
            && clients.iter().any(|c| c.service_name == "gateway")
            && clients
                .iter()
                .filter(|c| c.service_name == "gateway")
                .all(|client| server_of(spans, client).is_some())
    };
    match pipeline
        .receiver
        .store()
        .wait_for_trace(trace_id, PATIENCE, done)
        .await
    {
        Ok(spans) => spans,
        Err(seen) => panic!("trace {trace_id} incomplete: {seen:#?}"),
    }
}

/// The checkout-service SERVER span that continues `client`.
fn server_of<'a>(spans: &'a [ReceivedSpan], client: &ReceivedSpan) -> Option<&'a ReceivedSpan> {
    spans.iter().find(|s| {
        s.service_name == "checkout-service"
            && s.kind == SpanKind::Server
            && s.parent_span_id.as_deref() == Some(client.span_id.as_str())
    })
}

/// The gateway's CLIENT spans of a trace, by attempt.
fn attempts(spans: &[ReceivedSpan]) -> Vec<&ReceivedSpan> {
    let mut clients: Vec<_> = spans
        .iter()
        .filter(|s| s.service_name == "gateway" && s.kind == SpanKind::Client)
        .collect();
    clients.sort_by_key(|s| s.attr_i64(ATTEMPT));
    clients
}

fn gateway_server(spans: &[ReceivedSpan]) -> &ReceivedSpan {
    e2e::span_of(spans, "gateway", SpanKind::Server)
}

fn trace_id(body: &Value) -> String {
    body["traceId"].as_str().expect("a traceId").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkouts_spread_over_both_replicas_each_its_own_instance() {
    let pipeline = two_replicas().await;
    let ports: BTreeSet<i64> = pipeline
        .checkout_addrs()
        .iter()
        .map(|addr| i64::from(addr.port()))
        .collect();
    assert_eq!(ports.len(), 2);

    let answers = keyless_checkouts(&pipeline, 100).await;
    pipeline.flush_telemetry().await;
    let mut per_instance: BTreeMap<String, usize> = BTreeMap::new();
    let mut ports_of: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
    for (status, body, trace_id) in answers {
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let spans = checkout_trace(&pipeline, &trace_id).await;
        let attempts = attempts(&spans);
        assert_eq!(attempts.len(), 1, "one attempt: {attempts:#?}");
        let client = attempts[0];
        assert_eq!(client.attr_i64(ATTEMPT), Some(1));
        assert_eq!(
            client.parent_span_id.as_deref(),
            Some(gateway_server(&spans).span_id.as_str())
        );
        let server = server_of(&spans, client).unwrap();
        assert!(!server.service_instance_id.is_empty(), "{server:#?}");
        *per_instance
            .entry(server.service_instance_id.clone())
            .or_default() += 1;
        ports_of
            .entry(server.service_instance_id.clone())
            .or_default()
            .insert(client.attr_i64("server.port").unwrap());
        assert_eq!(
            client.attr_i64("server.port"),
            client.attr_i64("network.peer.port")
        );
        assert_eq!(client.attr_str("server.address"), Some("127.0.0.1"));
    }
    println!("checkouts per replica (service.instance.id → calls): {per_instance:?}");

    // Two instances, each reached at its own port, both of the replicas.
    assert_eq!(per_instance.len(), 2, "{per_instance:?}");
    let instance_ports: BTreeSet<i64> = ports_of
        .values()
        .map(|ports| {
            assert_eq!(ports.len(), 1, "{ports_of:?}");
            *ports.first().unwrap()
        })
        .collect();
    assert_eq!(instance_ports, ports);
    // Generated keys are random: each replica gets about half (fewer than
    // 25 of 100 has a probability below one in a million).
    for (instance, calls) in &per_instance {
        assert!(*calls >= 25, "{instance}: {calls} of 100: {per_instance:?}");
    }
    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_reused_with_another_cart_is_refused_whichever_comes_first() {
    let pipeline = two_replicas().await;
    let run = uuid::Uuid::new_v4();
    let (one, two) = (
        json!({"items": [{"id": 1, "quantity": 1}]}),
        json!({"items": [{"id": 2, "quantity": 1}]}),
    );
    let mut accepted_traces = Vec::new();
    for i in 0..24 {
        let key = format!("{run}-{i}");
        let headers = [("idempotency-key", key.as_str())];
        // Both carts at once: whichever the replica sees first wins.
        let ((status_one, body_one), (status_two, body_two)) = tokio::join!(
            pipeline.checkout(&one, &headers),
            pipeline.checkout(&two, &headers)
        );
        let (winner, winning_body, loser, losing_body) = match (status_one, status_two) {
            (StatusCode::ACCEPTED, StatusCode::UNPROCESSABLE_ENTITY) => {
                (&one, body_one, &two, body_two)
            }
            (StatusCode::UNPROCESSABLE_ENTITY, StatusCode::ACCEPTED) => {
                (&two, body_two, &one, body_one)
            }
            other => panic!("{key}: expected one 202 and one 422, got {other:?}"),
        };
        assert_eq!(losing_body["error"]["code"], "idempotency_key_reused");

        // Afterwards, in either order: the winning cart is the same order,
        // the other still refused.
        let (status, again) = pipeline.checkout(loser, &headers).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{again}");
        let (status, again) = pipeline.checkout(winner, &headers).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{again}");
        assert_eq!(again["orderId"], winning_body["orderId"]);
        accepted_traces.push(trace_id(&winning_body));
    }

    // The keys mapped to both replicas (all 24 on one has a probability of
    // about one in eight million).
    pipeline.flush_telemetry().await;
    let mut instances = BTreeSet::new();
    for trace in accepted_traces {
        let spans = checkout_trace(&pipeline, &trace).await;
        instances.insert(
            server_of(&spans, attempts(&spans)[0])
                .unwrap()
                .service_instance_id
                .clone(),
        );
    }
    assert_eq!(instances.len(), 2, "{instances:?}");
    pipeline.shut_down().await;
}

/// `PUT /admin/faults` on the in-process checkout-service replica at `index`.
async fn set_faults(pipeline: &TestPipeline, index: usize, faults: Value) {
    let admin = pipeline
        .services
        .iter()
        .filter(|service| service.name == "checkout-service")
        .nth(index)
        .and_then(|service| service.admin_addr)
        .expect("the replica has an admin endpoint");
    let response = pipeline
        .http
        .put(format!("http://{admin}/admin/faults"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&faults)
        .send()
        .await
        .expect("the admin endpoint answers");
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_replica_is_retried_once_on_the_other_with_a_span_each() {
    let pipeline = two_replicas().await;
    let failing_port = i64::from(pipeline.checkout_addrs()[0].port());
    // Every call to the first replica fails with UNAVAILABLE; its health
    // check still says SERVING, so it stays in the balancing.
    set_faults(&pipeline, 0, json!({"failureRate": 1.0})).await;

    let answers = keyless_checkouts(&pipeline, 24).await;
    pipeline.flush_telemetry().await;
    let (mut retried, mut direct) = (0, 0);
    for (status, body, trace_id) in answers {
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let spans = checkout_trace(&pipeline, &trace_id).await;
        let server = gateway_server(&spans);
        let attempts = attempts(&spans);
        // Every attempt is a child of the SERVER span, and its server span
        // a child of the attempt: each carried its own traceparent.
        for (number, client) in attempts.iter().enumerate() {
            assert_eq!(client.attr_i64(ATTEMPT), Some(number as i64 + 1));
            assert_eq!(
                client.parent_span_id.as_deref(),
                Some(server.span_id.as_str())
            );
            assert!(server_of(&spans, client).is_some());
        }
        let last = attempts.last().unwrap();
        assert_ne!(last.attr_i64("server.port"), Some(failing_port));
        assert!(
            !matches!(last.status, SpanStatus::Error { .. }),
            "{last:#?}"
        );
        match attempts.as_slice() {
            [_] => direct += 1,
            [first, _] => {
                retried += 1;
                assert_eq!(first.attr_i64("server.port"), Some(failing_port));
                assert_eq!(first.attr_i64("rpc.grpc.status_code"), Some(14));
                assert!(matches!(first.status, SpanStatus::Error { .. }));
                let refused = server_of(&spans, first).unwrap();
                assert_eq!(refused.attr_str("fault.injected"), Some("failure"));
                assert_ne!(
                    refused.service_instance_id,
                    server_of(&spans, last).unwrap().service_instance_id
                );
            }
            more => panic!("at most two attempts: {more:#?}"),
        }
    }
    println!("24 checkouts, one replica failing: {retried} retried on the other, {direct} direct");
    assert!(
        retried > 0 && direct > 0,
        "{retried} retried, {direct} direct"
    );
    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missed_deadline_is_not_retried() {
    let pipeline = two_replicas().await;
    let slow_port = i64::from(pipeline.checkout_addrs()[0].port());
    // Slower than the gateway's deadline (2 s).
    set_faults(&pipeline, 0, json!({"delayMs": 3000, "delayRate": 1.0})).await;

    let answers = keyless_checkouts(&pipeline, 16).await;
    pipeline.flush_telemetry().await;
    let mut timed_out = 0;
    for (status, body, trace_id) in answers {
        if status == StatusCode::ACCEPTED {
            continue;
        }
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");
        timed_out += 1;
        let spans = pipeline
            .receiver
            .store()
            .wait_for_trace(&trace_id, PATIENCE, |spans| {
                spans
                    .iter()
                    .any(|s| s.service_name == "gateway" && s.kind == SpanKind::Server)
            })
            .await
            .unwrap();
        let attempts = attempts(&spans);
        assert_eq!(attempts.len(), 1, "no retry: {attempts:#?}");
        assert_eq!(attempts[0].attr_i64("server.port"), Some(slow_port));
        assert_eq!(attempts[0].attr_i64("rpc.grpc.status_code"), Some(4));
    }
    println!("16 checkouts, one replica too slow: {timed_out} missed the deadline");
    assert!(timed_out > 0, "some keys map to the slow replica");
    pipeline.shut_down().await;
}
