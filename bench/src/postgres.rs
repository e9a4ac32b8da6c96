//! PostgreSQL for `--topology cluster`: stock-service's replicas share one database,
//! created empty for each pipeline run on the server `--postgres-url` names (a role
//! that may create databases, as `scripts/ensure-postgres` sets up for the tests) and
//! dropped after the run, however it ends (the test kit's
//! [`PostgresDatabase`]); and the server's processes, so their CPU time is measured
//! like the services'.
//!
//! PostgreSQL serves each connection from a backend process of its own and names it in
//! the process title (`postgres: 15/main: user database 127.0.0.1(port) idle`), so the
//! backends serving the run's database are found by that name ([`server_processes`]);
//! the server's other processes (WAL writer, checkpointer, background writer,
//! autovacuum, other databases' connections) are measured apart. Only a server on this
//! machine can be measured; for another, both figures stay at zero.

use std::str::FromStr;

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use testkit::postgres::PostgresDatabase;

/// The label of the backends serving the run's database.
pub const BACKENDS: &str = "postgres";

/// The label of the server's other processes.
pub const REST: &str = "postgres rest";

/// `--postgres-url`'s parser: a `postgres://` (or `postgresql://`) URL the driver
/// accepts. The error does not quote the URL (it may hold a password).
pub fn parse_postgres_url(raw: &str) -> Result<String, String> {
    if !(raw.starts_with("postgres://") || raw.starts_with("postgresql://")) {
        return Err("expected postgres://user:password@host:port/database".to_owned());
    }
    PgConnectOptions::from_str(raw)
        .map_err(|error| format!("not a PostgreSQL URL the driver accepts: {error}"))?;
    Ok(raw.to_owned())
}

/// The server runs' databases are created on.
#[derive(Debug, Clone)]
pub struct PostgresServer {
    url: String,
    /// `SHOW server_version`.
    pub version: String,
}

impl PostgresServer {
    /// Connects to `url` once, to check that it answers and read its version.
    pub async fn connect(url: &str) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(url).context("--postgres-url")?;
        let mut admin = PgConnection::connect_with(&options).await.context(
            "cannot connect to --postgres-url (is PostgreSQL running? scripts/ensure-postgres)",
        )?;
        let (version,): (String,) = sqlx::query_as("SHOW server_version")
            .fetch_one(&mut admin)
            .await
            .context("SHOW server_version")?;
        let _ = admin.close().await;
        Ok(Self {
            url: url.to_owned(),
            version,
        })
    }

    /// Creates an empty database for one run (stock-service creates the schema),
    /// dropped by [`PostgresDatabase::remove`] or when dropped.
    pub async fn create_database(&self) -> anyhow::Result<PostgresDatabase> {
        PostgresDatabase::create(&self.url, "bench").await
    }
}

/// Every PostgreSQL server process on this machine, labelled [`BACKENDS`] when its
/// process title names `database`, else [`REST`].
pub fn server_processes(database: &str) -> Vec<(String, u32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            if comm.trim() != "postgres" {
                return None;
            }
            let title = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            Some((label_of(&String::from_utf8_lossy(&title), database), pid))
        })
        .collect()
}

/// [`BACKENDS`] if the process title (NUL-separated or not) has `database` as a word.
fn label_of(title: &str, database: &str) -> String {
    let serves = title
        .split(|c: char| c.is_whitespace() || c == '\0')
        .any(|word| word == database);
    if serves { BACKENDS } else { REST }.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_postgres_urls_are_accepted_and_never_quoted() {
        let url = "postgres://checkout_test:s3cret@127.0.0.1:5432/checkout_test";
        assert_eq!(parse_postgres_url(url).as_deref(), Ok(url));
        assert!(parse_postgres_url("postgresql://u@localhost/db").is_ok());
        let error = parse_postgres_url("mysql://u:s3cret@host/db").unwrap_err();
        assert!(!error.contains("s3cret"), "{error}");
        assert!(parse_postgres_url("postgres://u:p@host:notaport/db").is_err());
    }

    #[test]
    fn backends_are_told_apart_by_their_process_title() {
        let db = "bench_0123abcd";
        assert_eq!(
            label_of(
                "postgres: 15/main: checkout_test bench_0123abcd 127.0.0.1(40000) idle",
                db
            ),
            BACKENDS
        );
        assert_eq!(
            label_of(
                "postgres: 15/main: checkout_test bench_0123abcd_other 127.0.0.1(1) idle",
                db
            ),
            REST
        );
        assert_eq!(label_of("postgres: 15/main: walwriter ", db), REST);
        assert_eq!(
            label_of("/usr/lib/postgresql/15/bin/postgres\0-D\0/var/lib\0", db),
            REST
        );
    }
}
