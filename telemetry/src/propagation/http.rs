//! Trace context in HTTP headers: how the gateway continues a client's trace.
//!
//! The carrier types are `opentelemetry-http`'s, which already adapt
//! [`http::HeaderMap`] to the propagation API; this module only pins them to
//! the service's propagator (`OTEL_PROPAGATORS`, see [`super`]).

/// The carrier: request headers.
pub use http::{HeaderMap, HeaderValue};
use opentelemetry::Context;
pub use opentelemetry_http::{HeaderExtractor, HeaderInjector};

/// Reads the caller's context from request headers, in the service's formats
/// (by default W3C `traceparent`, `tracestate` and `baggage`).
pub fn extract(headers: &HeaderMap) -> Context {
    super::extract(&HeaderExtractor(headers))
}

/// Writes `cx` into outgoing request headers.
pub fn inject(cx: &Context, headers: &mut HeaderMap) {
    super::inject(cx, &mut HeaderInjector(headers));
}

#[cfg(test)]
mod tests {
    use opentelemetry::{baggage::BaggageExt, trace::TraceContextExt};

    use super::*;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn round_trips_traceparent_and_baggage() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static(TRACEPARENT));
        headers.insert("baggage", HeaderValue::from_static("tenant=acme"));
        let cx = extract(&headers);
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(cx.baggage().get("tenant").unwrap().as_str(), "acme");

        let mut out = HeaderMap::new();
        inject(&cx, &mut out);
        assert_eq!(out["traceparent"], TRACEPARENT);
        assert_eq!(out["baggage"], "tenant=acme");
    }

    #[test]
    fn baggage_and_tracestate_are_capped_as_w3c_says() {
        let entries: Vec<String> = (0..100).map(|i| format!("k{i}=v{i}")).collect();
        let members: Vec<String> = (0..40).map(|i| format!("v{i}=x")).collect();
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", HeaderValue::from_static(TRACEPARENT));
        headers.insert(
            "baggage",
            HeaderValue::from_str(&entries.join(",")).unwrap(),
        );
        headers.insert(
            "tracestate",
            HeaderValue::from_str(&members.join(",")).unwrap(),
        );
        let cx = extract(&headers);
        assert!(cx.baggage().len() <= 64, "at most 64 baggage members");

        let mut out = HeaderMap::new();
        inject(&cx, &mut out);
        let tracestate = out["tracestate"].to_str().unwrap();
        assert!(
            tracestate.split(',').count() <= 32,
            "at most 32 tracestate members"
        );
        assert!(out["baggage"].len() <= 8192);

        // An invalid baggage header is dropped, not propagated.
        let mut headers = HeaderMap::new();
        headers.insert("baggage", HeaderValue::from_static("=;;,==bad"));
        let mut out = HeaderMap::new();
        inject(&extract(&headers), &mut out);
        assert!(out.get("baggage").is_none_or(|v| v.is_empty()));
    }

    #[test]
    fn malformed_or_non_utf8_headers_start_a_new_trace() {
        for bad in [&b"garbage"[..], b"00-zz-yy-01", b"\xff\xfe"] {
            let mut headers = HeaderMap::new();
            headers.insert("traceparent", HeaderValue::from_bytes(bad).unwrap());
            let cx = extract(&headers);
            assert!(!cx.span().span_context().is_valid());
        }
    }
}
