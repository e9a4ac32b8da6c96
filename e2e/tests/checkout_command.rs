//! The `checkout` tool's library against the real pipeline: `send` one checkout and
//! follow it to stock-service and into a complete trace, with the services' log
//! records of that trace; `run_load` with trace
//! verification on the pipeline's own OTLP receiver, where every accepted request
//! must leave the six spans every order has; and `run_load` past the stock, where
//! every request gets a 202 and the report tells which stock-service rejected.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::time::Duration;

use checkout_cli::checkout::{CheckoutResponse, Item};
use checkout_cli::load::{CheckOrders, LoadConfig, LoadMode, LoadReport, VerifyTraces, run_load};
use checkout_cli::send::{SendOptions, send};
use checkout_cli::waterfall::{render_logs, render_waterfall};
use e2e::{PATIENCE, PipelineOptions, TestPipeline};
use testkit::receiver::{ReceivedLog, SpanKind};
use testkit::verify::{is_complete, missing_spans};

/// The report, then the waterfalls of up to three incomplete traces: what to look at
/// when verification fails.
fn explain(report: &LoadReport, pipeline: &TestPipeline) -> String {
    let store = pipeline.receiver.store();
    let incomplete = report
        .accepted_trace_ids
        .iter()
        .map(|id| store.trace(id))
        .filter(|spans| !is_complete(spans))
        .take(3)
        .map(|spans| render_waterfall(&spans, 30));
    std::iter::once(report.to_string())
        .chain(incomplete)
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_checks_out_in_a_trace_of_its_own() {
    let pipeline = TestPipeline::start().await;
    let before = pipeline.stock(1).await;
    let options = SendOptions {
        gateway: pipeline.gateway_url.clone(),
        items: vec![Item { id: 1, quantity: 2 }],
        baggage: vec!["tenant=acme".parse().expect("baggage")],
        idempotency_key: Some("cli-e2e-1".into()),
        api_key: None,
    };

    let outcome = send(&pipeline.http, &options)
        .await
        .expect("gateway answers");

    assert!(outcome.is_success(), "{outcome}");
    let Some(CheckoutResponse::Accepted(accepted)) = &outcome.response else {
        panic!("not accepted: {outcome}");
    };
    assert_eq!(accepted.total_amount, 200);
    assert_eq!(
        accepted.trace_id, outcome.trace_id,
        "the gateway continues our trace"
    );

    let order = pipeline.wait_for_order(&accepted.order_id).await;
    assert_eq!(order["status"], "applied", "{order}");
    assert_eq!(pipeline.stock(1).await, before - 2);

    let spans = pipeline
        .wait_for_trace(&outcome.trace_id, is_complete)
        .await;
    assert_eq!(missing_spans(&spans), []);
    let waterfall = render_waterfall(&spans, 40);
    let header = waterfall.lines().next().unwrap_or_default();
    assert!(
        header.starts_with(&format!("trace {}", outcome.trace_id)),
        "{waterfall}"
    );
    assert!(
        header.ends_with("3 services: gateway, checkout-service, stock-service"),
        "{waterfall}"
    );
    assert_eq!(waterfall.lines().count(), 2 + spans.len(), "{waterfall}");

    // The services' log events in this trace arrive as OTLP log records carrying
    // its ids: what `checkout traces --logs` prints under the waterfall.
    pipeline.flush_telemetry().await;
    let of_trace = |logs: &[ReceivedLog]| -> Vec<ReceivedLog> {
        logs.iter()
            .filter(|log| log.trace_id.as_deref() == Some(outcome.trace_id.as_str()))
            .cloned()
            .collect()
    };
    let has = |logs: &[ReceivedLog], service: &str, message: &str| {
        logs.iter()
            .any(|log| log.service_name == service && log.message() == message)
    };
    let logs = pipeline
        .receiver
        .logs()
        .wait_for(PATIENCE, |logs| {
            let mine = of_trace(logs);
            has(&mine, "checkout-service", "order accepted")
                && has(&mine, "stock-service", "order processed")
        })
        .await
        .map(|logs| of_trace(&logs))
        .unwrap_or_else(|logs| {
            panic!(
                "the trace's log records did not arrive: {:?}",
                of_trace(&logs)
            )
        });
    let consumer = spans
        .iter()
        .find(|span| span.kind == SpanKind::Consumer)
        .expect("the consumer span");
    let processed = logs
        .iter()
        .find(|log| log.message() == "order processed")
        .expect("found above");
    assert_eq!(
        processed.span_id.as_deref(),
        Some(consumer.span_id.as_str())
    );
    let rendered = render_logs(
        &spans,
        &pipeline.receiver.logs().logs_of_trace(&outcome.trace_id),
    );
    assert!(
        rendered.contains("checkout-service") && rendered.contains("order accepted"),
        "{rendered}"
    );

    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_load_leaves_a_complete_trace_for_every_request() {
    let pipeline = TestPipeline::start().await;
    let mut config = LoadConfig::new(
        &pipeline.gateway_url,
        LoadMode::Open {
            rate: 25.0,
            max_in_flight: 1000,
        },
    );
    // 50 arrivals over 2 s; the per-request timeout is generous for a loaded 2-core box.
    config.duration = Some(Duration::from_secs(2));
    config.timeout = PATIENCE;
    config.items = vec![Item { id: 2, quantity: 1 }];
    config.verify = Some(VerifyTraces {
        store: pipeline.receiver.store(),
        timeout: PATIENCE,
    });

    let report = run_load(config).await.expect("runs");

    assert_eq!((report.sent, report.not_sent), (50, 0), "\n{report}");
    assert_eq!(report.accepted(), 50, "every request succeeds:\n{report}");
    assert_eq!(report.statuses.get(&202), Some(&50), "\n{report}");
    let traces = report.traces.as_ref().expect("verified");
    assert_eq!(traces.checked, 50);
    assert!(
        traces.all_complete(),
        "every trace has all six spans:\n{}",
        explain(&report, &pipeline)
    );

    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_load_with_a_fixed_count() {
    let pipeline = TestPipeline::start().await;
    let before = pipeline.stock(3).await;
    let mut config = LoadConfig::new(&pipeline.gateway_url, LoadMode::Closed { concurrency: 4 });
    config.requests = Some(40);
    config.timeout = PATIENCE;
    config.items = vec![Item { id: 3, quantity: 1 }];
    config.verify = Some(VerifyTraces {
        store: pipeline.receiver.store(),
        timeout: PATIENCE,
    });

    let report = run_load(config).await.expect("runs");

    assert_eq!(report.sent, 40, "\n{report}");
    assert_eq!(report.accepted(), 40, "\n{report}");
    assert!(
        report.traces.as_ref().is_some_and(|t| t.all_complete()),
        "\n{}",
        explain(&report, &pipeline)
    );
    // Complete traces include stock-service's database spans: the stock moved.
    assert_eq!(pipeline.stock(3).await, before - 40);

    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_past_the_stock_reports_the_orders_stock_service_rejected() {
    let pipeline = TestPipeline::start_with(PipelineOptions {
        initial_stock: 10,
        ..PipelineOptions::default()
    })
    .await;
    let mut config = LoadConfig::new(&pipeline.gateway_url, LoadMode::Closed { concurrency: 2 });
    config.requests = Some(30);
    config.timeout = PATIENCE;
    config.items = vec![Item { id: 1, quantity: 1 }];
    config.check_orders = Some(CheckOrders {
        stock_url: pipeline.stock_url.clone(),
        timeout: PATIENCE,
    });

    let report = run_load(config).await.expect("runs");

    // The gateway accepts all 30: a 202 means the broker has the order, nothing more.
    assert_eq!(report.accepted(), 30, "\n{report}");
    let orders = report
        .orders
        .clone()
        .expect("asked")
        .expect("stock-service answers");
    assert_eq!(
        (
            orders.checked,
            orders.applied,
            orders.rejected,
            orders.not_yet_processed,
            orders.failed
        ),
        (30, 10, 20, 0, 0),
        "\n{report}"
    );
    assert_eq!(
        orders.reasons,
        [(
            "insufficient stock for item 1: 1 requested, 0 available".to_owned(),
            20
        )]
    );
    let printed = report.to_string();
    assert!(
        printed.contains(
            "orders      30 accepted orders: 10 applied, 20 rejected, 0 not yet processed"
        ),
        "{printed}"
    );
    assert_eq!(pipeline.stock(1).await, 0);

    pipeline.shut_down().await;
}
