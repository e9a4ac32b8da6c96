//! The HTTP SERVER span of the stock/order API, as tower-http `TraceLayer`
//! callbacks.
//!
//! Telemetry itself (exporter, subscriber, log format) is set up by
//! [`utils::telemetry`]; this module only shapes the span of an API request,
//! so the database spans of a read have a parent instead of each starting a
//! trace of its own, and a caller's `traceparent` is continued. The health
//! probes are not traced: a probe every few seconds would drown the traces
//! that matter.

use axum::{
    extract::MatchedPath,
    http::{Request, Response},
};
use tower_http::trace::{MakeSpan, OnResponse};
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use utils::propagation;

/// Builds the SERVER span of a request: `{method} {route}` with the
/// OpenTelemetry HTTP attributes, parented on the caller's trace context.
#[derive(Clone, Copy, Debug, Default)]
pub struct MakeServerSpan;

impl<B> MakeSpan<B> for MakeServerSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let method = request.method().as_str();
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let span = tracing::info_span!(
            "http.server",
            otel.name = match route {
                Some(route) => format!("{method} {route}"),
                None => method.to_owned(),
            },
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = method,
            http.route = route,
            url.path = request.uri().path(),
            http.response.status_code = Empty,
            error.type = Empty,
        );
        // Before the span is entered; an absent header gives a new trace.
        let _ = span.set_parent(propagation::http::extract(request.headers()));
        span
    }
}

/// Records the status code; only a 5xx marks the span as failed (a 4xx is
/// the caller's mistake, and the conventions leave the status unset).
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordResponse;

impl<B> OnResponse<B> for RecordResponse {
    fn on_response(self, response: &Response<B>, _latency: std::time::Duration, span: &Span) {
        let status = response.status();
        span.record("http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", status.as_str());
        }
    }
}
