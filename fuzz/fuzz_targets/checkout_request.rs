//! Arbitrary request bodies through the gateway's parser: JSON into
//! `CheckoutBody`, then into a `Cart`. Every input is a cart or an error.
#![no_main]

use gateway::domain::{Cart, CheckoutBody};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = serde_json::from_slice::<CheckoutBody>(data)
        && let Ok(cart) = Cart::parse(body)
    {
        assert!(!cart.lines().is_empty());
        assert!(cart.lines().iter().all(|line| line.quantity >= 1));
    }
});
