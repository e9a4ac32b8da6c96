//! What a gRPC caller can make checkout-service hold is bounded: a message
//! over `MAX_GRPC_MESSAGE_BYTES` is refused before it is buffered, and calls
//! past `MAX_CONCURRENT_CALLS` are refused at once with `RESOURCE_EXHAUSTED`
//! instead of queueing. A real tonic client calls the real service on
//! loopback; the service connects to the local RabbitMQ at build, with an
//! exchange of each test's own, deleted afterwards (on a failed assertion
//! too).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::{net::SocketAddr, time::Duration};

use checkout_service::{Application, Settings};
use contracts::{
    grpc::{CheckoutRequest, checkout_client::CheckoutClient},
    limits::MAX_GRPC_MESSAGE_BYTES,
};
use lapin::{
    Connection, ConnectionProperties,
    options::{ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions},
    types::FieldTable,
};
use prost::Message;
use service::{configuration::Configuration, shutdown::CancellationToken, startup::Service};
use tokio::task::JoinHandle;
use tonic::{Code, transport::Channel};

/// A generous bound for anything the loaded machine must eventually do.
const PATIENCE: Duration = Duration::from_secs(60);

fn amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@localhost:5672/%2f".into())
}

/// checkout-service running in this process on a loopback port 0.
struct Running {
    addr: SocketAddr,
    exchange: Exchange,
    stop: CancellationToken,
    served: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn start(adjust: impl FnOnce(&mut Settings)) -> Self {
        let exchange = Exchange(format!("checkout-limits-{}", uuid::Uuid::new_v4().simple()));
        let mut settings = Settings::defaults();
        settings.grpc_address = ([127, 0, 0, 1], 0).into();
        settings.amqp.nodes = amqp_url().parse().expect("a valid AMQP_URL");
        settings.amqp.exchange = exchange.0.clone();
        adjust(&mut settings);
        let application = Application::build(settings)
            .await
            .expect("checkout-service starts (it needs RabbitMQ)");
        let addr = application.grpc_addr();
        let stop = CancellationToken::new();
        let served = tokio::spawn(application.run_until_stopped(stop.clone()));
        Self {
            addr,
            exchange,
            stop,
            served,
        }
    }

    async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .expect("connects")
    }

    /// Binds a queue of the connection's own to the exchange, so orders are
    /// routable (and confirmed) while `connection` is open.
    async fn bind_queue(&self, connection: &Connection) {
        let channel = connection.create_channel().await.unwrap();
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        channel
            .queue_bind(
                queue.name().clone(),
                self.exchange.0.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
    }

    /// Stops the service; dropping it deletes the exchange.
    async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(PATIENCE, self.served)
            .await
            .expect("checkout-service stops")
            .unwrap()
            .unwrap();
    }
}

/// The test's exchange (the service declares it at start), deleted when
/// dropped, whether the test passed or not.
struct Exchange(String);

impl Drop for Exchange {
    fn drop(&mut self) {
        let name = self.0.clone();
        // Off the test's runtime, which may be shutting down.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let connection =
                    Connection::connect(&amqp_url(), ConnectionProperties::default()).await?;
                let channel = connection.create_channel().await?;
                channel
                    .exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
                    .await?;
                connection.close(200, "done".into()).await
            })
        })
        .join();
    }
}

/// A request for item 1 whose idempotency key pads it to exactly `size`
/// bytes of protobuf.
fn request_of_size(size: usize) -> CheckoutRequest {
    let mut request = CheckoutRequest {
        items_id: vec![1],
        ..CheckoutRequest::default()
    };
    let mut key_len = size.saturating_sub(request.encoded_len());
    loop {
        request.idempotency_key = "k".repeat(key_len);
        match request.encoded_len() {
            len if len == size => return request,
            len if len > size => key_len -= len - size,
            _ => unreachable!("the key's length prefix only grows"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_the_message_limit_is_refused_and_the_service_keeps_serving() {
    let service = Running::start(|_| {}).await;
    let mut client = CheckoutClient::new(service.channel().await);

    // At the limit the message is decoded (and then refused by validation:
    // the key is far too long for an idempotency key).
    let at_limit = client
        .do_checkout(request_of_size(MAX_GRPC_MESSAGE_BYTES))
        .await
        .unwrap_err();
    assert_eq!(at_limit.code(), Code::InvalidArgument, "{at_limit:?}");

    // One byte over, it is refused before it is read.
    let over = client
        .do_checkout(request_of_size(MAX_GRPC_MESSAGE_BYTES + 1))
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::OutOfRange, "{over:?}");
    assert!(
        over.message()
            .contains(&format!("limit is: {MAX_GRPC_MESSAGE_BYTES} bytes")),
        "{over:?}"
    );

    // The same connection, and the service, go on serving checkouts.
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    service.bind_queue(&connection).await;
    let answer = client
        .do_checkout(CheckoutRequest {
            items_id: vec![1, 2],
            ..CheckoutRequest::default()
        })
        .await
        .expect("a normal checkout is accepted")
        .into_inner();
    assert_eq!(answer.total_amount, 350);

    let _ = connection.close(200, "done".into()).await;
    drop(client);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_past_the_concurrency_limit_are_shed_at_once() {
    const LIMIT: usize = 2;
    const CALLS: usize = 6;
    // Every call is held by the longest injected delay (a minute), so the
    // first LIMIT calls stay in flight: a call past the limit that comes back
    // RESOURCE_EXHAUSTED was refused, where a queued one would have waited
    // for a place and then been served.
    let service = Running::start(|settings| {
        settings.max_concurrent_calls = LIMIT;
        settings.faults.fault_delay_ms = 60_000;
        settings.faults.fault_delay_rate = 1.0;
    })
    .await;
    // One connection for every call, as the gateway does. A round trip first
    // (a health check), so the client knows the connection's stream limit
    // before the burst: a stream opened before the server's SETTINGS arrive
    // may be refused by HTTP/2 itself (REFUSED_STREAM), which is not what
    // this test is about.
    let channel = service.channel().await;
    let client = CheckoutClient::new(channel.clone());
    tonic_health::pb::health_client::HealthClient::new(channel)
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("the health service answers");

    let (done, mut answers) = tokio::sync::mpsc::unbounded_channel();
    let calls: Vec<JoinHandle<()>> = (0..CALLS)
        .map(|_| {
            let mut client = client.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let answer = client
                    .do_checkout(CheckoutRequest {
                        items_id: vec![1],
                        ..CheckoutRequest::default()
                    })
                    .await;
                let _ = done.send(answer.map(|_| ()));
            })
        })
        .collect();

    let mut shed = Vec::new();
    while shed.len() < CALLS - LIMIT {
        let answer = tokio::time::timeout(PATIENCE, answers.recv())
            .await
            .expect("calls past the limit are answered, not queued")
            .unwrap();
        shed.push(answer);
    }
    for answer in &shed {
        let status = answer.as_ref().unwrap_err();
        assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
        assert!(status.message().contains("in flight"), "{status:?}");
    }
    // The first LIMIT are still held.
    assert!(answers.try_recv().is_err());

    // Cancelling them frees their places: a new call is admitted (and held
    // until its own deadline) instead of being refused.
    calls.iter().for_each(JoinHandle::abort);
    let mut client = client;
    let admitted = async {
        loop {
            let mut request = tonic::Request::new(CheckoutRequest {
                items_id: vec![1],
                ..CheckoutRequest::default()
            });
            request.set_timeout(Duration::from_millis(200));
            let status = client.do_checkout(request).await.unwrap_err();
            if status.code() != Code::ResourceExhausted {
                return status;
            }
            // The cancellations reach the service a moment later.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let status = tokio::time::timeout(PATIENCE, admitted)
        .await
        .expect("a place frees up once the calls holding it are cancelled");
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );

    drop(client);
    service.stop().await;
}
