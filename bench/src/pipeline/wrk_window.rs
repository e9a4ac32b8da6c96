//! The wrk window of a pipeline run: after the built-in load's window, on the same
//! started and warm pipeline, wrk at the same C for the same duration, with the same
//! bookkeeping (CPU snapshots around it, the wait until stock-service applied what wrk
//! got accepted, and, traced, until that many more traces are complete).
//!
//! Why after, on the same pipeline: the two generators then load the very same
//! processes, caches and database, so a difference between them is the load
//! generator's, not a start-up's; and the built-in window stays as it was before wrk
//! was added, so its figures compare with the history. wrk sends no `traceparent`, so
//! its traces are counted (complete traces gained over the window) rather than checked
//! by id.

use std::net::SocketAddr;

use tokio::time::Instant;

use super::applied::wait_applied;
use super::config::{PipelineConfig, Tracing};
use super::result::WrkFigures;
use crate::procfs::Snapshot;
use crate::tally::SpanTally;
use crate::wrk::{self, WrkConfig};

/// Where the window's figures are read: stock-service's answer to "how much is
/// applied", the span sink, and the CPU snapshots of the run's processes.
pub(super) struct Readers<'a, S> {
    /// The HTTP client asking stock-service.
    pub(super) client: &'a reqwest::Client,
    /// A stock-service.
    pub(super) stock: SocketAddr,
    /// The span sink.
    pub(super) receiver: &'a SpanTally,
    /// A CPU snapshot of the run's processes.
    pub(super) snapshot: S,
    /// `CLK_TCK`.
    pub(super) clock_ticks: u64,
}

/// Runs wrk against `gateways` at `concurrency` and measures the window.
pub(super) async fn wrk_window<S>(
    config: &PipelineConfig,
    wrk_config: &WrkConfig,
    tracing: Tracing,
    concurrency: usize,
    gateways: &[String],
    readers: Readers<'_, S>,
) -> anyhow::Result<WrkFigures>
where
    S: Fn() -> anyhow::Result<Snapshot>,
{
    let Readers {
        client,
        stock,
        receiver,
        snapshot,
        clock_ticks,
    } = readers;
    let initial = config.initial_stock;
    // What is applied now (a target of 0 answers at once).
    let applied_before = wait_applied(client, stock, initial, 0, std::time::Duration::ZERO).await?;
    let complete_before = receiver.complete_traces();
    let before = snapshot()?;
    let window_start = Instant::now();
    let run = wrk::run(
        wrk_config,
        gateways,
        concurrency,
        config.duration,
        clock_ticks,
    )
    .await?;
    let accepted = run.report.ok();
    let applied_after = wait_applied(
        client,
        stock,
        initial,
        applied_before + accepted,
        config.apply_timeout,
    )
    .await?;
    let complete_traces = if tracing.traces() {
        let target = complete_before + usize::try_from(accepted).unwrap_or(usize::MAX);
        let complete = receiver
            .wait_complete_traces(target, config.trace_timeout)
            .await;
        Some(complete.saturating_sub(complete_before))
    } else {
        None
    };
    let after = snapshot()?;
    let cpu_window = window_start.elapsed();
    let usage = before.until(&after, clock_ticks);
    // wrk is not among the measured processes, so its CPU shows as unaccounted; taken
    // out, what is left flags a disturbed window as for the built-in load.
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let wrk_share = run.cpu.as_secs_f64() / (cpu_window.as_secs_f64() * cpus).max(f64::EPSILON);
    Ok(WrkFigures {
        report: run.report,
        cpu: usage.per_process,
        wrk_cpu: run.cpu,
        machine_busy: usage.machine_busy,
        unaccounted_busy: (usage.unaccounted_busy - wrk_share).max(0.0),
        applied: applied_after.saturating_sub(applied_before),
        complete_traces,
    })
}
