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
//!
//! On a cluster, a new quorum queue is replicated on [`QuorumSize`] nodes
//! (`x-quorum-initial-group-size`; RabbitMQ uses every node when the cluster
//! has fewer, a single node included). RabbitMQ compares that argument too
//! when a queue is declared again: a queue created with another size, or
//! without one, is refused with `PRECONDITION_FAILED`, and
//! [`DeclareError::Inequivalent`] says what to do about it.

use std::{fmt, str::FromStr};

use contracts::amqp::{DELIVERY_LIMIT, dead_letter_exchange, dead_letter_queue};
use lapin::{
    Channel, ErrorKind, ExchangeKind,
    options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions},
    protocol::{AMQPErrorKind, AMQPSoftError},
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

/// How many nodes a new quorum queue is replicated on
/// (`x-quorum-initial-group-size`), or unset: RabbitMQ's own default (every
/// node of the cluster, up to its `quorum_cluster_size`, 3 by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuorumSize(Option<u16>);

impl QuorumSize {
    /// Without the argument, as queues were declared before it existed.
    pub const UNSET: Self = Self(None);

    /// `members` nodes (at least 1).
    pub fn members(members: u16) -> Option<Self> {
        (members >= 1).then_some(Self(Some(members)))
    }

    /// The number of members asked for, if any.
    pub fn get(self) -> Option<u16> {
        self.0
    }

    /// Parses a number of nodes (1 or more) or `none` ([`QuorumSize::UNSET`]).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("none") {
            return Ok(Self::UNSET);
        }
        raw.parse::<u16>()
            .ok()
            .and_then(Self::members)
            .ok_or_else(|| format!("expected a number of nodes from 1 to 65535, or none: {raw:?}"))
    }
}

impl FromStr for QuorumSize {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        Self::parse(raw)
    }
}

/// The number, or `none`, as [`QuorumSize::parse`] reads it.
impl fmt::Display for QuorumSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(members) => write!(f, "{members}"),
            None => f.write_str("none"),
        }
    }
}

/// Declaring the consumer's topology failed.
#[derive(Debug, thiserror::Error)]
pub enum DeclareError {
    /// The queue exists with other arguments than this service declares.
    #[error("queue {queue} already exists with other arguments ({message}); {advice}")]
    Inequivalent {
        /// The queue.
        queue: String,
        /// The broker's words.
        message: String,
        /// What to do about it.
        advice: &'static str,
    },
    /// Any other protocol or connection error.
    #[error("AMQP error: {0}")]
    Amqp(#[from] lapin::Error),
}

/// What to do about a queue that exists with another
/// `x-quorum-initial-group-size` than `AMQP_QUORUM_SIZE` asks for.
const QUORUM_SIZE_ADVICE: &str = "its x-quorum-initial-group-size was fixed when it was \
    created: set AMQP_QUORUM_SIZE to that value (`none` if it was created without one, as \
    versions before AMQP_QUORUM_SIZE did), or stop every consumer, let the queue drain and \
    delete it (`rabbitmqctl delete_queue NAME`) so that it is declared anew \
    (`rabbitmq-queues grow`/`shrink` change its members, not the argument)";

/// What to do about a queue that exists with other arguments.
const OTHER_ARGUMENTS_ADVICE: &str = "a queue's arguments are fixed when it is created: stop \
    every consumer, let the queue drain and delete it (`rabbitmqctl delete_queue NAME`) so \
    that it is declared anew";

/// Declares the exchange, the dead-letter exchange and queue, and `queue`
/// bound to the exchange with the routing key (what a consumer needs). Both
/// queues are quorum queues of `quorum_size` members.
pub async fn declare_queue(
    channel: &Channel,
    settings: &AmqpSettings,
    queue: &str,
    quorum_size: QuorumSize,
) -> Result<(), DeclareError> {
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
    if let Some(members) = quorum_size.get() {
        quorum.insert(
            "x-quorum-initial-group-size".into(),
            AMQPValue::LongInt(i32::from(members)),
        );
    }
    channel
        .queue_declare(
            dead_letter_queue.as_str().into(),
            QueueDeclareOptions::durable(),
            quorum.clone(),
        )
        .await
        .map_err(|error| inequivalent(error, &dead_letter_queue))?;
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
        .await
        .map_err(|error| inequivalent(error, queue))?;
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

/// `error` as [`DeclareError::Inequivalent`] when the broker refused to
/// declare `queue` because it exists with other arguments.
fn inequivalent(error: lapin::Error, queue: &str) -> DeclareError {
    let ErrorKind::ProtocolError(refusal) = error.kind() else {
        return error.into();
    };
    if *refusal.kind() != AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED) {
        return error.into();
    }
    let message = refusal.get_message().to_string();
    let advice = if message.contains("x-quorum-initial-group-size") {
        QUORUM_SIZE_ADVICE
    } else {
        OTHER_ARGUMENTS_ADVICE
    };
    DeclareError::Inequivalent {
        queue: queue.to_owned(),
        message,
        advice,
    }
}

/// Text arguments and headers are long strings: RabbitMQ rejects AMQP short
/// strings in tables.
pub fn long_string(value: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quorum_size_is_a_number_of_nodes_or_none() {
        assert_eq!(QuorumSize::parse("3"), Ok(QuorumSize::members(3).unwrap()));
        assert_eq!(QuorumSize::parse(" None "), Ok(QuorumSize::UNSET));
        for bad in ["0", "-1", "x", "65536", ""] {
            assert!(QuorumSize::parse(bad).is_err(), "{bad} must be refused");
        }
        for size in [QuorumSize::UNSET, QuorumSize::members(5).unwrap()] {
            assert_eq!(size.to_string().parse::<QuorumSize>(), Ok(size));
        }
    }
}
