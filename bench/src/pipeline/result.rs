//! What a pipeline run hands back: the [`PipelineResult`] with its per-service and
//! trace figures, and the rates derived from them. Plain data, so the
//! report (and its tests) can build and read results without running anything.

use std::time::Duration;

use checkout_cli::load::LoadReport;
use testkit::verify::TraceCheck;

use super::config::Tracing;
use crate::services::LogSummary;
use crate::stats::Latency;
use crate::wrk::WrkReport;

/// The wrk window of a run: wrk at the same C for the same duration, on the same warm
/// pipeline, after the built-in load's window.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkFigures {
    /// What wrk's script reported.
    pub report: WrkReport,
    /// CPU time per process over the wrk window (from the start of wrk until its
    /// accepted orders were applied and, traced, their traces complete): the services,
    /// the broker, this process (the span sink, when traced) and PostgreSQL's, labelled
    /// as in [`PipelineResult::cpu`].
    pub cpu: Vec<(String, Duration)>,
    /// wrk's own CPU time.
    pub wrk_cpu: Duration,
    /// Share of the machine's CPU busy over the window.
    pub machine_busy: f64,
    /// Share busy in processes not measured, wrk's own CPU taken out (see
    /// [`PipelineResult::unaccounted_busy`]).
    pub unaccounted_busy: f64,
    /// Orders stock-service applied from the start of wrk until the end of the apply
    /// wait: wrk's accepted ones, and possibly some of the up to C requests wrk left in
    /// flight when it stopped (the gateway may still have accepted them).
    pub applied: u64,
    /// Traced: how many more traces were complete at the end of the window than at its
    /// start (wrk's requests carry no `traceparent`, so their ids are unknown).
    pub complete_traces: Option<usize>,
}

/// One service's end of run.
#[derive(Debug, Clone)]
pub struct ServiceFigures {
    /// `gateway`, `checkout-service`, `stock-service`.
    pub name: &'static str,
    /// Peak resident set (VmHWM) in kB.
    pub peak_rss_kb: u64,
    /// Spans its exporter dropped, and whether the count is exact.
    pub dropped_spans: (u64, bool),
    /// Its log summary.
    pub logs: LogSummary,
    /// Whether it exited on SIGTERM in time.
    pub graceful: bool,
}

/// What one pipeline run measured (warmup excluded).
#[derive(Debug, Clone)]
pub struct PipelineResult {
    /// Untraced or traced.
    pub tracing: Tracing,
    /// Requests in flight.
    pub concurrency: usize,
    /// The load generator's report of the measured window.
    pub load: LoadReport,
    /// Orders stock-service applied from the start of the window until the end of the
    /// apply wait (normally exactly the accepted ones).
    pub applied: u64,
    /// CPU time over the measured window (see [the `pipeline` module](super)) per
    /// process: each service process, the broker's, this process, and PostgreSQL's
    /// (summed per label); one label per replica, so a service's CPU is the sum of its
    /// entries.
    pub cpu: Vec<(String, Duration)>,
    /// In a cluster: the nodes the run's queue had a replica on (`None`: not asked, or
    /// no answer).
    pub queue_members: Option<usize>,
    /// Share of the machine's CPU busy over the window.
    pub machine_busy: f64,
    /// Share of the machine's CPU busy in processes not measured (see
    /// [`Usage::unaccounted_busy`](crate::procfs::Usage::unaccounted_busy)).
    pub unaccounted_busy: f64,
    /// Per service process (replicas share a name): memory, dropped spans, logs.
    pub services: Vec<ServiceFigures>,
    /// All spans the receiver got (also those of the warmup, of the order queries and
    /// of the wrk window; 0 when untraced).
    pub spans_received: usize,
    /// Traced runs: the trace check of the accepted checkouts (after the services'
    /// final flush).
    pub traces: Option<TraceCheck>,
    /// The wrk window, unless `--no-wrk`.
    pub wrk: Option<WrkFigures>,
}

impl PipelineResult {
    /// Accepted checkouts in the window.
    pub fn accepted(&self) -> u64 {
        self.load.accepted()
    }

    /// Accepted checkouts per second.
    pub fn throughput(&self) -> f64 {
        self.accepted() as f64 / self.load.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Response latency.
    pub fn latency(&self) -> Latency {
        Latency::of_load(&self.load.latency)
    }

    /// Spans dropped by all exporters, and whether the sum is exact.
    pub fn dropped_spans(&self) -> (u64, bool) {
        self.services
            .iter()
            .fold((0, true), |(sum, exact), service| {
                (
                    sum + service.dropped_spans.0,
                    exact && service.dropped_spans.1,
                )
            })
    }
}
