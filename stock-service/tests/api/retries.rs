//! A batch transaction PostgreSQL aborts is run again: a real deadlock
//! between the store and another transaction, and failures raised on purpose
//! by a trigger, which show that the retries are counted on the span,
//! bounded, and only for the errors PostgreSQL calls retryable.

use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;
use sqlx::{
    Connection, PgPool,
    postgres::{PgConnection, PgPoolOptions},
};
use stock_service::{
    configuration::InitialStock,
    domain::{OrderStatus, Outcome},
    store::{MAX_ATTEMPTS, RETRIES_ATTRIBUTE, Store, StoreError},
};
use tracing::Instrument;

use crate::helpers::{
    Backend, TestDatabase, eventually, finished_spans, long_string_headers, order,
    order_properties, spawn_app_on,
};

/// A migrated store on a fresh PostgreSQL database with items 1 and 2.
async fn open(db: &TestDatabase) -> Store {
    let store = Store::connect(&db.url).await.unwrap();
    store.migrate().await.unwrap();
    store
        .seed(&"1=100,2=100".parse::<InitialStock>().unwrap())
        .await
        .unwrap();
    store
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// Applies `order` inside a span of its own and returns the outcome and
/// the span's retry count (`None`: no retry).
async fn apply_traced(
    store: &Store,
    order: &contracts::amqp::CheckoutProcessed,
) -> (Result<Outcome, StoreError>, Option<String>) {
    finished_spans(); // the subscriber must exist before the span
    // Unique per call: the same order may be applied more than once.
    let name = format!("apply {} ({})", order.order_id, uuid::Uuid::new_v4());
    let span = tracing::info_span!("apply", otel.name = %name);
    let outcome = store.apply(order).instrument(span).await;
    let span = eventually("the test span to be exported", || async {
        finished_spans().into_iter().find(|span| span.name == name)
    })
    .await;
    (outcome, attribute(&span, RETRIES_ATTRIBUTE))
}

async fn stock(store: &Store, item: i64) -> i64 {
    store.stock_level(item).await.unwrap().unwrap()
}

/// The store's transaction takes item 1 and waits for item 2, which another
/// transaction holds; that one then asks for item 1. PostgreSQL aborts one
/// of the two. It usually picks the store's, which waited first; then the
/// store must roll back and run the batch again, once the other transaction
/// has committed. When it picks the other one, the store never saw an error,
/// so the round is played again.
#[tokio::test]
async fn a_deadlock_aborts_the_batch_and_it_runs_again() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let store = open(&db).await;
    let observer: PgPool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.url)
        .await
        .unwrap();
    let mut blocker = PgConnection::connect(&db.url).await.unwrap();
    let blocker_pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut blocker)
        .await
        .unwrap();

    for _round in 0..10 {
        let order = order(&[(2, 1), (1, 1)], 200);
        let (before_1, before_2) = (stock(&store, 1).await, stock(&store, 2).await);
        let mut tx = blocker.begin().await.unwrap();
        sqlx::query("SELECT available FROM stock WHERE item_id = 2 FOR UPDATE")
            .execute(&mut *tx)
            .await
            .unwrap();
        let applying = tokio::spawn({
            let store = store.clone();
            let order = order.clone();
            async move { apply_traced(&store, &order).await }
        });
        eventually("the store's transaction to wait for item 2", || async {
            let waiting: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
            )
            .bind(blocker_pid)
            .fetch_one(&observer)
            .await
            .unwrap();
            (waiting > 0).then_some(())
        })
        .await;

        // Close the cycle: item 1 is the store's until it commits.
        let closed = sqlx::query("UPDATE stock SET available = available - 10 WHERE item_id = 1")
            .execute(&mut *tx)
            .await;
        match closed {
            Ok(_) => {
                // The store's transaction was aborted, so this one got item
                // 1; the store's second attempt waits for this commit.
                tx.commit().await.unwrap();
                let (outcome, retries) = applying.await.unwrap();
                assert_eq!(outcome.unwrap(), Outcome::Applied);
                assert_eq!(retries.as_deref(), Some("1"));
                assert_eq!(stock(&store, 1).await, before_1 - 10 - 1);
                assert_eq!(stock(&store, 2).await, before_2 - 1);
                let record = store.order_status(order.order_id).await.unwrap().unwrap();
                assert_eq!(record.status, OrderStatus::Applied);
                store.close().await;
                return;
            }
            Err(error) => {
                let code = error.as_database_error().and_then(|e| e.code());
                assert_eq!(code.as_deref(), Some("40P01"), "{error}");
                tx.rollback().await.unwrap();
                let (outcome, retries) = applying.await.unwrap();
                assert_eq!(outcome.unwrap(), Outcome::Applied);
                assert_eq!(retries, None, "the store saw no error");
            }
        }
    }
    panic!("in ten rounds PostgreSQL never aborted the store's transaction");
}

/// A trigger on `processed_orders` that fails the next `failures` inserts
/// with `sqlstate`, as if the server had aborted the transaction. A sequence
/// counts the attempts: it is not rolled back with them.
const FAIL_ON_PURPOSE: &str = r#"
CREATE TABLE forced_failure (failures BIGINT NOT NULL, sqlstate TEXT NOT NULL);
INSERT INTO forced_failure VALUES (0, '40001');
CREATE SEQUENCE attempts;
CREATE FUNCTION fail_on_purpose() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    wanted forced_failure%ROWTYPE;
BEGIN
    SELECT * INTO wanted FROM forced_failure;
    IF nextval('attempts') <= wanted.failures THEN
        RAISE EXCEPTION 'failing on purpose' USING ERRCODE = wanted.sqlstate;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER fail_on_purpose BEFORE INSERT ON processed_orders
    FOR EACH ROW EXECUTE FUNCTION fail_on_purpose();
"#;

/// Makes the next `failures` attempts fail with `sqlstate` and restarts the
/// attempt count.
async fn fail_next(db: &PgPool, failures: i64, sqlstate: &str) {
    sqlx::query("UPDATE forced_failure SET failures = $1, sqlstate = $2")
        .bind(failures)
        .bind(sqlstate)
        .execute(db)
        .await
        .unwrap();
    sqlx::query("SELECT setval('attempts', 1, false)")
        .execute(db)
        .await
        .unwrap();
}

/// How many attempts reached the trigger since [`fail_next`].
async fn attempts(db: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM attempts")
        .fetch_one(db)
        .await
        .unwrap()
}

async fn install_trigger(url: &str) -> PgPool {
    let db = PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap();
    sqlx::raw_sql(FAIL_ON_PURPOSE).execute(&db).await.unwrap();
    db
}

#[tokio::test]
async fn retries_are_counted_bounded_and_only_for_retryable_errors() {
    let db = TestDatabase::create(Backend::Postgres).await;
    let store = open(&db).await;
    let control = install_trigger(&db.url).await;

    // Two serialization failures, then success.
    fail_next(&control, 2, "40001").await;
    let applied = order(&[(1, 4)], 400);
    let (outcome, retries) = apply_traced(&store, &applied).await;
    assert_eq!(outcome.unwrap(), Outcome::Applied);
    assert_eq!(retries.as_deref(), Some("2"));
    assert_eq!(attempts(&control).await, 3);
    assert_eq!(stock(&store, 1).await, 96, "applied once");

    // Deadlocks every time: given up after the last attempt.
    fail_next(&control, 1_000, "40P01").await;
    let doomed = order(&[(1, 1)], 100);
    let (outcome, retries) = apply_traced(&store, &doomed).await;
    match outcome {
        Err(StoreError::Database(error)) => assert_eq!(
            error.as_database_error().and_then(|e| e.code()).as_deref(),
            Some("40P01")
        ),
        other => panic!("expected the deadlock error, got {other:?}"),
    }
    assert_eq!(attempts(&control).await, i64::from(MAX_ATTEMPTS));
    assert_eq!(retries, Some((MAX_ATTEMPTS - 1).to_string()));
    assert_eq!(store.order_status(doomed.order_id).await.unwrap(), None);

    // Not a retryable error (a check violation): one attempt only.
    fail_next(&control, 1_000, "23514").await;
    let (outcome, retries) = apply_traced(&store, &doomed).await;
    assert!(
        matches!(outcome, Err(StoreError::Database(_))),
        "{outcome:?}"
    );
    assert_eq!(attempts(&control).await, 1);
    assert_eq!(retries, None);
    assert_eq!(stock(&store, 1).await, 96, "nothing of the failures stayed");
    store.close().await;
}

/// Through the consumer: the retry count lands on the order's CONSUMER
/// span, next to its outcome.
#[tokio::test]
async fn the_consumer_span_counts_the_retries_of_its_transaction() {
    let app = spawn_app_on(Backend::Postgres, InitialStock::default()).await;
    let control = install_trigger(&app.db.url).await;
    fail_next(&control, 1, "40P01").await;

    let order = order(&[(3, 2)], 200);
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let traceparent = format!("00-{trace}-00f067aa0ba902b7-01");
    let headers = long_string_headers(&[("traceparent", &traceparent)]);
    app.publish(&order.to_json(), order_properties(&order, headers))
        .await;
    assert_eq!(
        app.wait_for_order(order.order_id).await.status,
        OrderStatus::Applied
    );
    let consumer = eventually("the consumer span to be exported", || async {
        finished_spans().into_iter().find(|span| {
            span.span_kind == SpanKind::Consumer
                && span.span_context.trace_id().to_string() == trace
        })
    })
    .await;
    assert_eq!(
        attribute(&consumer, RETRIES_ATTRIBUTE).as_deref(),
        Some("1")
    );
    assert_eq!(
        attribute(&consumer, "stock.outcome").as_deref(),
        Some("applied")
    );
    assert_eq!(app.store.stock_level(3).await.unwrap(), Some(998));
    app.stop().await;
}
