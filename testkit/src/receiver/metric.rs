//! The flattened metric model: one [`MetricPoint`] per OTLP data point, with its
//! resource's `service.name`, its metric's name and unit, and plain Rust values.
//!
//! OTLP nests points as `ResourceMetrics → ScopeMetrics → Metric → data points`,
//! with one of several point shapes per metric. Sums and gauges become a number;
//! explicit-bucket histograms keep their count, sum, bounds and bucket counts (so
//! percentiles can be estimated, see [`HistogramPoint::quantile`]). Exponential
//! histograms and summaries, which these services do not emit, are skipped.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, HistogramDataPoint, NumberDataPoint, metric, number_data_point,
};
use serde::Serialize;

use super::span::{AttributeValue, attributes, service_name};

/// One data point of one metric, as received.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricPoint {
    /// The resource attribute `service.name` (`""` if absent).
    pub service_name: String,
    /// The metric's name, e.g. `http.server.request.duration`.
    pub name: String,
    /// The metric's unit, e.g. `s` (may be empty).
    pub unit: String,
    /// The point's attributes by key: what tells this series from the metric's others.
    pub attributes: BTreeMap<String, AttributeValue>,
    /// Start of the point's aggregation window, nanoseconds since the Unix epoch.
    pub start_unix_nanos: u64,
    /// When the point was taken, nanoseconds since the Unix epoch.
    pub time_unix_nanos: u64,
    /// The value.
    pub value: PointValue,
}

impl MetricPoint {
    /// The attribute under `key` if it is a string.
    pub fn attr_str(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(AttributeValue::as_str)
    }

    /// The number of a sum or gauge point.
    pub fn number(&self) -> Option<f64> {
        match &self.value {
            PointValue::Sum { value, .. } | PointValue::Gauge { value } => Some(*value),
            PointValue::Histogram(_) => None,
        }
    }

    /// The histogram of a histogram point.
    pub fn histogram(&self) -> Option<&HistogramPoint> {
        match &self.value {
            PointValue::Histogram(histogram) => Some(histogram),
            _ => None,
        }
    }

    /// Whether the point counts from its series' start (OTLP cumulative
    /// temporality: the SDK's default) rather than from the previous point.
    pub fn is_cumulative(&self) -> bool {
        match &self.value {
            PointValue::Sum { cumulative, .. } => *cumulative,
            PointValue::Histogram(histogram) => histogram.cumulative,
            PointValue::Gauge { .. } => false,
        }
    }
}

/// The value of a [`MetricPoint`]. Serializes tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum PointValue {
    /// A sum (a counter when monotonic), integers as `f64`.
    Sum {
        /// The sum.
        value: f64,
        /// Whether it only ever grows.
        monotonic: bool,
        /// Cumulative (since the series started) rather than delta.
        cumulative: bool,
    },
    /// A gauge: the last value recorded.
    Gauge {
        /// The value.
        value: f64,
    },
    /// An explicit-bucket histogram.
    Histogram(HistogramPoint),
}

/// An explicit-bucket histogram point.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistogramPoint {
    /// Values recorded.
    pub count: u64,
    /// Their sum, if recorded.
    pub sum: Option<f64>,
    /// Upper bounds of the buckets, ascending; one fewer than `bucket_counts`
    /// (the last bucket has no upper bound).
    pub explicit_bounds: Vec<f64>,
    /// Values per bucket: bucket `i` holds values in `(bounds[i-1], bounds[i]]`.
    pub bucket_counts: Vec<u64>,
    /// Smallest value recorded, if known.
    pub min: Option<f64>,
    /// Largest value recorded, if known.
    pub max: Option<f64>,
    /// Cumulative (since the series started) rather than delta.
    pub cumulative: bool,
}

impl HistogramPoint {
    /// The `q` quantile (0 to 1), estimated by linear interpolation inside the
    /// bucket holding it; `None` without values. The first bucket starts at
    /// `min` if known (else at 0, or below its bound for negative values) and
    /// the last, unbounded one ends at `max` if known (else at its lower
    /// bound): an estimate is only as fine as the buckets.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.bucket_counts.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (index, &count) in self.bucket_counts.iter().enumerate() {
            if count == 0 || ((below + count) as f64) < rank {
                below += count;
                continue;
            }
            let upper = self
                .explicit_bounds
                .get(index)
                .copied()
                .or(self.max)
                .or_else(|| self.explicit_bounds.last().copied())
                .unwrap_or(0.0);
            let lower = match index.checked_sub(1) {
                Some(previous) => self.explicit_bounds.get(previous).copied().unwrap_or(upper),
                None => self.min.unwrap_or(upper.min(0.0)),
            };
            let within = ((rank - below as f64) / count as f64).clamp(0.0, 1.0);
            let estimate = lower + (upper - lower) * within;
            return Some(match (self.min, self.max) {
                (Some(min), Some(max)) if min <= max => estimate.clamp(min, max),
                _ => estimate,
            });
        }
        None
    }
}

/// Flattens an export request into one [`MetricPoint`] per data point.
pub(crate) fn flatten(request: ExportMetricsServiceRequest) -> Vec<MetricPoint> {
    let mut out = Vec::new();
    for resource_metrics in request.resource_metrics {
        let service = service_name(resource_metrics.resource.as_ref()).to_owned();
        for metric in resource_metrics
            .scope_metrics
            .into_iter()
            .flat_map(|scope| scope.metrics)
        {
            let point = |attributes_of, start, time, value| MetricPoint {
                service_name: service.clone(),
                name: metric.name.clone(),
                unit: metric.unit.clone(),
                attributes: attributes(attributes_of),
                start_unix_nanos: start,
                time_unix_nanos: time,
                value,
            };
            match &metric.data {
                Some(metric::Data::Sum(sum)) => {
                    let cumulative = is_cumulative(sum.aggregation_temporality);
                    out.extend(sum.data_points.iter().map(|p| {
                        let value = PointValue::Sum {
                            value: number(p),
                            monotonic: sum.is_monotonic,
                            cumulative,
                        };
                        point(
                            &p.attributes,
                            p.start_time_unix_nano,
                            p.time_unix_nano,
                            value,
                        )
                    }));
                }
                Some(metric::Data::Gauge(gauge)) => {
                    out.extend(gauge.data_points.iter().map(|p| {
                        let value = PointValue::Gauge { value: number(p) };
                        point(
                            &p.attributes,
                            p.start_time_unix_nano,
                            p.time_unix_nano,
                            value,
                        )
                    }));
                }
                Some(metric::Data::Histogram(histogram)) => {
                    let cumulative = is_cumulative(histogram.aggregation_temporality);
                    out.extend(histogram.data_points.iter().map(|p| {
                        let value = PointValue::Histogram(histogram_point(p, cumulative));
                        point(
                            &p.attributes,
                            p.start_time_unix_nano,
                            p.time_unix_nano,
                            value,
                        )
                    }));
                }
                Some(metric::Data::ExponentialHistogram(_) | metric::Data::Summary(_)) | None => {}
            }
        }
    }
    out
}

fn is_cumulative(temporality: i32) -> bool {
    temporality == AggregationTemporality::Cumulative as i32
}

fn number(point: &NumberDataPoint) -> f64 {
    match point.value {
        Some(number_data_point::Value::AsDouble(value)) => value,
        Some(number_data_point::Value::AsInt(value)) => value as f64,
        None => 0.0,
    }
}

fn histogram_point(point: &HistogramDataPoint, cumulative: bool) -> HistogramPoint {
    HistogramPoint {
        count: point.count,
        sum: point.sum,
        explicit_bounds: point.explicit_bounds.clone(),
        bucket_counts: point.bucket_counts.clone(),
        min: point.min,
        max: point.max,
        cumulative,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(bounds: &[f64], counts: &[u64]) -> HistogramPoint {
        HistogramPoint {
            count: counts.iter().sum(),
            sum: None,
            explicit_bounds: bounds.to_vec(),
            bucket_counts: counts.to_vec(),
            min: None,
            max: None,
            cumulative: true,
        }
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket() {
        // 100 values: 50 in (0, 10], 40 in (10, 20], 10 in (20, 40].
        let h = histogram(&[10.0, 20.0, 40.0], &[50, 40, 10, 0]);
        assert_eq!(h.quantile(0.5), Some(10.0));
        assert_eq!(h.quantile(0.25), Some(5.0));
        assert_eq!(h.quantile(0.7), Some(15.0));
        assert_eq!(h.quantile(0.95), Some(30.0));
        assert_eq!(h.quantile(1.0), Some(40.0));
        assert_eq!(histogram(&[1.0], &[0, 0]).quantile(0.5), None);
    }

    #[test]
    fn min_and_max_close_the_open_buckets() {
        let mut h = histogram(&[10.0], &[0, 10]);
        assert_eq!(h.quantile(0.5), Some(10.0), "no max: the lower bound");
        h.max = Some(30.0);
        h.min = Some(12.0);
        assert_eq!(h.quantile(0.5), Some(20.0));
        let mut first = histogram(&[10.0], &[4, 0]);
        first.min = Some(2.0);
        assert_eq!(first.quantile(0.5), Some(6.0));
    }
}
