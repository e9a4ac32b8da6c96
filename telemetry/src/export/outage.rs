//! A collector that goes away, logged twice per signal instead of once per
//! batch: a warning when that signal's exports start failing, and a line
//! when one succeeds again, with how many items were dropped in between.
//!
//! Why: with no collector listening the SDK logs an ERROR for every failed
//! batch (`BatchSpanProcessor.ExportError` and its log and metric
//! counterparts): the same message every second or so, for a situation this
//! project treats as normal (telemetry is dropped, requests never wait).
//! Those SDK events are filtered out of the service's logs
//! ([`is_repeated_export_error`]) and these two lines stand in for them.
//! They are written from the one place that sees the outcome of every
//! export: the tally's `Counted` wrapper (see [`super::tally`]), which also
//! keeps counting the lost items as `otel.sdk.exporter.*` metrics. For the
//! same reason a service stopping while its collector is away does not warn
//! that its telemetry shutdown is incomplete: the totals line says what was lost.

use std::sync::{Mutex, OnceLock};

use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use tracing::dispatcher::WeakDispatch;

/// The SDK's own per-batch export errors, which [`Outage`] replaces.
const REPEATED_EXPORT_ERRORS: [&str; 3] = [
    "BatchSpanProcessor.ExportError",
    "BatchLogProcessor.ExportError",
    "PeriodicReader.ExportError",
];

/// Whether `metadata` is one of the SDK's per-batch export errors, which the
/// service's logs leave out (an [`Outage`] logs the failure once instead).
pub(crate) fn is_repeated_export_error(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.target() == "opentelemetry_sdk" && REPEATED_EXPORT_ERRORS.contains(&metadata.name())
}

/// Where the exports of one signal stand: the items dropped since they
/// started failing, `None` while they succeed.
#[derive(Debug, Default)]
pub(crate) struct Outage {
    dropped: Mutex<Option<u64>>,
}

/// What [`Outage::record`] reports, to log where the service's logs go.
#[derive(Debug, PartialEq, Eq)]
enum Change {
    /// The first failed export after a working one (or the start).
    Failing,
    /// The first working export after failures, and what they dropped.
    Back { dropped: u64 },
}

impl Outage {
    /// Notes the outcome of one export of `items`; logs a change of state
    /// under `dispatch` (the service's own), naming `signal` (`spans`, …)
    /// and the collector's `endpoint`.
    pub(crate) fn record(
        &self,
        items: usize,
        result: &OTelSdkResult,
        signal: &str,
        endpoint: &str,
        dispatch: &OnceLock<WeakDispatch>,
    ) {
        let Some(change) = self.change(items, result) else {
            return;
        };
        let log = || match change {
            Change::Failing => {
                let error = result.as_ref().err().map(ToString::to_string);
                tracing::warn!(
                    signal,
                    endpoint,
                    error = error.unwrap_or_default(),
                    "OTLP collector unreachable: {signal} are dropped until it is back (requests do not wait)"
                );
            }
            Change::Back { dropped } => tracing::info!(
                signal,
                endpoint,
                dropped,
                "OTLP collector back: {signal} dropped while it was unreachable: {dropped}"
            ),
        };
        match dispatch.get().and_then(WeakDispatch::upgrade) {
            Some(dispatch) => tracing::dispatcher::with_default(&dispatch, log),
            None => log(),
        }
    }

    /// Whether the last export failed (and the ones since it started failing).
    pub(crate) fn failing(&self) -> bool {
        self.dropped
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    fn change(&self, items: usize, result: &OTelSdkResult) -> Option<Change> {
        let mut dropped = self.dropped.lock().unwrap_or_else(|p| p.into_inner());
        match (result, dropped.as_mut()) {
            // After shutdown: not the collector's doing.
            (Err(OTelSdkError::AlreadyShutdown), _) => None,
            (Ok(()), None) => None,
            (Ok(()), Some(_)) => dropped.take().map(|dropped| Change::Back { dropped }),
            (Err(_), Some(count)) => {
                *count += items as u64;
                None
            }
            (Err(_), None) => {
                *dropped = Some(items as u64);
                Some(Change::Failing)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_change_when_exports_start_failing_and_one_when_they_work_again() {
        let outage = Outage::default();
        let failed = || Err(OTelSdkError::InternalFailure("connection refused".into()));
        assert_eq!(outage.change(5, &Ok(())), None);
        assert_eq!(outage.change(3, &failed()), Some(Change::Failing));
        assert_eq!(outage.change(4, &failed()), None);
        assert_eq!(outage.change(1, &Err(OTelSdkError::AlreadyShutdown)), None);
        assert_eq!(outage.change(2, &Ok(())), Some(Change::Back { dropped: 7 }));
        assert_eq!(outage.change(2, &Ok(())), None);
    }
}
