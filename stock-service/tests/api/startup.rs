//! Start-up: configuration errors, seeding, restarts.

use std::process::Command;

use stock_service::{configuration::InitialStock, store::Store};

use crate::helpers::{Backend, TestDatabase, on_each_backend, order};

#[test]
fn a_bad_setting_stops_the_binary_with_the_variable_name() {
    for (variable, value) in [
        ("AMQP_PREFETCH", "0"),
        ("INITIAL_STOCK", "1=lots"),
        ("HTTP_ADDRESS", "nowhere"),
        ("DATABASE_URL", "mysql://db/stock"),
        ("ADMIN_ADDRESS", "nowhere"),
        ("FAULT_ADMIN_TOKEN", "short"),
        ("PROCESSED_ORDERS_RETENTION", "12h"),
        ("PROCESSED_ORDERS_RETENTION", "a week"),
        ("PROCESSED_ORDERS_PURGE_INTERVAL", "0s"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_stock-service"))
            .env(variable, value)
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("the binary runs");
        assert!(!output.status.success(), "{variable}={value} must fail");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}

on_each_backend!(seeding_never_overwrites_stock_and_decisions_survive_a_restart);

async fn seeding_never_overwrites_stock_and_decisions_survive_a_restart(backend: Backend) {
    let db = TestDatabase::create(backend).await;
    // Each open migrates again: migrating an up-to-date schema is a no-op.
    let open = || async {
        let store = Store::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        store
    };

    let store = open().await;
    assert_eq!(store.seed(&InitialStock::uniform(10)).await.unwrap(), 4);
    let order = order(&[(1, 4)], 400);
    store.apply(&order).await.unwrap();
    store.close().await;

    let store = open().await;
    assert_eq!(store.seed(&InitialStock::uniform(10)).await.unwrap(), 0);
    assert_eq!(store.stock_level(1).await.unwrap(), Some(6));
    assert_eq!(store.stock_level(2).await.unwrap(), Some(10));
    assert_eq!(
        store.apply(&order).await.unwrap(),
        stock_service::domain::Outcome::Duplicate
    );
    store.close().await;
}
