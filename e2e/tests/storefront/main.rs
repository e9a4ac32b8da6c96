//! The storefront end to end: the page in a real headless Chromium whose
//! click starts the trace (`page`), and the API routes and span relay the
//! page uses, against the real services and the OTLP receiver (`api`).
//!
//! Each test starts its own pipeline (exchange, queue, database, ports);
//! the receiver is the collector of every service and of the gateway's
//! relay.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

mod api;
mod browser;
mod page;
