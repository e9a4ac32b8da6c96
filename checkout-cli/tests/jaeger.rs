//! `checkout trace` against fake Jaegers: an axum server in the test serving the saved
//! responses in `tests/fixtures/` (see its README for where each shape comes from).
//!
//! - `/v2`: Jaeger v2, answering both the v3 and the legacy API.
//! - `/v1`: an old Jaeger without the v3 HTTP API (404 text), legacy API only.
//! - `/v1-jsonpb`: a Jaeger 1.x whose v3 API answers in the grpc-gateway dialect
//!   (base64 ids, enum names), which is not read: the legacy API is.
//! - `/none`: a Jaeger that does not have the trace (both APIs' JSON 404s).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::Path;
use axum::http::{StatusCode, Uri};
use axum::response::IntoResponse;
use axum::routing::get;
use checkout_cli::jaeger::{JaegerError, fetch_trace};
use testkit::receiver::{SpanKind, SpanStatus};

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const V3: &str = include_str!("fixtures/jaeger-v3-trace.json");
const LEGACY: &str = include_str!("fixtures/jaeger-legacy-trace.json");
const V3_JSONPB: &str = include_str!("fixtures/jaeger-v3-trace-jsonpb.json");

struct FakeJaeger {
    url: String,
    /// Paths requested, in order.
    requests: Arc<Mutex<Vec<String>>>,
}

async fn start() -> FakeJaeger {
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    let known = |body: &'static str, not_found: &'static str| {
        move |Path(id): Path<String>| async move {
            if id == TRACE_ID {
                (StatusCode::OK, body)
            } else {
                (StatusCode::NOT_FOUND, not_found)
            }
        }
    };
    let v3_not_found = r#"{"error":{"httpCode":404,"message":"trace not found"}}"#;
    let legacy_not_found = r#"{"data":null,"total":0,"limit":0,"offset":0,"errors":[{"code":404,"msg":"trace not found"}]}"#;
    let app = Router::new()
        .route("/v2/api/v3/traces/{id}", get(known(V3, v3_not_found)))
        .route("/v2/api/traces/{id}", get(known(LEGACY, legacy_not_found)))
        .route("/v1/api/traces/{id}", get(known(LEGACY, legacy_not_found)))
        .route(
            "/v1-jsonpb/api/v3/traces/{id}",
            get(known(V3_JSONPB, v3_not_found)),
        )
        .route(
            "/v1-jsonpb/api/traces/{id}",
            get(known(LEGACY, legacy_not_found)),
        )
        .route(
            "/none/api/v3/traces/{id}",
            get(async move || (StatusCode::NOT_FOUND, v3_not_found)),
        )
        .route(
            "/none/api/traces/{id}",
            get(async move || (StatusCode::NOT_FOUND, legacy_not_found)),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "404 page not found\n").into_response() })
        .layer(axum::middleware::map_request(
            move |uri: Uri, request: axum::extract::Request| {
                log.lock().expect("lock").push(uri.path().to_owned());
                async move { request }
            },
        ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeJaeger { url, requests }
}

impl FakeJaeger {
    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }
}

#[tokio::test]
async fn jaeger_v2_is_read_through_api_v3() {
    let jaeger = start().await;
    let spans = fetch_trace(
        &reqwest::Client::new(),
        &format!("{}/v2/", jaeger.url),
        TRACE_ID,
    )
    .await
    .expect("fetched");

    assert_eq!(jaeger.requests(), [format!("/v2/api/v3/traces/{TRACE_ID}")]);
    assert_eq!(spans.len(), 7);
    assert_eq!(spans[0].name, "POST /api/checkout", "sorted by start time");
    assert_eq!(spans[0].kind, SpanKind::Server);
    assert_eq!(spans[6].name, "UPDATE stock");
}

#[tokio::test]
async fn older_jaegers_fall_back_to_the_legacy_api() {
    let jaeger = start().await;
    let spans = fetch_trace(
        &reqwest::Client::new(),
        &format!("{}/v1", jaeger.url),
        TRACE_ID,
    )
    .await
    .expect("fetched");

    assert_eq!(
        jaeger.requests(),
        [
            format!("/v1/api/v3/traces/{TRACE_ID}"),
            format!("/v1/api/traces/{TRACE_ID}")
        ]
    );
    assert_eq!(spans.len(), 7);
    let update = spans
        .iter()
        .find(|s| s.name == "UPDATE stock")
        .expect("db span");
    assert_eq!(
        update.status,
        SpanStatus::Error {
            message: "database is locked".into()
        }
    );
}

#[tokio::test]
async fn an_api_v3_answer_in_the_jsonpb_dialect_falls_back_to_the_legacy_api() {
    let jaeger = start().await;
    let spans = fetch_trace(
        &reqwest::Client::new(),
        &format!("{}/v1-jsonpb", jaeger.url),
        TRACE_ID,
    )
    .await
    .expect("fetched");

    assert_eq!(
        jaeger.requests(),
        [
            format!("/v1-jsonpb/api/v3/traces/{TRACE_ID}"),
            format!("/v1-jsonpb/api/traces/{TRACE_ID}")
        ]
    );
    assert_eq!(spans.len(), 7, "the legacy API's trace");
    assert!(spans.iter().all(|span| span.trace_id == TRACE_ID));
}

#[tokio::test]
async fn a_missing_trace_reports_both_apis() {
    let jaeger = start().await;
    let error = fetch_trace(
        &reqwest::Client::new(),
        &format!("{}/none", jaeger.url),
        TRACE_ID,
    )
    .await
    .expect_err("not found");
    assert!(matches!(error, JaegerError::BothFailed { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        "API v3: HTTP 404: trace not found; legacy API: HTTP 404: trace not found"
    );

    let error = fetch_trace(&reqwest::Client::new(), &jaeger.url, "not-hex")
        .await
        .expect_err("invalid");
    assert!(matches!(error, JaegerError::InvalidTraceId(_)));
    assert!(
        jaeger.requests().len() == 2,
        "an invalid id is not requested"
    );
}

#[tokio::test]
async fn an_unreachable_jaeger_is_tried_once() {
    let addr: SocketAddr = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port");
    let error = fetch_trace(&reqwest::Client::new(), &format!("http://{addr}"), TRACE_ID)
        .await
        .expect_err("unreachable");
    assert!(matches!(error, JaegerError::Http(_)), "{error:?}");
}

#[tokio::test]
async fn the_trace_command_prints_a_waterfall_or_json() {
    let jaeger = start().await;
    let run = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_checkout"))
                .args(args)
                .output()
                .expect("the binary runs")
        })
    };
    let base = format!("{}/v2", jaeger.url);
    let args = |extra: &[&str]| {
        let mut args = vec![
            "trace".to_owned(),
            TRACE_ID.to_owned(),
            "--jaeger".to_owned(),
            base.clone(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };

    let output = run(args(&["--width", "20"])).await.expect("join");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[0],
        format!(
            "trace {TRACE_ID}  20.00 ms  7 spans  3 services: gateway, checkout-service, stock-service"
        )
    );
    assert_eq!(lines.len(), 2 + 7);
    assert!(
        lines[8].ends_with("────────────█████─── ✗ database is locked"),
        "{stdout}"
    );

    let output = run(args(&["--json"])).await.expect("join");
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON document");
    assert_eq!(json["trace_id"], TRACE_ID);
    assert_eq!(json["spans"].as_array().map(Vec::len), Some(7));

    let output = run(vec![
        "trace".into(),
        TRACE_ID.into(),
        "--jaeger".into(),
        format!("{}/none", jaeger.url),
    ])
    .await
    .expect("join");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("trace not found"));
}
