//! checkout-service: the gRPC `checkout.Checkout/DoCheckout` endpoint.
//!
//! It prices a cart from its catalog, publishes a `checkout.processed`
//! message carrying the W3C trace context in its AMQP headers, and answers
//! only after RabbitMQ has confirmed the message, so an accepted order is
//! never only in this process's memory.
//!
//! # Layout
//!
//! - [`configuration`]: [`Settings`], from flags and the environment.
//! - [`catalog`]: item prices and order pricing (the domain).
//! - [`idempotency`]: order ids derived from (client, `Idempotency-Key`)
//!   with a server secret, and the recent keys' cache bounded in bytes.
//! - [`key_file`]: that secret kept in a file, created once
//!   (`ORDER_ID_SECRET_FILE`).
//! - [`publisher`]: the AMQP publisher: one long-lived confirming channel,
//!   reconnected in the background when the broker goes away.
//! - [`service`]: the tonic service implementation and its server span.
//! - [`startup`]: [`startup::Application`], which binds and runs the server.

pub mod catalog;
pub mod configuration;
pub mod idempotency;
pub mod key_file;
pub mod publisher;
pub mod service;
pub mod startup;

pub use configuration::Settings;
pub use startup::Application;

/// The service's name: its binary, and `service.name` unless
/// `OTEL_SERVICE_NAME` says otherwise.
pub const NAME: &str = "checkout-service";
/// Its version, reported as `service.version` and by `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
