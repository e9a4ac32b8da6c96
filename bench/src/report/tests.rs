//! Tests of the report: tables, targets, notes, medians, history and dates.

use std::collections::BTreeMap;

use checkout_cli::load::{LatencySummary, LoadMode, LoadReport};
use checkout_cli::verify::TraceCheck;

use super::*;
use crate::pipeline::{ApplyLatency, ServiceFigures, TraceFigures};
use crate::services::LogSummary;
use crate::stats::Latency;
use crate::topology::Topology;

#[test]
fn tables_are_padded_markdown() {
    let mut table = Table::new(&["C", "req/s"]);
    table.row(vec!["1".into(), "812".into()]);
    table.row(vec!["64".into(), "2345".into()]);
    assert_eq!(
        table.render(),
        "| C   | req/s |\n\
         | --- | ----: |\n\
         | 1   |   812 |\n\
         | 64  |  2345 |\n"
    );
}

#[test]
fn history_is_kept_from_its_heading_to_the_end() {
    let old = "# Benchmarks\n\nold intro\n\n## Last run\n\nold figures\n\n\
               ## History\n\n- 2024: 800 req/s → 1200 req/s\n";
    let section = "## Last run (single node)\n\nnew figures\n";
    let new = compose(Topology::Single, section, Some(old));
    assert!(new.starts_with("# Benchmarks\n\n"), "{new}");
    assert!(
        !new.contains("old"),
        "the single node's part is replaced: {new}"
    );
    assert!(
        new.contains("\n## Last run (single node)\n\nnew figures\n\n## Cluster\n\nNot run yet")
    );
    assert!(
        new.ends_with("\n## History\n\n- 2024: 800 req/s → 1200 req/s\n"),
        "{new}"
    );
    // Rewriting again changes nothing.
    assert_eq!(compose(Topology::Single, section, Some(&new)), new);
    // A "## History" inside a line does not count; without one, a fresh section.
    let fresh = compose(Topology::Single, section, Some("text ## History\n"));
    assert!(
        fresh.contains("\n## History\n\nBefore/after records"),
        "{fresh}"
    );
    assert!(compose(Topology::Cluster, "## Cluster\n", None).contains("## History\n"));
    // History at the very end without a trailing newline.
    assert_eq!(history_of(Some("x\n## History")), "## History\n");
}

#[test]
fn numbers_that_round_to_zero_have_no_sign() {
    assert_eq!(tables::opt(Some(-0.4), 0), "0");
    assert_eq!(tables::opt(Some(-0.004), 2), "0.00");
    assert_eq!(tables::opt(Some(-1.4), 0), "-1");
    assert_eq!(tables::opt(None, 0), "–");
}

#[test]
fn dates_are_utc() {
    assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
    assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
    assert_eq!(utc_date(1_767_225_599), "2025-12-31 23:59 UTC");
}

pub(super) fn load(accepted: usize, seconds: u64, p99_ms: u64) -> LoadReport {
    LoadReport {
        mode: LoadMode::Closed { concurrency: 1 },
        elapsed: Duration::from_secs(seconds),
        sent: accepted as u64,
        not_sent: 0,
        statuses: BTreeMap::from([(202, accepted as u64)]),
        transport_errors: BTreeMap::new(),
        latency: LatencySummary {
            p50: Duration::from_millis(1),
            p99: Duration::from_millis(p99_ms),
            ..LatencySummary::default()
        },
        accepted_trace_ids: (0..accepted).map(|i| i.to_string()).collect(),
        accepted_orders: Vec::new(),
        traces: None,
        orders: None,
    }
}

pub(super) fn pipeline(tracing: Tracing, c: usize, accepted: usize, p99_ms: u64) -> PipelineResult {
    let service = |name, rss_mb: u64| ServiceFigures {
        name,
        peak_rss_kb: rss_mb * 1024,
        dropped_spans: (0, true),
        logs: LogSummary::default(),
        graceful: true,
    };
    PipelineResult {
        tracing,
        concurrency: c,
        load: load(accepted, 10, p99_ms),
        warmup_accepted: 0,
        applied: accepted as u64,
        apply_wait: Duration::ZERO,
        apply_latency: ApplyLatency::default(),
        // 1 s of gateway CPU for `accepted` checkouts.
        cpu: vec![
            ("gateway".into(), Duration::from_secs(1)),
            ("checkout-service".into(), Duration::from_millis(500)),
        ],
        cpu_window: Duration::from_secs(10),
        queue_members: None,
        machine_busy: 0.5,
        unaccounted_busy: 0.02,
        services: vec![
            service("gateway", 20),
            service("checkout-service", 30),
            service("stock-service", 60),
        ],
        spans_received: 0,
        traces: (tracing == Tracing::On).then(|| TraceFigures {
            check: TraceCheck {
                checked: accepted,
                complete: accepted,
                without_spans: 0,
                missing: Vec::new(),
                waited: Duration::ZERO,
            },
            spans_of_checkouts: 7 * accepted,
            spans_expected_min: 6 * accepted,
        }),
        wrk: None,
    }
}

pub(super) fn raw(c: usize, confirmed: u64) -> RawResult {
    RawResult {
        concurrency: c,
        elapsed: Duration::from_secs(10),
        confirmed,
        failed: 0,
        latency: Latency::default(),
        drained: true,
        consumed: confirmed,
        confirmed_total: confirmed,
        cpu: vec![("broker".into(), Duration::from_secs(2))],
        machine_busy: 0.9,
        unaccounted_busy: 0.3,
        body_bytes: 120,
        header_bytes: 80,
        queue_members: None,
    }
}

#[test]
fn targets_are_judged_against_their_limits() {
    let results = Results {
        raw: vec![raw(1, 5_000), raw(64, 40_000)],
        // Untraced 1,000 req/s at C=1 and 3,200 at C=64 (0.80 of raw).
        untraced: vec![
            pipeline(Tracing::Off, 1, 10_000, 10),
            pipeline(Tracing::Off, 64, 32_000, 20),
        ],
        // Traced: 0.97 and 0.90 of untraced; p99 +5 % and +50 %.
        traced: vec![
            pipeline(Tracing::On, 1, 9_700, 10),
            pipeline(Tracing::On, 64, 28_800, 30),
        ],
        ..Results::default()
    };
    let targets = targets(&results);
    let verdicts: Vec<Verdict> = targets.iter().map(|t| t.verdict).collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Missed,      // 0.90 < 0.95 at C=64
            Verdict::Missed,      // +50 % at C=64
            Verdict::Met,         // 0.80 ≥ 0.75
            Verdict::Met,         // all complete, none dropped
            Verdict::Missed,      // stock-service 60 MB
            Verdict::Met,         // gateway 1 s / 9,700 = 103 µs worst
            Verdict::Missed,      // C=1 traced: 970/s, p50 1 ms
            Verdict::Missed,      // C=1 traced: p99 10 ms
            Verdict::NotMeasured, // no stock-service CPU in these runs
            Verdict::NotMeasured, // likewise
        ]
    );
    assert_eq!(targets[0].measured, "C=64: 0.90", "C=1 is not judged");
    assert_eq!(targets[6].measured, "bench 1.00 ms, 970/s");
    assert_eq!(targets[7].measured, "bench 10.00 ms");
    assert_eq!(targets[8].measured, "C=64: –");
    assert_eq!(targets[1].measured, "C=1: +0.0 %; C=64: +50.0 %");
    assert_eq!(targets[2].measured, "0.80");
    assert!(
        targets[5].measured == "gateway C=1 103, C=64 35 µs; checkout-service C=1 52, C=64 17 µs",
        "{}",
        targets[5].measured
    );

    let ratios = ratios_table(&results).render();
    assert!(
        ratios.contains("| 64  |                      0.80 |"),
        "{ratios}"
    );
    let resources = resources_table(&results).render();
    assert!(
        resources.contains("0.100"),
        "1 s / 10,000 checkouts × 1,000: {resources}"
    );

    let markdown = render_section(
        &Environment::default(),
        &Settings {
            topology: Topology::Single,
            duration: Duration::from_secs(10),
            warmup: Duration::from_secs(2),
            concurrency: vec![1, 64],
            rust_log: "warn".into(),
            batch: BatchSettings::default(),
            initial_stock: 1_000_000_000,
            prefetch: 128,
            apply_sample: 2_000,
            repeat: 1,
        },
        &results,
        "120 B body",
    );
    assert!(markdown.contains("## Targets (single node)"));
    assert!(
        markdown.contains("raw C=1: 30 % of the machine's CPU went to processes not measured"),
        "{markdown}"
    );
    assert!(!markdown.contains("untraced C=1: 2 %"));
    assert!(markdown.contains("❌ missed"));
    assert!(
        !markdown
            .lines()
            .any(|line| line.trim_end() == HISTORY_HEADING),
        "the history is added by compose"
    );
}

#[test]
fn repeated_runs_keep_the_median() {
    let mut results = Results {
        untraced: vec![
            pipeline(Tracing::Off, 16, 30_000, 10),
            pipeline(Tracing::Off, 16, 10_000, 10),
            pipeline(Tracing::Off, 16, 20_000, 10),
            pipeline(Tracing::Off, 64, 40_000, 10),
        ],
        raw: vec![raw(1, 5_000), raw(1, 7_000)],
        ..Results::default()
    };
    results.keep_medians();
    let kept: Vec<(usize, u64)> = results
        .untraced
        .iter()
        .map(|r| (r.concurrency, r.accepted()))
        .collect();
    assert_eq!(kept, [(16, 20_000), (64, 40_000)]);
    assert_eq!(results.raw.len(), 1);
    assert_eq!(results.raw[0].confirmed, 5_000, "lower middle of two");
    assert_eq!(
        results.spreads,
        [
            "raw C=1: 2 runs, 500 / 700 msgs/s (median shown)",
            "untraced C=16: 3 runs, 1000 / 2000 / 3000 req/s (median shown)"
        ]
    );
}

#[test]
fn nothing_measured_is_not_a_pass() {
    let targets = targets(&Results::default());
    assert!(targets.iter().all(|t| t.verdict == Verdict::NotMeasured));
    assert_eq!(targets[2].measured, "C=64 not run");
}

#[test]
fn markdown_templates_are_filled_in() {
    let env = Environment {
        commit: "abc1234 (clean)".into(),
        nproc: 2,
        cpu_model: "CPU {commit}".into(),
        postgres: "15.8".into(),
        ..Environment::default()
    };
    let mut settings = Settings {
        topology: Topology::Single,
        duration: Duration::from_secs(10),
        warmup: Duration::from_millis(1_500),
        concurrency: vec![1, 64],
        rust_log: "warn".into(),
        batch: BatchSettings::default(),
        initial_stock: 1_000_000_000,
        prefetch: 128,
        apply_sample: 2_000,
        repeat: 3,
    };
    let markdown = render_section(&env, &settings, &Results::default(), "120 B body");
    assert!(
        markdown.starts_with(
            "## Last run (single node)\n\n- **Date**: \n- **Commit**: abc1234 (clean)\n\
             - **Machine**: 2 CPUs, CPU {commit}, "
        ),
        "a value is not searched for placeholders: {markdown}"
    );
    assert!(
        markdown.contains(
            "- **Settings**: 10 s measured per run after a 1.500 s warmup; concurrency (closed \
             loop) 1, 64; each run 3 times, interleaved, the median shown; "
        ),
        "{markdown}"
    );
    assert!(
        markdown.contains("(found by )\n\n## Results (single node)\n\n"),
        "{markdown}"
    );
    let (text, figures) = markdown.split_once("<!-- bench-figures ").unwrap();
    assert!(
        figures.ends_with(" -->\n"),
        "the figures close the part: {figures}"
    );
    assert_eq!(
        text.matches('{').count(),
        1,
        "every placeholder filled, only the CPU model's brace left: {markdown}"
    );

    settings.topology = Topology::Cluster;
    let markdown = render_section(&env, &settings, &Results::default(), "120 B body");
    assert!(markdown.starts_with("## Cluster\n\n"), "{markdown}");
    assert!(markdown.contains("\n### Cluster: last run\n\n- **Date**: "));
    assert!(markdown.contains("; PostgreSQL 15.8\n"), "{markdown}");
    assert!(markdown.contains("\n### Cluster: raw broker (the ceiling)\n\n"));
    assert!(markdown.contains("\n### Cluster: targets\n\n"));
    assert!(!markdown.contains("## Results"), "{markdown}");
    let text = markdown.split("<!-- bench-figures ").next().unwrap();
    assert_eq!(text.matches('{').count(), 1, "{markdown}");

    let file = compose(Topology::Cluster, &markdown, None);
    assert!(
        file.ends_with(
            "lists the spread in the notes.\n\n## History\n\nBefore/after records of \
                        optimisations, newest first. `bench` keeps everything from this heading \
                        to the end of the file when it rewrites BENCHMARKS.md.\n"
        ),
        "{file}"
    );
    assert!(
        file.contains("everything from `## History` on is kept."),
        "{file}"
    );
}
