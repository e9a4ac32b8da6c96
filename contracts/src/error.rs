//! The one error every HTTP surface answers with: a status and the JSON body
//! `{"error":{"code":"…","message":"…"}}`.
//!
//! `code` is a stable machine-readable name; `message` is for people. The
//! gateway, stock-service's API and the fault-injection admin endpoints all
//! return [`ApiError`], so a client parses one shape everywhere. gRPC
//! statuses from checkout-service map to the HTTP status that tells the
//! client what to do: fix the request (4xx), or retry later (503/504).

use axum::{
    Json,
    extract::rejection::JsonRejection,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use tonic::Code;

/// `Retry-After` sent with every 503: the condition is expected to pass soon.
pub const RETRY_AFTER_SECONDS: &str = "1";

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

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: a credential is missing or wrong.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 405; the router adds the `Allow` header.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed for this resource",
        )
    }

    /// 503 `not_ready`, from a readiness probe.
    pub fn not_ready(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "not_ready", message)
    }

    /// 503 when too many requests are in flight.
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

    /// 500 for a failure of the server's own (for example its database).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// The body this error is sent with.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message.clone(),
            },
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

impl std::error::Error for ApiError {}

/// The JSON body of every error: `{"error":{"code":"…","message":"…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `unknown_item`.
    #[schema(example = "unknown_item")]
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
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

/// How checkout-service's gRPC statuses reach an HTTP client.
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
