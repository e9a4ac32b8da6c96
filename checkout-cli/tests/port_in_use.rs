//! An OTLP port already taken: the receiver's error names the address and protocol,
//! and `checkout traces` and `checkout load --verify-traces` say who usually holds it
//! and what to do. Each test occupies a real port with a listener of its own.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::net::{SocketAddr, TcpListener};
use std::process::Command;

use testkit::receiver::{OtlpReceiver, Protocol};

/// A port something listens on for as long as the listener lives.
fn occupied() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    (listener, addr)
}

/// Runs the real binary; returns (success, stderr).
fn checkout(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_checkout"))
        .args(args)
        .env_remove("CHECKOUT_GATEWAY")
        .env_remove("STOCK_SERVICE_URL")
        .output()
        .expect("the binary runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The parts every "in use" message must have: the address, who may hold it, the flag
/// that moves the receiver and the variable that moves the services.
fn assert_explains(stderr: &str, protocol: &str, addr: SocketAddr, flag: &str) {
    for expected in [
        format!("could not listen for {protocol} on {addr}: the address is already in use"),
        "Another OTLP receiver or collector holds it".to_owned(),
        "`checkout traces`".to_owned(),
        "Jaeger".to_owned(),
        format!("'sport = :{}'", addr.port()),
        format!("Stop it, or receive elsewhere with {flag} ADDR"),
        "OTEL_EXPORTER_OTLP_ENDPOINT at http://ADDR".to_owned(),
    ] {
        assert!(stderr.contains(&expected), "{expected:?} in:\n{stderr}");
    }
}

#[tokio::test]
async fn the_receiver_says_which_address_is_taken() {
    let (_taken, addr) = occupied();

    let error = OtlpReceiver::start(addr, None)
        .await
        .expect_err("the port is taken");
    assert_eq!((error.protocol, error.addr), (Protocol::Grpc, addr));
    assert!(error.in_use(), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!("could not listen for OTLP/gRPC on {addr}")
    );

    let free = "127.0.0.1:0".parse().expect("addr");
    let error = OtlpReceiver::start(free, Some(addr))
        .await
        .expect_err("the HTTP port is taken");
    assert_eq!((error.protocol, error.addr), (Protocol::Http, addr));
    // Callers that deal in I/O errors keep the kind, and get the address.
    let io = std::io::Error::from(error);
    assert_eq!(io.kind(), std::io::ErrorKind::AddrInUse);
    assert!(io.to_string().contains(&addr.to_string()), "{io}");
}

#[test]
fn checkout_traces_explains_a_taken_grpc_or_http_port() {
    let (_taken, addr) = occupied();
    let taken = addr.to_string();

    let (ok, stderr) = checkout(&[
        "traces",
        "--listen-grpc",
        &taken,
        "--listen-http",
        "127.0.0.1:0",
    ]);
    assert!(!ok, "{stderr}");
    assert_explains(&stderr, "OTLP/gRPC", addr, "--listen-grpc");

    let (ok, stderr) = checkout(&[
        "traces",
        "--listen-grpc",
        "127.0.0.1:0",
        "--listen-http",
        &taken,
    ]);
    assert!(!ok, "{stderr}");
    assert_explains(&stderr, "OTLP/HTTP", addr, "--listen-http");
    assert!(
        stderr.contains("OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"),
        "{stderr}"
    );
}

#[test]
fn checkout_load_explains_a_taken_grpc_port() {
    let (_taken, addr) = occupied();
    let taken = addr.to_string();
    // The receiver starts before any request is sent: no gateway is needed.
    let (ok, stderr) = checkout(&[
        "load",
        "--concurrency",
        "1",
        "--requests",
        "1",
        "--gateway",
        "http://127.0.0.1:1",
        "--verify-traces",
        "--listen-grpc",
        &taken,
    ]);
    assert!(!ok, "{stderr}");
    assert_explains(&stderr, "OTLP/gRPC", addr, "--listen-grpc");
}
