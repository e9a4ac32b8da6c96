//! The services' own metrics after real checkouts, through the real pipeline
//! (broker, database, OTLP receiver), exported every 200 ms: each span kind's
//! duration histogram counts one measurement per operation, with the
//! attributes the spans carry; the orders counter, the lag histogram, the
//! stock gauge and the broker gauge say what happened; and no point carries
//! an order id (a series per order would grow without end).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::time::Duration;

use e2e::{PATIENCE, PipelineOptions, TestPipeline};
use reqwest::StatusCode;
use serde_json::json;
use telemetry::metric_names::{
    BROKER_CONNECTED, DB_CLIENT_OPERATION_DURATION, HTTP_SERVER_REQUEST_DURATION,
    MESSAGING_CLIENT_CONSUMED_MESSAGES, MESSAGING_CLIENT_OPERATION_DURATION,
    MESSAGING_CLIENT_SENT_MESSAGES, MESSAGING_PROCESS_DURATION, ORDER_LAG, ORDER_OUTCOME,
    ORDERS_PROCESSED, RPC_CLIENT_DURATION, RPC_SERVER_DURATION, STOCK_AVAILABLE,
};
use testkit::receiver::{AttributeValue, MetricPoint};

/// Checkouts made; each orders one unit of item 1.
const ORDERS: u64 = 5;
const INITIAL_STOCK: i64 = 1000;

fn int(point: &MetricPoint, key: &str) -> Option<i64> {
    point.attributes.get(key).and_then(AttributeValue::as_i64)
}

fn count(point: &MetricPoint) -> u64 {
    point.histogram().map_or(0, |histogram| histogram.count)
}

/// Waits until metric `name` of `service` has a point that `matches`, whose
/// value (a histogram's count, a sum's or gauge's number) `done` accepts.
async fn wait_for(
    pipeline: &TestPipeline,
    service: &str,
    name: &str,
    matches: impl Fn(&MetricPoint) -> bool,
    done: impl Fn(f64) -> bool,
) -> MetricPoint {
    let value = |point: &MetricPoint| point.number().unwrap_or(count(point) as f64);
    let points = pipeline
        .receiver
        .metrics()
        .wait_for_metric(service, name, PATIENCE, |points| {
            points.iter().any(|p| matches(p) && done(value(p)))
        })
        .await
        .unwrap_or_else(|points| panic!("{service} {name}: not as expected: {points:#?}"));
    points
        .into_iter()
        .find(|p| matches(p) && done(value(p)))
        .expect("found above")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkouts_are_measured_in_every_service() {
    let pipeline = TestPipeline::start_with(PipelineOptions {
        initial_stock: INITIAL_STOCK,
        telemetry: |config| config.metrics.interval = Duration::from_millis(200),
        ..PipelineOptions::default()
    })
    .await;
    let mut order_ids = Vec::new();
    for _ in 0..ORDERS {
        let (status, body) = pipeline.checkout(&json!({"itemsID": [1]}), &[]).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        order_ids.push(body["orderId"].as_str().unwrap().to_owned());
    }
    for order_id in &order_ids {
        pipeline.wait_for_order(order_id).await;
    }
    let n = ORDERS as f64;
    let exactly = |expected: f64| move |value: f64| value == expected;

    let http = wait_for(
        &pipeline,
        "gateway",
        HTTP_SERVER_REQUEST_DURATION,
        |p| {
            p.attr_str("http.request.method") == Some("POST")
                && p.attr_str("http.route") == Some("/api/checkout")
                && int(p, "http.response.status_code") == Some(202)
        },
        exactly(n),
    )
    .await;
    assert_eq!(http.unit, "s");
    assert!(http.attr_str("error.type").is_none());

    let client = wait_for(
        &pipeline,
        "gateway",
        RPC_CLIENT_DURATION,
        |p| int(p, "rpc.grpc.status_code") == Some(0),
        exactly(n),
    )
    .await;
    assert_eq!(client.attr_str("rpc.system"), Some("grpc"));
    assert_eq!(client.attr_str("rpc.service"), Some("checkout.Checkout"));
    assert_eq!(client.attr_str("rpc.method"), Some("DoCheckout"));
    wait_for(
        &pipeline,
        "checkout-service",
        RPC_SERVER_DURATION,
        |p| {
            int(p, "rpc.grpc.status_code") == Some(0)
                && p.attr_str("rpc.method") == Some("DoCheckout")
        },
        exactly(n),
    )
    .await;

    let exchange = pipeline.isolation.exchange.clone();
    let publish = wait_for(
        &pipeline,
        "checkout-service",
        MESSAGING_CLIENT_OPERATION_DURATION,
        |p| p.attr_str("messaging.operation.name") == Some("publish"),
        exactly(n),
    )
    .await;
    assert_eq!(publish.attr_str("messaging.system"), Some("rabbitmq"));
    assert_eq!(
        publish.attr_str("messaging.destination.name"),
        Some(exchange.as_str())
    );
    let sent = wait_for(
        &pipeline,
        "checkout-service",
        MESSAGING_CLIENT_SENT_MESSAGES,
        |p| p.attr_str("error.type").is_none(),
        exactly(n),
    )
    .await;
    assert_eq!(sent.unit, "{message}");
    wait_for(
        &pipeline,
        "checkout-service",
        ORDERS_PROCESSED,
        |p| p.attr_str(ORDER_OUTCOME) == Some("accepted"),
        exactly(n),
    )
    .await;

    let process = wait_for(
        &pipeline,
        "stock-service",
        MESSAGING_PROCESS_DURATION,
        |p| p.attr_str("error.type").is_none(),
        exactly(n),
    )
    .await;
    assert_eq!(
        process.attr_str("messaging.consumer.group.name"),
        Some(pipeline.isolation.queue.as_str())
    );
    wait_for(
        &pipeline,
        "stock-service",
        MESSAGING_CLIENT_CONSUMED_MESSAGES,
        |p| p.attr_str("error.type").is_none(),
        exactly(n),
    )
    .await;
    let insert = wait_for(
        &pipeline,
        "stock-service",
        DB_CLIENT_OPERATION_DURATION,
        |p| {
            p.attr_str("db.operation.name") == Some("INSERT")
                && p.attr_str("db.collection.name") == Some("processed_orders")
        },
        |value| value >= n,
    )
    .await;
    assert_eq!(insert.attr_str("db.system.name"), Some("sqlite"));
    wait_for(
        &pipeline,
        "stock-service",
        ORDERS_PROCESSED,
        |p| p.attr_str(ORDER_OUTCOME) == Some("applied"),
        exactly(n),
    )
    .await;
    let lag = wait_for(&pipeline, "stock-service", ORDER_LAG, |_| true, exactly(n)).await;
    assert_eq!(lag.unit, "s");
    wait_for(
        &pipeline,
        "stock-service",
        STOCK_AVAILABLE,
        |p| int(p, "checkout.item.id") == Some(1),
        exactly((INITIAL_STOCK - ORDERS as i64) as f64),
    )
    .await;
    for service in ["checkout-service", "stock-service"] {
        wait_for(&pipeline, service, BROKER_CONNECTED, |_| true, exactly(1.0)).await;
    }

    // No series names an order: no attribute value holds an order id.
    let series = pipeline.receiver.metrics().series();
    for series in &series {
        let text = format!("{series:?}");
        for order_id in &order_ids {
            assert!(!text.contains(order_id.as_str()), "an order id in {text}");
        }
    }
    pipeline.shut_down().await;
}

/// The text `service` serves on `/metrics`.
async fn scrape(pipeline: &TestPipeline, name: &str) -> String {
    let service = pipeline
        .services
        .iter()
        .find(|service| service.name == name)
        .unwrap_or_else(|| panic!("no {name}"));
    let address = service.metrics_address().expect("METRICS_ADDRESS is set");
    let response = pipeline
        .http
        .get(format!("http://{address}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_service_serves_its_own_metrics_for_prometheus() {
    let pipeline = TestPipeline::start_with(PipelineOptions {
        initial_stock: INITIAL_STOCK,
        telemetry: |config| {
            config.metrics.prometheus_address = Some(([127, 0, 0, 1], 0).into());
        },
        ..PipelineOptions::default()
    })
    .await;
    let (status, body) = pipeline.checkout(&json!({"itemsID": [1]}), &[]).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    pipeline
        .wait_for_order(body["orderId"].as_str().unwrap())
        .await;

    // Read at each scrape: the values are there at once, no export to wait for.
    let gateway = scrape(&pipeline, "gateway").await;
    let served = gateway
        .lines()
        .find(|line| {
            line.starts_with("http_server_request_duration_seconds_count{")
                && line.contains(r#"http_route="/api/checkout""#)
                && line.contains(r#"http_response_status_code="202""#)
        })
        .unwrap_or_else(|| panic!("no checkout request in:\n{gateway}"));
    assert!(served.ends_with(" 1"), "{served}");
    // A registry per service: the gateway shows none of the others' metrics.
    assert!(!gateway.contains("checkout_orders"), "{gateway}");

    let checkout = scrape(&pipeline, "checkout-service").await;
    assert!(
        checkout.contains("rpc_server_call_duration_seconds_count{"),
        "{checkout}"
    );
    let stock = scrape(&pipeline, "stock-service").await;
    let applied = stock
        .lines()
        .find(|line| {
            line.starts_with("checkout_orders_total{")
                && line.contains(r#"checkout_order_outcome="applied""#)
        })
        .unwrap_or_else(|| panic!("no applied orders in:\n{stock}"));
    assert!(applied.ends_with(" 1"), "{applied}");
    pipeline.shut_down().await;
}
