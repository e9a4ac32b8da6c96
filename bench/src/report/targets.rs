//! The targets the benchmark checks, their limits, and a met/missed [`Verdict`] for
//! each against the [`Results`].

use super::tables::{Align, Table, cpu_per_k, mb, opt};
use super::{Results, levels};
use crate::pipeline::{PipelineResult, Tracing};
use crate::stats;

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

/// One of the targets, evaluated.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// What the target asks for.
    pub goal: &'static str,
    /// The measured values it was judged on.
    pub measured: String,
    /// Met or missed.
    pub verdict: Verdict,
}

/// Limits of the targets.
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

/// The targets against the results.
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
