//! Is a checkout's trace complete? The six spans every accepted checkout must leave,
//! whatever stock-service decides (the span table in docs/telemetry.md says which
//! others each outcome adds).
//!
//! A load test that only counts HTTP statuses cannot see broken tracing: a lost
//! `traceparent` between gateway and checkout-service, a message published without
//! trace headers, or an exporter dropping spans under load all still answer 202. This
//! module defines what a complete checkout trace is ([`CHECKOUT_TRACE`]) and checks a
//! set of known trace ids against a [`SpanStore`], waiting a bounded time for spans
//! that are still on their way (exporters send in batches, on a timer).

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::receiver::{ReceivedSpan, SpanKind, SpanStore};

/// How an expected span's name is matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamePattern {
    /// This exact name.
    Exact(&'static str),
    /// Any name starting with this (the exchange name in `publish checkout` varies).
    Prefix(&'static str),
}

/// A span a complete trace must contain (at least once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectedSpan {
    /// The resource's `service.name`.
    pub service: &'static str,
    /// The span kind.
    pub kind: SpanKind,
    /// The span name.
    pub name: NamePattern,
}

impl ExpectedSpan {
    /// Whether `span` is this one.
    pub fn matches(&self, span: &ReceivedSpan) -> bool {
        self.matches_parts(&span.service_name, span.kind, &span.name)
    }

    /// Whether a span of `service` with this `kind` and `name` is this one.
    pub fn matches_parts(&self, service: &str, kind: SpanKind, name: &str) -> bool {
        service == self.service
            && kind == self.kind
            && match self.name {
                NamePattern::Exact(expected) => name == expected,
                NamePattern::Prefix(prefix) => name.starts_with(prefix),
            }
    }
}

/// `gateway server POST /api/checkout`, `checkout-service producer publish *`, ...
impl fmt::Display for ExpectedSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ", self.service, self.kind)?;
        match self.name {
            NamePattern::Exact(name) => f.write_str(name),
            NamePattern::Prefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// The spans of one accepted checkout, in causal order: HTTP in, gRPC out and in,
/// publish, consume, and the statement that claims the order id, which every outcome
/// (applied, duplicate, rejected) runs first.
pub const CHECKOUT_TRACE: [ExpectedSpan; 6] = {
    use NamePattern::*;
    use SpanKind::*;
    const RPC: &str = "checkout.Checkout/DoCheckout";
    const fn span(service: &'static str, kind: SpanKind, name: NamePattern) -> ExpectedSpan {
        ExpectedSpan {
            service,
            kind,
            name,
        }
    }
    [
        span("gateway", Server, Exact("POST /api/checkout")),
        span("gateway", Client, Exact(RPC)),
        span("checkout-service", Server, Exact(RPC)),
        span("checkout-service", Producer, Prefix("publish ")),
        span("stock-service", Consumer, Prefix("process ")),
        span("stock-service", Client, Exact("INSERT processed_orders")),
    ]
};

/// Bit `i` set when `CHECKOUT_TRACE[i]` was seen.
pub type Seen = u8;
/// Every bit of [`Seen`] set: the trace is complete.
pub const ALL_SEEN: Seen = (1 << CHECKOUT_TRACE.len()) - 1;

fn seen_by(span: &ReceivedSpan) -> Seen {
    seen_by_parts(&span.service_name, span.kind, &span.name)
}

/// Which of [`CHECKOUT_TRACE`] a span of `service` with this `kind` and `name` is,
/// as [`Seen`] bits: for a caller that tallies raw OTLP spans without building a
/// [`ReceivedSpan`] for each (the benchmark).
pub fn seen_by_parts(service: &str, kind: SpanKind, name: &str) -> Seen {
    CHECKOUT_TRACE
        .iter()
        .enumerate()
        .filter(|(_, expected)| expected.matches_parts(service, kind, name))
        .fold(0, |seen, (i, _)| seen | 1 << i)
}

/// The [`TraceCheck`] of traces whose spans were tallied elsewhere: one [`Seen`] per
/// checked trace, `None` for a trace of which no span arrived.
pub fn tally_check(seen: impl IntoIterator<Item = Option<Seen>>, waited: Duration) -> TraceCheck {
    let mut checked = 0;
    let mut complete = 0;
    let mut without_spans = 0;
    let mut missing_counts = [0; CHECKOUT_TRACE.len()];
    for seen in seen {
        checked += 1;
        complete += usize::from(seen == Some(ALL_SEEN));
        without_spans += usize::from(seen.is_none());
        for (i, count) in missing_counts.iter_mut().enumerate() {
            if seen.unwrap_or(0) & 1 << i == 0 {
                *count += 1;
            }
        }
    }
    TraceCheck {
        checked,
        complete,
        without_spans,
        missing: CHECKOUT_TRACE
            .into_iter()
            .zip(missing_counts)
            .filter(|(_, count)| *count > 0)
            .collect(),
        waited,
    }
}

/// The expected spans missing from `spans` (one trace); empty if it is complete.
pub fn missing_spans(spans: &[ReceivedSpan]) -> Vec<ExpectedSpan> {
    let seen = spans.iter().fold(0, |seen, span| seen | seen_by(span));
    missing(seen).collect()
}

/// Whether `spans` (one trace) holds every span of [`CHECKOUT_TRACE`].
pub fn is_complete(spans: &[ReceivedSpan]) -> bool {
    missing_spans(spans).is_empty()
}

fn missing(seen: Seen) -> impl Iterator<Item = ExpectedSpan> {
    CHECKOUT_TRACE
        .into_iter()
        .enumerate()
        .filter(move |(i, _)| seen & 1 << i == 0)
        .map(|(_, expected)| expected)
}

/// The outcome of checking a set of traces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceCheck {
    /// Traces checked (distinct trace ids).
    pub checked: usize,
    /// Traces holding every expected span.
    pub complete: usize,
    /// Traces of which not a single span arrived.
    pub without_spans: usize,
    /// For each expected span missing from some trace, in [`CHECKOUT_TRACE`] order: how
    /// many traces lack it (traces without any span included).
    pub missing: Vec<(ExpectedSpan, usize)>,
    /// How long the check waited for spans.
    pub waited: Duration,
}

impl TraceCheck {
    /// Whether every checked trace is complete.
    pub fn all_complete(&self) -> bool {
        self.complete == self.checked
    }
}

/// `48 of 50 traces complete`, then one line per missing span.
impl fmt::Display for TraceCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} traces complete (waited {:.1} s)",
            self.complete,
            self.checked,
            self.waited.as_secs_f64()
        )?;
        if self.without_spans > 0 {
            write!(f, "\n  {} traces without any span", self.without_spans)?;
        }
        for (expected, count) in &self.missing {
            write!(f, "\n  {count} missing {expected}")?;
        }
        Ok(())
    }
}

/// Checks that every trace in `trace_ids` is complete, following `store` until they
/// all are or `timeout` has passed.
///
/// The store may be shared with anything else (spans of other traces are ignored), so a
/// test can pass the receiver its services already export to.
pub async fn check_traces(
    store: &SpanStore,
    trace_ids: &[String],
    timeout: Duration,
) -> TraceCheck {
    let started = Instant::now();
    let mut traces: HashMap<&str, Option<Seen>> =
        trace_ids.iter().map(|id| (id.as_str(), None)).collect();
    let mut incomplete = traces.len();
    let mut spans = store.subscribe();
    while incomplete > 0 {
        let Ok(Some(batch)) = tokio::time::timeout_at(started + timeout, spans.next_batch()).await
        else {
            break;
        };
        for span in &batch {
            if let Some(state) = traces.get_mut(span.trace_id.as_str()) {
                let before = state.unwrap_or(0);
                let after = before | seen_by(span);
                *state = Some(after);
                if before != ALL_SEEN && after == ALL_SEEN {
                    incomplete -= 1;
                }
            }
        }
    }

    tally_check(traces.into_values(), started.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(service: &str, kind: SpanKind, name: &str) -> ReceivedSpan {
        ReceivedSpan {
            trace_id: "t".into(),
            name: name.into(),
            kind,
            service_name: service.into(),
            ..ReceivedSpan::default()
        }
    }

    #[test]
    fn a_checkout_trace_needs_all_six_spans() {
        use SpanKind::*;
        let mut spans = vec![
            span("gateway", Server, "POST /api/checkout"),
            span("gateway", Client, "checkout.Checkout/DoCheckout"),
            span("checkout-service", Server, "checkout.Checkout/DoCheckout"),
            span("checkout-service", Producer, "publish orders"),
            span("stock-service", Client, "INSERT processed_orders"),
            span("stock-service", Client, "UPDATE stock"),
        ];
        assert_eq!(missing_spans(&spans), [CHECKOUT_TRACE[4]]);
        assert_eq!(
            CHECKOUT_TRACE[4].to_string(),
            "stock-service consumer process *"
        );
        spans.push(span("stock-service", Consumer, "process orders"));
        assert!(is_complete(&spans));

        let wrong_service = [span("gateway", Consumer, "process orders")];
        assert_eq!(missing_spans(&wrong_service).len(), 6);
    }
}
