//! Start-up: configuration errors, seeding, restarts.

use std::process::Command;

use stock_service::{configuration::InitialStock, store::Store};
use uuid::Uuid;

use crate::helpers::order;

#[test]
fn a_bad_setting_stops_the_binary_with_the_variable_name() {
    for (variable, value) in [
        ("AMQP_PREFETCH", "0"),
        ("INITIAL_STOCK", "1=lots"),
        ("HTTP_ADDRESS", "nowhere"),
        ("DATABASE_URL", "mysql://db/stock"),
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

#[tokio::test]
async fn seeding_never_overwrites_stock_and_decisions_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("stock-service-test-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("stock.db").display());
    let open = || async {
        let store = Store::connect(&url).await.unwrap();
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
    assert_eq!(
        store.apply(&order).await.unwrap(),
        stock_service::domain::Outcome::Duplicate
    );
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
}
