//! The two load generators side by side: each pipeline run's built-in load window and
//! its wrk window (same pipeline, same C, same duration), and the figures of the Go
//! original of this pipeline, measured with wrk, for reference.
//!
//! Why: figures measured elsewhere come from wrk, whose client costs little and sends
//! no `traceparent`; the built-in load is a Rust client on the same CPUs. Only the
//! same generator compares across implementations, and the difference between the two
//! generators here says how much of a figure is the load generator's.

use super::tables::{Table, cpu_per_k, ms, opt, percent, services_cpu_us, services_us};
use super::targets::limits;
use super::{Results, kind, levels};
use crate::pipeline::{PipelineResult, Tracing, WrkFigures};
use crate::stats;

/// One concurrency level of the Go original's wrk figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GoFigures {
    /// Connections (wrk's `-c`).
    pub c: usize,
    /// Lowest and highest accepted checkouts per second over its runs.
    pub per_s: (f64, f64),
    /// Median latency, ms, where it was given.
    pub p50_ms: Option<f64>,
}

/// The Go original of this pipeline, measured with wrk on a 2-core machine, traced:
/// the figures the wrk windows here compare with (kept in this one place).
pub const GO_ORIGINAL_WRK_TRACED: [GoFigures; 3] = [
    GoFigures {
        c: 1,
        per_s: (969.0, 1_159.0),
        p50_ms: Some(0.8),
    },
    GoFigures {
        c: 16,
        per_s: (1_767.0, 2_685.0),
        p50_ms: None,
    },
    GoFigures {
        c: 64,
        per_s: (2_243.0, 2_305.0),
        p50_ms: None,
    },
];

/// Whether any pipeline run has a wrk window (not with `--no-wrk`).
pub fn has_wrk(results: &Results) -> bool {
    results.pipelines().any(|r| r.wrk.is_some())
}

/// The services' CPU per checkout of a wrk window, µs.
pub(super) fn wrk_services_us(wrk: &WrkFigures) -> Option<f64> {
    services_us(&wrk.cpu, wrk.accepted())
}

/// A rate with thousands separators, e.g. `1,159`.
pub(super) fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    if value.round() < 0.0 {
        format!("-{out}")
    } else {
        out
    }
}

/// `a / b` of two optional figures, `–` for a missing one.
fn pair(a: Option<f64>, b: Option<f64>, decimals: usize) -> String {
    format!("{} / {}", opt(a, decimals), opt(b, decimals))
}

/// One row per pipeline run: the built-in load's window and wrk's.
pub fn generators_table(results: &Results) -> Table {
    let mut table = Table::new(&[
        "run",
        "C",
        "bench req/s",
        "wrk req/s",
        "bench p50 ms",
        "wrk p50 ms",
        "bench p99 ms",
        "wrk p99 ms",
        "services' CPU µs/checkout (bench / wrk)",
        "load generator CPU µs/checkout (bench / wrk)",
        "wrk non-2xx",
        "wrk applied",
        "wrk complete traces",
    ]);
    for r in results.pipelines() {
        let w = r.wrk.as_ref();
        let latency = r.latency();
        let wrk_ms = |f: fn(&WrkFigures) -> std::time::Duration| {
            w.map_or_else(|| "–".to_owned(), |w| ms(f(w)))
        };
        let bench_cpu = cpu_per_k(&r.cpu, "bench", r.accepted()).map(|per_k| per_k * 1_000.0);
        let wrk_cpu = w.and_then(|w| stats::cpu_per_thousand(w.wrk_cpu, w.accepted()));
        table.row(vec![
            kind(r.tracing).to_owned(),
            r.concurrency.to_string(),
            format!("{:.0}", r.throughput()),
            opt(w.map(WrkFigures::throughput), 0),
            ms(latency.p50),
            wrk_ms(|w| w.report.latency.p50),
            ms(latency.p99),
            wrk_ms(|w| w.report.latency.p99),
            pair(services_cpu_us(r), w.and_then(wrk_services_us), 0),
            pair(bench_cpu, wrk_cpu.map(|per_k| per_k * 1_000.0), 0),
            w.map_or_else(|| "–".to_owned(), |w| w.report.errors.status.to_string()),
            w.map_or_else(|| "–".to_owned(), wrk_applied),
            w.map_or_else(|| "–".to_owned(), wrk_traces),
        ]);
    }
    table
}

/// `all` when stock-service applied every order wrk got accepted, else `N of M`.
fn wrk_applied(w: &WrkFigures) -> String {
    if w.applied >= w.accepted() {
        "all".to_owned()
    } else {
        format!("{} of {}", w.applied, w.accepted())
    }
}

/// `N of M` complete traces gained over wrk's accepted checkouts (`–` untraced); a
/// surplus (requests wrk left in flight when it stopped) is not shown as more than all.
fn wrk_traces(w: &WrkFigures) -> String {
    match w.complete_traces {
        Some(gained) => {
            let accepted = w.accepted();
            format!("{} of {accepted}", (gained as u64).min(accepted))
        }
        None => "–".to_owned(),
    }
}

/// The lines under the table: the Go original's wrk figures next to this run's, and
/// wrk's traced / untraced throughput at each C.
pub fn generators_lines(results: &Results) -> Vec<String> {
    let wrk_at = |tracing, c| results.pipeline_at(tracing, c)?.wrk.as_ref();
    let go: Vec<String> = GO_ORIGINAL_WRK_TRACED
        .iter()
        .map(|g| {
            let p50 = g
                .p50_ms
                .map(|p50| format!(" (p50 {p50} ms)"))
                .unwrap_or_default();
            format!(
                "C={} {}–{} req/s{p50}",
                g.c,
                grouped(g.per_s.0),
                grouped(g.per_s.1)
            )
        })
        .collect();
    let here: Vec<String> = GO_ORIGINAL_WRK_TRACED
        .iter()
        .filter_map(|g| {
            let w = wrk_at(Tracing::On, g.c)?;
            let p50 = if g.p50_ms.is_some() {
                format!(" (p50 {} ms)", ms(w.report.latency.p50))
            } else {
                String::new()
            };
            Some(format!("C={} {} req/s{p50}", g.c, grouped(w.throughput())))
        })
        .collect();
    let mut lines = vec![format!(
        "The Go original, measured with wrk on a 2-core machine, traced: {}. This run with \
         wrk, traced: {}.",
        go.join("; "),
        if here.is_empty() {
            "not measured".to_owned()
        } else {
            here.join("; ")
        }
    )];
    let ratios: Vec<String> = levels(results)
        .into_iter()
        .filter_map(|c| {
            let ratio = stats::ratio(
                wrk_at(Tracing::On, c)?.throughput(),
                wrk_at(Tracing::Off, c)?.throughput(),
            );
            Some(format!("C={c} {}", opt(ratio, 2)))
        })
        .collect();
    if !ratios.is_empty() {
        lines.push(format!(
            "wrk, traced / untraced throughput: {}.",
            ratios.join("; ")
        ));
    }
    lines
}

/// Notes on the wrk windows: disturbed windows, failed requests, late responses,
/// orders not applied, incomplete traces.
pub fn wrk_notes(results: &Results) -> Vec<String> {
    let mut notes = Vec::new();
    for r in results.pipelines() {
        let Some(w) = &r.wrk else {
            continue;
        };
        notes.extend(notes_of(r, w));
    }
    notes
}

fn notes_of(r: &PipelineResult, w: &WrkFigures) -> Vec<String> {
    let run = format!("{} C={} (wrk)", kind(r.tracing), r.concurrency);
    let mut notes = Vec::new();
    if w.unaccounted_busy > limits::UNACCOUNTED_BUSY {
        notes.push(format!(
            "{run}: {} of the machine's CPU went to processes not measured here (wrk's own \
             excluded): something else ran on the machine, so these figures may be disturbed",
            percent(w.unaccounted_busy)
        ));
    }
    let e = &w.report.errors;
    let failed: Vec<String> = [
        ("non-2xx", e.status),
        ("connect errors", e.connect),
        ("read errors", e.read),
        ("write errors", e.write),
        ("responses over wrk's timeout", e.timeout),
    ]
    .iter()
    .filter(|(_, n)| *n > 0)
    .map(|(what, n)| format!("{what} × {n}"))
    .collect();
    if !failed.is_empty() {
        notes.push(format!("{run}: {}", failed.join(", ")));
    }
    let accepted = w.accepted();
    if w.applied < accepted {
        notes.push(format!(
            "{run}: only {} of {accepted} accepted orders applied within the wait",
            w.applied
        ));
    }
    if let Some(gained) = w.complete_traces
        && (gained as u64) < accepted
    {
        notes.push(format!(
            "{run}: {gained} traces completed for {accepted} accepted checkouts within the wait"
        ));
    }
    notes
}
