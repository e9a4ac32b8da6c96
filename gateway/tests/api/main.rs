//! The gateway's router, in-process: every answer the gateway decides on its
//! own, checked without a listening socket, a broker or checkout-service.
//!
//! Each test builds the router with [`helpers::router`] and sends it one
//! request with `tower::ServiceExt::oneshot`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

mod api_keys;
mod checkout_service_down;
mod helpers;
mod routing;
mod storefront;
mod validation;
