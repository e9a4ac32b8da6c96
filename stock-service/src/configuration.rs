//! Settings: what stock-service reads from its environment, with defaults.
//!
//! [`Settings::from_env`] is the only place that touches environment
//! variables; everything else receives a [`Settings`] value, so tests build
//! one directly (usually from [`Settings::default`]) with their own queue,
//! database and port 0. A value that does not parse stops the service at
//! start with a [`ConfigError`] naming the variable, rather than surfacing as
//! a confusing failure later.

use std::{collections::BTreeMap, fmt, net::SocketAddr, str::FromStr};

use utils::{
    config::{ConfigError, env_or, env_parse, env_socket_addr},
    faults::FaultSettings,
    message::{DEFAULT_EXCHANGE, DEFAULT_QUEUE, DEFAULT_ROUTING_KEY},
};

/// Everything stock-service needs to start.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Broker, topology and consumer settings.
    pub amqp: AmqpSettings,
    /// `DATABASE_URL`: `sqlite://…`, `postgres://…`, or a bare SQLite file
    /// path (see [`parse_database_url`]).
    pub database_url: String,
    /// `HTTP_ADDRESS`: where the stock/order API and health checks listen.
    pub http_address: SocketAddr,
    /// `INITIAL_STOCK`: inserted for items the database does not know yet.
    pub initial_stock: InitialStock,
    /// `FAULT_DELAY_MS` / `FAULT_DELAY_RATE`: demo fault injection (off).
    pub faults: FaultSettings,
}

/// Where messages come from and how many may be in flight.
#[derive(Clone, Debug)]
pub struct AmqpSettings {
    /// `AMQP_URL`. Holds the password: log it only through
    /// [`utils::config::redact_url`].
    pub url: String,
    /// `AMQP_EXCHANGE`: the durable topic exchange checkout-service publishes to.
    pub exchange: String,
    /// `AMQP_ROUTING_KEY`: the binding key of the queue.
    pub routing_key: String,
    /// `AMQP_QUEUE`: this service's queue (also the consumer group name).
    pub queue: String,
    /// `AMQP_PREFETCH`: unacknowledged deliveries the broker may push ahead.
    ///
    /// The default, 128, is twice the largest batch (64 on SQLite): while one
    /// batch is being applied and is still unacknowledged, the broker can
    /// already deliver the next one. At 32 the window was full during every
    /// transaction, the consumer waited for the broker after each ack, and
    /// under load orders queued up (BENCHMARKS.md, history).
    pub prefetch: u16,
}

impl AmqpSettings {
    /// The dead-letter exchange: `<exchange>.dlx`.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.exchange)
    }

    /// The dead-letter queue, which is also its routing key: `<queue>.dead`.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}.dead", self.queue)
    }
}

impl Default for AmqpSettings {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@localhost:5672/%2f".to_owned(),
            exchange: DEFAULT_EXCHANGE.to_owned(),
            routing_key: DEFAULT_ROUTING_KEY.to_owned(),
            queue: DEFAULT_QUEUE.to_owned(),
            prefetch: 128,
        }
    }
}

impl Default for Settings {
    /// The documented defaults, as if no variable were set.
    fn default() -> Self {
        Self {
            amqp: AmqpSettings::default(),
            database_url: "sqlite://stock.db?mode=rwc".to_owned(),
            http_address: SocketAddr::from(([0, 0, 0, 0], 8082)),
            initial_stock: InitialStock::default(),
            faults: FaultSettings::default(),
        }
    }
}

impl Settings {
    /// Reads the settings from the environment; unset or empty variables take
    /// the defaults of [`Settings::default`].
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let amqp = AmqpSettings {
            url: env_parse("AMQP_URL", parse_amqp_url)?.unwrap_or(defaults.amqp.url),
            exchange: env_or("AMQP_EXCHANGE", defaults.amqp.exchange)?,
            routing_key: env_or("AMQP_ROUTING_KEY", defaults.amqp.routing_key)?,
            queue: env_or("AMQP_QUEUE", defaults.amqp.queue)?,
            prefetch: env_parse("AMQP_PREFETCH", |raw| match raw.parse::<u16>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err("expected a whole number from 1 to 65535"),
            })?
            .unwrap_or(defaults.amqp.prefetch),
        };
        Ok(Self {
            amqp,
            database_url: env_parse("DATABASE_URL", parse_database_url)?
                .unwrap_or(defaults.database_url),
            http_address: env_socket_addr("HTTP_ADDRESS", "0.0.0.0:8082")?,
            initial_stock: env_or("INITIAL_STOCK", defaults.initial_stock)?,
            faults: FaultSettings::from_env()?,
        })
    }
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
    fn default() -> Self {
        Self::uniform(1000)
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

/// Checks that `raw` is an AMQP URL.
fn parse_amqp_url(raw: &str) -> Result<String, &'static str> {
    if raw.starts_with("amqp://") || raw.starts_with("amqps://") {
        Ok(raw.to_owned())
    } else {
        Err("expected amqp://user:password@host:port/vhost")
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

    #[test]
    fn only_amqp_urls_are_accepted() {
        assert!(parse_amqp_url("amqps://rabbit").is_ok());
        assert!(parse_amqp_url("http://rabbit").is_err());
    }
}
