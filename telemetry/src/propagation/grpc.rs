//! Trace context in gRPC metadata: how a gRPC call joins the caller's trace.
//!
//! The client side injects through [`TraceContextInterceptor`], so every call
//! made through an intercepted client carries the context of the span that is
//! current when the call starts. The server side reads it back with [`extract`].
//!
//! The formats are those of `OTEL_PROPAGATORS` (see [`super`]). gRPC
//! metadata has ASCII keys and binary keys (suffix `-bin`, base64 on the
//! wire). The W3C, B3 and Jaeger headers are ASCII, but a peer may send
//! anything: both kinds are read, and nothing here panics on a key or value
//! it cannot use.

use opentelemetry::{
    Context,
    propagation::{Extractor, Injector},
};
/// The carrier: call metadata.
pub use tonic::metadata::MetadataMap;
use tonic::metadata::{KeyRef, MetadataKey, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Reads propagation fields from gRPC metadata.
pub struct MetadataExtractor<'a>(pub &'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        if key.ends_with("-bin") {
            // Binary values are decoded bytes; only UTF-8 text is usable here.
            // `get_bin` returns an owned decode, so it cannot be lent out.
            return None;
        }
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .map(|key| match key {
                KeyRef::Ascii(key) => key.as_str(),
                KeyRef::Binary(key) => key.as_str(),
            })
            .collect()
    }
}

/// Writes propagation fields into gRPC metadata.
pub struct MetadataInjector<'a>(pub &'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if key.ends_with("-bin") {
            if let Ok(key) = MetadataKey::from_bytes(key.as_bytes()) {
                self.0
                    .insert_bin(key, MetadataValue::from_bytes(value.as_bytes()));
            }
        } else if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Reads the caller's context from the request metadata.
pub fn extract(metadata: &MetadataMap) -> Context {
    super::extract(&MetadataExtractor(metadata))
}

/// Writes `cx` into outgoing request metadata.
pub fn inject(cx: &Context, metadata: &mut MetadataMap) {
    super::inject(cx, &mut MetadataInjector(metadata));
}

/// A tonic client interceptor that propagates the current span's context.
///
/// Interceptors run synchronously when the call is made, inside the caller's
/// span, so `Span::current()` here is the client span of the call.
#[derive(Clone, Copy, Debug, Default)]
pub struct TraceContextInterceptor;

impl tonic::service::Interceptor for TraceContextInterceptor {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        let cx = tracing::Span::current().context();
        inject(&cx, request.metadata_mut());
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::{
        KeyValue,
        baggage::BaggageExt,
        trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
    };

    use super::*;

    fn sample_context() -> Context {
        let span_context = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("vendor", "v1")]).unwrap(),
        );
        Context::new()
            .with_remote_span_context(span_context)
            .with_baggage([KeyValue::new("tenant", "acme")])
    }

    #[test]
    fn round_trips_through_metadata() {
        let mut metadata = MetadataMap::new();
        inject(&sample_context(), &mut metadata);
        assert_eq!(
            metadata.get("traceparent").unwrap(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        );

        let cx = extract(&metadata);
        let span = cx.span();
        let extracted = span.span_context();
        assert_eq!(
            extracted.span_id(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap()
        );
        assert_eq!(extracted.trace_state().get("vendor"), Some("v1"));
        assert_eq!(cx.baggage().get("tenant").unwrap().as_str(), "acme");
    }

    #[test]
    fn continues_a_b3_or_jaeger_caller_when_those_propagators_are_on() {
        let callers: [(&str, &[(&str, &str)]); 4] = [
            (
                "b3",
                &[("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1")],
            ),
            (
                "b3multi",
                &[
                    ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
                    ("x-b3-spanid", "00f067aa0ba902b7"),
                    ("x-b3-sampled", "1"),
                ],
            ),
            // Either B3 setting reads both B3 forms, as the specification asks.
            (
                "b3multi",
                &[("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1")],
            ),
            (
                "jaeger",
                &[
                    (
                        "uber-trace-id",
                        "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1",
                    ),
                    ("uberctx-tenant", "acme"),
                ],
            ),
        ];
        for (propagators, headers) in callers {
            let mut metadata = MetadataMap::new();
            for (key, value) in headers {
                metadata.insert(*key, MetadataValue::try_from(*value).unwrap());
            }
            assert!(!extract(&metadata).span().span_context().is_valid());
            crate::propagation::under(propagators, || {
                let cx = extract(&metadata);
                let span = cx.span();
                assert_eq!(
                    span.span_context().trace_id(),
                    TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
                    "{propagators}"
                );
                assert_eq!(
                    span.span_context().span_id(),
                    SpanId::from_hex("00f067aa0ba902b7").unwrap()
                );
            });
        }

        // What each setting writes.
        let cx = sample_context();
        let written = |propagators: &str| {
            crate::propagation::under(propagators, || {
                let mut metadata = MetadataMap::new();
                inject(&cx, &mut metadata);
                metadata
            })
        };
        assert_eq!(
            written("b3").get("b3").unwrap(),
            "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1"
        );
        let multi = written("b3multi");
        assert_eq!(
            multi.get("x-b3-traceid").unwrap(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(multi.get("x-b3-spanid").unwrap(), "00f067aa0ba902b7");
        assert_eq!(multi.get("x-b3-sampled").unwrap(), "1");
        assert!(multi.get("traceparent").is_none());
        let jaeger = written("jaeger");
        assert_eq!(
            jaeger.get("uber-trace-id").unwrap(),
            "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:01"
        );
        assert_eq!(jaeger.get("uberctx-tenant").unwrap(), "acme");
        assert!(written("none").is_empty());
    }

    #[test]
    fn with_none_nothing_is_read() {
        let mut metadata = MetadataMap::new();
        inject(&sample_context(), &mut metadata);
        crate::propagation::under("none", || {
            let cx = extract(&metadata);
            assert!(!cx.span().span_context().is_valid());
            assert_eq!(cx.baggage().len(), 0);
        });
    }

    #[test]
    fn binary_and_invalid_entries_never_panic() {
        let mut metadata = MetadataMap::new();
        metadata.insert_bin("traceparent-bin", MetadataValue::from_bytes(b"\x00\xff"));
        metadata.insert(
            "traceparent",
            MetadataValue::from_static("not-a-traceparent"),
        );
        let extractor = MetadataExtractor(&metadata);
        assert!(extractor.keys().contains(&"traceparent-bin"));
        assert_eq!(extractor.get("traceparent-bin"), None);
        assert!(!extract(&metadata).span().span_context().is_valid());

        // Keys or values gRPC cannot carry are skipped, not a panic.
        let mut injector = MetadataInjector(&mut metadata);
        injector.set("bad key", "x".into());
        injector.set("tracestate", "line\nbreak".into());
        injector.set("custom-bin", "bytes".into());
        assert!(metadata.get("tracestate").is_none());
        assert_eq!(
            metadata.get_bin("custom-bin").unwrap().to_bytes().unwrap(),
            &b"bytes"[..]
        );
    }
}
