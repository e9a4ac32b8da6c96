//! [`AppState`]: what the gateway's handlers share.
//!
//! Its own module so that the handlers ([`crate::routes`]) and the
//! extractors they take ([`crate::auth::Client`]) depend on it, and it on
//! the clients it holds, without any of those depending back on the
//! handlers.

use axum::extract::FromRef;

use crate::{
    auth::ApiKeys, checkout_client::CheckoutClient, stock_client::StockClient,
    storefront::Storefront,
};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The checkout-service client.
    pub checkout: CheckoutClient,
    /// The clients and their API keys; `None`: no key is asked for and every
    /// caller is the anonymous client.
    pub api_keys: Option<ApiKeys>,
    /// The stock-service client (order status).
    pub stock: StockClient,
    /// The storefront page's configuration and span relay.
    pub storefront: Storefront,
}

/// The API keys, for the [`Client`](crate::auth::Client) extractor.
impl FromRef<AppState> for Option<ApiKeys> {
    fn from_ref(state: &AppState) -> Self {
        state.api_keys.clone()
    }
}
