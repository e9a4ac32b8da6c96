//! What a service's code finds in its own `tracing` dispatcher: its
//! propagator, its meter provider and its span forwarder.
//!
//! [`crate::Telemetry::build`] makes these once per service and puts them in
//! that service's dispatcher as one layer that sees no span or event;
//! [`crate::propagation::current`], [`crate::metrics::meter`] and
//! [`crate::SpanForwarder::current`] read them from the dispatcher current on
//! the calling thread. In a binary that is the process default; when the
//! tests run three services in one process, each service's code runs under
//! its own dispatcher, so each keeps its own settings, as three processes
//! would (the crate documentation says why the tests do that). Where no
//! service's dispatcher is current (a unit test, a fuzz target) there is
//! none, and each caller falls back to its default.

use std::sync::Arc;

use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use tracing_subscriber::{Layer, filter::filter_fn};

use crate::SpanForwarder;

/// One service's propagator, meters and forwarder.
pub(crate) struct ServiceContext {
    /// The `OTEL_PROPAGATORS` formats, composed.
    pub(crate) propagator: Arc<TextMapCompositePropagator>,
    /// None with metrics off.
    pub(crate) meters: Option<SdkMeterProvider>,
    /// None with traces off.
    pub(crate) forwarder: Option<SpanForwarder>,
}

impl<S: tracing::Subscriber> Layer<S> for ServiceContext {}

impl ServiceContext {
    /// The layer carrying this context. Its filter turns every span and
    /// event away: left unfiltered, a layer that wants everything would
    /// switch on every callsite the other layers' filters leave off.
    pub(crate) fn layer<S>(self) -> impl Layer<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        self.with_filter(filter_fn(|_| false))
    }

    /// `f` of the context of the dispatcher current on this thread; `None`
    /// outside any service.
    pub(crate) fn with_current<R>(f: impl Fn(&Self) -> R) -> Option<R> {
        tracing::dispatcher::get_default(|dispatch| dispatch.downcast_ref::<Self>().map(&f))
    }
}

impl SpanForwarder {
    /// The forwarder of the service whose code is running; `None` with
    /// traces off or outside any service.
    pub fn current() -> Option<Self> {
        ServiceContext::with_current(|context| context.forwarder.clone()).flatten()
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn the_context_layer_enables_no_callsite_and_is_found() {
        let context = ServiceContext {
            propagator: Arc::new(TextMapCompositePropagator::new(Vec::new())),
            meters: Some(SdkMeterProvider::default()),
            forwarder: None,
        };
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(context.layer()));
        tracing::dispatcher::with_default(&dispatch, || {
            assert!(!tracing::enabled!(tracing::Level::ERROR));
            assert!(tracing::info_span!("probe").is_disabled());
            assert_eq!(
                ServiceContext::with_current(|context| context.meters.is_some()),
                Some(true)
            );
        });
        assert!(ServiceContext::with_current(|_| ()).is_none());
    }
}
