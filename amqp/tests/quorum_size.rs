//! What RabbitMQ does with `x-quorum-initial-group-size`, on the machine's
//! single default node (`AMQP_URL` overrides): a size larger than the
//! cluster is accepted (the queue gets every node there is), and a queue
//! that exists with another size, or none, is refused with advice naming
//! `AMQP_QUORUM_SIZE`. Each test declares queues of its own and deletes them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use amqp::{
    AmqpSettings,
    topology::{DeclareError, QuorumSize, declare_queue},
};
use contracts::amqp::{dead_letter_exchange, dead_letter_queue};
use lapin::{Channel, Connection, options::*};

fn settings() -> AmqpSettings {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let url = std::env::var("AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@localhost:5672/%2f".to_owned());
    AmqpSettings {
        nodes: url.parse().unwrap(),
        exchange: format!("quorum-size-{id}"),
        routing_key: "checkout.processed".to_owned(),
    }
}

async fn channel(settings: &AmqpSettings) -> (Connection, Channel) {
    let (connection, _node) = amqp::connection::connect(settings, "amqp-quorum-size-test")
        .await
        .expect("the test broker answers");
    let channel = connection.create_channel().await.unwrap();
    (connection, channel)
}

async fn clean_up(settings: &AmqpSettings, queue: &str) {
    let (connection, channel) = channel(settings).await;
    for queue in [queue.to_owned(), dead_letter_queue(queue)] {
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for exchange in [
        settings.exchange.clone(),
        dead_letter_exchange(&settings.exchange),
    ] {
        let _ = channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
    amqp::connection::close(&connection, "done").await;
}

#[tokio::test]
async fn three_members_are_accepted_on_a_single_node() {
    let settings = settings();
    let queue = settings.exchange.clone();
    let (connection, channel) = channel(&settings).await;
    let three = QuorumSize::members(3).unwrap();
    let declared = declare_queue(&channel, &settings, &queue, three).await;
    // Declaring again with the same size is the services' every reconnect.
    let again = declare_queue(&channel, &settings, &queue, three).await;
    amqp::connection::close(&connection, "done").await;
    clean_up(&settings, &queue).await;
    declared.unwrap();
    again.unwrap();
}

#[tokio::test]
async fn a_queue_declared_without_a_size_is_refused_with_what_to_do() {
    let settings = settings();
    let queue = settings.exchange.clone();
    let (connection, channel) = channel(&settings).await;
    declare_queue(&channel, &settings, &queue, QuorumSize::UNSET)
        .await
        .unwrap();
    let refused = declare_queue(&channel, &settings, &queue, QuorumSize::members(3).unwrap()).await;
    // The refusal closed the channel; `none` matches the queue again.
    let channel = connection.create_channel().await.unwrap();
    let unset_again = declare_queue(&channel, &settings, &queue, QuorumSize::UNSET).await;
    amqp::connection::close(&connection, "done").await;
    clean_up(&settings, &queue).await;

    let error = refused.unwrap_err();
    assert!(
        matches!(error, DeclareError::Inequivalent { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("x-quorum-initial-group-size"), "{message}");
    assert!(message.contains("AMQP_QUORUM_SIZE"), "{message}");
    unset_again.unwrap();
}
