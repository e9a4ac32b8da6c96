//! stock-service is killed with SIGKILL mid-stream and started again. Whatever it was doing when it died (a transaction not yet
//! committed, a commit not yet acknowledged) is redelivered and applied once.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::time::Duration;

use e2e::{PATIENCE, PipelineOptions, TestPipeline, amqp_url, orders::assert_applied_exactly_once};
use testkit::process::ServiceProcess;

const INITIAL_STOCK: i64 = 1_000_000;

async fn start_stock_service(pipeline: &TestPipeline) -> ServiceProcess {
    let isolation = &pipeline.isolation;
    let env = [
        ("AMQP_URL", amqp_url()),
        ("AMQP_EXCHANGE", isolation.exchange.clone()),
        ("AMQP_QUEUE", isolation.queue.clone()),
        ("AMQP_ROUTING_KEY", isolation.routing_key.clone()),
        ("DATABASE_URL", isolation.database_url()),
        ("HTTP_ADDRESS", "127.0.0.1:0".to_owned()),
        ("INITIAL_STOCK", INITIAL_STOCK.to_string()),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            pipeline.otlp_endpoint.clone(),
        ),
        ("RUST_LOG", "info".to_owned()),
    ];
    e2e::start_process(
        "stock-service",
        &env,
        service::startup::HTTP_ADDRESS_FIELD,
        PATIENCE,
    )
    .await
}

/// Starts stock-service as a process, puts the pipeline under load, stops
/// stock-service with `stop` while orders stream in, lets orders pile up in
/// the queue, starts it again on the same database and queue, and checks
/// that every accepted order was applied exactly once.
async fn interrupt_mid_stream<Stop, Stopped>(stop: Stop)
where
    Stop: FnOnce(ServiceProcess) -> Stopped,
    Stopped: std::future::Future<Output = ()>,
{
    let pipeline = TestPipeline::start_with(PipelineOptions {
        without_stock_service: true,
        ..PipelineOptions::default()
    })
    .await;
    let stock_service = start_stock_service(&pipeline).await;
    let load = pipeline.load(Duration::from_secs(180));

    load.wait_for_more_accepted(100, PATIENCE).await;
    stop(stock_service).await;
    // Orders keep being accepted; they wait in the queue.
    load.wait_for_more_accepted(100, PATIENCE).await;
    let stock_service = start_stock_service(&pipeline).await;
    load.wait_for_more_accepted(100, PATIENCE).await;

    let accepted = load.finish().await;
    assert_applied_exactly_once(
        &pipeline.http,
        &format!("http://{}", stock_service.addr),
        &accepted,
        INITIAL_STOCK,
        Duration::from_secs(120),
    )
    .await;
    drop(stock_service);
    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_stock_service_applies_every_order_once_after_restart() {
    // SIGKILL: whatever it was doing (a transaction not yet committed, a
    // commit not yet acknowledged) is redelivered and applied once.
    interrupt_mid_stream(|process| async { process.kill().await.unwrap() }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_stock_service_finishes_its_work_and_exits_cleanly() {
    // SIGTERM: it stops taking deliveries, finishes (commits and acks) the
    // batch in hand, flushes its spans and exits 0, in bounded time.
    interrupt_mid_stream(|process| async move {
        let stopped = process.stop(Duration::from_secs(30)).await;
        assert!(stopped.graceful, "no exit within 30 s of SIGTERM");
        let status = stopped.status.expect("an exit status");
        assert!(status.success(), "graceful exit, got {status}");
    })
    .await;
}
