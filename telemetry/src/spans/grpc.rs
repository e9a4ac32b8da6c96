//! The gRPC spans: the CLIENT span of a call (gateway) and the SERVER span
//! that continues it (checkout-service), named `{service}/{method}` with the
//! RPC conventions' attributes.
//!
//! A caller that tries a call on one replica and then another makes one
//! CLIENT span per attempt: `server.address`/`server.port` name the server
//! as configured (a DNS name stays a name), `network.peer.address`/`.port`
//! the replica's address that attempt went to, and [`RPC_ATTEMPT`] numbers
//! the attempt.
//!
//! The attributes are those of the RPC conventions as Jaeger, the Go
//! original's otel-go instrumentation and most gRPC libraries emit them
//! (`rpc.system`, `rpc.service`, `rpc.method`, `rpc.grpc.status_code`). The
//! semantic-conventions crate marks them deprecated in favour of names the
//! still-experimental RPC conventions are moving to (`rpc.system.name`, a
//! fully-qualified `rpc.method`, `rpc.response.status_code`); the switch is
//! left until those are stable, so that traces from this pipeline keep
//! matching the other services they meet. The call-duration histograms
//! (`rpc.client.call.duration`, `rpc.server.call.duration`, recorded by
//! [`record_client_status`] and [`record_server_status`], where each span
//! ends) carry the same attributes as the spans, less the per-replica ones,
//! for the same reason.
#![allow(deprecated)]

use std::{net::SocketAddr, time::Instant};

use opentelemetry::{KeyValue, metrics::Histogram};
use opentelemetry_semantic_conventions::attribute::{
    ERROR_TYPE, NETWORK_PEER_ADDRESS, NETWORK_PEER_PORT, RPC_GRPC_STATUS_CODE, RPC_METHOD,
    RPC_SERVICE, RPC_SYSTEM, SERVER_ADDRESS, SERVER_PORT,
};
use tonic::{Code, Status, metadata::MetadataMap};
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    metric_names::{RPC_CLIENT_DURATION, RPC_SERVER_DURATION},
    metrics::{duration_histogram, meter},
    propagation,
};

/// The attempt a CLIENT span is, from 1: every attempt at a call has its own
/// span, and a retry is attempt 2. The RPC conventions have no attribute for
/// it, and `http.request.resend_count` belongs to HTTP spans (and counts
/// resends, leaving the first attempt without it), so the name is the
/// project's.
pub const RPC_ATTEMPT: &str = "checkout.rpc.attempt";

/// The CLIENT span of attempt `attempt` (from 1) at a call to
/// `service`/`method` on `server_address` (the host as configured, a DNS name
/// or an IP address), made to the replica at `peer`. Its context goes into
/// the call's metadata through [`propagation::grpc::TraceContextInterceptor`].
pub fn client(
    service: &str,
    method: &str,
    server_address: &str,
    peer: SocketAddr,
    attempt: u32,
) -> Span {
    tracing::info_span!(
        "grpc.client",
        otel.name = %format_args!("{service}/{method}"),
        otel.kind = "client",
        otel.status_code = Empty,
        otel.status_description = Empty,
        { RPC_SYSTEM } = "grpc",
        { RPC_SERVICE } = service,
        { RPC_METHOD } = method,
        { RPC_GRPC_STATUS_CODE } = Empty,
        { SERVER_ADDRESS } = server_address,
        { SERVER_PORT } = i64::from(peer.port()),
        { NETWORK_PEER_ADDRESS } = %peer.ip(),
        { NETWORK_PEER_PORT } = i64::from(peer.port()),
        { RPC_ATTEMPT } = i64::from(attempt),
        { ERROR_TYPE } = Empty,
    )
}

/// The duration histogram of one side's calls: build it once, where the
/// service is built (under its dispatcher), and keep it.
#[derive(Clone, Debug)]
pub struct CallDurations(Histogram<f64>);

impl CallDurations {
    /// `rpc.client.call.duration`, one measurement per attempt.
    pub fn client() -> Self {
        Self(duration_histogram(
            &meter(env!("CARGO_PKG_NAME")),
            RPC_CLIENT_DURATION,
            "Duration of outgoing gRPC calls, per attempt",
        ))
    }

    /// `rpc.server.call.duration`.
    pub fn server() -> Self {
        Self(duration_histogram(
            &meter(env!("CARGO_PKG_NAME")),
            RPC_SERVER_DURATION,
            "Duration of gRPC calls served",
        ))
    }

    fn record(&self, call: Call, code: Code, error_type: Option<&str>) {
        let mut attributes = vec![
            KeyValue::new(RPC_SYSTEM, "grpc"),
            KeyValue::new(RPC_SERVICE, call.service),
            KeyValue::new(RPC_METHOD, call.method),
            KeyValue::new(RPC_GRPC_STATUS_CODE, code as i64),
        ];
        if let Some(error_type) = error_type {
            attributes.push(KeyValue::new(ERROR_TYPE, error_type.to_owned()));
        }
        self.0
            .record(call.started.elapsed().as_secs_f64(), &attributes);
    }
}

/// A call (or one attempt at it) being timed: its name and start.
#[derive(Clone, Copy, Debug)]
pub struct Call {
    /// The gRPC service, as given to [`client`] or [`server`].
    pub service: &'static str,
    /// The method, as given to [`client`] or [`server`].
    pub method: &'static str,
    /// When the span was opened.
    pub started: Instant,
}

impl Call {
    /// A call to `service`/`method` starting now.
    pub fn start(service: &'static str, method: &'static str) -> Self {
        Self {
            service,
            method,
            started: Instant::now(),
        }
    }
}

/// Records a call's outcome on its CLIENT span and its duration in
/// `durations`: for a client every non-OK status is an error.
pub fn record_client_status<T>(
    span: &Span,
    durations: &CallDurations,
    call: Call,
    result: &Result<T, Status>,
) {
    let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
    span.record(RPC_GRPC_STATUS_CODE, code as i64);
    let error_type = result.is_err().then(|| format!("{code:?}"));
    if let (Err(status), Some(error_type)) = (result, &error_type) {
        super::record_error(
            span,
            error_type,
            &format!("{:?}: {}", status.code(), status.message()),
        );
    }
    durations.record(call, code, error_type.as_deref());
}

/// The SERVER span of a call to `service`/`method`, continuing the caller's
/// trace from the request `metadata`.
pub fn server(metadata: &MetadataMap, service: &str, method: &str) -> Span {
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %format_args!("{service}/{method}"),
        otel.kind = "server",
        otel.status_code = Empty,
        otel.status_description = Empty,
        { RPC_SYSTEM } = "grpc",
        { RPC_SERVICE } = service,
        { RPC_METHOD } = method,
        { RPC_GRPC_STATUS_CODE } = Empty,
        { ERROR_TYPE } = Empty,
    );
    // Must happen before the span is first entered.
    let _ = span.set_parent(propagation::grpc::extract(metadata));
    span
}

/// Records a call's outcome on its SERVER span and its duration in
/// `durations`. Per the RPC conventions a server span is an error only for
/// codes that mean the server failed, not for a caller's mistake.
pub fn record_server_status<T>(
    span: &Span,
    durations: &CallDurations,
    call: Call,
    result: &Result<T, Status>,
) {
    let code = match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    };
    span.record(RPC_GRPC_STATUS_CODE, code as i64);
    let mut error_type = None;
    if let Err(status) = result
        && matches!(
            code,
            Code::Unknown
                | Code::DeadlineExceeded
                | Code::Unimplemented
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
        )
    {
        let failure = format!("{code:?}");
        super::record_error(span, &failure, status.message());
        error_type = Some(failure);
    }
    durations.record(call, code, error_type.as_deref());
}
