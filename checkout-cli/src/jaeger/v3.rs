//! Jaeger API v3 (`GET /api/v3/traces/{id}`): OTLP/JSON into [`ReceivedSpan`]s.
//!
//! Where the shape comes from: Jaeger v2's `cmd/query/app/apiv3/http_gateway.go`
//! (`returnTrace`) wraps the trace as `{"result": TracesData}` and encodes `TracesData`
//! with the OpenTelemetry collector's `ptrace.JSONMarshaler`, i.e. the OTLP/JSON
//! encoding (see Jaeger's `apiv3/snapshots/GetTrace.json`): hex ids, enums as numbers,
//! 64-bit integers as strings. That is what `opentelemetry-proto`'s serde reads, so the
//! body is parsed into its types and flattened by the OTLP receiver's own
//! [`flatten_spans`] (resource's service name, hex ids, plain enums), so a trace read
//! from Jaeger is the same as one received over OTLP. An error is `{"error": {"httpCode", "message"}}`.
//!
//! Jaeger 1.x served this API through grpc-gateway (`jsonpb`: base64 ids, enums by
//! name), which `opentelemetry-proto` does not read; such a body fails to parse, and
//! [`fetch_trace`](super::fetch_trace) reads the trace from the legacy API instead.

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde::Deserialize;
use testkit::receiver::{ReceivedSpan, flatten_spans};

use super::JaegerError;

/// `{"result": TracesData}` or `{"error": {...}}`.
#[derive(Deserialize)]
struct Response {
    /// `TracesData` and an export request are the same message on the wire
    /// (`resourceSpans`), so the result is read as the request the receiver takes.
    result: Option<ExportTraceServiceRequest>,
    error: Option<ApiError>,
}

#[derive(Deserialize)]
struct ApiError {
    message: String,
}

/// Converts an API v3 response body into spans.
pub fn parse(body: &str) -> Result<Vec<ReceivedSpan>, JaegerError> {
    let response: Response = serde_json::from_str(body)?;
    if let Some(error) = response.error {
        return Err(JaegerError::Api(error.message));
    }
    Ok(flatten_spans(response.result.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::receiver::{AttributeValue, SpanKind, SpanStatus};

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
    fn an_older_jsonpb_response_is_refused_not_misread() {
        // Base64 ids and enum names: an error, so that the caller falls back to
        // the legacy API rather than printing ids that are not the trace's.
        assert!(matches!(parse(JAEGER_V1), Err(JaegerError::Json(_))));
    }

    #[test]
    fn reports_api_errors() {
        let error = parse(r#"{"error":{"httpCode":404,"message":"trace not found"}}"#);
        assert!(matches!(error, Err(JaegerError::Api(message)) if message == "trace not found"));
        assert!(parse("<html>").is_err());
    }
}
