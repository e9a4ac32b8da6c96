//! No connection holds an HTTP listener open for free: the real gateway,
//! on a loopback port, against clients that send their headers slowly or
//! not at all, stay idle, or open more connections than the cap.
//!
//! Every listener (gateway, stock-service, checkout-service's admin
//! endpoint) is served by `service::http::serve`, so the gateway stands for
//! all of them. No broker is needed: only `/healthz` is asked for.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::{net::SocketAddr, time::Duration};

use e2e::{PATIENCE, gateway_settings};
use hyper_util::rt::{TokioExecutor, TokioIo};
use service::{http::HttpLimits, shutdown::CancellationToken, startup::Service};
use testkit::poll;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinHandle,
};

/// Short enough for a test to wait out, long enough that a loaded machine
/// still sends a whole request well within it.
const SHORT: Duration = Duration::from_millis(300);

/// Longer than any test runs: what must not time out during one.
const NEVER: Duration = Duration::from_secs(600);

const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n";

/// The real gateway, serving on a loopback port until stopped.
struct Gateway {
    addr: SocketAddr,
    stop: CancellationToken,
    running: JoinHandle<anyhow::Result<()>>,
}

impl Gateway {
    async fn start(limits: HttpLimits) -> Self {
        // checkout-service on port 1 of loopback, where nothing listens:
        // these tests never place an order.
        let mut settings = gateway_settings("127.0.0.1:1".parse().unwrap());
        settings.http = limits;
        let gateway = gateway::Application::build(settings).await.unwrap();
        let addr = gateway.http_addr();
        let stop = CancellationToken::new();
        let running = tokio::spawn(gateway.run_until_stopped(stop.clone()));
        Self {
            addr,
            stop,
            running,
        }
    }

    async fn connect(&self) -> TcpStream {
        TcpStream::connect(self.addr).await.unwrap()
    }

    /// Stops the gateway; it must finish shutting down, whatever
    /// connections are still open.
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(PATIENCE, self.running)
            .await
            .expect("the gateway stops")
            .unwrap()
            .unwrap();
    }
}

fn limits(header_read_timeout: Duration, idle_timeout: Duration) -> HttpLimits {
    HttpLimits {
        header_read_timeout,
        idle_timeout,
        ..HttpLimits::default()
    }
}

/// Reads until the server closes `stream` (end of stream, or a reset) and
/// returns what it sent first; fails if it keeps the connection open.
async fn closed_by_server(stream: &mut TcpStream, what: &str) -> Vec<u8> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(PATIENCE, async {
        let mut buffer = [0; 1024];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "{what}: the server kept the connection open for {PATIENCE:?}"
    );
    received
}

/// Sends `GET /healthz` on `stream` and reads one response; `None` when
/// the server closes the connection without answering.
async fn healthz(stream: &mut TcpStream) -> Option<u16> {
    stream.write_all(HEALTHZ).await.ok()?;
    let mut received = Vec::new();
    let mut buffer = [0; 1024];
    let head_end = loop {
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buffer))
            .await
            .expect("an answer or a close")
            .ok()?;
        if n == 0 {
            return None;
        }
        received.extend_from_slice(&buffer[..n]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |value| value.trim().parse().unwrap());
    while received.len() < head_end + length {
        let n = stream.read(&mut buffer).await.ok()?;
        if n == 0 {
            return None;
        }
        received.extend_from_slice(&buffer[..n]);
    }
    head.split_whitespace().nth(1)?.parse().ok()
}

/// Opens a new connection and asks `/healthz`, as a health check would.
async fn healthz_on_a_new_connection(gateway: &Gateway) -> Option<u16> {
    healthz(&mut gateway.connect().await).await
}

#[tokio::test]
async fn a_connection_that_stops_sending_its_headers_is_closed() {
    let gateway = Gateway::start(limits(SHORT, NEVER)).await;
    for (what, sent) in [
        ("nothing sent", &b""[..]),
        ("part of the request line", b"GE"),
        (
            "part of the headers",
            b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n",
        ),
        ("part of the HTTP/2 preface", b"PRI * HTTP/2.0\r\n"),
    ] {
        let mut stream = gateway.connect().await;
        stream.write_all(sent).await.unwrap();
        let answer = closed_by_server(&mut stream, what).await;
        assert!(
            !answer.starts_with(b"HTTP/1.1 200"),
            "{what}: {}",
            String::from_utf8_lossy(&answer)
        );
    }
    gateway.stop().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let gateway = Gateway::start(limits(NEVER, SHORT)).await;
    let mut stream = gateway.connect().await;
    assert_eq!(healthz(&mut stream).await, Some(200));
    assert!(
        closed_by_server(&mut stream, "idle after an answer")
            .await
            .is_empty()
    );
    gateway.stop().await;
}

/// hyper starts its header clock as soon as an HTTP/1.1 connection waits for
/// its next request, so the header timeout bounds an idle keep-alive
/// connection too, whatever the idle timeout.
#[tokio::test]
async fn on_http1_the_header_timeout_also_closes_an_idle_keep_alive_connection() {
    let gateway = Gateway::start(limits(SHORT, NEVER)).await;
    let mut stream = gateway.connect().await;
    assert_eq!(healthz(&mut stream).await, Some(200));
    closed_by_server(&mut stream, "idle after an answer").await;
    gateway.stop().await;
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout() {
    let gateway = Gateway::start(limits(NEVER, SHORT)).await;
    let stream = TokioIo::new(gateway.connect().await);
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), stream)
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let request = hyper::Request::get(format!("http://{}/healthz", gateway.addr))
        .body(String::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    drop(response);
    // The client keeps its end open (`sender` is alive): only the server
    // can end the connection.
    tokio::time::timeout(PATIENCE, connection)
        .await
        .expect("the server closes an idle HTTP/2 connection")
        .unwrap()
        .ok();
    drop(sender);
    gateway.stop().await;
}

#[tokio::test]
async fn past_the_cap_a_connection_is_closed_unanswered_until_one_closes() {
    let gateway = Gateway::start(HttpLimits {
        max_connections: 2,
        ..limits(NEVER, NEVER)
    })
    .await;
    let mut first = gateway.connect().await;
    let mut second = gateway.connect().await;
    assert_eq!(healthz(&mut first).await, Some(200));
    assert_eq!(healthz(&mut second).await, Some(200));

    let mut third = gateway.connect().await;
    third.write_all(HEALTHZ).await.ok();
    assert!(
        closed_by_server(&mut third, "past the cap")
            .await
            .is_empty(),
        "a connection past the cap is closed without an answer"
    );

    drop(first);
    let status = poll::until(
        "/healthz answers once a connection under the cap closed",
        PATIENCE,
        || healthz_on_a_new_connection(&gateway),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        healthz(&mut second).await,
        Some(200),
        "the connections under the cap are still served"
    );
    gateway.stop().await;
}

#[tokio::test]
async fn slow_clients_filling_the_cap_are_closed_and_healthz_answers_again() {
    let gateway = Gateway::start(HttpLimits {
        max_connections: 2,
        ..limits(SHORT, NEVER)
    })
    .await;
    let mut slow = Vec::new();
    for _ in 0..2 {
        let mut stream = gateway.connect().await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        slow.push(stream);
    }
    let status = poll::until(
        "/healthz answers once the slow connections timed out",
        PATIENCE,
        || healthz_on_a_new_connection(&gateway),
    )
    .await;
    assert_eq!(status, 200);
    for stream in &mut slow {
        closed_by_server(stream, "slow headers").await;
    }
    gateway.stop().await;
}

/// A slow client must not hold up a shutdown: a connection that has not sent
/// a whole request is closed at once, long before its header timeout.
#[tokio::test]
async fn shutdown_does_not_wait_for_a_connection_still_sending_its_headers() {
    let gateway = Gateway::start(limits(NEVER, NEVER)).await;
    let mut slow = gateway.connect().await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let mut idle = gateway.connect().await;
    assert_eq!(healthz(&mut idle).await, Some(200));
    gateway.stop().await;
    closed_by_server(&mut slow, "slow headers at shutdown").await;
    closed_by_server(&mut idle, "idle at shutdown").await;
}
