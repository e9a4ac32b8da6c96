//! A PostgreSQL database of a test's own, on the server `TEST_POSTGRES_URL`
//! names (`scripts/test` starts one with `scripts/ensure-postgres` and sets
//! it), created empty and dropped when the test ends however it ends.

use std::str::FromStr;

use sqlx::{AssertSqlSafe, Connection, PgConnection, postgres::PgConnectOptions};

/// The variable naming the server tests create their databases on.
pub const TEST_POSTGRES_URL: &str = "TEST_POSTGRES_URL";

/// A fresh database; dropped (with `FORCE`, ending open connections) on drop.
pub struct PostgresDatabase {
    /// Its URL, with the server's credentials.
    pub url: String,
    name: String,
    options: PgConnectOptions,
}

impl PostgresDatabase {
    /// Creates an empty database (the service creates the schema).
    pub async fn create() -> Self {
        let server = std::env::var(TEST_POSTGRES_URL).unwrap_or_else(|_| {
            panic!(
                "{TEST_POSTGRES_URL} is not set: start a server with scripts/ensure-postgres and \
                 export {TEST_POSTGRES_URL}=postgres://checkout_test:checkout_test@127.0.0.1:5432/checkout_test \
                 (scripts/test does both)"
            )
        });
        let options = PgConnectOptions::from_str(&server)
            .unwrap_or_else(|e| panic!("{TEST_POSTGRES_URL} is not a PostgreSQL URL: {e}"));
        let name = format!("e2e_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect_with(&options)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {TEST_POSTGRES_URL}: {e}"));
        // The name is generated (hex digits), so formatting it in is safe.
        sqlx::raw_sql(AssertSqlSafe(format!(r#"CREATE DATABASE "{name}""#)))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create database {name}: {e}"));
        let _ = admin.close().await;
        let url = format!(
            "postgres://{}:{}@{}:{}/{name}",
            options.get_username(),
            password_of(&server),
            options.get_host(),
            options.get_port()
        );
        Self { url, name, options }
    }
}

/// The (still percent-encoded) password of a `postgres://` URL.
fn password_of(url: &str) -> &str {
    let authority = url.split('/').nth(2).unwrap_or_default();
    authority
        .rsplit_once('@')
        .and_then(|(credentials, _)| credentials.split_once(':'))
        .map_or("", |(_, password)| password)
}

impl Drop for PostgresDatabase {
    fn drop(&mut self) {
        let (options, name) = (self.options.clone(), self.name.clone());
        // Async clean-up cannot run in `drop`: a thread with its own runtime.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let mut admin = PgConnection::connect_with(&options).await?;
                sqlx::raw_sql(AssertSqlSafe(format!(
                    r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#
                )))
                .execute(&mut admin)
                .await?;
                admin.close().await?;
                Ok::<_, anyhow::Error>(())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop test database {}", self.name);
        }
    }
}
