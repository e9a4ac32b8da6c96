//! The report's logic on made-up figures: from measurements to a record (medians,
//! CPU per checkout, notes), the targets judged against their limits, and the
//! splicing of generated parts into a hand-written document.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failed expectation is the test failing"
)]

use std::collections::BTreeMap;
use std::time::Duration;

use bench::broker::RawResult;
use bench::report::{Environment, Pipeline, Raw, Results, Run, Settings, Window, splice};
use bench::stats::Latency;
use bench::topology::Topology;

fn raw(c: usize, confirmed: u64, unaccounted_busy: f64) -> RawResult {
    RawResult {
        concurrency: c,
        elapsed: Duration::from_secs(10),
        confirmed,
        failed: 0,
        latency: Latency {
            p50: Duration::from_micros(900),
            ..Latency::default()
        },
        consumed: confirmed,
        confirmed_total: confirmed,
        // 2 s of broker CPU: 2,000,000 µs over the confirmed messages.
        cpu: vec![("broker".into(), Duration::from_secs(2))],
        machine_busy: 0.9,
        unaccounted_busy,
        queue_members: None,
    }
}

#[test]
fn repeated_runs_keep_the_median_and_the_record_has_the_figures() {
    let mut results = Results {
        raw: vec![
            raw(1, 30_000, 0.0),
            raw(1, 10_000, 0.3),
            raw(1, 20_000, 0.0),
        ],
        ..Results::default()
    };
    results.keep_medians();
    assert_eq!(results.raw.len(), 1);
    assert_eq!(results.raw[0].confirmed, 20_000, "the median run is kept");
    let run = results.record(
        Topology::Single,
        Environment::default(),
        Settings::default(),
    );
    assert_eq!(run.topology, "single");
    let kept = &run.raw[0];
    assert_eq!((kept.c, kept.per_s, kept.p50_ms), (1, 2_000.0, 0.9));
    assert_eq!(kept.cpu_us["broker"], 100.0, "2 s over 20,000 messages");
    assert_eq!(kept.unconsumed, Some(0));
    assert_eq!(
        run.notes,
        ["raw C=1: 3 runs, 1000 / 2000 / 3000 per second (median shown)"],
        "the disturbed run was not kept, so it is not noted"
    );
}

/// A pipeline window of `per_s` checkouts/s, p50/p99 ms, services' CPU each.
fn window(per_s: f64, p50_ms: f64, p99_ms: f64, service_us: f64) -> Window {
    let cpu_us = ["gateway", "checkout-service", "stock-service"]
        .map(|s| (s.to_owned(), service_us))
        .into();
    Window {
        per_s,
        p50_ms,
        p99_ms,
        traces_complete: Some(10),
        traces_expected: Some(10),
        cpu_us,
        ..Window::default()
    }
}

fn pipeline(kind: &str, c: usize, bench: Window) -> Pipeline {
    Pipeline {
        kind: kind.to_owned(),
        c,
        bench,
        dropped_spans: Some(0),
        rss_mb: BTreeMap::from([
            ("gateway".to_owned(), 20.0),
            ("stock-service".to_owned(), 60.0),
        ]),
        ..Pipeline::default()
    }
}

/// The verdict cell of a target's row, the row found by the start of its goal.
fn verdict<'a>(table: &'a str, goal: &str) -> &'a str {
    let row = table
        .lines()
        .find(|l| l.starts_with(&format!("| {goal}")))
        .expect(goal);
    row.split('|').nth(2).expect("a verdict cell").trim()
}

#[test]
fn targets_are_judged_against_their_limits() {
    let run = Run {
        raw: vec![Raw {
            c: 64,
            per_s: 4_000.0,
            ..Raw::default()
        }],
        pipeline: vec![
            pipeline("untraced", 1, window(1_000.0, 1.0, 10.0, 30.0)),
            pipeline("traced", 1, window(1_300.0, 0.7, 1.5, 30.0)),
            pipeline("untraced", 64, window(3_200.0, 10.0, 20.0, 30.0)),
            pipeline("traced", 64, window(2_880.0, 12.0, 30.0, 36.0)),
        ],
        ..Run::default()
    };
    let table = bench::report::targets_table(&[&run]);
    assert_eq!(
        verdict(&table, "traced / untraced throughput"),
        "❌ C=64 0.90"
    );
    assert_eq!(verdict(&table, "traced p99"), "❌ C=1 -85 %, C=64 +50 %");
    assert_eq!(verdict(&table, "untraced pipeline / raw"), "✅ 0.80");
    assert_eq!(
        verdict(&table, "no span lost"),
        "✅ 20 of 20 complete, 0 dropped"
    );
    assert_eq!(verdict(&table, "each service < 50 MB"), "❌ 20 / 60 MB");
    assert_eq!(verdict(&table, "C=1 traced: p50"), "✅ 0.70 ms, 1300/s");
    assert_eq!(verdict(&table, "C=1 traced: p99"), "✅ 1.50 ms");
    assert_eq!(
        verdict(&table, "services' CPU per checkout traced"),
        "❌ C=64 ×1.20"
    );
    assert_eq!(verdict(&table, "the three services"), "✅ 90 µs");
    assert_eq!(
        verdict(&table, "gateway, checkout-service"),
        "✅ 36 / 36 µs at worst"
    );
    let nothing = bench::report::targets_table(&[&Run::default()]);
    assert_eq!(
        verdict(&nothing, "no span lost"),
        "– not measured",
        "not a pass"
    );
}

#[test]
fn only_the_parts_between_markers_are_rewritten() {
    let document = "# Title\n\nprose\n<!-- bench render: a -->\nold\n<!-- bench render: end -->\n\
                    more prose\n<!-- bench render: b -->\n<!-- bench render: end -->\n";
    let parts = [("a", "new\n".to_owned()), ("b", "table".to_owned())];
    let rendered = splice(document, &parts).unwrap();
    assert_eq!(
        rendered,
        "# Title\n\nprose\n<!-- bench render: a -->\nnew\n<!-- bench render: end -->\n\
         more prose\n<!-- bench render: b -->\ntable\n<!-- bench render: end -->\n"
    );
    assert_eq!(
        splice(&rendered, &parts).unwrap(),
        rendered,
        "rendering again changes nothing"
    );
    assert!(
        splice("no markers\n", &parts).is_err(),
        "a missing part is an error"
    );
}
