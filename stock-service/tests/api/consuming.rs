//! From a published message to a stock change: applied once, rejected when
//! it cannot be served, dead-lettered when it cannot be read.

use contracts::amqp::CheckoutProcessed;
use stock_service::{configuration::InitialStock, domain::OrderStatus};
use uuid::Uuid;

use crate::helpers::{
    Backend, eventually, header_text, long_string_headers, on_each_backend, order,
    order_properties, spawn_app, spawn_app_on,
};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

// These run once per database. The others are about the broker and run on
// SQLite only.
on_each_backend!(
    a_published_order_decrements_stock_and_shows_as_applied,
    the_same_order_delivered_twice_is_applied_once,
    an_order_that_cannot_be_served_is_rejected_and_leaves_stock_unchanged,
    stock_never_goes_below_zero,
    a_delivery_that_keeps_failing_is_dead_lettered_by_the_delivery_limit,
);

async fn a_published_order_decrements_stock_and_shows_as_applied(backend: Backend) {
    let app = spawn_app_on(backend, InitialStock::default()).await;
    let order = order(&[(1, 2), (3, 5)], 4_200);
    let headers = long_string_headers(&[("traceparent", TRACEPARENT), ("baggage", "tenant=acme")]);
    app.publish(&order.to_json(), order_properties(&order, headers))
        .await;

    let record = app.wait_for_order(order.order_id).await;
    assert_eq!(record.status, OrderStatus::Applied);
    assert_eq!(record.items, order.items);
    assert_eq!(app.stock_via_http(1).await, 998);
    assert_eq!(app.stock_via_http(2).await, 1000);
    assert_eq!(app.stock_via_http(3).await, 995);

    let response = app.get(&format!("/api/orders/{}", order.order_id)).await;
    assert_eq!(response.status(), 200);
    let mut body: serde_json::Value = response.json().await.unwrap();
    let processed_at = body["processedAt"].take();
    assert_eq!(processed_at.as_i64(), Some(record.processed_at_ms));
    body.as_object_mut().unwrap().remove("processedAt");
    assert_eq!(
        body,
        serde_json::json!({
            "orderId": order.order_id.to_string(),
            "status": "applied",
            "reason": null,
            "totalAmount": 4_200,
        })
    );
    app.stop().await;
}

#[tokio::test]
async fn a_message_without_message_id_or_trace_headers_is_processed() {
    let app = spawn_app().await;
    let order = order(&[(2, 1)], 100);
    app.publish(&order.to_json(), lapin::BasicProperties::default())
        .await;
    assert_eq!(
        app.wait_for_order(order.order_id).await.status,
        OrderStatus::Applied
    );
    assert_eq!(app.stock_via_http(2).await, 999);
    app.stop().await;
}

async fn the_same_order_delivered_twice_is_applied_once(backend: Backend) {
    let app = spawn_app_on(backend, InitialStock::default()).await;
    let order = order(&[(1, 10)], 1_000);
    app.publish_order(&order).await;
    app.publish_order(&order).await;
    // One consumer takes the queue in order: once a later message is
    // processed, both copies before it have been.
    let marker = crate::helpers::order(&[(4, 1)], 1);
    app.publish_order(&marker).await;
    app.wait_for_order(marker.order_id).await;

    assert_eq!(
        app.wait_for_order(order.order_id).await.status,
        OrderStatus::Applied
    );
    assert_eq!(app.store.stock_level(1).await.unwrap(), Some(990));
    app.stop().await;
}

async fn an_order_that_cannot_be_served_is_rejected_and_leaves_stock_unchanged(backend: Backend) {
    let app = spawn_app_on(backend, "1=10,2=3".parse::<InitialStock>().unwrap()).await;
    // The first line fits, the second does not: neither may be applied.
    let too_much = order(&[(1, 4), (2, 4)], 800);
    let unknown = order(&[(9, 1)], 100);
    app.publish_order(&too_much).await;
    app.publish_order(&unknown).await;

    let rejected = app.wait_for_order(too_much.order_id).await;
    assert_eq!(rejected.status, OrderStatus::Rejected);
    let reason = rejected.reason.expect("a rejection has a reason");
    assert!(reason.contains("insufficient stock for item 2"), "{reason}");
    let unknown = app.wait_for_order(unknown.order_id).await;
    assert_eq!(unknown.reason.as_deref(), Some("unknown item 9"));
    assert_eq!(app.store.stock_level(1).await.unwrap(), Some(10));
    assert_eq!(app.store.stock_level(2).await.unwrap(), Some(3));

    let body: serde_json::Value = app
        .get(&format!("/api/orders/{}", too_much.order_id))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "rejected");
    assert_eq!(body["reason"], reason);
    app.stop().await;
}

async fn stock_never_goes_below_zero(backend: Backend) {
    let app = spawn_app_on(backend, "1=20".parse::<InitialStock>().unwrap()).await;
    let orders: Vec<CheckoutProcessed> = (0..10).map(|_| order(&[(1, 3)], 300)).collect();
    for order in &orders {
        app.publish_order(order).await;
    }
    let mut applied = 0;
    for order in &orders {
        if app.wait_for_order(order.order_id).await.status == OrderStatus::Applied {
            applied += 1;
        }
    }
    assert_eq!(applied, 6, "20 units serve six orders of 3");
    assert_eq!(app.store.stock_level(1).await.unwrap(), Some(2));
    app.stop().await;
}

#[tokio::test]
async fn poison_messages_are_dead_lettered_with_the_reason_and_consuming_goes_on() {
    let app = spawn_app().await;
    let not_json = b"this is not JSON".as_slice();
    let future_version = serde_json::json!({
        "schemaVersion": 2,
        "orderId": Uuid::new_v4(),
        "items": [{ "id": 1, "quantity": 1 }],
        "totalAmount": 100,
    })
    .to_string();
    let headers = long_string_headers(&[("traceparent", TRACEPARENT)]);
    let properties = lapin::BasicProperties::default()
        .with_message_id("poison-1".into())
        .with_headers(headers);
    app.publish(not_json, properties).await;
    app.publish(future_version.as_bytes(), lapin::BasicProperties::default())
        .await;
    let good = order(&[(1, 1)], 100);
    app.publish_order(&good).await;

    assert_eq!(
        app.wait_for_order(good.order_id).await.status,
        OrderStatus::Applied
    );
    let dead = app.take_dead_letters(2).await;
    let not_json_copy = dead
        .iter()
        .find(|d| d.data == not_json)
        .expect("the non-JSON body is dead-lettered unchanged");
    let reason = header_text(not_json_copy, "x-death-reason").expect("a reason header");
    assert!(reason.starts_with("malformed body"), "{reason}");
    // The original properties and headers travel with it.
    assert_eq!(
        not_json_copy
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.as_str()),
        Some("poison-1")
    );
    assert_eq!(
        header_text(not_json_copy, "traceparent").as_deref(),
        Some(TRACEPARENT)
    );

    let version_copy = dead
        .iter()
        .find(|d| d.data == future_version.as_bytes())
        .expect("the unknown version is dead-lettered");
    let reason = header_text(version_copy, "x-death-reason").expect("a reason header");
    assert!(reason.contains("unsupported schemaVersion 2"), "{reason}");
    assert_eq!(app.store.stock_level(1).await.unwrap(), Some(999));
    app.stop().await;
}

#[tokio::test]
async fn the_consumer_recovers_when_its_queue_is_deleted() {
    let app = spawn_app().await;
    let first = order(&[(1, 1)], 100);
    app.publish_order(&first).await;
    app.wait_for_order(first.order_id).await;

    // The broker cancels the subscription; the consumer reconnects and
    // declares the queue again.
    app.publisher
        .queue_delete(
            app.settings.queue.name.as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    let second = order(&[(1, 1)], 100);
    let properties = order_properties(&second, Default::default());
    eventually("the queue to be declared again", || {
        let properties = properties.clone();
        let body = second.to_json();
        let app = &app;
        async move { app.try_publish(&body, properties).await.then_some(()) }
    })
    .await;
    assert_eq!(
        app.wait_for_order(second.order_id).await.status,
        OrderStatus::Applied
    );
    assert_eq!(app.store.stock_level(1).await.unwrap(), Some(998));
    app.stop().await;
}

async fn a_delivery_that_keeps_failing_is_dead_lettered_by_the_delivery_limit(backend: Backend) {
    use sqlx::Connection;

    let app = spawn_app_on(backend, InitialStock::default()).await;
    // A first order, so the service's connection has its statements
    // prepared and cached before the schema changes under them.
    let first = crate::helpers::order(&[(1, 1)], 100);
    app.publish_order(&first).await;
    app.wait_for_order(first.order_id).await;
    // Break the schema under the running service: every attempt now fails
    // with a database error, and each is requeued.
    let mut db = sqlx::AnyConnection::connect(&app.db.normalized_url())
        .await
        .unwrap();
    sqlx::query("ALTER TABLE stock RENAME TO stock_elsewhere")
        .execute(&mut db)
        .await
        .unwrap();
    let order = order(&[(1, 1)], 100);
    app.publish_order(&order).await;

    let dead = app.take_dead_letters(1).await;
    assert_eq!(dead[0].data, order.to_json(), "dead-lettered, not lost");
    assert_eq!(
        header_text(&dead[0], "x-first-death-reason").as_deref(),
        Some("delivery_limit")
    );
    assert_eq!(app.store.order_status(order.order_id).await.unwrap(), None);

    // Repaired, the service carries on.
    sqlx::query("ALTER TABLE stock_elsewhere RENAME TO stock")
        .execute(&mut db)
        .await
        .unwrap();
    let next = crate::helpers::order(&[(1, 1)], 100);
    app.publish_order(&next).await;
    assert_eq!(
        app.wait_for_order(next.order_id).await.status,
        OrderStatus::Applied
    );
    assert_eq!(app.store.stock_level(1).await.unwrap(), Some(998));
    app.stop().await;
}
