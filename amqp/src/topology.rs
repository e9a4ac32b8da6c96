//! Declaring what [`contracts::amqp`] names: the order exchange, and for a
//! consumer its quorum queue with the dead-letter exchange and queue.
//!
//! Declarations are idempotent, so each service declares what it relies on
//! at every connect: it starts against an empty broker and recovers from a
//! broker that lost its definitions. A queue that exists with other
//! arguments fails the declaration (`PRECONDITION_FAILED`) rather than being
//! silently used.
//!
//! The work queue is a quorum queue: replicated, and it counts deliveries.
//! With `x-delivery-limit`, a message that keeps failing (each failure is a
//! `nack` with requeue) is dead-lettered after
//! [`contracts::amqp::DELIVERY_LIMIT`] attempts instead of
//! cycling forever or being dropped.

use contracts::amqp::{DELIVERY_LIMIT, dead_letter_exchange, dead_letter_queue};
use lapin::{
    Channel, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    types::{AMQPValue, FieldTable, LongString},
};

use crate::AmqpSettings;

const DURABLE: ExchangeDeclareOptions = ExchangeDeclareOptions {
    passive: false,
    durable: true,
    auto_delete: false,
    internal: false,
    nowait: false,
};

/// Declares the durable topic exchange orders are published to (the
/// publisher needs no more).
pub async fn declare_exchange(channel: &Channel, settings: &AmqpSettings) -> lapin::Result<()> {
    channel
        .exchange_declare(
            settings.exchange.as_str().into(),
            ExchangeKind::Topic,
            DURABLE,
            FieldTable::default(),
        )
        .await
}

/// Declares the exchange, the dead-letter exchange and queue, and `queue`
/// bound to the exchange with the routing key (what a consumer needs).
pub async fn declare_queue(
    channel: &Channel,
    settings: &AmqpSettings,
    queue: &str,
) -> lapin::Result<()> {
    let dead_letter_exchange = dead_letter_exchange(&settings.exchange);
    let dead_letter_queue = dead_letter_queue(queue);

    declare_exchange(channel, settings).await?;
    channel
        .exchange_declare(
            dead_letter_exchange.as_str().into(),
            ExchangeKind::Direct,
            DURABLE,
            FieldTable::default(),
        )
        .await?;

    // Dead-letter queue first, so nothing dead-lettered is ever unroutable.
    let mut quorum = FieldTable::default();
    quorum.insert("x-queue-type".into(), long_string("quorum"));
    channel
        .queue_declare(
            dead_letter_queue.as_str().into(),
            QueueDeclareOptions::durable(),
            quorum.clone(),
        )
        .await?;
    channel
        .queue_bind(
            dead_letter_queue.as_str().into(),
            dead_letter_exchange.as_str().into(),
            dead_letter_queue.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let mut work_queue = quorum;
    work_queue.insert(
        "x-dead-letter-exchange".into(),
        long_string(&dead_letter_exchange),
    );
    work_queue.insert(
        "x-dead-letter-routing-key".into(),
        long_string(&dead_letter_queue),
    );
    work_queue.insert(
        "x-delivery-limit".into(),
        AMQPValue::LongInt(DELIVERY_LIMIT),
    );
    channel
        .queue_declare(queue.into(), QueueDeclareOptions::durable(), work_queue)
        .await?;
    channel
        .queue_bind(
            queue.into(),
            settings.exchange.as_str().into(),
            settings.routing_key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Text arguments and headers are long strings: RabbitMQ rejects AMQP short
/// strings in tables.
pub fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}
