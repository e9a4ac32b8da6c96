//! The RabbitMQ side: one connection, its two channels, and the topology this
//! service relies on.
//!
//! stock-service declares everything it consumes from at every connect, so
//! it starts against an empty broker and recovers from a broker that lost its
//! definitions. Declarations are idempotent; a queue that exists with other
//! arguments fails the declaration (`PRECONDITION_FAILED`) rather than being
//! silently used.
//!
//! ```text
//!  <exchange> (topic) ──<routing key>──▶ <queue> (quorum) ──▶ stock-service
//!                                          │ x-dead-letter-exchange
//!                                          ▼
//!  <exchange>.dlx (direct) ──<queue>.dead──▶ <queue>.dead (quorum)
//! ```
//!
//! The work queue is a quorum queue: replicated, and it counts deliveries.
//! With `x-delivery-limit`, a message that keeps failing (each failure is a
//! `nack` with requeue) is dead-lettered after [`DELIVERY_LIMIT`] attempts
//! instead of cycling forever or being dropped.
//!
//! Two channels, because their settings differ: the consuming channel has
//! the prefetch limit (`basic.qos`); the publishing channel, used only to
//! dead-letter poison messages, is in confirm mode so a dead letter is known
//! to be stored before the original is acknowledged.

use std::time::Duration;

use lapin::{
    Channel, Connection, ConnectionProperties, ExchangeKind,
    options::{
        BasicQosOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
        QueueDeclareOptions,
    },
    types::{AMQPValue, FieldTable, LongString},
};
use utils::config::redact_url;

use crate::configuration::AmqpSettings;

/// Deliveries of one message (the first included) before the broker
/// dead-letters it.
pub const DELIVERY_LIMIT: i32 = 5;

/// How long a TCP connect plus AMQP handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long closing may wait for the broker's answer.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Talking to the broker failed.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// A protocol, channel or connection error.
    #[error("AMQP error: {0}")]
    Amqp(#[from] lapin::Error),
    /// The broker did not complete the handshake in time.
    #[error("timed out connecting to {0}")]
    ConnectTimeout(String),
    /// The broker ended the subscription (queue deleted, channel closed).
    #[error("the broker ended the subscription")]
    ConsumerEnded,
    /// Settling a delivery did not complete in time; the connection is
    /// treated as lost.
    #[error("settling a delivery took longer than {0:?}")]
    SettleTimeout(Duration),
}

/// An open connection with the topology declared.
pub struct BrokerSession {
    connection: Connection,
    /// Carries the subscription; has the prefetch limit.
    pub(crate) consume: Channel,
    /// Publishes dead letters; in confirm mode.
    pub(crate) publish: Channel,
}

impl BrokerSession {
    /// Connects, declares the topology and opens both channels.
    pub async fn open(settings: &AmqpSettings) -> Result<Self, BrokerError> {
        let properties =
            ConnectionProperties::default().with_connection_name("stock-service".into());
        let connection = tokio::time::timeout(
            CONNECT_TIMEOUT,
            Connection::connect(&settings.url, properties),
        )
        .await
        .map_err(|_| BrokerError::ConnectTimeout(redact_url(&settings.url)))??;

        let consume = connection.create_channel().await?;
        declare_topology(&consume, settings).await?;
        consume
            .basic_qos(settings.prefetch, BasicQosOptions::default())
            .await?;

        let publish = connection.create_channel().await?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self {
            connection,
            consume,
            publish,
        })
    }

    /// Closes the connection (and with it both channels). Deliveries that
    /// were received but not acknowledged go back to the queue.
    pub async fn close(self) {
        let closing = self.connection.close(200, "stock-service stopping".into());
        match tokio::time::timeout(CLOSE_TIMEOUT, closing).await {
            Ok(Ok(())) => {}
            // Typically the connection is already gone, which is why we close.
            Ok(Err(error)) => tracing::debug!(%error, "closing the AMQP connection"),
            Err(_) => tracing::warn!("the broker did not confirm closing the connection"),
        }
    }
}

/// Declares exchanges, queues and bindings (see the module docs).
async fn declare_topology(channel: &Channel, settings: &AmqpSettings) -> Result<(), lapin::Error> {
    let durable_exchange = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    let dead_letter_exchange = settings.dead_letter_exchange();
    let dead_letter_queue = settings.dead_letter_queue();

    channel
        .exchange_declare(
            settings.exchange.as_str().into(),
            ExchangeKind::Topic,
            durable_exchange,
            FieldTable::default(),
        )
        .await?;
    channel
        .exchange_declare(
            dead_letter_exchange.as_str().into(),
            ExchangeKind::Direct,
            durable_exchange,
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
        .queue_declare(
            settings.queue.as_str().into(),
            QueueDeclareOptions::durable(),
            work_queue,
        )
        .await?;
    channel
        .queue_bind(
            settings.queue.as_str().into(),
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
fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}
