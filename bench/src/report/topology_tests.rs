//! Tests of the report's two topologies: the cluster's tables (replicas summed, the
//! worst RSS, PostgreSQL, queue replicas), each topology's part of `BENCHMARKS.md`
//! kept by the other's run, and the comparison computed from the figures in the file.

use std::time::Duration;

use telemetry::BatchSettings;

use super::tests::{pipeline, raw};
use super::*;
use crate::pipeline::{PipelineResult, Tracing};
use crate::topology::Topology;

#[test]
fn each_topology_rewrites_its_own_part_and_keeps_the_others() {
    let single_1 = "## Last run (single node)\n\nsingle 1\n\n## Results (single node)\n\n\
                    table\n\n## Targets (single node)\n\ntargets\n";
    let cluster_1 = "## Cluster\n\ncluster 1\n\n### Cluster: last run\n\nx\n";
    let file = compose(Topology::Single, single_1, None);
    let file = compose(Topology::Cluster, cluster_1, Some(&file));
    assert_eq!(
        part_of(&file, Topology::Single),
        Some(format!("{single_1}\n").as_str())
    );
    assert_eq!(
        part_of(&file, Topology::Cluster),
        Some(format!("{cluster_1}\n").as_str())
    );
    let single_2 = "## Last run (single node)\n\nsingle 2\n";
    let file = compose(Topology::Single, single_2, Some(&file));
    assert!(
        !file.contains("single 1") && file.contains("single 2"),
        "{file}"
    );
    assert!(
        file.contains("cluster 1"),
        "the cluster's part is kept: {file}"
    );
    let order: Vec<usize> = [
        "# Benchmarks",
        "## Last run (single node)",
        "## Cluster",
        "## What replication costs per checkout",
        "## How to run",
        "## How to read",
        "## History",
    ]
    .iter()
    .map(|heading| file.find(&format!("{heading}\n")).unwrap())
    .collect();
    assert!(order.is_sorted(), "{order:?} in {file}");
    // A file from before the cluster topology: its single part ends at "## How to run".
    let before = "# Benchmarks\n\n## Last run\n\nold\n\n## How to run\n\nold how\n\n## History\n";
    assert_eq!(
        part_of(before, Topology::Single),
        Some("## Last run\n\nold\n\n")
    );
    assert_eq!(part_of(before, Topology::Cluster), None);
    let file = compose(Topology::Cluster, cluster_1, Some(before));
    assert!(
        file.contains("## Last run\n\nold\n\n## Cluster\n"),
        "{file}"
    );
    assert!(!file.contains("old how"), "how to run is rewritten: {file}");
}

/// A cluster run: two processes of each service, three broker nodes, PostgreSQL.
fn cluster_run(tracing: Tracing, c: usize, accepted: usize) -> PipelineResult {
    let mut run = pipeline(tracing, c, accepted, 20);
    run.cpu = vec![
        ("gateway".into(), Duration::from_millis(600)),
        ("gateway".into(), Duration::from_millis(400)),
        ("checkout-service".into(), Duration::from_millis(300)),
        ("checkout-service".into(), Duration::from_millis(300)),
        ("stock-service".into(), Duration::from_millis(250)),
        ("stock-service".into(), Duration::from_millis(250)),
        ("broker".into(), Duration::from_secs(1)),
        ("broker".into(), Duration::from_secs(1)),
        ("broker".into(), Duration::from_secs(1)),
        ("bench".into(), Duration::from_millis(200)),
        (crate::postgres::BACKENDS.into(), Duration::from_millis(700)),
        (crate::postgres::REST.into(), Duration::from_millis(100)),
    ];
    let mut second = run.services.clone();
    for service in &mut second {
        service.peak_rss_kb += 5 * 1024;
    }
    run.services.extend(second);
    run.queue_members = Some(3);
    run
}

#[test]
fn cluster_tables_sum_replicas_and_show_the_worst_rss() {
    let mut raw_run = raw(64, 20_000);
    raw_run.queue_members = Some(3);
    let results = Results {
        raw: vec![raw_run],
        untraced: vec![cluster_run(Tracing::Off, 64, 10_000)],
        ..Results::default()
    };
    let resources = resources_table(&results).render();
    let header = resources.lines().next().unwrap();
    assert!(
        header.contains("| broker | PostgreSQL | PG rest | bench |"),
        "{header}"
    );
    let row = resources.lines().nth(2).unwrap();
    // Per 1,000 of 10,000 checkouts: gateway 1 s, checkout 0.6 s, stock 0.5 s, broker
    // 3 s, PostgreSQL 0.7 s, the rest 0.1 s, bench 0.2 s; RSS the worse replica.
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    assert_eq!(
        cells[1..15],
        [
            "untraced", "64", "0.100", "0.060", "0.050", "0.300", "0.070", "0.010", "0.020",
            "50 %", "2 %", "25.0", "35.0", "65.0"
        ],
        "{resources}"
    );
    let ceiling = raw_table(&results).render();
    assert!(ceiling.lines().next().unwrap().ends_with("| queue on |"));
    assert!(ceiling.contains("|  3 nodes |"), "{ceiling}");
    let single = raw_table(&Results {
        raw: vec![raw(64, 20_000)],
        ..Results::default()
    })
    .render();
    assert!(
        !single.contains("queue on"),
        "nobody asks on a single node: {single}"
    );

    let all_there = notes(&results);
    assert!(
        all_there
            .contains(&"every pipeline run's queue had a replica on each of the 3 nodes".into()),
        "{all_there:?}"
    );
    let mut short = results.clone();
    short.untraced[0].queue_members = Some(2);
    assert!(
        notes(&short).contains(&"untraced C=64: the queue had replicas on 2 of 3 nodes".into())
    );
}

#[test]
fn figures_survive_the_file_and_compare_the_topologies() {
    let settings = |topology| Settings {
        topology,
        duration: Duration::from_secs(5),
        warmup: Duration::from_secs(2),
        concurrency: vec![64],
        rust_log: "warn".into(),
        batch: BatchSettings::default(),
        initial_stock: 1_000_000_000,
        prefetch: 128,
        apply_sample: 2_000,
        repeat: 1,
    };
    let env = Environment {
        date: "2026-12-02 14:00 UTC".into(),
        commit: "abc1234 (dirty -- x)".into(),
        ..Environment::default()
    };
    let single = Results {
        raw: vec![raw(64, 40_000)],
        untraced: vec![pipeline(Tracing::Off, 64, 32_000, 20)],
        ..Results::default()
    };
    let cluster = Results {
        raw: vec![raw(64, 20_000)],
        untraced: vec![cluster_run(Tracing::Off, 64, 10_000)],
        ..Results::default()
    };
    let single_md = render_section(&env, &settings(Topology::Single), &single, "m");
    let cluster_md = render_section(&env, &settings(Topology::Cluster), &cluster, "m");
    let figures = Figures::find_in(&cluster_md).expect("the cluster's figures");
    assert_eq!(
        figures,
        Figures::of(&env, &settings(Topology::Cluster), &cluster)
    );
    assert_eq!(
        figures.commit, "abc1234 (dirty -- x)",
        "a `--` survives the comment"
    );
    assert!(
        !cluster_md.contains("dirty -- x) -->"),
        "and does not end it early"
    );
    let cpu = &figures.pipeline[0].cpu_us;
    assert_eq!(
        cpu["gateway"], 100.0,
        "1 s over 10,000 checkouts, both replicas"
    );
    assert_eq!(cpu["broker"], 300.0);
    assert_eq!(cpu[crate::postgres::BACKENDS], 70.0);

    let file = compose(Topology::Single, &single_md, None);
    assert!(file.contains("no run of the cluster (`scripts/bench --topology cluster`) yet"));
    let file = compose(Topology::Cluster, &cluster_md, Some(&file));
    let comparison = file
        .split("## What replication costs per checkout\n\n")
        .nth(1)
        .and_then(|rest| rest.split("## How to run").next())
        .unwrap();
    assert!(
        comparison.contains(
            "single node 2026-12-02 14:00 UTC (abc1234 (dirty -- x); 5 s per run, one run each)"
        ),
        "{comparison}"
    );
    let rows: Vec<Vec<&str>> = comparison
        .lines()
        .filter(|line| line.starts_with("| raw") || line.starts_with("| untraced"))
        .map(|line| {
            line.split('|')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(
        rows,
        [
            vec![
                "raw",
                "64",
                "4000 → 2000 (×0.50)",
                "0.00 → 0.00",
                "0.00 → 0.00",
                "50 → 100 (×2.00)",
                "–",
                "–"
            ],
            vec![
                "untraced",
                "64",
                "3200 → 1000 (×0.31)",
                "1.00 → 1.00 (×1.00)",
                "20.00 → 20.00 (×1.00)",
                "– → 300",
                // Single: gateway 31 µs + checkout-service 16 µs, no stock-service CPU
                // measured in this made-up run, so no sum.
                "– → 210",
                "– → 70"
            ],
        ],
        "{comparison}"
    );
}
