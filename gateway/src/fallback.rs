//! The answers to requests no route takes: an unknown path (404) and a known
//! path with a method it does not take (405), both the one JSON error body.
//!
//! Their own module because both routers use them: the API's
//! ([`crate::startup::router`]) and the storefront's
//! ([`crate::storefront::router`]).

use contracts::error::ApiError;

/// Any path the gateway does not serve.
pub async fn not_found() -> ApiError {
    ApiError::not_found("no such resource")
}

/// A served path with a method it does not take.
pub async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
