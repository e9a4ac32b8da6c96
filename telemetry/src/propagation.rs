//! Trace-context propagation across the three protocols of the pipeline.
//!
//! A trace survives a process boundary only if each hop writes the current
//! context into the outgoing message and the next hop reads it back. The
//! formats are those `OTEL_PROPAGATORS` names ([`Propagators`]: W3C trace
//! context and baggage by default, B3 and Jaeger on request); only the
//! carrier differs, so each protocol gets one file:
//!
//! - [`http`]: HTTP request headers (client → gateway, and stock-service's API);
//! - [`grpc`]: gRPC metadata (gateway → checkout-service);
//! - `amqp`: AMQP message headers (checkout-service → stock-service), with
//!   the `amqp` feature.
//!
//! [`jaeger`] is the one format no maintained crate provides for this
//! `opentelemetry` version; [`selection`] parses the setting.
//!
//! # Which propagator a carrier uses
//!
//! [`extract`] and [`inject`] use the propagator of the service whose code
//! is running (see `service_context`); where there is none (a unit test, a
//! fuzz target), the default W3C trace context and baggage.

#[cfg(feature = "amqp")]
pub mod amqp;
pub mod grpc;
pub mod http;
pub mod jaeger;
pub mod selection;

use std::sync::{Arc, LazyLock};

use crate::service_context::ServiceContext;
/// The carrier traits each protocol's file implements.
pub use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::{
    Context,
    propagation::{TextMapCompositePropagator, TextMapPropagator},
};
pub use selection::{PropagatorName, Propagators};

/// The default propagator (`tracecontext,baggage`), for code that runs under
/// no service's dispatcher.
static DEFAULT: LazyLock<Arc<TextMapCompositePropagator>> =
    LazyLock::new(|| Arc::new(Propagators::default().composite()));

/// The propagator of the dispatcher current on this thread (see the module
/// documentation), or the default one.
pub fn current() -> Arc<TextMapCompositePropagator> {
    ServiceContext::with_current(|context| context.propagator.clone())
        .unwrap_or_else(|| DEFAULT.clone())
}

/// Writes `cx` (span context and baggage) into `carrier` in every format of
/// the current service's propagator.
pub fn inject(cx: &Context, carrier: &mut dyn Injector) {
    inject_with(&*current(), cx, carrier);
}

/// Reads a context from `carrier` with the current service's propagator.
/// Missing or malformed headers give an empty context (a new trace starts),
/// never an error: a bad header from a peer must not fail the request.
pub fn extract(carrier: &dyn Extractor) -> Context {
    extract_with(&*current(), carrier)
}

/// [`inject`] with a given propagator.
pub fn inject_with(propagator: &dyn TextMapPropagator, cx: &Context, carrier: &mut dyn Injector) {
    propagator.inject_context(cx, carrier);
}

/// [`extract`] with a given propagator. The result starts from an empty
/// context, whatever is current on this thread.
pub fn extract_with(propagator: &dyn TextMapPropagator, carrier: &dyn Extractor) -> Context {
    propagator.extract_with_context(&Context::new(), carrier)
}

/// Runs `f` under a dispatcher whose propagators are `propagators` (an
/// `OTEL_PROPAGATORS` value), as a service's code runs under its own.
#[cfg(test)]
pub(crate) fn under<R>(propagators: &str, f: impl FnOnce() -> R) -> R {
    use tracing_subscriber::layer::SubscriberExt;
    let propagators: Propagators = propagators.parse().unwrap();
    let context = crate::service_context::ServiceContext {
        propagator: Arc::new(propagators.composite()),
        meters: None,
        forwarder: None,
    };
    let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(context.layer()));
    tracing::dispatcher::with_default(&dispatch, f)
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TraceContextExt;

    use super::*;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn w3c_carrier() -> std::collections::HashMap<String, String> {
        std::collections::HashMap::from([("traceparent".to_owned(), TRACEPARENT.to_owned())])
    }

    #[test]
    fn without_a_service_dispatcher_the_default_is_w3c() {
        assert!(extract(&w3c_carrier()).span().span_context().is_valid());
    }

    #[test]
    fn a_service_dispatcher_brings_its_own_propagator() {
        under("none", || {
            assert!(!extract(&w3c_carrier()).span().span_context().is_valid());
            let mut out = std::collections::HashMap::new();
            let cx = extract_with(&*DEFAULT.clone(), &w3c_carrier());
            inject(&cx, &mut out);
            assert!(out.is_empty(), "none writes nothing: {out:?}");
        });
        // Outside it, the default again.
        assert!(extract(&w3c_carrier()).span().span_context().is_valid());
    }
}
