//! A trace's log records under its waterfall (`checkout traces --logs`): one line per
//! record, in time order, with its offset on the trace's timeline, severity, service,
//! the span it was written in, its message and its attributes.

use std::collections::HashMap;
use std::fmt::Write;

use serde::Serialize;
use testkit::receiver::{ReceivedLog, ReceivedSpan};

use super::TraceJson;

/// Renders `logs` (the records of the trace of `spans`) as lines under a `LOGS`
/// heading; nothing when there are none. Offsets are milliseconds from the trace's
/// first span (negative for a record written before it). Lines carry no trailing spaces.
pub fn render_logs(spans: &[ReceivedSpan], logs: &[ReceivedLog]) -> String {
    if logs.is_empty() {
        return String::new();
    }
    let mut logs: Vec<&ReceivedLog> = logs.iter().collect();
    logs.sort_by_key(|record| record.time_unix_nanos);
    let start = spans
        .iter()
        .map(|span| span.start_unix_nanos)
        .min()
        .or_else(|| logs.first().map(|record| record.time_unix_nanos))
        .unwrap_or_default();
    let span_names: HashMap<&str, &str> = spans
        .iter()
        .map(|span| (span.span_id.as_str(), span.name.as_str()))
        .collect();
    let span_name = |record: &ReceivedLog| match &record.span_id {
        Some(id) => span_names.get(id.as_str()).copied().unwrap_or("?"),
        None => "-",
    };
    let service = |record: &ReceivedLog| match record.service_name.as_str() {
        "" => "?".to_owned(),
        name => name.to_owned(),
    };
    let service_width = logs.iter().map(|r| service(r).len()).max().unwrap_or(0);
    let span_width = logs
        .iter()
        .map(|r| span_name(r).chars().count())
        .max()
        .unwrap_or(0);

    let mut out = format!("LOGS ({})\n", logs.len());
    for record in logs {
        let offset_ms = (record.time_unix_nanos as i128 - start as i128) as f64 / 1e6;
        let mut line = format!(
            "  {offset_ms:>+10.2} ms  {:<5}  {:<service_width$}  {:<span_width$}  {}",
            severity(record),
            service(record),
            span_name(record),
            record.message(),
        );
        for (key, value) in &record.attributes {
            let _ = write!(line, "  {key}={value}");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The severity text, or the level its number stands for.
fn severity(record: &ReceivedLog) -> &str {
    if !record.severity_text.is_empty() {
        return &record.severity_text;
    }
    match record.severity_number {
        1..=4 => "TRACE",
        5..=8 => "DEBUG",
        9..=12 => "INFO",
        13..=16 => "WARN",
        17..=20 => "ERROR",
        21..=24 => "FATAL",
        _ => "-",
    }
}

/// One trace and its log records as a JSON document: the fields of [`TraceJson`]
/// plus `logs`, in time order.
#[derive(Debug, Serialize)]
pub struct TraceWithLogsJson<'a> {
    /// The trace.
    #[serde(flatten)]
    pub trace: TraceJson<'a>,
    /// Its log records, in time order.
    pub logs: Vec<&'a ReceivedLog>,
}

/// The trace and its log records as one line of JSON (for `--json --logs`).
pub fn render_json_with_logs(spans: &[ReceivedSpan], logs: &[ReceivedLog]) -> String {
    let mut logs: Vec<&ReceivedLog> = logs.iter().collect();
    logs.sort_by_key(|record| record.time_unix_nanos);
    let document = TraceWithLogsJson {
        trace: TraceJson::new(spans),
        logs,
    };
    // Serializing plain structs, strings and numbers cannot fail.
    serde_json::to_string(&document).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use testkit::receiver::{AttributeValue, SpanKind};

    const T0: u64 = 1_700_000_000_000_000_000;
    const MS: u64 = 1_000_000;

    fn span(id: &str, name: &str, start_ms: u64) -> ReceivedSpan {
        ReceivedSpan {
            trace_id: "ab".repeat(16),
            span_id: id.into(),
            name: name.into(),
            kind: SpanKind::Internal,
            service_name: "stock-service".into(),
            start_unix_nanos: T0 + start_ms * MS,
            end_unix_nanos: T0 + (start_ms + 5) * MS,
            ..ReceivedSpan::default()
        }
    }

    fn log(span: Option<&str>, at_ms: u64, level: &str, message: &str) -> ReceivedLog {
        ReceivedLog {
            service_name: "stock-service".into(),
            time_unix_nanos: T0 + at_ms * MS,
            severity_number: 9,
            severity_text: level.into(),
            body: Some(AttributeValue::from(message)),
            attributes: BTreeMap::from([("order_id".to_owned(), AttributeValue::from("o-1"))]),
            trace_id: Some("ab".repeat(16)),
            span_id: span.map(Into::into),
            scope: "stock_service".into(),
            event_name: String::new(),
        }
    }

    #[test]
    fn records_come_in_time_order_under_their_span() {
        let spans = [
            span("01", "process checkout", 10),
            span("02", "UPDATE stock", 12),
        ];
        let logs = [
            log(Some("02"), 13, "WARN", "stock low"),
            log(Some("01"), 11, "INFO", "order received"),
            log(Some("09"), 14, "INFO", "from a span not here"),
        ];
        let rendered = render_logs(&spans, &logs);
        assert_eq!(
            rendered.lines().collect::<Vec<_>>(),
            [
                "LOGS (3)",
                "       +1.00 ms  INFO   stock-service  process checkout  order received  order_id=o-1",
                "       +3.00 ms  WARN   stock-service  UPDATE stock      stock low  order_id=o-1",
                "       +4.00 ms  INFO   stock-service  ?                 from a span not here  order_id=o-1",
            ],
            "\n{rendered}"
        );
        assert_eq!(render_logs(&spans, &[]), "");

        let json: serde_json::Value =
            serde_json::from_str(&render_json_with_logs(&spans, &logs)).expect("JSON");
        assert_eq!(json["spans"].as_array().map(Vec::len), Some(2));
        assert_eq!(json["logs"][0]["body"], "order received");
        assert_eq!(json["logs"][2]["span_id"], "09");
    }
}
