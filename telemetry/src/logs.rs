//! JSON log lines that carry the trace and span ids of the span they were
//! written in, so a log line leads straight to its trace.

use std::sync::{Arc, OnceLock};

use opentelemetry::trace::TraceContextExt;
use tracing::dispatcher::WeakDispatch;
use tracing_subscriber::registry::LookupSpan;

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
