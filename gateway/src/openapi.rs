//! The gateway's OpenAPI 3 document, generated from the handlers' and types'
//! annotations (utoipa) so it cannot drift from the code; served at
//! `GET /openapi.json` and checked against the running gateway by
//! schemathesis (`scripts/api-fuzz`).

use axum::Json;
use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use contracts::{error, http};

use crate::routes;

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Checkout gateway",
        description = "The HTTP entry point of the traced checkout pipeline."
    ),
    paths(
        routes::checkout,
        routes::catalog,
        routes::order,
        routes::healthz,
        routes::readyz
    ),
    components(schemas(
        http::CheckoutBody,
        http::LineItemBody,
        http::CheckoutAccepted,
        http::CatalogBody,
        http::CatalogItem,
        http::OrderView,
        error::ErrorBody,
        error::ErrorDetail
    )),
    modifiers(&ApiKeyScheme)
)]
pub struct ApiDoc;

/// Declares the `api_key` security scheme `POST /api/checkout` names:
/// `Authorization: Bearer <key>`, asked for only when `API_KEYS` is set.
struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key from the gateway's API_KEYS; required only when API_KEYS is set",
                    ))
                    .build(),
            ),
        );
    }
}

/// `GET /openapi.json`.
pub async fn openapi_json() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
