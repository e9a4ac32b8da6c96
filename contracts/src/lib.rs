//! Every wire contract of the checkout pipeline, in one crate.
//!
//! A contract is what two processes must agree on byte for byte. Keeping all
//! of them here means a change to one shows up in every crate that speaks it,
//! at compile time, and a reader finds the whole protocol surface in one
//! place:
//!
//! ```text
//! client ─HTTP (http, error)→ gateway ─gRPC (grpc)→ checkout-service
//!        ─AMQP (amqp)→ stock-service ─HTTP (http, error)→ client
//! ```
//!
//! # Layout
//!
//! - [`http`]: the JSON bodies of the gateway's and stock-service's APIs, and
//!   the fault-injection admin body.
//! - [`error`]: the one error body every HTTP surface answers with,
//!   `{"error":{"code","message"}}`, as an axum `IntoResponse` type, and how
//!   gRPC statuses map onto it.
//! - [`grpc`]: `checkout.proto` and the code generated from it.
//! - [`amqp`]: the `checkout.processed` message, its headers, and the names
//!   of the exchanges and queues it travels through.
//! - [`limits`]: the bounds the gateway enforces at the edge and every hop
//!   behind it enforces again with the same constants.
//! - [`metrics`]: the names of the metrics the services export over OTLP and
//!   `checkout top` reads.

pub mod amqp;
pub mod error;
pub mod grpc;
pub mod http;
pub mod limits;
pub mod metrics;
