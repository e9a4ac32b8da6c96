//! Asking stock-service what it has applied: the count of applied orders (read off the
//! stock of item 1), and waiting until a target count is reached (after the warmup and
//! after each measured window), so every window's figures cover the orders it got
//! accepted all the way to the database.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

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
