//! A collector that goes away and comes back, as a service's logs tell it: for
//! each signal one warning when its exports start failing, one line when they
//! work again with the count of what was dropped in between, none of the SDK's
//! own per-batch export errors, and no "shutdown incomplete" when the service
//! stops while the collector is away. A real OTLP receiver is started, stopped and
//! started again on the same port. Its own test binary: the telemetry is
//! installed as the process default, as a service binary does, so the SDK's
//! events (logged on its own threads) reach the captured log too.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::time::Duration;

use e2e::{PATIENCE, captured::Captured};
use telemetry::{Telemetry, TelemetryConfig};
use testkit::poll;
use testkit::receiver::OtlpReceiver;

/// The signals, as the log lines name them.
const SIGNALS: [&str; 3] = ["spans", "log records", "metric points"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_going_away_and_back_is_logged_once_each_way() {
    let receiver = OtlpReceiver::start("127.0.0.1:0".parse().unwrap(), None)
        .await
        .expect("receiver starts");
    let address = receiver.grpc_addr();
    let mut config = TelemetryConfig::new("outage-probe", &receiver.grpc_endpoint());
    config.metrics.interval = Duration::from_millis(100);
    config.metrics.timeout = Duration::from_secs(2);
    config.batch.scheduled_delay = Duration::from_millis(50);
    config.logs.scheduled_delay = Duration::from_millis(50);
    config.logs.export_timeout = Duration::from_secs(2);
    config.export_timeout = Duration::from_secs(2);
    let log = Captured::default();
    let telemetry = Telemetry::build_with_writer(&config, log.clone()).expect("telemetry builds");
    telemetry.install_global().expect("the only telemetry here");
    // A span and a log record (the outage lines, written on the SDK's
    // export threads, are not exported: the SDK suppresses telemetry there).
    let span = || tracing::info_span!("probe").in_scope(|| tracing::info!("probe"));

    let store = receiver.store();
    poll::until("a span delivered", PATIENCE, || {
        span();
        let delivered = !store.is_empty();
        async move { delivered.then_some(()) }
    })
    .await;

    receiver.shutdown().await;
    poll::until("the collector's going away logged", PATIENCE, || {
        span();
        let logged = lines_of(&log, "spans", "OTLP collector unreachable") > 0;
        async move { logged.then_some(()) }
    })
    .await;
    // More batches fail, silently.
    for _ in 0..3 {
        span();
        telemetry.force_flush();
    }

    let receiver = OtlpReceiver::start(address, None)
        .await
        .expect("the receiver starts again on its port");
    poll::until("the collector's return logged", PATIENCE, || {
        span();
        let logged = SIGNALS
            .iter()
            .all(|signal| lines_of(&log, signal, "OTLP collector back") > 0);
        async move { logged.then_some(()) }
    })
    .await;

    let text = log.text();
    for signal in SIGNALS {
        assert_eq!(
            lines_of(&log, signal, "OTLP collector unreachable"),
            1,
            "{text}"
        );
        assert_eq!(lines_of(&log, signal, "OTLP collector back"), 1, "{text}");
    }
    assert_eq!(log.lines_with("ExportError"), 0, "{text}");
    let back: serde_json::Value = text
        .lines()
        .find(|line| line.contains("OTLP collector back") && line.contains(r#""signal":"spans""#))
        .and_then(|line| serde_json::from_str(line).ok())
        .expect("a JSON line");
    let dropped = back["dropped"].as_u64().expect("a dropped count");
    assert!(dropped >= 4, "at least the 4 failed batches' spans: {back}");
    assert!(back["message"].to_string().contains(&dropped.to_string()));

    // Stopping while it is away (the last log records and spans fail to
    // export): no "shutdown incomplete" on top of the outage lines; the
    // totals say what was lost.
    receiver.shutdown().await;
    poll::until("the second outage logged", PATIENCE, || {
        span();
        let logged = SIGNALS
            .iter()
            .all(|signal| lines_of(&log, signal, "OTLP collector unreachable") == 2);
        async move { logged.then_some(()) }
    })
    .await;
    span();
    telemetry.shutdown().await;
    let text = log.text();
    assert_eq!(log.lines_with("shutdown incomplete"), 0, "{text}");
    assert_eq!(log.lines_with("telemetry export totals"), 1, "{text}");
}

/// The lines of `log` about `signal` (`spans`, `log records`) with `needle`.
fn lines_of(log: &Captured, signal: &str, needle: &str) -> usize {
    let signal = format!(r#""signal":"{signal}""#);
    log.text()
        .lines()
        .filter(|line| line.contains(needle) && line.contains(&signal))
        .count()
}
