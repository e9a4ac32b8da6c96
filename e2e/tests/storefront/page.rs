//! The storefront page in a real headless Chromium: load it, fill a cart,
//! click Buy, wait for stock-service's decision on the page, and find the
//! whole trace — from the browser's click down to stock-service's SQL — in
//! the receiver, the browser's spans relayed by the gateway.

use std::{path::PathBuf, time::Duration};

use e2e::{PATIENCE, TestPipeline};
use fantoccini::{Client, Locator};
use testkit::poll;
use testkit::{
    receiver::{ReceivedSpan, SpanKind},
    verify::{CHECKOUT_TRACE, is_complete},
};

use crate::browser::Browser;

/// How long the page may take to show what the test waits for: a cold
/// Chromium on a loaded 2-core machine is slow.
const PAGE_PATIENCE: Duration = Duration::from_secs(60);

/// The text of the element `css`, if it is there.
async fn text(client: &Client, css: &str) -> Option<String> {
    let element = client.find(Locator::Css(css)).await.ok()?;
    element.text().await.ok().map(|text| text.trim().to_owned())
}

/// Waits until `css` is on the page; clicks it.
async fn click(client: &Client, css: &str) {
    let element = client
        .wait()
        .at_most(PAGE_PATIENCE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("{css} never appeared: {error}"));
    element
        .click()
        .await
        .unwrap_or_else(|error| panic!("cannot click {css}: {error}"));
}

/// Where the screenshot goes: `target/storefront.png`, and
/// `$STOREFRONT_SCREENSHOT` when set.
fn screenshot_paths() -> Vec<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let mut paths = vec![target.join("storefront.png")];
    if let Some(extra) = std::env::var_os("STOREFRONT_SCREENSHOT") {
        paths.push(PathBuf::from(extra));
    }
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_click_in_the_browser_starts_the_checkouts_trace() {
    let pipeline = TestPipeline::start().await;
    let browser = Browser::start().await;
    let client = &browser.client;
    client
        .goto(&format!("{}/", pipeline.gateway_url))
        .await
        .expect("the page loads");

    // The catalog, from checkout-service, then a cart of two items.
    click(client, r#"[data-item-id="1"]"#).await;
    click(client, r#"[data-item-id="2"]"#).await;
    click(client, "#buy").await;

    let status = poll::until("#order-status reads applied", PAGE_PATIENCE, || async {
        match text(client, "#order-status").await.as_deref() {
            Some("applied") => Some("applied"),
            Some("rejected") => Some("rejected"),
            _ => None,
        }
    })
    .await;
    assert_eq!(status, "applied");
    let order_id = text(client, "#order-id").await.expect("#order-id");
    let trace_id = text(client, "#trace-id").await.expect("#trace-id");
    assert_eq!(trace_id.len(), 32, "{trace_id:?}");
    let link = client
        .find(Locator::Css("#trace-link"))
        .await
        .expect("#trace-link")
        .attr("href")
        .await
        .expect("an href");
    assert_eq!(
        link.as_deref(),
        Some(format!("http://localhost:16686/trace/{trace_id}").as_str())
    );
    let decided = pipeline.wait_for_order(&order_id).await;
    assert_eq!(decided["status"], "applied");

    let png = client.screenshot().await.expect("a screenshot");
    for path in screenshot_paths() {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("the screenshot's directory");
        }
        std::fs::write(&path, &png).expect("the screenshot is written");
    }

    let spans = pipeline
        .wait_for_trace(&trace_id, |spans| {
            is_complete(spans) && checkout_fetch(spans).is_some()
        })
        .await;
    assert_browser_starts_the_trace(&spans);

    // Chromium logs every CSP violation as a `security` entry.
    let violations: Vec<String> = browser
        .console_log()
        .await
        .iter()
        .filter(|entry| {
            entry["source"] == "security"
                || entry["message"]
                    .as_str()
                    .is_some_and(|message| message.contains("Content Security Policy"))
        })
        .map(|entry| entry["message"].to_string())
        .collect();
    assert!(violations.is_empty(), "CSP violations: {violations:#?}");

    browser.close().await;
    tokio::time::timeout(PATIENCE, pipeline.shut_down())
        .await
        .expect("the pipeline shuts down");
}

/// The browser's fetch span of `POST /api/checkout`: the storefront CLIENT
/// span that is the parent of the gateway's SERVER span.
fn checkout_fetch(spans: &[ReceivedSpan]) -> Option<&ReceivedSpan> {
    let server = spans.iter().find(|span| CHECKOUT_TRACE[0].matches(span))?;
    spans.iter().find(|span| {
        span.service_name == "storefront"
            && span.kind == SpanKind::Client
            && server.parent_span_id.as_ref() == Some(&span.span_id)
    })
}

/// The trace starts with the browser's click (the root, no parent), whose
/// child is the fetch of `POST /api/checkout`, whose child is the gateway's
/// SERVER span; then the six spans every checkout has, each the child of the
/// one before.
fn assert_browser_starts_the_trace(spans: &[ReceivedSpan]) {
    let listing = || {
        spans
            .iter()
            .map(|s| {
                format!(
                    "  {} {} {} ({} <- {:?})",
                    s.service_name, s.kind, s.name, s.span_id, s.parent_span_id
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let roots: Vec<&ReceivedSpan> = spans.iter().filter(|span| span.is_root()).collect();
    assert_eq!(roots.len(), 1, "one root:\n{}", listing());
    let click = roots[0];
    assert_eq!(click.service_name, "storefront", "{}", listing());
    let fetch = checkout_fetch(spans).expect("the fetch span");
    assert_eq!(
        fetch.parent_span_id.as_ref(),
        Some(&click.span_id),
        "the fetch is the click's child:\n{}",
        listing()
    );
    let mut parent = fetch;
    for expected in &CHECKOUT_TRACE {
        let span = spans
            .iter()
            .find(|span| {
                expected.matches(span) && span.parent_span_id.as_ref() == Some(&parent.span_id)
            })
            .unwrap_or_else(|| panic!("no {expected} under {}:\n{}", parent.name, listing()));
        parent = span;
    }
    // The page's baggage (one session id per page load) reaches
    // stock-service with the trace context.
    let consumer = spans
        .iter()
        .find(|span| CHECKOUT_TRACE[4].matches(span))
        .expect("the consumer span");
    let session = consumer.attr_str("baggage.storefront.session");
    assert!(
        session.is_some_and(|id| id.len() == 16),
        "the browser's baggage on the consumer span: {session:?}"
    );
}
