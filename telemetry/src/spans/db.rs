//! The database CLIENT span of one SQL statement, named
//! `{operation} {table}` with the database conventions' attributes and the
//! parameterized statement (placeholders, never values); and the INTERNAL
//! span of a purge, the background run that deletes a table's old rows
//! with one such statement per chunk.
//!
//! [`Database::run`] runs a statement in its span and records its duration
//! in `db.client.operation.duration` with the span's low-cardinality
//! attributes (`db.system.name`, `db.namespace`, `db.operation.name`,
//! `db.collection.name`, `error.type` on failure): every database span has
//! its measurement from that one function.

use std::{future::Future, time::Instant};

use opentelemetry::{KeyValue, metrics::Histogram};
use opentelemetry_semantic_conventions::attribute::{
    DB_COLLECTION_NAME, DB_NAMESPACE, DB_OPERATION_NAME, DB_QUERY_TEXT, DB_SYSTEM_NAME, ERROR_TYPE,
};
use tracing::{Instrument, Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    metric_names::DB_CLIENT_OPERATION_DURATION,
    metrics::{duration_histogram, meter},
};

/// A [`purge`] span's cutoff: rows decided before it are deleted (Unix
/// milliseconds). The conventions have no name for it.
pub const PURGE_CUTOFF_MS: &str = "stock.purge.cutoff_ms";
/// How many rows a [`purge`] run deleted, over all its chunks.
pub const PURGE_DELETED: &str = "stock.purge.deleted";

/// One SQL statement, as the span describes it.
#[derive(Clone, Copy, Debug)]
pub struct Statement {
    /// `SELECT`, `INSERT`, `UPDATE`…
    pub operation: &'static str,
    /// The table it works on.
    pub table: &'static str,
    /// The statement with placeholders.
    pub sql: &'static str,
}

/// The CLIENT span of `statement` on database `system` (`sqlite`,
/// `postgresql`), in `namespace` (the database or file name), as a child of
/// the current span.
///
/// The span has no `tracing` parent, only an OpenTelemetry one. Closing a
/// span with a `tracing` parent releases the parent through the *thread's*
/// default dispatcher, which on a worker thread is the global one. With one
/// global subscriber (every binary) that is harmless, but where a service
/// runs under a thread-local subscriber (the in-process tests run three
/// services in one process), the parent would never be released and never
/// exported. Without a `tracing` parent there is nothing to release.
pub fn client(system: &'static str, namespace: &str, statement: Statement) -> Span {
    let caller = Span::current().context();
    let span = tracing::info_span!(
        parent: None,
        "db",
        otel.name = %format_args!("{} {}", statement.operation, statement.table),
        otel.kind = "client",
        db.system = system,
        { DB_SYSTEM_NAME } = system,
        { DB_NAMESPACE } = namespace,
        { DB_OPERATION_NAME } = statement.operation,
        { DB_COLLECTION_NAME } = statement.table,
        { DB_QUERY_TEXT } = statement.sql,
    );
    let _ = span.set_parent(caller);
    span
}

/// The INTERNAL span of one purge run, named `purge {table}`: deleting the
/// rows of `table` decided before `cutoff_ms` (Unix milliseconds), each
/// chunk a [`client`] span under it. A background run continues no request,
/// so it is a root: each run is a trace of its own. [`record_purged`] adds
/// how many rows it deleted, [`record_error`](super::record_error) a failure.
pub fn purge(table: &'static str, cutoff_ms: i64) -> Span {
    tracing::info_span!(
        parent: None,
        "purge",
        otel.name = %format_args!("purge {table}"),
        otel.kind = "internal",
        otel.status_code = Empty,
        otel.status_description = Empty,
        { ERROR_TYPE } = Empty,
        { DB_COLLECTION_NAME } = table,
        { PURGE_CUTOFF_MS } = cutoff_ms,
        { PURGE_DELETED } = Empty,
    )
}

/// Records on a [`purge`] span how many rows the run deleted.
pub fn record_purged(span: &Span, deleted: u64) {
    span.record(PURGE_DELETED, deleted);
}

/// One database's statements, each run in its [`client`] span and measured.
/// Build it once, where the service is built (under its dispatcher); clones
/// share the histogram.
#[derive(Clone, Debug)]
pub struct Database {
    system: &'static str,
    namespace: std::sync::Arc<str>,
    duration: Histogram<f64>,
}

impl Database {
    /// Statements on database `system` (`sqlite`, `postgresql`), in
    /// `namespace` (the database or file name).
    pub fn new(system: &'static str, namespace: &str) -> Self {
        Self {
            system,
            namespace: namespace.into(),
            duration: duration_histogram(
                &meter(env!("CARGO_PKG_NAME")),
                DB_CLIENT_OPERATION_DURATION,
                "Duration of database statements",
            ),
        }
    }

    /// The CLIENT span of `statement` (see [`client`]).
    pub fn span(&self, statement: Statement) -> Span {
        client(self.system, &self.namespace, statement)
    }

    /// Runs `operation`, the execution of `statement`, in its span, and
    /// records its duration; a failure's `error.type` is the error's Rust
    /// type name (the conventions' fallback when there is no error code).
    pub async fn run<T, E>(
        &self,
        statement: Statement,
        operation: impl Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        let started = Instant::now();
        let result = operation.instrument(self.span(statement)).await;
        let mut attributes = vec![
            KeyValue::new(DB_SYSTEM_NAME, self.system),
            KeyValue::new(
                DB_NAMESPACE,
                opentelemetry::StringValue::from(self.namespace.clone()),
            ),
            KeyValue::new(DB_OPERATION_NAME, statement.operation),
            KeyValue::new(DB_COLLECTION_NAME, statement.table),
        ];
        if result.is_err() {
            attributes.push(KeyValue::new(ERROR_TYPE, std::any::type_name::<E>()));
        }
        self.duration
            .record(started.elapsed().as_secs_f64(), &attributes);
        result
    }
}

/// `.traced(&database, STATEMENT)` on a statement's future: [`Database::run`]
/// written where the statement is.
pub trait Traced<T, E>: Future<Output = Result<T, E>> + Sized {
    /// Runs this statement's future in its span, measured (see
    /// [`Database::run`]).
    fn traced(
        self,
        database: &Database,
        statement: Statement,
    ) -> impl Future<Output = Result<T, E>> {
        database.run(statement, self)
    }
}

impl<F: Future<Output = Result<T, E>>, T, E> Traced<T, E> for F {}
