//! Shared plumbing for the three checkout services.
//!
//! Everything here is protocol- or process-level glue that every service needs
//! the same way, so it lives once instead of three times.
//!
//! # Layout
//!
//! - [`config`]: reading typed settings from environment variables, with errors
//!   that name the variable.
//! - [`telemetry`]: the OpenTelemetry tracer provider (OTLP export configured by
//!   the standard `OTEL_*` variables) and the `tracing` subscriber (JSON logs
//!   carrying `trace_id`/`span_id`, filtered by `RUST_LOG`).
//! - [`faults`]: fault injection for demonstrations (off by default).
//! - [`http_span`]: the HTTP SERVER span (tower-http `TraceLayer`
//!   callbacks) of the gateway and of stock-service's API.
//! - [`message`]: the `checkout.processed` AMQP message, shared by its
//!   publisher (checkout-service) and its consumer (stock-service).
//! - [`propagation`]: W3C trace-context carriers, one file per protocol:
//!   [`propagation::http`] (HTTP headers), [`propagation::grpc`] (gRPC
//!   metadata) and [`propagation::amqp`] (AMQP message headers).
//! - [`shutdown`]: turning SIGINT/SIGTERM into a cancellation token the
//!   services watch to drain and stop.

pub mod config;
pub mod faults;
pub mod http_span;
pub mod message;
pub mod propagation;
pub mod shutdown;
pub mod telemetry;
