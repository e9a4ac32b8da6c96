//! The targets the benchmark checks, their limits, and a met/missed [`Verdict`] for
//! each against the [`Results`].
//!
//! Each is judged on the runs shown (the median of each (kind, C) with `--repeat`),
//! where it was measured; those that the wrk windows measure too are judged on both
//! load generators, or, for the C=1 targets set from wrk's figures of the Go original,
//! on wrk when it ran.

use super::generators::wrk_services_us;
use super::tables::{Align, Table, cpu_per_k, mb, opt, services_cpu_us};
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
    /// Traced throughput at least this share of untraced…
    pub const TRACED_THROUGHPUT: f64 = 0.95;
    /// …at these concurrencies, with either load generator (at C=1 the pipeline waits
    /// on one request at a time; [`C1_TRACED_P50_MS`] and [`C1_TRACED_THROUGHPUT`]
    /// judge it there).
    pub const TRACED_THROUGHPUT_AT: [usize; 2] = [16, 64];
    /// C=1 traced: median latency at most this, ms (the Go original's under wrk)…
    pub const C1_TRACED_P50_MS: f64 = 0.8;
    /// …and at least this many accepted checkouts per second (above the Go original's
    /// 969–1,159 under wrk).
    pub const C1_TRACED_THROUGHPUT: f64 = 1_200.0;
    /// C=1 traced: p99 at most this, ms.
    pub const C1_TRACED_P99_MS: f64 = 2.0;
    /// The three services' CPU per checkout traced at most this multiple of untraced…
    pub const TRACED_CPU_RATIO: f64 = 1.10;
    /// …at these concurrencies, in both load generators' windows.
    pub const TRACED_CPU_AT: [usize; 2] = [16, 64];
    /// The three services together at most this much CPU per checkout, µs…
    pub const SERVICES_CPU_MICROS: f64 = 100.0;
    /// …untraced at this concurrency, in both load generators' windows.
    pub const SERVICES_CPU_AT: usize = 64;
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

    let mut ratio_checks = Vec::new();
    let ratios = both
        .iter()
        .filter(|(c, _, _)| limits::TRACED_THROUGHPUT_AT.contains(c))
        .map(|(c, t, u)| {
            let bench = stats::ratio(t.throughput(), u.throughput());
            let wrk = t
                .wrk
                .as_ref()
                .zip(u.wrk.as_ref())
                .map(|(t, u)| stats::ratio(t.throughput(), u.throughput()));
            for ratio in std::iter::once(bench).chain(wrk) {
                ratio_checks.push(ratio.is_some_and(|r| r >= limits::TRACED_THROUGHPUT));
            }
            match wrk {
                Some(wrk) => format!("C={c}: bench {}, wrk {}", opt(bench, 2), opt(wrk, 2)),
                None => format!("C={c}: {}", opt(bench, 2)),
            }
        });
    out.push(Target {
        goal: "traced / untraced throughput ≥ 0.95 at C=16 and C=64 (each load generator)",
        measured: join(ratios),
        verdict: Verdict::of(&ratio_checks),
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
            // wrk's traces are counted, not checked by id: as many more complete as
            // it got accepted.
            let wrk = r.wrk.as_ref().and_then(|w| {
                let accepted = w.accepted();
                Some(((w.complete_traces? as u64).min(accepted), accepted))
            });
            let ok = dropped == 0
                && complete == checked
                && wrk.is_none_or(|(complete, accepted)| complete == accepted);
            let dropped = if exact {
                dropped.to_string()
            } else {
                format!("≥{dropped}")
            };
            let wrk = wrk
                .map(|(complete, accepted)| format!(" (wrk {complete}/{accepted})"))
                .unwrap_or_default();
            (
                r.concurrency,
                ok,
                format!(
                    "C={}: {complete}/{checked} complete{wrk}, {dropped} dropped",
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
    out.extend(c1_targets(results));
    out.extend(services_cpu_targets(results, &both));
    out
}

/// One load generator's figures of a window, for the C=1 targets.
struct Window {
    generator: &'static str,
    per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

impl Window {
    fn new(generator: &'static str, per_s: f64, latency: stats::Latency) -> Self {
        let to_ms = |d: std::time::Duration| d.as_secs_f64() * 1e3;
        Self {
            generator,
            per_s,
            p50_ms: to_ms(latency.p50),
            p99_ms: to_ms(latency.p99),
        }
    }
}

/// C=1 traced, judged on wrk when it ran, else on the built-in load (both shown):
/// median latency and throughput, then p99.
fn c1_targets(results: &Results) -> [Target; 2] {
    // Each generator that measured it, the judged one first.
    let mut windows = Vec::new();
    if let Some(r) = results.pipeline_at(Tracing::On, 1) {
        if let Some(w) = &r.wrk {
            windows.push(Window::new("wrk", w.throughput(), w.report.latency));
        }
        windows.push(Window::new("bench", r.throughput(), r.latency()));
    }
    let text = |show: fn(&Window) -> String| {
        if windows.is_empty() {
            "traced C=1 not run".to_owned()
        } else {
            join(windows.iter().map(show))
        }
    };
    let judged = |check: fn(&Window) -> bool| {
        Verdict::of(&windows.first().map(check).into_iter().collect::<Vec<_>>())
    };
    [
        Target {
            goal: "C=1 traced: p50 ≤ 0.8 ms and ≥ 1,200 checkouts/s (judged on wrk when it ran)",
            measured: text(|w| format!("{} {:.2} ms, {:.0}/s", w.generator, w.p50_ms, w.per_s)),
            verdict: judged(|w| {
                w.p50_ms <= limits::C1_TRACED_P50_MS && w.per_s >= limits::C1_TRACED_THROUGHPUT
            }),
        },
        Target {
            goal: "C=1 traced: p99 ≤ 2 ms (judged on wrk when it ran)",
            measured: text(|w| format!("{} {:.2} ms", w.generator, w.p99_ms)),
            verdict: judged(|w| w.p99_ms <= limits::C1_TRACED_P99_MS),
        },
    ]
}

/// The three services' CPU per checkout, in each load generator's window: traced
/// against untraced at C=16 and C=64, and untraced at C=64 in absolute terms.
fn services_cpu_targets(
    results: &Results,
    both: &[(usize, &PipelineResult, &PipelineResult)],
) -> [Target; 2] {
    // (bench, wrk) services' µs per checkout of a run.
    let per_generator =
        |r: &PipelineResult| (services_cpu_us(r), r.wrk.as_ref().and_then(wrk_services_us));
    let mut ratio_checks = Vec::new();
    let ratios = both
        .iter()
        .filter(|(c, _, _)| limits::TRACED_CPU_AT.contains(c))
        .map(|(c, t, u)| {
            let (t_bench, t_wrk) = per_generator(t);
            let (u_bench, u_wrk) = per_generator(u);
            let mut parts = Vec::new();
            for (generator, traced, untraced) in
                [("bench", t_bench, u_bench), ("wrk", t_wrk, u_wrk)]
            {
                let (Some(traced), Some(untraced)) = (traced, untraced) else {
                    continue;
                };
                let ratio = stats::ratio(traced, untraced);
                ratio_checks.push(ratio.is_some_and(|r| r <= limits::TRACED_CPU_RATIO));
                parts.push(format!(
                    "{generator} {traced:.0} vs {untraced:.0} µs (×{})",
                    opt(ratio, 2)
                ));
            }
            if parts.is_empty() {
                format!("C={c}: –")
            } else {
                format!("C={c}: {}", parts.join(", "))
            }
        });
    let ratio_target = Target {
        goal: "the services' CPU per checkout traced ≤ 1.10 × untraced at C=16 and C=64 (each load generator)",
        measured: join(ratios),
        verdict: Verdict::of(&ratio_checks),
    };

    let at = limits::SERVICES_CPU_AT;
    let mut checks = Vec::new();
    let measured = match results.pipeline_at(Tracing::Off, at) {
        Some(u) => {
            let (bench, wrk) = per_generator(u);
            let parts: Vec<String> = [("bench", bench), ("wrk", wrk)]
                .into_iter()
                .filter_map(|(generator, us)| {
                    let us = us?;
                    checks.push(us <= limits::SERVICES_CPU_MICROS);
                    Some(format!("{generator} {us:.0} µs"))
                })
                .collect();
            join(parts.into_iter())
        }
        None => format!("untraced C={at} not run"),
    };
    let total_target = Target {
        goal: "the three services together ≤ 100 µs CPU per checkout, untraced at C=64 (each load generator)",
        measured,
        verdict: Verdict::of(&checks),
    };
    [ratio_target, total_target]
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
