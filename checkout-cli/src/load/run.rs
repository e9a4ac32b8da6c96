//! The load itself: the open and closed loops, the schedule that decides which
//! requests are sent and measured, and the counters they are recorded in.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use contracts::http::CheckoutAccepted;
use hdrhistogram::Histogram;
use testkit::verify;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::{
    AcceptedOrder, CheckOrders, LatencySummary, LoadConfig, LoadError, LoadMode, LoadReport,
    TransportError,
};
use crate::checkout::{self, TraceContext};
use crate::order_status::{self, OrderOutcomes, StockUnreachable};

/// Longest wait for one answer of stock-service's order API: it answers from one
/// indexed row, so anything slower means it is not answering at all.
const ORDER_QUESTION_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the load described by `config` and reports on it; with `config.verify`, also
/// waits for and checks the traces of the accepted requests, and with
/// `config.check_orders` asks stock-service what it decided for each accepted order.
pub async fn run_load(config: LoadConfig) -> Result<LoadReport, LoadError> {
    if config.duration.is_none() && config.requests.is_none() {
        return Err(LoadError::Unbounded);
    }
    let valid = match config.mode {
        LoadMode::Open {
            rate,
            max_in_flight,
        } => rate.is_finite() && rate > 0.0 && max_in_flight > 0,
        LoadMode::Closed { concurrency } => concurrency > 0,
    };
    if !valid {
        return Err(LoadError::InvalidMode);
    }

    let start = Instant::now();
    let measure_from = start + config.warmup;
    let run = Arc::new(Run {
        client: reqwest::Client::builder().timeout(config.timeout).build()?,
        urls: checkout_urls(&config),
        turns: AtomicUsize::new(0),
        body: serde_json::to_string(&checkout::body(&config.items)).unwrap_or_default(),
        schedule: Schedule {
            measure_from,
            end: config.duration.map(|duration| measure_from + duration),
            limit: config.requests,
            claimed: AtomicU64::new(0),
        },
        stats: Mutex::new(Stats::default()),
    });
    let progress = config
        .progress
        .then(|| tokio::spawn(show_progress(run.clone(), config.duration, config.requests)));

    match config.mode {
        LoadMode::Open {
            rate,
            max_in_flight,
        } => open_loop(&run, start, rate, max_in_flight).await,
        LoadMode::Closed { concurrency } => closed_loop(&run, concurrency).await,
    }
    let elapsed = measure_from.elapsed();
    if let Some(progress) = progress {
        progress.abort();
        let _ = progress.await; // so it cannot redraw after the line is cleared
        eprint!("\r\x1b[2K");
    }

    let stats = std::mem::take(&mut *run.stats());
    let traces = match &config.verify {
        Some(verify) => Some(
            verify::check_traces(&verify.store, &stats.accepted_trace_ids, verify.timeout).await,
        ),
        None => None,
    };
    let orders = match &config.check_orders {
        Some(check) => Some(check_orders(check, &stats.accepted_orders, config.progress).await?),
        None => None,
    };
    Ok(LoadReport {
        mode: config.mode,
        elapsed,
        sent: stats.sent,
        not_sent: stats.not_sent,
        latency: LatencySummary::of(&stats.latency),
        statuses: stats.statuses,
        transport_errors: stats.transport_errors,
        accepted_trace_ids: stats.accepted_trace_ids,
        accepted_orders: stats.accepted_orders,
        traces,
        orders,
    })
}

/// Asks stock-service about every accepted order that has an id.
async fn check_orders(
    check: &CheckOrders,
    accepted: &[AcceptedOrder],
    progress: bool,
) -> Result<Result<OrderOutcomes, StockUnreachable>, LoadError> {
    let client = reqwest::Client::builder()
        .timeout(ORDER_QUESTION_TIMEOUT)
        .build()?;
    let order_ids: Vec<String> = accepted
        .iter()
        .filter_map(|order| order.order_id.clone())
        .collect();
    if progress {
        eprint!(
            "asking stock-service what it decided for {} orders…",
            order_ids.len()
        );
    }
    let outcomes =
        order_status::check_orders(&client, &check.stock_url, &order_ids, check.timeout).await;
    if progress {
        eprint!("\r\x1b[2K");
    }
    Ok(outcomes)
}

/// Requests arrive every `1/rate` seconds from `start`, sent or counted as not sent.
async fn open_loop(run: &Arc<Run>, start: Instant, rate: f64, max_in_flight: usize) {
    let slots = Arc::new(Semaphore::new(max_in_flight));
    let mut requests = JoinSet::new();
    for n in 0u64.. {
        let intended = start + Duration::from_secs_f64(n as f64 / rate);
        let Some(measured) = run.schedule.claim(intended) else {
            break;
        };
        // When behind schedule this returns at once: late requests go out immediately,
        // and their latency still counts from `intended`.
        tokio::time::sleep_until(intended).await;
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let run = run.clone();
                requests.spawn(async move {
                    run.request(intended, measured).await;
                    drop(slot);
                });
            }
            Err(_) if measured => run.stats().not_sent += 1,
            Err(_) => {}
        }
        while requests.try_join_next().is_some() {}
    }
    while requests.join_next().await.is_some() {}
}

/// `concurrency` workers, each sending its next request when the previous one is done.
async fn closed_loop(run: &Arc<Run>, concurrency: usize) {
    let mut workers = JoinSet::new();
    for _ in 0..concurrency {
        let run = run.clone();
        workers.spawn(async move {
            loop {
                let now = Instant::now();
                let Some(measured) = run.schedule.claim(now) else {
                    break;
                };
                run.request(now, measured).await;
            }
        });
    }
    while workers.join_next().await.is_some() {}
}

/// Shared by every request of a run.
struct Run {
    /// One client for all requests, so connections are pooled and reused.
    client: reqwest::Client,
    /// The checkout URL of each gateway (at least one), taken in turn.
    urls: Vec<String>,
    /// How many requests were sent, to pick the next gateway.
    turns: AtomicUsize,
    body: String,
    schedule: Schedule,
    stats: Mutex<Stats>,
}

impl Run {
    /// Sends one checkout in a new trace and, if `measured`, records its outcome.
    async fn request(&self, intended: Instant, measured: bool) {
        let trace = TraceContext::random();
        if measured {
            self.stats().sent += 1;
        }
        let url = self.next_url();
        let outcome = async {
            let request = checkout::request(&self.client, url, self.body.clone(), &trace, None);
            let response = request.send().await?;
            let status = response.status();
            // Read the body to the end so the connection goes back to the pool.
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        }
        .await;
        if measured {
            let latency = intended.elapsed();
            let mut stats = self.stats();
            if let Ok((status, body)) = &outcome
                && status.is_success()
            {
                stats.accepted_orders.push(AcceptedOrder {
                    order_id: order_id_of(body),
                    trace_id: trace.trace_id.clone(),
                });
            }
            stats.record(outcome.map(|(status, _)| status), latency, trace.trace_id);
        }
    }

    /// The gateway of the next request: round robin per request rather than per
    /// worker, so even one worker splits its requests over every gateway.
    fn next_url(&self) -> &str {
        let turn = self.turns.fetch_add(1, Ordering::Relaxed);
        self.urls
            .get(turn % self.urls.len().max(1))
            .map_or("", String::as_str)
    }

    fn stats(&self) -> MutexGuard<'_, Stats> {
        // Recording never panics mid-update, so a poisoned lock still holds valid counts.
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The checkout URL of `config.gateway` and of each of `config.more_gateways`.
fn checkout_urls(config: &LoadConfig) -> Vec<String> {
    std::iter::once(&config.gateway)
        .chain(&config.more_gateways)
        .map(|gateway| checkout::checkout_url(gateway))
        .collect()
}

/// Which requests are sent and which of them are measured.
struct Schedule {
    measure_from: Instant,
    end: Option<Instant>,
    limit: Option<u64>,
    claimed: AtomicU64,
}

impl Schedule {
    /// For a request due at `at`: `None` once the run is over, else whether it is measured
    /// (requests before `measure_from` are warmup). Counts measured requests against the limit.
    fn claim(&self, at: Instant) -> Option<bool> {
        if self.end.is_some_and(|end| at >= end) {
            return None;
        }
        if at < self.measure_from {
            return Some(false);
        }
        if let Some(limit) = self.limit
            && self.claimed.fetch_add(1, Ordering::Relaxed) >= limit
        {
            return None;
        }
        Some(true)
    }
}

/// Highest latency recorded exactly: one hour (longer ones are clamped).
const LATENCY_MAX_MICROS: u64 = 3_600_000_000;

/// Counters of the measured requests.
struct Stats {
    sent: u64,
    not_sent: u64,
    statuses: BTreeMap<u16, u64>,
    transport_errors: BTreeMap<TransportError, u64>,
    /// Microseconds, 1 µs to 1 h, 3 significant digits.
    latency: Histogram<u64>,
    accepted_trace_ids: Vec<String>,
    accepted_orders: Vec<AcceptedOrder>,
}

impl Default for Stats {
    #[allow(
        clippy::expect_used,
        reason = "constant bounds that the constructor accepts"
    )]
    fn default() -> Self {
        Self {
            sent: 0,
            not_sent: 0,
            statuses: BTreeMap::new(),
            transport_errors: BTreeMap::new(),
            latency: Histogram::new_with_bounds(1, LATENCY_MAX_MICROS, 3)
                .expect("constant bounds and precision are valid"),
            accepted_trace_ids: Vec::new(),
            accepted_orders: Vec::new(),
        }
    }
}

impl Stats {
    fn record(
        &mut self,
        outcome: Result<reqwest::StatusCode, reqwest::Error>,
        latency: Duration,
        trace_id: String,
    ) {
        match outcome {
            Ok(status) => {
                *self.statuses.entry(status.as_u16()).or_default() += 1;
                let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                // Clamped into the histogram's range rather than failing.
                self.latency.saturating_record(micros);
                if status.is_success() {
                    self.accepted_trace_ids.push(trace_id);
                }
            }
            Err(error) => {
                *self
                    .transport_errors
                    .entry(TransportError::of(&error))
                    .or_default() += 1
            }
        }
    }

    fn finished(&self) -> u64 {
        self.statuses.values().sum::<u64>() + self.transport_errors.values().sum::<u64>()
    }
}

/// Redraws one status line on stderr five times a second until aborted.
async fn show_progress(run: Arc<Run>, duration: Option<Duration>, requests: Option<u64>) {
    let mut ticks = tokio::time::interval(Duration::from_millis(200));
    loop {
        ticks.tick().await;
        let now = Instant::now();
        let line = if now < run.schedule.measure_from {
            format!(
                "warming up, {:.1} s left",
                (run.schedule.measure_from - now).as_secs_f64()
            )
        } else {
            let stats = run.stats();
            let elapsed = (now - run.schedule.measure_from).as_secs_f64();
            let of_total = duration.map_or(String::new(), |d| format!("/{:.0}", d.as_secs_f64()));
            let of_requests = requests.map_or(String::new(), |n| format!("/{n}"));
            let ok = stats.accepted_trace_ids.len() as u64;
            format!(
                "{elapsed:.1}{of_total} s  sent {}{of_requests}  ok {ok}  errors {}  in flight {}",
                stats.sent,
                stats.finished() - ok,
                stats.sent - stats.finished(),
            )
        };
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[2K{line}");
        let _ = stderr.flush();
    }
}

/// The `orderId` string of a checkout response body, if it has one.
fn order_id_of(body: &[u8]) -> Option<String> {
    serde_json::from_slice::<CheckoutAccepted>(body)
        .ok()
        .map(|accepted| accepted.order_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latencies_are_recorded_at_microsecond_resolution() {
        let mut stats = Stats::default();
        for ms in 1..=100 {
            stats.record(
                Ok(reqwest::StatusCode::ACCEPTED),
                Duration::from_millis(ms),
                format!("trace-{ms}"),
            );
        }
        stats.record(
            Ok(reqwest::StatusCode::SERVICE_UNAVAILABLE),
            Duration::from_secs(2),
            "x".into(),
        );
        let latency = LatencySummary::of(&stats.latency);
        let close_to = |actual: Duration, ms: u64| {
            actual.abs_diff(Duration::from_millis(ms)) < Duration::from_micros(ms * 2)
        };
        assert!(close_to(latency.p50, 51), "{latency:?}");
        assert!(close_to(latency.p90, 91), "{latency:?}");
        assert!(close_to(latency.p99, 100), "{latency:?}");
        assert!(close_to(latency.max, 2_000), "{latency:?}");
        assert_eq!(
            stats.accepted_trace_ids.len(),
            100,
            "only 2xx responses count as accepted"
        );
        assert_eq!(stats.statuses.get(&503), Some(&1));
    }

    #[test]
    fn requests_take_the_gateways_in_turn() {
        let mut config = LoadConfig::new("http://a:1", LoadMode::Closed { concurrency: 1 });
        config.more_gateways = vec!["http://b:2".into()];
        let run = Run {
            client: reqwest::Client::new(),
            urls: checkout_urls(&config),
            turns: AtomicUsize::new(0),
            body: String::new(),
            schedule: Schedule {
                measure_from: Instant::now(),
                end: None,
                limit: None,
                claimed: AtomicU64::new(0),
            },
            stats: Mutex::new(Stats::default()),
        };
        let taken: Vec<&str> = (0..4).map(|_| run.next_url()).collect();
        assert_eq!(
            taken,
            [
                "http://a:1/api/checkout",
                "http://b:2/api/checkout",
                "http://a:1/api/checkout",
                "http://b:2/api/checkout"
            ]
        );
    }

    #[test]
    fn accepted_orders_carry_the_order_id() {
        assert_eq!(
            order_id_of(br#"{"orderId":"abc","totalAmount":100,"traceId":"t"}"#).as_deref(),
            Some("abc")
        );
        assert_eq!(order_id_of(br#"{"orderId":7}"#), None);
        assert_eq!(order_id_of(b"not json"), None);
    }
}
