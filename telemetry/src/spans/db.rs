//! The database CLIENT span of one SQL statement, named
//! `{operation} {table}` with the database conventions' attributes and the
//! parameterized statement (placeholders, never values).

use opentelemetry_semantic_conventions::attribute::{
    DB_COLLECTION_NAME, DB_NAMESPACE, DB_OPERATION_NAME, DB_QUERY_TEXT, DB_SYSTEM_NAME,
};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

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
