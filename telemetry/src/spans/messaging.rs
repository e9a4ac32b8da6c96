//! The messaging spans: the PRODUCER span of a publish (checkout-service)
//! and the CONSUMER span that continues it (stock-service), named
//! `{operation} {destination}` with the messaging conventions' attributes
//! for RabbitMQ.
//!
//! Each span kind has its measurements, recorded where the span ends:
//! [`PublishMetrics::record`] (`messaging.client.operation.duration` and
//! `messaging.client.sent.messages`) and [`ProcessMetrics::record`]
//! (`messaging.process.duration` and `messaging.client.consumed.messages`),
//! with the spans' low-cardinality attributes: never a message id or a
//! routing key that could name an order.

use std::time::Instant;

use opentelemetry::{
    Context, KeyValue,
    baggage::BaggageExt,
    metrics::{Counter, Histogram},
};
use opentelemetry_semantic_conventions::attribute::{
    ERROR_TYPE, MESSAGING_CONSUMER_GROUP_NAME, MESSAGING_DESTINATION_NAME,
    MESSAGING_MESSAGE_BODY_SIZE, MESSAGING_MESSAGE_ID, MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE, MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY, MESSAGING_SYSTEM,
    SERVER_ADDRESS, SERVER_PORT,
};
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    metric_names::{
        MESSAGING_CLIENT_CONSUMED_MESSAGES, MESSAGING_CLIENT_OPERATION_DURATION,
        MESSAGING_CLIENT_SENT_MESSAGES, MESSAGING_PROCESS_DURATION,
    },
    metrics::{duration_histogram, meter},
};

/// What a message is and where it goes.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    /// The exchange (the destination).
    pub exchange: &'a str,
    /// The routing key.
    pub routing_key: &'a str,
    /// The `message_id` property, if any.
    pub id: Option<&'a str>,
    /// The body's size in bytes.
    pub body_size: usize,
}

fn size(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// The PRODUCER span of publishing `message` ("send", with its confirm).
/// The node it goes through is added by [`record_server`] once known.
pub fn producer(message: Message<'_>) -> Span {
    tracing::info_span!(
        "publish",
        otel.name = %format_args!("publish {}", message.exchange),
        otel.kind = "producer",
        otel.status_code = Empty,
        otel.status_description = Empty,
        { ERROR_TYPE } = Empty,
        { MESSAGING_SYSTEM } = "rabbitmq",
        { MESSAGING_OPERATION_TYPE } = "send",
        { MESSAGING_OPERATION_NAME } = "publish",
        { MESSAGING_DESTINATION_NAME } = message.exchange,
        { MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY } = message.routing_key,
        { MESSAGING_MESSAGE_ID } = message.id,
        { MESSAGING_MESSAGE_BODY_SIZE } = size(message.body_size),
        { SERVER_ADDRESS } = Empty,
        { SERVER_PORT } = Empty,
    )
}

/// Records on a [`producer`] or [`consumer`] span the broker node its
/// message went through (`server.address`, `server.port`): the node the
/// connection is on, which on a cluster changes when that node is lost.
pub fn record_server(span: &Span, address: &str, port: u16) {
    span.record(SERVER_ADDRESS, address);
    span.record(SERVER_PORT, i64::from(port));
}

/// The CONSUMER span of processing `message` from `queue`, parented on the
/// publisher's context `parent` (read from the message headers) and
/// carrying its W3C baggage as `baggage.<key>` attributes. The node it came
/// from is added by [`record_server`].
///
/// The parent is set before the span is first entered: once entered, the
/// OpenTelemetry span has started and its parent can no longer change.
pub fn consumer(parent: Context, message: Message<'_>, queue: &str) -> Span {
    let span = tracing::info_span!(
        "process",
        otel.name = %format_args!("process {}", message.exchange),
        otel.kind = "consumer",
        otel.status_code = Empty,
        otel.status_description = Empty,
        { ERROR_TYPE } = Empty,
        { MESSAGING_SYSTEM } = "rabbitmq",
        { MESSAGING_DESTINATION_NAME } = message.exchange,
        { MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY } = message.routing_key,
        { MESSAGING_MESSAGE_ID } = message.id,
        { MESSAGING_OPERATION_TYPE } = "process",
        { MESSAGING_OPERATION_NAME } = "process",
        { MESSAGING_CONSUMER_GROUP_NAME } = queue,
        { MESSAGING_MESSAGE_BODY_SIZE } = size(message.body_size),
        { SERVER_ADDRESS } = Empty,
        { SERVER_PORT } = Empty,
    );
    let baggage: Vec<_> = parent
        .baggage()
        .iter()
        .map(|(key, (value, _metadata))| (format!("baggage.{}", key.as_str()), value.clone()))
        .collect();
    if let Err(error) = span.set_parent(parent) {
        // No OpenTelemetry layer (traces disabled) or the span is filtered
        // out: nothing to connect, not a processing problem.
        tracing::debug!(%error, "consumer span not linked to the publisher's trace");
    }
    for (key, value) in baggage {
        span.set_attribute(key, value);
    }
    span
}

/// A duration histogram and a message counter with the attributes of one
/// destination, computed once: recording a success allocates nothing.
#[derive(Clone, Debug)]
struct Measured {
    duration: Histogram<f64>,
    messages: Counter<u64>,
    attributes: Vec<KeyValue>,
}

impl Measured {
    fn record(&self, started: Instant, error_type: Option<&str>) {
        let elapsed = started.elapsed().as_secs_f64();
        match error_type {
            None => {
                self.duration.record(elapsed, &self.attributes);
                self.messages.add(1, &self.attributes);
            }
            Some(error_type) => {
                let mut attributes = self.attributes.clone();
                attributes.push(KeyValue::new(ERROR_TYPE, error_type.to_owned()));
                self.duration.record(elapsed, &attributes);
                self.messages.add(1, &attributes);
            }
        }
    }
}

fn message_counter(name: &'static str, description: &'static str) -> Counter<u64> {
    meter(env!("CARGO_PKG_NAME"))
        .u64_counter(name)
        .with_unit("{message}")
        .with_description(description)
        .build()
}

/// The measurements of a [`producer`] span: build once per publisher, under
/// the service's dispatcher.
#[derive(Clone, Debug)]
pub struct PublishMetrics(Measured);

impl PublishMetrics {
    /// The measurements of publishing to `exchange`.
    pub fn new(exchange: &str) -> Self {
        Self(Measured {
            duration: duration_histogram(
                &meter(env!("CARGO_PKG_NAME")),
                MESSAGING_CLIENT_OPERATION_DURATION,
                "Duration of publishing a message, until the broker's confirm",
            ),
            messages: message_counter(
                MESSAGING_CLIENT_SENT_MESSAGES,
                "Messages published (error.type on those not confirmed)",
            ),
            attributes: vec![
                KeyValue::new(MESSAGING_SYSTEM, "rabbitmq"),
                KeyValue::new(MESSAGING_OPERATION_TYPE, "send"),
                KeyValue::new(MESSAGING_OPERATION_NAME, "publish"),
                KeyValue::new(MESSAGING_DESTINATION_NAME, exchange.to_owned()),
            ],
        })
    }

    /// Records a publish begun at `started`, failed with `error_type` if
    /// any: its duration (with the confirm) and one message sent.
    pub fn record(&self, started: Instant, error_type: Option<&str>) {
        self.0.record(started, error_type);
    }
}

/// The measurements of a [`consumer`] span: build once per consumer, under
/// the service's dispatcher.
#[derive(Clone, Debug)]
pub struct ProcessMetrics(Measured);

impl ProcessMetrics {
    /// The measurements of processing messages from `exchange` taken off
    /// `queue`.
    pub fn new(exchange: &str, queue: &str) -> Self {
        Self(Measured {
            duration: duration_histogram(
                &meter(env!("CARGO_PKG_NAME")),
                MESSAGING_PROCESS_DURATION,
                "Duration of processing a delivered message, until it is settled",
            ),
            messages: message_counter(
                MESSAGING_CLIENT_CONSUMED_MESSAGES,
                "Messages delivered to the consumer (error.type on those it could not process)",
            ),
            attributes: vec![
                KeyValue::new(MESSAGING_SYSTEM, "rabbitmq"),
                KeyValue::new(MESSAGING_OPERATION_TYPE, "process"),
                KeyValue::new(MESSAGING_OPERATION_NAME, "process"),
                KeyValue::new(MESSAGING_DESTINATION_NAME, exchange.to_owned()),
                KeyValue::new(MESSAGING_CONSUMER_GROUP_NAME, queue.to_owned()),
            ],
        })
    }

    /// Records a message whose processing began at `started`, failed with
    /// `error_type` if any: its duration and one message consumed.
    pub fn record(&self, started: Instant, error_type: Option<&str>) {
        self.0.record(started, error_type);
    }
}
