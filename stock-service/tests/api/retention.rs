//! The retention of processed orders, on each backend: orders older than the
//! retention are deleted in bounded chunks and newer ones kept (so their
//! redeliveries are still duplicates), and the running service purges on
//! its own.

use std::time::Duration;

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;
use service::configuration::Configuration;
use service::shutdown::CancellationToken;
use sqlx::{AnyConnection, Connection};
use stock_service::{
    Settings,
    configuration::InitialStock,
    domain::Outcome,
    retention::Retention,
    store::{PURGE_CHUNK, Store},
};
use uuid::Uuid;

use crate::helpers::{
    Backend, TestDatabase, eventually, finished_spans, on_each_backend, order, spawn_app_with,
};

on_each_backend!(
    orders_older_than_the_retention_are_purged_in_chunks,
    the_service_purges_old_orders_in_the_background,
);

const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Old rows beyond a few chunks' worth, so the purge has to loop.
const FILLER_ROWS: i64 = 2 * PURGE_CHUNK as i64 + 500;

fn now_ms() -> i64 {
    let elapsed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(elapsed.as_millis()).unwrap()
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// Backdates an order's decision by `days`.
async fn age(db: &mut AnyConnection, order_id: Uuid, days: i64) {
    let updated = sqlx::query("UPDATE processed_orders SET processed_at = $1 WHERE order_id = $2")
        .bind(now_ms() - days * DAY_MS)
        .bind(order_id.to_string())
        .execute(db)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(updated, 1);
}

async fn orders_older_than_the_retention_are_purged_in_chunks(backend: Backend) {
    finished_spans();
    let db = TestDatabase::create(backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    store.seed(&InitialStock::uniform(100)).await.unwrap();
    let mut raw = AnyConnection::connect(&db.normalized_url()).await.unwrap();

    let (forgotten, kept, fresh) = (
        order(&[(1, 1)], 100),
        order(&[(1, 2)], 200),
        order(&[(1, 3)], 300),
    );
    for order in [&forgotten, &kept, &fresh] {
        assert_eq!(store.apply(order).await.unwrap(), Outcome::Applied);
    }
    // The default retention is 7 days: one order past it, one within it.
    age(&mut raw, forgotten.order_id, 8).await;
    age(&mut raw, kept.order_id, 6).await;
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $2) \
         INSERT INTO processed_orders \
         (order_id, status, reason, total_amount, items, processed_at) \
         SELECT 'filler-' || i, 'applied', NULL, 100, '[]', $1 FROM n",
    )
    .bind(now_ms() - 30 * DAY_MS)
    .bind(FILLER_ROWS)
    .execute(&mut raw)
    .await
    .unwrap();

    let retention = Retention::new(store.clone(), Settings::defaults().retention);
    let deleted = retention.purge(&CancellationToken::new()).await.unwrap();
    assert_eq!(deleted, u64::try_from(FILLER_ROWS).unwrap() + 1);

    assert_eq!(store.order_status(forgotten.order_id).await.unwrap(), None);
    assert!(store.order_status(kept.order_id).await.unwrap().is_some());
    assert!(store.order_status(fresh.order_id).await.unwrap().is_some());
    // Kept orders are still known: their redeliveries change nothing.
    assert_eq!(store.apply(&kept).await.unwrap(), Outcome::Duplicate);
    assert_eq!(store.apply(&fresh).await.unwrap(), Outcome::Duplicate);
    assert_eq!(store.stock_level(1).await.unwrap(), Some(94));
    // The bound the retention sets: an order redelivered after it is
    // forgotten is a new order.
    assert_eq!(store.apply(&forgotten).await.unwrap(), Outcome::Applied);
    assert_eq!(store.stock_level(1).await.unwrap(), Some(93));

    // One trace per run: the purge span over one DELETE per chunk.
    let expected_deleted = (FILLER_ROWS + 1).to_string();
    let (purge, chunks) = eventually("the purge's spans to be exported", || async {
        let spans = finished_spans();
        let purge = spans.iter().find(|span| {
            span.name == "purge processed_orders"
                && attribute(span, "stock.purge.deleted").as_deref()
                    == Some(expected_deleted.as_str())
                && spans.iter().any(|child| {
                    child.parent_span_id == span.span_context.span_id()
                        && attribute(child, "db.system.name").as_deref() == Some(backend.system())
                })
        })?;
        let chunks: Vec<SpanData> = spans
            .iter()
            .filter(|span| span.parent_span_id == purge.span_context.span_id())
            .cloned()
            .collect();
        Some((purge.clone(), chunks))
    })
    .await;
    assert_eq!(purge.span_kind, SpanKind::Internal);
    assert_eq!(purge.status, Status::Unset);
    let expected_chunks = usize::try_from(FILLER_ROWS / i64::from(PURGE_CHUNK)).unwrap() + 1;
    assert_eq!(chunks.len(), expected_chunks);
    for chunk in &chunks {
        assert_eq!(chunk.name, "DELETE processed_orders");
        assert_eq!(chunk.span_kind, SpanKind::Client);
        let query = attribute(chunk, "db.query.text").unwrap();
        assert!(query.contains("LIMIT $2"), "{query}");
    }

    // Nothing left to delete.
    let deleted = retention.purge(&CancellationToken::new()).await.unwrap();
    assert_eq!(deleted, 0);
    store.close().await;
}

async fn the_service_purges_old_orders_in_the_background(backend: Backend) {
    let app = spawn_app_with(backend, InitialStock::default(), |settings| {
        settings.retention.purge_interval = Duration::from_secs(1);
    })
    .await;
    let (old, fresh) = (order(&[(1, 1)], 100), order(&[(2, 1)], 100));
    app.publish_order(&old).await;
    app.publish_order(&fresh).await;
    app.wait_for_order(old.order_id).await;
    app.wait_for_order(fresh.order_id).await;

    let mut raw = AnyConnection::connect(&app.db.normalized_url())
        .await
        .unwrap();
    age(&mut raw, old.order_id, 8).await;
    eventually("the old order to be purged", || async {
        let status = app.store.order_status(old.order_id).await.unwrap();
        status.is_none().then_some(())
    })
    .await;
    assert!(
        app.store
            .order_status(fresh.order_id)
            .await
            .unwrap()
            .is_some()
    );
    raw.close().await.unwrap();
    app.stop().await;
}

/// Not a check: prints the bytes one processed order takes in the database
/// (table and indexes), from which the steady-state size is rate ×
/// retention × bytes per order (`cargo test -p stock-service --test api --
/// --ignored --nocapture bytes_per_processed_order`).
mod bytes_per_processed_order {
    use crate::helpers::Backend;

    #[tokio::test]
    #[ignore = "a measurement, not a test"]
    async fn sqlite() {
        super::measure_bytes_per_order(Backend::Sqlite).await;
    }

    #[tokio::test]
    #[ignore = "a measurement, not a test"]
    async fn postgres() {
        super::measure_bytes_per_order(Backend::Postgres).await;
    }
}

async fn measure_bytes_per_order(backend: Backend) {
    const ORDERS: usize = 20_000;
    let db = TestDatabase::create(backend).await;
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    store
        .seed(&InitialStock::uniform(1_000_000_000))
        .await
        .unwrap();
    let mut raw = AnyConnection::connect(&db.normalized_url()).await.unwrap();
    let size_query = match backend {
        Backend::Postgres => "SELECT CAST(pg_total_relation_size('processed_orders') AS BIGINT)",
        Backend::Sqlite => {
            "SELECT CAST(SUM(pgsize) AS BIGINT) FROM dbstat WHERE name IN \
             ('processed_orders', 'sqlite_autoindex_processed_orders_1', \
              'processed_orders_processed_at')"
        }
    };
    let before: i64 = sqlx::query_scalar(size_query)
        .fetch_one(&mut raw)
        .await
        .unwrap();
    // Two-line carts, as the demo's `checkout load` sends.
    let orders: Vec<_> = (0..ORDERS)
        .map(|n| {
            let n = i32::try_from(n).unwrap();
            order(&[(n % 4 + 1, 2), ((n + 1) % 4 + 1, 1)], 649)
        })
        .collect();
    let span = tracing::Span::none();
    for batch in orders.chunks(64) {
        let batch: Vec<_> = batch.iter().map(|order| (order, &span)).collect();
        store.apply_batch(&batch).await.unwrap();
    }
    let after: i64 = sqlx::query_scalar(size_query)
        .fetch_one(&mut raw)
        .await
        .unwrap();
    eprintln!(
        "{}: {} bytes per processed order ({ORDERS} orders: {before} -> {after} bytes)",
        backend.system(),
        (after - before) / i64::try_from(ORDERS).unwrap()
    );
    raw.close().await.unwrap();
    store.close().await;
}
