//! The HTTP SERVER span, as tower-http `TraceLayer` callbacks, shared by
//! the gateway and stock-service's API.
//!
//! [`MakeServerSpan`] opens the span when a request arrives, named
//! `{method} {route}` with the OpenTelemetry HTTP attributes, and continues the
//! client's trace from its `traceparent`/`baggage` headers, or, when clients
//! are not trusted, starts a new trace with a *link* to the client's span
//! (and drops its baggage), so a client can neither join nor steer our traces.
//! [`RecordResponse`] writes the status code and, for 5xx only, marks the
//! span as an error: a 4xx is the client's mistake, not a server failure,
//! so the conventions leave the server span's status unset.

use crate::propagation;
use axum::extract::MatchedPath;
use http::{Request, Response};
use opentelemetry::trace::TraceContextExt;
use tower_http::trace::{MakeSpan, OnResponse};
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Builds the SERVER span of a request.
#[derive(Clone, Copy, Debug)]
pub struct MakeServerSpan {
    /// Continue the client's trace (true) or only link it (false).
    pub trust_client_context: bool,
}

impl Default for MakeServerSpan {
    /// Continues the caller's trace.
    fn default() -> Self {
        Self {
            trust_client_context: true,
        }
    }
}

impl<B> MakeSpan<B> for MakeServerSpan {
    fn make_span(&mut self, request: &Request<B>) -> Span {
        let method = request.method().as_str();
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(MatchedPath::as_str);
        let span = tracing::info_span!(
            "http.server",
            otel.name = %match route {
                Some(route) => format!("{method} {route}"),
                None => method.to_owned(),
            },
            otel.kind = "server",
            otel.status_code = Empty,
            otel.status_description = Empty,
            http.request.method = method,
            http.route = route,
            url.path = request.uri().path(),
            url.scheme = "http",
            network.protocol.version = protocol_version(request.version()),
            user_agent.original = request
                .headers()
                .get(http::header::USER_AGENT)
                .and_then(|value| value.to_str().ok()),
            http.response.status_code = Empty,
            error.type = Empty,
        );
        let client_context = propagation::http::extract(request.headers());
        if self.trust_client_context {
            let _ = span.set_parent(client_context);
        } else {
            let client_span = client_context.span().span_context().clone();
            if client_span.is_valid() {
                span.add_link(client_span);
            }
        }
        span
    }
}

/// `network.protocol.version` as the conventions spell it (`1.1`, `2`).
fn protocol_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// Records the response on the SERVER span.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordResponse;

impl<B> OnResponse<B> for RecordResponse {
    fn on_response(self, response: &Response<B>, latency: std::time::Duration, span: &Span) {
        let status = response.status();
        span.record("http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", status.as_str());
        }
        tracing::debug!(
            parent: span,
            status = status.as_u16(),
            latency_ms = latency.as_secs_f64() * 1000.0,
            "request served"
        );
    }
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
