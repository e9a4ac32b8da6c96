//! Log records: the flattened model and the bounded store.
//!
//! Each OTLP log record becomes a [`ReceivedLog`] with its resource's
//! `service.name`, hex trace and span ids (when it was written inside a span),
//! severity, body and attributes. The store keeps the newest
//! [`DEFAULT_LOG_LIMIT`] records (the oldest go first, and are counted), with an
//! index by trace id so a trace's records are found without a scan: what
//! `checkout traces --logs` prints under each waterfall.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use serde::Serialize;
use tokio::sync::watch;

use super::span::{AttributeValue, attributes, hex, service_name};

/// Log records kept by default.
pub const DEFAULT_LOG_LIMIT: usize = 100_000;

/// One exported log record, flattened with its resource's `service.name`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReceivedLog {
    /// The resource attribute `service.name` (`""` if absent).
    pub service_name: String,
    /// When the event happened (or, if the exporter did not say, when it was
    /// observed), nanoseconds since the Unix epoch.
    pub time_unix_nanos: u64,
    /// The severity number (1–24; 9 is INFO, 13 WARN, 17 ERROR; 0 unset).
    pub severity_number: i32,
    /// The severity as written, e.g. `INFO`.
    pub severity_text: String,
    /// The body: the log message.
    pub body: Option<AttributeValue>,
    /// The record's attributes by key (the event's fields).
    pub attributes: BTreeMap<String, AttributeValue>,
    /// The trace id as lowercase hex, if the record was written inside a span.
    pub trace_id: Option<String>,
    /// The span id as lowercase hex, if the record was written inside a span.
    pub span_id: Option<String>,
    /// The instrumentation scope: for `tracing` events, their target.
    pub scope: String,
    /// The event name, if any.
    pub event_name: String,
}

impl ReceivedLog {
    /// The body as text (`""` without one).
    pub fn message(&self) -> String {
        self.body
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default()
    }
}

/// Flattens an export request into one [`ReceivedLog`] per record.
pub(crate) fn flatten(request: ExportLogsServiceRequest) -> Vec<ReceivedLog> {
    let mut out = Vec::new();
    for resource_logs in request.resource_logs {
        let service = service_name(resource_logs.resource.as_ref()).to_owned();
        for scope_logs in resource_logs.scope_logs {
            let scope = scope_logs
                .scope
                .as_ref()
                .map(|scope| scope.name.clone())
                .unwrap_or_default();
            out.extend(
                scope_logs
                    .log_records
                    .into_iter()
                    .map(|record| received_log(record, &service, &scope)),
            );
        }
    }
    out
}

fn received_log(record: LogRecord, service: &str, scope: &str) -> ReceivedLog {
    let id =
        |bytes: &[u8]| (!bytes.is_empty() && bytes.iter().any(|b| *b != 0)).then(|| hex(bytes));
    ReceivedLog {
        service_name: service.to_owned(),
        time_unix_nanos: if record.time_unix_nano != 0 {
            record.time_unix_nano
        } else {
            record.observed_time_unix_nano
        },
        severity_number: record.severity_number,
        severity_text: record.severity_text,
        body: record.body.as_ref().and_then(AttributeValue::from_proto),
        attributes: attributes(&record.attributes),
        trace_id: id(&record.trace_id),
        span_id: id(&record.span_id),
        scope: scope.to_owned(),
        event_name: record.event_name,
    }
}

#[derive(Debug, Default)]
struct Logs {
    /// Every record kept, oldest first.
    all: VecDeque<Arc<ReceivedLog>>,
    /// The same records by trace id, each list oldest first.
    by_trace: HashMap<String, VecDeque<Arc<ReceivedLog>>>,
    /// Records let go to stay within the limit.
    evicted: u64,
}

/// Shared, cloneable store of the newest log records. Clones share it.
#[derive(Debug, Clone)]
pub struct LogStore {
    logs: watch::Sender<Logs>,
    limit: usize,
}

impl Default for LogStore {
    fn default() -> Self {
        Self::with_limit(DEFAULT_LOG_LIMIT)
    }
}

impl LogStore {
    /// An empty store keeping the newest [`DEFAULT_LOG_LIMIT`] records.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store keeping the newest `limit` records (at least one).
    pub fn with_limit(limit: usize) -> Self {
        Self {
            logs: watch::Sender::new(Logs::default()),
            limit: limit.max(1),
        }
    }

    /// Stores the records of an export request, oldest let go past the limit,
    /// waking all waiters.
    pub fn insert(&self, request: ExportLogsServiceRequest) {
        let records = flatten(request);
        let limit = self.limit;
        self.logs.send_modify(|logs| {
            for record in records {
                let record = Arc::new(record);
                if let Some(trace_id) = &record.trace_id {
                    let list = logs.by_trace.entry(trace_id.clone()).or_default();
                    list.push_back(record.clone());
                }
                logs.all.push_back(record);
                while logs.all.len() > limit {
                    let Some(oldest) = logs.all.pop_front() else {
                        break;
                    };
                    logs.evicted += 1;
                    if let Some(trace_id) = &oldest.trace_id
                        && let Some(list) = logs.by_trace.get_mut(trace_id)
                    {
                        // Both lists are in arrival order: the oldest is first.
                        list.pop_front();
                        if list.is_empty() {
                            logs.by_trace.remove(trace_id);
                        }
                    }
                }
            }
        });
    }

    /// Every record kept, in arrival order.
    pub fn all(&self) -> Vec<ReceivedLog> {
        self.logs
            .borrow()
            .all
            .iter()
            .map(|r| (**r).clone())
            .collect()
    }

    /// The records of one trace (`trace_id` in lowercase hex), in time order.
    pub fn logs_of_trace(&self, trace_id: &str) -> Vec<ReceivedLog> {
        of_trace(&self.logs.borrow(), trace_id)
    }

    /// Records kept.
    pub fn len(&self) -> usize {
        self.logs.borrow().all.len()
    }

    /// Whether no record is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records let go to stay within the limit.
    pub fn evicted(&self) -> u64 {
        self.logs.borrow().evicted
    }

    /// Waits until `done` holds for every record kept (arrival order) or
    /// `timeout` elapses. Returns `Ok(records)` once satisfied, or
    /// `Err(records so far)` on timeout.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&[ReceivedLog]) -> bool,
    ) -> Result<Vec<ReceivedLog>, Vec<ReceivedLog>> {
        let mut rx = self.logs.subscribe();
        let mut selected = Vec::new();
        let satisfied = rx.wait_for(|logs| {
            selected = logs.all.iter().map(|r| (**r).clone()).collect();
            done(&selected)
        });
        match tokio::time::timeout(timeout, satisfied).await {
            Ok(Ok(_)) => Ok(selected),
            Ok(Err(_)) | Err(_) => Err(self.all()),
        }
    }
}

fn of_trace(logs: &Logs, trace_id: &str) -> Vec<ReceivedLog> {
    let mut records: Vec<ReceivedLog> = logs
        .by_trace
        .get(trace_id)
        .into_iter()
        .flatten()
        .map(|record| (**record).clone())
        .collect();
    records.sort_by_key(|record| record.time_unix_nanos);
    records
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};

    use super::*;

    fn export(records: &[(u8, u64)]) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: records
                        .iter()
                        .map(|&(trace, time)| LogRecord {
                            trace_id: vec![trace; 16],
                            span_id: vec![trace; 8],
                            time_unix_nano: time,
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn the_oldest_records_go_first_from_both_lists() {
        let store = LogStore::with_limit(3);
        store.insert(export(&[(1, 30), (2, 10), (1, 20)]));
        assert_eq!(store.logs_of_trace(&"01".repeat(16)).len(), 2);
        store.insert(export(&[(3, 40), (1, 50)]));
        assert_eq!(store.len(), 3);
        assert_eq!(store.evicted(), 2);
        let times: Vec<u64> = store
            .logs_of_trace(&"01".repeat(16))
            .iter()
            .map(|r| r.time_unix_nanos)
            .collect();
        assert_eq!(
            times,
            [20, 50],
            "the trace's oldest went, the rest in time order"
        );
        assert!(store.logs_of_trace(&"02".repeat(16)).is_empty());
        // All-zero ids mean "no span".
        store.insert(export(&[(0, 60)]));
        assert_eq!(store.all().last().unwrap().trace_id, None);
    }
}
