//! What a caller of [`run_load`](super::run_load) configures: the mode, the bounds of
//! the run, where to verify traces and where to ask what became of the orders.

use std::time::Duration;

use testkit::receiver::SpanStore;

use crate::checkout::Item;

/// How load is applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LoadMode {
    /// Fixed arrival rate; see [the `load` module](super).
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
    /// Further gateways serving the same pipeline (replicas of `gateway`): requests go to
    /// `gateway` and each of these in turn, so the load is split evenly over them at any
    /// concurrency. Empty: every request goes to `gateway`.
    pub more_gateways: Vec<String>,
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
    /// Ask stock-service what it decided for the accepted orders, after the run (and
    /// after the trace check).
    pub check_orders: Option<CheckOrders>,
    /// Show a one-line progress display on stderr.
    pub progress: bool,
}

impl LoadConfig {
    /// A configuration with one unit of item 1 per request, no warmup, a 10 s timeout,
    /// no trace verification, no order check and no progress display; set `duration`
    /// or `requests`.
    pub fn new(gateway: impl Into<String>, mode: LoadMode) -> Self {
        Self {
            gateway: gateway.into(),
            more_gateways: Vec::new(),
            mode,
            duration: None,
            requests: None,
            warmup: Duration::ZERO,
            items: vec![Item { id: 1, quantity: 1 }],
            timeout: Duration::from_secs(10),
            verify: None,
            check_orders: None,
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

/// Where to ask what became of the accepted orders, and how long to wait for
/// stock-service to process them ([`crate::order_status`]).
#[derive(Debug, Clone)]
pub struct CheckOrders {
    /// stock-service's base URL, e.g. `http://localhost:8082`.
    pub stock_url: String,
    /// Longest wait after the run for orders stock-service has not processed yet.
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
