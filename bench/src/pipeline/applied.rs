//! Asking stock-service what it has applied: the count of applied orders (read off the
//! stock of item 1), waiting until a target count is reached (the drain after warmup
//! and after the measured window), and the apply latency of a sample of the accepted
//! orders from their `processedAt`. The end-to-end figures of a run come from here.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use checkout_cli::load::AcceptedOrder;
use futures::StreamExt;
use tokio::time::Instant;

use super::result::ApplyLatency;
use crate::stats;

/// Orders stock-service has applied: the initial stock of item 1 minus what is left
/// (each checkout orders one unit of item 1).
async fn applied_orders(
    client: &reqwest::Client,
    stock: SocketAddr,
    initial: u64,
) -> anyhow::Result<u64> {
    let level: serde_json::Value = client
        .get(format!("http://{stock}/api/stock/1"))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let available = level["available"]
        .as_u64()
        .context("no `available` in the stock answer")?;
    Ok(initial.saturating_sub(available))
}

/// Polls until at least `target` orders are applied or `timeout` passes; returns the
/// count reached.
pub(super) async fn wait_applied(
    client: &reqwest::Client,
    stock: SocketAddr,
    initial: u64,
    target: u64,
    timeout: Duration,
) -> anyhow::Result<u64> {
    let deadline = Instant::now() + timeout;
    loop {
        let applied = applied_orders(client, stock, initial).await?;
        if applied >= target || Instant::now() >= deadline {
            return Ok(applied);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `processedAt − acceptedAt` of an evenly spread sample of the accepted orders.
pub(super) async fn apply_latency(
    client: &reqwest::Client,
    stock: SocketAddr,
    accepted: &[AcceptedOrder],
    limit: usize,
) -> ApplyLatency {
    let with_id: Vec<&AcceptedOrder> = accepted
        .iter()
        .filter(|order| order.order_id.is_some())
        .collect();
    let sample: Vec<&AcceptedOrder> = stats::sample_indices(with_id.len(), limit)
        .into_iter()
        .map(|i| with_id[i])
        .collect();
    let mut deltas: Vec<f64> = futures::stream::iter(sample.iter().copied())
        .map(|order| async move {
            let id = order.order_id.as_deref()?;
            let answer: serde_json::Value = client
                .get(format!("http://{stock}/api/orders/{id}"))
                .send()
                .await
                .ok()?
                .error_for_status()
                .ok()?
                .json()
                .await
                .ok()?;
            let processed_ms = answer["processedAt"].as_i64()?;
            Some(processed_ms as f64 - order.accepted_at_unix_micros as f64 / 1_000.0)
        })
        .buffer_unordered(16)
        .filter_map(|delta| async move { delta })
        .collect()
        .await;
    deltas.sort_by(f64::total_cmp);
    ApplyLatency {
        sampled: sample.len(),
        found: deltas.len(),
        p50_ms: stats::percentile(&deltas, 0.5),
        p99_ms: stats::percentile(&deltas, 0.99),
    }
}
