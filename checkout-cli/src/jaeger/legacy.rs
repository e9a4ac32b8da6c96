//! Jaeger's legacy query API (`GET /api/traces/{id}`): Jaeger's span model into
//! [`ReceivedSpan`]s.
//!
//! Where the shape comes from: the envelope is `structuredResponse` in Jaeger's
//! `cmd/query/app/http_handler.go` (`{"data", "total", "limit", "offset", "errors"}`),
//! the trace is `model/json` (`Trace`, `Span`, `Reference`, `KeyValue`, `Log`,
//! `Process`), as the Jaeger UI consumes it:
//!
//! ```json
//! {"data": [{"traceID": "…", "spans": [{
//!     "traceID": "…", "spanID": "…", "operationName": "POST /api/checkout",
//!     "references": [{"refType": "CHILD_OF", "traceID": "…", "spanID": "…"}],
//!     "startTime": 1700000000000000, "duration": 12000,
//!     "tags": [{"key": "span.kind", "type": "string", "value": "server"}],
//!     "logs": [{"timestamp": 1700000000001000, "fields": [{"key": "event", …}]}],
//!     "processID": "p1"}],
//!   "processes": {"p1": {"serviceName": "gateway", "tags": […]}}}],
//!  "total": 0, "limit": 0, "offset": 0, "errors": null}
//! ```
//!
//! Times are microseconds. The model predates OpenTelemetry, so when Jaeger serves
//! OTLP spans through it, it moves span kind and status into tags (`span.kind`,
//! `otel.status_code`, `otel.status_description`, `error`), the parent into a
//! `CHILD_OF` reference and links into `FOLLOWS_FROM` references. This converter
//! undoes that mapping.

use std::collections::{BTreeMap, HashMap};

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;

use super::{BASE64, JaegerError, id_to_hex, kind_from_name, lenient_i64, lenient_u64};
use crate::receiver::{AttributeValue, ReceivedSpan, SpanEvent, SpanKind, SpanLink, SpanStatus};

/// Converts a legacy API response body into spans.
pub fn parse(body: &str) -> Result<Vec<ReceivedSpan>, JaegerError> {
    let response: Response = serde_json::from_str(body)?;
    if let Some(error) = response.errors.first() {
        return Err(JaegerError::Api(format!("{} ({})", error.msg, error.code)));
    }
    let mut spans = Vec::new();
    for trace in response.data {
        for span in trace.spans {
            let process = span
                .process
                .as_ref()
                .or_else(|| trace.processes.get(&span.process_id));
            let service = process.map(|p| p.service_name.clone()).unwrap_or_default();
            spans.push(convert(span, &service));
        }
    }
    Ok(spans)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Response {
    #[serde(deserialize_with = "null_as_default")]
    data: Vec<Trace>,
    #[serde(deserialize_with = "null_as_default")]
    errors: Vec<ApiError>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ApiError {
    code: i64,
    msg: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Trace {
    spans: Vec<Span>,
    processes: HashMap<String, Process>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Span {
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(rename = "spanID")]
    span_id: String,
    operation_name: String,
    #[serde(deserialize_with = "null_as_default")]
    references: Vec<Reference>,
    /// Microseconds since the Unix epoch.
    start_time: Value,
    /// Microseconds.
    duration: Value,
    #[serde(deserialize_with = "null_as_default")]
    tags: Vec<Tag>,
    #[serde(deserialize_with = "null_as_default")]
    logs: Vec<Log>,
    #[serde(rename = "processID")]
    process_id: String,
    /// Inline process (older responses embed it instead of using `processes`).
    process: Option<Process>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Reference {
    ref_type: String,
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(rename = "spanID")]
    span_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Process {
    service_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Tag {
    key: String,
    /// `string`, `bool`, `int64`, `float64` or `binary`.
    #[serde(rename = "type")]
    kind: String,
    value: Value,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Log {
    /// Microseconds since the Unix epoch.
    timestamp: Value,
    #[serde(deserialize_with = "null_as_default")]
    fields: Vec<Tag>,
}

/// Go encodes empty slices as `null`.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

fn convert(span: Span, service: &str) -> ReceivedSpan {
    let micros = |value: &Value| lenient_u64(value).unwrap_or(0).saturating_mul(1_000);
    let start = micros(&span.start_time);
    let trace_id = id_to_hex(&span.trace_id, 16);

    // The parent is the CHILD_OF reference within the trace; other references are links.
    let parent = span
        .references
        .iter()
        .position(|r| r.ref_type == "CHILD_OF" && id_to_hex(&r.trace_id, 16) == trace_id);
    let mut links = Vec::new();
    let mut parent_span_id = None;
    for (index, reference) in span.references.iter().enumerate() {
        if Some(index) == parent {
            parent_span_id = Some(id_to_hex(&reference.span_id, 8));
        } else {
            links.push(SpanLink {
                trace_id: id_to_hex(&reference.trace_id, 16),
                span_id: id_to_hex(&reference.span_id, 8),
            });
        }
    }

    let mut attributes = tags(&span.tags);
    let text = |value: Option<AttributeValue>| value.map(|v| v.to_string());
    let kind =
        text(attributes.remove("span.kind")).map_or(SpanKind::Unspecified, |k| kind_from_name(&k));
    let status_code = text(attributes.remove("otel.status_code"));
    let message = text(attributes.remove("otel.status_description")).unwrap_or_default();
    let error_tag = attributes
        .get("error")
        .is_some_and(|error| error.to_string() == "true");
    let status = match status_code.as_deref() {
        Some("ERROR") => SpanStatus::Error { message },
        Some("OK") => SpanStatus::Ok,
        _ if error_tag => SpanStatus::Error { message },
        _ => SpanStatus::Unset,
    };
    if matches!(status, SpanStatus::Error { .. }) {
        attributes.remove("error");
    }

    ReceivedSpan {
        trace_id,
        span_id: id_to_hex(&span.span_id, 8),
        parent_span_id,
        name: span.operation_name,
        kind,
        service_name: service.to_owned(),
        service_instance_id: String::new(),
        attributes,
        status,
        start_unix_nanos: start,
        end_unix_nanos: start.saturating_add(micros(&span.duration)),
        events: span
            .logs
            .iter()
            .map(|log| {
                let mut attributes = tags(&log.fields);
                let name = text(attributes.remove("event")).unwrap_or_else(|| "log".to_owned());
                SpanEvent {
                    name,
                    time_unix_nanos: micros(&log.timestamp),
                    attributes,
                }
            })
            .collect(),
        links,
    }
}

fn tags(tags: &[Tag]) -> BTreeMap<String, AttributeValue> {
    tags.iter()
        .filter_map(|tag| Some((tag.key.clone(), tag_value(tag)?)))
        .collect()
}

/// A typed tag value; values of the wrong JSON type are read from strings where possible.
fn tag_value(tag: &Tag) -> Option<AttributeValue> {
    let value = &tag.value;
    Some(match tag.kind.as_str() {
        "bool" => AttributeValue::Bool(value.as_bool().or_else(|| value.as_str()?.parse().ok())?),
        "int64" => AttributeValue::Int(lenient_i64(value)?),
        "float64" => AttributeValue::Double(match value {
            Value::String(s) => s.parse().ok()?,
            number => number.as_f64()?,
        }),
        "binary" => AttributeValue::Bytes(BASE64.decode(value.as_str()?).ok()?),
        _ => AttributeValue::String(match value {
            Value::String(s) => s.clone(),
            Value::Null => return None,
            other => other.to_string(),
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEGACY: &str = include_str!("../../tests/fixtures/jaeger-legacy-trace.json");

    #[test]
    fn converts_a_legacy_response() {
        let spans = parse(LEGACY).expect("parses");
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
        assert_eq!(
            server.attr("span.kind"),
            None,
            "kind is not left in the attributes"
        );

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
        assert_eq!(update.attr("error"), None);
        assert_eq!(update.events.len(), 1);
        assert_eq!(update.events[0].name, "exception");
        assert_eq!(update.events[0].time_unix_nanos, 1_700_000_000_016_500_000);
        assert_eq!(
            update.attr("db.system"),
            Some(&AttributeValue::from("sqlite"))
        );

        let consumer = spans
            .iter()
            .find(|s| s.kind == SpanKind::Consumer)
            .expect("consumer");
        assert_eq!(consumer.parent_span_id.as_deref(), Some("0c1d2e3f40516273"));
        assert_eq!(
            consumer.links.len(),
            1,
            "the FOLLOWS_FROM reference is a link"
        );

        let producer = spans
            .iter()
            .find(|s| s.kind == SpanKind::Producer)
            .expect("producer");
        assert_eq!(producer.status, SpanStatus::Ok);
    }

    #[test]
    fn reports_api_errors() {
        let body = r#"{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":404,"msg":"trace not found"}]}"#;
        assert!(matches!(parse(body), Err(JaegerError::Api(m)) if m == "trace not found (404)"));
    }
}
