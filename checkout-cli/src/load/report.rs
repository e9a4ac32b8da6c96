//! What a run reports: the [`LoadReport`] with its latency percentiles, status and
//! transport-error counts, accepted orders and what became of them, and how it prints.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;
use testkit::verify::TraceCheck;

use super::LoadMode;
use crate::order_status::{OrderOutcomes, StockUnreachable};

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
    pub(super) fn of(error: &reqwest::Error) -> Self {
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
    pub(super) fn of(histogram: &Histogram<u64>) -> Self {
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
    /// The accepted (2xx) requests with their order id, in the order the answers
    /// arrived (same length as `accepted_trace_ids`).
    pub accepted_orders: Vec<AcceptedOrder>,
    /// The trace check, when verification was asked for.
    pub traces: Option<TraceCheck>,
    /// What stock-service decided for the accepted orders, when asked for.
    pub orders: Option<Result<OrderOutcomes, StockUnreachable>>,
}

/// One accepted (2xx) checkout: which order it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcceptedOrder {
    /// The `orderId` of the response body; `None` if the body had no string `orderId`.
    pub order_id: Option<String>,
    /// The trace id the request was sent with.
    pub trace_id: String,
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
        match &self.orders {
            Some(Ok(orders)) => write!(f, "\norders      {orders}")?,
            Some(Err(unreachable)) => write!(f, "\norders      {unreachable}")?,
            None => {}
        }
        Ok(())
    }
}
