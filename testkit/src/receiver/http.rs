//! OTLP/HTTP with protobuf encoding: `POST /v1/traces`, `/v1/metrics`, `/v1/logs`.
//!
//! Some exporters (and `curl`-based debugging) speak OTLP over plain HTTP instead of
//! gRPC. The body is a protobuf `Export{Trace,Metrics,Logs}ServiceRequest`, optionally
//! gzip-compressed (`Content-Encoding: gzip`); the reply is the matching protobuf
//! response. Errors follow the OTLP/HTTP spec: a 4xx status with a protobuf
//! `google.rpc.Status` body.

use std::io::Read;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use flate2::read::GzDecoder;
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use super::{MAX_MESSAGE_BYTES, Stores};

const PROTOBUF: &str = "application/x-protobuf";

/// The router serving the three signals' `POST /v1/{signal}` into `stores`.
pub(crate) fn router(stores: Stores) -> Router {
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(metrics))
        .route("/v1/logs", post(logs))
        .layer(DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
        .with_state(stores)
}

async fn traces(State(stores): State<Stores>, headers: HeaderMap, body: Bytes) -> Response {
    export(&headers, body, |request: ExportTraceServiceRequest| {
        stores.insert_spans(request);
        ExportTraceServiceResponse::default()
    })
}

async fn metrics(State(stores): State<Stores>, headers: HeaderMap, body: Bytes) -> Response {
    export(&headers, body, |request: ExportMetricsServiceRequest| {
        stores.metrics.insert(request);
        ExportMetricsServiceResponse::default()
    })
}

async fn logs(State(stores): State<Stores>, headers: HeaderMap, body: Bytes) -> Response {
    export(&headers, body, |request: ExportLogsServiceRequest| {
        stores.logs.insert(request);
        ExportLogsServiceResponse::default()
    })
}

/// Decodes the (possibly gzipped) protobuf request `R`, hands it to `store`,
/// and answers with the response it returns.
fn export<R: Message + Default, P: Message>(
    headers: &HeaderMap,
    body: Bytes,
    store: impl FnOnce(R) -> P,
) -> Response {
    let header_str = |name| headers.get(name).and_then(|v| v.to_str().ok());
    if header_str(header::CONTENT_TYPE).is_some_and(|ct| !ct.starts_with(PROTOBUF)) {
        return error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "only application/x-protobuf is supported",
        );
    }
    let body = match header_str(header::CONTENT_ENCODING) {
        None | Some("identity") => body,
        Some("gzip") => match gunzip(&body) {
            Ok(body) => Bytes::from(body),
            Err(e) => return error(StatusCode::BAD_REQUEST, &format!("invalid gzip body: {e}")),
        },
        Some(other) => {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                &format!("unsupported content-encoding {other:?}"),
            );
        }
    };
    match R::decode(body) {
        Ok(request) => protobuf(StatusCode::OK, store(request).encode_to_vec()),
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            &format!("invalid export request: {e}"),
        ),
    }
}

/// Decompresses at most [`MAX_MESSAGE_BYTES`], so a small "zip bomb" cannot exhaust memory.
fn gunzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let limit = MAX_MESSAGE_BYTES as u64 + 1;
    GzDecoder::new(body).take(limit).read_to_end(&mut out)?;
    if out.len() > MAX_MESSAGE_BYTES {
        return Err(std::io::Error::other("decompressed body too large"));
    }
    Ok(out)
}

/// The `code` and `message` fields of `google.rpc.Status`, which OTLP/HTTP error bodies carry.
#[derive(Clone, PartialEq, Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

fn error(status: StatusCode, message: &str) -> Response {
    tracing::debug!(%status, message, "rejected OTLP/HTTP export");
    let code = tonic::Code::InvalidArgument as i32;
    protobuf(
        status,
        RpcStatus {
            code,
            message: message.to_owned(),
        }
        .encode_to_vec(),
    )
}

fn protobuf(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, PROTOBUF)], body).into_response()
}
