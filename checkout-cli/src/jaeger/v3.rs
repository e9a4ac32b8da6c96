//! Jaeger API v3 (`GET /api/v3/traces/{id}`): OTLP JSON into [`ReceivedSpan`]s.
//!
//! Where the shape comes from: Jaeger v2's `cmd/query/app/apiv3/http_gateway.go`
//! (`returnTrace`) wraps the trace as `{"result": TracesData}` and encodes `TracesData`
//! with the OpenTelemetry collector's `ptrace.JSONMarshaler`, i.e. the OTLP/JSON
//! encoding (see Jaeger's `apiv3/snapshots/GetTrace.json`):
//!
//! ```json
//! {"result": {"resourceSpans": [{
//!   "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "gateway"}}]},
//!   "scopeSpans": [{"scope": {"name": "…"}, "spans": [{
//!     "traceId": "4bf9…4736", "spanId": "…", "parentSpanId": "", "name": "…", "kind": 2,
//!     "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "…",
//!     "attributes": [{"key": "rpc.grpc.status_code", "value": {"intValue": "0"}}],
//!     "status": {"code": 2, "message": "…"}}]}]}]}}
//! ```
//!
//! Ids are hex, enums are numbers and 64-bit integers are strings. Older Jaeger 1.x
//! releases served the same API through grpc-gateway (gogo `jsonpb`): ids in base64,
//! enums by name (`SPAN_KIND_SERVER`), possibly several newline-separated `{"result"}`
//! chunks. All of those are accepted too.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::{BASE64, JaegerError, id_to_hex, kind_from_name, lenient_i64, lenient_u64};
use crate::receiver::{AttributeValue, ReceivedSpan, SpanEvent, SpanKind, SpanLink, SpanStatus};

/// Converts an API v3 response body into spans.
pub fn parse(body: &str) -> Result<Vec<ReceivedSpan>, JaegerError> {
    let mut spans = Vec::new();
    for chunk in serde_json::Deserializer::from_str(body).into_iter::<Response>() {
        let chunk = chunk?;
        if let Some(error) = chunk.error {
            let message = error["message"].as_str().unwrap_or("unknown error");
            return Err(JaegerError::Api(message.to_owned()));
        }
        let resource_spans = chunk.result.into_iter().flat_map(|r| r.resource_spans);
        for resource_spans in resource_spans.chain(chunk.resource_spans) {
            let service = service_name(&resource_spans.resource.attributes);
            for scope_spans in resource_spans.scope_spans {
                spans.extend(
                    scope_spans
                        .spans
                        .into_iter()
                        .map(|span| convert(span, &service)),
                );
            }
        }
    }
    Ok(spans)
}

/// `{"result": TracesData}`, `{"error": {...}}`, or (leniently) a bare `TracesData`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Response {
    result: Option<TracesData>,
    error: Option<Value>,
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct TracesData {
    resource_spans: Vec<ResourceSpans>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ResourceSpans {
    resource: Resource,
    /// `instrumentationLibrarySpans` before OTLP 0.15.
    #[serde(alias = "instrumentationLibrarySpans")]
    scope_spans: Vec<ScopeSpans>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Resource {
    attributes: Vec<KeyValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ScopeSpans {
    spans: Vec<Span>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Span {
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    name: String,
    kind: Value,
    start_time_unix_nano: Value,
    end_time_unix_nano: Value,
    attributes: Vec<KeyValue>,
    status: Status,
    events: Vec<Event>,
    links: Vec<Link>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Status {
    code: Value,
    message: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Event {
    time_unix_nano: Value,
    name: String,
    attributes: Vec<KeyValue>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Link {
    trace_id: String,
    span_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct KeyValue {
    key: String,
    value: Value,
}

fn convert(span: Span, service: &str) -> ReceivedSpan {
    ReceivedSpan {
        trace_id: id_to_hex(&span.trace_id, 16),
        span_id: id_to_hex(&span.span_id, 8),
        parent_span_id: (!span.parent_span_id.is_empty())
            .then(|| id_to_hex(&span.parent_span_id, 8)),
        name: span.name,
        kind: match &span.kind {
            Value::String(name) => kind_from_name(name),
            number => lenient_i64(number)
                .and_then(|kind| i32::try_from(kind).ok())
                .map_or(SpanKind::Unspecified, SpanKind::from),
        },
        service_name: service.to_owned(),
        service_instance_id: String::new(),
        attributes: attributes(&span.attributes),
        status: status(span.status),
        start_unix_nanos: lenient_u64(&span.start_time_unix_nano).unwrap_or(0),
        end_unix_nanos: lenient_u64(&span.end_time_unix_nano).unwrap_or(0),
        events: span
            .events
            .into_iter()
            .map(|event| SpanEvent {
                name: event.name,
                time_unix_nanos: lenient_u64(&event.time_unix_nano).unwrap_or(0),
                attributes: attributes(&event.attributes),
            })
            .collect(),
        links: span
            .links
            .into_iter()
            .map(|link| SpanLink {
                trace_id: id_to_hex(&link.trace_id, 16),
                span_id: id_to_hex(&link.span_id, 8),
            })
            .collect(),
    }
}

/// OTLP status codes: 0 unset, 1 ok, 2 error (or `STATUS_CODE_*` names).
fn status(status: Status) -> SpanStatus {
    let code = match &status.code {
        Value::String(name) => name.trim_start_matches("STATUS_CODE_").to_ascii_uppercase(),
        number => match lenient_i64(number) {
            Some(1) => "OK".to_owned(),
            Some(2) => "ERROR".to_owned(),
            _ => String::new(),
        },
    };
    match code.as_str() {
        "OK" => SpanStatus::Ok,
        "ERROR" => SpanStatus::Error {
            message: status.message,
        },
        _ => SpanStatus::Unset,
    }
}

fn service_name(attributes: &[KeyValue]) -> String {
    attributes
        .iter()
        .find(|kv| kv.key == "service.name")
        .and_then(|kv| any_value(&kv.value))
        .map(|value| value.to_string())
        .unwrap_or_default()
}

fn attributes(kvs: &[KeyValue]) -> BTreeMap<String, AttributeValue> {
    kvs.iter()
        .filter_map(|kv| Some((kv.key.clone(), any_value(&kv.value)?)))
        .collect()
}

/// An OTLP/JSON `AnyValue`: an object with one of `stringValue`, `boolValue`,
/// `intValue` (a string in OTLP/JSON), `doubleValue`, `bytesValue` (base64),
/// `arrayValue` or `kvlistValue`.
fn any_value(value: &Value) -> Option<AttributeValue> {
    let (kind, inner) = value.as_object()?.iter().next()?;
    Some(match kind.as_str() {
        "stringValue" => AttributeValue::String(inner.as_str()?.to_owned()),
        "boolValue" => AttributeValue::Bool(inner.as_bool()?),
        "intValue" => AttributeValue::Int(lenient_i64(inner)?),
        "doubleValue" => AttributeValue::Double(match inner {
            Value::String(s) => s.parse().ok()?,
            number => number.as_f64()?,
        }),
        "bytesValue" => AttributeValue::Bytes(BASE64.decode(inner.as_str()?).ok()?),
        "arrayValue" => AttributeValue::Array(
            inner["values"]
                .as_array()
                .map(|values| values.iter().filter_map(any_value).collect())
                .unwrap_or_default(),
        ),
        "kvlistValue" => AttributeValue::Map(attributes(
            &serde_json::from_value::<Vec<KeyValue>>(inner["values"].clone()).unwrap_or_default(),
        )),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const JAEGER_V2: &str = include_str!("../../tests/fixtures/jaeger-v3-trace.json");
    const JAEGER_V1: &str = include_str!("../../tests/fixtures/jaeger-v3-trace-jsonpb.json");

    #[test]
    fn converts_a_jaeger_v2_response() {
        let spans = parse(JAEGER_V2).expect("parses");
        assert_eq!(spans.len(), 7);
        assert!(
            spans
                .iter()
                .all(|s| s.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736")
        );

        let server = spans
            .iter()
            .find(|s| s.name == "POST /api/checkout")
            .expect("server span");
        assert_eq!(server.service_name, "gateway");
        assert_eq!(server.kind, SpanKind::Server);
        assert_eq!(server.span_id, "a1b2c3d4e5f60718");
        assert_eq!(server.parent_span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert_eq!(server.start_unix_nanos, 1_700_000_000_000_000_000);
        assert_eq!(server.end_unix_nanos, 1_700_000_000_012_000_000);
        assert_eq!(server.attr_i64("http.response.status_code"), Some(202));
        assert_eq!(server.attr_str("http.route"), Some("/api/checkout"));
        assert_eq!(server.status, SpanStatus::Unset);

        let update = spans
            .iter()
            .find(|s| s.name == "UPDATE stock")
            .expect("db span");
        assert_eq!(update.service_name, "stock-service");
        assert_eq!(update.kind, SpanKind::Client);
        assert_eq!(
            update.status,
            SpanStatus::Error {
                message: "database is locked".into()
            }
        );
        assert_eq!(update.events.len(), 1);
        assert_eq!(update.events[0].name, "exception");

        let consumer = spans
            .iter()
            .find(|s| s.kind == SpanKind::Consumer)
            .expect("consumer");
        assert_eq!(consumer.links.len(), 1);
        assert_eq!(consumer.links[0].span_id, "0c1d2e3f40516273");
        assert_eq!(
            consumer.attr("messaging.destination.name"),
            Some(&AttributeValue::from("checkout"))
        );
    }

    #[test]
    fn converts_an_older_jsonpb_response_with_base64_ids_and_enum_names() {
        let spans = parse(JAEGER_V1).expect("parses");
        assert_eq!(spans.len(), 2);
        let server = &spans[0];
        assert_eq!(server.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(server.span_id, "a1b2c3d4e5f60718");
        assert_eq!(server.parent_span_id, None);
        assert_eq!(server.kind, SpanKind::Server);
        assert_eq!(server.service_name, "gateway");
        assert_eq!(server.attr_i64("http.response.status_code"), Some(503));
        assert_eq!(
            server.status,
            SpanStatus::Error {
                message: String::new()
            }
        );
        let client = &spans[1];
        assert_eq!(client.kind, SpanKind::Client);
        assert_eq!(client.parent_span_id.as_deref(), Some("a1b2c3d4e5f60718"));
        assert_eq!(
            client.attr("rpc.grpc.status_code"),
            Some(&AttributeValue::Int(14))
        );
    }

    #[test]
    fn reports_api_errors() {
        let error = parse(r#"{"error":{"httpCode":404,"message":"trace not found"}}"#);
        assert!(matches!(error, Err(JaegerError::Api(message)) if message == "trace not found"));
        assert!(parse("<html>").is_err());
    }
}
