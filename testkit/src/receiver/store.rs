//! The shared span store: everything the receiver has collected, plus waiting on it.
//!
//! Exports arrive asynchronously (batch exporters flush on a timer), so tests cannot
//! assert right after sending a request; they must wait until the expected spans have
//! arrived. The store keeps its spans inside a [`tokio::sync::watch`] channel: each
//! insert modifies the value in place and wakes every waiter, which re-checks its
//! condition. Waiting is therefore condition-based and race-free (a waiter checks the
//! current contents before sleeping), with no polling interval to tune.
//!
//! The store is append-only, which is what lets a [`SpanSubscription`] hand out each
//! span exactly once by remembering how many it has already seen.

use std::collections::BTreeMap;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use tokio::sync::watch;

use super::settle::CompletedTraces;
use super::span::{ReceivedSpan, flatten_spans};

/// Shared, cloneable, thread-safe store of every span received. Clones share the same spans.
#[derive(Debug, Clone, Default)]
pub struct SpanStore {
    spans: watch::Sender<Vec<ReceivedSpan>>,
}

impl SpanStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Flattens and stores the spans of an export request, waking all waiters.
    pub fn insert(&self, request: ExportTraceServiceRequest) {
        let new = flatten_spans(request);
        self.spans.send_modify(|spans| spans.extend(new));
    }

    /// Every span received so far, in arrival order.
    pub fn all(&self) -> Vec<ReceivedSpan> {
        self.spans.borrow().clone()
    }

    /// The spans of one trace (`trace_id` in lowercase hex), sorted by start time.
    pub fn trace(&self, trace_id: &str) -> Vec<ReceivedSpan> {
        trace_of(&self.spans.borrow(), trace_id)
    }

    /// All spans grouped by trace id, each trace sorted by start time.
    ///
    /// OTLP has no "trace finished" signal, so a trace here holds whatever spans have
    /// arrived so far; callers wanting complete traces should first [`wait_for`](Self::wait_for).
    pub fn traces(&self) -> BTreeMap<String, Vec<ReceivedSpan>> {
        let mut traces: BTreeMap<String, Vec<ReceivedSpan>> = BTreeMap::new();
        for span in self.spans.borrow().iter() {
            traces
                .entry(span.trace_id.clone())
                .or_default()
                .push(span.clone());
        }
        for spans in traces.values_mut() {
            spans.sort_by_key(|span| span.start_unix_nanos);
        }
        traces
    }

    /// Number of spans received.
    pub fn len(&self) -> usize {
        self.spans.borrow().len()
    }

    /// Whether no span has been received yet.
    pub fn is_empty(&self) -> bool {
        self.spans.borrow().is_empty()
    }

    /// A subscription yielding every span of this store (those already received first),
    /// each once, in arrival order, batch by batch.
    pub fn subscribe(&self) -> SpanSubscription {
        SpanSubscription {
            spans: self.spans.subscribe(),
            seen: 0,
        }
    }

    /// The traces of this store (those already received first), each released once no
    /// span arrived for it for `settle`: OTLP has no "trace finished" signal, see
    /// [`TraceSettler`](super::TraceSettler).
    pub fn completed_traces(&self, settle: Duration) -> CompletedTraces {
        CompletedTraces::new(self.subscribe(), settle)
    }

    /// Waits until `done` holds for the spans of `trace_id` (sorted by start time) or
    /// `timeout` elapses.
    ///
    /// Returns `Ok(spans)` once satisfied, or `Err(spans seen so far)` on timeout, so a
    /// failing test can show what did arrive.
    pub async fn wait_for_trace(
        &self,
        trace_id: &str,
        timeout: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Result<Vec<ReceivedSpan>, Vec<ReceivedSpan>> {
        self.wait_until(timeout, |spans| trace_of(spans, trace_id), done)
            .await
    }

    /// Waits until `done` holds for all spans received (in arrival order) or `timeout`
    /// elapses; e.g. to wait for N spans in total, or for a span with some attribute.
    ///
    /// Returns `Ok(spans)` once satisfied, or `Err(spans seen so far)` on timeout.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Result<Vec<ReceivedSpan>, Vec<ReceivedSpan>> {
        self.wait_until(timeout, |spans| spans.to_vec(), done).await
    }

    /// Re-evaluates `done(select(spans))` on every insert until it holds or time runs out.
    async fn wait_until(
        &self,
        timeout: Duration,
        select: impl Fn(&[ReceivedSpan]) -> Vec<ReceivedSpan>,
        done: impl Fn(&[ReceivedSpan]) -> bool,
    ) -> Result<Vec<ReceivedSpan>, Vec<ReceivedSpan>> {
        let mut rx = self.spans.subscribe();
        let mut selected = Vec::new();
        let satisfied = rx.wait_for(|spans| {
            selected = select(spans);
            done(&selected)
        });
        // `wait_for` only fails if the sender is dropped, which `self` prevents.
        match tokio::time::timeout(timeout, satisfied).await {
            Ok(Ok(_)) => Ok(selected),
            Ok(Err(_)) | Err(_) => Err(select(&self.spans.borrow())),
        }
    }
}

fn trace_of(spans: &[ReceivedSpan], trace_id: &str) -> Vec<ReceivedSpan> {
    let mut trace: Vec<_> = spans
        .iter()
        .filter(|span| span.trace_id == trace_id)
        .cloned()
        .collect();
    trace.sort_by_key(|span| span.start_unix_nanos);
    trace
}

/// Spans of a [`SpanStore`] in arrival order, each handed out once; see [`SpanStore::subscribe`].
///
/// Unlike [`SpanStore::wait_for`], which re-examines everything on every insert, a
/// subscription only ever copies the new spans, so consumers that follow a busy store
/// for a long time (`checkout traces`, load-test verification) stay cheap.
#[derive(Debug)]
pub struct SpanSubscription {
    spans: watch::Receiver<Vec<ReceivedSpan>>,
    /// How many spans of the (append-only) store were already handed out.
    seen: usize,
}

impl SpanSubscription {
    /// Waits for spans not handed out yet and returns them, oldest first.
    ///
    /// Returns `None` once every [`SpanStore`] handle is dropped (no span can arrive any
    /// more). Cancel-safe: dropping the future before it completes loses no spans.
    pub async fn next_batch(&mut self) -> Option<Vec<ReceivedSpan>> {
        loop {
            {
                let spans = self.spans.borrow_and_update();
                if spans.len() > self.seen {
                    let new = spans[self.seen..].to_vec();
                    self.seen = spans.len();
                    return Some(new);
                }
            }
            self.spans.changed().await.ok()?;
        }
    }
}
