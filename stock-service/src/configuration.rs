//! stock-service's settings: each written once, with its environment
//! variable, default and meaning; `stock-service --help` lists them all.
//!
//! `Settings::load()` ([`Configuration::load`]) is the only place that reads
//! flags and the environment; everything else receives a [`Settings`] value,
//! so tests build one from `Settings::defaults()` with their own queue,
//! database and port 0.

use std::{collections::BTreeMap, fmt, net::SocketAddr, str::FromStr, time::Duration};

use amqp::{AmqpSettings, topology::QuorumSize};
use clap::{Args, Parser};
use contracts::amqp::{DEFAULT_QUEUE, dead_letter_exchange, dead_letter_queue};
use service::{
    configuration::{Configuration, parse_listen_addr},
    faults::FaultArgs,
    http::HttpLimits,
    secret::secret_url_parser,
};
use telemetry::TelemetryArgs;

/// Everything stock-service needs to start.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "stock-service",
    version,
    about = "Consumes checkout.processed from RabbitMQ and applies each order to the stock exactly once; serves stock and order status over HTTP."
)]
pub struct Settings {
    /// Where the stock/order API and the health checks listen (port 0 picks a free port).
    #[arg(long, env = "HTTP_ADDRESS", default_value = "0.0.0.0:8082", value_parser = parse_listen_addr)]
    pub http_address: SocketAddr,
    /// Bounds on the HTTP listener's connections.
    #[command(flatten)]
    pub http: HttpLimits,
    /// `sqlite://<file>`, `postgres://…`, or a SQLite file path.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite://stock.db?mode=rwc", value_parser = secret_url_parser(parse_database_url))]
    pub database_url: String,
    /// Units of items 1–4 created when the database does not have them, or a list `1=100,2=50`.
    #[arg(long, env = "INITIAL_STOCK", default_value = "1000")]
    pub initial_stock: InitialStock,
    /// Where the fault-injection admin endpoint (`/admin/faults`) listens when `FAULT_ADMIN_TOKEN` is set (loopback by default).
    #[arg(long, env = "ADMIN_ADDRESS", default_value = "127.0.0.1:8084", value_parser = parse_listen_addr)]
    pub admin_address: SocketAddr,
    /// The broker, and the exchange and routing key the queue is bound with.
    #[command(flatten)]
    pub amqp: AmqpSettings,
    /// The queue and how much of it is delivered ahead.
    #[command(flatten)]
    pub queue: QueueSettings,
    /// How long processed orders are remembered, and how often older ones are deleted.
    #[command(flatten)]
    pub retention: RetentionSettings,
    /// Demo fault injection (delays only).
    #[command(flatten)]
    pub faults: FaultArgs,
    /// Telemetry.
    #[command(flatten)]
    pub telemetry: TelemetryArgs,
}

impl Settings {
    /// The dead-letter exchange: `<exchange>.dlx`.
    pub fn dead_letter_exchange(&self) -> String {
        dead_letter_exchange(&self.amqp.exchange)
    }

    /// The dead-letter queue, which is also its routing key: `<queue>.dead`.
    pub fn dead_letter_queue(&self) -> String {
        dead_letter_queue(&self.queue.name)
    }
}

/// The queue stock-service consumes.
#[derive(Clone, Debug, Args)]
pub struct QueueSettings {
    /// This service's queue (also the consumer group name).
    #[arg(long = "amqp-queue", env = "AMQP_QUEUE", default_value = DEFAULT_QUEUE)]
    pub name: String,
    /// Unacknowledged deliveries the broker may push ahead (twice the largest batch, so the next batch arrives while one is applied).
    ///
    /// At 32 the window was full during every transaction, the consumer
    /// waited for the broker after each ack, and under load orders queued up
    /// (docs/benchmark-history.md).
    #[arg(long = "amqp-prefetch", env = "AMQP_PREFETCH", default_value = "128",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,
    /// Nodes each new queue (the work queue and its dead-letter queue) is replicated on (every node if the cluster has fewer), or `none` for RabbitMQ's default; fixed when a queue is created, so it must match what an existing queue was declared with (`none` for queues created before this setting).
    ///
    /// A setting of the consumer's queue, beside `AMQP_QUEUE`: only
    /// stock-service declares queues (checkout-service declares the exchange
    /// alone), so only its `--help` lists it.
    #[arg(long = "amqp-quorum-size", env = "AMQP_QUORUM_SIZE", default_value = "3",
          value_parser = QuorumSize::parse)]
    pub quorum_size: QuorumSize,
}

/// How long the ids of processed orders are kept (see [`crate::retention`]).
#[derive(Clone, Debug, Args)]
pub struct RetentionSettings {
    /// How long a processed order is remembered, e.g. `7d`, `36h` (at least `1d`): a redelivery or an `Idempotency-Key` retry of an order is applied only once while it is remembered, so keep this well above checkout-service's 24 h idempotency window and the longest a message may wait in the queue; older orders are deleted and their status is no longer served.
    #[arg(long = "processed-orders-retention", env = "PROCESSED_ORDERS_RETENTION",
          default_value = "7d", value_parser = parse_retention)]
    pub retention: Duration,
    /// How often processed orders older than `PROCESSED_ORDERS_RETENTION` are deleted, e.g. `10m`, `1h` (from `1s` to `1d`; also once at start).
    #[arg(long = "processed-orders-purge-interval", env = "PROCESSED_ORDERS_PURGE_INTERVAL",
          default_value = "10m", value_parser = parse_purge_interval)]
    pub purge_interval: Duration,
}

/// The shortest `PROCESSED_ORDERS_RETENTION`: checkout-service's
/// idempotency window. Less would forget orders its clients are still told
/// they may retry.
pub const MIN_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// Parses `PROCESSED_ORDERS_RETENTION`: a duration of at least a day.
pub fn parse_retention(raw: &str) -> Result<Duration, String> {
    let retention = parse_duration(raw)?;
    if retention < MIN_RETENTION {
        return Err(format!(
            "{raw:?} is shorter than 1d: exactly-once needs orders remembered at least \
             as long as checkout-service's 24 h idempotency window"
        ));
    }
    Ok(retention)
}

/// Parses `PROCESSED_ORDERS_PURGE_INTERVAL`: from a second to a day.
pub fn parse_purge_interval(raw: &str) -> Result<Duration, String> {
    let interval = parse_duration(raw)?;
    if !(Duration::from_secs(1)..=MIN_RETENTION).contains(&interval) {
        return Err(format!("{raw:?} is not between 1s and 1d"));
    }
    Ok(interval)
}

/// A duration such as `7d`, `36h`, `90m` or `1h 30m` (humantime's format).
fn parse_duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw.trim())
        .map_err(|error| format!("{raw:?} is not a duration ({error}; e.g. 7d, 36h, 90m)"))
}

/// Units of each catalog item to create when the database does not have it.
///
/// Parsed from either a single number `N` (items 1 to 4 get `N` each, the
/// demo catalog) or a list `1=100,2=50,7=3`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InitialStock(pub BTreeMap<i64, i64>);

impl InitialStock {
    /// The demo catalog (items 1 to 4) with `units` of each.
    pub fn uniform(units: i64) -> Self {
        Self((1..=4).map(|item| (item, units)).collect())
    }
}

impl Default for InitialStock {
    /// `INITIAL_STOCK`'s default.
    fn default() -> Self {
        Settings::defaults().initial_stock
    }
}

impl FromStr for InitialStock {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let units = |raw: &str| match raw.trim().parse::<i64>() {
            Ok(n) if n >= 0 => Ok(n),
            _ => Err(format!(
                "{raw:?} is not a whole number of units (0 or more)"
            )),
        };
        if !raw.contains('=') {
            return units(raw).map(Self::uniform);
        }
        let mut items = BTreeMap::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (item, count) = entry
                .split_once('=')
                .ok_or_else(|| format!("expected itemId=units, got {entry:?}"))?;
            let item = item
                .trim()
                .parse::<i64>()
                .map_err(|_| format!("{item:?} is not an item id"))?;
            if items.insert(item, units(count)?).is_some() {
                return Err(format!("item {item} is listed twice"));
            }
        }
        Ok(Self(items))
    }
}

impl fmt::Display for InitialStock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries: Vec<String> = self.0.iter().map(|(i, n)| format!("{i}={n}")).collect();
        f.write_str(&entries.join(","))
    }
}

/// Normalizes a database URL: `sqlite:…`, `postgres://…` and
/// `postgresql://…` pass through; anything without a scheme is a SQLite file
/// path, opened read-write and created if missing (`?mode=rwc`).
pub fn parse_database_url(raw: &str) -> Result<String, String> {
    if raw.starts_with("sqlite:")
        || raw.starts_with("postgres://")
        || raw.starts_with("postgresql://")
    {
        return Ok(raw.to_owned());
    }
    if raw.contains("://") {
        return Err("expected sqlite://<file>, postgres://… or a SQLite file path".to_owned());
    }
    // The driver percent-decodes the path, so the characters that would
    // otherwise end it (`?`, `#`) or start an escape (`%`) are escaped.
    let path = raw
        .replace('%', "%25")
        .replace('?', "%3F")
        .replace('#', "%23");
    Ok(format!("sqlite://{path}?mode=rwc"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_stock_is_a_number_or_a_list() {
        assert_eq!(
            "5".parse::<InitialStock>().unwrap(),
            InitialStock(BTreeMap::from([(1, 5), (2, 5), (3, 5), (4, 5)]))
        );
        assert_eq!(
            "1=100, 2=50,7=3".parse::<InitialStock>().unwrap(),
            InitialStock(BTreeMap::from([(1, 100), (2, 50), (7, 3)]))
        );
        for bad in ["-1", "x", "1=2,1=3", "1=", "a=1", "1=2,3"] {
            assert!(
                bad.parse::<InitialStock>().is_err(),
                "{bad} must be rejected"
            );
        }
        let list = "1=100,2=50".parse::<InitialStock>().unwrap();
        assert_eq!(list.to_string().parse::<InitialStock>().unwrap(), list);
    }

    #[test]
    fn retention_and_purge_interval_are_bounded_durations() {
        assert_eq!(
            parse_retention("7d").unwrap(),
            Duration::from_secs(7 * 24 * 3600)
        );
        assert_eq!(
            parse_retention(" 36h ").unwrap(),
            Duration::from_secs(36 * 3600)
        );
        assert_eq!(parse_retention("1d").unwrap(), MIN_RETENTION);
        for bad in ["23h", "90m", "0s", "7", "seven days", ""] {
            assert!(parse_retention(bad).is_err(), "{bad} must be rejected");
        }
        assert_eq!(
            parse_purge_interval("10m").unwrap(),
            Duration::from_secs(600)
        );
        assert_eq!(parse_purge_interval("1s").unwrap(), Duration::from_secs(1));
        for bad in ["0s", "500ms", "2d", "often"] {
            assert!(parse_purge_interval(bad).is_err(), "{bad} must be rejected");
        }
        let defaults = Settings::defaults().retention;
        assert_eq!(defaults.retention, Duration::from_secs(7 * 24 * 3600));
        assert_eq!(defaults.purge_interval, Duration::from_secs(600));
    }

    #[test]
    fn database_urls_and_bare_paths() {
        assert_eq!(
            parse_database_url("stock.db").unwrap(),
            "sqlite://stock.db?mode=rwc"
        );
        assert_eq!(
            parse_database_url("/var/lib/stock?.db").unwrap(),
            "sqlite:///var/lib/stock%3F.db?mode=rwc"
        );
        assert_eq!(
            parse_database_url("postgres://u:p@db/stock").unwrap(),
            "postgres://u:p@db/stock"
        );
        assert!(parse_database_url("mysql://db/stock").is_err());
    }
}
