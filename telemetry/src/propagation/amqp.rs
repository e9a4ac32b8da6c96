//! Trace context in AMQP message headers: how stock-service continues the
//! trace of the checkout that published the message.
//!
//! The publisher writes `traceparent`, `tracestate` and `baggage` as AMQP long
//! strings, the type RabbitMQ and other clients expect for text headers (short
//! strings are not valid in RabbitMQ headers tables). Other publishers send
//! text as short strings or byte arrays, so the extractor accepts all three;
//! any other type, or bytes that are not UTF-8, reads as absent.

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
        match self.0.inner().get(key)? {
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
