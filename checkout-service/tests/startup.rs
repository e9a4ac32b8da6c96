//! The checkout-service binary refuses bad configuration at start, naming
//! the variable, instead of starting with a surprising default.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::process::Command;

fn checkout_service_with(variable: &str, value: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_checkout-service"))
        .env(variable, value)
        .env("OTEL_SDK_DISABLED", "true")
        .output()
        .expect("the checkout-service binary runs")
}

#[test]
fn a_bad_value_stops_checkout_service_and_names_the_variable() {
    for (variable, value) in [
        ("GRPC_ADDRESS", "localhost"),
        ("CATALOG", "1=free"),
        ("FAULT_FAILURE_RATE", "2"),
        ("FAULT_ADMIN_TOKEN", "short"),
        ("AMQP_URL", "http://guest:guest@localhost:5672/"),
        ("MAX_CONCURRENT_CALLS", "0"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
    ] {
        let output = checkout_service_with(variable, value);
        assert!(
            !output.status.success(),
            "{variable}={value} must not start"
        );
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}

#[test]
fn a_bad_order_id_secret_stops_checkout_service_without_showing_it() {
    let secret = "not-32-bytes-long";
    let output = checkout_service_with("ORDER_ID_SECRET", secret);
    assert!(!output.status.success(), "a short secret must not start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ORDER_ID_SECRET"), "{stderr}");
    assert!(
        !stderr.contains(secret),
        "the secret is not shown: {stderr}"
    );
}

#[test]
fn an_unusable_key_file_stops_checkout_service_without_showing_the_key() {
    let dir = std::env::temp_dir().join(format!("checkout-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("order-id.key");
    let key = "not-32-bytes-long";
    std::fs::write(&path, key).unwrap();
    let output = checkout_service_with("ORDER_ID_SECRET_FILE", path.to_str().unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!output.status.success(), "a short key must not start");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ORDER_ID_SECRET_FILE"), "{stderr}");
    assert!(stderr.contains("at least 32"), "{stderr}");
    assert!(!stderr.contains(key), "the key is not shown: {stderr}");
}

#[test]
fn a_rejected_admin_token_is_not_repeated_in_the_error() {
    let almost_a_secret = "fifteen-chars-x";
    let output = checkout_service_with("FAULT_ADMIN_TOKEN", almost_a_secret);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("FAULT_ADMIN_TOKEN"), "{stderr}");
    assert!(!stderr.contains(almost_a_secret), "{stderr}");
}
