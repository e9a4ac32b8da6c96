//! RabbitMQ plumbing that checkout-service (the publisher) and
//! stock-service (the consumer) share, so both connect, back off and
//! declare the same way.
//!
//! # Layout
//!
//! - [`settings`]: where the broker's nodes are and which exchange and
//!   routing key the order travels with (`AMQP_URL`, `AMQP_EXCHANGE`,
//!   `AMQP_ROUTING_KEY`).
//! - [`connection`]: opening a connection to any node of a cluster with a
//!   time limit, closing it with one, and the reconnect
//!   [`Backoff`](connection::Backoff).
//! - [`topology`]: declaring the exchanges, queues and bindings of
//!   [`contracts::amqp`], with the quorum queues' size.
//!
//! Trace context in message headers is in `telemetry::propagation::amqp`,
//! beside the other protocols' carriers.

pub mod connection;
pub mod settings;
pub mod topology;

pub use lapin;
pub use settings::AmqpSettings;
