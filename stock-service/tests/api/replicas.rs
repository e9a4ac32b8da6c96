//! Several replicas of stock-service — each its own `Application` — on one
//! queue and one PostgreSQL database: every order is applied exactly once
//! however its deliveries and duplicates spread over the replicas, batches
//! whose orders name their items in every order never deadlock, and a hot
//! item runs out without going below zero.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use contracts::amqp::{CheckoutProcessed, OrderLine};
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::SpanData;
use rand::{Rng, seq::SliceRandom};
use service::configuration::Configuration;
use sqlx::PgPool;
use stock_service::{
    Settings,
    configuration::InitialStock,
    domain::{OrderRecord, OrderStatus},
    store::RETRIES_ATTRIBUTE,
};

use crate::helpers::{
    Backend, Replica, TestApp, eventually, eventually_within, finished_spans, spawn_app_with,
};

const REPLICAS: usize = 3;
/// How long a run's messages may take to be consumed: generous, because
/// thousands of messages go through a debug build on a shared two-core
/// machine. Only a stuck consumer should ever reach it.
const DRAIN_DEADLINE: Duration = Duration::from_secs(300);

/// Thousands of mixed carts, each published twice, over three replicas.
/// Each cart names two to four of six items in a random order, so two
/// batches taking their locks in delivery order would deadlock all the
/// time; the stock is short enough that some orders are rejected, which
/// gives stock back inside the same transactions.
#[tokio::test]
async fn every_order_is_applied_once_across_replicas() {
    let mut rng = rand::rng();
    let orders: Vec<CheckoutProcessed> = (0..2000)
        .map(|_| {
            let mut items = vec![1, 2, 3, 4, 5, 6];
            items.shuffle(&mut rng);
            items.truncate(rng.random_range(2..=4));
            let lines: Vec<(i32, i32)> = items
                .into_iter()
                .map(|id| (id, rng.random_range(1..=3)))
                .collect();
            crate::helpers::order(&lines, 100)
        })
        .collect();
    // About nine tenths of the expected demand (2,000 orders × 3 lines × 2
    // units over 6 items): items run out towards the end.
    let initial: InitialStock = "1=1800,2=1800,3=1800,4=1800,5=1800,6=1800".parse().unwrap();
    let run = run(REPLICAS, &orders, &initial).await;

    let rejected = run.count(OrderStatus::Rejected);
    for (_, record) in run.orders_with(OrderStatus::Rejected) {
        let reason = record.reason.as_deref().unwrap_or_default();
        assert!(reason.starts_with("insufficient stock"), "{reason}");
    }
    assert!(
        rejected > 0 && rejected < orders.len(),
        "the stock should serve some orders and not others ({rejected} rejected)"
    );
    eprintln!(
        "{} orders (each twice) over {REPLICAS} replicas: {rejected} rejected, \
         {} messages/s",
        orders.len(),
        run.messages_per_second()
    );
}

/// Many orders for one item, more than it has, from every replica at once;
/// a third of them also take another item, which a rejection must give back.
#[tokio::test]
async fn a_hot_item_runs_out_but_never_below_zero() {
    let mut rng = rand::rng();
    let orders: Vec<CheckoutProcessed> = (0..500)
        .map(|_| {
            let mut lines = vec![(1, rng.random_range(1..=3))];
            if rng.random_bool(1.0 / 3.0) {
                lines.push((2, 1));
                lines.shuffle(&mut rng);
            }
            crate::helpers::order(&lines, 100)
        })
        .collect();
    let initial: InitialStock = "1=300,2=100000".parse().unwrap();
    let run = run(REPLICAS, &orders, &initial).await;

    let left = run.stock[&1];
    assert!(left >= 0, "stock went below zero: {left}");
    for (order, record) in run.orders_with(OrderStatus::Rejected) {
        let quantity = i64::from(order.items.iter().find(|l| l.id == 1).unwrap().quantity);
        let reason = record.reason.as_deref().expect("a rejection has a reason");
        let available = reason
            .strip_prefix(&format!(
                "insufficient stock for item 1: {quantity} requested, "
            ))
            .and_then(|rest| rest.strip_suffix(" available"))
            .and_then(|n| n.parse::<i64>().ok())
            .unwrap_or_else(|| panic!("unexpected reason {reason:?}"));
        // Stock only goes down: what was left at the rejection is at least
        // what is left now, and too little for the order.
        assert!(
            left <= available && available < quantity,
            "{reason} (left now: {left})"
        );
    }
    assert!(
        run.count(OrderStatus::Rejected) > 0,
        "demand exceeds the stock"
    );
    eprintln!(
        "hot item: {} orders (each twice) over {REPLICAS} replicas, {} applied, {left} left",
        orders.len(),
        run.count(OrderStatus::Applied)
    );
}

/// Not a check: prints the consumers' throughput with one replica and with
/// three (`cargo test -p stock-service --test api -- --ignored --nocapture
/// throughput`). Enough stock for every order, each published once.
#[tokio::test]
#[ignore = "a measurement, not a test"]
async fn throughput_with_one_and_three_replicas() {
    let orders: Vec<CheckoutProcessed> = (0..6000)
        .map(|n| crate::helpers::order(&[(n % 4 + 1, 1), ((n + 1) % 4 + 1, 1)], 100))
        .collect();
    for replicas in [1, REPLICAS] {
        let run = run_with(
            replicas,
            &orders,
            &InitialStock::uniform(1_000_000),
            1,
            Timing::ConsumersOnly,
        )
        .await;
        eprintln!(
            "{replicas} replica(s): {} orders in {:.1} s, {} orders/s",
            orders.len(),
            run.elapsed.as_secs_f64(),
            run.messages_per_second()
        );
    }
}

/// What [`Run::elapsed`] measures.
enum Timing {
    /// From the first publish until every message is processed.
    Everything,
    /// From the moment every message is in the queue (until then the
    /// consumers wait on a lock on `processed_orders`) until every order is
    /// recorded.
    ConsumersOnly,
}

/// What a run left behind.
struct Run<'a> {
    records: Vec<(&'a CheckoutProcessed, OrderRecord)>,
    /// Units left per item.
    stock: BTreeMap<i64, i64>,
    messages: usize,
    elapsed: Duration,
}

impl Run<'_> {
    fn orders_with(
        &self,
        status: OrderStatus,
    ) -> impl Iterator<Item = &(&CheckoutProcessed, OrderRecord)> {
        self.records
            .iter()
            .filter(move |(_, record)| record.status == status)
    }

    fn count(&self, status: OrderStatus) -> usize {
        self.orders_with(status).count()
    }

    fn messages_per_second(&self) -> u64 {
        (self.messages as f64 / self.elapsed.as_secs_f64()) as u64
    }
}

/// Publishes every order twice, in a random order, to `replicas` replicas
/// sharing a queue and a PostgreSQL database; waits until every message is
/// processed and checks exactly-once (see [`run_with`]).
async fn run<'a>(
    replicas: usize,
    orders: &'a [CheckoutProcessed],
    initial: &InitialStock,
) -> Run<'a> {
    run_with(replicas, orders, initial, 2, Timing::Everything).await
}

/// Publishes each order `copies` times, shuffled, and checks that:
/// - every message was processed, and the queue is empty;
/// - every order was decided once (applied or rejected) and every other
///   copy found it already decided;
/// - each item's stock is its initial stock minus the applied orders' lines;
/// - no batch needed a retry: the lock order leaves nothing to deadlock on;
/// - every replica stops cleanly (none is stuck on a delivery).
async fn run_with<'a>(
    replicas: usize,
    orders: &'a [CheckoutProcessed],
    initial: &InitialStock,
    copies: usize,
    timing: Timing,
) -> Run<'a> {
    let (app, others) = start(replicas, initial.clone()).await;
    let mut messages: Vec<&CheckoutProcessed> = orders
        .iter()
        .flat_map(|order| std::iter::repeat_n(order, copies))
        .collect();
    messages.shuffle(&mut rand::rng());

    // For a measurement, the consumers wait (on a table lock) until every
    // message is in the queue, so what is timed is their work alone.
    let gate = match timing {
        Timing::ConsumersOnly => Some(app.hold_writes().await),
        Timing::Everything => None,
    };
    let mut started = Instant::now();
    app.publish_orders(&messages).await;
    if let Some(gate) = gate {
        gate.release().await;
        started = Instant::now();
    }
    // First the cheap condition, counted in the database, then the spans
    // (copying every finished span is not free on a busy machine).
    let db = PgPool::connect(&app.db.url).await.unwrap();
    let expected = i64::try_from(orders.len()).unwrap();
    eventually_within(
        DRAIN_DEADLINE,
        Duration::from_millis(100),
        "every order to be recorded",
        || async {
            let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM processed_orders")
                .fetch_one(&db)
                .await
                .unwrap();
            (recorded >= expected).then_some(())
        },
    )
    .await;
    let mut elapsed = started.elapsed();
    db.close().await;
    let exchange = app.settings.amqp.exchange.clone();
    let outcomes = eventually_within(
        DRAIN_DEADLINE,
        Duration::from_millis(500),
        "every message to be processed",
        || async {
            let outcomes = consumer_outcomes(&exchange);
            (outcomes.len() >= messages.len()).then_some(outcomes)
        },
    )
    .await;
    if let Timing::Everything = timing {
        elapsed = started.elapsed();
    }

    let decided = outcomes
        .iter()
        .filter(|(outcome, _)| outcome != "duplicate")
        .count();
    assert_eq!(decided, orders.len(), "each order decided exactly once");
    assert_eq!(outcomes.len(), messages.len(), "no message processed twice");
    let retried = outcomes.iter().filter(|(_, retries)| *retries).count();
    assert_eq!(retried, 0, "deliveries whose transaction had to be retried");
    assert_eq!(app.queue_state().await.0, 0, "the queue is drained");

    let mut records = Vec::with_capacity(orders.len());
    let mut expected: BTreeMap<i64, i64> = initial.0.clone();
    for order in orders {
        let record = app
            .store
            .order_status(order.order_id)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("order {} was never recorded", order.order_id));
        assert_eq!(record.items, order.items);
        if record.status == OrderStatus::Applied {
            for OrderLine { id, quantity } in &order.items {
                *expected.get_mut(&i64::from(*id)).unwrap() -= i64::from(*quantity);
            }
        }
        records.push((order, record));
    }
    let mut stock = BTreeMap::new();
    for (&item, &units) in &expected {
        let left = app.store.stock_level(item).await.unwrap().unwrap();
        assert_eq!(
            left, units,
            "item {item}: initial stock minus what was applied"
        );
        stock.insert(item, left);
    }

    for replica in others {
        replica.stop().await;
    }
    assert_eq!(
        app.queue_state().await.0,
        0,
        "nothing was left unacknowledged"
    );
    app.stop().await;
    Run {
        records,
        stock,
        messages: messages.len(),
        elapsed,
    }
}

/// The first replica (which owns the queue and the database) and the
/// others, all subscribed before anything is published, so the messages
/// spread over all of them.
async fn start(replicas: usize, initial: InitialStock) -> (TestApp, Vec<Replica>) {
    let app = spawn_app_with(Backend::Postgres, initial, |settings| {
        // The production prefetch, so batches reach their full size.
        settings.queue.prefetch = Settings::defaults().queue.prefetch;
    })
    .await;
    let mut others = Vec::with_capacity(replicas - 1);
    for _ in 1..replicas {
        others.push(app.spawn_replica().await);
    }
    eventually("every replica to subscribe", || async {
        let consumers = app.queue_state().await.1;
        (consumers as usize == replicas).then_some(())
    })
    .await;
    (app, others)
}

/// (`stock.outcome`, whether the transaction was retried) of every consumer
/// span on `exchange` that got as far as an outcome.
fn consumer_outcomes(exchange: &str) -> Vec<(String, bool)> {
    let attribute = |span: &SpanData, key: &str| {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == key)
            .map(|kv| kv.value.to_string())
    };
    finished_spans()
        .iter()
        .filter(|span| span.span_kind == SpanKind::Consumer)
        .filter(|span| attribute(span, "messaging.destination.name").as_deref() == Some(exchange))
        .filter_map(|span| {
            let outcome = attribute(span, "stock.outcome")?;
            Some((outcome, attribute(span, RETRIES_ATTRIBUTE).is_some()))
        })
        .collect()
}
