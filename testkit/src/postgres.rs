//! A PostgreSQL database of one's own, created empty on a server (the tests', which
//! `TEST_POSTGRES_URL` names, or the benchmark's `--postgres-url`) and dropped
//! afterwards however its owner ends: the service using it creates the schema.

use std::str::FromStr;

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{AssertSqlSafe, Connection, PgConnection};

/// The variable naming the server tests create their databases on (`scripts/test`
/// starts one with `scripts/ensure-postgres` and sets it).
pub const TEST_POSTGRES_URL: &str = "TEST_POSTGRES_URL";

/// A fresh database; dropped (with `FORCE`, ending open connections) by
/// [`PostgresDatabase::remove`], or when dropped itself.
#[derive(Debug)]
pub struct PostgresDatabase {
    /// Its URL, with the server's credentials.
    pub url: String,
    /// Its name: `LABEL_<32 hex digits>`.
    pub name: String,
    options: PgConnectOptions,
    dropped: bool,
}

impl PostgresDatabase {
    /// Creates an empty database named after `label` on the server `server_url`
    /// names (a role that may create databases).
    pub async fn create(server_url: &str, label: &str) -> anyhow::Result<Self> {
        let options = PgConnectOptions::from_str(server_url).context("not a PostgreSQL URL")?;
        let name = format!("{label}_{}", uuid::Uuid::new_v4().simple());
        let mut url = url::Url::parse(server_url).context("not a PostgreSQL URL")?;
        url.set_path(&format!("/{name}"));
        let mut admin = PgConnection::connect_with(&options)
            .await
            .context("cannot connect to the PostgreSQL server")?;
        // The name is generated (hex digits), so formatting it in is safe.
        let created = sqlx::raw_sql(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .execute(&mut admin)
            .await;
        let _ = admin.close().await;
        created.with_context(|| format!("cannot create database {name}"))?;
        Ok(Self {
            url: url.to_string(),
            name,
            options,
            dropped: false,
        })
    }

    /// [`create`](Self::create) on the tests' server, [`TEST_POSTGRES_URL`].
    pub async fn for_test(label: &str) -> anyhow::Result<Self> {
        let server = std::env::var(TEST_POSTGRES_URL).with_context(|| {
            format!(
                "{TEST_POSTGRES_URL} is not set: start a server with scripts/ensure-postgres and \
                 export {TEST_POSTGRES_URL}=postgres://checkout_test:checkout_test@127.0.0.1:5432/checkout_test \
                 (scripts/test does both)"
            )
        })?;
        Self::create(&server, label).await
    }

    /// Drops the database.
    pub async fn remove(mut self) -> anyhow::Result<()> {
        self.dropped = true;
        drop_database(&self.options, &self.name).await
    }
}

async fn drop_database(options: &PgConnectOptions, name: &str) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect_with(options).await?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
    )))
    .execute(&mut admin)
    .await
    .with_context(|| format!("cannot drop database {name}"))?;
    let _ = admin.close().await;
    Ok(())
}

impl Drop for PostgresDatabase {
    /// The fallback when [`PostgresDatabase::remove`] did not run (a failed test, an
    /// error, Ctrl-C): drops the database from a thread with a runtime of its own,
    /// since `drop` cannot await. Never panics.
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (options, name) = (self.options.clone(), self.name.clone());
        let dropped = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(drop_database(&options, &name))
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop database {}", self.name);
        }
    }
}
