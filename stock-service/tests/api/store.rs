//! The store on its own, on each backend: the decisions of `apply`, stock
//! that never goes below zero, and the order record read back.

use std::time::{SystemTime, UNIX_EPOCH};

use stock_service::{
    configuration::InitialStock,
    domain::{OrderRecord, OrderStatus, Outcome},
    store::Store,
};

use crate::helpers::{Backend, TestDatabase, on_each_backend, order};

on_each_backend!(
    apply_decides_applied_duplicate_or_rejected,
    concurrent_deliveries_of_one_order_apply_it_once,
    stock_never_goes_below_zero_under_concurrent_orders,
    the_order_record_reads_back_as_written,
);

/// A migrated store on a fresh database, with `stock` seeded.
async fn open(db: &TestDatabase, stock: &str) -> Store {
    let store = Store::connect(&db.url).await.expect("the store connects");
    store.migrate().await.expect("the schema migrates");
    store
        .seed(&stock.parse::<InitialStock>().unwrap())
        .await
        .expect("seeding works");
    store
}

fn rejected(reason: &str) -> Outcome {
    Outcome::Rejected {
        reason: reason.to_owned(),
    }
}

async fn apply_decides_applied_duplicate_or_rejected(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let store = open(&db, "1=10,2=3").await;

    let fits = order(&[(1, 4)], 400);
    assert_eq!(store.apply(&fits).await.unwrap(), Outcome::Applied);
    assert_eq!(store.apply(&fits).await.unwrap(), Outcome::Duplicate);
    assert_eq!(store.stock_level(1).await.unwrap(), Some(6));

    // The first line fits, the second does not: neither is applied.
    let too_much = order(&[(1, 1), (2, 4)], 500);
    assert_eq!(
        store.apply(&too_much).await.unwrap(),
        rejected("insufficient stock for item 2: 4 requested, 3 available")
    );
    // A rejection is a decision too: a redelivery changes nothing.
    assert_eq!(store.apply(&too_much).await.unwrap(), Outcome::Duplicate);
    let unknown = order(&[(9, 1)], 100);
    assert_eq!(
        store.apply(&unknown).await.unwrap(),
        rejected("unknown item 9")
    );
    assert_eq!(store.stock_level(1).await.unwrap(), Some(6));
    assert_eq!(store.stock_level(2).await.unwrap(), Some(3));
    assert_eq!(store.stock_level(9).await.unwrap(), None);

    let record = store
        .order_status(too_much.order_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, OrderStatus::Rejected);
    assert_eq!(
        record.reason.as_deref(),
        Some("insufficient stock for item 2: 4 requested, 3 available")
    );
    store.close().await;
}

async fn concurrent_deliveries_of_one_order_apply_it_once(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let store = open(&db, "1=100").await;
    let order = order(&[(1, 7)], 700);
    // On PostgreSQL the second INSERT waits for the first transaction and
    // then finds the row; on SQLite the write lock serializes them.
    let outcomes = futures::future::join_all((0..4).map(|_| store.apply(&order))).await;
    let mut outcomes: Vec<Outcome> = outcomes.into_iter().map(Result::unwrap).collect();
    outcomes.sort_by_key(|outcome| outcome.as_str());
    assert_eq!(
        outcomes,
        [
            Outcome::Applied,
            Outcome::Duplicate,
            Outcome::Duplicate,
            Outcome::Duplicate
        ]
    );
    assert_eq!(store.stock_level(1).await.unwrap(), Some(93));
    store.close().await;
}

async fn stock_never_goes_below_zero_under_concurrent_orders(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let store = open(&db, "1=20,2=1000").await;
    // Items in both orders, so concurrent transactions lock the same rows.
    let orders: Vec<_> = (0..10)
        .map(|n| {
            if n % 2 == 0 {
                order(&[(1, 3), (2, 1)], 300)
            } else {
                order(&[(2, 1), (1, 3)], 300)
            }
        })
        .collect();
    let outcomes = futures::future::join_all(orders.iter().map(|order| store.apply(order))).await;
    let applied = outcomes
        .into_iter()
        .map(Result::unwrap)
        .filter(|outcome| *outcome == Outcome::Applied)
        .count();
    assert_eq!(applied, 6, "20 units serve six orders of 3");
    assert_eq!(store.stock_level(1).await.unwrap(), Some(2));
    assert_eq!(store.stock_level(2).await.unwrap(), Some(994));
    store.close().await;
}

async fn the_order_record_reads_back_as_written(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let store = open(&db, "1=10,3=10").await;
    // Above i32 and above what an f64 holds exactly: a narrowing or
    // floating-point column type would show here.
    let total_amount = (1_i64 << 53) + 1;
    let order = order(&[(1, 2), (3, 1)], total_amount);
    assert_eq!(store.order_status(order.order_id).await.unwrap(), None);

    let before = now_ms();
    assert_eq!(store.apply(&order).await.unwrap(), Outcome::Applied);
    let after = now_ms();
    let record = store.order_status(order.order_id).await.unwrap().unwrap();
    assert!(
        (before..=after).contains(&record.processed_at_ms),
        "{} not within {before}..={after}",
        record.processed_at_ms
    );
    assert_eq!(
        record,
        OrderRecord {
            order_id: order.order_id,
            status: OrderStatus::Applied,
            reason: None,
            total_amount,
            items: order.items.clone(),
            processed_at_ms: record.processed_at_ms,
        }
    );
    store.ping().await.expect("the database answers");
    store.close().await;
}

fn now_ms() -> i64 {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(elapsed.as_millis()).unwrap()
}
