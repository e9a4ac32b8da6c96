//! A trace as a terminal waterfall, or as one line of JSON.
//!
//! Jaeger's trace view, reduced to text: one row per span in tree order (children
//! under their parent, siblings by start time), indented by depth, with a bar placed
//! and scaled on the trace's timeline. It is what `checkout traces` and
//! `checkout trace` print, so a trace can be read without a browser or a Jaeger.
//! Rendering is a pure function of the spans, which keeps the layout testable.
//!
//! Spans whose parent is not in the trace (the caller's span from `traceparent`, or a
//! parent whose export was lost) are shown as roots rather than hidden.
//!
//! A trace's log records can follow its waterfall ([`render_logs`], in `logs`).

mod logs;

use std::collections::{HashMap, HashSet};
use std::fmt::Write;

use serde::Serialize;
use testkit::receiver::{ReceivedSpan, SpanStatus};

pub use logs::{TraceWithLogsJson, render_json_with_logs, render_logs};

/// Filled part of a timeline bar.
const BAR: &str = "█";
/// Empty part of a timeline bar.
const TRACK: &str = "─";

/// The spans in tree order with their depth: roots (and orphans) by start time, each
/// followed by its subtree. Every span appears exactly once, even with cycles or
/// duplicate ids in malformed input.
pub fn tree_order(spans: &[ReceivedSpan]) -> Vec<(usize, &ReceivedSpan)> {
    let ids: HashSet<&str> = spans.iter().map(|span| span.span_id.as_str()).collect();
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (index, span) in spans.iter().enumerate() {
        match span.parent_span_id.as_deref() {
            Some(parent) if ids.contains(parent) && parent != span.span_id => {
                children.entry(parent).or_default().push(index);
            }
            _ => roots.push(index),
        }
    }
    let by_start = |&index: &usize| (spans[index].start_unix_nanos, index);
    roots.sort_by_key(by_start);
    children
        .values_mut()
        .for_each(|list| list.sort_by_key(by_start));

    // Roots first; then anything unreachable from a root (a parent cycle), by start.
    let mut everything: Vec<usize> = (0..spans.len()).collect();
    everything.sort_by_key(by_start);
    let mut visited = vec![false; spans.len()];
    let mut order = Vec::with_capacity(spans.len());
    for start in roots.into_iter().chain(everything) {
        let mut stack = vec![(start, 0)];
        while let Some((index, depth)) = stack.pop() {
            if std::mem::replace(&mut visited[index], true) {
                continue;
            }
            order.push((depth, &spans[index]));
            if let Some(kids) = children.get(spans[index].span_id.as_str()) {
                stack.extend(kids.iter().rev().map(|&kid| (kid, depth + 1)));
            }
        }
    }
    order
}

/// Renders `spans` (one trace) as a waterfall with timeline bars `width` characters wide.
///
/// A header line (trace id, total duration, span and service counts), a column header,
/// then one row per span: service, name indented two spaces per depth, kind, start
/// offset and duration in milliseconds, and the bar (at least one `█`). Failed spans
/// end with `✗` and their status message. Lines carry no trailing spaces.
pub fn render_waterfall(spans: &[ReceivedSpan], width: usize) -> String {
    let Some(timeline) = Timeline::of(spans) else {
        return "no spans\n".to_owned();
    };
    let width = width.max(1);
    let rows = tree_order(spans);
    let services = services(&rows);

    let service_width = column_width("SERVICE", rows.iter().map(|(_, s)| service(s).len()));
    let name_width = column_width(
        "SPAN",
        rows.iter()
            .map(|(depth, s)| 2 * depth + s.name.chars().count()),
    );
    let kind_width = column_width("KIND", rows.iter().map(|(_, s)| s.kind.to_string().len()));

    let mut out = String::new();
    let _ = writeln!(
        out,
        "trace {}  {:.2} ms  {} spans  {} services: {}",
        rows[0].1.trace_id,
        millis(timeline.total),
        rows.len(),
        services.len(),
        services.join(", "),
    );
    let _ = writeln!(
        out,
        "{:<service_width$}  {:<name_width$}  {:<kind_width$}  {:>9}  {:>9}  TIMELINE",
        "SERVICE", "SPAN", "KIND", "START ms", "DUR ms",
    );
    for (depth, span) in rows {
        let (start, end) = timeline.offsets(span);
        let mut line = format!(
            "{:<service_width$}  {:<name_width$}  {:<kind_width$}  {:>9.2}  {:>9.2}  {}",
            service(span),
            format!("{:indent$}{}", "", span.name, indent = 2 * depth),
            span.kind.to_string(),
            millis(start),
            millis(end - start),
            bar(start, end, timeline.total, width),
        );
        if let SpanStatus::Error { message } = &span.status {
            line.push_str(" ✗ ");
            line.push_str(if message.is_empty() { "error" } else { message });
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// One trace as a JSON document: `trace_id`, `duration_ms`, `services` (in tree order)
/// and `spans` (in tree order, each a serialized [`ReceivedSpan`] plus its `depth`).
#[derive(Debug, Serialize)]
pub struct TraceJson<'a> {
    /// The trace id.
    pub trace_id: &'a str,
    /// From the earliest start to the latest end, in milliseconds.
    pub duration_ms: f64,
    /// Distinct service names, in order of appearance.
    pub services: Vec<&'a str>,
    /// The spans with their depth in the tree.
    pub spans: Vec<JsonSpan<'a>>,
}

/// A span and its depth in the trace tree.
#[derive(Debug, Serialize)]
pub struct JsonSpan<'a> {
    /// 0 for roots (and orphans).
    pub depth: usize,
    /// The span's own fields.
    #[serde(flatten)]
    pub span: &'a ReceivedSpan,
}

impl<'a> TraceJson<'a> {
    /// The document for one trace's spans.
    pub fn new(spans: &'a [ReceivedSpan]) -> Self {
        let rows = tree_order(spans);
        Self {
            trace_id: rows.first().map_or("", |(_, span)| &span.trace_id),
            duration_ms: Timeline::of(spans).map_or(0.0, |timeline| millis(timeline.total)),
            services: services(&rows),
            spans: rows
                .into_iter()
                .map(|(depth, span)| JsonSpan { depth, span })
                .collect(),
        }
    }
}

/// The trace as one line of JSON (for `--json`).
pub fn render_json(spans: &[ReceivedSpan]) -> String {
    // Serializing plain structs, strings and numbers cannot fail.
    serde_json::to_string(&TraceJson::new(spans)).unwrap_or_default()
}

/// The trace's time span: offsets are nanoseconds from the earliest start.
struct Timeline {
    start: u64,
    /// Nanoseconds from the earliest start to the latest end; at least 1.
    total: u64,
}

impl Timeline {
    fn of(spans: &[ReceivedSpan]) -> Option<Self> {
        let start = spans.iter().map(|span| span.start_unix_nanos).min()?;
        let end = spans
            .iter()
            .map(|span| span.end_unix_nanos.max(span.start_unix_nanos))
            .max()?;
        Some(Self {
            start,
            total: (end - start).max(1),
        })
    }

    /// The span's start and end as offsets (an end before the start counts as the start).
    fn offsets(&self, span: &ReceivedSpan) -> (u64, u64) {
        let start = span.start_unix_nanos - self.start;
        (
            start,
            span.end_unix_nanos.saturating_sub(self.start).max(start),
        )
    }
}

/// `width` characters: track, then at least one bar character from `start` to `end`.
fn bar(start: u64, end: u64, total: u64, width: usize) -> String {
    // The column of a time offset, rounded down (start) or up (end); u128 cannot overflow.
    let column = |offset: u64, round_up: bool| {
        let (scaled, total) = (u128::from(offset) * width as u128, u128::from(total));
        let column = scaled / total + u128::from(round_up && !scaled.is_multiple_of(total));
        usize::try_from(column).unwrap_or(width).min(width)
    };
    let from = column(start, false).min(width - 1);
    let to = column(end, true).max(from + 1);
    [
        TRACK.repeat(from),
        BAR.repeat(to - from),
        TRACK.repeat(width - to),
    ]
    .concat()
}

fn services<'a>(rows: &[(usize, &'a ReceivedSpan)]) -> Vec<&'a str> {
    let mut services: Vec<&str> = Vec::new();
    for (_, span) in rows {
        if !services.contains(&service(span)) {
            services.push(service(span));
        }
    }
    services
}

/// The service name, or `?` for spans without one.
fn service(span: &ReceivedSpan) -> &str {
    if span.service_name.is_empty() {
        "?"
    } else {
        &span.service_name
    }
}

fn column_width(header: &str, widths: impl Iterator<Item = usize>) -> usize {
    widths.fold(header.len(), usize::max)
}

fn millis(nanos: u64) -> f64 {
    nanos as f64 / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::receiver::SpanKind;

    const T0: u64 = 1_700_000_000_000_000_000;
    const MS: u64 = 1_000_000;

    fn span(
        service: &str,
        kind: SpanKind,
        name: &str,
        (id, parent): (&str, Option<&str>),
        (start_ms, end_ms): (u64, u64),
    ) -> ReceivedSpan {
        ReceivedSpan {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: id.into(),
            parent_span_id: parent.map(Into::into),
            name: name.into(),
            kind,
            service_name: service.into(),
            start_unix_nanos: T0 + start_ms * MS,
            end_unix_nanos: T0 + end_ms * MS,
            ..ReceivedSpan::default()
        }
    }

    /// A checkout trace of 20 ms, shuffled, with a failed database span and a span
    /// whose parent never arrived.
    fn checkout_trace() -> Vec<ReceivedSpan> {
        use SpanKind::*;
        let mut failed = span(
            "stock-service",
            Client,
            "UPDATE stock",
            ("07", Some("05")),
            (14, 17),
        );
        failed.status = SpanStatus::Error {
            message: "database is locked".into(),
        };
        vec![
            span(
                "stock-service",
                Consumer,
                "process checkout",
                ("05", Some("04")),
                (12, 20),
            ),
            span(
                "gateway",
                Client,
                "checkout.Checkout/DoCheckout",
                ("02", Some("01")),
                (1, 9),
            ),
            failed,
            span(
                "checkout-service",
                Producer,
                "publish checkout",
                ("04", Some("03")),
                (3, 6),
            ),
            span(
                "gateway",
                Server,
                "POST /api/checkout",
                ("01", Some("ca11e4")),
                (0, 10),
            ),
            span(
                "stock-service",
                Client,
                "INSERT processed_orders",
                ("06", Some("05")),
                (13, 14),
            ),
            span(
                "checkout-service",
                Server,
                "checkout.Checkout/DoCheckout",
                ("03", Some("02")),
                (2, 8),
            ),
            span(
                "stock-service",
                Internal,
                "ack",
                ("08", Some("lost")),
                (19, 19),
            ),
        ]
    }

    #[test]
    fn waterfall_layout_of_a_known_trace() {
        let expected = [
            "trace 4bf92f3577b34da6a3ce929d0e0e4736  20.00 ms  8 spans  3 services: gateway, checkout-service, stock-service",
            "SERVICE           SPAN                               KIND       START ms     DUR ms  TIMELINE",
            "gateway           POST /api/checkout                 server         0.00      10.00  ██████████──────────",
            "gateway             checkout.Checkout/DoCheckout     client         1.00       8.00  ─████████───────────",
            "checkout-service      checkout.Checkout/DoCheckout   server         2.00       6.00  ──██████────────────",
            "checkout-service        publish checkout             producer       3.00       3.00  ───███──────────────",
            "stock-service             process checkout           consumer      12.00       8.00  ────────────████████",
            "stock-service               INSERT processed_orders  client        13.00       1.00  ─────────────█──────",
            "stock-service               UPDATE stock             client        14.00       3.00  ──────────────███─── ✗ database is locked",
            "stock-service     ack                                internal      19.00       0.00  ───────────────────█",
        ];
        let rendered = render_waterfall(&checkout_trace(), 20);
        assert_eq!(
            rendered.lines().collect::<Vec<_>>(),
            expected,
            "\n{rendered}"
        );
    }

    #[test]
    fn bars_are_scaled_and_never_empty() {
        assert_eq!(bar(0, 10, 10, 4), "████");
        assert_eq!(bar(0, 1, 1000, 4), "█───");
        assert_eq!(bar(999, 1000, 1000, 4), "───█");
        assert_eq!(bar(5, 5, 10, 4), "──█─");
        assert_eq!(bar(3, 7, 10, 4), "─██─");
    }

    #[test]
    fn cycles_and_duplicates_still_show_every_span_once() {
        use SpanKind::Internal;
        let spans = vec![
            span("a", Internal, "x", ("01", Some("02")), (0, 1)),
            span("a", Internal, "y", ("02", Some("01")), (1, 2)),
            span("a", Internal, "z", ("03", None), (2, 3)),
        ];
        let order: Vec<(usize, &str)> = tree_order(&spans)
            .into_iter()
            .map(|(depth, span)| (depth, span.name.as_str()))
            .collect();
        assert_eq!(order, [(0, "z"), (0, "x"), (1, "y")]);
        assert_eq!(render_waterfall(&[], 10), "no spans\n");
    }

    #[test]
    fn json_has_tree_order_and_depths() {
        let json: serde_json::Value =
            serde_json::from_str(&render_json(&checkout_trace())).expect("valid JSON");
        assert_eq!(json["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(json["duration_ms"], 20.0);
        assert_eq!(
            json["services"],
            serde_json::json!(["gateway", "checkout-service", "stock-service"])
        );
        let spans = json["spans"].as_array().expect("spans");
        assert_eq!(spans.len(), 8);
        assert_eq!(spans[0]["name"], "POST /api/checkout");
        assert_eq!(spans[0]["depth"], 0);
        assert_eq!(spans[6]["depth"], 5);
        assert_eq!(spans[6]["status"]["code"], "error");
        assert_eq!(spans[6]["kind"], "client");
    }
}
