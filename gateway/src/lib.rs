//! gateway: the HTTP front door of the checkout pipeline.
//!
//! `POST /api/checkout` takes a JSON cart, parses it into a [`domain::Cart`],
//! and calls `checkout.Checkout/DoCheckout` on checkout-service. The HTTP
//! SERVER span continues a trace the client started (`traceparent`,
//! `baggage`), and the gRPC CLIENT span passes it on in the call's metadata.
//!
//! # Layout
//!
//! - [`configuration`]: settings from the environment.
//! - [`domain`]: the request body and the [`domain::Cart`] it parses into.
//! - [`checkout_client`]: the gRPC client, its deadline and its CLIENT span.
//! - [`error`]: every failure as an HTTP status and a JSON error body.
//! - [`routes`]: the handlers.
//! - [`openapi`]: the OpenAPI document, generated from the code.
//! - [`startup`]: [`startup::Application`]: the router, its middleware, serving.

pub mod checkout_client;
pub mod configuration;
pub mod domain;
pub mod error;
pub mod openapi;
pub mod routes;
pub mod startup;
