//! The metric store: the latest point of every series received, and the one
//! before it, so rates and recent percentiles can be computed from cumulative
//! values (see `checkout top`).
//!
//! A series is one (service, metric name, attributes). Exporters resend every
//! series' cumulative value on each export, so keeping all points would grow
//! without end while adding nothing; the latest two say everything a rate or
//! a recent-window histogram needs. The number of series is bounded
//! ([`MetricStore::with_limit`]): points of series past the bound are dropped
//! and counted ([`MetricStore::dropped_points`]), so a misbehaving exporter
//! with unbounded attribute values cannot exhaust memory.
//!
//! Waiting is condition-based, like the span store: every insert wakes the
//! waiters, which re-check their condition.

use std::collections::HashMap;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use tokio::sync::watch;

use super::metric::{MetricPoint, flatten};

/// Series kept by default.
pub const DEFAULT_SERIES_LIMIT: usize = 10_000;

/// One series: its latest point and, if any, the one before it of the same run.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSeries {
    /// The newest point.
    pub latest: MetricPoint,
    /// The point before it, unless the series (re)started since: a cumulative
    /// point with another start time begins a new run (a restarted service).
    pub previous: Option<MetricPoint>,
}

#[derive(Debug, Default)]
struct Series {
    by_key: HashMap<SeriesKey, MetricSeries>,
    dropped_points: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    service: String,
    name: String,
    /// The attributes, canonically encoded (sorted keys).
    attributes: String,
}

impl SeriesKey {
    fn of(point: &MetricPoint) -> Self {
        Self {
            service: point.service_name.clone(),
            name: point.name.clone(),
            // A `BTreeMap` serializes in key order; it cannot fail.
            attributes: serde_json::to_string(&point.attributes).unwrap_or_default(),
        }
    }
}

/// Shared, cloneable store of the metric series received. Clones share it.
#[derive(Debug, Clone)]
pub struct MetricStore {
    series: watch::Sender<Series>,
    limit: usize,
}

impl Default for MetricStore {
    fn default() -> Self {
        Self::with_limit(DEFAULT_SERIES_LIMIT)
    }
}

impl MetricStore {
    /// An empty store keeping up to [`DEFAULT_SERIES_LIMIT`] series.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store keeping up to `limit` series.
    pub fn with_limit(limit: usize) -> Self {
        Self {
            series: watch::Sender::new(Series::default()),
            limit,
        }
    }

    /// Stores the points of an export request, waking all waiters.
    pub fn insert(&self, request: ExportMetricsServiceRequest) {
        let points = flatten(request);
        let limit = self.limit;
        self.series.send_modify(|series| {
            for point in points {
                let key = SeriesKey::of(&point);
                let full = series.by_key.len() >= limit;
                match series.by_key.get_mut(&key) {
                    Some(existing) => advance(existing, point),
                    None if !full => {
                        series.by_key.insert(
                            key,
                            MetricSeries {
                                latest: point,
                                previous: None,
                            },
                        );
                    }
                    None => series.dropped_points += 1,
                }
            }
        });
    }

    /// Every series, in no particular order.
    pub fn series(&self) -> Vec<MetricSeries> {
        self.series.borrow().by_key.values().cloned().collect()
    }

    /// The latest point of every series of metric `name` from `service`,
    /// ordered by attributes.
    pub fn metric(&self, service: &str, name: &str) -> Vec<MetricPoint> {
        latest_of(&self.series.borrow(), service, name)
    }

    /// Points dropped because the store already held its limit of series.
    pub fn dropped_points(&self) -> u64 {
        self.series.borrow().dropped_points
    }

    /// Waits until `done` holds for the latest points of metric `name` from
    /// `service` (see [`metric`](Self::metric)) or `timeout` elapses.
    ///
    /// Returns `Ok(points)` once satisfied, or `Err(points seen so far)` on timeout.
    pub async fn wait_for_metric(
        &self,
        service: &str,
        name: &str,
        timeout: Duration,
        done: impl Fn(&[MetricPoint]) -> bool,
    ) -> Result<Vec<MetricPoint>, Vec<MetricPoint>> {
        let mut rx = self.series.subscribe();
        let mut selected = Vec::new();
        let satisfied = rx.wait_for(|series| {
            selected = latest_of(series, service, name);
            done(&selected)
        });
        match tokio::time::timeout(timeout, satisfied).await {
            Ok(Ok(_)) => Ok(selected),
            Ok(Err(_)) | Err(_) => Err(self.metric(service, name)),
        }
    }
}

/// Makes `point` the series' latest, unless it is older than what is there.
fn advance(series: &mut MetricSeries, point: MetricPoint) {
    let latest = &series.latest;
    if point.time_unix_nanos < latest.time_unix_nanos {
        return; // out of order: the newer value is already here
    }
    let same_run = !point.is_cumulative() || point.start_unix_nanos == latest.start_unix_nanos;
    if point.time_unix_nanos == latest.time_unix_nanos {
        series.latest = point; // the same point again (a retried export)
    } else if same_run {
        series.previous = Some(std::mem::replace(&mut series.latest, point));
    } else {
        *series = MetricSeries {
            latest: point,
            previous: None,
        };
    }
}

fn latest_of(series: &Series, service: &str, name: &str) -> Vec<MetricPoint> {
    let mut points: Vec<(String, MetricPoint)> = series
        .by_key
        .iter()
        .filter(|(key, _)| key.service == service && key.name == name)
        .map(|(key, series)| (key.attributes.clone(), series.latest.clone()))
        .collect();
    points.sort_by(|a, b| a.0.cmp(&b.0));
    points.into_iter().map(|(_, point)| point).collect()
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::metrics::v1::{
        AggregationTemporality, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
        metric, number_data_point,
    };

    use super::*;

    /// A cumulative counter point of series `label`.
    fn export(label: &str, start: u64, time: u64, value: i64) -> ExportMetricsServiceRequest {
        let point = NumberDataPoint {
            attributes: vec![KeyValue {
                key: "label".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(label.into())),
                }),
                ..Default::default()
            }],
            start_time_unix_nano: start,
            time_unix_nano: time,
            value: Some(number_data_point::Value::AsInt(value)),
            ..Default::default()
        };
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "orders".into(),
                        data: Some(metric::Data::Sum(Sum {
                            data_points: vec![point],
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                            is_monotonic: true,
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn values(store: &MetricStore) -> Vec<(Option<f64>, Option<f64>)> {
        let mut values: Vec<_> = store
            .series()
            .iter()
            .map(|s| {
                (
                    s.previous.as_ref().and_then(MetricPoint::number),
                    s.latest.number(),
                )
            })
            .collect();
        values.sort_by(|a, b| a.partial_cmp(b).unwrap());
        values
    }

    #[test]
    fn the_latest_two_points_of_a_run_are_kept() {
        let store = MetricStore::with_limit(1);
        store.insert(export("a", 1, 10, 5));
        store.insert(export("a", 1, 20, 8));
        store.insert(export("a", 1, 15, 7)); // late: ignored
        assert_eq!(values(&store), [(Some(5.0), Some(8.0))]);
        store.insert(export("a", 1, 30, 9));
        assert_eq!(values(&store), [(Some(8.0), Some(9.0))]);
        // Another start time: the service restarted, the previous run is gone.
        store.insert(export("a", 40, 50, 1));
        assert_eq!(values(&store), [(None, Some(1.0))]);
        // Past the limit of one series, another series' points are dropped.
        store.insert(export("b", 1, 10, 1));
        assert_eq!(store.series().len(), 1);
        assert_eq!(store.dropped_points(), 1);
        assert_eq!(store.metric("", "orders").len(), 1);
    }
}
