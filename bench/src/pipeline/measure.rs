//! The measurement of one started pipeline: warmup and its drain, the measured load
//! window with CPU snapshots around it (covering the downstream work and span export
//! each checkout causes), peak memory, apply latency, the services' stop, and the
//! trace check; steps 3 to 5 of [the `pipeline` module](super), in that order.

use std::time::Duration;

use checkout_cli::load::{LoadConfig, LoadMode, run_load};
use checkout_cli::verify;
use tokio::time::Instant;

use super::applied::{apply_latency, wait_applied};
use super::processes::Pipeline;
use super::{PipelineConfig, PipelineResult, ServiceFigures, TraceFigures, Tracing, http_client};
use crate::procfs::{self, Snapshot};
use crate::tally::SpanTally;

/// Loads the started `pipeline` closed-loop at `concurrency` and measures it, the
/// `broker` processes and this one; stops the services before returning.
pub(super) async fn measure(
    config: &PipelineConfig,
    tracing: Tracing,
    concurrency: usize,
    broker: &[(String, u32)],
    clock_ticks: u64,
    pipeline: Pipeline,
    receiver: &SpanTally,
) -> anyhow::Result<PipelineResult> {
    let client = http_client()?;
    let gateway = format!("http://{}", pipeline.gateway.addr);
    let stock = pipeline.stock.addr;
    let initial = config.initial_stock;
    let mode = LoadMode::Closed { concurrency };

    let mut warmup_accepted = 0;
    if !config.warmup.is_zero() {
        let warmup = run_load(LoadConfig {
            duration: Some(config.warmup),
            ..LoadConfig::new(gateway.clone(), mode)
        })
        .await?;
        warmup_accepted = warmup.accepted();
    }
    let applied_before = wait_applied(
        &client,
        stock,
        initial,
        warmup_accepted,
        config.apply_timeout,
    )
    .await?;

    let mut measured = pipeline.processes();
    measured.extend(broker.iter().cloned());
    measured.push(("bench".to_owned(), std::process::id()));
    let before = Snapshot::take(&measured)?;
    let window_start = Instant::now();
    let load = run_load(LoadConfig {
        duration: Some(config.duration),
        ..LoadConfig::new(gateway, mode)
    })
    .await?;
    let load_done = Instant::now();
    let applied_after = wait_applied(
        &client,
        stock,
        initial,
        applied_before + load.accepted(),
        config.apply_timeout,
    )
    .await?;
    let apply_wait = load_done.elapsed();
    let first_check = match tracing {
        Tracing::On | Tracing::Full => Some(
            receiver
                .check(&load.accepted_trace_ids, config.trace_timeout)
                .await,
        ),
        Tracing::Off => None,
    };
    let after = Snapshot::take(&measured)?;
    let cpu_window = window_start.elapsed();
    let usage = before.until(&after, clock_ticks);

    let mut peaks = Vec::new();
    for service in pipeline.services() {
        peaks.push(procfs::peak_rss_kb(service.pid)?);
    }
    let apply_latency =
        apply_latency(&client, stock, &load.accepted_orders, config.apply_sample).await;

    let services = pipeline
        .stop(config.stop_timeout)
        .await
        .into_iter()
        .zip(peaks)
        .map(|((name, stopped), peak_rss_kb)| ServiceFigures {
            name,
            peak_rss_kb,
            dropped_spans: stopped.logs.dropped_spans(),
            logs: stopped.logs,
            graceful: stopped.graceful,
        })
        .collect();

    let traces = match first_check {
        Some(check) => {
            // Spans flushed at shutdown may complete traces the first check missed.
            let check = if check.all_complete() {
                check
            } else {
                receiver
                    .check(&load.accepted_trace_ids, Duration::from_secs(3))
                    .await
            };
            let spans_of_checkouts = receiver.spans_of(&load.accepted_trace_ids);
            Some(TraceFigures {
                check,
                spans_of_checkouts,
                spans_expected_min: verify::CHECKOUT_TRACE.len() * load.accepted_trace_ids.len(),
            })
        }
        None => None,
    };
    Ok(PipelineResult {
        tracing,
        concurrency,
        warmup_accepted,
        applied: applied_after.saturating_sub(applied_before),
        apply_wait,
        apply_latency,
        cpu: usage.per_process,
        cpu_window,
        machine_busy: usage.machine_busy,
        unaccounted_busy: usage.unaccounted_busy,
        services,
        spans_received: receiver.spans(),
        traces,
        load,
    })
}
