//! Turning results into tables: the stdout summary and `BENCHMARKS.md`, the issue's
//! targets with a met/missed mark each, and the `## History` section that survives
//! rewrites.

use std::fmt::Write as _;
use std::time::Duration;

use utils::telemetry::BatchSettings;

use crate::broker::RawResult;
use crate::pipeline::{PipelineResult, Tracing};
use crate::stats;

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
    /// `getconf CLK_TCK`.
    pub clock_ticks: u64,
}

/// The benchmark's settings.
#[derive(Debug, Clone)]
pub struct Settings {
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
    }

    fn raw_at(&self, c: usize) -> Option<&RawResult> {
        self.raw.iter().find(|r| r.concurrency == c)
    }

    fn pipeline_at(&self, tracing: Tracing, c: usize) -> Option<&PipelineResult> {
        let runs = match tracing {
            Tracing::Off => &self.untraced,
            Tracing::On => &self.traced,
        };
        runs.iter().find(|r| r.concurrency == c)
    }

    fn pipelines(&self) -> impl Iterator<Item = &PipelineResult> {
        self.untraced.iter().chain(&self.traced)
    }
}

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text.
    Left,
    /// Numbers.
    Right,
}

/// A Markdown table whose columns are padded, so it reads as well in a terminal.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these columns: the first left-aligned, the others right-aligned.
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers
                .iter()
                .enumerate()
                .map(|(i, h)| {
                    let align = if i == 0 { Align::Left } else { Align::Right };
                    ((*h).to_owned(), align)
                })
                .collect(),
            rows: Vec::new(),
        }
    }

    /// Sets a column's alignment.
    pub fn align(mut self, column: usize, align: Align) -> Self {
        if let Some(header) = self.headers.get_mut(column) {
            header.1 = align;
        }
        self
    }

    /// Adds a row (missing cells are empty, extra ones dropped).
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The Markdown text, one line per row, ending with a newline.
    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let cell = |row: &Vec<String>, i: usize| row.get(i).cloned().unwrap_or_default();
        let widths: Vec<usize> = (0..columns)
            .map(|i| {
                self.rows
                    .iter()
                    .map(|row| cell(row, i).chars().count())
                    .chain([self.headers[i].0.chars().count(), 3])
                    .max()
                    .unwrap_or(3)
            })
            .collect();
        let line = |cells: Vec<String>| {
            let padded: Vec<String> = cells
                .iter()
                .zip(&widths)
                .zip(&self.headers)
                .map(|((text, &width), (_, align))| {
                    let pad = " ".repeat(width.saturating_sub(text.chars().count()));
                    match align {
                        Align::Left => format!("{text}{pad}"),
                        Align::Right => format!("{pad}{text}"),
                    }
                })
                .collect();
            format!("| {} |\n", padded.join(" | "))
        };
        let mut out = line(self.headers.iter().map(|(h, _)| h.clone()).collect());
        let rule: Vec<String> = widths
            .iter()
            .zip(&self.headers)
            .map(|(&width, (_, align))| match align {
                Align::Left => "-".repeat(width),
                Align::Right => format!("{}:", "-".repeat(width - 1)),
            })
            .collect();
        out.push_str(&format!("| {} |\n", rule.join(" | ")));
        for row in &self.rows {
            out.push_str(&line((0..columns).map(|i| cell(row, i)).collect()));
        }
        out
    }
}

fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1e3)
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}

fn cpu_of(cpu: &[(String, Duration)], label: &str) -> Option<Duration> {
    cpu.iter().find(|(l, _)| l == label).map(|(_, d)| *d)
}

fn cpu_per_k(cpu: &[(String, Duration)], label: &str, operations: u64) -> Option<f64> {
    cpu_of(cpu, label).and_then(|d| stats::cpu_per_thousand(d, operations))
}

fn mb(kb: u64) -> String {
    format!("{:.1}", kb as f64 / 1024.0)
}

fn percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

/// The raw-broker table.
pub fn raw_table(results: &Results) -> Table {
    let mut table = Table::new(&[
        "C",
        "msgs/s",
        "confirm p50 ms",
        "p99 ms",
        "max ms",
        "broker CPU s/1k msgs",
        "bench CPU s/1k",
        "machine busy",
        "other busy",
        "consumed",
    ]);
    for r in &results.raw {
        let consumed = if r.drained {
            "all".to_owned()
        } else {
            format!("{} of {}", r.consumed, r.confirmed_total)
        };
        let failed = if r.failed > 0 {
            format!(" ({} failed)", r.failed)
        } else {
            String::new()
        };
        table.row(vec![
            r.concurrency.to_string(),
            format!("{:.0}{failed}", r.throughput()),
            ms(r.latency.p50),
            ms(r.latency.p99),
            ms(r.latency.max),
            opt(cpu_per_k(&r.cpu, "broker", r.confirmed), 3),
            opt(cpu_per_k(&r.cpu, "bench", r.confirmed), 3),
            percent(r.machine_busy),
            percent(r.unaccounted_busy),
            consumed,
        ]);
    }
    table
}

/// A pipeline table (untraced or traced).
pub fn pipeline_table(runs: &[PipelineResult], traced: bool) -> Table {
    let mut headers = vec![
        "C",
        "req/s",
        "p50 ms",
        "p99 ms",
        "max ms",
        "failed",
        "applied",
        "drain s",
        "applied/s",
        "202→applied p50 ms",
        "202→applied p99 ms",
    ];
    if traced {
        headers.extend(["complete traces", "spans (≥6 each)", "dropped spans"]);
    }
    let mut table = Table::new(&headers);
    for r in runs {
        let latency = r.latency();
        let applied = if r.applied == r.accepted() {
            "all".to_owned()
        } else {
            format!("{} of {}", r.applied, r.accepted())
        };
        let mut row = vec![
            r.concurrency.to_string(),
            format!("{:.0}", r.throughput()),
            ms(latency.p50),
            ms(latency.p99),
            ms(latency.max),
            r.failed().to_string(),
            applied,
            format!("{:.1}", r.apply_wait.as_secs_f64()),
            format!("{:.0}", r.applied_rate()),
            opt(r.apply_latency.p50_ms, 0),
            opt(r.apply_latency.p99_ms, 0),
        ];
        if traced {
            match &r.traces {
                Some(t) => {
                    row.push(format!("{} of {}", t.check.complete, t.check.checked));
                    row.push(format!(
                        "{} of ≥{}",
                        t.spans_of_checkouts, t.spans_expected_min
                    ));
                }
                None => row.extend(["–".to_owned(), "–".to_owned()]),
            }
            let (dropped, exact) = r.dropped_spans();
            row.push(if exact {
                dropped.to_string()
            } else {
                format!("≥{dropped}")
            });
        }
        table.row(row);
    }
    table
}

/// CPU per 1,000 checkouts of each process, and peak RSS of each service.
pub fn resources_table(results: &Results) -> Table {
    let mut table = Table::new(&[
        "run",
        "C",
        "gateway",
        "checkout-service",
        "stock-service",
        "broker",
        "bench",
        "machine busy",
        "other busy",
        "RSS gateway MB",
        "RSS checkout MB",
        "RSS stock MB",
    ]);
    for r in results.pipelines() {
        let accepted = r.accepted();
        let mut row = vec![kind(r.tracing).to_owned(), r.concurrency.to_string()];
        for label in [
            "gateway",
            "checkout-service",
            "stock-service",
            "broker",
            "bench",
        ] {
            row.push(opt(cpu_per_k(&r.cpu, label, accepted), 3));
        }
        row.push(percent(r.machine_busy));
        row.push(percent(r.unaccounted_busy));
        for service in &r.services {
            row.push(mb(service.peak_rss_kb));
        }
        table.row(row);
    }
    table
}

fn kind(tracing: Tracing) -> &'static str {
    match tracing {
        Tracing::Off => "untraced",
        Tracing::On => "traced",
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

/// The three ratios per concurrency.
pub fn ratios_table(results: &Results) -> Table {
    let mut table = Table::new(&[
        "C",
        "untraced / raw throughput",
        "traced / untraced throughput",
        "traced p99 vs untraced p99",
        "services' CPU per checkout, traced vs untraced",
    ]);
    for c in levels(results) {
        let raw = results.raw_at(c);
        let untraced = results.pipeline_at(Tracing::Off, c);
        let traced = results.pipeline_at(Tracing::On, c);
        let pipeline_vs_raw = untraced
            .zip(raw)
            .and_then(|(u, r)| stats::ratio(u.throughput(), r.throughput()));
        let traced_vs_untraced = traced
            .zip(untraced)
            .and_then(|(t, u)| stats::ratio(t.throughput(), u.throughput()));
        let p99 = traced
            .zip(untraced)
            .and_then(|(t, u)| stats::percent_difference(t.latency().p99, u.latency().p99));
        table.row(vec![
            c.to_string(),
            opt(pipeline_vs_raw, 2),
            opt(traced_vs_untraced, 2),
            p99.map_or_else(|| "–".to_owned(), |p| format!("{p:+.1} %")),
            traced
                .zip(untraced)
                .and_then(|(t, u)| Some((services_cpu_us(t)?, services_cpu_us(u)?)))
                .map_or_else(
                    || "–".to_owned(),
                    |(t, u)| format!("{t:.0} vs {u:.0} µs ({:+.0} µs)", t - u),
                ),
        ]);
    }
    table
}

/// CPU the three services spent per accepted checkout, µs: what tracing costs the
/// pipeline itself, apart from the span sink and the broker.
fn services_cpu_us(run: &PipelineResult) -> Option<f64> {
    ["gateway", "checkout-service", "stock-service"]
        .iter()
        .map(|service| cpu_per_k(&run.cpu, service, run.accepted()))
        .sum::<Option<f64>>()
        .map(|seconds_per_1k| seconds_per_1k * 1000.0)
}

/// A target's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Met everywhere it was measured.
    Met,
    /// Missed somewhere.
    Missed,
    /// No run measured it.
    NotMeasured,
}

impl Verdict {
    fn mark(self) -> &'static str {
        match self {
            Self::Met => "✅ met",
            Self::Missed => "❌ missed",
            Self::NotMeasured => "– not measured",
        }
    }

    fn of(checks: &[bool]) -> Self {
        if checks.is_empty() {
            Self::NotMeasured
        } else if checks.iter().all(|ok| *ok) {
            Self::Met
        } else {
            Self::Missed
        }
    }
}

/// One of the issue's targets, evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// What the issue asks.
    pub goal: &'static str,
    /// The measured values it was judged on.
    pub measured: String,
    /// Met or missed.
    pub verdict: Verdict,
}

/// Limits of the issue's targets.
pub mod limits {
    /// Traced throughput at least this share of untraced, at every C.
    pub const TRACED_THROUGHPUT: f64 = 0.95;
    /// Traced p99 at most this much (percent) above untraced, at every C.
    pub const TRACED_P99_PERCENT: f64 = 10.0;
    /// Untraced pipeline throughput at least this share of the raw broker's…
    pub const PIPELINE_VS_RAW: f64 = 0.75;
    /// …at this concurrency.
    pub const PIPELINE_VS_RAW_AT: usize = 64;
    /// Peak RSS of each service below this, MB.
    pub const RSS_MB: f64 = 50.0;
    /// CPU per checkout of the gateway and of checkout-service below this, µs.
    pub const CPU_MICROS: f64 = 150.0;
    /// Not a target: above this share of the machine busy in unmeasured processes, a
    /// run is flagged as possibly disturbed.
    pub const UNACCOUNTED_BUSY: f64 = 0.10;
}

/// The issue's targets against the results.
pub fn targets(results: &Results) -> Vec<Target> {
    let mut out = Vec::new();
    let both: Vec<(usize, &PipelineResult, &PipelineResult)> = levels(results)
        .into_iter()
        .filter_map(|c| {
            Some((
                c,
                results.pipeline_at(Tracing::On, c)?,
                results.pipeline_at(Tracing::Off, c)?,
            ))
        })
        .collect();

    let ratios: Vec<(usize, Option<f64>)> = both
        .iter()
        .map(|(c, t, u)| (*c, stats::ratio(t.throughput(), u.throughput())))
        .collect();
    out.push(Target {
        goal: "traced / untraced throughput ≥ 0.95 at every C",
        measured: join(ratios.iter().map(|(c, r)| format!("C={c}: {}", opt(*r, 2)))),
        verdict: Verdict::of(
            &ratios
                .iter()
                .map(|(_, r)| r.is_some_and(|r| r >= limits::TRACED_THROUGHPUT))
                .collect::<Vec<_>>(),
        ),
    });

    let p99s: Vec<(usize, Option<f64>)> = both
        .iter()
        .map(|(c, t, u)| {
            (
                *c,
                stats::percent_difference(t.latency().p99, u.latency().p99),
            )
        })
        .collect();
    out.push(Target {
        goal: "traced p99 within 10 % of untraced p99 at every C",
        measured: join(p99s.iter().map(|(c, p)| {
            format!(
                "C={c}: {}",
                p.map_or_else(|| "–".to_owned(), |p| format!("{p:+.1} %"))
            )
        })),
        verdict: Verdict::of(
            &p99s
                .iter()
                .map(|(_, p)| p.is_some_and(|p| p <= limits::TRACED_P99_PERCENT))
                .collect::<Vec<_>>(),
        ),
    });

    let at = limits::PIPELINE_VS_RAW_AT;
    let pipeline_vs_raw = results
        .pipeline_at(Tracing::Off, at)
        .zip(results.raw_at(at))
        .and_then(|(u, r)| stats::ratio(u.throughput(), r.throughput()));
    out.push(Target {
        goal: "untraced pipeline / raw broker throughput ≥ 0.75 at C=64",
        measured: match pipeline_vs_raw {
            Some(r) => format!("{r:.2}"),
            None => "C=64 not run".to_owned(),
        },
        verdict: Verdict::of(
            &pipeline_vs_raw
                .map(|r| r >= limits::PIPELINE_VS_RAW)
                .into_iter()
                .collect::<Vec<_>>(),
        ),
    });

    let spans: Vec<(usize, bool, String)> = results
        .traced
        .iter()
        .map(|r| {
            let (dropped, exact) = r.dropped_spans();
            let (complete, checked) = r
                .traces
                .as_ref()
                .map_or((0, 0), |t| (t.check.complete, t.check.checked));
            let ok = dropped == 0 && complete == checked;
            let dropped = if exact {
                dropped.to_string()
            } else {
                format!("≥{dropped}")
            };
            (
                r.concurrency,
                ok,
                format!(
                    "C={}: {complete}/{checked} complete, {dropped} dropped",
                    r.concurrency
                ),
            )
        })
        .collect();
    out.push(Target {
        goal: "zero spans lost (every accepted checkout's trace complete, nothing dropped)",
        measured: join(spans.iter().map(|(_, _, text)| text.clone())),
        verdict: Verdict::of(&spans.iter().map(|(_, ok, _)| *ok).collect::<Vec<_>>()),
    });

    let mut rss = Vec::new();
    let mut rss_checks = Vec::new();
    for name in ["gateway", "checkout-service", "stock-service"] {
        let peak = results
            .pipelines()
            .flat_map(|r| &r.services)
            .filter(|s| s.name == name)
            .map(|s| s.peak_rss_kb)
            .max();
        if let Some(peak) = peak {
            rss.push(format!("{name} {} MB", mb(peak)));
            rss_checks.push((peak as f64 / 1024.0) < limits::RSS_MB);
        }
    }
    out.push(Target {
        goal: "each service < 50 MB peak RSS (worst run)",
        measured: join(rss.into_iter()),
        verdict: Verdict::of(&rss_checks),
    });

    let mut cpu = Vec::new();
    let mut cpu_checks = Vec::new();
    for name in ["gateway", "checkout-service"] {
        // Per C, the worse of the untraced and traced runs.
        let per_level: Vec<String> = levels(results)
            .into_iter()
            .filter_map(|c| {
                let worst = results
                    .pipelines()
                    .filter(|r| r.concurrency == c)
                    .filter_map(|r| cpu_per_k(&r.cpu, name, r.accepted()))
                    .map(|per_k| per_k * 1_000.0)
                    .max_by(f64::total_cmp)?;
                cpu_checks.push(worst < limits::CPU_MICROS);
                Some(format!("C={c} {worst:.0}"))
            })
            .collect();
        if !per_level.is_empty() {
            cpu.push(format!("{name} {} µs", per_level.join(", ")));
        }
    }
    out.push(Target {
        goal: "gateway and checkout-service < 150 µs CPU per checkout each (at every C, worse of untraced/traced)",
        measured: join(cpu.into_iter()),
        verdict: Verdict::of(&cpu_checks),
    });
    out
}

fn join(parts: impl Iterator<Item = String>) -> String {
    let parts: Vec<String> = parts.collect();
    if parts.is_empty() {
        "–".to_owned()
    } else {
        parts.join("; ")
    }
}

/// The targets as a table.
pub fn targets_table(targets: &[Target]) -> Table {
    let mut table = Table::new(&["target", "measured", "verdict"])
        .align(1, Align::Left)
        .align(2, Align::Left);
    for target in targets {
        table.row(vec![
            target.goal.to_owned(),
            target.measured.clone(),
            target.verdict.mark().to_owned(),
        ]);
    }
    table
}

/// Things worth a look: failed runs, failed requests, orders not applied, incomplete
/// or dropped spans, service warnings, services that had to be killed.
pub fn notes(results: &Results) -> Vec<String> {
    let mut notes: Vec<String> = results
        .failures
        .iter()
        .map(|f| format!("run failed: {f}"))
        .chain(results.spreads.iter().cloned())
        .collect();
    let disturbed = |run: &str, share: f64, notes: &mut Vec<String>| {
        if share > limits::UNACCOUNTED_BUSY {
            notes.push(format!(
                "{run}: {} of the machine's CPU went to processes not measured here: something \
                 else ran on the machine, so these figures may be disturbed",
                percent(share)
            ));
        }
    };
    for r in &results.raw {
        disturbed(
            &format!("raw C={}", r.concurrency),
            r.unaccounted_busy,
            &mut notes,
        );
        if r.failed > 0 {
            notes.push(format!(
                "raw C={}: {} publishes failed",
                r.concurrency, r.failed
            ));
        }
        if !r.drained {
            notes.push(format!(
                "raw C={}: the consumer got {} of {} messages within the drain timeout",
                r.concurrency, r.consumed, r.confirmed_total
            ));
        }
    }
    for r in results.pipelines() {
        let run = format!("{} C={}", kind(r.tracing), r.concurrency);
        disturbed(&run, r.unaccounted_busy, &mut notes);
        let non_2xx: Vec<String> = r
            .load
            .statuses
            .iter()
            .filter(|(status, _)| !(200..300).contains(*status))
            .map(|(status, n)| format!("{status} × {n}"))
            .chain(
                r.load
                    .transport_errors
                    .iter()
                    .map(|(e, n)| format!("{e} × {n}")),
            )
            .collect();
        if !non_2xx.is_empty() {
            notes.push(format!("{run}: failed requests: {}", non_2xx.join(", ")));
        }
        if r.applied < r.accepted() {
            notes.push(format!(
                "{run}: only {} of {} accepted orders applied within the wait",
                r.applied,
                r.accepted()
            ));
        } else if r.applied > r.accepted() {
            notes.push(format!(
                "{run}: {} orders applied beyond the {} accepted (requests that failed client-side after the broker took them)",
                r.applied - r.accepted(),
                r.accepted()
            ));
        }
        if r.apply_latency.found < r.apply_latency.sampled {
            notes.push(format!(
                "{run}: {} of {} sampled orders not found in stock-service",
                r.apply_latency.sampled - r.apply_latency.found,
                r.apply_latency.sampled
            ));
        }
        if r.tracing == Tracing::Off && r.spans_received > 0 {
            notes.push(format!(
                "{run}: {} spans received while untraced",
                r.spans_received
            ));
        }
        if let Some(t) = &r.traces
            && !t.check.all_complete()
        {
            notes.push(format!(
                "{run}: traces: {}",
                t.check.to_string().replace('\n', ";")
            ));
        }
        for s in &r.services {
            if !s.graceful {
                notes.push(format!(
                    "{run}: {} did not exit on SIGTERM in time and was killed",
                    s.name
                ));
            }
            if s.logs.warnings + s.logs.errors > 0 {
                let first = s.logs.problem_lines.first().cloned().unwrap_or_default();
                notes.push(format!(
                    "{run}: {} logged {} warnings and {} errors (OpenTelemetry: {}); first: `{}`",
                    s.name,
                    s.logs.warnings,
                    s.logs.errors,
                    s.logs.otel_problems,
                    first.chars().take(300).collect::<String>()
                ));
            }
        }
    }
    notes
}

/// What to print on stdout: the tables, the targets and the notes.
pub fn render_summary(results: &Results) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Raw broker (ceiling)\n{}", raw_table(results).render());
    let _ = writeln!(
        out,
        "Pipeline, untraced\n{}",
        pipeline_table(&results.untraced, false).render()
    );
    let _ = writeln!(
        out,
        "Pipeline, traced\n{}",
        pipeline_table(&results.traced, true).render()
    );
    let _ = writeln!(
        out,
        "CPU seconds per 1,000 checkouts, peak RSS\n{}",
        resources_table(results).render()
    );
    let _ = writeln!(out, "Ratios\n{}", ratios_table(results).render());
    let _ = writeln!(
        out,
        "Targets\n{}",
        targets_table(&targets(results)).render()
    );
    let notes = notes(results);
    if !notes.is_empty() {
        let _ = writeln!(out, "Notes");
        for note in notes {
            let _ = writeln!(out, "- {note}");
        }
    }
    out
}

fn duration_text(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}

/// `BENCHMARKS.md` without its history section.
pub fn render_markdown(
    env: &Environment,
    settings: &Settings,
    results: &Results,
    message_size: &str,
) -> String {
    let mut md = String::new();
    let concurrency: Vec<String> = settings
        .concurrency
        .iter()
        .map(ToString::to_string)
        .collect();
    let batch = &settings.batch;
    let _ = write!(
        md,
        "# Benchmarks\n\n\
         Issue 5's benchmark of the checkout pipeline: the broker alone, the pipeline untraced, \
         and the pipeline traced, on one machine in one run. Everything above `{HISTORY_HEADING}` \
         is rewritten by `scripts/bench`; the history section is kept.\n\n\
         ## Last run\n\n\
         - **Date**: {date}\n\
         - **Commit**: {commit}\n\
         - **Machine**: {nproc} CPUs, {cpu}, {memory} RAM, Linux {kernel}\n\
         - **Versions**: {rustc}; RabbitMQ {rabbitmq}\n\
         - **Settings**: {duration} measured per run after a {warmup} warmup; concurrency (closed loop) \
         {concurrency}; {repeat}; one unit of item 1 per checkout; `INITIAL_STOCK={stock}`\n\
         - **Services**: release binaries, one process each, on 127.0.0.1; `RUST_LOG={rust_log}` \
         (warn, plus the start-up module's info line carrying the bound address); SQLite in a \
         fresh temporary directory; their own exchange and quorum queue per run; \
         `AMQP_PREFETCH={prefetch}`\n\
         - **Batch span processor**: `OTEL_BSP_MAX_QUEUE_SIZE={queue}`, \
         `OTEL_BSP_SCHEDULE_DELAY={delay}` ms, `OTEL_BSP_MAX_EXPORT_BATCH_SIZE={batch_size}`; \
         OTLP/gRPC to an in-process sink that tallies spans per trace (`bench/src/tally.rs`)\n\
         - **Raw broker**: {message_size}; one confirm-mode channel shared by C publishers; \
         consumer on its own connection with prefetch {prefetch}, manual acks\n\
         - **CPU**: `/proc/<pid>/stat` utime+stime, `CLK_TCK`={clk}; broker = RabbitMQ's beam.smp \
         (found by {broker_pid})\n\n",
        date = env.date,
        commit = env.commit,
        nproc = env.nproc,
        cpu = env.cpu_model,
        memory = env.memory,
        kernel = env.kernel,
        rustc = env.rustc,
        rabbitmq = env.rabbitmq,
        duration = duration_text(settings.duration),
        warmup = duration_text(settings.warmup),
        concurrency = concurrency.join(", "),
        stock = settings.initial_stock,
        repeat = if settings.repeat > 1 {
            format!(
                "each run {} times, interleaved, the median shown",
                settings.repeat
            )
        } else {
            "each run once".to_owned()
        },
        rust_log = settings.rust_log,
        queue = batch.max_queue_size,
        delay = batch.scheduled_delay.as_millis(),
        batch_size = batch.max_export_batch_size,
        prefetch = settings.prefetch,
        clk = env.clock_ticks,
        broker_pid = env.broker_pid,
    );
    let _ = write!(
        md,
        "## Results\n\n\
         ### Raw broker (the ceiling)\n\n{}\n\
         ### Pipeline, untraced (`OTEL_TRACES_SAMPLER=always_off`)\n\n{}\n\
         ### Pipeline, traced (`OTEL_TRACES_SAMPLER=always_on`)\n\n{}\n\
         ### CPU seconds per 1,000 checkouts, and peak RSS\n\n{}\n\
         ### Ratios\n\n{}\n\
         ## Targets\n\n{}\n",
        raw_table(results).render(),
        pipeline_table(&results.untraced, false).render(),
        pipeline_table(&results.traced, true).render(),
        resources_table(results).render(),
        ratios_table(results).render(),
        targets_table(&targets(results)).render(),
    );
    let notes = notes(results);
    if !notes.is_empty() {
        md.push_str("### Notes\n\n");
        for note in notes {
            let _ = writeln!(md, "- {note}");
        }
        md.push('\n');
    }
    md.push_str(HOW_TO);
    md
}

const HOW_TO: &str = "## How to run\n\n\
```sh\n\
scripts/bench                                             # --duration 10s --concurrency 1,16,64 --repeat 3\n\
scripts/bench --duration 3s --concurrency 1,16 --repeat 1 # a quick check\n\
target/release/bench --help                               # every option (warmup, sample size, OTEL_BSP_*, …)\n\
```\n\n\
`scripts/bench` makes sure RabbitMQ runs, builds the release binaries \
(`cargo build --release --locked --bins`) and runs `target/release/bench`, which prints the \
tables and rewrites this file (`--output`, or `--no-write` to leave it alone). Nothing else \
should run on the machine meanwhile: the services, the broker and the load generator share its \
CPUs. It takes about (warmup + duration + ~6 s) × 3 kinds × the repeats, per concurrency \
level: ~8 minutes with the defaults.\n\n\
## How to read\n\n\
- **C** is the number of requests (raw: publishes) in flight: closed loop, each of C workers \
sends its next request when the previous one is answered. Figures cover the measured window \
only; the warmup is excluded.\n\
- **Raw broker** is RabbitMQ alone doing what the pipeline asks of it: persistent, confirmed, \
`mandatory` publishes of a `checkout.processed`-sized message through a durable topic exchange \
into a quorum queue, consumed and acked one by one. It is the ceiling the pipeline can approach. \
*confirm* latency is publish → `basic.ack`.\n\
- **req/s** counts accepted checkouts (202) per second; latencies are of all responses, \
from the moment the request was sent (HDR histogram, µs). **failed** is non-2xx plus transport \
errors. **applied** says whether stock-service applied every accepted order (stock of item 1 \
fell by exactly the number of 202s); **drain** is how long after the window that took: \
stock-service applies orders one batch at a time from a single consumer, so when it is slower \
than the gateway accepts them a backlog builds up in the queue and drains afterwards. \
**applied/s** is then the end-to-end rate: orders applied over window + drain — what the \
pipeline sustains, whereas req/s is how fast it *accepts* while the queue absorbs the \
difference.\n\
- **202→applied** is `processedAt` (stock-service's commit time, Unix ms) minus the time the \
202 reached the load generator, over an evenly spread sample of the accepted orders: 1 ms \
resolution, and it can be ≤ 0 because the consumer often commits before the 202 travels back \
through checkout-service and the gateway.\n\
- **CPU s/1k** is the CPU time (user + system, all threads) a process used over the window \
divided by the accepted checkouts, × 1,000: **0.150 s per 1,000 = 150 µs per checkout**. The \
window runs from the start of the measured load until every accepted order is applied and, when \
traced, every trace is complete, so downstream work and span export are included. *bench* is \
the load generator (and, when traced, the OTLP span sink) in this process; *machine busy* is \
the share of all CPUs busy over the window — near 100 % means the machine, not a service, is \
the limit — and *other busy* the part of it spent outside the measured processes (kernel \
threads, and anything else running): a few percent is normal, more than 10 % flags the run \
as disturbed in the notes. **RSS** is each service's peak resident set (VmHWM).\n\
- **Traces**: each request carries its own `traceparent`, so the accepted checkouts' trace ids \
are known; a trace is complete when it has the six spans of README's table (at least six \
spans, stock-service's database spans being one or more). **dropped spans** is the total the \
OpenTelemetry SDK's batch span processor logs at shutdown (`dropped_span_count` of its \
`BatchSpanProcessor.SpansDropped` warning, found in the services' JSON logs after SIGTERM; \
`≥1` if only its first-drop warning appeared); 0 when neither was logged.\n\
- **Ratios**: *untraced / raw* is how close the pipeline gets to the broker's ceiling; \
*traced / untraced* and the p99 difference are the cost of tracing; the last column is that \
cost in the services alone (their CPU per checkout), without the span sink and the broker, which \
share the same CPUs.\n\
- **Noise**: on a small machine one run of each is noisy (the services, the broker and the \
load generator compete for the same CPUs, and the queue backlog changes how they share them), \
so a ratio near its limit can flip between runs. `--repeat N` runs every (kind, C) N times, \
interleaved, shows the run of median throughput and lists the spread in the notes.\n\n";

/// The `## History` section of an existing `BENCHMARKS.md` (from its heading to the end),
/// or a fresh one.
pub fn history_of(existing: Option<&str>) -> String {
    let found = existing.and_then(|text| {
        let mut offset = 0;
        for line in text.split_inclusive('\n') {
            if line.trim_end() == HISTORY_HEADING {
                return Some(text[offset..].to_owned());
            }
            offset += line.len();
        }
        None
    });
    match found {
        Some(history) if history.ends_with('\n') => history,
        Some(history) => history + "\n",
        None => format!(
            "{HISTORY_HEADING}\n\n\
             Before/after records of optimisations, newest first. `bench` keeps everything from \
             this heading to the end of the file when it rewrites BENCHMARKS.md.\n"
        ),
    }
}

/// The whole file: the generated part, then the history (kept as it was).
pub fn compose(generated: &str, existing: Option<&str>) -> String {
    let mut out = generated.trim_end().to_owned();
    out.push_str("\n\n");
    out.push_str(&history_of(existing));
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use checkout_cli::load::{LatencySummary, LoadMode, LoadReport};
    use checkout_cli::verify::TraceCheck;

    use super::*;
    use crate::pipeline::{ApplyLatency, ServiceFigures, TraceFigures};
    use crate::services::LogSummary;
    use crate::stats::Latency;

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
        let old = "# Benchmarks\n\nold figures\n\n## History\n\n- 2024: 800 req/s → 1200 req/s\n";
        let new = compose("# Benchmarks\n\nnew figures\n", Some(old));
        assert_eq!(
            new,
            "# Benchmarks\n\nnew figures\n\n## History\n\n- 2024: 800 req/s → 1200 req/s\n"
        );
        // Rewriting again changes nothing in the history.
        assert_eq!(compose("# Benchmarks\n\nnew figures\n", Some(&new)), new);
        // A "## History" inside a line does not count; without one, a fresh section.
        let fresh = compose("# B\n", Some("text ## History\n"));
        assert!(fresh.starts_with("# B\n\n## History\n\n"), "{fresh}");
        assert!(compose("# B\n", None).contains("## History\n"));
        // History at the very end without a trailing newline.
        assert_eq!(history_of(Some("x\n## History")), "## History\n");
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_767_225_599), "2025-12-31 23:59 UTC");
    }

    fn load(accepted: usize, seconds: u64, p99_ms: u64) -> LoadReport {
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
        }
    }

    fn pipeline(tracing: Tracing, c: usize, accepted: usize, p99_ms: u64) -> PipelineResult {
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
        }
    }

    fn raw(c: usize, confirmed: u64) -> RawResult {
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
        }
    }

    #[test]
    fn targets_are_judged_against_the_issue() {
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
                Verdict::Missed, // 0.90 < 0.95 at C=64
                Verdict::Missed, // +50 % at C=64
                Verdict::Met,    // 0.80 ≥ 0.75
                Verdict::Met,    // all complete, none dropped
                Verdict::Missed, // stock-service 60 MB
                Verdict::Met,    // gateway 1 s / 9,700 = 103 µs worst
            ]
        );
        assert_eq!(targets[0].measured, "C=1: 0.97; C=64: 0.90");
        assert_eq!(targets[1].measured, "C=1: +0.0 %; C=64: +50.0 %");
        assert_eq!(targets[2].measured, "0.80");
        assert!(
            targets[5].measured
                == "gateway C=1 103, C=64 35 µs; checkout-service C=1 52, C=64 17 µs",
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

        let markdown = render_markdown(
            &Environment::default(),
            &Settings {
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
        assert!(markdown.contains("## Targets"));
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
}
