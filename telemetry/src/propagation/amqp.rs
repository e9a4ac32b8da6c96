//! Trace context in AMQP message headers: how stock-service continues the
//! trace of the checkout that published the message.
//!
//! The publisher writes the headers of its propagators (`OTEL_PROPAGATORS`;
//! by default W3C `traceparent`, `tracestate` and `baggage`) as AMQP long
//! strings, the type RabbitMQ and other clients expect for text headers
//! (short strings are not valid in RabbitMQ headers tables). Other publishers
//! send text as short strings or byte arrays, so the extractor accepts all
//! three; any other type, or bytes that are not UTF-8, reads as absent.
//!
//! AMQP header names are case-sensitive, unlike HTTP's, and publishers
//! differ (`X-B3-TraceId` or `x-b3-traceid`): a name not found as the
//! propagator spells it (always lower case) is looked up ignoring case.

/// The carrier: a message's headers table.
pub use lapin::types::FieldTable;
use lapin::types::{AMQPValue, LongString};
use opentelemetry::{
    Context,
    propagation::{Extractor, Injector},
};

/// Reads propagation fields from an AMQP headers table.
pub struct AmqpHeaderExtractor<'a>(pub &'a FieldTable);

impl Extractor for AmqpHeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let headers = self.0.inner();
        let value = headers.get(key).or_else(|| {
            headers
                .iter()
                .find(|(name, _)| name.as_str().eq_ignore_ascii_case(key))
                .map(|(_, value)| value)
        })?;
        match value {
            AMQPValue::LongString(value) => std::str::from_utf8(value.as_bytes()).ok(),
            AMQPValue::ShortString(value) => Some(value.as_str()),
            AMQPValue::ByteArray(value) => std::str::from_utf8(value.as_slice()).ok(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.0.inner().keys().map(|key| key.as_str()).collect()
    }
}

/// Writes propagation fields into an AMQP headers table as long strings.
pub struct AmqpHeaderInjector<'a>(pub &'a mut FieldTable);

impl Injector for AmqpHeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0
            .insert(key.into(), AMQPValue::LongString(LongString::from(value)));
    }
}

/// Reads the publisher's context from a message's headers (absent headers
/// give an empty context).
pub fn extract(headers: Option<&FieldTable>) -> Context {
    match headers {
        Some(headers) => super::extract(&AmqpHeaderExtractor(headers)),
        None => Context::new(),
    }
}

/// Writes `cx` into a message's headers.
pub fn inject(cx: &Context, headers: &mut FieldTable) {
    super::inject(cx, &mut AmqpHeaderInjector(headers));
}

#[cfg(test)]
mod tests {
    use lapin::types::{ByteArray, ShortString};
    use opentelemetry::{
        KeyValue,
        baggage::BaggageExt,
        trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
    };

    use super::*;

    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn trace_id(cx: &Context) -> String {
        cx.span().span_context().trace_id().to_string()
    }

    #[test]
    fn injects_long_strings_and_round_trips() {
        let span_context = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            TraceFlags::SAMPLED,
            true,
            TraceState::from_key_value([("vendor", "v1")]).unwrap(),
        );
        let cx = Context::new()
            .with_remote_span_context(span_context)
            .with_baggage([KeyValue::new("tenant", "acme")]);

        let mut headers = FieldTable::default();
        inject(&cx, &mut headers);
        for key in ["traceparent", "tracestate", "baggage"] {
            assert!(
                matches!(headers.inner().get(key), Some(AMQPValue::LongString(_))),
                "{key} must be a long string"
            );
        }

        let back = extract(Some(&headers));
        assert_eq!(trace_id(&back), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            back.span().span_context().trace_state().get("vendor"),
            Some("v1")
        );
        assert_eq!(back.baggage().get("tenant").unwrap().as_str(), "acme");
    }

    #[test]
    fn accepts_short_strings_and_byte_arrays() {
        let short = FieldTable::from(std::collections::BTreeMap::from([(
            ShortString::from("traceparent"),
            AMQPValue::ShortString(TRACEPARENT.into()),
        )]));
        assert_eq!(
            trace_id(&extract(Some(&short))),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );

        let bytes = FieldTable::from(std::collections::BTreeMap::from([(
            ShortString::from("traceparent"),
            AMQPValue::ByteArray(ByteArray::from(TRACEPARENT.as_bytes())),
        )]));
        assert_eq!(
            trace_id(&extract(Some(&bytes))),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }

    fn table(entries: &[(&str, &str)]) -> FieldTable {
        FieldTable::from(
            entries
                .iter()
                .map(|(key, value)| {
                    (
                        ShortString::from(*key),
                        AMQPValue::LongString((*value).into()),
                    )
                })
                .collect::<std::collections::BTreeMap<_, _>>(),
        )
    }

    #[test]
    fn continues_a_b3_or_jaeger_publisher_when_those_propagators_are_on() {
        let publishers = [
            (
                "b3",
                vec![("b3", "4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1")],
            ),
            (
                "b3multi",
                vec![
                    ("X-B3-TraceId", "4bf92f3577b34da6a3ce929d0e0e4736"),
                    ("X-B3-SpanId", "00f067aa0ba902b7"),
                    ("X-B3-Sampled", "1"),
                ],
            ),
            (
                "jaeger",
                vec![
                    (
                        "Uber-Trace-Id",
                        "4bf92f3577b34da6a3ce929d0e0e4736:00f067aa0ba902b7:0:1",
                    ),
                    ("UberCtx-Tenant", "acme"),
                ],
            ),
        ];
        for (propagators, headers) in publishers {
            let headers = table(&headers);
            // The default (W3C) reads none of them.
            assert!(!extract(Some(&headers)).span().span_context().is_valid());
            super::super::under(propagators, || {
                let cx = extract(Some(&headers));
                assert_eq!(
                    trace_id(&cx),
                    "4bf92f3577b34da6a3ce929d0e0e4736",
                    "{propagators}"
                );
                assert!(cx.span().span_context().is_sampled());
                if propagators == "jaeger" {
                    assert_eq!(cx.baggage().get("Tenant").unwrap().as_str(), "acme");
                }
                // And the next hop gets the same format back.
                let mut out = FieldTable::default();
                inject(&cx, &mut out);
                assert!(!out.inner().is_empty(), "{propagators} writes its headers");
                assert_eq!(
                    trace_id(&extract(Some(&out))),
                    "4bf92f3577b34da6a3ce929d0e0e4736"
                );
                assert!(out.inner().get("traceparent").is_none());
            });
        }
    }

    #[test]
    fn with_none_nothing_is_read_or_written() {
        let headers = table(&[("traceparent", TRACEPARENT), ("baggage", "tenant=acme")]);
        let cx = extract(Some(&headers));
        assert!(cx.span().span_context().is_valid());
        super::super::under("none", || {
            let none = extract(Some(&headers));
            assert!(!none.span().span_context().is_valid());
            assert_eq!(none.baggage().len(), 0);
            let mut out = FieldTable::default();
            inject(&cx, &mut out);
            assert!(out.inner().is_empty(), "{out:?}");
        });
    }

    #[test]
    fn invalid_headers_read_as_absent_and_never_panic() {
        let cases = [
            AMQPValue::ByteArray(ByteArray::from(&b"\xff\xfe\x00"[..])),
            AMQPValue::LongString(LongString::from(vec![0xc3, 0x28])),
            AMQPValue::LongString("00-not-a-trace-01".into()),
            AMQPValue::LongInt(42),
            AMQPValue::Boolean(true),
        ];
        for value in cases {
            let headers = FieldTable::from(std::collections::BTreeMap::from([(
                ShortString::from("traceparent"),
                value,
            )]));
            assert!(!extract(Some(&headers)).span().span_context().is_valid());
        }
        assert!(!extract(None).span().span_context().is_valid());
    }
}
