//! One builder per span kind, so every span of a kind has the same name
//! pattern and the same semantic-convention attributes, wherever it is made:
//!
//! | kind | builder | made by |
//! |---|---|---|
//! | SERVER (HTTP) | [`http::trace_layer`] | gateway, stock-service's API |
//! | CLIENT (HTTP) | [`http::client`] | gateway (order status from stock-service) |
//! | CLIENT (gRPC) | [`grpc::client`] | gateway |
//! | SERVER (gRPC) | [`grpc::server`] | checkout-service |
//! | PRODUCER | [`messaging::producer`] | checkout-service |
//! | CONSUMER | [`messaging::consumer`] | stock-service |
//! | CLIENT (database) | [`db::client`] | stock-service |
//! | INTERNAL (purge of old rows) | [`db::purge`] | stock-service (retention) |
//!
//! Attribute names come from `opentelemetry-semantic-conventions`. A span
//! that fails is marked by [`record_error`] alone: `otel.status_code` and
//! `otel.status_description` are the fields tracing-opentelemetry maps to
//! the span status (any other name would only become an attribute), and
//! `error.type` says which failure it was.
//!
//! Every builder declares the fields it may record later as `Empty`: a
//! `tracing` span only records fields declared when it was created.

pub mod db;
pub mod grpc;
pub mod http;
pub mod messaging;

use opentelemetry::trace::TraceContextExt;
use opentelemetry_semantic_conventions::attribute::ERROR_TYPE;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Marks `span` as failed with `error_type` (a short stable name) and
/// `message` (the status description; empty for none).
pub fn record_error(span: &Span, error_type: &str, message: &str) {
    span.record("otel.status_code", "ERROR");
    if !message.is_empty() {
        span.record("otel.status_description", message);
    }
    span.record(ERROR_TYPE, error_type);
}

/// The trace id of the current span, as 32 hex digits.
pub fn current_trace_id() -> String {
    Span::current()
        .context()
        .span()
        .span_context()
        .trace_id()
        .to_string()
}
