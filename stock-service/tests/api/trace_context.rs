//! The trace goes on in stock-service: the consumer span is a child of the
//! publisher's span, carries the message's baggage, and parents the
//! database spans.

use std::collections::BTreeMap;

use lapin::{
    BasicProperties,
    message::Delivery,
    types::{AMQPValue, FieldTable, ShortString},
};
use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry_sdk::trace::SpanData;
use stock_service::{configuration::InitialStock, consumer::consumer_span};

use crate::helpers::{
    Backend, eventually, finished_spans, long_string_headers, on_each_backend, order,
    order_properties, spawn_app, spawn_app_on,
};

on_each_backend!(
    the_consumer_span_continues_the_trace_and_parents_the_database_spans,
    an_api_read_is_a_server_span_parenting_its_query,
);

/// A fresh W3C parent: (trace id, span id, traceparent header).
fn remote_parent() -> (TraceId, SpanId, String) {
    let trace_id = TraceId::from_bytes(uuid::Uuid::new_v4().into_bytes());
    let span_id = SpanId::from_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap());
    (trace_id, span_id, format!("00-{trace_id}-{span_id}-01"))
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// Waits for the consumer span of `trace_id`; returns every span of the trace.
async fn trace_with_consumer_span(trace_id: TraceId) -> (SpanData, Vec<SpanData>) {
    eventually("the consumer span to be exported", || async {
        let spans: Vec<SpanData> = finished_spans()
            .into_iter()
            .filter(|span| span.span_context.trace_id() == trace_id)
            .collect();
        let consumer = spans
            .iter()
            .find(|span| span.span_kind == SpanKind::Consumer)?
            .clone();
        Some((consumer, spans))
    })
    .await
}

async fn the_consumer_span_continues_the_trace_and_parents_the_database_spans(backend: Backend) {
    let app = spawn_app_on(backend, InitialStock::default()).await;
    let (trace_id, parent_id, traceparent) = remote_parent();
    let order = order(&[(2, 3)], 300);
    let headers = long_string_headers(&[
        ("traceparent", &traceparent),
        ("baggage", "tenant=acme,checkout.channel=web"),
    ]);
    app.publish(&order.to_json(), order_properties(&order, headers))
        .await;
    app.wait_for_order(order.order_id).await;

    let (consumer, spans) = trace_with_consumer_span(trace_id).await;
    assert_eq!(
        consumer.name,
        format!("process {}", app.settings.amqp.exchange)
    );
    assert_eq!(consumer.parent_span_id, parent_id);
    assert_eq!(consumer.status, Status::Unset);
    let expect = |key: &str, value: &str| {
        assert_eq!(attribute(&consumer, key).as_deref(), Some(value), "{key}");
    };
    expect("baggage.tenant", "acme");
    expect("baggage.checkout.channel", "web");
    expect("messaging.system", "rabbitmq");
    expect("messaging.destination.name", &app.settings.amqp.exchange);
    expect(
        "messaging.rabbitmq.destination.routing_key",
        &app.settings.amqp.routing_key,
    );
    expect("messaging.consumer.group.name", &app.settings.queue.name);
    expect("messaging.message.id", &order.order_id.to_string());
    expect("messaging.operation.type", "process");
    expect("stock.outcome", "applied");

    let db_spans: Vec<&SpanData> = spans
        .iter()
        .filter(|span| span.span_kind == SpanKind::Client)
        .collect();
    let names: Vec<&str> = db_spans.iter().map(|span| span.name.as_ref()).collect();
    assert_eq!(names, ["INSERT processed_orders", "UPDATE stock"]);
    for span in db_spans {
        assert_eq!(span.parent_span_id, consumer.span_context.span_id());
        // `sqlite` or `postgresql`, under the current and the older key.
        assert_eq!(
            attribute(span, "db.system.name").as_deref(),
            Some(backend.system())
        );
        assert_eq!(
            attribute(span, "db.system").as_deref(),
            Some(backend.system())
        );
        assert_eq!(
            attribute(span, "db.namespace").as_deref(),
            Some(app.db.name.as_str())
        );
        let query = attribute(span, "db.query.text").unwrap_or_default();
        assert!(query.contains("$1"), "parameterized, never values: {query}");
    }
    app.stop().await;
}

async fn an_api_read_is_a_server_span_parenting_its_query(backend: Backend) {
    let app = spawn_app_on(backend, InitialStock::default()).await;
    let (trace_id, parent_id, traceparent) = remote_parent();
    let response = app
        .http
        .get(format!("{}/api/stock/3", app.address))
        .header("traceparent", traceparent)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // Both spans, not just the server span: the query span may end after its
    // parent (sqlx's worker thread drops its handle last).
    let spans = eventually("the server and query spans to be exported", || async {
        let spans: Vec<SpanData> = finished_spans()
            .into_iter()
            .filter(|span| span.span_context.trace_id() == trace_id)
            .collect();
        let has = |kind: SpanKind| spans.iter().any(|span| span.span_kind == kind);
        (has(SpanKind::Server) && has(SpanKind::Client)).then_some(spans)
    })
    .await;
    let server = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Server)
        .unwrap();
    assert_eq!(server.name, "GET /api/stock/{item_id}");
    assert_eq!(server.parent_span_id, parent_id);
    assert_eq!(
        attribute(server, "http.response.status_code").as_deref(),
        Some("200")
    );
    let query = spans
        .iter()
        .find(|s| s.span_kind == SpanKind::Client)
        .unwrap();
    assert_eq!(query.name, "SELECT stock");
    assert_eq!(query.parent_span_id, server.span_context.span_id());
    assert_eq!(
        attribute(query, "db.system.name").as_deref(),
        Some(backend.system())
    );
    app.stop().await;
}

#[tokio::test]
async fn a_poison_message_marks_its_span_as_failed() {
    let app = spawn_app().await;
    let (trace_id, _, traceparent) = remote_parent();
    let headers = long_string_headers(&[("traceparent", &traceparent)]);
    app.publish(b"{", BasicProperties::default().with_headers(headers))
        .await;
    app.take_dead_letters(1).await;

    let (consumer, _) = trace_with_consumer_span(trace_id).await;
    assert!(
        matches!(&consumer.status, Status::Error { description } if description.starts_with("malformed body")),
        "{:?}",
        consumer.status
    );
    assert_eq!(
        attribute(&consumer, "error.type").as_deref(),
        Some("malformed_message")
    );
    app.stop().await;
}

#[tokio::test]
async fn trace_headers_sent_as_short_strings_are_understood() {
    finished_spans(); // the subscriber must be installed before the span is created
    let (trace_id, parent_id, traceparent) = remote_parent();
    let headers = FieldTable::from(BTreeMap::from([
        (
            ShortString::from("traceparent"),
            AMQPValue::ShortString(traceparent.into()),
        ),
        (
            ShortString::from("baggage"),
            AMQPValue::ShortString("tenant=short".into()),
        ),
    ]));
    let mut delivery = Delivery::mock(
        1,
        "checkout".into(),
        "checkout.processed".into(),
        false,
        vec![],
    );
    delivery.properties = BasicProperties::default().with_headers(headers);
    drop(consumer_span(&delivery, "stock-queue"));

    let (consumer, _) = trace_with_consumer_span(trace_id).await;
    assert_eq!(consumer.parent_span_id, parent_id);
    assert_eq!(
        attribute(&consumer, "baggage.tenant").as_deref(),
        Some("short")
    );
}

/// Why the short-string case is tested on a mock delivery: RabbitMQ refuses
/// AMQP short strings in a headers table (its `s` tag means a 16-bit
/// integer there) and closes the publisher's connection, so no such message
/// can reach the consumer through the broker.
#[tokio::test]
async fn rabbitmq_refuses_short_string_headers() {
    let app = spawn_app().await;
    let order = order(&[(1, 1)], 100);
    let headers = FieldTable::from(BTreeMap::from([(
        ShortString::from("traceparent"),
        AMQPValue::ShortString(remote_parent().2.into()),
    )]));
    let confirmed = app
        .publisher
        .basic_publish(
            app.settings.amqp.exchange.as_str().into(),
            app.settings.amqp.routing_key.as_str().into(),
            Default::default(),
            &order.to_json(),
            order_properties(&order, headers),
        )
        .await
        .expect("the frame is sent")
        .await;
    assert!(confirmed.is_err(), "{confirmed:?}");
    app.stop().await;
}

/// On PostgreSQL a batch of several orders locks the stock rows of all of
/// them in one statement before changing any, traced under the batch's
/// first new order (a span has one parent); every order's trace keeps its
/// own statements.
#[tokio::test]
async fn a_batch_locks_its_stock_rows_in_one_statement_on_postgres() {
    let app = spawn_app_on(Backend::Postgres, InitialStock::default()).await;
    // Held back, the consumer finds the orders waiting in its prefetch
    // window and applies them in one batch.
    let gate = app.hold_writes().await;
    let mut traces = Vec::new();
    let mut orders = Vec::new();
    for n in 0..6 {
        let (trace_id, _, traceparent) = remote_parent();
        let order = order(&[(n % 4 + 1, 1), ((n + 1) % 4 + 1, 1)], 100);
        let headers = long_string_headers(&[("traceparent", &traceparent)]);
        app.publish(&order.to_json(), order_properties(&order, headers))
            .await;
        traces.push(trace_id);
        orders.push(order);
    }
    eventually("every order to be delivered to the consumer", || async {
        (app.queue_state().await.0 == 0).then_some(())
    })
    .await;
    gate.release().await;
    for order in &orders {
        app.wait_for_order(order.order_id).await;
    }

    let spans = eventually("every trace's spans to be exported", || async {
        let spans: Vec<SpanData> = finished_spans()
            .into_iter()
            .filter(|span| traces.contains(&span.span_context.trace_id()))
            .collect();
        let complete = traces.iter().all(|trace| {
            let count = |kind: SpanKind| {
                spans
                    .iter()
                    .filter(|s| s.span_context.trace_id() == *trace && s.span_kind == kind)
                    .count()
            };
            // The consumer span and its INSERT and two UPDATEs.
            count(SpanKind::Consumer) == 1 && count(SpanKind::Client) >= 3
        });
        complete.then_some(spans)
    })
    .await;
    let locks: Vec<&SpanData> = spans
        .iter()
        .filter(|span| {
            attribute(span, "db.query.text").is_some_and(|query| query.contains("FOR UPDATE"))
        })
        .collect();
    assert!(!locks.is_empty(), "no batch locked its rows");
    for lock in locks {
        assert_eq!(lock.name, "SELECT stock");
        assert_eq!(lock.span_kind, SpanKind::Client);
        let parent = spans
            .iter()
            .find(|span| span.span_context.span_id() == lock.parent_span_id)
            .expect("the lock's parent is one of the orders' spans");
        assert_eq!(parent.span_kind, SpanKind::Consumer);
    }
    for trace in &traces {
        let mut names: Vec<&str> = spans
            .iter()
            .filter(|s| s.span_context.trace_id() == *trace && s.span_kind == SpanKind::Client)
            .map(|s| s.name.as_ref())
            .filter(|name| *name != "SELECT stock")
            .collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["INSERT processed_orders", "UPDATE stock", "UPDATE stock"]
        );
    }
    app.stop().await;
}
