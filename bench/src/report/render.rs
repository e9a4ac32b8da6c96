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

use super::data::{Raw, Run, SERVICES, Window};
use super::table::{Table, all_but, dash, grouped, opt, percent};
use super::targets::targets_table;
use crate::postgres::BACKENDS;
use crate::stats::ratio;

/// The Go original of this pipeline, measured with wrk on another 2-core machine,
/// traced: (C, lowest and highest checkouts/s over its runs, median latency in ms where
/// given). The wrk windows here compare with these.
pub const GO_ORIGINAL_WRK_TRACED: [(usize, (f64, f64), Option<f64>); 3] = [
    (1, (969.0, 1_159.0), Some(0.8)),
    (16, (1_767.0, 2_685.0), None),
    (64, (2_243.0, 2_305.0), None),
];

/// Where every generated part ends; each starts at `<!-- bench render: NAME -->`.
const END: &str = "<!-- bench render: end -->";

/// `document` with what is between each part's markers replaced by the part.
pub fn splice(document: &str, parts: &[(&str, String)]) -> anyhow::Result<String> {
    let mut out = document.to_owned();
    for (name, text) in parts {
        let begin = format!("<!-- bench render: {name} -->");
        let start = out.find(&begin).with_context(|| format!("no `{begin}`"))? + begin.len();
        let end = start
            + out[start..]
                .find(END)
                .with_context(|| format!("no end of {name}"))?;
        out.replace_range(start..end, &format!("\n{}\n", text.trim_end()));
    }
    Ok(out)
}

/// A document as it is, and as rendered from the results.
#[derive(Debug)]
pub struct Rendered {
    /// Its path.
    pub path: PathBuf,
    /// Its text now.
    pub current: String,
    /// Its text with the generated parts rendered.
    pub rendered: String,
}

/// `BENCHMARKS.md` and `SCALING.md` in `docs`, rendered from the runs in `results`.
pub fn render_docs(results: &Path, docs: &Path) -> anyhow::Result<[Rendered; 2]> {
    let (single, cluster) = (
        Run::read(results, "single")?,
        Run::read(results, "cluster")?,
    );
    let (single, cluster) = (single.as_ref(), cluster.as_ref());
    let render = |name: &str, parts: Vec<(&str, String)>| {
        let path = docs.join(name);
        let current = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let rendered = splice(&current, &parts).with_context(|| path.display().to_string())?;
        anyhow::Ok(Rendered {
            path,
            current,
            rendered,
        })
    };
    let benchmarks = vec![
        ("headline", headline(single, cluster)),
        ("single", section(single, "scripts/bench")),
        (
            "cluster",
            section(cluster, "scripts/bench --topology cluster"),
        ),
        (
            "targets",
            targets_table(&[single, cluster].into_iter().flatten().collect::<Vec<_>>()),
        ),
    ];
    Ok([
        render("BENCHMARKS.md", benchmarks)?,
        render("SCALING.md", scaling(single, cluster))?,
    ])
}

/// When, with which commit, and what each figure is.
fn when(run: &Run) -> String {
    let (e, s) = (&run.environment, &run.settings);
    let runs = match s.repeat {
        0 | 1 => "one run".to_owned(),
        n => format!("the median of {n} runs"),
    };
    format!(
        "run {}, commit {}; {runs} of {} s",
        e.date, e.commit, s.duration_s
    )
}

/// What one run prints: its tables, its targets and its notes.
pub fn summary(run: &Run) -> String {
    format!("{}\n{}", topology_section(run), targets_table(&[run]))
}

fn section(run: Option<&Run>, command: &str) -> String {
    run.map_or_else(|| format!("Not run yet: `{command}`.\n"), topology_section)
}

/// The machine, the dates, and the headline figures: throughput with and without
/// tracing against the raw broker and the Go original, and at C=1 the pipeline's
/// latency above the broker's own publish + confirm measured in the same run.
fn headline(single: Option<&Run>, cluster: Option<&Run>) -> String {
    let Some(run) = single.or(cluster) else {
        return "Not run yet: `scripts/bench`.\n".to_owned();
    };
    let e = &run.environment;
    let mut md = format!(
        "**Machine**: {} CPUs, {}, {} RAM, Linux {}.",
        e.cpus, e.cpu, e.memory, e.kernel
    );
    for r in [single, cluster].into_iter().flatten() {
        let _ = write!(md, " **{}**: {}.", r.title(), when(r));
    }
    let _ = write!(
        md,
        "\n\n{}, accepted checkouts (raw: confirmed messages) per second:\n\n",
        run.title()
    );
    let mut table = Table::new(
        "C | raw broker | untraced | traced | traced / untraced | untraced / raw | traced, wrk \
         | Go original, traced, wrk",
    );
    for c in run.levels() {
        let raw = run.raw_at(c).map(|r| r.per_s);
        let per_s = |kind| run.at(kind, c).map(|p| p.bench.per_s);
        let (u, t) = (per_s("untraced"), per_s("traced"));
        let wrk = run
            .at("traced", c)
            .and_then(|p| p.wrk.as_ref())
            .map(|w| w.per_s);
        let go = GO_ORIGINAL_WRK_TRACED.iter().find(|g| g.0 == c);
        let go = go.map(|g| format!("{}–{}", grouped(g.1.0), grouped(g.1.1)));
        let rates = [raw, u, t].map(|v| v.map_or_else(dash, grouped));
        let mut row = vec![c.to_string()];
        row.extend(rates);
        row.push(opt(t.zip(u).and_then(|(t, u)| ratio(t, u)), 2));
        row.push(opt(u.zip(raw).and_then(|(u, r)| ratio(u, r)), 2));
        row.extend([wrk.map_or_else(dash, grouped), go.unwrap_or_else(dash)]);
        table.row(row);
    }
    md.push_str(&table.render());
    md.push_str("\nOne connection (C=1): latency, and the pipeline's above the broker's own ");
    md.push_str("publish + confirm in the same run:\n\n");
    let mut table = Table::new("C=1 | p50 ms | p99 ms | p50 above the broker | p99 above");
    let floor = run.raw_at(1);
    let above =
        |ms: f64, f: fn(&Raw) -> f64| floor.map_or_else(dash, |r| format!("{:+.2}", ms - f(r)));
    if let Some(r) = floor {
        let name = "raw broker: publish + confirm".to_owned();
        table.row(vec![
            name,
            opt(Some(r.p50_ms), 2),
            opt(Some(r.p99_ms), 2),
            dash(),
            dash(),
        ]);
    }
    for kind in KINDS {
        let Some(p) = run.at(kind, 1) else { continue };
        let wrk = p.wrk.iter().map(|w| (format!("pipeline, {kind}, wrk"), w));
        for (name, w) in std::iter::once((format!("pipeline, {kind}"), &p.bench)).chain(wrk) {
            let (p50, p99) = (opt(Some(w.p50_ms), 2), opt(Some(w.p99_ms), 2));
            table.row(vec![
                name,
                p50,
                p99,
                above(w.p50_ms, |r| r.p50_ms),
                above(w.p99_ms, |r| r.p99_ms),
            ]);
        }
    }
    if let Some((_, _, Some(p50))) = GO_ORIGINAL_WRK_TRACED.first() {
        let name = "Go original, traced, wrk".to_owned();
        table.row(vec![name, format!("{p50:.2}"), dash(), dash(), dash()]);
    }
    md + &table.render()
}

/// The pipeline's kinds, in the order shown.
const KINDS: [&str; 3] = ["untraced", "traced", "full"];

/// A raw run as a window, so it shares the tables' rows.
fn as_window(r: &Raw) -> Window {
    Window {
        per_s: r.per_s,
        p50_ms: r.p50_ms,
        p99_ms: r.p99_ms,
        max_ms: r.max_ms,
        unapplied: r.unconsumed,
        cpu_us: r.cpu_us.clone(),
        machine_busy: r.machine_busy,
        ..Window::default()
    }
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
        "{}: {}, after a {} s warmup; C = {}; {}; RabbitMQ {}{postgres}; `AMQP_PREFETCH={}`, \
         `OTEL_BSP_MAX_QUEUE_SIZE={}`, `OTEL_BSP_SCHEDULE_DELAY={}`, \
         `OTEL_BSP_MAX_EXPORT_BATCH_SIZE={}`; raw broker: {}.\n\n",
        run.title(),
        when(run),
        s.warmup_s,
        concurrency.join(", "),
        e.rustc,
        e.rabbitmq,
        s.prefetch,
        s.bsp_max_queue_size,
        s.bsp_schedule_delay_ms,
        s.bsp_max_export_batch_size,
        s.message,
    );
    // (run, C, window, dropped spans, peak RSS): raw runs, then each kind C by C, each
    // pipeline window followed by its wrk window.
    let mut lines: Vec<(String, usize, Window, Option<u64>, String)> = run
        .raw
        .iter()
        .map(|r| ("raw broker".to_owned(), r.c, as_window(r), None, dash()))
        .collect();
    for p in KINDS
        .iter()
        .flat_map(|k| run.levels().into_iter().filter_map(move |c| run.at(k, c)))
    {
        let rss: Vec<String> = SERVICES
            .iter()
            .map(|s| opt(p.rss_mb.get(*s).copied(), 1))
            .collect();
        lines.push((
            p.kind.clone(),
            p.c,
            p.bench.clone(),
            p.dropped_spans,
            rss.join(" / "),
        ));
        if let Some(w) = &p.wrk {
            lines.push((format!("{}, wrk", p.kind), p.c, w.clone(), None, dash()));
        }
    }
    let mut figures = Table::new(
        "run | C | per s | p50 ms | p99 ms | max ms | failed | applied | complete traces \
         | dropped spans",
    );
    let mut labels = vec!["gateway", "checkout-service", "stock-service", "broker"];
    if run
        .pipeline
        .iter()
        .any(|p| p.bench.cpu_us.contains_key(BACKENDS))
    {
        labels.push(BACKENDS);
    }
    let mut headers = vec!["µs CPU per checkout (raw: per message)", "C"];
    headers.extend(
        labels
            .iter()
            .map(|l| if *l == BACKENDS { "PostgreSQL" } else { l }),
    );
    headers.extend(["load generator", "machine busy", "peak RSS MB"]);
    let mut cpu = Table::new(&headers.join(" | "));
    let count = |n: Option<u64>| n.map_or_else(dash, |n| n.to_string());
    for (name, c, w, dropped, rss) in lines {
        let traces = w.traces_complete.zip(w.traces_expected);
        let mut row = vec![name.clone(), c.to_string(), grouped(w.per_s)];
        row.extend([Some(w.p50_ms), Some(w.p99_ms), w.max_ms].map(|ms| opt(ms, 2)));
        row.extend([count(w.failed), all_but(w.unapplied)]);
        row.push(traces.map_or_else(dash, |(done, of)| format!("{done} of {of}")));
        row.push(count(dropped));
        figures.row(row);
        let load = if name.ends_with("wrk") {
            "wrk"
        } else {
            "bench"
        };
        let mut row = vec![name, c.to_string()];
        row.extend(
            labels
                .iter()
                .chain([&load])
                .map(|l| opt(w.cpu_us.get(*l).copied(), 0)),
        );
        row.extend([w.machine_busy.map_or_else(dash, percent), rss]);
        cpu.row(row);
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

/// The parts of `SCALING.md`: CPU per checkout by component in both topologies, traced
/// at C=64; the cores the cluster's figures would take at 10k and 100k checkouts/s; the
/// rates measured.
fn scaling<'a>(single: Option<&'a Run>, cluster: Option<&'a Run>) -> Vec<(&'a str, String)> {
    let traced = |run: Option<&'a Run>| Some(&run?.at("traced", 64)?.bench);
    let (s, k) = (traced(single), traced(cluster));
    let components = [
        ("gateway", "gateway"),
        ("checkout-service", "checkout-service"),
        ("stock-service", "stock-service"),
        ("RabbitMQ", "broker"),
        ("PostgreSQL (server processes)", BACKENDS),
    ];
    let cpu = |w: Option<&Window>, label: &str| w?.cpu_us.get(label).copied();
    let total =
        |w: Option<&Window>| w.map(|w| components.iter().filter_map(|c| w.cpu_us.get(c.1)).sum());
    let sources: Vec<String> = [single, cluster]
        .into_iter()
        .flatten()
        .map(|r| format!("{}: {}", r.title(), when(r)))
        .collect();
    let mut md = format!("From `bench/results/` ({}).\n\n", sources.join("; "));
    let mut table = Table::new(
        "µs of CPU per checkout, traced, C=64 | single node | cluster | cluster / single",
    );
    let mut row = |name: &str, a: Option<f64>, b: Option<f64>| {
        let r = a.zip(b).and_then(|(a, b)| ratio(b, a));
        table.row(vec![name.to_owned(), opt(a, 0), opt(b, 0), opt(r, 1)]);
    };
    for (name, label) in components {
        row(name, cpu(s, label), cpu(k, label));
    }
    row("**total**", total(s), total(k));
    let raw = |run: Option<&Run>| run?.raw_at(64)?.cpu_us.get("broker").copied();
    row(
        "RabbitMQ alone (raw broker), per message",
        raw(single),
        raw(cluster),
    );
    md.push_str(&table.render());

    let mut cores =
        Table::new("component (cluster) | µs per checkout | cores at 10k/s | cores at 100k/s");
    let named = components
        .iter()
        .map(|(n, l)| (*n, cpu(k, l)))
        .chain([("**total**", total(k))]);
    for (name, us) in named {
        let at = |rate: f64, decimals| opt(us.map(|us| us * rate / 1e6), decimals);
        cores.row(vec![name.to_owned(), opt(us, 0), at(1e4, 1), at(1e5, 0)]);
    }

    let mut measured = Table::new("C=64, measured here | single node | cluster");
    let rate = |run: Option<&Run>, kind: &str| Some(run?.at(kind, 64)?.bench.per_s);
    let queue = |run: Option<&Run>| Some(run?.raw_at(64)?.per_s);
    let rows = [
        (
            "one quorum queue alone (raw broker), msgs/s",
            queue(single),
            queue(cluster),
        ),
        (
            "pipeline untraced, checkouts/s",
            rate(single, "untraced"),
            rate(cluster, "untraced"),
        ),
        (
            "pipeline traced, checkouts/s",
            rate(single, "traced"),
            rate(cluster, "traced"),
        ),
    ];
    for (name, a, b) in rows {
        measured.row(vec![
            name.to_owned(),
            a.map_or_else(dash, grouped),
            b.map_or_else(dash, grouped),
        ]);
    }
    let busy = |w: Option<&Window>| w.and_then(|w| w.machine_busy).map_or_else(dash, percent);
    measured.row(vec!["machine busy, traced".to_owned(), busy(s), busy(k)]);
    vec![
        ("scaling-cpu", md),
        ("scaling-cores", cores.render()),
        ("scaling-measured", measured.render()),
    ]
}
