//! Arbitrary request bodies through the gateway's parser: JSON into
//! `CheckoutBody`, then into a `Cart`. Every input is a cart or an error.
#![no_main]

use contracts::{
    http::CheckoutBody,
    limits::{MAX_LINE_ITEMS, MAX_QUANTITY},
};
use gateway::domain::Cart;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = CheckoutBody::from_json(data)
        && let Ok(cart) = Cart::parse(body)
    {
        assert!(!cart.lines().is_empty());
        assert!(cart.lines().len() <= MAX_LINE_ITEMS);
        assert!(
            cart.lines()
                .iter()
                .all(|line| (1..=MAX_QUANTITY).contains(&line.quantity))
        );
    }
});
