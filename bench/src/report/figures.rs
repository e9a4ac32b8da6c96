//! The figures a topology's run leaves for the other's: a compact summary of its
//! results ([`Figures`]) written into its part of `BENCHMARKS.md` as one HTML comment
//! (invisible when rendered), and the table that compares the latest run of each
//! topology from those summaries ([`replication_table`]).
//!
//! Why in the file: a run measures one topology, but the comparison needs both, and
//! the latest figures of the other topology are those its part of the file shows. Kept
//! next to them, they cannot disagree with the tables, and each run rewrites only its
//! own, so the comparison is always between the two parts the file shows.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::tables::{Table, cpu_per_k};
use super::{Environment, Results, Settings, kind};
use crate::postgres;

/// What starts the comment line that holds a part's [`Figures`].
const MARKER: &str = "<!-- bench-figures ";

/// A topology's run, in short.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// `single` or `cluster`.
    pub topology: String,
    /// When it ran.
    pub date: String,
    /// Which commit.
    pub commit: String,
    /// Measured window per run, seconds.
    pub duration_s: f64,
    /// Runs of each (kind, C), the median shown.
    pub repeat: usize,
    /// Raw broker runs.
    pub raw: Vec<RawFigures>,
    /// Pipeline runs.
    pub pipeline: Vec<PipelineFigures>,
}

/// One raw-broker run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawFigures {
    /// Publishes in flight.
    pub c: usize,
    /// Confirmed messages per second.
    pub per_s: f64,
    /// Publish → confirm, ms.
    pub p50_ms: f64,
    /// Publish → confirm, ms.
    pub p99_ms: f64,
    /// The broker's CPU per message, µs (all its nodes).
    pub broker_us: Option<f64>,
}

/// One pipeline run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineFigures {
    /// `untraced` or `traced`.
    pub kind: String,
    /// Requests in flight.
    pub c: usize,
    /// Accepted checkouts per second.
    pub per_s: f64,
    /// Response latency, ms.
    pub p50_ms: f64,
    /// Response latency, ms.
    pub p99_ms: f64,
    /// CPU per accepted checkout, µs, by process label (summed over replicas and nodes).
    pub cpu_us: BTreeMap<String, f64>,
    /// The run's wrk window (absent in files written before wrk was added, and with
    /// `--no-wrk`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrk: Option<WrkRunFigures>,
}

/// One pipeline run's wrk window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WrkRunFigures {
    /// Accepted checkouts per second.
    pub per_s: f64,
    /// Response latency, ms.
    pub p50_ms: f64,
    /// Response latency, ms.
    pub p99_ms: f64,
    /// CPU per accepted checkout, µs, by process label, as [`PipelineFigures::cpu_us`].
    pub cpu_us: BTreeMap<String, f64>,
}

/// The components whose CPU is summarised, as labelled in the measurements.
const LABELS: [&str; 7] = [
    "gateway",
    "checkout-service",
    "stock-service",
    "broker",
    "bench",
    postgres::BACKENDS,
    postgres::REST,
];

/// The three services, whose CPU per checkout is compared as one figure.
const SERVICES: [&str; 3] = ["gateway", "checkout-service", "stock-service"];

impl Figures {
    /// The summary of `results`.
    pub fn of(env: &Environment, settings: &Settings, results: &Results) -> Self {
        let micros = |per_k: Option<f64>| per_k.map(|seconds_per_1k| seconds_per_1k * 1_000.0);
        Self {
            topology: settings.topology.name().to_owned(),
            date: env.date.clone(),
            commit: env.commit.clone(),
            duration_s: settings.duration.as_secs_f64(),
            repeat: settings.repeat,
            raw: results
                .raw
                .iter()
                .map(|r| RawFigures {
                    c: r.concurrency,
                    per_s: r.throughput(),
                    p50_ms: r.latency.p50.as_secs_f64() * 1e3,
                    p99_ms: r.latency.p99.as_secs_f64() * 1e3,
                    broker_us: micros(cpu_per_k(&r.cpu, "broker", r.confirmed)),
                })
                .collect(),
            pipeline: results
                .pipelines()
                .map(|r| PipelineFigures {
                    kind: kind(r.tracing).to_owned(),
                    c: r.concurrency,
                    per_s: r.throughput(),
                    p50_ms: r.latency().p50.as_secs_f64() * 1e3,
                    p99_ms: r.latency().p99.as_secs_f64() * 1e3,
                    cpu_us: cpu_us(&r.cpu, r.accepted()),
                    wrk: r.wrk.as_ref().map(|w| WrkRunFigures {
                        per_s: w.throughput(),
                        p50_ms: w.report.latency.p50.as_secs_f64() * 1e3,
                        p99_ms: w.report.latency.p99.as_secs_f64() * 1e3,
                        cpu_us: cpu_us(&w.cpu, w.accepted()),
                    }),
                })
                .collect(),
        }
    }

    /// The comment line that carries these figures.
    pub fn to_comment(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        // `--` may not appear inside an HTML comment; JSON of these figures has none,
        // but a commit or date text could.
        format!("{MARKER}{} -->\n", json.replace("--", "-\\u002d"))
    }

    /// The figures in a part of `BENCHMARKS.md`, if it has a readable comment line.
    pub fn find_in(text: &str) -> Option<Self> {
        text.lines().find_map(|line| {
            let json = line.trim().strip_prefix(MARKER)?.strip_suffix("-->")?;
            serde_json::from_str(json.trim()).ok()
        })
    }
}

/// CPU per operation, µs, of each of [`LABELS`] measured in a window.
fn cpu_us(cpu: &[(String, Duration)], operations: u64) -> BTreeMap<String, f64> {
    LABELS
        .iter()
        .filter_map(|label| {
            let us = cpu_per_k(cpu, label, operations)? * 1_000.0;
            Some(((*label).to_owned(), us))
        })
        .collect()
}

/// The three services' CPU per checkout together, µs.
fn services_us(cpu_us: &BTreeMap<String, f64>) -> Option<f64> {
    SERVICES.iter().map(|s| cpu_us.get(*s).copied()).sum()
}

/// `before → after` with the ratio, e.g. `3922 → 2104 (×0.54)`.
fn change(before: f64, after: f64, decimals: usize) -> String {
    let ratio = if before != 0.0 {
        format!(" (×{:.2})", after / before)
    } else {
        String::new()
    };
    format!("{before:.decimals$} → {after:.decimals$}{ratio}")
}

/// `before → after` of optional figures (`–` for a missing one, no ratio then).
fn change_opt(before: Option<f64>, after: Option<f64>, decimals: usize) -> String {
    match (before, after) {
        (Some(b), Some(a)) => change(b, a, decimals),
        _ => {
            let show =
                |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"));
            format!("{} → {}", show(before), show(after))
        }
    }
}

/// The `## What replication costs per checkout` section from the latest figures of
/// each topology (either may be missing).
pub fn replication_section(single: Option<&Figures>, cluster: Option<&Figures>) -> String {
    let mut md = String::from("## What replication costs per checkout\n\n");
    let (Some(single), Some(cluster)) = (single, cluster) else {
        let missing = match (single, cluster) {
            (None, None) => "either topology",
            (None, Some(_)) => "the single node (`scripts/bench`)",
            _ => "the cluster (`scripts/bench --topology cluster`)",
        };
        md.push_str(&format!(
            "Cluster against single node, from the latest run of each: no run of {missing} \
             yet.\n"
        ));
        return md;
    };
    let settings = |f: &Figures| {
        let runs = if f.repeat > 1 {
            format!("median of {}", f.repeat)
        } else {
            "one run each".to_owned()
        };
        format!("{} s per run, {runs}", f.duration_s)
    };
    md.push_str(&format!(
        "Cluster (3 RabbitMQ nodes, every queue on all three, two processes per service, \
         PostgreSQL) against single node (one RabbitMQ node, one process per service, \
         SQLite), from the latest run of each: single node {} ({}; {}), cluster {} ({}; {}). \
         Each cell is single → cluster (× the ratio). CPU is µs per accepted checkout \
         (raw: per confirmed message), each component summed over its processes and the \
         broker over its nodes; *services* are the gateway, checkout-service and \
         stock-service together, so on the single node they include SQLite (in \
         stock-service's process), whereas the cluster's PostgreSQL is the next column \
         (the backends serving the run's database). Rows `…, wrk` compare the runs' wrk \
         windows, where both topologies had them.\n\n",
        single.date,
        single.commit,
        settings(single),
        cluster.date,
        cluster.commit,
        settings(cluster),
    ));
    md.push_str(&replication_table(single, cluster).render());
    md
}

/// One row per run kind and C measured in both topologies.
pub fn replication_table(single: &Figures, cluster: &Figures) -> Table {
    let mut table = Table::new(&[
        "run",
        "C",
        "throughput /s",
        "p50 ms",
        "p99 ms",
        "broker CPU µs",
        "services' CPU µs",
        "PostgreSQL CPU µs",
    ]);
    for s in &single.raw {
        let Some(c) = cluster.raw.iter().find(|c| c.c == s.c) else {
            continue;
        };
        table.row(vec![
            "raw".to_owned(),
            s.c.to_string(),
            change(s.per_s, c.per_s, 0),
            change(s.p50_ms, c.p50_ms, 2),
            change(s.p99_ms, c.p99_ms, 2),
            change_opt(s.broker_us, c.broker_us, 0),
            "–".to_owned(),
            "–".to_owned(),
        ]);
    }
    // The built-in load's windows, then wrk's where both topologies have them.
    let pairs: Vec<(&PipelineFigures, &PipelineFigures)> = single
        .pipeline
        .iter()
        .filter_map(|s| {
            let c = cluster
                .pipeline
                .iter()
                .find(|c| c.kind == s.kind && c.c == s.c)?;
            Some((s, c))
        })
        .collect();
    for &(s, c) in &pairs {
        pipeline_row(&mut table, s.kind.clone(), s.c, s.into(), c.into());
    }
    for &(s, c) in &pairs {
        if let (Some(s_wrk), Some(c_wrk)) = (&s.wrk, &c.wrk) {
            let run = format!("{}, wrk", s.kind);
            pipeline_row(&mut table, run, s.c, s_wrk.into(), c_wrk.into());
        }
    }
    table
}

/// The figures of one load window, whichever load generator's.
struct Window<'a> {
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_us: &'a BTreeMap<String, f64>,
}

impl<'a> From<&'a PipelineFigures> for Window<'a> {
    fn from(f: &'a PipelineFigures) -> Self {
        Self {
            per_s: f.per_s,
            p50_ms: f.p50_ms,
            p99_ms: f.p99_ms,
            cpu_us: &f.cpu_us,
        }
    }
}

impl<'a> From<&'a WrkRunFigures> for Window<'a> {
    fn from(f: &'a WrkRunFigures) -> Self {
        Self {
            per_s: f.per_s,
            p50_ms: f.p50_ms,
            p99_ms: f.p99_ms,
            cpu_us: &f.cpu_us,
        }
    }
}

fn pipeline_row(table: &mut Table, run: String, c: usize, s: Window<'_>, k: Window<'_>) {
    let cpu = |w: &Window<'_>, label: &str| w.cpu_us.get(label).copied();
    table.row(vec![
        run,
        c.to_string(),
        change(s.per_s, k.per_s, 0),
        change(s.p50_ms, k.p50_ms, 2),
        change(s.p99_ms, k.p99_ms, 2),
        change_opt(cpu(&s, "broker"), cpu(&k, "broker"), 0),
        change_opt(services_us(s.cpu_us), services_us(k.cpu_us), 0),
        change_opt(cpu(&s, postgres::BACKENDS), cpu(&k, postgres::BACKENDS), 0),
    ]);
}
