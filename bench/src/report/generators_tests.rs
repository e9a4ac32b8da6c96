//! Tests of the wrk windows in the report: the side-by-side table and its lines, the
//! targets judged on wrk, its notes, and the figures kept in the file (with files
//! written before wrk still read).

use std::time::Duration;

use telemetry::BatchSettings;

use super::tests::pipeline;
use super::*;
use crate::pipeline::{PipelineResult, Tracing, WrkFigures};
use crate::stats::Latency;
use crate::topology::Topology;
use crate::wrk::{WrkErrors, WrkReport};

/// A wrk window of 10 s: `accepted` checkouts, 2 s of the three services' CPU, 0.2 s
/// of wrk's; traced ones all complete.
fn wrk(tracing: Tracing, accepted: u64, p50_us: u64, p99_us: u64) -> WrkFigures {
    WrkFigures {
        report: WrkReport {
            requests: accepted,
            elapsed: Duration::from_secs(10),
            errors: WrkErrors::default(),
            latency: Latency {
                p50: Duration::from_micros(p50_us),
                p99: Duration::from_micros(p99_us),
                max: Duration::from_micros(2 * p99_us),
            },
            p90: Duration::from_micros(p99_us),
        },
        cpu: vec![
            ("gateway".into(), Duration::from_secs(1)),
            ("checkout-service".into(), Duration::from_millis(500)),
            ("stock-service".into(), Duration::from_millis(500)),
            ("bench".into(), Duration::from_millis(100)),
        ],
        wrk_cpu: Duration::from_millis(200),
        cpu_window: Duration::from_secs(11),
        machine_busy: 0.9,
        unaccounted_busy: 0.05,
        applied: accepted,
        apply_wait: Duration::ZERO,
        complete_traces: tracing.traces().then_some(accepted as usize),
    }
}

/// A run of 10 s whose built-in window used 2 s of the three services' CPU and 0.5 s
/// of this process's, with a wrk window.
fn run(
    tracing: Tracing,
    c: usize,
    accepted: usize,
    p99_ms: u64,
    wrk: WrkFigures,
) -> PipelineResult {
    let mut run = pipeline(tracing, c, accepted, p99_ms);
    run.cpu = vec![
        ("gateway".into(), Duration::from_secs(1)),
        ("checkout-service".into(), Duration::from_millis(500)),
        ("stock-service".into(), Duration::from_millis(500)),
        ("bench".into(), Duration::from_millis(500)),
    ];
    run.wrk = Some(wrk);
    run
}

/// Untraced and traced at C=1, 16 and 64, wrk faster than the built-in load.
fn results() -> Results {
    Results {
        untraced: vec![
            run(
                Tracing::Off,
                1,
                4_250,
                7,
                wrk(Tracing::Off, 12_500, 700, 1_500),
            ),
            run(
                Tracing::Off,
                16,
                22_800,
                17,
                wrk(Tracing::Off, 25_000, 6_000, 15_000),
            ),
            run(
                Tracing::Off,
                64,
                42_600,
                31,
                wrk(Tracing::Off, 45_000, 14_000, 30_000),
            ),
        ],
        traced: vec![
            run(
                Tracing::On,
                1,
                3_300,
                8,
                wrk(Tracing::On, 12_100, 780, 1_900),
            ),
            run(
                Tracing::On,
                16,
                22_900,
                19,
                wrk(Tracing::On, 24_000, 6_300, 17_000),
            ),
            run(
                Tracing::On,
                64,
                36_800,
                36,
                wrk(Tracing::On, 40_000, 15_000, 33_000),
            ),
        ],
        ..Results::default()
    }
}

fn cells(line: &str) -> Vec<&str> {
    line.split('|')
        .map(str::trim)
        .filter(|cell| !cell.is_empty())
        .collect()
}

/// The cells of the row of `run` at `c` in a rendered table.
fn row<'a>(table: &'a str, run: &str, c: &str) -> Vec<&'a str> {
    table
        .lines()
        .map(cells)
        .find(|cells| cells.len() > 2 && cells[0] == run && cells[1] == c)
        .unwrap_or_else(|| panic!("no {run} C={c} in {table}"))
}

#[test]
fn the_generators_are_shown_side_by_side() {
    let results = results();
    let table = generators_table(&results).render();
    assert_eq!(
        row(&table, "traced", "1"),
        [
            "traced",
            "1",
            "330",
            "1210",
            "1.00",
            "0.78",
            "8.00",
            "1.90",
            // 2 s over 3,300 checkouts / over 12,100.
            "606 / 165",
            // this process 0.5 s over 3,300 / wrk 0.2 s over 12,100.
            "152 / 17",
            "0",
            "all",
            "12100 of 12100",
        ],
        "{table}"
    );
    assert_eq!(
        row(&table, "untraced", "64")[10..],
        ["0", "all", "–"],
        "{table}"
    );

    let lines = generators_lines(&results);
    assert_eq!(
        lines,
        [
            "The Go original, measured with wrk on a 2-core machine, traced: C=1 969–1,159 \
             req/s (p50 0.8 ms); C=16 1,767–2,685 req/s; C=64 2,243–2,305 req/s. This run \
             with wrk, traced: C=1 1,210 req/s (p50 0.78 ms); C=16 2,400 req/s; C=64 4,000 \
             req/s.",
            "wrk, traced / untraced throughput: C=1 0.97; C=16 0.96; C=64 0.89.",
        ]
    );
    assert!(has_wrk(&results));
    assert!(!has_wrk(&super::Results {
        untraced: vec![pipeline(Tracing::Off, 1, 10, 1)],
        ..Results::default()
    }));
    assert_eq!(generators::grouped(1_234_567.4), "1,234,567");
    assert_eq!(generators::grouped(999.0), "999");
    assert_eq!(generators::grouped(-1_000.0), "-1,000");
}

#[test]
fn the_new_targets_are_judged_on_wrk_where_it_ran() {
    let mut results = results();
    let judged = |results: &Results| -> Vec<(Verdict, String)> {
        targets(results)
            .into_iter()
            .map(|t| (t.verdict, t.measured))
            .collect()
    };
    let all = judged(&results);
    assert_eq!(
        all[0],
        (
            Verdict::Missed,
            "C=16: bench 1.00, wrk 0.96; C=64: bench 0.86, wrk 0.89".to_owned()
        ),
        "judged on both generators, at C=16 and 64 only"
    );
    assert_eq!(
        all[3].1,
        "C=1: 3300/3300 complete (wrk 12100/12100), 0 dropped; C=16: 22900/22900 complete \
         (wrk 24000/24000), 0 dropped; C=64: 36800/36800 complete (wrk 40000/40000), 0 dropped"
    );
    assert_eq!(all[3].0, Verdict::Met);
    assert_eq!(
        all[6],
        (
            Verdict::Met,
            "wrk 0.78 ms, 1210/s; bench 1.00 ms, 330/s".to_owned()
        ),
        "wrk is judged, the built-in load shown"
    );
    assert_eq!(
        all[7],
        (Verdict::Met, "wrk 1.90 ms; bench 8.00 ms".to_owned())
    );
    // Traced and untraced use the same CPU per checkout in the fixtures, so only the
    // checkout counts differ.
    assert_eq!(
        all[8],
        (
            Verdict::Missed,
            "C=16: bench 87 vs 88 µs (×1.00), wrk 83 vs 80 µs (×1.04); C=64: bench 54 vs 47 \
             µs (×1.16), wrk 50 vs 44 µs (×1.12)"
                .to_owned()
        )
    );
    assert_eq!(all[9], (Verdict::Met, "bench 47 µs; wrk 44 µs".to_owned()));

    // Without wrk, the C=1 targets fall back on the built-in load.
    for r in results.untraced.iter_mut().chain(&mut results.traced) {
        r.wrk = None;
    }
    let bench_only = judged(&results);
    assert_eq!(
        bench_only[6],
        (Verdict::Missed, "bench 1.00 ms, 330/s".to_owned())
    );
    assert_eq!(bench_only[7], (Verdict::Missed, "bench 8.00 ms".to_owned()));
    assert_eq!(bench_only[0].1, "C=16: 1.00; C=64: 0.86");
    assert_eq!(
        bench_only[8].1,
        "C=16: bench 87 vs 88 µs (×1.00); C=64: bench 54 vs 47 µs (×1.16)"
    );
    assert_eq!(bench_only[9], (Verdict::Met, "bench 47 µs".to_owned()));

    // An incomplete wrk window misses the spans target.
    let mut short = self::results();
    if let Some(w) = &mut short.traced[1].wrk {
        w.complete_traces = Some(23_990);
    }
    let spans = &targets(&short)[3];
    assert_eq!(spans.verdict, Verdict::Missed);
    assert!(spans.measured.contains("(wrk 23990/24000)"), "{spans:?}");
}

#[test]
fn wrk_problems_are_noted() {
    let mut results = results();
    assert!(notes(&results).is_empty(), "{:?}", notes(&results));
    if let Some(w) = &mut results.traced[2].wrk {
        w.report.errors = WrkErrors {
            connect: 0,
            read: 2,
            write: 0,
            status: 5,
            timeout: 1,
        };
        w.applied = 39_000;
        w.complete_traces = Some(38_000);
        w.unaccounted_busy = 0.25;
    }
    let notes = notes(&results);
    assert_eq!(
        notes,
        [
            "traced C=64 (wrk): 25 % of the machine's CPU went to processes not measured here \
             (wrk's own excluded): something else ran on the machine, so these figures may be \
             disturbed",
            "traced C=64 (wrk): non-2xx × 5, read errors × 2, responses over wrk's timeout × 1",
            "traced C=64 (wrk): only 39000 of 39995 accepted orders applied within the wait",
            "traced C=64 (wrk): 38000 traces completed for 39995 accepted checkouts within the wait",
        ]
    );
    let table = generators_table(&results).render();
    assert_eq!(
        row(&table, "traced", "64")[10..],
        ["5", "39000 of 39995", "38000 of 39995"],
        "{table}"
    );
}

fn settings(topology: Topology) -> Settings {
    Settings {
        topology,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(2),
        concurrency: vec![1, 16, 64],
        rust_log: "warn".into(),
        batch: BatchSettings::default(),
        initial_stock: 1_000_000_000,
        prefetch: 128,
        apply_sample: 2_000,
        repeat: 1,
    }
}

#[test]
fn both_parts_show_the_generators_and_keep_their_figures() {
    let results = results();
    let env = Environment::default();
    let single = render_section(&env, &settings(Topology::Single), &results, "m");
    let ratios = single.find("### Ratios\n").unwrap();
    let side = single.find("### Load generators side by side\n").unwrap();
    let targets = single.find("## Targets (single node)\n").unwrap();
    assert!(ratios < side && side < targets, "{single}");
    assert!(
        single.contains("\n\nThe Go original, measured with wrk on a 2-core machine, traced:"),
        "{single}"
    );
    let cluster = render_section(&env, &settings(Topology::Cluster), &results, "m");
    assert!(cluster.contains("\n### Cluster: load generators side by side\n\n| run "));

    let figures = Figures::find_in(&single).expect("the figures");
    let traced_1 = figures
        .pipeline
        .iter()
        .find(|p| p.kind == "traced" && p.c == 1)
        .unwrap();
    let wrk = traced_1.wrk.as_ref().expect("the wrk window's figures");
    assert_eq!(wrk.per_s, 1_210.0);
    assert!((wrk.p50_ms - 0.78).abs() < 1e-9 && (wrk.p99_ms - 1.9).abs() < 1e-9);
    assert!((wrk.cpu_us["gateway"] - 1e6 / 12_100.0).abs() < 1e-9);

    // Without wrk: no section, no `wrk` in the figures.
    let mut bench_only = results.clone();
    for r in bench_only.untraced.iter_mut().chain(&mut bench_only.traced) {
        r.wrk = None;
    }
    let plain = render_section(&env, &settings(Topology::Single), &bench_only, "m");
    assert!(!plain.contains("side by side"), "{plain}");
    assert!(!plain.contains("\"wrk\""), "{plain}");

    // The comparison of the topologies adds the wrk windows' rows where both have them.
    let file = compose(Topology::Single, &single, None);
    let file = compose(Topology::Cluster, &cluster, Some(&file));
    let wrk_rows = |file: &str| {
        file.lines()
            .filter(|line| cells(line).first() == Some(&"traced, wrk"))
            .count()
    };
    assert_eq!(wrk_rows(&file), 3, "{file}");
    let file = compose(Topology::Single, &plain, Some(&file));
    assert_eq!(wrk_rows(&file), 0, "{file}");
}

#[test]
fn figures_written_before_wrk_still_parse() {
    // A part's comment as a benchmark without wrk wrote it.
    let old = "<!-- bench-figures {\"topology\":\"single\",\"date\":\"2026-12-02 14:44 UTC\",\
               \"commit\":\"e196e1a (clean)\",\"duration_s\":5.0,\"repeat\":1,\"raw\":[{\"c\":1,\
               \"per_s\":750.97,\"p50_ms\":1.158,\"p99_ms\":4.131,\"broker_us\":857.07}],\
               \"pipeline\":[{\"kind\":\"traced\",\"c\":64,\"per_s\":3683.2,\"p50_ms\":16.415,\
               \"p99_ms\":36.799,\"cpu_us\":{\"bench\":60.7,\"broker\":117.06,\
               \"checkout-service\":97.0,\"gateway\":115.43,\"stock-service\":123.02}}]} -->\n";
    let figures = Figures::find_in(old).expect("an old file's figures");
    assert_eq!(figures.pipeline.len(), 1);
    assert_eq!(figures.pipeline[0].wrk, None);
    assert_eq!(figures.pipeline[0].per_s, 3683.2);
    // And the comparison with a new part that has wrk shows no wrk rows.
    let new = render_section(
        &Environment::default(),
        &settings(Topology::Cluster),
        &results(),
        "m",
    );
    let table = replication_table(&figures, &Figures::find_in(&new).unwrap()).render();
    assert!(
        table
            .lines()
            .any(|line| cells(line)[..2] == ["traced", "64"]),
        "{table}"
    );
    assert!(!table.contains("wrk"), "{table}");
}
