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

use serde::Deserialize;
use serde_json::Value;
use testkit::receiver::{AttributeValue, ReceivedSpan, SpanEvent, SpanKind, SpanLink, SpanStatus};

use super::{JaegerError, kind_from_name};

/// Converts a legacy API response body into spans.
pub fn parse(body: &str) -> Result<Vec<ReceivedSpan>, JaegerError> {
    let response: Response = serde_json::from_str(body)?;
    if let Some(error) = response.errors.unwrap_or_default().first() {
        return Err(JaegerError::Api(format!("{} ({})", error.msg, error.code)));
    }
    let mut spans = Vec::new();
    for trace in response.data.unwrap_or_default() {
        for span in trace.spans {
            let service = trace
                .processes
                .get(&span.process_id)
                .map(|process| process.service_name.clone())
                .unwrap_or_default();
            spans.push(convert(span, service));
        }
    }
    Ok(spans)
}

// Go writes an empty slice as `null`, hence `Option` for the lists.

#[derive(Deserialize)]
struct Response {
    data: Option<Vec<Trace>>,
    errors: Option<Vec<ApiError>>,
}

#[derive(Deserialize)]
struct ApiError {
    code: i64,
    msg: String,
}

#[derive(Deserialize)]
struct Trace {
    spans: Vec<Span>,
    processes: HashMap<String, Process>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Span {
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(rename = "spanID")]
    span_id: String,
    operation_name: String,
    references: Option<Vec<Reference>>,
    /// Microseconds since the Unix epoch.
    start_time: u64,
    /// Microseconds.
    duration: u64,
    tags: Option<Vec<Tag>>,
    logs: Option<Vec<Log>>,
    #[serde(rename = "processID")]
    process_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Reference {
    ref_type: String,
    #[serde(rename = "traceID")]
    trace_id: String,
    #[serde(rename = "spanID")]
    span_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Process {
    service_name: String,
}

#[derive(Deserialize)]
struct Tag {
    key: String,
    /// `string`, `bool`, `int64`, `float64` or `binary`.
    #[serde(rename = "type")]
    kind: String,
    value: Value,
}

#[derive(Deserialize)]
struct Log {
    /// Microseconds since the Unix epoch.
    timestamp: u64,
    fields: Option<Vec<Tag>>,
}

/// An id as lowercase hex of `bytes` bytes: Jaeger drops the leading zeros
/// of a 64-bit trace id.
fn id(raw: &str, bytes: usize) -> String {
    format!("{:0>width$}", raw.to_ascii_lowercase(), width = 2 * bytes)
}

fn convert(span: Span, service_name: String) -> ReceivedSpan {
    let start = span.start_time.saturating_mul(1_000);
    let trace_id = id(&span.trace_id, 16);

    // The parent is the first CHILD_OF reference within the trace; other references
    // are links.
    let mut parent_span_id = None;
    let mut links = Vec::new();
    for reference in span.references.unwrap_or_default() {
        let reference_trace = id(&reference.trace_id, 16);
        if parent_span_id.is_none()
            && reference.ref_type == "CHILD_OF"
            && reference_trace == trace_id
        {
            parent_span_id = Some(id(&reference.span_id, 8));
        } else {
            links.push(SpanLink {
                trace_id: reference_trace,
                span_id: id(&reference.span_id, 8),
            });
        }
    }

    let mut attributes = tags(span.tags.unwrap_or_default());
    let mut text = |key: &str| attributes.remove(key).map(|value| value.to_string());
    let kind = text("span.kind").map_or(SpanKind::Unspecified, |kind| kind_from_name(&kind));
    let status_code = text("otel.status_code");
    let message = text("otel.status_description").unwrap_or_default();
    let error_tag = attributes.get("error") == Some(&AttributeValue::Bool(true));
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
        span_id: id(&span.span_id, 8),
        parent_span_id,
        name: span.operation_name,
        kind,
        service_name,
        service_instance_id: String::new(),
        attributes,
        status,
        start_unix_nanos: start,
        end_unix_nanos: start.saturating_add(span.duration.saturating_mul(1_000)),
        events: span
            .logs
            .unwrap_or_default()
            .into_iter()
            .map(|log| {
                let mut attributes = tags(log.fields.unwrap_or_default());
                let name = attributes
                    .remove("event")
                    .map_or_else(|| "log".to_owned(), |name| name.to_string());
                SpanEvent {
                    name,
                    time_unix_nanos: log.timestamp.saturating_mul(1_000),
                    attributes,
                }
            })
            .collect(),
        links,
    }
}

/// Tags as attributes, by their JSON value; `float64` tells a whole-number double
/// from an integer, and a `binary` value stays the base64 text Jaeger writes.
fn tags(tags: Vec<Tag>) -> BTreeMap<String, AttributeValue> {
    tags.into_iter()
        .filter_map(|tag| {
            let value = match (tag.kind.as_str(), tag.value) {
                ("float64", Value::Number(number)) => AttributeValue::Double(number.as_f64()?),
                (_, Value::Number(number)) => AttributeValue::Int(number.as_i64()?),
                (_, Value::String(text)) => AttributeValue::String(text),
                (_, Value::Bool(flag)) => AttributeValue::Bool(flag),
                _ => return None,
            };
            Some((tag.key, value))
        })
        .collect()
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
    fn ids_are_lowercase_and_padded() {
        assert_eq!(id("00000000000000B4", 8), "00000000000000b4");
        assert_eq!(id("b4", 8), "00000000000000b4");
        assert_eq!(
            id("a3ce929d0e0e4736", 16),
            "0000000000000000a3ce929d0e0e4736"
        );
    }

    #[test]
    fn reports_api_errors() {
        let body = r#"{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":404,"msg":"trace not found"}]}"#;
        assert!(matches!(parse(body), Err(JaegerError::Api(m)) if m == "trace not found (404)"));
    }
}
