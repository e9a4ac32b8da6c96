//! OTLP/HTTP with protobuf encoding: `POST /v1/traces`.
//!
//! Some exporters (and `curl`-based debugging) speak OTLP over plain HTTP instead of
//! gRPC. The body is a protobuf `ExportTraceServiceRequest`, optionally gzip-compressed
//! (`Content-Encoding: gzip`); the reply is a protobuf `ExportTraceServiceResponse`.
//! Errors follow the OTLP/HTTP spec: a 4xx status with a protobuf `google.rpc.Status` body.

use std::io::Read;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use flate2::read::GzDecoder;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;

use super::{MAX_MESSAGE_BYTES, SpanStore};

const PROTOBUF: &str = "application/x-protobuf";

/// The router serving `POST /v1/traces` into `store`.
pub(crate) fn router(store: SpanStore) -> Router {
    Router::new()
        .route("/v1/traces", post(export))
        .layer(DefaultBodyLimit::max(MAX_MESSAGE_BYTES))
        .with_state(store)
}

async fn export(State(store): State<SpanStore>, headers: HeaderMap, body: Bytes) -> Response {
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
    match ExportTraceServiceRequest::decode(body) {
        Ok(request) => {
            store.insert(request);
            protobuf(
                StatusCode::OK,
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
        }
        Err(e) => error(
            StatusCode::BAD_REQUEST,
            &format!("invalid ExportTraceServiceRequest: {e}"),
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
