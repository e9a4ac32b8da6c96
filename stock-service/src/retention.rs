//! The retention of processed orders: a background task that deletes the
//! `processed_orders` rows older than `PROCESSED_ORDERS_RETENTION`, so the
//! table holds about *rate × retention* rows instead of every order ever.
//!
//! Forgetting an order ends its exactly-once guarantee: a redelivery of its
//! message, or a client's retry with the same `Idempotency-Key` (which
//! checkout-service turns into the same order id), that arrives after the
//! row is gone is applied as a new order. The retention therefore has to
//! outlast every way an order can come back: checkout-service's 24 h
//! idempotency window, and the longest a message can wait in the queue. The
//! default, 7 days, leaves a wide margin; the setting refuses less than a
//! day.
//!
//! Every `PROCESSED_ORDERS_PURGE_INTERVAL` (and once at start) the task
//! deletes what is older, [`PURGE_CHUNK`] rows per statement until none are
//! left, pausing between chunks so the consumer's transactions go first.
//! Each run is one trace: an INTERNAL span `purge processed_orders`
//! ([`telemetry::spans::db::purge`]) with the cutoff and the number of rows
//! deleted, over one `DELETE processed_orders` CLIENT span per chunk. A
//! failed run is logged and the next one tries again. On shutdown the task stops between two chunks.

use std::time::Duration;

use service::shutdown::CancellationToken;
use tracing::{Instrument, info, warn};

use crate::{
    configuration::RetentionSettings,
    store::{PURGE_CHUNK, Store, StoreError, now_ms},
};

/// The pause between two chunks of one purge: a chunk holds SQLite's write
/// lock, and a consumer waiting for it polls with growing sleeps, so
/// starting the next chunk at once could keep it waiting for many chunks.
const PAUSE_BETWEEN_CHUNKS: Duration = Duration::from_millis(20);

/// Deletes processed orders older than the retention, periodically.
pub struct Retention {
    store: Store,
    settings: RetentionSettings,
}

impl Retention {
    /// A purge task for `store` with the given retention and interval.
    pub fn new(store: Store, settings: RetentionSettings) -> Self {
        Self { store, settings }
    }

    /// Purges at start and then every interval, until `shutdown`.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(self.settings.purge_interval);
        // After a long purge, wait a whole interval again rather than
        // catching up with back-to-back runs.
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(error) = self.purge(&shutdown).await {
                warn!(%error, "cannot purge old processed orders; trying again next interval");
            }
        }
    }

    /// One purge run: deletes every order decided more than the retention
    /// ago, chunk by chunk, stopping early on `shutdown`. Returns how many
    /// it deleted.
    pub async fn purge(&self, shutdown: &CancellationToken) -> Result<u64, StoreError> {
        let retention_ms = i64::try_from(self.settings.retention.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms().saturating_sub(retention_ms);
        let span = telemetry::spans::db::purge("processed_orders", cutoff);
        let mut deleted = 0;
        let result = async {
            loop {
                let chunk = self
                    .store
                    .purge_processed_orders(cutoff, PURGE_CHUNK)
                    .await?;
                deleted += chunk;
                if chunk < u64::from(PURGE_CHUNK) || shutdown.is_cancelled() {
                    return Ok::<_, StoreError>(());
                }
                tokio::time::sleep(PAUSE_BETWEEN_CHUNKS).await;
            }
        }
        .instrument(span.clone())
        .await;
        telemetry::spans::db::record_purged(&span, deleted);
        if let Err(error) = &result {
            telemetry::spans::record_error(&span, "database_error", &error.to_string());
        }
        if deleted > 0 {
            info!(parent: &span, deleted, cutoff_ms = cutoff, "purged processed orders older than the retention");
        }
        result.map(|()| deleted)
    }
}
