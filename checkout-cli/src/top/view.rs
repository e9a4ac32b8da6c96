//! What `checkout top` shows, computed from the metric series received: a pure
//! function of the store's contents, so it is tested with known points.
//!
//! Services export cumulative values (the SDK's default temporality): each point
//! holds everything since the series started. A rate or a recent percentile comes
//! from the difference between a series' two latest points, over the time between
//! them (one export interval): counts subtract, histogram buckets subtract bucket by
//! bucket. A series with one point so far (or a delta point) counts over its own
//! window, from its start time. So every figure covers the last interval the
//! services exported, whenever the view is refreshed; between two exports it stays.
//!
//! Rows group the series of one service, metric and operation (the attributes that
//! name the operation: method and route, RPC method, messaging operation and
//! destination, database operation and table); the series of one operation differ by
//! outcome, and those with `error.type` are its errors.

use std::collections::BTreeMap;

use contracts::metrics::{
    ERROR_TYPE, ITEM_ID, OPERATION_DURATIONS, ORDER_LAG, ORDER_OUTCOME, ORDERS_PROCESSED,
    STOCK_AVAILABLE,
};
use serde::Serialize;
use testkit::receiver::{HistogramPoint, MetricPoint, MetricSeries, PointValue};

/// One refresh of `checkout top`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopView {
    /// The newest point's time, nanoseconds since the Unix epoch (0 without points).
    pub time_unix_nanos: u64,
    /// Per service, metric and operation: the operation-duration histograms.
    pub operations: Vec<OperationRow>,
    /// The order lag histogram, per service and operation.
    pub queue_lag: Vec<OperationRow>,
    /// Orders decided, per service and outcome.
    pub orders: Vec<OutcomeRow>,
    /// Units in stock, per service and item.
    pub stock: Vec<StockRow>,
    /// Series received in all, those shown and those of other metrics.
    pub series_received: usize,
}

/// One operation's figures over the last interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationRow {
    /// The service (`service.name`).
    pub service: String,
    /// The metric, e.g. `http.server.request.duration`.
    pub metric: String,
    /// The operation, e.g. `POST /api/checkout` (`-` when the points name none).
    pub operation: String,
    /// Operations in the interval.
    pub count: u64,
    /// Operations per second over the interval.
    pub rate_per_s: f64,
    /// Share of them that failed (0 to 1); `None` without operations.
    pub error_share: Option<f64>,
    /// Median duration in milliseconds, estimated from the buckets.
    pub p50_ms: Option<f64>,
    /// 99th percentile in milliseconds, estimated from the buckets.
    pub p99_ms: Option<f64>,
}

/// One outcome's count and rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutcomeRow {
    /// The service.
    pub service: String,
    /// The outcome (`applied`, `rejected`, …).
    pub outcome: String,
    /// Orders with this outcome since the service started.
    pub total: f64,
    /// Per second over the last interval.
    pub rate_per_s: f64,
}

/// One item's stock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StockRow {
    /// The service.
    pub service: String,
    /// The item id.
    pub item: String,
    /// Units available.
    pub available: f64,
}

/// The view of `series`.
pub fn view(series: &[MetricSeries]) -> TopView {
    let mut operations: BTreeMap<(usize, String, String), Group> = BTreeMap::new();
    let mut lag: BTreeMap<(usize, String, String), Group> = BTreeMap::new();
    let mut orders = Vec::new();
    let mut stock = Vec::new();
    for one in series {
        let point = &one.latest;
        if let Some(rank) = OPERATION_DURATIONS
            .iter()
            .position(|name| *name == point.name)
        {
            let key = (rank, point.service_name.clone(), operation(point));
            add(&mut operations, key, one);
        } else if point.name == ORDER_LAG {
            add(
                &mut lag,
                (0, point.service_name.clone(), operation(point)),
                one,
            );
        } else if point.name == ORDERS_PROCESSED
            && let Some(total) = point.number()
        {
            orders.push(OutcomeRow {
                service: point.service_name.clone(),
                outcome: attr_text(point, ORDER_OUTCOME).unwrap_or_else(|| "-".to_owned()),
                total,
                rate_per_s: counter_rate(one).unwrap_or(0.0),
            });
        } else if point.name == STOCK_AVAILABLE
            && let Some(available) = point.number()
        {
            stock.push(StockRow {
                service: point.service_name.clone(),
                item: attr_text(point, ITEM_ID).unwrap_or_else(|| "-".to_owned()),
                available,
            });
        }
    }
    orders.sort_by(|a, b| (&a.service, &a.outcome).cmp(&(&b.service, &b.outcome)));
    stock.sort_by(|a, b| {
        let numeric = |item: &str| item.parse::<i64>().ok();
        (&a.service, numeric(&a.item), &a.item).cmp(&(&b.service, numeric(&b.item), &b.item))
    });
    TopView {
        time_unix_nanos: series
            .iter()
            .map(|one| one.latest.time_unix_nanos)
            .max()
            .unwrap_or(0),
        operations: operations.into_values().map(Group::row).collect(),
        queue_lag: lag.into_values().map(Group::row).collect(),
        orders,
        stock,
        series_received: series.len(),
    }
}

/// The series of one row, merged.
struct Group {
    service: String,
    metric: String,
    operation: String,
    unit_to_ms: f64,
    count: u64,
    errors: u64,
    rate_per_s: f64,
    /// The merged window histogram (the buckets of series with the first one's bounds).
    merged: Option<HistogramPoint>,
}

fn add(
    groups: &mut BTreeMap<(usize, String, String), Group>,
    key: (usize, String, String),
    one: &MetricSeries,
) {
    let Some(window) = histogram_window(one) else {
        return;
    };
    let point = &one.latest;
    let group = groups.entry(key).or_insert_with(|| Group {
        service: point.service_name.clone(),
        metric: point.name.clone(),
        operation: operation(point),
        unit_to_ms: unit_to_ms(&point.unit),
        count: 0,
        errors: 0,
        rate_per_s: 0.0,
        merged: None,
    });
    group.count += window.histogram.count;
    if point.attributes.contains_key(ERROR_TYPE) {
        group.errors += window.histogram.count;
    }
    if window.seconds > 0.0 {
        group.rate_per_s += window.histogram.count as f64 / window.seconds;
    }
    match &mut group.merged {
        None => group.merged = Some(window.histogram),
        Some(merged) if merged.explicit_bounds == window.histogram.explicit_bounds => {
            merged.count += window.histogram.count;
            for (sum, add) in merged
                .bucket_counts
                .iter_mut()
                .zip(&window.histogram.bucket_counts)
            {
                *sum += add;
            }
            merged.min = min_of(merged.min, window.histogram.min, f64::min);
            merged.max = min_of(merged.max, window.histogram.max, f64::max);
        }
        Some(_) => {} // other buckets: counted, not in the percentiles
    }
}

/// `pick` of two optional values (`None` if either is unknown: a bound must hold
/// for the whole merged window).
fn min_of(a: Option<f64>, b: Option<f64>, pick: fn(f64, f64) -> f64) -> Option<f64> {
    Some(pick(a?, b?))
}

impl Group {
    fn row(self) -> OperationRow {
        let quantile = |q| {
            self.merged
                .as_ref()
                .and_then(|histogram| histogram.quantile(q))
                .map(|value| value * self.unit_to_ms)
        };
        OperationRow {
            p50_ms: quantile(0.5),
            p99_ms: quantile(0.99),
            error_share: (self.count > 0).then(|| self.errors as f64 / self.count as f64),
            service: self.service,
            metric: self.metric,
            operation: self.operation,
            count: self.count,
            rate_per_s: self.rate_per_s,
        }
    }
}

/// A series' histogram over its last interval, and the interval's length.
struct Window {
    histogram: HistogramPoint,
    seconds: f64,
}

fn histogram_window(one: &MetricSeries) -> Option<Window> {
    let latest = one.latest.histogram()?;
    let previous = one
        .previous
        .as_ref()
        .filter(|_| latest.cumulative)
        .and_then(|previous| Some((previous, previous.histogram()?)))
        .filter(|(_, earlier)| {
            earlier.explicit_bounds == latest.explicit_bounds && earlier.count <= latest.count
        });
    Some(match previous {
        Some((previous, earlier)) => Window {
            histogram: HistogramPoint {
                count: latest.count - earlier.count,
                sum: latest.sum.zip(earlier.sum).map(|(now, then)| now - then),
                explicit_bounds: latest.explicit_bounds.clone(),
                bucket_counts: latest
                    .bucket_counts
                    .iter()
                    .zip(earlier.bucket_counts.iter().chain(std::iter::repeat(&0)))
                    .map(|(now, then)| now.saturating_sub(*then))
                    .collect(),
                // Minimum and maximum are since the start, not of this window.
                min: None,
                max: None,
                cumulative: false,
            },
            seconds: seconds_between(previous.time_unix_nanos, one.latest.time_unix_nanos),
        },
        None => Window {
            histogram: latest.clone(),
            seconds: seconds_between(one.latest.start_unix_nanos, one.latest.time_unix_nanos),
        },
    })
}

/// A monotonic sum's rate over its last interval.
fn counter_rate(one: &MetricSeries) -> Option<f64> {
    let latest = &one.latest;
    let PointValue::Sum {
        value, cumulative, ..
    } = latest.value
    else {
        return None;
    };
    let (delta, from) = match (&one.previous, cumulative) {
        (Some(previous), true) => (value - previous.number()?, previous.time_unix_nanos),
        _ => (value, latest.start_unix_nanos),
    };
    let seconds = seconds_between(from, latest.time_unix_nanos);
    (seconds > 0.0).then(|| delta.max(0.0) / seconds)
}

fn seconds_between(from: u64, to: u64) -> f64 {
    to.saturating_sub(from) as f64 / 1e9
}

/// The attributes naming an operation, in the order they are shown.
const OPERATION_KEYS: [&str; 8] = [
    "http.request.method",
    "http.route",
    "rpc.method",
    "messaging.operation.name",
    "messaging.destination.name",
    "db.operation.name",
    "db.collection.name",
    "db.query.summary",
];

/// Attributes that tell an operation's outcomes apart, never part of its name.
const OUTCOME_KEYS: [&str; 5] = [
    ERROR_TYPE,
    "http.response.status_code",
    "rpc.response.status_code",
    "rpc.grpc.status_code",
    "db.response.status_code",
];

/// The operation a point belongs to: the values of its operation attributes, or,
/// when it has none of them, all its attributes but the outcome ones.
fn operation(point: &MetricPoint) -> String {
    let named: Vec<String> = OPERATION_KEYS
        .iter()
        .filter_map(|key| attr_text(point, key))
        .collect();
    if !named.is_empty() {
        return named.join(" ");
    }
    let rest: Vec<String> = point
        .attributes
        .iter()
        .filter(|(key, _)| !OUTCOME_KEYS.contains(&key.as_str()))
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    if rest.is_empty() {
        "-".to_owned()
    } else {
        rest.join(",")
    }
}

fn attr_text(point: &MetricPoint, key: &str) -> Option<String> {
    point.attributes.get(key).map(ToString::to_string)
}

/// What one unit of `unit` is in milliseconds (1 for an unknown unit: shown as is).
fn unit_to_ms(unit: &str) -> f64 {
    match unit {
        "s" => 1e3,
        "ms" => 1.0,
        "us" | "µs" => 1e-3,
        "ns" => 1e-6,
        "min" => 60e3,
        _ => 1.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::receiver::AttributeValue;

    const S: u64 = 1_000_000_000;
    const T0: u64 = 1_700_000_000 * S;
    const BOUNDS: [f64; 4] = [0.001, 0.002, 0.005, 0.01];

    fn point(
        service: &str,
        name: &str,
        attributes: &[(&str, &str)],
        (start, time): (u64, u64),
        value: PointValue,
    ) -> MetricPoint {
        MetricPoint {
            service_name: service.into(),
            name: name.into(),
            unit: "s".into(),
            attributes: attributes
                .iter()
                .map(|(key, value)| ((*key).to_owned(), AttributeValue::from(*value)))
                .collect(),
            start_unix_nanos: T0 + start * S,
            time_unix_nanos: T0 + time * S,
            value,
        }
    }

    fn histogram(counts: [u64; 5]) -> PointValue {
        PointValue::Histogram(HistogramPoint {
            count: counts.iter().sum(),
            sum: None,
            explicit_bounds: BOUNDS.to_vec(),
            bucket_counts: counts.to_vec(),
            min: None,
            max: None,
            cumulative: true,
        })
    }

    fn series(previous: Option<MetricPoint>, latest: MetricPoint) -> MetricSeries {
        MetricSeries { latest, previous }
    }

    fn close(actual: Option<f64>, expected: f64) -> bool {
        actual.is_some_and(|actual| (actual - expected).abs() < 1e-9)
    }

    /// The known points behind both this test and the command's: one HTTP operation
    /// exported twice, 10 s apart, with 75 successes and 25 errors in between.
    #[test]
    fn rates_errors_and_percentiles_come_from_the_last_interval() {
        let route = [
            ("http.request.method", "POST"),
            ("http.route", "/api/checkout"),
        ];
        let ok: Vec<_> = route
            .iter()
            .copied()
            .chain([("http.response.status_code", "202")])
            .collect();
        let failed: Vec<_> = route
            .iter()
            .copied()
            .chain([("http.response.status_code", "503"), (ERROR_TYPE, "503")])
            .collect();
        let http = contracts::metrics::HTTP_SERVER_REQUEST_DURATION;
        let db = contracts::metrics::DB_CLIENT_OPERATION_DURATION;
        let all = [
            series(
                Some(point(
                    "gateway",
                    http,
                    &ok,
                    (0, 10),
                    histogram([100, 0, 0, 0, 0]),
                )),
                point(
                    "gateway",
                    http,
                    &ok,
                    (0, 20),
                    histogram([100, 45, 30, 0, 0]),
                ),
            ),
            series(
                Some(point(
                    "gateway",
                    http,
                    &failed,
                    (0, 10),
                    histogram([0, 0, 0, 5, 0]),
                )),
                point(
                    "gateway",
                    http,
                    &failed,
                    (0, 20),
                    histogram([0, 0, 0, 30, 0]),
                ),
            ),
            // One point so far: counted from its start.
            series(
                None,
                point(
                    "stock-service",
                    db,
                    &[
                        ("db.operation.name", "UPDATE"),
                        ("db.collection.name", "stock"),
                    ],
                    (0, 10),
                    histogram([20, 0, 0, 0, 0]),
                ),
            ),
            series(
                Some(point(
                    "stock-service",
                    ORDERS_PROCESSED,
                    &[(ORDER_OUTCOME, "applied")],
                    (0, 10),
                    PointValue::Sum {
                        value: 100.0,
                        monotonic: true,
                        cumulative: true,
                    },
                )),
                point(
                    "stock-service",
                    ORDERS_PROCESSED,
                    &[(ORDER_OUTCOME, "applied")],
                    (0, 20),
                    PointValue::Sum {
                        value: 150.0,
                        monotonic: true,
                        cumulative: true,
                    },
                ),
            ),
            series(
                None,
                point(
                    "stock-service",
                    STOCK_AVAILABLE,
                    &[(ITEM_ID, "10")],
                    (0, 20),
                    PointValue::Gauge { value: 7.0 },
                ),
            ),
            series(
                None,
                point(
                    "stock-service",
                    STOCK_AVAILABLE,
                    &[(ITEM_ID, "2")],
                    (0, 20),
                    PointValue::Gauge { value: 5.0 },
                ),
            ),
            series(
                None,
                point(
                    "stock-service",
                    "something.else",
                    &[],
                    (0, 20),
                    PointValue::Gauge { value: 1.0 },
                ),
            ),
        ];

        let view = view(&all);
        assert_eq!(view.time_unix_nanos, T0 + 20 * S);
        assert_eq!(view.operations.len(), 2, "{:#?}", view.operations);
        let gateway = &view.operations[0];
        assert_eq!(
            (gateway.service.as_str(), gateway.operation.as_str()),
            ("gateway", "POST /api/checkout")
        );
        assert_eq!(gateway.count, 100);
        assert!(close(Some(gateway.rate_per_s), 10.0), "{gateway:?}");
        assert!(close(gateway.error_share, 0.25), "{gateway:?}");
        // Merged window buckets [0, 45, 30, 25, 0]: the median is 5/30 into
        // (2 ms, 5 ms], the 99th percentile 24/25 into (5 ms, 10 ms].
        assert!(close(gateway.p50_ms, 2.5), "{gateway:?}");
        assert!(close(gateway.p99_ms, 9.8), "{gateway:?}");

        let database = &view.operations[1];
        assert_eq!(database.operation, "UPDATE stock");
        assert!(close(Some(database.rate_per_s), 2.0), "{database:?}");
        assert_eq!(database.error_share, Some(0.0));

        assert_eq!(view.orders.len(), 1);
        assert!(close(Some(view.orders[0].rate_per_s), 5.0));
        assert_eq!(view.orders[0].total, 150.0);
        let items: Vec<&str> = view.stock.iter().map(|row| row.item.as_str()).collect();
        assert_eq!(items, ["2", "10"], "items in numeric order");

        let table = crate::top::render(&view, 0);
        assert!(table.contains("POST /api/checkout"), "{table}");
        assert!(table.contains("25.0%"), "{table}");
    }

    #[test]
    fn operations_without_known_attributes_are_named_by_the_rest() {
        let p = point(
            "s",
            ORDER_LAG,
            &[("queue", "q1"), (ERROR_TYPE, "x")],
            (0, 1),
            histogram([1, 0, 0, 0, 0]),
        );
        assert_eq!(operation(&p), "queue=q1");
        let none = point("s", ORDER_LAG, &[], (0, 1), histogram([1, 0, 0, 0, 0]));
        assert_eq!(operation(&none), "-");
        assert_eq!(unit_to_ms("ms"), 1.0);
        assert_eq!(unit_to_ms("s"), 1000.0);
    }
}
