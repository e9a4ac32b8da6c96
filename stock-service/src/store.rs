//! The stock database: stock levels, and the orders already decided on.
//!
//! Exactly-once is built here, not in the broker. RabbitMQ delivers at least
//! once (a message whose ack is lost comes back), so [`Store::apply`] records
//! the order id in `processed_orders` in the same transaction that decrements
//! stock: a second delivery of the same order finds the row and changes
//! nothing. The consumer acknowledges only after that transaction committed.
//!
//! The code runs unchanged on SQLite (the default) and PostgreSQL through
//! sqlx's [`AnyPool`]; every statement uses `$1, $2…` placeholders, which
//! both drivers accept, and the migrations use DDL both understand. Every
//! integer column is `BIGINT` and bound and read as `i64`: PostgreSQL
//! enforces column widths (an `INTEGER` column there is 32-bit and refuses
//! amounts SQLite would store), while SQLite's are always 64-bit. The
//! integration tests run against both.
//!
//! PostgreSQL specifics:
//! - Row locks: each stock `UPDATE` locks its row until commit, so
//!   [`Store::apply`] takes an order's lines in item-id order; two orders
//!   sharing items then wait for each other instead of deadlocking.
//! - A second delivery of an order being applied concurrently waits on the
//!   first one's uncommitted `processed_orders` row, then finds it
//!   (`ON CONFLICT DO NOTHING` affects no row): still exactly once.
//! - No connection settings: the SQLite ones below are not sent to it.
//!
//! SQLite specifics, set when connecting:
//! - WAL journal mode, so the HTTP API's reads never wait for the consumer's
//!   write transaction (and vice versa). It is a property of the database
//!   file, so it is set once, before the pool opens a second connection.
//! - `synchronous = NORMAL`: with WAL a commit is then one `write()` instead
//!   of an `fsync` per transaction; a power cut can lose the last commits but
//!   never corrupts the file. A lost commit is not a lost order: its message
//!   was not acknowledged yet, so the broker redelivers it.
//! - Writers do not fail with "database is locked": the consumer applies
//!   deliveries one batch at a time, so there is a single writer per process, and
//!   a 5 s `busy_timeout` makes any other writer (a second replica, a manual
//!   `sqlite3` session) wait for the lock instead of failing.
//!
//! Each statement gets a CLIENT span following the OpenTelemetry database
//! conventions, a child of the consumer span that runs it.

use std::{
    str::FromStr,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use contracts::amqp::{CheckoutProcessed, OrderLine};
use sqlx::{
    AnyConnection, AnyPool, Executor, Row,
    any::{AnyPoolOptions, AnyRow},
    migrate::Migrator,
    postgres::PgConnectOptions,
    sqlite::SqliteConnectOptions,
};
use telemetry::spans::db::{self, Statement};
use tracing::{Instrument, Span};
use uuid::Uuid;

use crate::{
    configuration::{InitialStock, parse_database_url},
    domain::{OrderRecord, OrderStatus, Outcome},
};

/// The schema, embedded at compile time from `migrations/`.
static MIGRATOR: Migrator = sqlx::migrate!();

/// A database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `DATABASE_URL` names no database this service supports.
    #[error("invalid database URL: {0}")]
    InvalidUrl(String),
    /// The database refused or failed a statement (or is unreachable). The
    /// consumer treats this as transient and retries the delivery.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A stored row does not have the shape this code writes.
    #[error("stored order is unreadable: {0}")]
    Corrupt(String),
}

/// Which database is behind the pool, as named by the OpenTelemetry
/// conventions (`db.system.name`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DatabaseSystem {
    /// A SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgresql,
}

impl DatabaseSystem {
    /// `sqlite` or `postgresql`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgresql => "postgresql",
        }
    }
}

/// A handle to the stock database. Cheap to clone: clones share one pool.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    system: DatabaseSystem,
    /// `db.namespace`: the SQLite file name or the PostgreSQL database name.
    namespace: Arc<str>,
}

const RECORD_ORDER: Statement = Statement {
    operation: "INSERT",
    table: "processed_orders",
    sql: "INSERT INTO processed_orders \
          (order_id, status, reason, total_amount, items, processed_at) \
          VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (order_id) DO NOTHING",
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
const SELECT_STOCK: Statement = Statement {
    operation: "SELECT",
    table: "stock",
    sql: "SELECT available FROM stock WHERE item_id = $1",
};
const SEED_STOCK: Statement = Statement {
    operation: "INSERT",
    table: "stock",
    sql: "INSERT INTO stock (item_id, available) VALUES ($1, $2) ON CONFLICT (item_id) DO NOTHING",
};
const SELECT_ORDER: Statement = Statement {
    operation: "SELECT",
    table: "processed_orders",
    sql: "SELECT status, reason, total_amount, items, processed_at \
          FROM processed_orders WHERE order_id = $1",
};

impl Store {
    /// Opens a pool on `database_url` (see
    /// [`parse_database_url`] for the accepted forms). Does not touch the
    /// schema: call [`Store::migrate`] next.
    pub async fn connect(database_url: &str) -> Result<Self, StoreError> {
        // `AnyPool` finds the driver by URL scheme among the installed ones;
        // installing is idempotent (guarded by a `Once` in sqlx).
        sqlx::any::install_default_drivers();
        let url = parse_database_url(database_url).map_err(StoreError::InvalidUrl)?;
        let (system, namespace) = describe(&url)?;
        let sqlite = system == DatabaseSystem::Sqlite;
        let pool = AnyPoolOptions::new()
            // SQLite has one writer anyway; the extra connections serve the
            // HTTP API's reads alongside it.
            .max_connections(if sqlite { 4 } else { 10 })
            .acquire_timeout(Duration::from_secs(5))
            // No ping before each use: with SQLite that is one more round
            // trip to the worker thread per transaction, and a broken
            // connection surfaces anyway as a failed statement, which the
            // consumer already treats as transient (requeue and retry).
            .test_before_acquire(false)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    // Per-connection settings; see the module docs. PRAGMAs
                    // are SQLite-only: PostgreSQL rejects them as syntax
                    // errors, which would fail every connection.
                    if sqlite {
                        conn.execute("PRAGMA synchronous = NORMAL").await?;
                        conn.execute("PRAGMA busy_timeout = 5000").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        if sqlite {
            // Persistent in the file; set while the pool holds its only
            // connection, because switching needs an exclusive lock that
            // `busy_timeout` does not wait for.
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        Ok(Self {
            pool,
            system,
            namespace: namespace.into(),
        })
    }

    /// Creates or upgrades the schema (idempotent).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// Inserts the items of `initial` that the database does not have yet;
    /// existing stock levels are never overwritten. Returns how many were
    /// inserted.
    pub async fn seed(&self, initial: &InitialStock) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let mut inserted = 0;
        for (&item_id, &units) in &initial.0 {
            inserted += sqlx::query(SEED_STOCK.sql)
                .bind(item_id)
                .bind(units)
                .execute(&mut *tx)
                .instrument(self.span(&SEED_STOCK))
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// Applies one order in its own transaction (see [`Batch::apply`]).
    pub async fn apply(&self, order: &CheckoutProcessed) -> Result<Outcome, StoreError> {
        let mut batch = self.begin_batch().await?;
        let outcome = batch.apply(order).await?;
        batch.commit().await?;
        Ok(outcome)
    }

    /// Opens a transaction that applies several orders and commits them
    /// together: one commit (one WAL write) for many orders is what lets the
    /// consumer keep up under load. Nothing is visible, and nothing may be
    /// acknowledged, before [`Batch::commit`].
    pub async fn begin_batch(&self) -> Result<Batch<'_>, StoreError> {
        Ok(Batch {
            store: self,
            tx: self.pool.begin().await?,
        })
    }

    /// How many orders the consumer may apply in one transaction. SQLite has
    /// a single writer, so batching only saves work. PostgreSQL locks rows:
    /// two replicas whose batches take items in different orders could
    /// deadlock, so there each order commits on its own.
    pub fn max_batch(&self) -> usize {
        match self.system {
            DatabaseSystem::Sqlite => 64,
            _ => 1,
        }
    }

    /// Units of `item_id` on hand, or `None` for an unknown item.
    pub async fn stock_level(&self, item_id: i64) -> Result<Option<i64>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        self.available(&mut conn, item_id).await
    }

    /// What was decided for `order_id`, or `None` if it was never processed.
    pub async fn order_status(&self, order_id: Uuid) -> Result<Option<OrderRecord>, StoreError> {
        let row = sqlx::query(SELECT_ORDER.sql)
            .bind(order_id.to_string())
            .fetch_optional(&self.pool)
            .instrument(self.span(&SELECT_ORDER))
            .await?;
        row.map(|row| order_record(order_id, &row)).transpose()
    }

    /// Checks that the database answers (for the readiness probe; not traced,
    /// so probes do not flood the trace backend).
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.pool.execute("SELECT 1").await?;
        Ok(())
    }

    /// Waits for checked-out connections to return and closes the pool. Every
    /// clone of this store is closed too.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Inserts the `processed_orders` row unless the order id is known.
    /// Returns whether it was inserted.
    async fn record(
        &self,
        conn: &mut AnyConnection,
        order: &CheckoutProcessed,
        status: OrderStatus,
        reason: Option<&str>,
    ) -> Result<bool, StoreError> {
        let items = serde_json::to_string(&order.items)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode order lines: {e}")))?;
        let inserted = sqlx::query(RECORD_ORDER.sql)
            .bind(order.order_id.to_string())
            .bind(status.as_str())
            .bind(reason)
            .bind(order.total_amount)
            .bind(items)
            .bind(now_ms())
            .execute(conn)
            .instrument(self.span(&RECORD_ORDER))
            .await?
            .rows_affected();
        Ok(inserted == 1)
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
            .instrument(self.span(&TAKE_STOCK))
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
            .instrument(self.span(&RETURN_STOCK))
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
            .instrument(self.span(&REJECT_ORDER))
            .await?;
        Ok(())
    }

    async fn available(
        &self,
        conn: &mut AnyConnection,
        item_id: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(SELECT_STOCK.sql)
            .bind(item_id)
            .fetch_optional(conn)
            .instrument(self.span(&SELECT_STOCK))
            .await?;
        Ok(row.map(|row| row.try_get("available")).transpose()?)
    }

    /// The CLIENT span of one statement ([`db::client`]). It has no
    /// `tracing` parent because sqlx's SQLite driver runs statements on a
    /// worker thread that holds a clone of the current span and may drop it
    /// last, on that thread (see [`db::client`]).
    fn span(&self, statement: &Statement) -> Span {
        db::client(self.system.as_str(), &self.namespace, *statement)
    }
}

fn order_record(order_id: Uuid, row: &AnyRow) -> Result<OrderRecord, StoreError> {
    let status: String = row.try_get("status")?;
    let items: String = row.try_get("items")?;
    Ok(OrderRecord {
        order_id,
        status: status.parse().map_err(StoreError::Corrupt)?,
        reason: row.try_get("reason")?,
        total_amount: row.try_get("total_amount")?,
        items: serde_json::from_str(&items)
            .map_err(|e| StoreError::Corrupt(format!("order lines of {order_id}: {e}")))?,
        processed_at_ms: row.try_get("processed_at")?,
    })
}

/// The database system and `db.namespace` of a (normalized) URL: the file
/// name for SQLite, the database name for PostgreSQL. Parsed by the
/// drivers' own option parsers, so the name is the one they connect to
/// (percent-decoded; PostgreSQL's `?dbname=`, and the user name when the
/// URL names no database, which is the server's default).
fn describe(url: &str) -> Result<(DatabaseSystem, String), StoreError> {
    if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url).map_err(invalid_url)?;
        let path = options.get_filename();
        let name = path.file_name().unwrap_or(path.as_os_str());
        return Ok((DatabaseSystem::Sqlite, name.to_string_lossy().into_owned()));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let options = PgConnectOptions::from_str(url).map_err(invalid_url)?;
        let database = options.get_database().unwrap_or(options.get_username());
        return Ok((DatabaseSystem::Postgresql, database.to_owned()));
    }
    Err(StoreError::InvalidUrl(
        "expected sqlite://… or postgres://…".to_owned(),
    ))
}

fn invalid_url(error: sqlx::Error) -> StoreError {
    StoreError::InvalidUrl(error.to_string())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
}

/// Orders being applied in one transaction; see [`Store::begin_batch`].
pub struct Batch<'a> {
    store: &'a Store,
    tx: sqlx::Transaction<'static, sqlx::Any>,
}

impl Batch<'_> {
    /// Applies `order` inside the batch's transaction.
    ///
    /// The order id is claimed first: if it is already recorded (a
    /// redelivery, or a second copy earlier in this batch), nothing changes.
    /// Then each line takes its stock, guarded so stock never goes below
    /// zero. If a line cannot be served, the lines already taken are given
    /// back and the order is recorded as rejected with the reason, all in the
    /// same transaction: the other orders of the batch are unaffected.
    pub async fn apply(&mut self, order: &CheckoutProcessed) -> Result<Outcome, StoreError> {
        let store = self.store;
        let conn = &mut *self.tx;
        if !store
            .record(conn, order, OrderStatus::Applied, None)
            .await?
        {
            return Ok(Outcome::Duplicate);
        }
        // Lines in item order: on PostgreSQL each UPDATE row-locks its item
        // until commit, so two orders taking items 1 and 2 in opposite
        // orders would deadlock (the server aborts one with 40P01). A common
        // order makes them queue instead. (SQLite locks the whole database
        // for the writer, so the order does not matter there.)
        let mut lines: Vec<&OrderLine> = order.items.iter().collect();
        lines.sort_by_key(|line| line.id);
        for (taken, line) in lines.iter().enumerate() {
            if store.take_stock(conn, line).await? {
                continue;
            }
            let reason = match store.available(conn, line.id.into()).await? {
                None => format!("unknown item {}", line.id),
                Some(available) => format!(
                    "insufficient stock for item {}: {} requested, {available} available",
                    line.id, line.quantity
                ),
            };
            for line in &lines[..taken] {
                store.return_stock(conn, line).await?;
            }
            store.reject(conn, order, &reason).await?;
            return Ok(Outcome::Rejected { reason });
        }
        Ok(Outcome::Applied)
    }

    /// Makes every order of the batch durable at once.
    pub async fn commit(self) -> Result<(), StoreError> {
        self.tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(url: &str) -> (DatabaseSystem, String) {
        describe(url).unwrap_or_else(|e| panic!("{url}: {e}"))
    }

    #[test]
    fn namespaces_are_the_file_or_database_name() {
        let sqlite = |name: &str| (DatabaseSystem::Sqlite, name.to_owned());
        let postgres = |name: &str| (DatabaseSystem::Postgresql, name.to_owned());
        assert_eq!(
            described("sqlite:///tmp/x/stock.db?mode=rwc"),
            sqlite("stock.db")
        );
        assert_eq!(described("sqlite://stock.db"), sqlite("stock.db"));
        assert_eq!(
            described("sqlite:///tmp/a%3Fb.db?mode=rwc"),
            sqlite("a?b.db")
        );
        assert_eq!(
            described("postgres://u:p@db:5432/stock?sslmode=disable"),
            postgres("stock")
        );
        assert_eq!(described("postgresql://u@db/stock"), postgres("stock"));
        assert_eq!(
            described("postgres://u:p%2Fq@db/my%20db"),
            postgres("my db")
        );
        assert_eq!(
            described("postgres://u@%2Fvar%2Frun%2Fpostgresql/stock"),
            postgres("stock")
        );
        assert_eq!(described("postgres://u@db?dbname=stock"), postgres("stock"));
        // No database named: the server's default, the user name.
        assert_eq!(
            described("postgres://stocker:p@db:5432"),
            postgres("stocker")
        );
        assert!(describe("mysql://db/stock").is_err());
    }
}
