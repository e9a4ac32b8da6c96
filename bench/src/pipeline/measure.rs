//! The measurement of one started pipeline: warmup and its drain, the measured load
//! window with CPU snapshots around it (covering the downstream work and span export
//! each checkout causes), then the same with wrk ([`wrk_window`](super::wrk_window)),
//! peak memory, the services' stop, and the trace check; steps 3 to 6 of [the
//! `pipeline` module](super), in that order.

use std::time::Duration;

use anyhow::Context;
use checkout_cli::load::{LoadConfig, LoadMode, run_load};

use super::applied::wait_applied;
use super::config::{PipelineConfig, Tracing};
use super::processes::{Pipeline, http_client};
use super::result::{PipelineResult, ServiceFigures};
use super::wrk_window::{Readers, wrk_window};
use crate::procfs::{self, Snapshot};
use crate::tally::SpanTally;
use crate::{cluster, postgres};

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
    let all_gateways = pipeline.gateway_urls();
    let mut gateways = all_gateways.clone();
    anyhow::ensure!(!gateways.is_empty(), "no gateway started");
    let gateway = gateways.remove(0);
    let load_config = |duration| LoadConfig {
        duration: Some(duration),
        more_gateways: gateways.clone(),
        ..LoadConfig::new(gateway.clone(), LoadMode::Closed { concurrency })
    };
    // The stock-services share one database: any of them answers for all.
    let stock = pipeline
        .stocks
        .first()
        .map(|stock| stock.addr)
        .context("no stock-service started")?;
    let initial = config.initial_stock;

    let mut warmup_accepted = 0;
    if !config.warmup.is_zero() {
        let warmup = run_load(load_config(config.warmup)).await?;
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
    // PostgreSQL's processes are found anew at each snapshot: its backends come and go
    // with the stock-services' connection pools.
    let postgres = || {
        pipeline
            .database_name()
            .map(postgres::server_processes)
            .unwrap_or_default()
    };
    let snapshot = || Snapshot::take_with(&measured, &postgres());
    let before = snapshot()?;
    let load = run_load(load_config(config.duration)).await?;
    let applied_after = wait_applied(
        &client,
        stock,
        initial,
        applied_before + load.accepted(),
        config.apply_timeout,
    )
    .await?;
    let first_check = match tracing {
        Tracing::On | Tracing::Full => Some(
            receiver
                .check(&load.accepted_trace_ids, config.trace_timeout)
                .await,
        ),
        Tracing::Off => None,
    };
    let after = snapshot()?;
    let usage = before.until(&after, clock_ticks);

    let wrk = match &config.wrk {
        Some(wrk_config) => Some(
            wrk_window(
                config,
                wrk_config,
                tracing,
                concurrency,
                &all_gateways,
                Readers {
                    client: &client,
                    stock,
                    receiver,
                    snapshot,
                    clock_ticks,
                },
            )
            .await
            .context("wrk")?,
        ),
        None => None,
    };

    let mut peaks = Vec::new();
    for service in pipeline.services() {
        peaks.push(procfs::peak_rss_kb(service.pid)?);
    }
    let queue_members = match &config.cluster_node {
        Some(node) => cluster::queue_members(node, &pipeline.queue).await,
        None => None,
    };

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

    // Spans flushed at shutdown may complete traces the first check missed.
    let traces = match first_check {
        Some(check) if !check.all_complete() => Some(
            receiver
                .check(&load.accepted_trace_ids, Duration::from_secs(3))
                .await,
        ),
        check => check,
    };
    Ok(PipelineResult {
        tracing,
        concurrency,
        applied: applied_after.saturating_sub(applied_before),
        cpu: usage.per_process,
        queue_members,
        machine_busy: usage.machine_busy,
        unaccounted_busy: usage.unaccounted_busy,
        services,
        spans_received: receiver.spans(),
        traces,
        wrk,
        load,
    })
}
