//! Applying a batch of orders in one transaction, safely alongside other
//! replicas: the order in which a transaction takes its locks, and the retry
//! of a transaction the database aborted.
//!
//! # Lock order (PostgreSQL)
//!
//! Several stock-service replicas may write to one PostgreSQL database, each
//! applying a batch of orders per transaction. A transaction holds every row
//! lock it takes until it commits, so two transactions that take the same
//! locks in different orders can each wait for the other: a deadlock, which
//! the server breaks after `deadlock_timeout` (1 s) by aborting one of them.
//! Every transaction here therefore takes its locks in one global order:
//!
//! 1. the `processed_orders` keys of its orders, ascending by request
//!    fingerprint, then order id (the `INSERT` that claims an order locks
//!    its order id and its fingerprint in the unique indexes until commit;
//!    another transaction claiming the same order or the same fingerprint,
//!    a duplicate delivered to another replica or a retry under another
//!    order id, waits for it and then finds it; one order id has one
//!    fingerprint, so both keys of an order fall at one place in that
//!    order);
//! 2. the `stock` rows of every item its new orders need, ascending by item
//!    id: with two or more new orders, all of them at once with one
//!    `SELECT … ORDER BY item_id FOR UPDATE` (PostgreSQL locks the rows in
//!    the order it returns them) before any stock changes; a single order
//!    takes them through its `UPDATE`s, which run in item order anyway.
//!
//! Every transaction acquires its locks in increasing order of one total
//! order (keys before rows, each ascending), so no cycle of waits can form.
//! Locking the rows before applying the orders also means an order's outcome
//! is decided on stock no other transaction can change in between.
//!
//! SQLite has a single writer (the database lock), so neither the sorting
//! nor the lock statement is needed: there orders are applied in delivery
//! order, and the statements are the same as on PostgreSQL minus the lock.
//!
//! # Retry
//!
//! Should PostgreSQL still abort a transaction with an error it documents as
//! worth retrying — a deadlock (`40P01`) or a serialization failure
//! (`40001`) — the whole batch is rolled back and run again, up to
//! [`MAX_ATTEMPTS`] times with a short jittered pause, so that the
//! transactions that collided do not collide again in step. Each retry is
//! logged (warn, with the SQLSTATE) and counted on the CONSUMER span of every
//! order of the batch as [`RETRIES_ATTRIBUTE`] (absent: no retry). After the
//! last attempt the error goes to the consumer, which treats it like any
//! other database error (requeue after a pause). Retrying is safe because
//! nothing of an aborted transaction remains, and nothing was acknowledged.

use std::{collections::BTreeSet, time::Duration};

use contracts::amqp::{CheckoutProcessed, OrderLine};
use sqlx::AnyConnection;
use telemetry::spans::db::{Statement, Traced as _};
use tracing::{Instrument, Span, debug, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::{DatabaseSystem, Store, StoreError, now_ms};
use crate::domain::{OrderStatus, Outcome};

/// How many times one batch transaction is tried before its error is
/// handed to the consumer.
pub const MAX_ATTEMPTS: u32 = 5;
/// The span attribute counting how often a batch's transaction was rolled
/// back and run again; set on the CONSUMER span of each of its orders.
pub const RETRIES_ATTRIBUTE: &str = "stock.transaction.retries";
/// The SQLSTATEs PostgreSQL documents as "retry the transaction":
/// `serialization_failure` and `deadlock_detected` (PostgreSQL manual,
/// "Serialization Failure Handling").
const RETRYABLE_SQLSTATES: [&str; 2] = ["40001", "40P01"];
/// The pause before the first retry; it doubles for each further one, and
/// the actual pause is drawn between half of it and all of it.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(20);

/// Claims an order: no row is inserted if its order id or its request
/// fingerprint is recorded already (either unique index), which the same
/// statement decides atomically.
const RECORD_ORDER: Statement = Statement {
    operation: "INSERT",
    table: "processed_orders",
    sql: "INSERT INTO processed_orders \
          (order_id, status, reason, total_amount, items, processed_at, request_fingerprint) \
          VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
};
/// The order recorded under a request fingerprint.
const SELECT_FINGERPRINT: Statement = Statement {
    operation: "SELECT",
    table: "processed_orders",
    sql: "SELECT order_id FROM processed_orders WHERE request_fingerprint = $1",
};
/// Records an order id as a duplicate of another one: stock untouched
/// (status `rejected`, shown as `duplicate`), no fingerprint (the original
/// holds it).
const RECORD_DUPLICATE: Statement = Statement {
    operation: "INSERT",
    table: "processed_orders",
    sql: "INSERT INTO processed_orders \
          (order_id, status, reason, total_amount, items, processed_at, duplicate_of) \
          VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (order_id) DO NOTHING",
};
/// The batch's stock rows, locked in item order (PostgreSQL only). The ids
/// travel as one comma-separated text parameter: sqlx's `Any` driver binds
/// no arrays, and one statement is one round trip however many items.
const LOCK_STOCK: Statement = Statement {
    operation: "SELECT",
    table: "stock",
    sql: "SELECT item_id FROM stock \
          WHERE item_id = ANY(CAST(string_to_array($1, ',') AS BIGINT[])) \
          ORDER BY item_id FOR UPDATE",
};
const TAKE_STOCK: Statement = Statement {
    operation: "UPDATE",
    table: "stock",
    sql: "UPDATE stock SET available = available - $1 WHERE item_id = $2 AND available >= $1",
};
const RETURN_STOCK: Statement = Statement {
    operation: "UPDATE",
    table: "stock",
    sql: "UPDATE stock SET available = available + $1 WHERE item_id = $2",
};
const REJECT_ORDER: Statement = Statement {
    operation: "UPDATE",
    table: "processed_orders",
    sql: "UPDATE processed_orders SET status = $2, reason = $3 WHERE order_id = $1",
};

impl Store {
    /// Applies one order in its own transaction (see [`Store::apply_batch`]).
    /// Its statements' spans, and the retry count if any, go to the current
    /// span.
    pub async fn apply(&self, order: &CheckoutProcessed) -> Result<Outcome, StoreError> {
        let span = Span::current();
        let outcomes = self.apply_batch(&[(order, &span)]).await?;
        Ok(outcomes.into_iter().next().unwrap_or(Outcome::Duplicate))
    }

    /// Applies `orders` in one transaction and commits them together: one
    /// commit for many orders is what lets the consumer keep up under load.
    /// Returns each order's outcome, in the order given. Nothing is visible,
    /// and nothing may be acknowledged, before this returns `Ok`.
    ///
    /// Each order's statements are traced under its span. For each order:
    /// its id is claimed first; if it is already recorded (a redelivery, or
    /// a second copy earlier in this batch), nothing changes; if its request
    /// fingerprint is recorded under another order id (a retry that got
    /// another order id), it is recorded as that order's duplicate and
    /// nothing else changes. Then each line
    /// takes its stock, guarded so stock never goes below zero. If a line
    /// cannot be served, the lines already taken are given back and the
    /// order is recorded as rejected with the reason, in the same
    /// transaction: the other orders of the batch are unaffected.
    ///
    /// See the module docs for the lock order and the retries.
    pub async fn apply_batch(
        &self,
        orders: &[(&CheckoutProcessed, &Span)],
    ) -> Result<Vec<Outcome>, StoreError> {
        let sequence = self.lock_sequence(orders);
        let mut retries = 0;
        let result = loop {
            let error = match self.attempt(orders, &sequence).await {
                Err(StoreError::Database(error)) => error,
                other => break other,
            };
            let Some(sqlstate) = retryable(&error) else {
                break Err(error.into());
            };
            if retries + 1 >= MAX_ATTEMPTS {
                break Err(error.into());
            }
            retries += 1;
            let parent = orders
                .first()
                .map_or_else(Span::none, |(_, span)| (*span).clone());
            warn!(
                parent: &parent,
                sqlstate,
                retry = retries,
                orders = orders.len(),
                %error,
                "the database aborted the batch's transaction; running it again"
            );
            tokio::time::sleep(retry_pause(retries)).await;
        };
        // Once, with the final count: setting an attribute again would add
        // a second value rather than replace the first.
        if retries > 0 {
            for (_, span) in orders {
                span.set_attribute(RETRIES_ATTRIBUTE, i64::from(retries));
            }
        }
        result
    }

    /// The order in which the batch's orders claim their ids: ascending
    /// request fingerprint (none first), then order id on PostgreSQL (the
    /// lock order), delivery order on SQLite.
    fn lock_sequence(&self, orders: &[(&CheckoutProcessed, &Span)]) -> Vec<usize> {
        let mut sequence: Vec<usize> = (0..orders.len()).collect();
        if self.system == DatabaseSystem::Postgresql {
            sequence.sort_by_key(|&i| {
                let order = orders[i].0;
                (order.request_fingerprint.as_deref(), order.order_id)
            });
        }
        sequence
    }

    /// One run of the batch's transaction: committed if every statement
    /// succeeded, rolled back otherwise.
    async fn attempt(
        &self,
        orders: &[(&CheckoutProcessed, &Span)],
        sequence: &[usize],
    ) -> Result<Vec<Outcome>, StoreError> {
        let mut tx = self.pool.begin().await?;
        match self.decide(&mut tx, orders, sequence).await {
            Ok(outcomes) => {
                tx.commit().await?;
                Ok(outcomes)
            }
            Err(error) => {
                // At once rather than when the connection is next used, so
                // the connection goes back to the pool clean. A failed
                // rollback means a broken connection, which the pool drops.
                if let Err(rollback) = tx.rollback().await {
                    debug!(error = %rollback, "rolling back a failed batch failed");
                }
                Err(error)
            }
        }
    }

    /// The statements of one attempt, in the lock order of the module docs.
    async fn decide(
        &self,
        conn: &mut AnyConnection,
        orders: &[(&CheckoutProcessed, &Span)],
        sequence: &[usize],
    ) -> Result<Vec<Outcome>, StoreError> {
        let mut outcomes = vec![Outcome::Duplicate; orders.len()];
        let mut new = Vec::with_capacity(orders.len());
        for &i in sequence {
            let (order, span) = orders[i];
            match self.claim(conn, order).instrument(span.clone()).await? {
                Claim::New => new.push(i),
                Claim::Known => {}
                Claim::DuplicateOf(original) => {
                    outcomes[i] = Outcome::DuplicateOf { order_id: original };
                }
            }
        }
        if self.system == DatabaseSystem::Postgresql
            && new.len() > 1
            && let Some(&first) = new.first()
        {
            let items: BTreeSet<i64> = new
                .iter()
                .flat_map(|&i| orders[i].0.items.iter().map(|line| i64::from(line.id)))
                .collect();
            // A statement of the whole batch, traced under its first new
            // order (a span has one parent).
            self.lock_stock(conn, &items)
                .instrument(orders[first].1.clone())
                .await?;
        }
        for &i in &new {
            let (order, span) = orders[i];
            outcomes[i] = self.take(conn, order).instrument(span.clone()).await?;
        }
        Ok(outcomes)
    }

    /// Takes the stock of every line of a newly claimed order, or rejects
    /// it (see [`Store::apply_batch`]).
    async fn take(
        &self,
        conn: &mut AnyConnection,
        order: &CheckoutProcessed,
    ) -> Result<Outcome, StoreError> {
        // Lines in item order: the lock order of the module docs.
        let mut lines: Vec<&OrderLine> = order.items.iter().collect();
        lines.sort_by_key(|line| line.id);
        for (taken, line) in lines.iter().enumerate() {
            if self.take_stock(conn, line).await? {
                continue;
            }
            let reason = match self.available(conn, line.id.into()).await? {
                None => format!("unknown item {}", line.id),
                Some(available) => format!(
                    "insufficient stock for item {}: {} requested, {available} available",
                    line.id, line.quantity
                ),
            };
            for line in &lines[..taken] {
                self.return_stock(conn, line).await?;
            }
            self.reject(conn, order, &reason).await?;
            return Ok(Outcome::Rejected { reason });
        }
        Ok(Outcome::Applied)
    }

    /// Claims the order: inserts its `processed_orders` row (as applied)
    /// unless its order id or its request fingerprint is recorded. When the
    /// fingerprint is, under another order id, this order id is recorded as
    /// a duplicate of that one.
    ///
    /// On PostgreSQL a claim that collides with another transaction's
    /// uncommitted row waits for it to end; the `SELECT` that follows, a
    /// new statement under READ COMMITTED, then sees the row committed.
    async fn claim(
        &self,
        conn: &mut AnyConnection,
        order: &CheckoutProcessed,
    ) -> Result<Claim, StoreError> {
        let items = order_lines(order)?;
        let inserted = sqlx::query(RECORD_ORDER.sql)
            .bind(order.order_id.to_string())
            .bind(OrderStatus::Applied.as_str())
            .bind(None::<String>)
            .bind(order.total_amount)
            .bind(items.clone())
            .bind(now_ms())
            .bind(order.request_fingerprint.clone())
            .execute(&mut *conn)
            .traced(&self.db, RECORD_ORDER)
            .await?
            .rows_affected();
        if inserted == 1 {
            return Ok(Claim::New);
        }
        let Some(fingerprint) = &order.request_fingerprint else {
            return Ok(Claim::Known);
        };
        let recorded: Option<String> = sqlx::query_scalar(SELECT_FINGERPRINT.sql)
            .bind(fingerprint.clone())
            .fetch_optional(&mut *conn)
            .traced(&self.db, SELECT_FINGERPRINT)
            .await?;
        let original = match recorded.map(|id| id.parse::<uuid::Uuid>()) {
            // Not found: the order id was known (and the row holding the
            // fingerprint, if any, purged since). The same id: a redelivery.
            None => return Ok(Claim::Known),
            Some(Ok(id)) if id == order.order_id => return Ok(Claim::Known),
            Some(Ok(id)) => id,
            Some(Err(e)) => {
                return Err(StoreError::Corrupt(format!(
                    "order id of a fingerprint: {e}"
                )));
            }
        };
        let reason = format!(
            "duplicate of order {original}: the same Idempotency-Key, applied under that order id"
        );
        sqlx::query(RECORD_DUPLICATE.sql)
            .bind(order.order_id.to_string())
            .bind(OrderStatus::Rejected.as_str())
            .bind(reason)
            .bind(order.total_amount)
            .bind(items)
            .bind(now_ms())
            .bind(original.to_string())
            .execute(conn)
            .traced(&self.db, RECORD_DUPLICATE)
            .await?;
        Ok(Claim::DuplicateOf(original))
    }

    /// Locks the `stock` rows of `items` in ascending item order.
    async fn lock_stock(
        &self,
        conn: &mut AnyConnection,
        items: &BTreeSet<i64>,
    ) -> Result<(), StoreError> {
        let ids: Vec<String> = items.iter().map(i64::to_string).collect();
        sqlx::query(LOCK_STOCK.sql)
            .bind(ids.join(","))
            .execute(conn)
            .traced(&self.db, LOCK_STOCK)
            .await?;
        Ok(())
    }

    /// Decrements one line's item if enough is on hand. Returns whether it
    /// did; the `available >= $1` guard means stock never goes below zero,
    /// even with concurrent writers.
    async fn take_stock(
        &self,
        conn: &mut AnyConnection,
        line: &OrderLine,
    ) -> Result<bool, StoreError> {
        let updated = sqlx::query(TAKE_STOCK.sql)
            .bind(i64::from(line.quantity))
            .bind(i64::from(line.id))
            .execute(conn)
            .traced(&self.db, TAKE_STOCK)
            .await?
            .rows_affected();
        Ok(updated == 1)
    }

    async fn return_stock(
        &self,
        conn: &mut AnyConnection,
        line: &OrderLine,
    ) -> Result<(), StoreError> {
        sqlx::query(RETURN_STOCK.sql)
            .bind(i64::from(line.quantity))
            .bind(i64::from(line.id))
            .execute(conn)
            .traced(&self.db, RETURN_STOCK)
            .await?;
        Ok(())
    }

    async fn reject(
        &self,
        conn: &mut AnyConnection,
        order: &CheckoutProcessed,
        reason: &str,
    ) -> Result<(), StoreError> {
        sqlx::query(REJECT_ORDER.sql)
            .bind(order.order_id.to_string())
            .bind(OrderStatus::Rejected.as_str())
            .bind(reason)
            .execute(conn)
            .traced(&self.db, REJECT_ORDER)
            .await?;
        Ok(())
    }
}

/// What claiming an order found.
enum Claim {
    /// Neither its order id nor its fingerprint was recorded: it is ours to
    /// apply.
    New,
    /// Its order id was recorded: a redelivery; nothing to do.
    Known,
    /// Its fingerprint was recorded under this other order id: a retry of
    /// the same checkout, now recorded as its duplicate.
    DuplicateOf(uuid::Uuid),
}

/// The order lines as stored (JSON).
fn order_lines(order: &CheckoutProcessed) -> Result<String, StoreError> {
    serde_json::to_string(&order.items)
        .map_err(|e| StoreError::Corrupt(format!("cannot encode order lines: {e}")))
}

/// The SQLSTATE of `error` if the database says the transaction is worth
/// running again.
fn retryable(error: &sqlx::Error) -> Option<&'static str> {
    let code = error.as_database_error()?.code()?;
    RETRYABLE_SQLSTATES
        .into_iter()
        .find(|retryable| *retryable == code)
}

/// The pause before retry number `retry` (1, 2, …): drawn between half and
/// all of [`FIRST_RETRY_PAUSE`] doubled `retry - 1` times.
fn retry_pause(retry: u32) -> Duration {
    let ceiling = FIRST_RETRY_PAUSE.saturating_mul(1 << retry.saturating_sub(1).min(8));
    ceiling.mul_f64(rand::random_range(0.5..=1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_pauses_grow_and_stay_jittered_within_bounds() {
        for retry in 1..MAX_ATTEMPTS {
            let ceiling = FIRST_RETRY_PAUSE * 2_u32.pow(retry - 1);
            for _ in 0..100 {
                let pause = retry_pause(retry);
                assert!(
                    pause >= ceiling / 2 && pause <= ceiling,
                    "{retry}: {pause:?}"
                );
            }
        }
    }
}
