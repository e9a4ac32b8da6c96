//! Arbitrary B3 (single and multiple headers) and Jaeger (`uber-trace-id`,
//! `uberctx-*`) values, read with every propagator `OTEL_PROPAGATORS` can
//! name, written into gRPC metadata and AMQP headers and read back: whatever
//! a caller sends, nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telemetry::propagation::{
    self, PropagatorName, Propagators,
    amqp::{AmqpHeaderExtractor, AmqpHeaderInjector, FieldTable},
    grpc::{MetadataExtractor, MetadataInjector, MetadataMap},
    http::{HeaderExtractor, HeaderMap, HeaderValue},
};

fuzz_target!(|data: &[u8]| {
    let all = Propagators::from_names([
        PropagatorName::TraceContext,
        PropagatorName::Baggage,
        PropagatorName::B3,
        PropagatorName::B3Multi,
        PropagatorName::Jaeger,
    ])
    .composite();

    // Split the input into one value per header.
    let mut parts = data.split(|&b| b == b'\n');
    let mut headers = HeaderMap::new();
    for name in [
        "b3",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-sampled",
        "x-b3-flags",
        "uber-trace-id",
        "uberctx-key",
    ] {
        if let Some(value) = parts.next().and_then(|v| HeaderValue::from_bytes(v).ok()) {
            headers.insert(name, value);
        }
    }
    let cx = propagation::extract_with(&all, &HeaderExtractor(&headers));

    let mut metadata = MetadataMap::new();
    propagation::inject_with(&all, &cx, &mut MetadataInjector(&mut metadata));
    let cx = propagation::extract_with(&all, &MetadataExtractor(&metadata));

    let mut table = FieldTable::default();
    propagation::inject_with(&all, &cx, &mut AmqpHeaderInjector(&mut table));
    let _ = propagation::extract_with(&all, &AmqpHeaderExtractor(&table));
});
