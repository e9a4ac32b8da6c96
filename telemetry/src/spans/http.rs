//! The HTTP spans: the SERVER span, as tower-http `TraceLayer` callbacks,
//! shared by the gateway and stock-service's API ([`trace_layer`] is the
//! layer itself), and the CLIENT span of a request the gateway makes
//! ([`client`]).
//!
//! [`MakeServerSpan`] opens the span when a request arrives, named
//! `{method} {route}` with the OpenTelemetry HTTP attributes, and continues the
//! client's trace from its `traceparent`/`baggage` headers, or, when clients
//! are not trusted, starts a new trace with a *link* to the client's span
//! (and drops its baggage), so a client can neither join nor steer our traces.
//! [`RecordResponse`] writes the status code and, for 5xx only, marks the
//! span as an error: a 4xx is the client's mistake, not a server failure,
//! so the conventions leave the server span's status unset.
//!
//! [`ServerMetricsLayer`] records the request's duration in the
//! `http.server.request.duration` histogram with the span's low-cardinality
//! attributes (method, route, status code, `error.type` on a 5xx); it is
//! part of [`trace_layer`], so every SERVER span has its measurement. A
//! separate layer because tower-http's response callback does not see the
//! request (its method and route).
//!
//! [`client`] opens the CLIENT span of an outgoing request, named
//! `{method} {url.template}` as the conventions say when the template is
//! known; the caller writes its context into the request's headers with
//! [`propagation::http::inject`] and, when the answer (or the failure) is
//! in, calls [`record_client_response`], which marks the span as an error
//! for a failure or a status of 400 and up (the conventions' rule for
//! CLIENT spans: the caller did not get what it asked for) and records the
//! `http.client.request.duration` histogram.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use axum::extract::MatchedPath;
use http::{Method, Request, Response};
use opentelemetry::{KeyValue, metrics::Histogram, trace::TraceContextExt};
use opentelemetry_semantic_conventions::attribute::{
    ERROR_TYPE, HTTP_REQUEST_METHOD, HTTP_RESPONSE_STATUS_CODE, HTTP_ROUTE,
    NETWORK_PROTOCOL_VERSION, SERVER_ADDRESS, SERVER_PORT, URL_FULL, URL_PATH, URL_SCHEME,
    URL_TEMPLATE, USER_AGENT_ORIGINAL,
};
use tower::{Layer, Service, layer::util::Stack};
use tower_http::{
    classify::{ServerErrorsAsFailures, SharedClassifier},
    trace::{MakeSpan, OnResponse, TraceLayer},
};
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    metric_names::{HTTP_CLIENT_REQUEST_DURATION, HTTP_SERVER_REQUEST_DURATION},
    metrics::{duration_histogram, meter},
    propagation,
};

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

/// The SERVER span's layer and, inside it, its duration's.
pub type HttpServerLayer = Stack<ServerMetricsLayer, ServerTraceLayer>;

/// The layer that gives each request its SERVER span and its
/// `http.server.request.duration` measurement; `trust_client_context` as in
/// [`MakeServerSpan`]. Build it under the service's dispatcher (where the
/// service is built), so that it records on the service's meter.
pub fn trace_layer(trust_client_context: bool) -> HttpServerLayer {
    Stack::new(ServerMetricsLayer::new(), span_layer(trust_client_context))
}

fn span_layer(trust_client_context: bool) -> ServerTraceLayer {
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

/// Records each request's duration in `http.server.request.duration`, with
/// `http.request.method`, `http.route` (when a route matched),
/// `http.response.status_code`, and `error.type` (the status code) on a 5xx,
/// as on the SERVER span.
#[derive(Clone, Debug)]
pub struct ServerMetricsLayer {
    duration: Histogram<f64>,
}

impl ServerMetricsLayer {
    /// The layer, recording on the meter of the service current on this
    /// thread (see [`crate::metrics::meter`]).
    pub fn new() -> Self {
        Self {
            duration: duration_histogram(
                &meter(env!("CARGO_PKG_NAME")),
                HTTP_SERVER_REQUEST_DURATION,
                "Duration of HTTP server requests",
            ),
        }
    }
}

impl Default for ServerMetricsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl<S> Layer<S> for ServerMetricsLayer {
    type Service = ServerMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ServerMetrics {
            inner,
            duration: self.duration.clone(),
        }
    }
}

/// The service [`ServerMetricsLayer`] wraps around the routes.
#[derive(Clone, Debug)]
pub struct ServerMetrics<S> {
    inner: S,
    duration: Histogram<f64>,
}

impl<S, B, R> Service<Request<B>> for ServerMetrics<S>
where
    S: Service<Request<B>, Response = Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    // Boxed: one allocation per request, against a hand-written pinned
    // future type for what is otherwise three lines of `async`.
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let method = request.method().clone();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let started = Instant::now();
        let response = self.inner.call(request);
        let duration = self.duration.clone();
        Box::pin(async move {
            let result = response.await;
            // An error here is the stack's own (none in axum, whose
            // services are infallible): no status, nothing to measure.
            if let Ok(response) = &result {
                let status = response.status();
                duration.record(
                    started.elapsed().as_secs_f64(),
                    &server_attributes(&method, route.as_ref(), status),
                );
            }
            result
        })
    }
}

/// The measurement's attributes: the span's, less the high-cardinality ones
/// (path, user agent).
fn server_attributes(
    method: &Method,
    route: Option<&MatchedPath>,
    status: http::StatusCode,
) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(4);
    attributes.push(KeyValue::new(HTTP_REQUEST_METHOD, known_method(method)));
    if let Some(route) = route {
        attributes.push(KeyValue::new(HTTP_ROUTE, route.as_str().to_owned()));
    }
    attributes.push(KeyValue::new(
        HTTP_RESPONSE_STATUS_CODE,
        i64::from(status.as_u16()),
    ));
    if status.is_server_error() {
        attributes.push(KeyValue::new(ERROR_TYPE, status.as_str().to_owned()));
    }
    attributes
}

/// The method, if it is one of the known ones, else `_OTHER`: the
/// conventions' rule, so a client inventing methods cannot make new series.
fn known_method(method: &Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        "OPTIONS" => "OPTIONS",
        "CONNECT" => "CONNECT",
        "TRACE" => "TRACE",
        _ => "_OTHER",
    }
}

/// An outgoing request being timed: what its measurement is labelled with,
/// and its start.
#[derive(Clone, Debug)]
pub struct ClientRequest {
    method: &'static str,
    server_address: String,
    server_port: u16,
    url_template: &'static str,
    started: Instant,
}

/// The CLIENT span of a `method` request to `url` (scheme, host and port
/// taken from it; it must hold no credentials: it is recorded whole as
/// `url.full`), whose path follows `url_template` (`/api/orders/{orderId}`),
/// and the [`ClientRequest`] to end it with.
pub fn client(
    method: &Method,
    url: &http::Uri,
    url_template: &'static str,
) -> (Span, ClientRequest) {
    let method = known_method(method);
    let server_address = url.host().unwrap_or_default().to_owned();
    let server_port = url.port_u16().unwrap_or(match url.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    let span = tracing::info_span!(
        "http.client",
        otel.name = %format_args!("{method} {url_template}"),
        otel.kind = "client",
        otel.status_code = Empty,
        otel.status_description = Empty,
        { HTTP_REQUEST_METHOD } = method,
        { URL_FULL } = %url,
        { URL_TEMPLATE } = url_template,
        { SERVER_ADDRESS } = server_address.as_str(),
        { SERVER_PORT } = i64::from(server_port),
        { HTTP_RESPONSE_STATUS_CODE } = Empty,
        { ERROR_TYPE } = Empty,
    );
    let request = ClientRequest {
        method,
        server_address,
        server_port,
        url_template,
        started: Instant::now(),
    };
    (span, request)
}

/// The duration histogram of outgoing requests,
/// `http.client.request.duration`: build it once, where the service is built
/// (under its dispatcher), and keep it.
#[derive(Clone, Debug)]
pub struct ClientDurations(Histogram<f64>);

impl ClientDurations {
    /// The histogram, on the meter of the service current on this thread.
    pub fn new() -> Self {
        Self(duration_histogram(
            &meter(env!("CARGO_PKG_NAME")),
            HTTP_CLIENT_REQUEST_DURATION,
            "Duration of HTTP client requests",
        ))
    }
}

impl Default for ClientDurations {
    fn default() -> Self {
        Self::new()
    }
}

/// Ends a CLIENT span: `outcome` is the response's status, or the short
/// name of the failure that left no response (`timeout`, `connect`, …).
/// Records `http.response.status_code`, the error (a failure, or a status
/// of 400 and up), and the duration in `durations` with the span's
/// low-cardinality attributes.
pub fn record_client_response(
    span: &Span,
    durations: &ClientDurations,
    request: &ClientRequest,
    outcome: Result<http::StatusCode, &str>,
) {
    let mut attributes = vec![
        KeyValue::new(HTTP_REQUEST_METHOD, request.method),
        KeyValue::new(SERVER_ADDRESS, request.server_address.clone()),
        KeyValue::new(SERVER_PORT, i64::from(request.server_port)),
        KeyValue::new(URL_TEMPLATE, request.url_template),
    ];
    match outcome {
        Ok(status) => {
            let code = i64::from(status.as_u16());
            span.record(HTTP_RESPONSE_STATUS_CODE, code);
            attributes.push(KeyValue::new(HTTP_RESPONSE_STATUS_CODE, code));
            if status.is_client_error() || status.is_server_error() {
                super::record_error(span, status.as_str(), "");
                attributes.push(KeyValue::new(ERROR_TYPE, status.as_str().to_owned()));
            }
        }
        Err(error_type) => {
            super::record_error(span, error_type, "");
            attributes.push(KeyValue::new(ERROR_TYPE, error_type.to_owned()));
        }
    }
    durations
        .0
        .record(request.started.elapsed().as_secs_f64(), &attributes);
}
