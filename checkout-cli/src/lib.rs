//! Library behind the `checkout` command-line tool.
//!
//! The checkout pipeline (gateway HTTP → checkout-service gRPC → RabbitMQ →
//! stock-service) is traced with OpenTelemetry. This crate holds the pieces that
//! need to *see* those traces without Jaeger: an in-process OTLP receiver that the
//! integration tests assert against, and which later backs `checkout traces`.
//!
//! # Layout
//!
//! - [`receiver`]: the OTLP trace receiver.
//!   - [`receiver::OtlpReceiver`]: OTLP/gRPC and optional OTLP/HTTP (protobuf) servers.
//!   - [`receiver::SpanStore`]: the shared store of received spans, with condition-based waiting.
//!   - [`receiver::ReceivedSpan`]: a flattened span (hex ids, service name, plain enums),
//!     easy to assert on and to serialize.

pub mod receiver;
