//! An in-process OTLP trace receiver: a tiny stand-in for an OpenTelemetry collector.
//!
//! Integration tests point the services' OTLP exporters at an [`OtlpReceiver`] and then
//! assert on the spans collected in its [`SpanStore`], so tracing is tested end to end
//! without Jaeger or a collector container. The same receiver backs `checkout traces`.
//!
//! Protocols: OTLP/gRPC (`TraceService/Export`, gzip accepted) and, optionally,
//! OTLP/HTTP with protobuf bodies (`POST /v1/traces`).
//!
//! Besides waiting on conditions, the store can be followed: [`SpanStore::subscribe`]
//! hands out each span once, and [`SpanStore::completed_traces`] groups them into
//! traces released after a settle time (see [`TraceSettler`] for why).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use std::time::Duration;
//! use checkout_cli::receiver::OtlpReceiver;
//!
//! let receiver = OtlpReceiver::start("127.0.0.1:0".parse().unwrap(), None).await?;
//! // ... export spans to `receiver.grpc_endpoint()` ...
//! let spans = receiver
//!     .store()
//!     .wait_for(Duration::from_secs(10), |spans| spans.len() >= 3)
//!     .await
//!     .expect("three spans within 10s");
//! assert!(spans.iter().any(|span| span.service_name == "gateway"));
//! receiver.shutdown().await;
//! # Ok(()) }
//! ```

mod http;
mod settle;
mod span;
mod store;

use std::net::SocketAddr;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

pub use settle::{CompletedTraces, TraceSettler};
pub use span::{
    AttributeValue, ReceivedSpan, SpanEvent, SpanKind, SpanLink, SpanStatus, service_name,
};
pub use store::{SpanStore, SpanSubscription};

/// Largest accepted export (decoded), for both protocols. Generous: SDK batches are far smaller.
const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// How long [`OtlpReceiver::shutdown`] lets in-flight exports finish before aborting.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running OTLP receiver serving in background tokio tasks.
///
/// Stop it with [`shutdown`](Self::shutdown). Dropping it also stops both servers
/// (gracefully, in the background), without panicking.
#[derive(Debug)]
pub struct OtlpReceiver {
    store: SpanStore,
    grpc_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    /// Dropping or setting this signals both servers to stop.
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl OtlpReceiver {
    /// Binds OTLP/gRPC on `grpc_addr` and, if given, OTLP/HTTP on `http_addr`, then
    /// serves both in background tasks. Port 0 picks a free port; see
    /// [`grpc_addr`](Self::grpc_addr) for the one bound. Must be called within a tokio runtime.
    pub async fn start(
        grpc_addr: SocketAddr,
        http_addr: Option<SocketAddr>,
    ) -> std::io::Result<Self> {
        // Bind everything first so a bind error leaves nothing running.
        let grpc_listener = TcpListener::bind(grpc_addr).await?;
        let http_listener = match http_addr {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };

        let store = SpanStore::new();
        let (stop, _) = watch::channel(false);
        let mut receiver = Self {
            store: store.clone(),
            grpc_addr: grpc_listener.local_addr()?,
            http_addr: http_listener
                .as_ref()
                .map(TcpListener::local_addr)
                .transpose()?,
            stop,
            tasks: Vec::new(),
        };

        let service = TraceServiceServer::new(GrpcService {
            store: store.clone(),
        })
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let grpc = Server::builder()
            .add_service(service)
            .serve_with_incoming_shutdown(TcpIncoming::from(grpc_listener), receiver.stopped());
        receiver.tasks.push(tokio::spawn(async move {
            if let Err(e) = grpc.await {
                tracing::warn!(error = %e, "OTLP/gRPC receiver stopped with an error");
            }
        }));

        if let Some(listener) = http_listener {
            let http = axum::serve(listener, http::router(store))
                .with_graceful_shutdown(receiver.stopped());
            receiver.tasks.push(tokio::spawn(async move {
                if let Err(e) = http.await {
                    tracing::warn!(error = %e, "OTLP/HTTP receiver stopped with an error");
                }
            }));
        }
        Ok(receiver)
    }

    /// The bound gRPC address (with the real port when started on port 0).
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    /// The bound HTTP address, if HTTP was enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The gRPC endpoint URL for an OTLP exporter, e.g. `http://127.0.0.1:4317`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// The OTLP/HTTP traces URL, e.g. `http://127.0.0.1:4318/v1/traces`, if HTTP was enabled.
    pub fn http_traces_url(&self) -> Option<String> {
        self.http_addr
            .map(|addr| format!("http://{addr}/v1/traces"))
    }

    /// A handle to the spans received (shared; it keeps filling while the receiver runs).
    pub fn store(&self) -> SpanStore {
        self.store.clone()
    }

    /// Stops both servers: stops accepting, lets in-flight exports finish (up to a few
    /// seconds, then aborts), and waits for the tasks to end.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for mut task in self.tasks {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                tracing::warn!("OTLP receiver did not stop gracefully in time; aborting");
                task.abort();
            }
        }
    }

    /// Resolves once shutdown is requested or the receiver is dropped.
    fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.stop.subscribe();
        async move {
            // Err means the sender was dropped, which also means "stop".
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }
}

/// The gRPC `TraceService` implementation: every export goes straight into the store.
struct GrpcService {
    store: SpanStore,
}

#[tonic::async_trait]
impl TraceService for GrpcService {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.store.insert(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}
