//! The probes, and the JSON errors of the HTTP API.

use serde_json::{Value, json};
use stock_service::configuration::InitialStock;

use crate::helpers::{Backend, eventually, on_each_backend, spawn_app_on};

on_each_backend!(healthz_and_readyz_answer, errors_are_json_with_a_code);

async fn healthz_and_readyz_answer(backend: Backend) {
    let app = spawn_app_on(backend, InitialStock::default()).await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({ "status": "ok" })
    );

    // Ready once the consumer has subscribed (and the database answers).
    eventually("readiness", || async {
        (app.get("/readyz").await.status() == 200).then_some(())
    })
    .await;
    app.stop().await;
}

async fn errors_are_json_with_a_code(backend: Backend) {
    let app = spawn_app_on(backend, InitialStock::default()).await;
    let cases = [
        ("/api/stock/99", 404, "not_found"),
        ("/api/stock/abc", 400, "bad_request"),
        (
            "/api/orders/6f1e3c1e-0000-4000-8000-000000000000",
            404,
            "not_found",
        ),
        ("/api/orders/not-a-uuid", 400, "bad_request"),
        ("/nowhere", 404, "not_found"),
    ];
    for (path, status, code) in cases {
        let response = app.get(path).await;
        assert_eq!(response.status(), status, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{path}");
        assert!(body["error"]["message"].is_string(), "{path}");
    }
    let response = app
        .http
        .post(format!("{}/api/stock/4", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "method_not_allowed");

    let stock: Value = app.get("/api/stock/4").await.json().await.unwrap();
    assert_eq!(stock, json!({ "itemId": 4, "available": 1000 }));
    app.stop().await;
}
