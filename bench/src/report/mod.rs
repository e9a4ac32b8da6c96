//! Turning results into tables: the stdout summary and `BENCHMARKS.md`, the targets
//! with a met/missed mark each, the comparison of the two topologies, and the
//! `## History` section that survives rewrites.
//!
//! This module holds what a benchmark run hands over (its [`Environment`], [`Settings`]
//! and [`Results`]) and the entry points, [`render_summary`] for stdout, and
//! [`render_section`] and [`compose`] for `BENCHMARKS.md`; the tables, the two load
//! generators side by side, the targets, the notes, the figures kept for the
//! comparison and the Markdown file are each in a submodule of their own.

use std::fmt::Write as _;
use std::time::Duration;

use telemetry::BatchSettings;

use crate::broker::RawResult;
use crate::pipeline::{PipelineResult, Tracing};
use crate::topology::Topology;

mod figures;
mod generators;
#[cfg(test)]
mod generators_tests;
mod markdown;
mod notes;
mod tables;
mod targets;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod topology_tests;

pub use figures::{
    Figures, PipelineFigures, RawFigures, WrkRunFigures, replication_section, replication_table,
};
pub use generators::{
    GO_ORIGINAL_WRK_TRACED, GoFigures, generators_lines, generators_table, has_wrk, wrk_notes,
};
pub use markdown::{compose, history_of, part_of, render_section};
pub use notes::notes;
pub use tables::{Align, Table, pipeline_table, ratios_table, raw_table, resources_table};
pub use targets::{Target, Verdict, limits, targets, targets_table};

/// The heading from which `BENCHMARKS.md` is kept as is.
pub const HISTORY_HEADING: &str = "## History";

/// Where and with what the benchmark ran.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `YYYY-MM-DD HH:MM UTC`.
    pub date: String,
    /// `git rev-parse --short HEAD`, with `(dirty)` if the tree had changes.
    pub commit: String,
    /// CPUs.
    pub nproc: usize,
    /// From /proc/cpuinfo.
    pub cpu_model: String,
    /// MemTotal, human readable.
    pub memory: String,
    /// `uname -r`.
    pub kernel: String,
    /// `rustc --version`.
    pub rustc: String,
    /// `rabbitmqctl version`.
    pub rabbitmq: String,
    /// How the broker's pid was found.
    pub broker_pid: String,
    /// PostgreSQL's `server_version` (empty without PostgreSQL).
    pub postgres: String,
    /// `getconf CLK_TCK`.
    pub clock_ticks: u64,
}

/// The benchmark's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// What the runs ran against.
    pub topology: Topology,
    /// Measured window per run.
    pub duration: Duration,
    /// Unmeasured lead-in per run.
    pub warmup: Duration,
    /// Concurrency levels.
    pub concurrency: Vec<usize>,
    /// The services' `RUST_LOG`.
    pub rust_log: String,
    /// `OTEL_BSP_*`.
    pub batch: BatchSettings,
    /// `INITIAL_STOCK`.
    pub initial_stock: u64,
    /// Raw consumer prefetch.
    pub prefetch: u16,
    /// Orders sampled for 202 → applied.
    pub apply_sample: usize,
    /// Runs of each (kind, C).
    pub repeat: usize,
}

/// Everything one benchmark produced.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Raw broker runs, by concurrency.
    pub raw: Vec<RawResult>,
    /// Untraced pipeline runs.
    pub untraced: Vec<PipelineResult>,
    /// Traced pipeline runs.
    pub traced: Vec<PipelineResult>,
    /// Traced runs exporting metrics and log records too.
    pub full: Vec<PipelineResult>,
    /// Runs that failed, with their error.
    pub failures: Vec<String>,
    /// With repeated runs: the spread of each (kind, C) whose median run is shown.
    pub spreads: Vec<String>,
}

impl Results {
    /// With several runs of the same kind and C (`--repeat`), keeps the one of median
    /// throughput (the lower middle one for an even count) and records the spread.
    pub fn keep_medians(&mut self) {
        fn median_of<T: Clone>(
            runs: &mut Vec<T>,
            key: impl Fn(&T) -> usize,
            throughput: impl Fn(&T) -> f64,
            label: &str,
            unit: &str,
            spreads: &mut Vec<String>,
        ) {
            let mut levels: Vec<usize> = runs.iter().map(&key).collect();
            levels.sort_unstable();
            levels.dedup();
            let mut kept = Vec::new();
            for c in levels {
                let mut group: Vec<T> = runs.iter().filter(|r| key(r) == c).cloned().collect();
                group.sort_by(|a, b| throughput(a).total_cmp(&throughput(b)));
                if group.len() > 1 {
                    let all: Vec<String> = group
                        .iter()
                        .map(|r| format!("{:.0}", throughput(r)))
                        .collect();
                    spreads.push(format!(
                        "{label} C={c}: {} runs, {} {unit} (median shown)",
                        group.len(),
                        all.join(" / ")
                    ));
                }
                kept.push(group.swap_remove((group.len() - 1) / 2));
            }
            *runs = kept;
        }
        let spreads = &mut self.spreads;
        median_of(
            &mut self.raw,
            |r| r.concurrency,
            RawResult::throughput,
            "raw",
            "msgs/s",
            spreads,
        );
        median_of(
            &mut self.untraced,
            |r| r.concurrency,
            PipelineResult::throughput,
            "untraced",
            "req/s",
            spreads,
        );
        median_of(
            &mut self.traced,
            |r| r.concurrency,
            PipelineResult::throughput,
            "traced",
            "req/s",
            spreads,
        );
        median_of(
            &mut self.full,
            |r| r.concurrency,
            PipelineResult::throughput,
            "full",
            "req/s",
            spreads,
        );
    }

    fn raw_at(&self, c: usize) -> Option<&RawResult> {
        self.raw.iter().find(|r| r.concurrency == c)
    }

    fn pipeline_at(&self, tracing: Tracing, c: usize) -> Option<&PipelineResult> {
        let runs = match tracing {
            Tracing::Off => &self.untraced,
            Tracing::On => &self.traced,
            Tracing::Full => &self.full,
        };
        runs.iter().find(|r| r.concurrency == c)
    }

    fn pipelines(&self) -> impl Iterator<Item = &PipelineResult> {
        self.untraced.iter().chain(&self.traced).chain(&self.full)
    }
}

fn kind(tracing: Tracing) -> &'static str {
    match tracing {
        Tracing::Off => "untraced",
        Tracing::On => "traced",
        Tracing::Full => "full",
    }
}

/// Concurrency levels present in any run, ascending.
fn levels(results: &Results) -> Vec<usize> {
    let mut levels: Vec<usize> = results
        .raw
        .iter()
        .map(|r| r.concurrency)
        .chain(results.pipelines().map(|r| r.concurrency))
        .collect();
    levels.sort_unstable();
    levels.dedup();
    levels
}

/// What to print on stdout: the tables, the targets and the notes, headed with the
/// topology.
pub fn render_summary(settings: &Settings, results: &Results) -> String {
    let mut out = String::new();
    let topology = settings.topology.title();
    // Each table with the lines printed under it.
    let mut tables = vec![
        ("Raw broker (ceiling)", raw_table(results), Vec::new()),
        (
            "Pipeline, untraced",
            pipeline_table(&results.untraced, false),
            Vec::new(),
        ),
        (
            "Pipeline, traced",
            pipeline_table(&results.traced, true),
            Vec::new(),
        ),
    ];
    if !results.full.is_empty() {
        tables.push((
            "Pipeline, traced + metrics + logs",
            pipeline_table(&results.full, true),
            Vec::new(),
        ));
    }
    tables.extend([
        (
            "CPU seconds per 1,000 checkouts, peak RSS",
            resources_table(results),
            Vec::new(),
        ),
        ("Ratios", ratios_table(results), Vec::new()),
    ]);
    if has_wrk(results) {
        tables.push((
            "Load generators side by side",
            generators_table(results),
            generators_lines(results),
        ));
    }
    tables.push(("Targets", targets_table(&targets(results)), Vec::new()));
    for (title, table, lines) in tables {
        let _ = writeln!(out, "{topology}: {title}\n{}", table.render());
        for line in lines {
            let _ = writeln!(out, "{line}\n");
        }
    }
    let notes = notes(results);
    if !notes.is_empty() {
        let _ = writeln!(out, "{topology}: notes");
        for note in notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    out
}

/// `YYYY-MM-DD HH:MM UTC` for seconds since the Unix epoch.
pub fn utc_date(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let seconds = unix_seconds % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        seconds / 3_600,
        seconds % 3_600 / 60
    )
}
