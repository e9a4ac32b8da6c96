//! The optional Prometheus endpoint (`METRICS_ADDRESS`): the service's
//! meter provider gets a second reader, `opentelemetry-prometheus`'s, whose
//! values are read at each scrape of `/metrics`, beside the periodic OTLP
//! one. Each service has its own `prometheus::Registry`, never the client's
//! process-global default one: tests run several services in one process,
//! and each must show its own metrics only.
//!
//! The listener is bound when the telemetry is built (a port in use is a
//! start-up error, not a silent gap) and served on a thread of its own with
//! a single-threaded runtime, like the export runtime: the telemetry can be
//! built outside any runtime, and a scrape never competes with requests for
//! the service's workers. It stops when the telemetry is dropped.

use std::net::SocketAddr;

use axum::{Router, http::header, routing::get};
use opentelemetry_prometheus::PrometheusExporter;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::sync::oneshot;

use crate::TelemetryError;

/// A running `/metrics` listener; dropping it stops the listener.
#[derive(Debug)]
pub(crate) struct PrometheusEndpoint {
    address: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl PrometheusEndpoint {
    /// The address it listens on (the real port when 0 was asked for).
    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }
}

/// The reader to add to the meter provider, and the listener serving what
/// it reads on `address`.
pub(crate) fn endpoint(
    address: SocketAddr,
) -> Result<(PrometheusExporter, PrometheusEndpoint), TelemetryError> {
    let registry = Registry::new();
    let reader = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()
        .map_err(|error| TelemetryError::MetricsEndpoint(error.to_string()))?;
    let listener = std::net::TcpListener::bind(address)
        .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
        .map_err(|error| {
            TelemetryError::MetricsEndpoint(format!("cannot bind {address}: {error}"))
        })?;
    let address = listener
        .local_addr()
        .map_err(|error| TelemetryError::MetricsEndpoint(error.to_string()))?;
    let (stop, stopped) = oneshot::channel::<()>();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| TelemetryError::MetricsEndpoint(error.to_string()))?;
    std::thread::Builder::new()
        .name("metrics-endpoint".into())
        .spawn(move || {
            runtime.block_on(async move {
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let app = Router::new().route("/metrics", get(move || scrape(registry.clone())));
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        // Sent or dropped: either way, stop.
                        let _ = stopped.await;
                    })
                    .await;
            });
        })
        .map_err(|error| TelemetryError::MetricsEndpoint(error.to_string()))?;
    Ok((
        reader,
        PrometheusEndpoint {
            address,
            _stop: stop,
        },
    ))
}

/// The registry's metrics in the Prometheus text format.
async fn scrape(registry: Registry) -> ([(header::HeaderName, String); 1], Vec<u8>) {
    let encoder = TextEncoder::new();
    let mut body = Vec::new();
    if let Err(error) = encoder.encode(&registry.gather(), &mut body) {
        tracing::warn!(%error, "cannot encode the metrics");
    }
    (
        [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
        body,
    )
}
