//! stock-service: the last hop of the checkout pipeline.
//!
//! It consumes the `checkout.processed` messages checkout-service publishes
//! to RabbitMQ, continues each message's trace (the W3C context travels in
//! the AMQP headers), and adjusts stock in its database exactly once per
//! order, however often the broker delivers the message. A small HTTP API
//! shows stock levels and what was decided for each order.
//!
//! # Layout
//!
//! - [`configuration`]: [`Settings`], from flags and the environment.
//! - [`domain`]: the vocabulary: [`Outcome`](domain::Outcome) of applying an
//!   order, [`OrderRecord`](domain::OrderRecord).
//! - [`store`]: the database (SQLite or PostgreSQL): migrations, seeding,
//!   and [`Store::apply_batch`](store::Store::apply_batch), the
//!   one-transaction, idempotent stock update, safe with several replicas.
//! - [`broker`]: the RabbitMQ connection, its two channels, and the
//!   topology it consumes from.
//! - [`consumer`]: the delivery loop: the consumer span, settling each
//!   delivery (ack, dead-letter, requeue), reconnecting.
//! - [`retention`]: the background task that deletes processed orders
//!   older than the retention.
//! - [`routes`]: the HTTP API and health probes.
//! - [`startup`]: [`Application`]: builds all of the above and runs it until
//!   a [`CancellationToken`](service::shutdown::CancellationToken) is cancelled.
//!
//! # Shutdown
//!
//! On SIGINT/SIGTERM the HTTP listener stops accepting, the consumer cancels
//! its subscription and finishes the batch in hand (commit, then ack), and
//! the connection closes, so prefetched messages go back to the queue
//! unprocessed rather than half-processed; the retention purge stops
//! between two chunks. Only then does `main` flush the remaining spans.

pub mod broker;
pub mod configuration;
pub mod consumer;
pub mod domain;
pub mod instruments;
pub mod retention;
pub mod routes;
pub mod startup;
pub mod store;

pub use configuration::Settings;
pub use startup::Application;

/// The service's name: its binary, its AMQP connection name, and
/// `service.name` unless `OTEL_SERVICE_NAME` says otherwise.
pub const NAME: &str = "stock-service";
/// Its version, reported as `service.version` and by `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
