//! What each signal's exporter delivered and what it lost, counted where it
//! can be seen: as the semantic conventions' SDK metrics
//! (`otel.sdk.exporter.span.exported`, `otel.sdk.exporter.log.exported`,
//! `otel.sdk.exporter.metric_data_point.exported`, with `error.type` on the
//! failed ones) on the service's own meter, and in one log line at shutdown.
//!
//! The SDK 0.33 counts none of this itself where a service could read it: its
//! batch processors only log the first queue-full drop and the total at
//! shutdown, and its own `otel.sdk.*` counters (behind an experimental
//! feature) go to the process-global meter provider, which services sharing
//! a process in tests cannot each have. So each exporter is wrapped in
//! [`Counted`], which counts the items of every export by its outcome: an
//! atomic add per batch, nothing per span or record. The same outcomes tell
//! when the collector goes away and comes back, logged once each
//! ([`super::outage`]).

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicU64, Ordering},
};
use std::time::Duration;

use opentelemetry::{KeyValue, metrics::Meter};
use opentelemetry_sdk::{
    Resource,
    error::{OTelSdkError, OTelSdkResult},
    logs::{LogBatch, LogExporter},
    metrics::{
        Temporality,
        data::{AggregatedMetrics, MetricData, ResourceMetrics},
        exporter::PushMetricExporter,
    },
    trace::{SpanData, SpanExporter},
};
use opentelemetry_semantic_conventions::{
    attribute::{ERROR_TYPE, OTEL_COMPONENT_TYPE},
    metric::{
        OTEL_SDK_EXPORTER_LOG_EXPORTED, OTEL_SDK_EXPORTER_METRIC_DATA_POINT_EXPORTED,
        OTEL_SDK_EXPORTER_SPAN_EXPORTED,
    },
};

use tracing::dispatcher::WeakDispatch;

use super::outage::Outage;
use crate::OtlpProtocol;

/// The items of one signal's exports, by outcome.
#[derive(Debug, Default)]
pub(crate) struct SignalCounts {
    exported: AtomicU64,
    timed_out: AtomicU64,
    failed: AtomicU64,
    after_shutdown: AtomicU64,
    outage: Outage,
}

impl SignalCounts {
    fn record(&self, items: usize, result: &OTelSdkResult) {
        let counter = match result {
            Ok(()) => &self.exported,
            Err(OTelSdkError::Timeout(_)) => &self.timed_out,
            Err(OTelSdkError::AlreadyShutdown) => &self.after_shutdown,
            Err(_) => &self.failed,
        };
        counter.fetch_add(items as u64, Ordering::Relaxed);
    }

    /// Whether this signal's exports are failing (see [`Outage`]).
    pub(crate) fn collector_away(&self) -> bool {
        self.outage.failing()
    }

    /// Items delivered.
    pub(crate) fn exported(&self) -> u64 {
        self.exported.load(Ordering::Relaxed)
    }

    /// Items of exports that failed, whatever the reason.
    pub(crate) fn lost(&self) -> u64 {
        [&self.timed_out, &self.failed, &self.after_shutdown]
            .iter()
            .map(|counter| counter.load(Ordering::Relaxed))
            .sum()
    }

    /// `(error.type, items)`: `None` for the delivered ones.
    fn by_outcome(&self) -> [(Option<&'static str>, u64); 4] {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        [
            (None, load(&self.exported)),
            (Some("timeout"), load(&self.timed_out)),
            (Some("export_failed"), load(&self.failed)),
            (Some("already_shutdown"), load(&self.after_shutdown)),
        ]
    }
}

/// The three signals' counts, shared by the exporters and the meter.
#[derive(Debug, Default)]
pub(crate) struct ExportTally {
    pub(crate) spans: SignalCounts,
    pub(crate) logs: SignalCounts,
    pub(crate) metric_points: SignalCounts,
    /// The collector's address, named when it goes away.
    endpoint: String,
    /// The service's dispatcher, set once built: the exports run on the
    /// SDK's threads, and what is logged about them belongs to the service.
    pub(crate) dispatch: OnceLock<WeakDispatch>,
}

impl ExportTally {
    /// An empty tally of the exports to the collector at `endpoint`.
    pub(crate) fn new(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.to_owned(),
            ..Self::default()
        }
    }

    /// Counts an export of `items` of one signal (`name`, as a log says it)
    /// by its outcome.
    fn record(&self, select: Select, name: &str, items: usize, result: &OTelSdkResult) {
        let counts = select(self);
        counts.record(items, result);
        counts
            .outage
            .record(items, result, name, &self.endpoint, &self.dispatch);
    }

    /// Registers the counts as observable counters on `meter`, tagged with
    /// the exporter's `otel.component.type` (e.g. `otlp_grpc_span_exporter`).
    pub(crate) fn observe_on(self: &Arc<Self>, meter: &Meter, protocol: OtlpProtocol) {
        let transport = match protocol {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http",
        };
        let signals: [(&str, &str, &str, Select); 3] = [
            (OTEL_SDK_EXPORTER_SPAN_EXPORTED, "{span}", "span", |t| {
                &t.spans
            }),
            (OTEL_SDK_EXPORTER_LOG_EXPORTED, "{log_record}", "log", |t| {
                &t.logs
            }),
            (
                OTEL_SDK_EXPORTER_METRIC_DATA_POINT_EXPORTED,
                "{data_point}",
                "metric",
                |t| &t.metric_points,
            ),
        ];
        for (name, unit, signal, counts) in signals {
            let tally = Arc::downgrade(self);
            let component = KeyValue::new(
                OTEL_COMPONENT_TYPE,
                format!("otlp_{transport}_{signal}_exporter"),
            );
            meter
                .u64_observable_counter(name)
                .with_unit(unit)
                .with_description("Items whose export finished, by outcome (error.type when lost)")
                .with_callback(move |observer| {
                    let Some(tally) = tally.upgrade() else { return };
                    for (error, items) in counts(&tally).by_outcome() {
                        match error {
                            None => observer.observe(items, std::slice::from_ref(&component)),
                            Some(_) if items == 0 => {}
                            Some(error) => observer.observe(
                                items,
                                &[component.clone(), KeyValue::new(ERROR_TYPE, error)],
                            ),
                        }
                    }
                })
                .build();
        }
    }
}

/// Picks one signal's counts out of the tally.
type Select = fn(&ExportTally) -> &SignalCounts;

/// An exporter whose exports are counted, by signal, in an [`ExportTally`].
#[derive(Debug)]
pub(crate) struct Counted<E> {
    inner: E,
    counts: Arc<ExportTally>,
}

impl<E> Counted<E> {
    pub(crate) fn new(inner: E, counts: Arc<ExportTally>) -> Self {
        Self { inner, counts }
    }
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let items = batch.len();
        let result = self.inner.export(batch).await;
        self.counts.record(|t| &t.spans, "spans", items, &result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: LogExporter> LogExporter for Counted<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let items = batch.iter().count();
        let result = self.inner.export(batch).await;
        self.counts
            .record(|t| &t.logs, "log records", items, &result);
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn event_enabled(
        &self,
        level: opentelemetry::logs::Severity,
        target: &str,
        name: Option<&str>,
    ) -> bool {
        self.inner.event_enabled(level, target, name)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: PushMetricExporter> PushMetricExporter for Counted<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let result = self.inner.export(metrics).await;
        let items = data_points(metrics);
        self.counts
            .record(|t| &t.metric_points, "metric points", items, &result);
        result
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// The data points in an export.
fn data_points(metrics: &ResourceMetrics) -> usize {
    fn count<T>(data: &MetricData<T>) -> usize {
        match data {
            MetricData::Gauge(gauge) => gauge.data_points().count(),
            MetricData::Sum(sum) => sum.data_points().count(),
            MetricData::Histogram(histogram) => histogram.data_points().count(),
            MetricData::ExponentialHistogram(histogram) => histogram.data_points().count(),
        }
    }
    metrics
        .scope_metrics()
        .flat_map(|scope| scope.metrics())
        .map(|metric| match metric.data() {
            AggregatedMetrics::F64(data) => count(data),
            AggregatedMetrics::U64(data) => count(data),
            AggregatedMetrics::I64(data) => count(data),
        })
        .sum()
}
