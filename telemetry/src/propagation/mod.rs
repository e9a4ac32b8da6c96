//! W3C trace-context propagation across the three protocols of the pipeline.
//!
//! A trace survives a process boundary only if each hop writes the current
//! context into the outgoing message and the next hop reads it back. The
//! format is the same everywhere (W3C `traceparent`, `tracestate` and
//! `baggage`); only the carrier differs, so each protocol gets one file:
//!
//! - [`http`]: HTTP request headers (client → gateway);
//! - [`grpc`]: gRPC metadata (gateway → checkout-service);
//! - `amqp`: AMQP message headers (checkout-service → stock-service), with
//!   the `amqp` feature.
//!
//! The propagator is a fixed composite of W3C Trace Context and W3C Baggage
//! rather than the process-global one: the carriers then behave the same in
//! every binary and test, whether or not anything installed a global.

#[cfg(feature = "amqp")]
pub mod amqp;
pub mod grpc;
pub mod http;

use std::sync::LazyLock;

/// The carrier traits each protocol's file implements.
pub use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::{
    Context,
    propagation::{TextMapCompositePropagator, TextMapPropagator},
};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

static PROPAGATOR: LazyLock<TextMapCompositePropagator> = LazyLock::new(|| {
    TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
});

/// The W3C Trace Context + Baggage propagator every carrier uses.
pub fn propagator() -> &'static TextMapCompositePropagator {
    &PROPAGATOR
}

/// Writes `cx` (span context and baggage) into `carrier`.
pub fn inject(cx: &Context, carrier: &mut dyn Injector) {
    PROPAGATOR.inject_context(cx, carrier);
}

/// Reads a context from `carrier`. Missing or malformed headers give an empty
/// context (a new trace starts), never an error: a bad header from a peer must
/// not fail the request.
pub fn extract(carrier: &dyn Extractor) -> Context {
    PROPAGATOR.extract(carrier)
}
