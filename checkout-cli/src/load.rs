//! `checkout load`: a load generator that measures latency honestly and can check
//! that every request was traced end to end.
//!
//! Two ways to apply load:
//!
//! - **Open loop** (`--rate R`): requests *arrive* on a fixed schedule, R per second,
//!   whether or not earlier ones have finished, the way independent users arrive.
//!   Latency is measured from each request's *intended* send time, so when the system
//!   (or this generator) stalls, the queueing delay shows up in the percentiles instead
//!   of being silently skipped ("coordinated omission"). Outstanding requests are
//!   capped (`--max-in-flight`); arrivals beyond the cap are counted as not sent.
//! - **Closed loop** (`--concurrency C`): C workers each send the next request as soon
//!   as the previous one completes. Throughput then adapts to the system, which suits
//!   finding the maximum rate but hides queueing delay.
//!
//! The run stops after `--duration`, after `--requests`, or whichever comes first;
//! `--warmup` requests are sent first but not counted. Latencies go into an HDR
//! histogram (microsecond resolution). With `--verify-traces`, every request carries a
//! generated `traceparent`, so the traces of the accepted ones can be checked for
//! completeness afterwards ([`crate::verify`]).
//!
//! [`run_load`] is the library entry point; the command only parses arguments and
//! prints the [`LoadReport`]. The report also lists every accepted order with the
//! wall-clock time its answer arrived ([`AcceptedOrder`]), so a caller can measure how
//! long the order then took to be applied downstream (the benchmark does).

use std::collections::BTreeMap;
use std::fmt;
use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Args;
use hdrhistogram::Histogram;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::checkout::{self, Item, TraceContext};
use crate::cli::parse_duration;
use crate::receiver::{OtlpReceiver, SpanStore};
use crate::verify::{self, TraceCheck};

/// Arguments of `checkout load`.
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Open or closed loop.
    #[command(flatten)]
    pub mode: ModeArgs,
    /// How long to measure, e.g. 10s, 500ms, 2m
    #[arg(long, value_parser = parse_duration, required_unless_present = "requests", value_name = "DURATION")]
    pub duration: Option<Duration>,
    /// Stop after this many requests (with --duration: whichever comes first)
    #[arg(long, value_name = "N")]
    pub requests: Option<u64>,
    /// Cart of every request, as ID[:QTY] lines separated by commas
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1:1",
        value_name = "ID[:QTY],.."
    )]
    pub items: Vec<Item>,
    /// Gateway base URL
    #[arg(
        long,
        env = "CHECKOUT_GATEWAY",
        default_value = "http://localhost:8081",
        value_name = "URL"
    )]
    pub gateway: String,
    /// Send load for this long first without measuring it
    #[arg(long, value_parser = parse_duration, default_value = "0s", value_name = "DURATION")]
    pub warmup: Duration,
    /// Open loop: most requests outstanding at once; later arrivals are not sent
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pub max_in_flight: usize,
    /// Give up on a request after this long (counted as a transport error)
    #[arg(long, value_parser = parse_duration, default_value = "10s", value_name = "DURATION")]
    pub timeout: Duration,
    /// Receive the services' spans over OTLP and check every accepted request left a
    /// complete trace (point OTEL_EXPORTER_OTLP_ENDPOINT at --listen-grpc)
    #[arg(long)]
    pub verify_traces: bool,
    /// OTLP/gRPC address to receive spans on, with --verify-traces
    #[arg(
        long,
        default_value = "0.0.0.0:4317",
        requires = "verify_traces",
        value_name = "ADDR"
    )]
    pub listen_grpc: SocketAddr,
    /// With --verify-traces: longest wait for late spans after the run
    #[arg(long, value_parser = parse_duration, default_value = "30s", requires = "verify_traces", value_name = "DURATION")]
    pub verify_timeout: Duration,
}

/// `--rate` or `--concurrency`, exactly one.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ModeArgs {
    /// Open loop: send this many requests per second, on schedule
    #[arg(long, value_name = "R")]
    pub rate: Option<f64>,
    /// Closed loop: this many workers sending back to back
    #[arg(long, value_name = "C")]
    pub concurrency: Option<NonZeroUsize>,
}

/// How load is applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadMode {
    /// Fixed arrival rate; see the module docs.
    Open {
        /// Requests per second.
        rate: f64,
        /// Most requests outstanding at once.
        max_in_flight: usize,
    },
    /// Fixed number of workers sending back to back.
    Closed {
        /// Number of workers.
        concurrency: usize,
    },
}

/// A load run. At least one of `duration` and `requests` must be set.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Gateway base URL, e.g. `http://localhost:8081`.
    pub gateway: String,
    /// Open or closed loop.
    pub mode: LoadMode,
    /// Length of the measured phase.
    pub duration: Option<Duration>,
    /// Number of measured requests (open loop: arrivals, sent or not).
    pub requests: Option<u64>,
    /// Unmeasured phase before the measured one.
    pub warmup: Duration,
    /// Cart of every request.
    pub items: Vec<Item>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Check the traces of accepted requests after the run.
    pub verify: Option<VerifyTraces>,
    /// Show a one-line progress display on stderr.
    pub progress: bool,
}

impl LoadConfig {
    /// A configuration with one unit of item 1 per request, no warmup, a 10 s timeout,
    /// no verification and no progress display; set `duration` or `requests`.
    pub fn new(gateway: impl Into<String>, mode: LoadMode) -> Self {
        Self {
            gateway: gateway.into(),
            mode,
            duration: None,
            requests: None,
            warmup: Duration::ZERO,
            items: vec![Item { id: 1, quantity: 1 }],
            timeout: Duration::from_secs(10),
            verify: None,
            progress: false,
        }
    }
}

/// Where to look for the traces of accepted requests, and how long to wait for them.
#[derive(Debug, Clone)]
pub struct VerifyTraces {
    /// The store the services' spans arrive in (a new receiver's, or an existing one).
    pub store: SpanStore,
    /// Longest wait after the run for spans still on their way.
    pub timeout: Duration,
}

/// A configuration that cannot run.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Neither a duration nor a request count: the run would never end.
    #[error("set a duration or a number of requests")]
    Unbounded,
    /// Rate not a positive number, or zero workers or in-flight slots.
    #[error("the rate must be positive and concurrency and max-in-flight at least 1")]
    InvalidMode,
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// A transport failure: no HTTP status came back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TransportError {
    /// The request timed out.
    Timeout,
    /// The connection could not be established.
    Connect,
    /// Anything else (connection reset, malformed response, ...).
    Other,
}

impl TransportError {
    fn of(error: &reqwest::Error) -> Self {
        if error.is_timeout() {
            Self::Timeout
        } else if error.is_connect() {
            Self::Connect
        } else {
            Self::Other
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Other => "other",
        })
    }
}

/// Latency percentiles of the responses (zero when there were none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencySummary {
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// 99.9th percentile.
    pub p999: Duration,
    /// Slowest.
    pub max: Duration,
}

impl LatencySummary {
    fn of(histogram: &Histogram<u64>) -> Self {
        let at = |quantile| Duration::from_micros(histogram.value_at_quantile(quantile));
        Self {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            p999: at(0.999),
            max: Duration::from_micros(histogram.max()),
        }
    }
}

/// What a run measured (warmup excluded).
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// How load was applied.
    pub mode: LoadMode,
    /// From the end of the warmup until the last response.
    pub elapsed: Duration,
    /// Requests sent.
    pub sent: u64,
    /// Open loop: arrivals not sent because `max_in_flight` requests were outstanding.
    pub not_sent: u64,
    /// Responses by HTTP status (successes included).
    pub statuses: BTreeMap<u16, u64>,
    /// Requests that got no status, by kind of failure.
    pub transport_errors: BTreeMap<TransportError, u64>,
    /// Latency of the responses (any status), from the intended send time.
    pub latency: LatencySummary,
    /// The trace ids of the accepted (2xx) requests.
    pub accepted_trace_ids: Vec<String>,
    /// The accepted (2xx) requests with their order id and the time the answer
    /// arrived, in the order the answers arrived (same length as `accepted_trace_ids`).
    pub accepted_orders: Vec<AcceptedOrder>,
    /// The trace check, when verification was asked for.
    pub traces: Option<TraceCheck>,
}

/// One accepted (2xx) checkout: which order it created and when the answer arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedOrder {
    /// The `orderId` of the response body; `None` if the body had no string `orderId`.
    pub order_id: Option<String>,
    /// The trace id the request was sent with.
    pub trace_id: String,
    /// Wall-clock time the whole response had been read, in microseconds since the Unix
    /// epoch (the system clock, so it compares with timestamps taken by other processes).
    pub accepted_at_unix_micros: u64,
}

/// The `orderId` string of a checkout response body, if it has one.
fn order_id_of(body: &[u8]) -> Option<String> {
    let body: serde_json::Value = serde_json::from_slice(body).ok()?;
    body.get("orderId")?.as_str().map(str::to_owned)
}

/// `time` in microseconds since the Unix epoch (0 before it, saturating far after it).
fn unix_micros(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |since| {
        u64::try_from(since.as_micros()).unwrap_or(u64::MAX)
    })
}

impl LoadReport {
    /// Responses received (any status).
    pub fn responses(&self) -> u64 {
        self.statuses.values().sum()
    }

    /// Accepted (2xx) requests.
    pub fn accepted(&self) -> u64 {
        self.accepted_trace_ids.len() as u64
    }

    /// Failed requests: error statuses plus transport errors.
    pub fn errors(&self) -> u64 {
        self.sent - self.accepted()
    }

    /// Responses per second over [`elapsed`](Self::elapsed).
    pub fn throughput(&self) -> f64 {
        self.responses() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        match self.mode {
            LoadMode::Open {
                rate,
                max_in_flight,
            } => writeln!(
                f,
                "mode        open loop, {rate} req/s, at most {max_in_flight} in flight"
            )?,
            LoadMode::Closed { concurrency } => {
                writeln!(f, "mode        closed loop, {concurrency} workers")?;
            }
        }
        write!(
            f,
            "requests    {} sent in {:.2} s",
            self.sent,
            self.elapsed.as_secs_f64()
        )?;
        if self.not_sent > 0 {
            write!(f, ", {} not sent (too many in flight)", self.not_sent)?;
        }
        writeln!(f, "\nthroughput  {:.1} req/s", self.throughput())?;
        let l = &self.latency;
        writeln!(
            f,
            "latency     p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms  max {:.2} ms",
            ms(l.p50),
            ms(l.p90),
            ms(l.p99),
            ms(l.p999),
            ms(l.max)
        )?;
        let counts = |counts: Vec<String>| {
            if counts.is_empty() {
                "none".to_owned()
            } else {
                counts.join("  ")
            }
        };
        let statuses = self.statuses.iter().map(|(s, n)| format!("{s} × {n}"));
        write!(f, "statuses    {}", counts(statuses.collect()))?;
        let transport = self
            .transport_errors
            .iter()
            .map(|(e, n)| format!("{e} × {n}"));
        write!(f, "\ntransport   {}", counts(transport.collect()))?;
        if let Some(traces) = &self.traces {
            write!(f, "\ntraces      {traces}")?;
        }
        Ok(())
    }
}

/// Runs the load described by `config` and reports on it; with `config.verify`, also
/// waits for and checks the traces of the accepted requests.
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
        url: checkout::checkout_url(&config.gateway),
        body: checkout::body(&config.items).to_string(),
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
    })
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
    url: String,
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
        let outcome = async {
            let request =
                checkout::request(&self.client, &self.url, self.body.clone(), &trace, None);
            let response = request.send().await?;
            let status = response.status();
            // Read the body to the end so the connection goes back to the pool.
            let body = response.bytes().await?;
            Ok::<_, reqwest::Error>((status, body))
        }
        .await;
        if measured {
            let answered_at = SystemTime::now();
            let latency = intended.elapsed();
            let mut stats = self.stats();
            if let Ok((status, body)) = &outcome
                && status.is_success()
            {
                stats.accepted_orders.push(AcceptedOrder {
                    order_id: order_id_of(body),
                    trace_id: trace.trace_id.clone(),
                    accepted_at_unix_micros: unix_micros(answered_at),
                });
            }
            stats.record(outcome.map(|(status, _)| status), latency, trace.trace_id);
        }
    }

    fn stats(&self) -> MutexGuard<'_, Stats> {
        // Recording never panics mid-update, so a poisoned lock still holds valid counts.
        self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }
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

/// Runs `checkout load`: fails if verification found incomplete traces.
pub async fn run(args: LoadArgs) -> anyhow::Result<ExitCode> {
    let mode = match (args.mode.rate, args.mode.concurrency) {
        (Some(rate), _) => LoadMode::Open {
            rate,
            max_in_flight: args.max_in_flight,
        },
        (None, Some(concurrency)) => LoadMode::Closed {
            concurrency: concurrency.get(),
        },
        (None, None) => anyhow::bail!("set --rate or --concurrency"),
    };
    let receiver = if args.verify_traces {
        let receiver = OtlpReceiver::start(args.listen_grpc, None)
            .await
            .with_context(|| format!("could not listen for OTLP on {}", args.listen_grpc))?;
        eprintln!("receiving spans on OTLP/gRPC {}", receiver.grpc_addr());
        Some(receiver)
    } else {
        None
    };
    let config = LoadConfig {
        duration: args.duration,
        requests: args.requests,
        warmup: args.warmup,
        items: args.items,
        timeout: args.timeout,
        verify: receiver.as_ref().map(|receiver| VerifyTraces {
            store: receiver.store(),
            timeout: args.verify_timeout,
        }),
        progress: std::io::stderr().is_terminal(),
        ..LoadConfig::new(args.gateway, mode)
    };
    let report = run_load(config).await?;
    println!("{report}");
    if let Some(receiver) = receiver {
        receiver.shutdown().await;
    }
    let traces_ok = report.traces.as_ref().is_none_or(TraceCheck::all_complete);
    Ok(if traces_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
    fn accepted_orders_carry_the_order_id_and_a_unix_time() {
        assert_eq!(
            order_id_of(br#"{"orderId":"abc","totalAmount":100,"traceId":"t"}"#).as_deref(),
            Some("abc")
        );
        assert_eq!(order_id_of(br#"{"orderId":7}"#), None);
        assert_eq!(order_id_of(b"not json"), None);
        assert_eq!(
            unix_micros(UNIX_EPOCH + Duration::from_millis(1_700_000_000_123)),
            1_700_000_000_123_000
        );
        assert_eq!(unix_micros(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
