//! Arbitrary message bodies through stock-service's decoder: every input is
//! either a valid order or a `DecodeError` (dead-lettered), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use contracts::amqp::CheckoutProcessed;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = CheckoutProcessed::decode(data) {
        // What decodes re-encodes and decodes to the same order.
        let again = CheckoutProcessed::decode(&message.to_json()).expect("round trip");
        assert_eq!(again, message);
    }
});
