//! The gateway's OpenAPI 3 document, generated from the handlers' and types'
//! annotations (utoipa) so it cannot drift from the code; served at
//! `GET /openapi.json` and checked against the running gateway by
//! schemathesis (`scripts/api-fuzz`).

use axum::Json;
use utoipa::OpenApi;

use contracts::{error, http};

use crate::routes;

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Checkout gateway",
        description = "The HTTP entry point of the traced checkout pipeline."
    ),
    paths(routes::checkout, routes::healthz, routes::readyz),
    components(schemas(
        http::CheckoutBody,
        http::LineItemBody,
        http::CheckoutAccepted,
        error::ErrorBody,
        error::ErrorDetail
    ))
)]
pub struct ApiDoc;

/// `GET /openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
