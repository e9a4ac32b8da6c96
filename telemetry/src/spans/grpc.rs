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
//! matching the other services they meet.
#![allow(deprecated)]

use std::net::SocketAddr;

use opentelemetry_semantic_conventions::attribute::{
    ERROR_TYPE, NETWORK_PEER_ADDRESS, NETWORK_PEER_PORT, RPC_GRPC_STATUS_CODE, RPC_METHOD,
    RPC_SERVICE, RPC_SYSTEM, SERVER_ADDRESS, SERVER_PORT,
};
use tonic::{Code, Status, metadata::MetadataMap};
use tracing::{Span, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::propagation;

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

/// Records a call's outcome on its CLIENT span: for a client every non-OK
/// status is an error.
pub fn record_client_status<T>(span: &Span, result: &Result<T, Status>) {
    let code = result.as_ref().map_or_else(Status::code, |_| Code::Ok);
    span.record(RPC_GRPC_STATUS_CODE, code as i64);
    if let Err(status) = result {
        super::record_error(
            span,
            &format!("{code:?}"),
            &format!("{:?}: {}", status.code(), status.message()),
        );
    }
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

/// Records a call's outcome on its SERVER span. Per the RPC conventions a
/// server span is an error only for codes that mean the server failed, not
/// for a caller's mistake.
pub fn record_server_status<T>(span: &Span, result: &Result<T, Status>) {
    let code = match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    };
    span.record(RPC_GRPC_STATUS_CODE, code as i64);
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
        super::record_error(span, &format!("{code:?}"), status.message());
    }
}
