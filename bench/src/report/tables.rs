//! The tables of the report: a padded Markdown [`Table`], the raw-broker, pipeline,
//! resources and ratios tables built from the [`Results`], and the formatting of their
//! cells (shared with the targets and the notes).

use std::time::Duration;

use super::{Results, kind, levels};
use crate::pipeline::{PipelineResult, Tracing};
use crate::{postgres, stats};

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

pub(super) fn ms(duration: Duration) -> String {
    format!("{:.2}", duration.as_secs_f64() * 1e3)
}

/// `value` with `decimals` decimals, `–` when missing; a value that rounds to zero is
/// `0`, never `-0`.
pub(super) fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(
        || "–".to_owned(),
        |v| {
            let text = format!("{v:.decimals$}");
            match text.strip_prefix('-') {
                Some(digits) if digits.chars().all(|c| c == '0' || c == '.') => digits.to_owned(),
                _ => text,
            }
        },
    )
}

/// CPU time under `label`: the sum over every process of that label (the replicas of a
/// service, the nodes of a cluster); `None` if none was measured.
pub(super) fn cpu_of(cpu: &[(String, Duration)], label: &str) -> Option<Duration> {
    let mut matching = cpu
        .iter()
        .filter(|(l, _)| l == label)
        .map(|(_, d)| *d)
        .peekable();
    matching.peek()?;
    Some(matching.sum())
}

pub(super) fn cpu_per_k(cpu: &[(String, Duration)], label: &str, operations: u64) -> Option<f64> {
    cpu_of(cpu, label).and_then(|d| stats::cpu_per_thousand(d, operations))
}

pub(super) fn mb(kb: u64) -> String {
    format!("{:.1}", kb as f64 / 1024.0)
}

pub(super) fn percent(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

/// The raw-broker table; with a column of the nodes the queue was on when that was
/// asked (a cluster).
pub fn raw_table(results: &Results) -> Table {
    let clustered = results.raw.iter().any(|r| r.queue_members.is_some());
    let mut headers = vec![
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
    ];
    if clustered {
        headers.push("queue on");
    }
    let mut table = Table::new(&headers);
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
            r.queue_members
                .map_or_else(|| "?".to_owned(), |n| format!("{n} nodes")),
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

/// CPU per 1,000 checkouts of each component (summed over its processes), and the
/// peak RSS of each service (the worst of its processes); PostgreSQL's columns when it
/// was measured (a cluster).
pub fn resources_table(results: &Results) -> Table {
    let with_postgres = results
        .pipelines()
        .any(|r| cpu_of(&r.cpu, postgres::BACKENDS).is_some());
    let mut labels = vec!["gateway", "checkout-service", "stock-service", "broker"];
    let mut headers = vec!["run", "C"];
    headers.extend(&labels);
    if with_postgres {
        labels.extend([postgres::BACKENDS, postgres::REST]);
        headers.extend(["PostgreSQL", "PG rest"]);
    }
    labels.push("bench");
    headers.extend(["bench", "machine busy", "other busy"]);
    headers.extend(RSS_COLUMNS.iter().map(|(_, header)| *header));
    let mut table = Table::new(&headers);
    for r in results.pipelines() {
        let accepted = r.accepted();
        let mut row = vec![kind(r.tracing).to_owned(), r.concurrency.to_string()];
        for label in &labels {
            row.push(opt(cpu_per_k(&r.cpu, label, accepted), 3));
        }
        row.push(percent(r.machine_busy));
        row.push(percent(r.unaccounted_busy));
        for (name, _) in RSS_COLUMNS {
            let worst = r
                .services
                .iter()
                .filter(|s| s.name == name)
                .map(|s| s.peak_rss_kb)
                .max();
            row.push(worst.map_or_else(|| "–".to_owned(), mb));
        }
        table.row(row);
    }
    table
}

/// The services whose peak RSS is shown, and their columns' headers.
const RSS_COLUMNS: [(&str, &str); 3] = [
    ("gateway", "RSS gateway MB"),
    ("checkout-service", "RSS checkout MB"),
    ("stock-service", "RSS stock MB"),
];

/// The three ratios per concurrency.
pub fn ratios_table(results: &Results) -> Table {
    let mut table = Table::new(&[
        "C",
        "untraced / raw throughput",
        "traced / untraced throughput",
        "traced p99 vs untraced p99",
        "services' CPU per checkout, traced vs untraced",
        "services' CPU per checkout, full (traced + metrics + logs) vs traced",
    ]);
    for c in levels(results) {
        let raw = results.raw_at(c);
        let untraced = results.pipeline_at(Tracing::Off, c);
        let traced = results.pipeline_at(Tracing::On, c);
        let full = results.pipeline_at(Tracing::Full, c);
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
            full.zip(traced)
                .and_then(|(f, t)| Some((services_cpu_us(f)?, services_cpu_us(t)?)))
                .map_or_else(
                    || "–".to_owned(),
                    |(f, t)| format!("{f:.0} vs {t:.0} µs (×{:.2})", f / t),
                ),
        ]);
    }
    table
}

/// CPU the three services spent per accepted checkout, µs: what tracing costs the
/// pipeline itself, apart from the span sink and the broker.
pub(super) fn services_cpu_us(run: &PipelineResult) -> Option<f64> {
    services_us(&run.cpu, run.accepted())
}

/// CPU the three services spent per operation, µs, out of a window's CPU times.
pub(super) fn services_us(cpu: &[(String, Duration)], operations: u64) -> Option<f64> {
    ["gateway", "checkout-service", "stock-service"]
        .iter()
        .map(|service| cpu_per_k(cpu, service, operations))
        .sum::<Option<f64>>()
        .map(|seconds_per_1k| seconds_per_1k * 1000.0)
}
