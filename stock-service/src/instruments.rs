//! stock-service's own measurements, beside the per-span-kind ones the
//! telemetry crate records (`messaging.process.duration`,
//! `db.client.operation.duration`, `http.server.request.duration`):
//!
//! - `checkout.orders` by `checkout.order.outcome` (`applied`, `duplicate`,
//!   `rejected`, `dead_lettered`), counted once the outcome is settled;
//! - `checkout.order.lag`, from the publish (the publisher's
//!   `x-published-at-ms` header) to the commit of the order's outcome;
//! - `checkout.stock.available` per item, an observable gauge;
//! - `checkout.broker.connected`, 1 while the consumer is subscribed.
//!
//! The stock gauge's callback runs on the SDK's reader thread, which must not
//! wait on the database: it reads a cached copy, which [`StockLevels::run`]
//! refreshes from the store when the consumer has changed stock since the
//! last refresh *and* an export has read the copy since then, so it queries
//! at most once per export, and never with metrics off.

use std::{
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use contracts::amqp::PUBLISHED_AT_HEADER;
use lapin::{BasicProperties, types::AMQPValue};
use opentelemetry::{KeyValue, metrics::Histogram};
use service::shutdown::CancellationToken;
use telemetry::{
    metric_names::{ITEM_ID, ORDER_LAG, STOCK_AVAILABLE},
    metrics::{GaugeHandle, OrderOutcomes, broker_connected, duration_histogram, meter},
    spans::messaging::ProcessMetrics,
};

use crate::store::Store;

/// How often [`StockLevels::run`] looks whether a refresh is due. A refresh
/// needs an export in between too, so this only bounds how stale the
/// exported value may be beyond one export interval.
pub const STOCK_REFRESH_PERIOD: Duration = Duration::from_secs(1);

/// The consumer's measurements. Build under the service's dispatcher.
#[derive(Debug)]
pub struct ConsumerMetrics {
    /// The CONSUMER span's duration and message count.
    pub process: ProcessMetrics,
    orders: OrderOutcomes,
    lag: Histogram<f64>,
    /// Told after each commit that stock may have changed.
    pub stock: Arc<StockLevels>,
    _connected: GaugeHandle,
}

impl ConsumerMetrics {
    /// The measurements of a consumer of `queue`, bound to `exchange`;
    /// `consuming` says whether it is subscribed, for the broker gauge.
    pub fn new(
        exchange: &str,
        queue: &str,
        consuming: impl Fn() -> bool + Send + Sync + 'static,
    ) -> Self {
        Self {
            process: ProcessMetrics::new(exchange, queue),
            orders: OrderOutcomes::new(),
            lag: duration_histogram(
                &meter(env!("CARGO_PKG_NAME")),
                ORDER_LAG,
                "Time from an order's publish to the commit of its outcome",
            ),
            stock: StockLevels::new(),
            _connected: broker_connected(consuming),
        }
    }

    /// Counts one order settled with `outcome`.
    pub fn order(&self, outcome: &'static str) {
        self.orders.add(outcome, 1);
    }

    /// Records the lag of an order whose outcome was just committed, from its
    /// publish time ([`published_at_ms`]; nothing without one: a publisher
    /// that does not stamp it).
    pub fn committed(&self, published_ms: Option<i64>) {
        let Some(published_ms) = published_ms else {
            return;
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |now| i64::try_from(now.as_millis()).unwrap_or(i64::MAX));
        // Clocks of two machines: a negative lag is skew, shown as 0.
        let lag_ms = now_ms.saturating_sub(published_ms).max(0);
        self.lag.record(lag_ms as f64 / 1000.0, &[]);
    }
}

/// The publish time the publisher stamped, in ms since the Unix epoch.
pub fn published_at_ms(properties: &BasicProperties) -> Option<i64> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(PUBLISHED_AT_HEADER)? {
        AMQPValue::LongLongInt(ms) => Some(*ms),
        AMQPValue::LongInt(ms) => Some(i64::from(*ms)),
        AMQPValue::Timestamp(ms) => i64::try_from(*ms).ok(),
        _ => None,
    }
}

/// The cached stock levels behind the `checkout.stock.available` gauge.
#[derive(Debug)]
pub struct StockLevels {
    levels: Mutex<Vec<(i64, i64)>>,
    /// Stock changed since the last refresh.
    changed: AtomicBool,
    /// An export read the levels since the last refresh.
    observed: AtomicBool,
    _gauge: GaugeHandle,
}

impl StockLevels {
    fn new() -> Arc<Self> {
        Arc::new_cyclic(|levels: &Weak<Self>| {
            let levels = levels.clone();
            let gauge = meter(env!("CARGO_PKG_NAME"))
                .i64_observable_gauge(STOCK_AVAILABLE)
                .with_unit("{unit}")
                .with_description("Units in stock, per item (refreshed after the consumer commits)")
                .with_callback(move |observer| {
                    let Some(levels) = levels.upgrade() else {
                        return;
                    };
                    levels.observed.store(true, Ordering::Relaxed);
                    let cached = levels
                        .levels
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner());
                    for (item, available) in cached.iter() {
                        observer.observe(*available, &[KeyValue::new(ITEM_ID, *item)]);
                    }
                })
                .build();
            Self {
                levels: Mutex::new(Vec::new()),
                changed: AtomicBool::new(true),
                observed: AtomicBool::new(false),
                _gauge: gauge.into(),
            }
        })
    }

    /// Says that stock may have changed (after a commit).
    pub fn changed(&self) {
        self.changed.store(true, Ordering::Relaxed);
    }

    /// Refreshes the cached levels from `store` when due (see the module
    /// docs), until `shutdown`.
    pub async fn run(self: Arc<Self>, store: Store, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(STOCK_REFRESH_PERIOD);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if !self.observed.load(Ordering::Relaxed)
                || !self.changed.swap(false, Ordering::Relaxed)
            {
                continue;
            }
            self.observed.store(false, Ordering::Relaxed);
            match store.stock_levels().await {
                Ok(levels) => {
                    *self
                        .levels
                        .lock()
                        .unwrap_or_else(|poisoned| poisoned.into_inner()) = levels;
                }
                Err(error) => {
                    // Keep the last levels; try again at the next tick.
                    self.changed();
                    tracing::debug!(%error, "cannot refresh the stock gauge");
                }
            }
        }
    }
}
