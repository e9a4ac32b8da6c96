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
//! Applying orders ([`Store::apply_batch`], in `store/apply.rs`) is written
//! for several replicas sharing one database: on PostgreSQL every batch
//! transaction takes its locks in one global order, so replicas wait for
//! each other instead of deadlocking, and a transaction the server still
//! aborts as retryable (deadlock, serialization failure) is run again. A
//! second delivery of an order being applied concurrently waits on the
//! first one's uncommitted `processed_orders` row, then finds it
//! (`ON CONFLICT DO NOTHING` affects no row): still exactly once. PostgreSQL
//! gets no connection settings: the SQLite ones below are not sent to it.
//!
//! A retry of one checkout can also arrive under a *second* order id: order
//! ids are derived under checkout-service's key, which may differ between
//! its replicas or across a restart. The message then carries the same
//! request fingerprint (client and idempotency key,
//! [`contracts::amqp::request_fingerprint`]), which `processed_orders`
//! records under a unique index: the claim of an order id fails on the
//! fingerprint as on the id, in the same statement, and the second order id
//! is recorded as a duplicate of the first instead of being applied.
//!
//! `processed_orders` keeps an order for a retention period only
//! (`store/purge.rs`, run by [`crate::retention`]): exactly-once holds for
//! redeliveries and retries that arrive within it.
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
//!   deliveries one batch at a time, and a 5 s `busy_timeout` makes any
//!   other writer (the retention purge, a second replica, a manual `sqlite3`
//!   session) wait for the lock instead of failing.
//!
//! Each statement gets a CLIENT span following the OpenTelemetry database
//! conventions, a child of the consumer span that runs it.

use std::{
    str::FromStr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sqlx::{
    AnyConnection, AnyPool, Executor, Row,
    any::{AnyPoolOptions, AnyRow},
    migrate::Migrator,
    postgres::PgConnectOptions,
    sqlite::SqliteConnectOptions,
};
use telemetry::spans::db::{Database, Statement, Traced as _};
use uuid::Uuid;

use crate::{
    configuration::{InitialStock, parse_database_url},
    domain::{OrderRecord, OrderStatus},
};

mod apply;
mod purge;

pub use apply::{MAX_ATTEMPTS, RETRIES_ATTRIBUTE};
pub use purge::PURGE_CHUNK;

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

/// The largest batch on PostgreSQL. Measured with the ignored test
/// `replicas::throughput_with_one_and_three_replicas` (debug build, a
/// shared and busy two-core machine, so only the gross differences count):
/// one order per commit gave 55–155 orders/s on one replica and 125–235 on
/// three; batches of 16, 32 or 64 gave 190–820 on one and 160–570 on three,
/// varying more with the machine's load than with the size.
/// Half of SQLite's size keeps the time a batch holds its rows' locks, which
/// the other replicas wait out, short, while one commit still serves many
/// orders.
const MAX_BATCH_POSTGRES: usize = 32;

/// The largest batch on SQLite. SQLite has one writer, so no other replica
/// waits on a batch's locks and a batch can be larger than on PostgreSQL:
/// batching there only saves commits (each one a write to the log). The
/// bound keeps one batch's work, and so the wait for its first order's
/// acknowledgement, short; the broker's prefetch (`AMQP_PREFETCH`, 128 by
/// default) is twice it, so the next batch arrives while one is applied.
const MAX_BATCH_SQLITE: usize = 64;

/// The connection pool's size on SQLite: one writer (the consumer), the
/// others serve the HTTP API's reads alongside it; more would only wait
/// for the same write lock.
const POOL_SIZE_SQLITE: u32 = 4;
/// The connection pool's size on PostgreSQL: the consumer's one transaction
/// at a time, the retention purge and the HTTP API's reads, with room for
/// bursts of the latter, while a few replicas stay far below the server's
/// default `max_connections` (100).
const POOL_SIZE_POSTGRES: u32 = 10;

/// A handle to the stock database. Cheap to clone: clones share one pool.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    system: DatabaseSystem,
    /// Runs each statement in its CLIENT span and measures it; its
    /// `db.namespace` is the SQLite file name or the PostgreSQL database name.
    db: Database,
}

const SELECT_STOCK: Statement = Statement {
    operation: "SELECT",
    table: "stock",
    sql: "SELECT available FROM stock WHERE item_id = $1",
};
const SELECT_ALL_STOCK: &str = "SELECT item_id, available FROM stock ORDER BY item_id";
const SEED_STOCK: Statement = Statement {
    operation: "INSERT",
    table: "stock",
    sql: "INSERT INTO stock (item_id, available) VALUES ($1, $2) ON CONFLICT (item_id) DO NOTHING",
};
const SELECT_ORDER: Statement = Statement {
    operation: "SELECT",
    table: "processed_orders",
    sql: "SELECT status, reason, total_amount, items, processed_at, duplicate_of \
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
            .max_connections(if sqlite {
                POOL_SIZE_SQLITE
            } else {
                POOL_SIZE_POSTGRES
            })
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
            db: Database::new(system.as_str(), &namespace),
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
                .traced(&self.db, SEED_STOCK)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(inserted)
    }

    /// How many orders the consumer may apply in one transaction. SQLite has
    /// a single writer, so batching only saves work. On PostgreSQL a batch
    /// holds the row locks of all its items until it commits, so replicas
    /// sharing hot items take turns batch by batch, and a smaller batch
    /// shortens the turns (see `MAX_BATCH_SQLITE` and `MAX_BATCH_POSTGRES`).
    pub fn max_batch(&self) -> usize {
        match self.system {
            DatabaseSystem::Sqlite => MAX_BATCH_SQLITE,
            DatabaseSystem::Postgresql => MAX_BATCH_POSTGRES,
        }
    }

    /// Units of `item_id` on hand, or `None` for an unknown item.
    pub async fn stock_level(&self, item_id: i64) -> Result<Option<i64>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        self.available(&mut conn, item_id).await
    }

    /// Every item's units on hand, in item order (for the stock gauge; not
    /// traced, like [`Store::ping`]: it runs on a timer, not for an order).
    pub async fn stock_levels(&self) -> Result<Vec<(i64, i64)>, StoreError> {
        let rows = sqlx::query(SELECT_ALL_STOCK).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| Ok((row.try_get("item_id")?, row.try_get("available")?)))
            .collect()
    }

    /// What was decided for `order_id`, or `None` if it was never processed.
    pub async fn order_status(&self, order_id: Uuid) -> Result<Option<OrderRecord>, StoreError> {
        let row = sqlx::query(SELECT_ORDER.sql)
            .bind(order_id.to_string())
            .fetch_optional(&self.pool)
            .traced(&self.db, SELECT_ORDER)
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

    async fn available(
        &self,
        conn: &mut AnyConnection,
        item_id: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(SELECT_STOCK.sql)
            .bind(item_id)
            .fetch_optional(conn)
            .traced(&self.db, SELECT_STOCK)
            .await?;
        Ok(row.map(|row| row.try_get("available")).transpose()?)
    }
}

fn order_record(order_id: Uuid, row: &AnyRow) -> Result<OrderRecord, StoreError> {
    let status: String = row.try_get("status")?;
    let items: String = row.try_get("items")?;
    let duplicate_of = row
        .try_get::<Option<String>, _>("duplicate_of")?
        .map(|id| {
            id.parse::<Uuid>()
                .map_err(|e| StoreError::Corrupt(format!("duplicate_of of {order_id}: {e}")))
        })
        .transpose()?;
    let status = match duplicate_of {
        Some(_) => OrderStatus::Duplicate,
        None => status.parse().map_err(StoreError::Corrupt)?,
    };
    Ok(OrderRecord {
        order_id,
        status,
        duplicate_of,
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

/// Now, in milliseconds since the Unix epoch (the unit of `processed_at`).
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX)
        })
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
