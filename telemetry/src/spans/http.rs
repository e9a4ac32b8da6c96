//! The HTTP SERVER span, as tower-http `TraceLayer` callbacks, shared by
//! the gateway and stock-service's API. [`trace_layer`] is the layer itself.
//!
//! [`MakeServerSpan`] opens the span when a request arrives, named
//! `{method} {route}` with the OpenTelemetry HTTP attributes, and continues the
//! client's trace from its `traceparent`/`baggage` headers, or, when clients
//! are not trusted, starts a new trace with a *link* to the client's span
//! (and drops its baggage), so a client can neither join nor steer our traces.
//! [`RecordResponse`] writes the status code and, for 5xx only, marks the
//! span as an error: a 4xx is the client's mistake, not a server failure,
//! so the conventions leave the server span's status unset.

use axum::extract::MatchedPath;
use http::{Request, Response};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_semantic_conventions::attribute::{
    ERROR_TYPE, HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE,
    NETWORK_PROTOCOL_VERSION, URL_PATH, URL_SCHEME, USER_AGENT_ORIGINAL,
};
use tower_http::{
    classify::{ServerErrorsAsFailures, SharedClassifier},
    trace::{MakeSpan, OnResponse, TraceLayer},
};
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::propagation;

/// The tower-http layer that wraps every request in its SERVER span.
pub type ServerTraceLayer = TraceLayer<
    SharedClassifier<ServerErrorsAsFailures>,
    MakeServerSpan,
    (),
    RecordResponse,
    (),
    (),
    (),
>;

/// The layer that gives each request its SERVER span; `trust_client_context`
/// as in [`MakeServerSpan`].
pub fn trace_layer(trust_client_context: bool) -> ServerTraceLayer {
    TraceLayer::new_for_http()
        .make_span_with(MakeServerSpan {
            trust_client_context,
        })
        .on_request(())
        .on_response(RecordResponse)
        .on_body_chunk(())
        .on_eos(())
        .on_failure(())
}

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
            { HTTP_REQUEST_METHOD } = method,
            { HTTP_ROUTE } = route,
            { URL_PATH } = request.uri().path(),
            { URL_SCHEME } = "http",
            { NETWORK_PROTOCOL_VERSION } = protocol_version(request.version()),
            { USER_AGENT_ORIGINAL } = request
                .headers()
                .get(http::header::USER_AGENT)
                .and_then(|value| value.to_str().ok()),
            { HTTP_RESPONSE_STATUS_CODE } = Empty,
            { ERROR_TYPE } = Empty,
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
        span.record(HTTP_RESPONSE_STATUS_CODE, i64::from(status.as_u16()));
        if status.is_server_error() {
            super::record_error(span, status.as_str(), "");
        }
        tracing::debug!(
            parent: span,
            status = status.as_u16(),
            latency_ms = latency.as_secs_f64() * 1000.0,
            "request served"
        );
    }
}
