//! The gateway binary refuses bad configuration at start, naming the
//! variable, instead of starting with a surprising default.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::process::Command;

fn gateway_with(variable: &str, value: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_gateway"))
        .env(variable, value)
        .env("OTEL_SDK_DISABLED", "true")
        .output()
        .expect("the gateway binary runs")
}

#[test]
fn a_bad_value_stops_the_gateway_and_names_the_variable() {
    for (variable, value) in [
        ("HTTP_ADDRESS", "not-an-address"),
        ("CHECKOUT_SERVICE_ADDRESS", "ftp://checkout"),
        ("CHECKOUT_SERVICE_ADDRESS", "http://checkout-a:8080,"),
        ("CHECKOUT_SERVICE_RESOLVE_INTERVAL_MS", "0"),
        ("CHECKOUT_SERVICE_PROBE_INTERVAL_MS", "often"),
        ("CHECKOUT_DEADLINE_MS", "soon"),
        ("MAX_CONCURRENT_CHECKOUTS", "0"),
        ("TRUST_CLIENT_TRACE_CONTEXT", "maybe"),
        ("OTEL_TRACES_SAMPLER", "sometimes"),
    ] {
        let output = gateway_with(variable, value);
        assert!(
            !output.status.success(),
            "{variable}={value} must not start"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}

#[test]
fn a_bad_checkout_service_address_is_named_among_good_ones() {
    for (list, entry) in [
        (
            "http://checkout-a:8080,ftp://checkout-b:8080",
            "ftp://checkout-b:8080",
        ),
        ("http://checkout-a:8080, checkout-b:port", "checkout-b:port"),
        (
            "http://checkout-a:8080,http://checkout-a:8080",
            "http://checkout-a:8080",
        ),
    ] {
        let output = gateway_with("CHECKOUT_SERVICE_ADDRESS", list);
        assert!(!output.status.success(), "{list} must not start");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("CHECKOUT_SERVICE_ADDRESS"),
            "{list}: {stderr}"
        );
        assert!(stderr.contains(&format!("`{entry}`")), "{list}: {stderr}");
    }
}

#[test]
fn bad_api_keys_stop_the_gateway_without_showing_a_key() {
    for keys in [
        "shop=too-short",
        "shop-key-0123456789",
        "two words=key-0123456789abc",
    ] {
        let output = gateway_with("API_KEYS", keys);
        assert!(!output.status.success(), "API_KEYS={keys} must not start");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("API_KEYS"), "{keys}: {stderr}");
        for key in ["too-short", "key-0123456789"] {
            assert!(!stderr.contains(key), "no key is shown: {stderr}");
        }
    }
}
