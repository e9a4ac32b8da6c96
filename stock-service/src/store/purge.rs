//! Forgetting old orders: deleting `processed_orders` rows decided before a
//! cutoff, a bounded chunk per statement.
//!
//! Every order leaves a row, so without this the table grows by every order
//! forever. A chunk is one short statement (its own transaction), so a purge
//! never holds many locks, or SQLite's write lock, for long, and the
//! consumer's transactions go on between chunks. The index on
//! `processed_at` (a migration) finds the oldest rows without a scan.
//!
//! On PostgreSQL the rows are chosen `FOR UPDATE SKIP LOCKED`: replicas that
//! purge at the same moment each take other rows instead of waiting for one
//! another (or deadlocking over rows they reached in different orders).
//! SQLite has one writer, so there is nothing to skip.

use telemetry::spans::db::{Statement, Traced as _};

use super::{DatabaseSystem, Store, StoreError};

/// The most rows one purge statement deletes.
pub const PURGE_CHUNK: u32 = 1000;

const PURGE_POSTGRES: Statement = Statement {
    operation: "DELETE",
    table: "processed_orders",
    sql: "DELETE FROM processed_orders WHERE order_id IN \
          (SELECT order_id FROM processed_orders WHERE processed_at < $1 \
           ORDER BY processed_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
};
const PURGE_SQLITE: Statement = Statement {
    operation: "DELETE",
    table: "processed_orders",
    sql: "DELETE FROM processed_orders WHERE order_id IN \
          (SELECT order_id FROM processed_orders WHERE processed_at < $1 \
           ORDER BY processed_at LIMIT $2)",
};

impl Store {
    /// Deletes up to `limit` of the oldest orders decided before
    /// `before_ms` (Unix milliseconds), in one statement traced as a
    /// CLIENT span under the current span. Returns how many it deleted:
    /// fewer than `limit` means none older are left (on PostgreSQL: none
    /// that another purge is not deleting right now).
    pub async fn purge_processed_orders(
        &self,
        before_ms: i64,
        limit: u32,
    ) -> Result<u64, StoreError> {
        let statement = match self.system {
            DatabaseSystem::Postgresql => &PURGE_POSTGRES,
            DatabaseSystem::Sqlite => &PURGE_SQLITE,
        };
        let deleted = sqlx::query(statement.sql)
            .bind(before_ms)
            .bind(i64::from(limit))
            .execute(&self.pool)
            .traced(&self.db, *statement)
            .await?
            .rows_affected();
        Ok(deleted)
    }
}
