//! Asking stock-service what became of accepted orders, against a fake stock-service:
//! an axum server in the test that answers `GET /api/orders/{id}` by the id's prefix
//! (`applied-…`, `rejected-…`, `late-…` processed on the third question, `never-…`
//! always 404, `broken-…` a 500), so every kind of answer and the wait are covered.
//! The real stock-service is asked in `e2e/tests/checkout_command.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use checkout_cli::load::{CheckOrders, LoadConfig, LoadMode, run_load};
use checkout_cli::order_status::{OrderOutcomes, check_orders};
use serde_json::{Value, json};

/// Generous: only reached when something is broken.
const PATIENCE: Duration = Duration::from_secs(30);

#[derive(Clone, Default)]
struct Stock {
    /// Questions per order id, and the traceparent of every question.
    asked: Arc<Mutex<HashMap<String, u32>>>,
    traceparents: Arc<Mutex<Vec<String>>>,
}

struct FakeStock {
    url: String,
    state: Stock,
}

impl FakeStock {
    async fn start() -> Self {
        let state = Stock::default();
        let app = Router::new()
            .route("/api/orders/{id}", get(order))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    fn asked(&self, id: &str) -> u32 {
        self.state
            .asked
            .lock()
            .expect("lock")
            .get(id)
            .copied()
            .unwrap_or(0)
    }
}

async fn order(
    State(stock): State<Stock>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> (StatusCode, Json<Value>) {
    let asked = {
        let mut asked = stock.asked.lock().expect("lock");
        let count = asked.entry(id.clone()).or_default();
        *count += 1;
        *count
    };
    if let Some(traceparent) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
        stock
            .traceparents
            .lock()
            .expect("lock")
            .push(traceparent.to_owned());
    }
    let view = |status: &str, reason: Value| {
        json!({"orderId": "0b9c5f4e-8f3a-4c57-9d2e-1f0a2b3c4d5e", "status": status,
               "reason": reason, "totalAmount": 100, "processedAt": 1_700_000_000_000_i64})
    };
    let not_found = json!({"error": {"code": "not_found", "message": format!("order {id} has not been processed")}});
    let (prefix, _) = id.split_once('-').unwrap_or((&id, ""));
    match prefix {
        "applied" => (StatusCode::OK, Json(view("applied", Value::Null))),
        "rejected" => (
            StatusCode::OK,
            Json(view(
                "rejected",
                json!("insufficient stock for item 1: 1 requested, 0 available"),
            )),
        ),
        "late" if asked >= 3 => (StatusCode::OK, Json(view("applied", Value::Null))),
        "broken" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(
                json!({"error": {"code": "internal", "message": "the stock database failed to answer"}}),
            ),
        ),
        _ => (StatusCode::NOT_FOUND, Json(not_found)),
    }
}

fn ids(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

#[tokio::test]
async fn every_order_is_asked_about_until_decided_or_the_wait_ends() {
    let stock = FakeStock::start().await;
    let mut order_ids = ids("applied", 30);
    order_ids.extend(ids("rejected", 20));
    order_ids.extend(ids("late", 2));
    order_ids.extend(ids("never", 1));
    order_ids.extend(ids("broken", 1));

    // The wait must outlast the two pauses `late-…` needs, and ends because of `never-0`.
    let outcomes = check_orders(
        &reqwest::Client::new(),
        &format!("{}/", stock.url),
        &order_ids,
        Duration::from_secs(2),
    )
    .await
    .expect("stock-service answers");

    assert_eq!(
        outcomes,
        OrderOutcomes {
            checked: 54,
            applied: 32,
            rejected: 20,
            reasons: vec![(
                "insufficient stock for item 1: 1 requested, 0 available".into(),
                20
            )],
            not_yet_processed: 1,
            failed: 1,
            first_failure: Some("500 internal: the stock database failed to answer".into()),
            waited: outcomes.waited,
        }
    );
    assert!(outcomes.waited < PATIENCE, "{outcomes}");
    assert_eq!(stock.asked("applied-0"), 1, "a decided order is asked once");
    assert_eq!(stock.asked("late-1"), 3, "an undecided one until decided");
    assert!(
        stock.asked("never-0") > 3,
        "and the others until the wait ends"
    );
    let traceparents = stock.state.traceparents.lock().expect("lock").clone();
    assert!(!traceparents.is_empty());
    assert!(
        traceparents
            .iter()
            .all(|t| t.starts_with("00-") && t.ends_with("-00")),
        "questions ask not to be traced: {traceparents:?}"
    );
}

#[tokio::test]
async fn an_unreachable_stock_service_is_one_line_not_a_failure() {
    // A port nothing listens on: bind, note the address, close.
    let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port");
    let url = format!("http://{addr}");

    let error = check_orders(
        &reqwest::Client::new(),
        &url,
        &ids("applied", 100),
        PATIENCE,
    )
    .await
    .expect_err("nothing listens");

    assert_eq!(
        error.to_string(),
        format!("stock-service at {url} did not answer (no connection); order status not checked")
    );
}

#[tokio::test]
async fn the_load_report_ends_with_what_became_of_the_orders() {
    // A gateway that accepts every checkout as `rejected-N` or `applied-N`.
    let gateway = Router::new().route(
        "/api/checkout",
        axum::routing::post(|| async {
            static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let kind = if n.is_multiple_of(4) {
                "applied"
            } else {
                "rejected"
            };
            (
                StatusCode::ACCEPTED,
                Json(json!({"orderId": format!("{kind}-{n}"), "totalAmount": 100, "traceId": "t"})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let gateway_url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, gateway).await });
    let stock = FakeStock::start().await;

    let mut config = LoadConfig::new(gateway_url, LoadMode::Closed { concurrency: 2 });
    config.requests = Some(20);
    config.check_orders = Some(CheckOrders {
        stock_url: stock.url.clone(),
        timeout: PATIENCE,
    });
    let report = run_load(config).await.expect("runs");

    let orders = report.orders.clone().expect("asked").expect("answered");
    assert_eq!((orders.applied, orders.rejected), (5, 15), "{report}");
    let printed = report.to_string();
    assert!(
        printed.contains(
            "\norders      20 accepted orders: 5 applied, 15 rejected, 0 not yet processed"
        ),
        "{printed}"
    );
    assert!(
        printed
            .ends_with("\n  15 rejected: insufficient stock for item 1: 1 requested, 0 available"),
        "{printed}"
    );
}
