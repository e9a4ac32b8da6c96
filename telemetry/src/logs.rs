//! Logs, twice: JSON lines on stdout that carry the trace and span ids of the
//! span they were written in, so a log line leads straight to its trace; and,
//! unless `OTEL_LOGS_EXPORTER=none`, the same events as OpenTelemetry log
//! records over OTLP, with those ids in their trace context.
//!
//! Both take `RUST_LOG`'s filter and the event's own fields and message, no
//! more: what a service does not write into an event (request bodies,
//! secrets) is in neither. The OTLP records leave out the events of the
//! export machinery itself (see [`is_export_machinery`]): exporting a record
//! makes the HTTP/2 client log, and those events, exported, would make more.

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicBool, Ordering},
};

use opentelemetry::trace::TraceContextExt;
use opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge;
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};
use tracing::dispatcher::WeakDispatch;
use tracing_subscriber::{
    EnvFilter, Layer,
    filter::{FilterExt, filter_fn},
    layer::Context,
    registry::LookupSpan,
};

use crate::export::is_export_machinery;

/// One JSON object per line, with `trace_id` and `span_id` of the current
/// span so a log line leads straight to its trace.
pub(crate) fn json_logs<S, W>(
    writer: W,
    own_dispatch: Arc<OnceLock<WeakDispatch>>,
) -> json_subscriber::JsonLayer<S, W>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    let mut layer = json_subscriber::JsonLayer::new(writer);
    layer
        .with_timer("timestamp", tracing_subscriber::fmt::time::SystemTime)
        .with_level("level")
        .with_target("target")
        .with_flattened_event()
        .with_current_span("span");
    layer.add_multiple_dynamic_fields(move |event, ctx, fields| {
        let Some(span) = ctx.event_span(event) else {
            return;
        };
        let Some(dispatch) = own_dispatch.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        if let Some(cx) = tracing_opentelemetry::get_otel_context(&span.id(), &dispatch) {
            let span_context = cx.span().span_context().clone();
            if span_context.is_valid() {
                let _ = fields.write_field("trace_id", span_context.trace_id().to_string());
                let _ = fields.write_field("span_id", span_context.span_id().to_string());
            }
        }
    });
    layer
}

/// The OTLP log layer: `tracing` events as log records of `provider`, those
/// `log_filter` (`RUST_LOG`) lets through, except the export machinery's.
/// Once `open` is false (the provider is shutting down) it emits nothing, so
/// a late event does not make the SDK warn about a record after shutdown.
pub(crate) fn otlp_logs<S>(
    provider: &SdkLoggerProvider,
    log_filter: EnvFilter,
    open: Arc<AtomicBool>,
    own_dispatch: Arc<OnceLock<WeakDispatch>>,
) -> impl Layer<S> + use<S>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    let not_machinery = filter_fn(|metadata| !is_export_machinery(metadata.target()));
    OtlpLogs {
        bridge: OpenTelemetryTracingBridge::new(provider),
        open,
        own_dispatch,
    }
    .with_filter(log_filter.and(not_machinery))
}

/// The `opentelemetry-appender-tracing` bridge behind an on/off switch.
///
/// The bridge takes a record's trace and span ids from the OpenTelemetry
/// context current on the thread, which is the entered span's. An event
/// given its span explicitly (`info!(parent: &span, …)`, as stock-service
/// does for each order of a batch after the batch's commit) is written
/// outside that span, so for those the span's own context is made current
/// while the record is made — the JSON layer finds it the same way.
struct OtlpLogs {
    bridge: OpenTelemetryTracingBridge<SdkLoggerProvider, SdkLogger>,
    open: Arc<AtomicBool>,
    own_dispatch: Arc<OnceLock<WeakDispatch>>,
}

impl OtlpLogs {
    /// The OpenTelemetry context of the event's explicit parent, or of the
    /// nearest traced span above it; an empty one for an explicit root.
    fn explicit_context<S>(
        &self,
        event: &tracing::Event<'_>,
        ctx: &Context<'_, S>,
    ) -> opentelemetry::Context
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        let Some(dispatch) = self.own_dispatch.get().and_then(WeakDispatch::upgrade) else {
            return opentelemetry::Context::new();
        };
        let traced = |id: &tracing::span::Id| {
            tracing_opentelemetry::get_otel_context(id, &dispatch)
                .filter(|cx| cx.span().span_context().is_valid())
        };
        event
            .parent()
            .and_then(traced)
            .or_else(|| {
                ctx.event_scope(event)
                    .into_iter()
                    .flatten()
                    .find_map(|span| traced(&span.id()))
            })
            .unwrap_or_default()
    }
}

impl<S> Layer<S> for OtlpLogs
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        if !self.open.load(Ordering::Acquire) {
            return;
        }
        let _explicit =
            (!event.is_contextual()).then(|| self.explicit_context(event, &ctx).attach());
        self.bridge.on_event(event, ctx);
    }
}
