//! Idempotency keys are scoped to the client, through the whole pipeline:
//! with API keys at the gateway, two clients that send the same
//! `Idempotency-Key` and cart place two orders (both applied), while a retry
//! by the same client is still the same order; the order id outlives a
//! restart of checkout-service (its order-id key file does); a key the
//! gateway generated names its order like any other but is not remembered
//! with its cart; and checkout-service refuses a malformed client id from
//! any gRPC caller.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use contracts::{
    grpc::{CheckoutRequest, LineItem, checkout_client::CheckoutClient},
    http::API_KEY_HEADER,
    limits::MAX_CLIENT_ID_LEN,
};
use e2e::{PATIENCE, PipelineOptions, TEST_API_KEYS, TestPipeline, with_api_keys};
use reqwest::StatusCode;
use serde_json::{Value, json};
use testkit::poll;

/// `Authorization: Bearer <key>` of the test client `client`.
fn bearer(client: &str) -> String {
    let (_, key) = TEST_API_KEYS
        .iter()
        .find(|(name, _)| *name == client)
        .expect("a test client");
    format!("Bearer {key}")
}

fn order_id(body: &Value) -> String {
    body["orderId"].as_str().expect("an orderId").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_and_cart_from_two_clients_make_two_orders() {
    let pipeline = TestPipeline::start_with(PipelineOptions {
        gateway: with_api_keys,
        ..PipelineOptions::default()
    })
    .await;
    let before = pipeline.stock(2).await;
    let cart = json!({"items": [{"id": 2, "quantity": 3}]});
    let (shop, app) = (bearer("shop"), bearer("app"));
    let key = ("idempotency-key", "order-7");

    let (status, body) = pipeline.checkout(&cart, &[key]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let (status, from_shop) = pipeline
        .checkout(&cart, &[(API_KEY_HEADER, &shop), key])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{from_shop}");
    let (status, from_app) = pipeline
        .checkout(&cart, &[(API_KEY_HEADER, &app), key])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{from_app}");
    assert_ne!(
        order_id(&from_shop),
        order_id(&from_app),
        "one key, two clients: two orders"
    );

    // A retry by the same client is the same order.
    let (status, retried) = pipeline
        .checkout(&cart, &[(API_KEY_HEADER, &shop), key])
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{retried}");
    assert_eq!(order_id(&retried), order_id(&from_shop));
    assert_eq!(retried["totalAmount"], from_shop["totalAmount"]);

    // Every copy is queued before this marker; once it is applied, a
    // duplicate had its chance to be applied too.
    let (_, marker) = pipeline
        .checkout(&json!({"itemsID": [1]}), &[(API_KEY_HEADER, &app)])
        .await;
    pipeline.wait_for_order(&order_id(&marker)).await;
    for body in [&from_shop, &from_app] {
        let order = pipeline.wait_for_order(&order_id(body)).await;
        assert_eq!(order["status"], "applied", "{order}");
    }
    assert_eq!(
        pipeline.stock(2).await,
        before - 2 * 3,
        "both clients' orders applied, each once"
    );
    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_checkout_service_restarts_is_the_same_order() {
    let mut pipeline = TestPipeline::start().await;
    let before = pipeline.stock(4).await;
    let cart = json!({"items": [{"id": 4, "quantity": 2}]});
    let key = [("idempotency-key", "restart-retry-1")];

    let (status, first) = pipeline.checkout(&cart, &key).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{first}");
    // The order-id key is in the pipeline's key file, created at the first
    // start and read again by the restarted service.
    assert!(pipeline.isolation.dir.join("order-id.key").exists());
    tokio::task::block_in_place(|| pipeline.restart_checkout_service());

    // The gateway reconnects on its own; until then a retry is a 503.
    let retried = poll::until("a retry accepted after the restart", PATIENCE, || async {
        let (status, body) = pipeline.checkout(&cart, &key).await;
        (status == StatusCode::ACCEPTED).then_some(body)
    })
    .await;
    assert_eq!(order_id(&retried), order_id(&first));

    let (_, marker) = pipeline.checkout(&json!({"itemsID": [1]}), &[]).await;
    pipeline.wait_for_order(&order_id(&marker)).await;
    assert_eq!(pipeline.stock(4).await, before - 2, "applied once");
    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_key_names_the_order_but_is_not_remembered_with_its_cart() {
    let mut pipeline = TestPipeline::start().await;
    let addr = pipeline.service("checkout-service").addr;
    let mut client = CheckoutClient::connect(format!("http://{addr}"))
        .await
        .expect("checkout-service answers");
    let request = |key: &str, item: i32, generated: bool| CheckoutRequest {
        items_id: Vec::new(),
        items: vec![LineItem {
            id: item,
            quantity: 1,
        }],
        idempotency_key: key.to_owned(),
        client_id: String::new(),
        idempotency_key_generated: generated,
    };

    // A client's own key with another cart is refused...
    let run = uuid::Uuid::new_v4();
    let key = format!("{run}-client");
    client.do_checkout(request(&key, 1, false)).await.unwrap();
    let status = client
        .do_checkout(request(&key, 2, false))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition);

    // ...a generated one is never compared with a cart (no client knows it
    // to reuse it), yet names the same order every time, which is what
    // makes the gateway's retry safe.
    let key = format!("{run}-generated");
    let first = client.do_checkout(request(&key, 1, true)).await.unwrap();
    let again = client.do_checkout(request(&key, 2, true)).await.unwrap();
    assert_eq!(first.get_ref().order_id, again.get_ref().order_id);
    pipeline.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_service_refuses_a_malformed_client_id() {
    let mut pipeline = TestPipeline::start().await;
    let addr = pipeline.service("checkout-service").addr;
    let mut client = CheckoutClient::connect(format!("http://{addr}"))
        .await
        .expect("checkout-service answers");
    let request = |client_id: String| CheckoutRequest {
        items_id: Vec::new(),
        items: vec![LineItem { id: 1, quantity: 1 }],
        idempotency_key: "client-id-check".to_owned(),
        client_id,
        idempotency_key_generated: false,
    };

    for bad in [
        "two words".to_owned(),
        "c".repeat(MAX_CLIENT_ID_LEN + 1),
        "tab\t".to_owned(),
    ] {
        let status = client.do_checkout(request(bad.clone())).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{bad:?}");
    }
    // The longest client id, and none at all (a caller from before client
    // ids), are fine.
    for good in ["c".repeat(MAX_CLIENT_ID_LEN), String::new()] {
        let answer = client.do_checkout(request(good.clone())).await;
        assert!(answer.is_ok(), "{good:?}: {answer:?}");
    }
    pipeline.shut_down().await;
}
