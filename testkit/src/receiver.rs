//! An in-process OTLP receiver: a tiny stand-in for an OpenTelemetry collector.
//!
//! Integration tests point the services' OTLP exporters at an [`OtlpReceiver`] and then
//! assert on the spans collected in its [`SpanStore`], the metric points in its
//! [`MetricStore`] and the log records in its [`LogStore`], so telemetry is tested end
//! to end without Jaeger or a collector container. The same receiver backs
//! `checkout traces` and `checkout top`.
//!
//! Protocols: OTLP/gRPC (`TraceService`, `MetricsService` and `LogsService` `Export`,
//! gzip accepted) and, optionally, OTLP/HTTP with protobuf bodies (`POST /v1/traces`,
//! `/v1/metrics`, `/v1/logs`).
//!
//! Metrics and logs are kept in bounded stores (the latest points of each series, the
//! newest log records); spans are kept all, unless the receiver is told not to keep
//! them ([`ReceiverOptions::keep_spans`], for `checkout top`, which may run for hours).
//!
//! Besides waiting on conditions, the store can be followed: [`SpanStore::subscribe`]
//! hands out each span once, and [`SpanStore::completed_traces`] groups them into
//! traces released after a settle time (see [`TraceSettler`] for why).
//!
//! A port that cannot be bound is a [`BindError`] naming the protocol and the address,
//! with [`BindError::explain`] for commands: the usual cause is another receiver or a
//! collector already holding OTLP's well-known ports, and the bare OS message ("Address
//! already in use") says neither which address nor what to do about it.
//!
//! ```no_run
//! # async fn demo() -> Result<(), testkit::receiver::BindError> {
//! use std::time::Duration;
//! use testkit::receiver::OtlpReceiver;
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

mod grpc;
mod http;
mod log;
mod metric;
mod metric_store;
mod settle;
mod span;
mod store;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::LogsServiceServer;
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::MetricsServiceServer;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

pub use log::{DEFAULT_LOG_LIMIT, LogStore, ReceivedLog};
pub use metric::{HistogramPoint, MetricPoint, PointValue};
pub use metric_store::{DEFAULT_SERIES_LIMIT, MetricSeries, MetricStore};
pub use settle::{CompletedTraces, TraceSettler};
pub use span::{
    AttributeValue, ReceivedSpan, SpanEvent, SpanKind, SpanLink, SpanStatus, flatten_spans,
    service_name,
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
    stores: Stores,
    grpc_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    /// Dropping or setting this signals both servers to stop.
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl OtlpReceiver {
    /// Binds OTLP/gRPC on `grpc_addr` and, if given, OTLP/HTTP on `http_addr`, then
    /// serves both in background tasks, keeping everything received (metrics and logs
    /// within the default bounds). Port 0 picks a free port; see
    /// [`grpc_addr`](Self::grpc_addr) for the one bound. Must be called within a tokio runtime.
    pub async fn start(
        grpc_addr: SocketAddr,
        http_addr: Option<SocketAddr>,
    ) -> Result<Self, BindError> {
        Self::start_with(grpc_addr, http_addr, ReceiverOptions::default()).await
    }

    /// [`start`](Self::start), keeping what `options` says.
    pub async fn start_with(
        grpc_addr: SocketAddr,
        http_addr: Option<SocketAddr>,
        options: ReceiverOptions,
    ) -> Result<Self, BindError> {
        // Bind everything first so a bind error leaves nothing running.
        let (grpc_listener, grpc_bound) = bind(Protocol::Grpc, grpc_addr).await?;
        let http = match http_addr {
            Some(addr) => Some(bind(Protocol::Http, addr).await?),
            None => None,
        };
        let http_bound = http.as_ref().map(|(_, bound)| *bound);
        let http_listener = http.map(|(listener, _)| listener);

        let stores = Stores {
            spans: SpanStore::new(),
            keep_spans: options.keep_spans,
            metrics: MetricStore::with_limit(options.metric_series_limit),
            logs: LogStore::with_limit(options.log_limit),
        };
        let (stop, _) = watch::channel(false);
        let mut receiver = Self {
            stores: stores.clone(),
            grpc_addr: grpc_bound,
            http_addr: http_bound,
            stop,
            tasks: Vec::new(),
        };

        let collector = grpc::Collector(stores.clone());
        let traces = TraceServiceServer::new(collector.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let metrics = MetricsServiceServer::new(collector.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let logs = LogsServiceServer::new(collector)
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let grpc = Server::builder()
            .add_service(traces)
            .add_service(metrics)
            .add_service(logs)
            .serve_with_incoming_shutdown(TcpIncoming::from(grpc_listener), receiver.stopped());
        receiver.tasks.push(tokio::spawn(async move {
            if let Err(e) = grpc.await {
                tracing::warn!(error = %e, "OTLP/gRPC receiver stopped with an error");
            }
        }));

        if let Some(listener) = http_listener {
            let http = axum::serve(listener, http::router(stores))
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
        self.stores.spans.clone()
    }

    /// A handle to the metric series received (shared, bounded).
    pub fn metrics(&self) -> MetricStore {
        self.stores.metrics.clone()
    }

    /// A handle to the log records received (shared, bounded).
    pub fn logs(&self) -> LogStore {
        self.stores.logs.clone()
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

/// Binds `addr` for `protocol`; returns the listener and the address it got.
async fn bind(
    protocol: Protocol,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), BindError> {
    let error = |source| BindError {
        protocol,
        addr,
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(error)?;
    let bound = listener.local_addr().map_err(error)?;
    Ok((listener, bound))
}

/// Which of the receiver's two servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (`TraceService/Export`), conventionally on port 4317.
    Grpc,
    /// OTLP/HTTP (`POST /v1/traces`), conventionally on port 4318.
    Http,
}

/// `OTLP/gRPC` or `OTLP/HTTP`.
impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Grpc => "OTLP/gRPC",
            Self::Http => "OTLP/HTTP",
        })
    }
}

/// A port of the receiver could not be bound: which one, and the OS error.
#[derive(Debug, thiserror::Error)]
#[error("could not listen for {protocol} on {addr}")]
pub struct BindError {
    /// The server that could not start.
    pub protocol: Protocol,
    /// The address asked for.
    pub addr: SocketAddr,
    /// What the OS said.
    #[source]
    pub source: io::Error,
}

impl BindError {
    /// Whether something already listens on the address: the usual case, since
    /// 4317/4318 are where every OTLP receiver and collector listens by default.
    pub fn in_use(&self) -> bool {
        self.source.kind() == io::ErrorKind::AddrInUse
    }

    /// The error as a command prints it, `flag` being the command's option that sets
    /// this address. For an address in use it also says who usually holds it and the
    /// two ways out, so the user need not know what runs on the port.
    pub fn explain(&self, flag: &str) -> String {
        if !self.in_use() {
            return format!("{self}: {}", self.source);
        }
        let port = self.addr.port();
        let protocol_too = match self.protocol {
            Protocol::Grpc => "",
            Protocol::Http => " (with OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf)",
        };
        format!(
            "{self}: the address is already in use.\n\
             Another OTLP receiver or collector holds it: a `checkout traces` or\n\
             `checkout load --verify-traces` in another terminal, or a Jaeger or OpenTelemetry\n\
             Collector container (`ss -ltnp 'sport = :{port}'` names the process).\n\
             Stop it, or receive elsewhere with {flag} ADDR and point the services'\n\
             OTEL_EXPORTER_OTLP_ENDPOINT at http://ADDR{protocol_too}."
        )
    }
}

/// For callers that deal in I/O errors: the same kind, with the address in the message.
impl From<BindError> for io::Error {
    fn from(error: BindError) -> Self {
        io::Error::new(error.source.kind(), format!("{error}: {}", error.source))
    }
}

/// What a receiver keeps.
#[derive(Debug, Clone)]
pub struct ReceiverOptions {
    /// Keep every span (the default); `false` accepts and drops them.
    pub keep_spans: bool,
    /// Metric series kept (see [`MetricStore`]).
    pub metric_series_limit: usize,
    /// Log records kept, the newest (see [`LogStore`]).
    pub log_limit: usize,
}

impl Default for ReceiverOptions {
    fn default() -> Self {
        Self {
            keep_spans: true,
            metric_series_limit: DEFAULT_SERIES_LIMIT,
            log_limit: DEFAULT_LOG_LIMIT,
        }
    }
}

/// The three stores, shared by both servers.
#[derive(Debug, Clone)]
pub(crate) struct Stores {
    spans: SpanStore,
    keep_spans: bool,
    metrics: MetricStore,
    logs: LogStore,
}

impl Stores {
    fn insert_spans(&self, request: ExportTraceServiceRequest) {
        if self.keep_spans {
            self.spans.insert(request);
        }
    }
}
