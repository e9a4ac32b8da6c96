//! The broker takes messages and stops confirming them: a memory alarm
//! (`rabbitmqctl set_vm_memory_high_watermark 0`, which blocks every
//! publisher) on a private node. The gateway's deadline (2 s) is shorter
//! than checkout-service's confirm timeout (10 s), so the gateway answers 504
//! long before the publish could fail; the publish goes on to its end all
//! the same, and its PRODUCER span says `confirm_timeout`. That is what lets
//! checkout-service notice a channel that no longer confirms (RabbitMQ 3.10
//! leaves one so after a failover) and replace it, rather than failing every
//! checkout at the gateway's deadline for as long as it lives. Once the
//! alarm clears, the retried order is accepted and applied once.
//!
//! The node is a private one ([`testkit::rabbitmq::PrivateCluster`] of one),
//! started on free ports and removed however the test ends: the machine's
//! default node is never reconfigured. It needs what `rabbitmqctl` needs:
//! root or the rabbitmq user.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use e2e::{PATIENCE, PipelineOptions, TestPipeline};
use reqwest::StatusCode;
use serde_json::json;
use testkit::{
    poll,
    rabbitmq::PrivateCluster,
    receiver::{SpanKind, SpanStatus},
};

const INITIAL_STOCK: i64 = 1_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_its_caller_gave_up_on_still_times_out_and_the_retry_is_applied_once() {
    // Declared first, so dropped last: after the pipeline's clean-up.
    let mut broker = PrivateCluster::started("e2e-no-confirms", 1).await.unwrap();
    let pipeline = TestPipeline::start_with(PipelineOptions {
        initial_stock: INITIAL_STOCK,
        amqp_url: Some(broker.amqp_url()),
        ..PipelineOptions::default()
    })
    .await;
    let order = json!({"items": [{"id": 2, "quantity": 3}]});

    broker
        .rabbitmqctl(0, &["set_vm_memory_high_watermark", "0"])
        .await
        .unwrap();
    // The publish that makes the broker block the connection may still be
    // taken; the next is not.
    let mut orders = 0;
    let key = loop {
        orders += 1;
        let key = format!("no-confirms-{orders}");
        let (status, body) = pipeline
            .checkout(&order, &[("idempotency-key", &key)])
            .await;
        match status {
            StatusCode::GATEWAY_TIMEOUT => break key,
            StatusCode::ACCEPTED if orders < 5 => {}
            _ => panic!("checkout {orders} under the alarm: {status} {body}"),
        }
    };

    // The gateway gave up after 2 s; the publish did not: it ends at the
    // confirm timeout, as an error.
    let spans = pipeline.receiver.store();
    let seen = poll::within(
        "a PRODUCER span ending in confirm_timeout",
        PATIENCE,
        || async {
            pipeline.flush_telemetry().await;
            spans
                .all()
                .iter()
                .any(|span| {
                    span.kind == SpanKind::Producer
                        && span.attr_str("error.type") == Some("confirm_timeout")
                        && matches!(span.status, SpanStatus::Error { .. })
                })
                .then_some(())
        },
    )
    .await;
    if let Err(error) = seen {
        let producers: Vec<_> = spans
            .all()
            .into_iter()
            .filter(|span| span.kind == SpanKind::Producer)
            .map(|span| (span.status.clone(), span.duration()))
            .collect();
        panic!("{error}; producers (status, duration): {producers:?}");
    }

    broker
        .rabbitmqctl(0, &["set_vm_memory_high_watermark", "0.4"])
        .await
        .unwrap();
    let order_id = poll::until("the retried order accepted", PATIENCE, || async {
        let (status, body) = pipeline
            .checkout(&order, &[("idempotency-key", &key)])
            .await;
        (status == StatusCode::ACCEPTED).then(|| body["orderId"].as_str().unwrap().to_owned())
    })
    .await;
    let record = pipeline.wait_for_order(&order_id).await;
    assert_eq!(record["status"], "applied", "{record}");
    // The first attempt's message may reach the queue too once the alarm is
    // gone, under the same order id. One more order, applied after every
    // message before it in the queue, and then the stock has moved by each
    // order once.
    let (status, body) = pipeline
        .checkout(&json!({"items": [{"id": 1, "quantity": 1}]}), &[])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    pipeline
        .wait_for_order(body["orderId"].as_str().unwrap())
        .await;
    assert_eq!(pipeline.stock(2).await, INITIAL_STOCK - 3 * orders);

    pipeline.shut_down().await;
    broker.stop().await.unwrap();
}
