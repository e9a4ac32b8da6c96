//! Metrics for service code: each service's own meter, found the way its
//! propagator is.
//!
//! [`crate::Telemetry::build`] makes one `SdkMeterProvider` per service (the
//! service's resource, its periodic OTLP export); [`meter`] returns a meter
//! of the provider of the service whose code is running (see
//! `service_context`), so its measurements carry its own `service.name`.
//! Where a [`crate::Telemetry`] value is at hand, [`crate::Telemetry::meter`]
//! is the same without the lookup.
//!
//! Service code gets its meter and builds its instruments once, where the
//! service is built (`Application::build` runs under the service's
//! dispatcher), and keeps them: instruments are cheap handles (`Clone`), and
//! recording on one updates an in-memory aggregate only; the export happens
//! on the SDK's reader thread every `OTEL_METRIC_EXPORT_INTERVAL`. With
//! metrics off (`OTEL_METRICS_EXPORTER=none`, `OTEL_SDK_DISABLED=true`), and
//! where no service's dispatcher is current (a unit test, a fuzz target), the
//! meter is a no-op one: the same code runs and records nothing.
//!
//! Durations are histograms in seconds with
//! [`crate::metric_names::DURATION_BOUNDARIES`]; [`duration_histogram`]
//! builds one so.

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Histogram, Meter, MeterProvider as _, NoopMeterProvider, ObservableGauge},
};
use opentelemetry_sdk::metrics::SdkMeterProvider;

use crate::metric_names::{BROKER_CONNECTED, DURATION_BOUNDARIES, ORDER_OUTCOME, ORDERS_PROCESSED};
use crate::service_context::ServiceContext;

/// The meter `name` (the instrumentation scope, e.g. the crate's name) of the
/// service whose dispatcher is current on this thread; a no-op meter outside
/// any service or with metrics off.
pub fn meter(name: &'static str) -> Meter {
    ServiceContext::with_current(|context| meter_of(context.meters.as_ref(), name))
        .unwrap_or_else(|| NoopMeterProvider::new().meter(name))
}

/// A histogram of durations in seconds (unit `s`), with the pipeline's
/// bucket boundaries; record with `Instant::elapsed().as_secs_f64()`.
pub fn duration_histogram(
    meter: &Meter,
    name: &'static str,
    description: &'static str,
) -> Histogram<f64> {
    meter
        .f64_histogram(name)
        .with_unit("s")
        .with_description(description)
        .with_boundaries(DURATION_BOUNDARIES.to_vec())
        .build()
}

/// The orders counter ([`ORDERS_PROCESSED`]), shared by the services that
/// decide an order's fate, one series per [`ORDER_OUTCOME`]. Clones share
/// the counter.
#[derive(Clone, Debug)]
pub struct OrderOutcomes(Counter<u64>);

impl OrderOutcomes {
    /// The counter on the meter of the service current on this thread.
    pub fn new() -> Self {
        Self(
            meter(env!("CARGO_PKG_NAME"))
                .u64_counter(ORDERS_PROCESSED)
                .with_unit("{order}")
                .with_description(
                    "Orders by outcome: accepted, applied, duplicate, rejected, dead_lettered",
                )
                .build(),
        )
    }

    /// Counts `orders` orders with `outcome` (one of
    /// [`crate::metric_names::ORDER_OUTCOMES`]).
    pub fn add(&self, outcome: &'static str, orders: u64) {
        self.0.add(orders, &[KeyValue::new(ORDER_OUTCOME, outcome)]);
    }
}

impl Default for OrderOutcomes {
    fn default() -> Self {
        Self::new()
    }
}

/// The [`BROKER_CONNECTED`] gauge on the meter of the service current on
/// this thread: 1 while `connected` says so, else 0, read at each export.
/// `connected` must be quick (an atomic or a watch channel, never I/O): it
/// runs on the SDK's reader thread. Keep the returned handle as long as the
/// service runs.
pub fn broker_connected(connected: impl Fn() -> bool + Send + Sync + 'static) -> GaugeHandle {
    GaugeHandle(
        meter(env!("CARGO_PKG_NAME"))
            .i64_observable_gauge(BROKER_CONNECTED)
            .with_unit("1")
            .with_description("Whether the connection to the broker is up (1) or not (0)")
            .with_callback(move |observer| observer.observe(i64::from(connected()), &[]))
            .build(),
    )
}

/// An observable gauge's registration, kept by whoever provides its values.
#[derive(Clone, Debug)]
pub struct GaugeHandle(#[allow(dead_code)] ObservableGauge<i64>);

impl From<ObservableGauge<i64>> for GaugeHandle {
    fn from(gauge: ObservableGauge<i64>) -> Self {
        Self(gauge)
    }
}

/// The meter `name` of `provider`, or a no-op one without a provider.
pub(crate) fn meter_of(provider: Option<&SdkMeterProvider>, name: &'static str) -> Meter {
    match provider {
        Some(provider) => provider.meter(name),
        None => NoopMeterProvider::new().meter(name),
    }
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn a_service_meter_is_found_through_the_dispatcher() {
        let context = ServiceContext {
            propagator: std::sync::Arc::new(crate::Propagators::default().composite()),
            meters: Some(SdkMeterProvider::default()),
            forwarder: None,
        };
        let dispatch = tracing::Dispatch::new(tracing_subscriber::registry().with(context.layer()));
        tracing::dispatcher::with_default(&dispatch, || {
            // Found through the dispatcher; recording on it works.
            meter("test").u64_counter("probe").build().add(1, &[]);
        });
        // Outside any service: a no-op meter, usable all the same.
        duration_histogram(&meter("test"), "probe.duration", "a probe").record(0.5, &[]);
    }
}
