//! Every way a request can fail, as an HTTP status and a JSON body
//! `{"error":{"code":"…","message":"…"}}`.
//!
//! `code` is a stable machine-readable name; `message` is for people. gRPC
//! statuses from checkout-service map to the HTTP status that tells the
//! client what to do: fix the request (4xx), or retry later (503/504).

use axum::{
    Json,
    extract::rejection::JsonRejection,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use tonic::Code;

use crate::domain::CartError;

/// A failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable error code, e.g. `unknown_item`.
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 404 for paths the gateway does not serve.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    /// 405; the router adds the `Allow` header.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed for this resource",
        )
    }

    /// 503 when too many checkouts are in flight; see [`RETRY_AFTER_SECONDS`].
    pub fn overloaded() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many checkouts in flight, retry shortly",
        )
    }

    /// 504 when the request took longer than the server allows.
    pub fn request_timeout() -> Self {
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "deadline_exceeded",
            "the request took too long",
        )
    }
}

/// `Retry-After` sent with every 503: the condition is expected to pass soon.
pub const RETRY_AFTER_SECONDS: &str = "1";

/// The JSON body of every error: `{"error":{"code":"…","message":"…"}}`.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `unknown_item`.
    #[schema(example = "unknown_item")]
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        let (status, code) = match rejection.status() {
            StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            // axum answers 422 for JSON of the wrong shape; to a client it is
            // as malformed as a syntax error.
            _ => (StatusCode::BAD_REQUEST, "malformed_json"),
        };
        Self::new(status, code, rejection.body_text())
    }
}

impl From<CartError> for ApiError {
    fn from(error: CartError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_cart", error.to_string())
    }
}

impl From<tonic::Status> for ApiError {
    fn from(status: tonic::Status) -> Self {
        let message = status.message().to_owned();
        match status.code() {
            Code::InvalidArgument | Code::OutOfRange => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_cart", message)
            }
            Code::NotFound => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "unknown_item", message),
            Code::FailedPrecondition | Code::AlreadyExists => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                message,
            ),
            Code::Unavailable | Code::ResourceExhausted => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                format!("checkout is unavailable, try again later: {message}"),
            ),
            Code::DeadlineExceeded | Code::Cancelled => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "deadline_exceeded",
                "checkout did not answer in time",
            ),
            _ => Self::new(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("checkout failed: {message}"),
            ),
        }
    }
}
