//! The pipeline under failures that need no broker restart or killed process
//! (those have test binaries of their own: `broker_restart`,
//! `stock_service_killed`): checkout-service stopped mid-load, the OTLP
//! endpoint unreachable, poison messages in the queue, and concurrent
//! retries with one Idempotency-Key.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::time::Duration;

use contracts::amqp::{DEATH_REASON_HEADER, dead_letter_queue};
use e2e::{PATIENCE, PipelineOptions, TestPipeline, amqp_url};
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions},
    types::{AMQPValue, ByteArray, FieldTable},
};
use reqwest::StatusCode;
use serde_json::json;
use testkit::poll;
use testkit::receiver::{SpanKind, SpanStatus};

const INITIAL_STOCK: i64 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_service_stopped_mid_load_gives_fast_503s_then_recovers() {
    let mut pipeline = TestPipeline::start_with(PipelineOptions {
        initial_stock: INITIAL_STOCK,
        ..PipelineOptions::default()
    })
    .await;
    let load = pipeline.load(Duration::from_secs(180));
    load.wait_for_more_accepted(150, PATIENCE).await;

    let checkout = pipeline.service("checkout-service");
    tokio::task::block_in_place(|| checkout.stop()).expect("checkout-service stops");

    // While it is down: 503 (not a hang, not a 504), with error spans.
    let trace_id = "5b8aa5a2d2c872e8321cf37308d69df2";
    let (status, body) = pipeline
        .checkout(
            &json!({"itemsID": [1]}),
            &[("traceparent", &format!("00-{trace_id}-051581bf3cb55c13-01"))],
        )
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let spans = pipeline
        .wait_for_trace(trace_id, |spans| {
            spans.iter().any(|s| s.kind == SpanKind::Server)
                && spans.iter().any(|s| s.kind == SpanKind::Client)
        })
        .await;
    for span in &spans {
        assert!(matches!(span.status, SpanStatus::Error { .. }), "{span:?}");
    }
    load.progress().wait_for_a_refusal(PATIENCE).await;

    pipeline.restart_checkout_service();
    // Every order refused while it was down is accepted after the restart,
    // and so are new ones.
    load.wait_for_more_accepted(150, PATIENCE).await;
    let accepted = load.finish().await;
    pipeline.assert_applied_exactly_once(&accepted).await;
    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_otlp_endpoint_for_every_signal_affects_no_checkout() {
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let pipeline = TestPipeline::start_with(PipelineOptions {
        initial_stock: INITIAL_STOCK,
        otlp_endpoint: Some(endpoint),
        // Every signal tries the closed port all along: spans and log
        // records in batches, metrics every 100 ms.
        telemetry: |config| {
            config.metrics.interval = Duration::from_millis(100);
            assert!(config.metrics.enabled && config.logs.enabled);
        },
        ..PipelineOptions::default()
    })
    .await;

    let load = pipeline.load(Duration::from_secs(180));
    load.wait_for_more_accepted(300, PATIENCE).await;
    let answers = load.progress().answers();
    let accepted = load.finish().await;
    assert!(
        accepted.iter().all(|order| order.attempts == 1),
        "every checkout succeeded at the first attempt: {answers:?}"
    );
    pipeline.assert_applied_exactly_once(&accepted).await;
    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_are_dead_lettered_with_their_reason_and_good_ones_flow() {
    let pipeline = TestPipeline::start_with(PipelineOptions {
        initial_stock: INITIAL_STOCK,
        ..PipelineOptions::default()
    })
    .await;
    let isolation = &pipeline.isolation;
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();

    let garbage_headers = FieldTable::from(std::collections::BTreeMap::from([(
        "traceparent".into(),
        AMQPValue::ByteArray(ByteArray::from(&b"\xff\x00garbage"[..])),
    )]));
    let poison: [(&[u8], FieldTable, &str); 4] = [
        (b"not json at all", FieldTable::default(), "malformed"),
        (
            br#"{"schemaVersion":99}"#,
            FieldTable::default(),
            "schemaVersion",
        ),
        (
            br#"{"schemaVersion":1,"orderId":"nope"}"#,
            FieldTable::default(),
            "malformed",
        ),
        (b"\xc3\x28 invalid utf-8", garbage_headers, "malformed"),
    ];

    let load = pipeline.load(Duration::from_secs(180));
    for (body, headers, _) in &poison {
        load.wait_for_more_accepted(50, PATIENCE).await;
        let confirm = channel
            .basic_publish(
                isolation.exchange.as_str().into(),
                isolation.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                body,
                BasicProperties::default().with_headers(headers.clone()),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(matches!(confirm, lapin::Confirmation::Ack(None)));
    }
    // Good orders after the last poison message flow too.
    load.wait_for_more_accepted(50, PATIENCE).await;
    let accepted = load.finish().await;
    pipeline.assert_applied_exactly_once(&accepted).await;

    // Every poison message is in `<queue>.dead`, with why.
    let dead_queue = dead_letter_queue(&isolation.queue);
    let mut reasons = Vec::new();
    for _ in 0..poison.len() {
        let message = poll::until("a poison message dead-lettered", PATIENCE, || async {
            channel
                .basic_get(dead_queue.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
        })
        .await;
        let reason = match message
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get(DEATH_REASON_HEADER).cloned())
        {
            Some(AMQPValue::LongString(reason)) => reason.to_string(),
            other => panic!("dead letter without a reason: {other:?}"),
        };
        reasons.push((message.data.clone(), reason));
    }
    for (body, _, expected) in &poison {
        let (_, reason) = reasons
            .iter()
            .find(|(data, _)| data.as_slice() == *body)
            .unwrap_or_else(|| panic!("{:?} not dead-lettered", String::from_utf8_lossy(body)));
        assert!(
            reason.contains(expected),
            "{reason:?} should mention {expected:?}"
        );
    }
    let _ = connection.close(200, "done".into()).await;
    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_with_one_idempotency_key_make_one_order() {
    let pipeline = TestPipeline::start().await;
    let before = pipeline.stock(3).await;
    let body = json!({"items": [{"id": 3, "quantity": 2}]});
    let key = uuid::Uuid::new_v4().to_string();

    let headers = [("idempotency-key", key.as_str())];
    let attempts = (0..16).map(|_| pipeline.checkout(&body, &headers));
    let answers = futures::future::join_all(attempts).await;
    let mut order_ids: Vec<_> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, StatusCode::ACCEPTED, "{body}");
            body["orderId"].as_str().unwrap().to_owned()
        })
        .collect();
    order_ids.dedup();
    assert_eq!(order_ids.len(), 1, "one order id for one key");

    // Every copy is in the queue before this marker order; once the marker
    // is applied, any duplicate had its chance to be applied too.
    let (_, marker) = pipeline.checkout(&json!({"itemsID": [1]}), &[]).await;
    pipeline
        .wait_for_order(marker["orderId"].as_str().unwrap())
        .await;
    let order = pipeline.wait_for_order(&order_ids[0]).await;
    assert_eq!(order["status"], "applied");
    assert_eq!(pipeline.stock(3).await, before - 2, "one stock change");
    pipeline.shut_down().await;
}
