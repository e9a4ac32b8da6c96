//! One checkout through the whole pipeline: HTTP → gRPC → AMQP → SQL, checked
//! through the public APIs (the gateway, stock-service's HTTP API) and the
//! spans the three services export to a real OTLP receiver.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use e2e::{PipelineOptions, TestPipeline, span_of};
use reqwest::StatusCode;
use serde_json::json;
use testkit::receiver::{SpanKind, SpanStatus};
use testkit::verify::is_complete;

/// A client-side trace the gateway must continue.
const CLIENT_TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN_ID: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_checkout_makes_one_complete_trace_and_moves_stock_once() {
    let pipeline = TestPipeline::start().await;
    let before = (pipeline.stock(1).await, pipeline.stock(3).await);

    let traceparent = format!("00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01");
    let (status, body) = pipeline
        .checkout(
            &json!({"items": [{"id": 1, "quantity": 2}, {"id": 3, "quantity": 1}]}),
            &[("traceparent", &traceparent), ("baggage", "tenant=acme")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["totalAmount"], 2 * 100 + 399);
    assert_eq!(
        body["traceId"], CLIENT_TRACE_ID,
        "the client's trace is continued"
    );
    let order_id = body["orderId"].as_str().expect("orderId").to_owned();

    let order = pipeline.wait_for_order(&order_id).await;
    assert_eq!(order["status"], "applied", "{order}");
    assert_eq!(pipeline.stock(1).await, before.0 - 2);
    assert_eq!(pipeline.stock(3).await, before.1 - 1);

    let spans = pipeline.wait_for_trace(CLIENT_TRACE_ID, is_complete).await;
    assert!(spans.iter().all(|s| s.trace_id == CLIENT_TRACE_ID));

    // 1. gateway SERVER, child of the client's span.
    let http = span_of(&spans, "gateway", SpanKind::Server);
    assert_eq!(http.name, "POST /api/checkout");
    assert_eq!(http.parent_span_id.as_deref(), Some(CLIENT_SPAN_ID));
    assert_eq!(http.attr_str("http.request.method"), Some("POST"));
    assert_eq!(http.attr_str("http.route"), Some("/api/checkout"));
    assert_eq!(http.attr_str("url.path"), Some("/api/checkout"));
    assert_eq!(http.attr_i64("http.response.status_code"), Some(202));
    assert_eq!(http.status, SpanStatus::Unset);

    // 2. gateway CLIENT.
    let client = span_of(&spans, "gateway", SpanKind::Client);
    assert_eq!(client.name, "checkout.Checkout/DoCheckout");
    assert_eq!(client.parent_span_id.as_ref(), Some(&http.span_id));
    assert_eq!(client.attr_str("rpc.system"), Some("grpc"));
    assert_eq!(client.attr_str("rpc.service"), Some("checkout.Checkout"));
    assert_eq!(client.attr_str("rpc.method"), Some("DoCheckout"));
    assert_eq!(client.attr_i64("rpc.grpc.status_code"), Some(0));
    assert_eq!(client.attr_str("server.address"), Some("127.0.0.1"));

    // 3. checkout-service SERVER.
    let server = span_of(&spans, "checkout-service", SpanKind::Server);
    assert_eq!(server.name, "checkout.Checkout/DoCheckout");
    assert_eq!(server.parent_span_id.as_ref(), Some(&client.span_id));
    assert_eq!(server.attr_str("rpc.system"), Some("grpc"));
    assert_eq!(server.attr_i64("rpc.grpc.status_code"), Some(0));

    // 4. checkout-service PRODUCER.
    let exchange = pipeline.isolation.exchange.as_str();
    let producer = span_of(&spans, "checkout-service", SpanKind::Producer);
    assert_eq!(producer.name, format!("publish {exchange}"));
    assert_eq!(producer.parent_span_id.as_ref(), Some(&server.span_id));
    for span in [
        producer,
        span_of(&spans, "stock-service", SpanKind::Consumer),
    ] {
        assert_eq!(span.attr_str("messaging.system"), Some("rabbitmq"));
        assert_eq!(span.attr_str("messaging.destination.name"), Some(exchange));
        assert_eq!(
            span.attr_str("messaging.rabbitmq.destination.routing_key"),
            Some("checkout.processed")
        );
        assert_eq!(
            span.attr_str("messaging.message.id"),
            Some(order_id.as_str())
        );
        assert!(span.attr_str("messaging.operation.type").is_some());
    }

    // 5. stock-service CONSUMER, child of the PRODUCER, with the baggage.
    let consumer = span_of(&spans, "stock-service", SpanKind::Consumer);
    assert_eq!(consumer.name, format!("process {exchange}"));
    assert_eq!(consumer.parent_span_id.as_ref(), Some(&producer.span_id));
    assert_eq!(consumer.attr_str("baggage.tenant"), Some("acme"));

    // 6. stock-service CLIENT database spans, children of the CONSUMER.
    let db: Vec<_> = spans
        .iter()
        .filter(|s| s.service_name == "stock-service" && s.kind == SpanKind::Client)
        .collect();
    assert!(db.iter().any(|s| s.name == "UPDATE stock"), "{db:#?}");
    for span in db {
        assert_eq!(span.parent_span_id.as_ref(), Some(&consumer.span_id));
        assert_eq!(span.attr_str("db.system"), Some("sqlite"));
    }

    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_client_context_is_linked_not_continued() {
    let pipeline = TestPipeline::start_with(PipelineOptions {
        gateway: |settings| settings.trust_client_trace_context = false,
        ..PipelineOptions::default()
    })
    .await;
    let traceparent = format!("00-{CLIENT_TRACE_ID}-{CLIENT_SPAN_ID}-01");
    let (status, body) = pipeline
        .checkout(
            &json!({"itemsID": [1]}),
            &[("traceparent", &traceparent), ("baggage", "tenant=mallory")],
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let trace_id = body["traceId"].as_str().unwrap().to_owned();
    assert_ne!(trace_id, CLIENT_TRACE_ID, "a new trace");

    let spans = pipeline.wait_for_trace(&trace_id, is_complete).await;
    let http = span_of(&spans, "gateway", SpanKind::Server);
    assert_eq!(http.parent_span_id, None, "the trace starts at the gateway");
    assert_eq!(http.links.len(), 1);
    assert_eq!(http.links[0].trace_id, CLIENT_TRACE_ID);
    assert_eq!(http.links[0].span_id, CLIENT_SPAN_ID);
    let consumer = span_of(&spans, "stock-service", SpanKind::Consumer);
    assert_eq!(
        consumer.attr_str("baggage.tenant"),
        None,
        "untrusted baggage dropped"
    );
    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_original_items_id_form_is_accepted() {
    let pipeline = TestPipeline::start().await;
    let before: Vec<i64> = futures_stock(&pipeline).await;

    let (status, body) = pipeline
        .checkout(&json!({"itemsID": [1, 2, 3, 4]}), &[])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["totalAmount"], 100 + 250 + 399 + 1250);
    assert_eq!(body["traceId"].as_str().map(str::len), Some(32));

    let order = pipeline
        .wait_for_order(body["orderId"].as_str().unwrap())
        .await;
    assert_eq!(order["status"], "applied");
    let after = futures_stock(&pipeline).await;
    assert!(before.iter().zip(&after).all(|(b, a)| a + 1 == *b));
    pipeline.shut_down().await;
}

async fn futures_stock(pipeline: &TestPipeline) -> Vec<i64> {
    let mut levels = Vec::new();
    for item in 1..=4 {
        levels.push(pipeline.stock(item).await);
    }
    levels
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_beyond_stock_is_rejected_and_changes_nothing() {
    let pipeline = TestPipeline::start_with(PipelineOptions {
        initial_stock: 3,
        ..PipelineOptions::default()
    })
    .await;
    let (status, body) = pipeline
        .checkout(
            &json!({"items": [{"id": 2, "quantity": 2}, {"id": 4, "quantity": 5}]}),
            &[],
        )
        .await;
    // Accepted by checkout (it does not own stock); rejected where stock lives.
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let order = pipeline
        .wait_for_order(body["orderId"].as_str().unwrap())
        .await;
    assert_eq!(order["status"], "rejected", "{order}");
    assert!(order["reason"].as_str().unwrap_or_default().contains('4'));
    assert_eq!(
        pipeline.stock(2).await,
        3,
        "nothing of a rejected order is applied"
    );
    assert_eq!(pipeline.stock(4).await, 3);
    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_idempotency_key_gives_one_order_and_one_stock_change() {
    let pipeline = TestPipeline::start().await;
    let before = pipeline.stock(2).await;
    let body = json!({"items": [{"id": 2, "quantity": 3}]});
    let key = [("idempotency-key", "order-42-attempt")];

    let (first_status, first) = pipeline.checkout(&body, &key).await;
    let (second_status, second) = pipeline.checkout(&body, &key).await;
    assert_eq!(first_status, StatusCode::ACCEPTED);
    assert_eq!(second_status, StatusCode::ACCEPTED);
    assert_eq!(first["orderId"], second["orderId"]);
    assert_eq!(first["totalAmount"], second["totalAmount"]);

    let (status, reused) = pipeline
        .checkout(&json!({"items": [{"id": 2, "quantity": 4}]}), &key)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{reused}");
    assert_eq!(reused["error"]["code"], "idempotency_key_reused");

    // A later order without a key is processed after both copies, so once it
    // is applied the duplicate has had every chance to be applied too.
    let (_, later) = pipeline.checkout(&json!({"itemsID": [1]}), &[]).await;
    pipeline
        .wait_for_order(later["orderId"].as_str().unwrap())
        .await;
    let order = pipeline
        .wait_for_order(first["orderId"].as_str().unwrap())
        .await;
    assert_eq!(order["status"], "applied");
    assert_eq!(pipeline.stock(2).await, before - 3, "applied exactly once");
    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_container_health_check_asks_grpc_health() {
    let mut pipeline = TestPipeline::start().await;
    let port = pipeline.service("checkout-service").addr.port();
    let health_check = || {
        tokio::process::Command::new(testkit::process::binary("checkout-service").unwrap())
            .arg("health-check")
            .env("GRPC_ADDRESS", format!("127.0.0.1:{port}"))
            .env("OTEL_SDK_DISABLED", "true")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
    };
    assert!(health_check().await.unwrap().success());

    tokio::task::block_in_place(|| pipeline.service("checkout-service").stop()).unwrap();
    assert!(!health_check().await.unwrap().success());
    pipeline.shut_down().await;
}
