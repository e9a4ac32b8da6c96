//! From data to Markdown: the tables of `BENCHMARKS.md` and `SCALING.md`, rendered
//! from the latest [`Run`] of each topology, and the stdout summary of one run.
//!
//! A document is hand-written except between its markers, `<!-- bench render: NAME -->`
//! and `<!-- bench render: end -->`: [`splice`] replaces what is between them with the
//! part of that name and leaves the rest alone, so prose can sit around the tables and
//! the figures it quotes are the rendered ones.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context;

use super::data::{Pipeline, Run, SERVICES, Window};
use super::table::{Table, all_but, grouped, opt};
use super::targets::targets_table;
use crate::stats::ratio;

/// The Go original of this pipeline, measured with wrk on another 2-core machine,
/// traced: (C, lowest and highest checkouts/s over its runs, median latency in ms where
/// given), the figures the wrk windows here compare with.
pub const GO_ORIGINAL_WRK_TRACED: [(usize, (f64, f64), Option<f64>); 3] = [
    (1, (969.0, 1_159.0), Some(0.8)),
    (16, (1_767.0, 2_685.0), None),
    (64, (2_243.0, 2_305.0), None),
];

/// The pipeline's kinds, in the order shown.
const KINDS: [&str; 3] = ["untraced", "traced", "full"];

/// Where a generated part starts: `<!-- bench render: NAME -->`.
fn begin(name: &str) -> String {
    format!("<!-- bench render: {name} -->")
}

/// Where every generated part ends.
const END: &str = "<!-- bench render: end -->";

/// `document` with what is between each part's markers replaced by the part.
pub fn splice(document: &str, parts: &[(&str, String)]) -> anyhow::Result<String> {
    let mut out = document.to_owned();
    for (name, text) in parts {
        let begin = begin(name);
        let start = out
            .find(&begin)
            .with_context(|| format!("no `{begin}` marker"))?
            + begin.len();
        let end = start
            + out[start..]
                .find(END)
                .with_context(|| format!("no `{END}` after `{begin}`"))?;
        out.replace_range(start..end, &format!("\n{}\n", text.trim_end_matches('\n')));
    }
    Ok(out)
}

/// A document as it is and as rendered.
#[derive(Debug)]
pub struct Rendered {
    /// Its path.
    pub path: PathBuf,
    /// Its text now.
    pub current: String,
    /// Its text with the generated parts rendered from the results.
    pub rendered: String,
}

/// `BENCHMARKS.md` and `SCALING.md` in `docs`, rendered from the runs in `results`.
pub fn render_docs(results: &Path, docs: &Path) -> anyhow::Result<[Rendered; 2]> {
    let single = Run::read(results, "single")?;
    let cluster = Run::read(results, "cluster")?;
    let (single, cluster) = (single.as_ref(), cluster.as_ref());
    let render = |name: &str, parts: Vec<(&str, String)>| {
        let path = docs.join(name);
        let current = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let rendered =
            splice(&current, &parts).with_context(|| format!("in {}", path.display()))?;
        anyhow::Ok(Rendered {
            path,
            current,
            rendered,
        })
    };
    Ok([
        render("BENCHMARKS.md", benchmarks_parts(single, cluster))?,
        render("SCALING.md", scaling_parts(single, cluster))?,
    ])
}

/// `Single node` or `Cluster`.
fn title(run: &Run) -> &'static str {
    if run.topology == "cluster" {
        "Cluster"
    } else {
        "Single node"
    }
}

/// When and with which commit.
fn when(run: &Run) -> String {
    format!(
        "run {}, commit {}",
        run.environment.date, run.environment.commit
    )
}

/// What a run's figures are: the median of N, or one run, of a window of D seconds.
fn repeat(run: &Run) -> String {
    let s = &run.settings;
    let runs = if s.repeat > 1 {
        format!("the median of {} runs", s.repeat)
    } else {
        "one run".to_owned()
    };
    format!("{runs} of {} s", s.duration_s)
}

/// The parts of `BENCHMARKS.md`.
pub fn benchmarks_parts<'a>(single: Option<&Run>, cluster: Option<&Run>) -> Vec<(&'a str, String)> {
    let section = |run: Option<&Run>, command: &str| {
        run.map_or_else(|| format!("Not run yet: `{command}`.\n"), topology_section)
    };
    let runs: Vec<(&str, &Run)> = [single, cluster]
        .into_iter()
        .flatten()
        .map(|r| (title(r), r))
        .collect();
    vec![
        ("headline", headline(single, cluster)),
        ("single", section(single, "scripts/bench")),
        (
            "cluster",
            section(cluster, "scripts/bench --topology cluster"),
        ),
        ("targets", targets_table(&runs).render()),
    ]
}

/// What one run prints: its tables, its targets and its notes.
pub fn summary(run: &Run) -> String {
    let targets = targets_table(&[(title(run), run)]).render();
    format!(
        "{}: {}\n\n{}\nTargets\n\n{targets}",
        title(run),
        when(run),
        topology_section(run)
    )
}

/// The machine, the dates, and the single node's headline figures: throughput with and
/// without tracing, against the raw broker and the Go original, and at C=1 the
/// pipeline's latency above the broker's own publish + confirm.
fn headline(single: Option<&Run>, cluster: Option<&Run>) -> String {
    let Some(run) = single.or(cluster) else {
        return "Not run yet: `scripts/bench`.\n".to_owned();
    };
    let e = &run.environment;
    let mut md = format!(
        "**Machine**: {} CPUs, {}, {} RAM, Linux {}.",
        e.cpus, e.cpu, e.memory, e.kernel
    );
    for run in [single, cluster].into_iter().flatten() {
        let _ = write!(
            md,
            " **{}**: {}; {} each.",
            title(run),
            when(run),
            repeat(run)
        );
    }
    let _ = write!(
        md,
        "\n\n{}, accepted checkouts (raw broker: confirmed messages) per second, C requests in flight:\n\n",
        title(run)
    );
    let mut table = Table::new(&[
        "C",
        "raw broker",
        "untraced",
        "traced",
        "traced / untraced",
        "untraced / raw",
        "traced, wrk",
        "Go original, traced, wrk",
    ]);
    for c in run.levels() {
        let raw = run.raw_at(c).map(|r| r.per_s);
        let per_s = |kind| run.at(kind, c).map(|p| p.bench.per_s);
        let wrk = run
            .at("traced", c)
            .and_then(|p| p.wrk.as_ref())
            .map(|w| w.per_s);
        let go = GO_ORIGINAL_WRK_TRACED.iter().find(|g| g.0 == c);
        table.row(vec![
            c.to_string(),
            raw.map_or_else(|| "–".to_owned(), grouped),
            per_s("untraced").map_or_else(|| "–".to_owned(), grouped),
            per_s("traced").map_or_else(|| "–".to_owned(), grouped),
            opt(
                per_s("traced")
                    .zip(per_s("untraced"))
                    .and_then(|(t, u)| ratio(t, u)),
                2,
            ),
            opt(per_s("untraced").zip(raw).and_then(|(u, r)| ratio(u, r)), 2),
            wrk.map_or_else(|| "–".to_owned(), grouped),
            go.map_or_else(
                || "–".to_owned(),
                |g| format!("{}–{}", grouped(g.1.0), grouped(g.1.1)),
            ),
        ]);
    }
    md.push_str(&table.render());
    md.push_str("\nOne connection (C=1): latency, and how far the pipeline is above the broker's own publish + confirm measured in the same run:\n\n");
    let mut table = Table::new(&[
        "C=1",
        "p50 ms",
        "p99 ms",
        "p50 above the broker",
        "p99 above the broker",
    ]);
    let floor = run.raw_at(1);
    if let Some(raw) = floor {
        let (p50, p99) = (opt(Some(raw.p50_ms), 2), opt(Some(raw.p99_ms), 2));
        table.row(vec![
            "raw broker: publish + confirm".to_owned(),
            p50,
            p99,
            "–".into(),
            "–".into(),
        ]);
    }
    let above = |ms: f64, floor: Option<f64>| {
        floor.map_or_else(|| "–".to_owned(), |f| format!("{:+.2}", ms - f))
    };
    for kind in KINDS {
        let Some(p) = run.at(kind, 1) else { continue };
        for (name, w) in windows(p) {
            table.row(vec![
                format!("pipeline, {name}"),
                opt(Some(w.p50_ms), 2),
                opt(Some(w.p99_ms), 2),
                above(w.p50_ms, floor.map(|r| r.p50_ms)),
                above(w.p99_ms, floor.map(|r| r.p99_ms)),
            ]);
        }
    }
    if let Some((_, _, Some(p50))) = GO_ORIGINAL_WRK_TRACED.iter().find(|g| g.0 == 1) {
        let dash = || "–".to_owned();
        table.row(vec![
            "Go original, traced, wrk".to_owned(),
            format!("{p50:.2}"),
            dash(),
            dash(),
            dash(),
        ]);
    }
    md + &table.render()
}

/// A pipeline run's windows, named: `traced` and `traced, wrk`.
fn windows(p: &Pipeline) -> Vec<(String, &Window)> {
    let mut windows = vec![(p.kind.clone(), &p.bench)];
    windows.extend(p.wrk.iter().map(|w| (format!("{}, wrk", p.kind), w)));
    windows
}

/// The pipeline runs, kind by kind, C by C.
fn ordered(run: &Run) -> Vec<&Pipeline> {
    KINDS
        .iter()
        .flat_map(|kind| {
            run.levels()
                .into_iter()
                .filter_map(move |c| run.at(kind, c))
        })
        .collect()
}

/// A topology's run: its settings, its figures, its CPU and memory, its notes.
fn topology_section(run: &Run) -> String {
    let (e, s) = (&run.environment, &run.settings);
    let postgres = e
        .postgres
        .as_ref()
        .map(|v| format!("; PostgreSQL {v}"))
        .unwrap_or_default();
    let concurrency: Vec<String> = s.concurrency.iter().map(ToString::to_string).collect();
    let mut md = format!(
        "{}, {}; {}; RabbitMQ {}{postgres}. Each figure is {} measured after a {} s warmup; C = {}; \
         `AMQP_PREFETCH={}`; `OTEL_BSP_MAX_QUEUE_SIZE={}`, `OTEL_BSP_SCHEDULE_DELAY={}`, \
         `OTEL_BSP_MAX_EXPORT_BATCH_SIZE={}`; raw broker: {}.\n\n",
        title(run),
        when(run),
        e.rustc,
        e.rabbitmq,
        repeat(run),
        s.warmup_s,
        concurrency.join(", "),
        s.prefetch,
        s.bsp_max_queue_size,
        s.bsp_schedule_delay_ms,
        s.bsp_max_export_batch_size,
        s.message,
    );
    let mut figures = Table::new(&[
        "run",
        "C",
        "per s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "failed",
        "applied",
        "complete traces",
        "dropped spans",
    ]);
    let mut cpu_headers = vec![
        "µs CPU per checkout",
        "C",
        "gateway",
        "checkout-service",
        "stock-service",
        "broker",
    ];
    let postgres = run
        .pipeline
        .iter()
        .any(|p| p.bench.cpu_us.contains_key(crate::postgres::BACKENDS));
    if postgres {
        cpu_headers.push("PostgreSQL");
    }
    cpu_headers.extend(["load generator", "machine busy", "peak RSS MB"]);
    let mut cpu = Table::new(&cpu_headers);
    let us =
        |w: &std::collections::BTreeMap<String, f64>, label: &str| opt(w.get(label).copied(), 0);
    let busy = |share: Option<f64>| {
        share.map_or_else(|| "–".to_owned(), |b| format!("{:.0} %", b * 100.0))
    };
    for r in &run.raw {
        figures.row(vec![
            "raw broker".to_owned(),
            r.c.to_string(),
            grouped(r.per_s),
            opt(Some(r.p50_ms), 2),
            opt(Some(r.p99_ms), 2),
            opt(r.max_ms, 2),
            "–".to_owned(),
            all_but(r.unconsumed),
            "–".to_owned(),
            "–".to_owned(),
        ]);
        let mut row = vec![
            "raw broker, per message".to_owned(),
            r.c.to_string(),
            "–".into(),
            "–".into(),
            "–".into(),
        ];
        row.push(us(&r.cpu_us, "broker"));
        if postgres {
            row.push("–".to_owned());
        }
        row.extend([us(&r.cpu_us, "bench"), busy(r.machine_busy), "–".to_owned()]);
        cpu.row(row);
    }
    for p in ordered(run) {
        let rss: Vec<String> = SERVICES
            .iter()
            .map(|s| opt(p.rss_mb.get(*s).copied(), 1))
            .collect();
        for (name, w) in windows(p) {
            let wrk = name.ends_with("wrk");
            let traces = match (w.traces_complete, w.traces_expected) {
                (Some(done), Some(of)) => format!("{done} of {of}"),
                _ => "–".to_owned(),
            };
            let dropped = if wrk { None } else { p.dropped_spans };
            figures.row(vec![
                name.clone(),
                p.c.to_string(),
                grouped(w.per_s),
                opt(Some(w.p50_ms), 2),
                opt(Some(w.p99_ms), 2),
                opt(w.max_ms, 2),
                w.failed.map_or_else(|| "–".to_owned(), |n| n.to_string()),
                all_but(w.unapplied),
                traces,
                dropped.map_or_else(|| "–".to_owned(), |n| n.to_string()),
            ]);
            let mut row = vec![name, p.c.to_string()];
            row.extend(
                ["gateway", "checkout-service", "stock-service", "broker"]
                    .map(|l| us(&w.cpu_us, l)),
            );
            if postgres {
                row.push(us(&w.cpu_us, crate::postgres::BACKENDS));
            }
            row.extend([
                us(&w.cpu_us, if wrk { "wrk" } else { "bench" }),
                busy(w.machine_busy),
                if wrk {
                    "–".to_owned()
                } else {
                    rss.join(" / ")
                },
            ]);
            cpu.row(row);
        }
    }
    md.push_str(&figures.render());
    md.push('\n');
    md.push_str(&cpu.render());
    if !run.notes.is_empty() {
        md.push_str("\nNotes:\n\n");
        for note in &run.notes {
            let _ = writeln!(md, "- {note}");
        }
    }
    md
}

/// The parts of `SCALING.md`: CPU per checkout by component in both topologies, the
/// cores that rate would take, and the rates measured.
pub fn scaling_parts<'a>(
    single: Option<&'a Run>,
    cluster: Option<&'a Run>,
) -> Vec<(&'a str, String)> {
    let traced = |run: Option<&'a Run>| run.and_then(|r| r.at("traced", 64)).map(|p| &p.bench);
    let (s, k) = (traced(single), traced(cluster));
    let components = [
        ("gateway", "gateway"),
        ("checkout-service", "checkout-service"),
        ("stock-service", "stock-service"),
        ("RabbitMQ", "broker"),
        ("PostgreSQL (server processes)", crate::postgres::BACKENDS),
    ];
    let cpu = |w: Option<&Window>, label: &str| w.and_then(|w| w.cpu_us.get(label).copied());
    let total = |w: Option<&Window>| {
        w.map(|w| {
            components
                .iter()
                .filter_map(|(_, l)| w.cpu_us.get(*l))
                .sum::<f64>()
        })
    };
    let sources: Vec<String> = [single, cluster]
        .into_iter()
        .flatten()
        .map(|r| format!("{}: {}", title(r), when(r)))
        .collect();
    let mut md = format!("From `bench/results/` ({}).\n\n", sources.join("; "));
    let mut table = Table::new(&[
        "µs of CPU per checkout, traced, C=64",
        "single node",
        "cluster",
        "cluster / single",
    ]);
    let mut row = |name: &str, a: Option<f64>, b: Option<f64>| {
        let r = a.zip(b).and_then(|(a, b)| ratio(b, a));
        table.row(vec![name.to_owned(), opt(a, 0), opt(b, 0), opt(r, 1)]);
    };
    for (name, label) in components {
        row(name, cpu(s, label), cpu(k, label));
    }
    row("**total**", total(s), total(k));
    let raw = |run: Option<&Run>| {
        run.and_then(|r| r.raw_at(64))
            .and_then(|r| r.cpu_us.get("broker").copied())
    };
    row(
        "RabbitMQ alone (raw broker), per message",
        raw(single),
        raw(cluster),
    );
    md.push_str(&table.render());

    let mut cores = Table::new(&[
        "component (cluster)",
        "µs per checkout",
        "cores at 10k/s",
        "cores at 100k/s",
    ]);
    let named = components
        .iter()
        .map(|(n, l)| (*n, cpu(k, l)))
        .chain([("**total**", total(k))]);
    for (name, us) in named {
        cores.row(vec![
            name.to_owned(),
            opt(us, 0),
            opt(us.map(|u| u / 100.0), 1),
            opt(us.map(|u| u / 10.0), 0),
        ]);
    }

    let mut measured = Table::new(&["C=64, measured here", "single node", "cluster"]);
    let cell = |run: Option<&Run>, f: &dyn Fn(&Run) -> Option<f64>, show: fn(f64) -> String| {
        run.and_then(f).map_or_else(|| "–".to_owned(), show)
    };
    type Figure<'f> = &'f dyn Fn(&Run) -> Option<f64>;
    let rows: [(&str, Figure, fn(f64) -> String); 4] = [
        (
            "one quorum queue alone (raw broker), msgs/s",
            &|r| Some(r.raw_at(64)?.per_s),
            grouped,
        ),
        (
            "pipeline untraced, checkouts/s",
            &|r| Some(r.at("untraced", 64)?.bench.per_s),
            grouped,
        ),
        (
            "pipeline traced, checkouts/s",
            &|r| Some(r.at("traced", 64)?.bench.per_s),
            grouped,
        ),
        (
            "machine busy, traced",
            &|r| r.at("traced", 64)?.bench.machine_busy,
            |b| format!("{:.0} %", b * 100.0),
        ),
    ];
    for (name, f, show) in rows {
        measured.row(vec![
            name.to_owned(),
            cell(single, f, show),
            cell(cluster, f, show),
        ]);
    }
    vec![
        ("scaling-cpu", md),
        ("scaling-cores", cores.render()),
        ("scaling-measured", measured.render()),
    ]
}
