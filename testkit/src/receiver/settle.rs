//! Deciding when a trace is complete: the *settle time*.
//!
//! OTLP has no "trace finished" signal. Each service exports its own spans in batches
//! on its own timer (the services default to one export per second), so the spans of
//! one checkout trickle in from three processes over a second or two, and nothing says
//! when the last one has arrived. The usual answer, also used by tail-sampling
//! collectors, is a quiet period: a trace counts as complete once no new span has
//! arrived for it for the settle time. It must exceed the exporters' batch delay, or
//! one trace gets cut in two; longer settle times only delay the output.
//!
//! A span arriving after its trace was handed out starts a new (partial) trace with
//! the same id. [`TraceSettler`] is the pure bookkeeping, driven by explicit instants so
//! it is testable without sleeping; [`CompletedTraces`] runs it over a live store.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use tokio::time::Instant;

use super::{ReceivedSpan, SpanSubscription};

/// Groups spans into traces and releases each trace once it has been quiet for the
/// settle time.
#[derive(Debug)]
pub struct TraceSettler {
    settle: Duration,
    pending: HashMap<String, Pending>,
}

#[derive(Debug)]
struct Pending {
    spans: Vec<ReceivedSpan>,
    last_arrival: Instant,
}

impl TraceSettler {
    /// A settler releasing traces that were quiet for `settle`.
    pub fn new(settle: Duration) -> Self {
        Self {
            settle,
            pending: HashMap::new(),
        }
    }

    /// Adds spans that arrived at `now`.
    pub fn add(&mut self, spans: impl IntoIterator<Item = ReceivedSpan>, now: Instant) {
        for span in spans {
            let pending = self
                .pending
                .entry(span.trace_id.clone())
                .or_insert_with(|| Pending {
                    spans: Vec::new(),
                    last_arrival: now,
                });
            pending.spans.push(span);
            pending.last_arrival = now;
        }
    }

    /// When the next pending trace settles, if any is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|pending| pending.last_arrival + self.settle)
            .min()
    }

    /// Removes and returns the traces quiet since `now - settle` (each sorted by start
    /// time, the traces ordered by their first span).
    pub fn take_settled(&mut self, now: Instant) -> Vec<Vec<ReceivedSpan>> {
        let settled: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, pending)| pending.last_arrival + self.settle <= now)
            .map(|(trace_id, _)| trace_id.clone())
            .collect();
        self.take(settled)
    }

    /// Removes and returns every pending trace, settled or not (e.g. on exit).
    pub fn take_all(&mut self) -> Vec<Vec<ReceivedSpan>> {
        let all = self.pending.keys().cloned().collect();
        self.take(all)
    }

    fn take(&mut self, trace_ids: Vec<String>) -> Vec<Vec<ReceivedSpan>> {
        let mut traces: Vec<Vec<ReceivedSpan>> = trace_ids
            .iter()
            .filter_map(|trace_id| self.pending.remove(trace_id))
            .map(|pending| {
                let mut spans = pending.spans;
                spans.sort_by_key(|span| span.start_unix_nanos);
                spans
            })
            .collect();
        traces.sort_by_key(|spans| spans.first().map(|span| span.start_unix_nanos));
        traces
    }
}

/// A stream of complete traces from a live store; see [`SpanStore::completed_traces`].
///
/// [`SpanStore::completed_traces`]: super::SpanStore::completed_traces
#[derive(Debug)]
pub struct CompletedTraces {
    spans: SpanSubscription,
    settler: TraceSettler,
    ready: VecDeque<Vec<ReceivedSpan>>,
}

impl CompletedTraces {
    pub(super) fn new(spans: SpanSubscription, settle: Duration) -> Self {
        Self {
            spans,
            settler: TraceSettler::new(settle),
            ready: VecDeque::new(),
        }
    }

    /// Waits for the next trace that has been quiet for the settle time (its spans
    /// sorted by start time). Returns `None` once the store is gone and everything
    /// pending has been handed out. Cancel-safe.
    pub async fn next(&mut self) -> Option<Vec<ReceivedSpan>> {
        loop {
            if let Some(trace) = self.ready.pop_front() {
                return Some(trace);
            }
            let deadline = self.settler.next_deadline();
            tokio::select! {
                batch = self.spans.next_batch() => match batch {
                    Some(spans) => self.settler.add(spans, Instant::now()),
                    None => {
                        self.ready.extend(self.settler.take_all());
                        return self.ready.pop_front();
                    }
                },
                () = sleep_until(deadline) => {
                    self.ready.extend(self.settler.take_settled(Instant::now()));
                }
            }
        }
    }

    /// Every trace not handed out yet, settled or not (for a last flush before exiting).
    pub fn take_pending(&mut self) -> Vec<Vec<ReceivedSpan>> {
        let mut traces: Vec<_> = self.ready.drain(..).collect();
        traces.extend(self.settler.take_all());
        traces
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::receiver::{SpanKind, SpanStatus};

    fn span(trace_id: &str, span_id: &str, start: u64) -> ReceivedSpan {
        ReceivedSpan {
            trace_id: trace_id.into(),
            span_id: span_id.into(),
            parent_span_id: None,
            name: span_id.into(),
            kind: SpanKind::Internal,
            service_name: "test".into(),
            service_instance_id: String::new(),
            attributes: BTreeMap::new(),
            status: SpanStatus::Unset,
            start_unix_nanos: start,
            end_unix_nanos: start + 1,
            events: Vec::new(),
            links: Vec::new(),
        }
    }

    fn ids(traces: &[Vec<ReceivedSpan>]) -> Vec<Vec<&str>> {
        traces
            .iter()
            .map(|trace| trace.iter().map(|span| span.span_id.as_str()).collect())
            .collect()
    }

    #[test]
    fn a_trace_settles_only_after_a_quiet_period() {
        let settle = Duration::from_secs(2);
        let t0 = Instant::now();
        let mut settler = TraceSettler::new(settle);
        assert_eq!(settler.next_deadline(), None);

        settler.add([span("a", "a2", 20), span("b", "b1", 5)], t0);
        settler.add([span("a", "a1", 10)], t0 + Duration::from_secs(1));
        assert_eq!(settler.next_deadline(), Some(t0 + settle));

        // "b" has been quiet for 2 s; "a" got a span 1 s ago.
        let settled = settler.take_settled(t0 + settle);
        assert_eq!(ids(&settled), [["b1"]]);
        assert!(settler.take_settled(t0 + settle).is_empty());

        // "a" settles 2 s after its last span, sorted by start time.
        let settled = settler.take_settled(t0 + Duration::from_secs(3));
        assert_eq!(ids(&settled), [["a1", "a2"]]);
        assert_eq!(settler.next_deadline(), None);
    }

    #[test]
    fn take_all_releases_unsettled_traces_ordered_by_start() {
        let mut settler = TraceSettler::new(Duration::from_secs(60));
        let now = Instant::now();
        settler.add([span("late", "l", 50), span("early", "e", 10)], now);
        assert!(settler.take_settled(now).is_empty());
        assert_eq!(ids(&settler.take_all()), [["e"], ["l"]]);
    }
}
