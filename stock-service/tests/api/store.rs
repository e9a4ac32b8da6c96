//! The store on its own, on each backend: the decisions of `apply`, stock
//! that never goes below zero, and the order record read back.

use std::time::{SystemTime, UNIX_EPOCH};

use contracts::amqp::{CheckoutProcessed, request_fingerprint};
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
    a_retry_under_another_order_id_is_recorded_as_a_duplicate,
    concurrent_retries_under_other_order_ids_apply_once,
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
            duplicate_of: None,
        }
    );
    store.ping().await.expect("the database answers");
    store.close().await;
}

/// A fresh order of `items` sent by `client` with idempotency key `key`.
fn keyed(client: &str, key: &str, items: &[(i32, i32)]) -> CheckoutProcessed {
    order(items, 100).with_request_fingerprint(request_fingerprint(client, key))
}

async fn a_retry_under_another_order_id_is_recorded_as_a_duplicate(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    let store = open(&db, "1=10").await;
    let first = keyed("shop", "k-1", &[(1, 2)]);
    // The same checkout retried on a replica with another order-id key.
    let retry = keyed("shop", "k-1", &[(1, 2)]);
    assert_ne!(first.order_id, retry.order_id);
    assert_eq!(store.apply(&first).await.unwrap(), Outcome::Applied);
    let duplicate = Outcome::DuplicateOf {
        order_id: first.order_id,
    };
    assert_eq!(store.apply(&retry).await.unwrap(), duplicate);
    // Redeliveries of either change nothing.
    assert_eq!(store.apply(&retry).await.unwrap(), duplicate);
    assert_eq!(store.apply(&first).await.unwrap(), Outcome::Duplicate);
    // Another client's key, and an order without a key, are orders of their own.
    for other in [keyed("app", "k-1", &[(1, 2)]), order(&[(1, 2)], 100)] {
        assert_eq!(store.apply(&other).await.unwrap(), Outcome::Applied);
    }
    assert_eq!(store.stock_level(1).await.unwrap(), Some(4));

    let record = store.order_status(retry.order_id).await.unwrap().unwrap();
    assert_eq!(record.status, OrderStatus::Duplicate);
    assert_eq!(record.status.as_str(), "duplicate");
    assert_eq!(record.duplicate_of, Some(first.order_id));
    assert!(
        record
            .reason
            .as_deref()
            .unwrap()
            .contains(&first.order_id.to_string()),
        "{record:?}"
    );
    let original = store.order_status(first.order_id).await.unwrap().unwrap();
    assert_eq!(
        (original.status, original.duplicate_of),
        (OrderStatus::Applied, None)
    );
    store.close().await;
}

async fn concurrent_retries_under_other_order_ids_apply_once(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    // Two handles with pools of their own: two replicas on one database.
    let one = open(&db, "1=100,2=100").await;
    let two = Store::connect(&db.url)
        .await
        .expect("a second pool connects");
    let copies: Vec<_> = (0..6).map(|_| keyed("", "same-key", &[(1, 1)])).collect();
    let outcomes = futures::future::join_all(copies.iter().enumerate().map(|(n, copy)| {
        if n % 2 == 0 {
            one.apply(copy)
        } else {
            two.apply(copy)
        }
    }))
    .await;
    let outcomes: Vec<Outcome> = outcomes.into_iter().map(Result::unwrap).collect();
    let applied: Vec<_> = copies
        .iter()
        .zip(&outcomes)
        .filter(|(_, outcome)| **outcome == Outcome::Applied)
        .map(|(copy, _)| copy.order_id)
        .collect();
    assert_eq!(applied.len(), 1, "{outcomes:?}");
    let duplicate = Outcome::DuplicateOf {
        order_id: applied[0],
    };
    assert_eq!(
        outcomes
            .iter()
            .filter(|outcome| **outcome == duplicate)
            .count(),
        5
    );
    assert_eq!(one.stock_level(1).await.unwrap(), Some(99));

    // Two batches that claim the same two checkouts under other order ids,
    // in opposite delivery order: still one each, and no batch fails.
    let (a, b) = (keyed("", "a", &[(1, 1)]), keyed("", "b", &[(2, 1)]));
    let (b2, a2) = (keyed("", "b", &[(2, 1)]), keyed("", "a", &[(1, 1)]));
    let span = tracing::Span::none();
    let (batch_one, batch_two) = ([(&a, &span), (&b, &span)], [(&b2, &span), (&a2, &span)]);
    let (first, second) = tokio::join!(one.apply_batch(&batch_one), two.apply_batch(&batch_two));
    let applied = first
        .unwrap()
        .into_iter()
        .chain(second.unwrap())
        .filter(|outcome| *outcome == Outcome::Applied)
        .count();
    assert_eq!(applied, 2);
    assert_eq!(one.stock_level(1).await.unwrap(), Some(98));
    assert_eq!(one.stock_level(2).await.unwrap(), Some(99));

    // Two order ids of one checkout in one batch: one applied, the other
    // its duplicate.
    let (c, c2) = (keyed("", "c", &[(1, 1)]), keyed("", "c", &[(1, 1)]));
    let outcomes = one.apply_batch(&[(&c, &span), (&c2, &span)]).await.unwrap();
    let (applied, duplicate) = match outcomes[0] {
        Outcome::Applied => (&c, &outcomes[1]),
        _ => (&c2, &outcomes[0]),
    };
    assert_eq!(
        *duplicate,
        Outcome::DuplicateOf {
            order_id: applied.order_id
        },
        "{outcomes:?}"
    );
    assert_eq!(one.stock_level(1).await.unwrap(), Some(97));
    one.close().await;
    two.close().await;
}

fn now_ms() -> i64 {
    let elapsed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(elapsed.as_millis()).unwrap()
}
