//! Arbitrary bytes parsed as an AMQP field table (as they arrive off the
//! wire), then read by stock-service's trace-context extractor: any header
//! types and contents, valid or not, must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use telemetry::propagation::{
    Extractor,
    amqp::{AmqpHeaderExtractor, extract},
};

fuzz_target!(|data: &[u8]| {
    if let Ok((_, table)) = amqp::lapin::types::parsing::parse_field_table(data) {
        let extractor = AmqpHeaderExtractor(&table);
        for key in extractor.keys() {
            let _ = extractor.get(key);
        }
        let _ = extract(Some(&table));
    }
});
