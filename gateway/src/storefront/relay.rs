//! `POST /v1/traces`: the relay that takes the storefront page's spans
//! (OTLP over HTTP, from the OpenTelemetry JS web SDK) and forwards them to
//! the collector the gateway's own spans go to.
//!
//! A browser is not trusted, so an export goes through, in this order:
//!
//! 1. traces off (`OTEL_TRACES_EXPORTER=none`, `OTEL_SDK_DISABLED=true`):
//!    404 `traces_not_exported` (the page carries on without its spans);
//! 2. the rate limit (`TRACE_RELAY_RATE_LIMIT`, [`super::rate_limit`]):
//!    429 `rate_limited` with `Retry-After`, before the body is read;
//! 3. the content type: OTLP/HTTP's `application/x-protobuf` or
//!    `application/json` (OTLP/JSON: hex ids, camelCase names), anything
//!    else a 415; a compressed body (`Content-Encoding` other than
//!    `identity`) is a 415 too: the browser exporter sends none, and
//!    refusing it leaves no decompression to bound;
//! 4. the body, read up to [`MAX_RELAY_BODY_BYTES`]: a 413 past it;
//! 5. decoding: a 400 `malformed_otlp` for what does not decode, and for a
//!    span whose trace or span id is not a valid one;
//! 6. at most [`MAX_RELAY_SPANS`] spans: a 413 `too_many_spans` past it (a
//!    413 rather than a 400: the export is well-formed, only too large, and
//!    the exporter should send smaller batches);
//! 7. clean-up: every resource's `service.name` is forced to
//!    [`SERVICE_NAME`] (whatever the page said, so a browser cannot write
//!    spans in another service's name), and the attributes, events and
//!    links past the per-span bounds are dropped and counted;
//! 8. the forward, re-encoded as protobuf, through the service's
//!    [`SpanForwarder`] (the spans' own endpoint, protocol and time limit):
//!    a collector that cannot be reached or does not answer in time is a
//!    503 `collector_unavailable`, one that refuses the spans a 502
//!    `collector_refused`.
//!
//! Then the answer is OTLP's: 200 with an empty `ExportTraceServiceResponse`
//! in the request's encoding (`{}` in JSON). Every error is the gateway's
//! JSON error body. The relay makes no span of its own: exporting spans
//! about exporting spans would never end.

use std::sync::Arc;

use axum::{
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use contracts::{
    error::ApiError,
    limits::{
        MAX_RELAY_BODY_BYTES, MAX_RELAY_SPAN_ATTRIBUTES, MAX_RELAY_SPAN_EVENTS,
        MAX_RELAY_SPAN_LINKS, MAX_RELAY_SPANS,
    },
};
use http_body_util::{BodyExt, Limited};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    common::v1::{AnyValue, KeyValue, any_value},
    resource::v1::Resource,
    trace::v1::Span,
};
use prost::Message;
use telemetry::{ForwardError, SpanForwarder};

use super::rate_limit::RateLimit;

/// The `service.name` of every span the relay forwards.
pub const SERVICE_NAME: &str = "storefront";

/// OTLP/HTTP's binary encoding.
const PROTOBUF: &str = "application/x-protobuf";
/// OTLP/HTTP's JSON encoding.
const JSON: &str = "application/json";

/// What the relay needs: where spans go (none with traces off) and the
/// rate limit. Cloning shares both.
#[derive(Clone, Debug)]
pub struct Relay {
    forwarder: Option<SpanForwarder>,
    rate: Arc<RateLimit>,
}

impl Relay {
    /// Forwards through `forwarder` (`None`: traces are not exported, every
    /// export is a 404), at most `per_second` exports a second.
    pub fn new(forwarder: Option<SpanForwarder>, per_second: usize) -> Self {
        Self {
            forwarder,
            rate: Arc::new(RateLimit::new(per_second)),
        }
    }
}

/// The two encodings of OTLP/HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

/// `POST /v1/traces`.
pub async fn export(State(relay): State<Relay>, headers: HeaderMap, body: Body) -> Response {
    match relay_export(&relay, &headers, body).await {
        Ok(Encoding::Json) => ([(header::CONTENT_TYPE, JSON)], "{}").into_response(),
        Ok(Encoding::Protobuf) => (
            [(header::CONTENT_TYPE, PROTOBUF)],
            ExportTraceServiceResponse::default().encode_to_vec(),
        )
            .into_response(),
        Err(refusal) => refusal,
    }
}

async fn relay_export(
    relay: &Relay,
    headers: &HeaderMap,
    body: Body,
) -> Result<Encoding, Response> {
    let Some(forwarder) = &relay.forwarder else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "traces_not_exported",
            "this gateway exports no traces (OTEL_TRACES_EXPORTER=none or OTEL_SDK_DISABLED=true), so it relays none",
        )
        .into_response());
    };
    if let Err(wait) = relay.rate.try_take() {
        let seconds = wait.as_secs_f64().ceil().max(1.0);
        let error = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many span exports; retry later",
        );
        let retry_after = HeaderValue::from(seconds as u64);
        return Err(([(header::RETRY_AFTER, retry_after)], error).into_response());
    }
    let encoding = encoding(headers).map_err(IntoResponse::into_response)?;
    let body = read(body).await.map_err(IntoResponse::into_response)?;
    let mut request = decode(encoding, &body).map_err(IntoResponse::into_response)?;
    check(&request).map_err(IntoResponse::into_response)?;
    clean(&mut request);
    match forwarder.forward(request).await {
        Ok(()) => Ok(encoding),
        Err(error) => {
            tracing::warn!(%error, "browser spans not forwarded");
            Err(match error {
                ForwardError::Unreachable(_) => ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "collector_unavailable",
                    "the trace collector is unavailable; retry later",
                ),
                ForwardError::Refused(_) => ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "collector_refused",
                    "the trace collector refused the spans",
                ),
            }
            .into_response())
        }
    }
}

/// The request's encoding, from `Content-Type` (parameters and case
/// ignored); an unknown type or any `Content-Encoding` is a 415.
fn encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let unsupported = |message: String| {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            message,
        )
    };
    if let Some(coding) = headers.get(header::CONTENT_ENCODING) {
        let coding = coding.to_str().unwrap_or_default().trim();
        if !coding.eq_ignore_ascii_case("identity") {
            return Err(unsupported(format!(
                "Content-Encoding {coding:?} is not accepted: send the export uncompressed"
            )));
        }
    }
    let media_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .map(|value| value.trim().to_ascii_lowercase());
    match media_type.as_deref() {
        Some(PROTOBUF) => Ok(Encoding::Protobuf),
        Some(JSON) => Ok(Encoding::Json),
        _ => Err(unsupported(format!(
            "an OTLP export is {PROTOBUF} or {JSON}"
        ))),
    }
}

/// The body, at most [`MAX_RELAY_BODY_BYTES`] of it.
async fn read(body: Body) -> Result<Bytes, ApiError> {
    match Limited::new(body, MAX_RELAY_BODY_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("an export may be at most {MAX_RELAY_BODY_BYTES} bytes"),
        )),
        Err(error) => Err(ApiError::bad_request(
            "malformed_otlp",
            format!("the body could not be read: {error}"),
        )),
    }
}

/// Decodes an `ExportTraceServiceRequest` in `encoding`.
fn decode(encoding: Encoding, body: &[u8]) -> Result<ExportTraceServiceRequest, ApiError> {
    let decoded = match encoding {
        Encoding::Protobuf => {
            ExportTraceServiceRequest::decode(body).map_err(|error| error.to_string())
        }
        Encoding::Json => serde_json::from_slice(body).map_err(|error| error.to_string()),
    };
    decoded.map_err(|error| {
        ApiError::bad_request(
            "malformed_otlp",
            format!("not an OTLP trace export: {error}"),
        )
    })
}

/// Every span of `request`.
fn spans(request: &ExportTraceServiceRequest) -> impl Iterator<Item = &Span> {
    request
        .resource_spans
        .iter()
        .flat_map(|resource| &resource.scope_spans)
        .flat_map(|scope| &scope.spans)
}

/// At most [`MAX_RELAY_SPANS`] spans, each with valid ids.
fn check(request: &ExportTraceServiceRequest) -> Result<(), ApiError> {
    let count = spans(request).count();
    if count > MAX_RELAY_SPANS {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_spans",
            format!("{count} spans in one export; at most {MAX_RELAY_SPANS}"),
        ));
    }
    let valid = |id: &[u8], len: usize| id.len() == len && id.iter().any(|byte| *byte != 0);
    for span in spans(request) {
        let parent_ok = span.parent_span_id.is_empty() || valid(&span.parent_span_id, 8);
        let links_ok = span
            .links
            .iter()
            .all(|link| valid(&link.trace_id, 16) && valid(&link.span_id, 8));
        if !(valid(&span.trace_id, 16) && valid(&span.span_id, 8) && parent_ok && links_ok) {
            return Err(ApiError::bad_request(
                "malformed_otlp",
                "a span has an invalid trace, span or parent span id",
            ));
        }
    }
    Ok(())
}

/// Forces `service.name` to [`SERVICE_NAME`] on every resource and drops
/// what is past the per-span bounds, counting it.
fn clean(request: &mut ExportTraceServiceRequest) {
    for resource_spans in &mut request.resource_spans {
        let resource = resource_spans
            .resource
            .get_or_insert_with(Resource::default);
        resource
            .attributes
            .retain(|attribute| attribute.key != "service.name");
        resource.attributes.truncate(MAX_RELAY_SPAN_ATTRIBUTES - 1);
        resource.attributes.push(KeyValue {
            key: "service.name".to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(SERVICE_NAME.to_owned())),
            }),
            ..KeyValue::default()
        });
        for span in resource_spans
            .scope_spans
            .iter_mut()
            .flat_map(|scope| &mut scope.spans)
        {
            span.dropped_attributes_count += bound(&mut span.attributes, MAX_RELAY_SPAN_ATTRIBUTES);
            span.dropped_events_count += bound(&mut span.events, MAX_RELAY_SPAN_EVENTS);
            span.dropped_links_count += bound(&mut span.links, MAX_RELAY_SPAN_LINKS);
            for event in &mut span.events {
                event.dropped_attributes_count +=
                    bound(&mut event.attributes, MAX_RELAY_SPAN_ATTRIBUTES);
            }
            for link in &mut span.links {
                link.dropped_attributes_count +=
                    bound(&mut link.attributes, MAX_RELAY_SPAN_ATTRIBUTES);
            }
        }
    }
}

/// Keeps the first `max` of `items`; returns how many went.
fn bound<T>(items: &mut Vec<T>, max: usize) -> u32 {
    let dropped = items.len().saturating_sub(max);
    items.truncate(max);
    u32::try_from(dropped).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests;
