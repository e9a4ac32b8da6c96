//! `docker compose up`, run as a user runs it: the single-node demo
//! (`docker-compose.yaml`), then the scaled-out one with
//! `docker-compose.cluster.yaml`, each from built images to `down -v`.
//!
//! The demo: every health check passes; the storefront answers; a checkout
//! is accepted, moves the stock by exactly the cart and is `applied`; its
//! trace is complete at the collector the file configures (Jaeger's query
//! API where the real Jaeger runs; where it cannot, the stand-in's JSON
//! output); Prometheus has scraped every service; no service logged an
//! error; nothing is left after `down -v`.
//!
//! The cluster: three broker nodes in one cluster, the quorum queue on all
//! three, both gateways answering; then a paced load through both gateways
//! while the node of the queue's leader is killed and started again: the
//! stock moves by exactly the accepted orders, every accepted order's trace
//! is complete, and the window of refusals is printed.
//!
//! Needs Docker and the images built: `scripts/compose-test` does both, and
//! runs this file with `--features compose` (without it, it is empty).

#![cfg(feature = "compose")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::{collections::HashMap, time::Duration};

use e2e::{
    docker::{PUBLISH_ADDRESS, Stack, spans_from_standin, trace_problem},
    get_json,
    orders::{Accepted, Load, Pace, assert_applied_exactly_once},
};
use serde_json::{Value, json};
use testkit::poll;
use testkit::receiver::ReceivedSpan;

const BASE: &[&str] = &["docker-compose.yaml"];
const CLUSTER: &[&str] = &["docker-compose.yaml", "docker-compose.cluster.yaml"];
/// The stock every item starts with (`INITIAL_STOCK` in docker-compose.yaml).
const INITIAL_STOCK: i64 = 1_000_000;
/// Generous for a loaded 2-core machine starting a dozen containers.
const PATIENCE: Duration = Duration::from_secs(240);
const STOCK_PORT: u16 = 8082;

/// The compose tests take turns: each stack uses the same published ports.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn url(port: u16, path: &str) -> String {
    format!("http://{PUBLISH_ADDRESS}:{port}{path}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_does_what_a_user_does() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let stack = Stack::up("demo", BASE);
    stack.wait_until_healthy(PATIENCE).await;
    let http = reqwest::Client::new();

    let page = http.get(url(8081, "/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("<html"));

    let stock = format!(
        "http://{}:{STOCK_PORT}",
        stack.address_of(&stack.containers_of("stock-service")[0])
    );
    let before = stock_of(&http, &stock, 1).await;
    let cart = json!({"items": [{"id": 1, "quantity": 3}]});
    let answer = http
        .post(url(8081, "/api/checkout"))
        .json(&cart)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 202);
    let answer: Value = answer.json().await.unwrap();
    let order_id = answer["orderId"].as_str().unwrap();
    let trace_id = answer["traceId"].as_str().unwrap();

    let status: Value = poll::until("the order applied", PATIENCE, || {
        let http = http.clone();
        let order = url(8081, &format!("/api/orders/{order_id}"));
        async move {
            let record: Value = http.get(order).send().await.ok()?.json().await.ok()?;
            (record["status"] != "pending" && !record["status"].is_null()).then_some(record)
        }
    })
    .await;
    assert_eq!(status["status"], "applied", "{status}");
    assert_eq!(stock_of(&http, &stock, 1).await, before - 3);

    let traces = traces_of(&stack, &http, &[trace_id.to_owned()]).await;
    let trace = traces.get(trace_id).unwrap_or_else(|| {
        panic!(
            "no span of the checkout's trace {trace_id} reached the collector the compose file \
             configures (OTEL_EXPORTER_OTLP_ENDPOINT, the jaeger service)"
        )
    });
    if let Some(problem) = trace_problem(trace) {
        panic!("the checkout's trace: {problem}: {trace:#?}");
    }
    let services: std::collections::BTreeSet<_> = trace
        .iter()
        .map(|span| span.service_name.as_str())
        .collect();
    assert_eq!(
        services.into_iter().collect::<Vec<_>>(),
        ["checkout-service", "gateway", "stock-service"]
    );

    every_service_scraped(&http).await;

    let errors: Vec<String> = stack
        .logs(&["gateway", "checkout-service", "stock-service"])
        .into_iter()
        .filter(|line| line.contains(r#""level":"ERROR""#))
        .collect();
    assert!(errors.is_empty(), "the services logged errors: {errors:#?}");

    stack.down();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_carries_on_when_a_broker_node_is_killed_under_load() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let stack = Stack::up("cluster", CLUSTER);
    stack.wait_until_healthy(PATIENCE).await;
    let http = reqwest::Client::new();

    let status = stack.compose(&[
        "exec",
        "-T",
        "rabbitmq",
        "rabbitmqctl",
        "cluster_status",
        "--formatter",
        "json",
    ]);
    let status: Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        status["running_nodes"].as_array().map(Vec::len),
        Some(3),
        "{status}"
    );
    let queue = stack.compose(&[
        "exec",
        "-T",
        "rabbitmq",
        "rabbitmq-queues",
        "quorum_status",
        "stock-queue",
        "--formatter",
        "json",
    ]);
    let members: Value = serde_json::from_str(&queue).unwrap();
    assert_eq!(members.as_array().map(Vec::len), Some(3), "{members}");
    // The node to kill: the queue's leader, so that the queue fails over
    // while the publishers that were on that node reconnect (the case in
    // which RabbitMQ 3.10 may hand them a channel that never confirms).
    let leader = members
        .as_array()
        .into_iter()
        .flatten()
        .find(|member| member["Raft State"] == "leader")
        .and_then(|member| member["Node Name"].as_str())
        .unwrap_or_else(|| panic!("no leader: {members}"));
    // rabbit@rabbitmq-1 is the service `rabbitmq`, the others are named
    // after their host.
    let victim = match leader.trim_start_matches("rabbit@") {
        "rabbitmq-1" => "rabbitmq",
        host => host,
    };
    for port in [8081, 8082] {
        let ready = http.get(url(port, "/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200, "the gateway on {port}");
    }

    // 100 checkouts a second for about 20 s, half through each gateway;
    // the leader's node killed after 5 s and started again after 10.
    let loads = [8081, 8082].map(|port| {
        Load::start_at(
            http.clone(),
            url(port, ""),
            Pace::PerSecond(50),
            Duration::from_secs(300),
        )
    });
    for load in &loads {
        load.progress().wait_for_accepted(250, PATIENCE).await;
    }
    eprintln!("killing {victim}, the queue's leader");
    stack.compose(&["kill", victim]);
    for load in &loads {
        load.wait_for_more_accepted(250, PATIENCE).await;
    }
    eprintln!("starting {victim} again");
    stack.compose(&["start", victim]);
    stack.wait_until_healthy(PATIENCE).await;
    for load in &loads {
        load.wait_for_more_accepted(250, PATIENCE).await;
    }
    let mut accepted: Vec<Accepted> = Vec::new();
    for (load, port) in loads.into_iter().zip([8081, 8082]) {
        let progress = load.progress();
        eprintln!(
            "gateway :{port}: answers {:?}, refusals for {:?}",
            progress.answers(),
            progress.refusal_window()
        );
        accepted.extend(load.finish().await);
    }

    let stock = format!(
        "http://{}:{STOCK_PORT}",
        stack.address_of(&stack.containers_of("stock-service")[0])
    );
    assert_applied_exactly_once(&http, &stock, &accepted, INITIAL_STOCK, PATIENCE).await;

    let ids: Vec<String> = accepted.iter().map(|a| a.trace_id.clone()).collect();
    let traces = traces_of(&stack, &http, &ids).await;
    let incomplete: Vec<String> = ids
        .iter()
        .filter_map(|id| {
            let problem = traces
                .get(id)
                .map_or(Some("no span".to_owned()), |trace| trace_problem(trace))?;
            Some(format!("{id}: {problem}"))
        })
        .collect();
    assert!(
        incomplete.is_empty(),
        "{} of {} accepted orders' traces are incomplete, e.g. {:?}",
        incomplete.len(),
        ids.len(),
        &incomplete[..incomplete.len().min(5)]
    );
    eprintln!(
        "{} orders, each applied once, each trace complete",
        ids.len()
    );

    stack.down();
}

async fn stock_of(http: &reqwest::Client, stock: &str, item: i64) -> i64 {
    let level = get_json(http, &format!("{stock}/api/stock/{item}")).await;
    level["available"].as_i64().unwrap()
}

/// The spans of each of `trace_ids`, once every one is complete (or
/// [`PATIENCE`] has passed: the caller says what is missing). From Jaeger's
/// query API when the real Jaeger answers on its UI port, else from what
/// the stand-in printed.
async fn traces_of(
    stack: &Stack,
    http: &reqwest::Client,
    trace_ids: &[String],
) -> HashMap<String, Vec<ReceivedSpan>> {
    let jaeger = url(16686, "");
    let real_jaeger = http
        .get(format!("{jaeger}/api/services"))
        .send()
        .await
        .is_ok();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let mut traces = HashMap::new();
        if real_jaeger {
            for id in trace_ids {
                if let Ok(spans) = checkout_cli::jaeger::fetch_trace(http, &jaeger, id).await {
                    traces.insert(id.clone(), spans);
                }
            }
        } else {
            traces = spans_from_standin(&stack.logs(&["jaeger"]));
        }
        let complete = trace_ids.iter().all(|id| {
            traces
                .get(id)
                .is_some_and(|trace| trace_problem(trace).is_none())
        });
        if complete || tokio::time::Instant::now() >= deadline {
            return traces;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// Prometheus's `up` is 1 for at least one target of each service's job,
/// and for all of them.
async fn every_service_scraped(http: &reqwest::Client) {
    let query = url(9090, "/api/v1/query?query=up");
    poll::until("Prometheus scraped every service", PATIENCE, || {
        let http = http.clone();
        let query = query.clone();
        async move {
            let answer: Value = http.get(query).send().await.ok()?.json().await.ok()?;
            let results = answer["data"]["result"].as_array()?;
            ["gateway", "checkout-service", "stock-service"]
                .iter()
                .all(|job| {
                    let up: Vec<&str> = results
                        .iter()
                        .filter(|r| r["metric"]["job"] == *job)
                        .filter_map(|r| r["value"][1].as_str())
                        .collect();
                    !up.is_empty() && up.iter().all(|value| *value == "1")
                })
                .then_some(())
        }
    })
    .await;
}
