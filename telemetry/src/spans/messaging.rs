//! The messaging spans: the PRODUCER span of a publish (checkout-service)
//! and the CONSUMER span that continues it (stock-service), named
//! `{operation} {destination}` with the messaging conventions' attributes
//! for RabbitMQ.

use opentelemetry::{Context, baggage::BaggageExt};
use opentelemetry_semantic_conventions::attribute::{
    ERROR_TYPE, MESSAGING_CONSUMER_GROUP_NAME, MESSAGING_DESTINATION_NAME,
    MESSAGING_MESSAGE_BODY_SIZE, MESSAGING_MESSAGE_ID, MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE, MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY, MESSAGING_SYSTEM,
    SERVER_ADDRESS, SERVER_PORT,
};
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

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
