//! `send` and `load` against a fake gateway: an axum server in the test that answers
//! deterministically (every 5th request 503, item 99 unknown) and, for each accepted
//! request, "exports" the spans the real pipeline would into a `SpanStore`, leaving out
//! the consumer span of every 3rd request so trace verification has something to find.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use checkout_cli::checkout::{CheckoutResponse, Item};
use checkout_cli::load::{LoadConfig, LoadError, LoadMode, TransportError, VerifyTraces, run_load};
use checkout_cli::send::{SendOptions, send};
use contracts::http::CheckoutAccepted;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use serde_json::{Value, json};
use testkit::receiver::SpanStore;
use testkit::verify::CHECKOUT_TRACE;

/// What the fake gateway saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    headers: HeaderMap,
    body: Value,
}

#[derive(Clone, Default)]
struct Gateway {
    count: Arc<AtomicU64>,
    seen: Arc<Mutex<Vec<Seen>>>,
    spans: SpanStore,
}

struct FakeGateway {
    url: String,
    state: Gateway,
}

impl FakeGateway {
    async fn start() -> Self {
        let state = Gateway::default();
        let app = Router::new()
            .route("/api/checkout", post(checkout))
            .route("/slow/api/checkout", post(std::future::pending::<()>))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, state }
    }

    fn requests(&self) -> u64 {
        self.state.count.load(Ordering::SeqCst)
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().expect("lock").clone()
    }
}

/// Request n (from 1): 503 if n is a multiple of 5, 422 if it asks for item 99, else 202.
async fn checkout(
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let n = gateway.count.fetch_add(1, Ordering::SeqCst) + 1;
    gateway.seen.lock().expect("lock").push(Seen {
        headers: headers.clone(),
        body: body.clone(),
    });
    let items = body["items"].as_array().cloned().unwrap_or_default();
    if items.iter().any(|item| item["id"] == 99) {
        let error = json!({"error": {"code": "unknown_item", "message": "item 99 does not exist"}});
        return (StatusCode::UNPROCESSABLE_ENTITY, Json(error));
    }
    if n % 5 == 0 {
        let error = json!({"error": {"code": "service_unavailable", "message": "try again later"}});
        return (StatusCode::SERVICE_UNAVAILABLE, Json(error));
    }
    let traceparent = headers
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let trace_id = traceparent.split('-').nth(1).unwrap_or_default().to_owned();
    gateway.spans.insert(pipeline_spans(&trace_id, n % 3 != 0));
    let total: i64 = items
        .iter()
        .map(|item| item["quantity"].as_i64().unwrap_or(0) * 100)
        .sum();
    let accepted =
        json!({"orderId": format!("order-{n}"), "totalAmount": total, "traceId": trace_id});
    (StatusCode::ACCEPTED, Json(accepted))
}

/// The six spans of a checkout (five without the consumer), one resource per service.
fn pipeline_spans(trace_id: &str, with_consumer: bool) -> ExportTraceServiceRequest {
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind::*;
    let trace_id = hex(trace_id);
    let mut spans = vec![
        ("gateway", Server, "POST /api/checkout"),
        ("gateway", Client, "checkout.Checkout/DoCheckout"),
        ("checkout-service", Server, "checkout.Checkout/DoCheckout"),
        ("checkout-service", Producer, "publish checkout"),
        ("stock-service", Consumer, "process checkout"),
        ("stock-service", Client, "INSERT processed_orders"),
    ];
    if !with_consumer {
        spans.retain(|(_, kind, _)| *kind != Consumer);
    }
    let resource_spans = spans
        .into_iter()
        .enumerate()
        .map(|(i, (service, kind, name))| ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue(service.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: trace_id.clone(),
                    span_id: vec![i as u8 + 1; 8],
                    name: name.into(),
                    kind: kind as i32,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fn options(gateway: &FakeGateway, items: &[&str]) -> SendOptions {
    SendOptions {
        gateway: gateway.url.clone(),
        items: items
            .iter()
            .map(|item| item.parse().expect("item"))
            .collect(),
        baggage: Vec::new(),
        idempotency_key: None,
        api_key: None,
    }
}

#[tokio::test]
async fn send_posts_the_cart_with_trace_context_baggage_and_keys() {
    let gateway = FakeGateway::start().await;
    let mut options = options(&gateway, &["1:2", "3"]);
    options.baggage = vec![
        "tenant=acme".parse().expect("baggage"),
        "note=a b".parse().expect("baggage"),
    ];
    options.idempotency_key = Some("key-1".into());
    options.api_key = Some("api-key-0123456789".into());

    let outcome = send(&reqwest::Client::new(), &options).await.expect("sent");

    assert_eq!(outcome.status, StatusCode::ACCEPTED);
    assert_eq!(
        outcome.response,
        Some(CheckoutResponse::Accepted(CheckoutAccepted {
            order_id: "order-1".into(),
            total_amount: 300,
            trace_id: outcome.trace_id.clone(),
        }))
    );
    assert_eq!(
        outcome.jaeger_link("http://jaeger:16686/"),
        format!("http://jaeger:16686/trace/{}", outcome.trace_id)
    );
    let seen = &gateway.seen()[0];
    let header = |name: &str| {
        seen.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    };
    let traceparent = header("traceparent");
    assert!(
        traceparent.starts_with(&format!("00-{}-", outcome.trace_id))
            && traceparent.ends_with("-01"),
        "{traceparent}"
    );
    assert_eq!(header("baggage"), "tenant=acme,note=a%20b");
    assert_eq!(header("idempotency-key"), "key-1");
    assert_eq!(header("authorization"), "Bearer api-key-0123456789");
    assert_eq!(header("content-type"), "application/json");
    assert_eq!(
        seen.body,
        json!({"items": [{"id": 1, "quantity": 2}, {"id": 3, "quantity": 1}]})
    );
}

#[tokio::test]
async fn send_reports_error_responses() {
    let gateway = FakeGateway::start().await;
    let outcome = send(&reqwest::Client::new(), &options(&gateway, &["99"]))
        .await
        .expect("sent");
    assert_eq!(outcome.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(!outcome.is_success());
    assert!(
        matches!(&outcome.response, Some(CheckoutResponse::Rejected(body)) if body.error.code == "unknown_item")
    );
    let printed = outcome.to_string();
    assert!(
        printed.contains("error    unknown_item: item 99 does not exist"),
        "{printed}"
    );
    assert!(printed.contains(&outcome.trace_id), "{printed}");
}

/// Runs the real binary; returns (success, stdout, stderr).
async fn checkout_command(args: Vec<String>) -> (bool, String, String) {
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_checkout"))
            .args(args)
            .env_remove("CHECKOUT_GATEWAY")
            .env_remove("JAEGER_UI_URL")
            .output()
            .expect("the binary runs")
    })
    .await
    .expect("join");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_send_command_prints_the_outcome_and_fails_on_an_error_status() {
    let gateway = FakeGateway::start().await;
    let args = |extra: &[&str]| {
        let mut args = vec![
            "send".to_owned(),
            "--gateway".to_owned(),
            gateway.url.clone(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };

    let (ok, stdout, stderr) = checkout_command(args(&[])).await;
    assert!(ok, "{stdout}{stderr}");
    assert!(stdout.contains("status   202 Accepted"), "{stdout}");
    assert!(stdout.contains("order    order-1"), "{stdout}");
    assert!(
        stdout.contains("total    100"),
        "default item 1:1: {stdout}"
    );
    assert!(
        stdout.contains("jaeger   http://localhost:16686/trace/"),
        "{stdout}"
    );
    assert_eq!(
        gateway.seen()[0].body,
        json!({"items": [{"id": 1, "quantity": 1}]})
    );

    let (ok, stdout, _) = checkout_command(args(&["--item", "99"])).await;
    assert!(!ok, "an error status fails the command");
    assert!(
        stdout.contains("status   422 Unprocessable Entity"),
        "{stdout}"
    );
    assert!(
        stdout.contains("error    unknown_item: item 99 does not exist"),
        "{stdout}"
    );

    let (ok, _, stderr) = checkout_command(args(&["--item", "one"])).await;
    assert!(!ok);
    assert!(stderr.contains("invalid id in item \"one\""), "{stderr}");
}

#[tokio::test]
async fn closed_loop_sends_exactly_the_requested_count_and_verifies_traces() {
    let gateway = FakeGateway::start().await;
    let mut config = LoadConfig::new(&gateway.url, LoadMode::Closed { concurrency: 4 });
    config.requests = Some(50);
    config.items = vec![Item { id: 2, quantity: 3 }];
    config.verify = Some(VerifyTraces {
        store: gateway.state.spans.clone(),
        // 13 traces stay incomplete, so the check waits this long: keep it short.
        timeout: Duration::from_millis(500),
    });

    let report = run_load(config).await.expect("runs");

    assert_eq!(gateway.requests(), 50);
    assert_eq!(report.sent, 50);
    assert_eq!(report.not_sent, 0);
    assert_eq!(
        report.statuses.clone().into_iter().collect::<Vec<_>>(),
        [(202, 40), (503, 10)]
    );
    assert!(report.transport_errors.is_empty());
    assert_eq!(report.accepted(), 40);
    assert_eq!(report.errors(), 10);
    assert!(report.latency.max >= report.latency.p50 && report.latency.p50 > Duration::ZERO);
    assert!(
        gateway
            .seen()
            .iter()
            .all(|seen| seen.body == json!({"items": [{"id": 2, "quantity": 3}]}))
    );

    // Requests 3, 6, .. 48 lack the consumer span, except the 503s (15, 30, 45).
    let traces = report.traces.expect("verified");
    assert_eq!(
        (traces.checked, traces.complete, traces.without_spans),
        (40, 27, 0)
    );
    assert_eq!(traces.missing, [(CHECKOUT_TRACE[4], 13)]);
    assert!(!traces.all_complete());
}

#[tokio::test]
async fn the_report_summarises_counts() {
    let gateway = FakeGateway::start().await;
    let mut config = LoadConfig::new(&gateway.url, LoadMode::Closed { concurrency: 2 });
    config.requests = Some(10);
    config.verify = Some(VerifyTraces {
        store: gateway.state.spans.clone(),
        timeout: Duration::from_millis(500),
    });
    let printed = run_load(config).await.expect("runs").to_string();
    for expected in [
        "mode        closed loop, 2 workers",
        "requests    10 sent in ",
        "statuses    202 × 8  503 × 2",
        "transport   none",
        // Requests 5 and 10 fail; 3, 6 and 9 lack the consumer span.
        "traces      5 of 8 traces complete",
        "  3 missing stock-service consumer process *",
    ] {
        assert!(printed.contains(expected), "{expected:?} in\n{printed}");
    }
    assert!(printed.contains("latency     p50 "), "{printed}");
}

#[tokio::test]
async fn open_loop_sends_every_scheduled_arrival() {
    let gateway = FakeGateway::start().await;
    let mut config = LoadConfig::new(
        &gateway.url,
        LoadMode::Open {
            rate: 200.0,
            max_in_flight: 1000,
        },
    );
    // Arrivals every 5 ms for 250 ms: exactly 50, however fast the machine.
    config.duration = Some(Duration::from_millis(250));

    let report = run_load(config).await.expect("runs");

    assert_eq!(report.sent, 50);
    assert_eq!(report.not_sent, 0);
    assert_eq!(gateway.requests(), 50);
    assert_eq!(
        report.statuses.clone().into_iter().collect::<Vec<_>>(),
        [(202, 40), (503, 10)]
    );
    assert_eq!(report.accepted_trace_ids.len(), 40);
    assert!(report.traces.is_none());
}

#[tokio::test]
async fn open_loop_counts_arrivals_it_could_not_send_and_timeouts() {
    let gateway = FakeGateway::start().await;
    let mut config = LoadConfig::new(
        format!("{}/slow", gateway.url),
        LoadMode::Open {
            rate: 100.0,
            max_in_flight: 2,
        },
    );
    // 20 arrivals; the first two hang until the timeout, long after the last arrival.
    config.duration = Some(Duration::from_millis(200));
    config.timeout = Duration::from_secs(3);

    let report = run_load(config).await.expect("runs");

    assert_eq!((report.sent, report.not_sent), (2, 18));
    assert_eq!(
        report.transport_errors.into_iter().collect::<Vec<_>>(),
        [(TransportError::Timeout, 2)]
    );
    assert!(report.statuses.is_empty());
}

#[tokio::test]
async fn warmup_requests_are_sent_but_not_counted() {
    let gateway = FakeGateway::start().await;
    let mut config = LoadConfig::new(&gateway.url, LoadMode::Closed { concurrency: 1 });
    config.requests = Some(10);
    config.warmup = Duration::from_millis(100);

    let report = run_load(config).await.expect("runs");

    assert_eq!(report.sent, 10);
    assert!(
        gateway.requests() > 10,
        "the first request is always in the warmup"
    );
}

#[tokio::test]
async fn unreachable_gateways_are_transport_errors() {
    // A port nothing listens on: bind, note the address, close.
    let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port");
    let mut config = LoadConfig::new(
        format!("http://{addr}"),
        LoadMode::Closed { concurrency: 2 },
    );
    config.requests = Some(6);

    let report = run_load(config).await.expect("runs");

    assert_eq!(report.sent, 6);
    assert_eq!(
        report.transport_errors.into_iter().collect::<Vec<_>>(),
        [(TransportError::Connect, 6)]
    );
}

#[tokio::test]
async fn runs_without_an_end_are_rejected() {
    let config = LoadConfig::new("http://localhost:1", LoadMode::Closed { concurrency: 1 });
    assert!(matches!(run_load(config).await, Err(LoadError::Unbounded)));
    let mut config = LoadConfig::new(
        "http://localhost:1",
        LoadMode::Open {
            rate: 0.0,
            max_in_flight: 1,
        },
    );
    config.requests = Some(1);
    assert!(matches!(
        run_load(config).await,
        Err(LoadError::InvalidMode)
    ));
}

#[test]
fn help_shows_an_environment_variable_s_value_only_when_it_is_set() {
    let help = |gateway: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_checkout"));
        command
            .args(["send", "--help"])
            .env_remove("CHECKOUT_GATEWAY")
            .env_remove("JAEGER_UI_URL");
        if let Some(gateway) = gateway {
            command.env("CHECKOUT_GATEWAY", gateway);
        }
        let output = command.output().expect("the binary runs");
        assert!(output.status.success());
        String::from_utf8_lossy(&output.stdout).into_owned()
    };

    let unset = help(None);
    assert!(unset.contains("[env: CHECKOUT_GATEWAY]"), "{unset}");
    assert!(unset.contains("[env: JAEGER_UI_URL]"), "{unset}");
    assert!(!unset.contains("=]"), "no empty value shown: {unset}");

    let set = help(Some("http://shop:8081"));
    assert!(
        set.contains("[env: CHECKOUT_GATEWAY=http://shop:8081]"),
        "{set}"
    );
    assert!(set.contains("[env: JAEGER_UI_URL]"), "{set}");
}
