//! The targets, judged on a [`Run`]'s figures: each one's measured values and whether
//! it was met, missed, or not measured.
//!
//! Those that the wrk windows measure too are judged on both load generators; the C=1
//! ones, set from the Go original's wrk figures, on wrk when it ran.

use super::data::{Run, Window};
use super::table::{Table, opt};
use crate::stats::ratio;

/// What a target asks for; the check of a [`Run`] gives what was measured and whether
/// it was met (`None`: not measured).
type Check = fn(&Run) -> Option<(String, bool)>;

/// The targets, in the order shown.
const TARGETS: [(&str, Check); 10] = [
    (
        "traced / untraced throughput ≥ 0.95 at C=16 and 64",
        traced_throughput,
    ),
    ("traced p99 ≤ untraced p99 + 10 % at every C", traced_p99),
    (
        "untraced pipeline / raw broker throughput ≥ 0.75 at C=64",
        pipeline_vs_raw,
    ),
    ("no span lost: every trace complete, none dropped", spans),
    ("each service < 50 MB peak RSS", rss),
    (
        "gateway, checkout-service < 150 µs CPU per checkout each, every C",
        service_cpu,
    ),
    ("C=1 traced: p50 ≤ 0.8 ms and ≥ 1,200 checkouts/s", c1_p50),
    ("C=1 traced: p99 ≤ 2 ms", c1_p99),
    (
        "services' CPU per checkout traced ≤ 1.10 × untraced at C=16 and 64",
        traced_cpu,
    ),
    (
        "the three services ≤ 100 µs CPU per checkout, untraced C=64",
        services_cpu,
    ),
];

/// The targets, one column per run (`Single node`, `Cluster`).
pub fn targets_table(runs: &[&Run]) -> String {
    let mut headers = vec!["target"];
    headers.extend(runs.iter().map(|run| run.title()));
    let mut table = Table::new(&headers.join(" | "));
    for (goal, check) in TARGETS {
        let mut row = vec![goal.to_owned()];
        row.extend(runs.iter().map(|run| match check(run) {
            Some((measured, true)) => format!("✅ {measured}"),
            Some((measured, false)) => format!("❌ {measured}"),
            None => "– not measured".to_owned(),
        }));
        table.row(row);
    }
    table.render()
}

/// Every check's measured parts and whether all were met; `None` without any.
fn all(parts: Vec<(String, bool)>) -> Option<(String, bool)> {
    if parts.is_empty() {
        return None;
    }
    let ok = parts.iter().all(|(_, ok)| *ok);
    let text: Vec<String> = parts.into_iter().map(|(text, _)| text).collect();
    Some((text.join(", "), ok))
}

/// (load generator, traced window, untraced window) at C, for each generator that
/// measured both.
fn pairs(run: &Run, c: usize) -> Vec<(&'static str, &Window, &Window)> {
    let (Some(t), Some(u)) = (run.at("traced", c), run.at("untraced", c)) else {
        return Vec::new();
    };
    let mut pairs = vec![("", &t.bench, &u.bench)];
    if let (Some(tw), Some(uw)) = (&t.wrk, &u.wrk) {
        pairs.push(("wrk ", tw, uw));
    }
    pairs
}

fn traced_throughput(run: &Run) -> Option<(String, bool)> {
    let mut parts = Vec::new();
    for c in [16, 64] {
        for (generator, t, u) in pairs(run, c) {
            let r = ratio(t.per_s, u.per_s);
            parts.push((
                format!("{generator}C={c} {}", opt(r, 2)),
                r.is_some_and(|r| r >= 0.95),
            ));
        }
    }
    all(parts)
}

fn traced_p99(run: &Run) -> Option<(String, bool)> {
    let parts = run.levels().into_iter().filter_map(|c| {
        let [(_, t, u), ..] = pairs(run, c)[..] else {
            return None;
        };
        let above = ratio(t.p99_ms, u.p99_ms).map(|r| (r - 1.0) * 100.0)?;
        Some((format!("C={c} {above:+.0} %"), above <= 10.0))
    });
    all(parts.collect())
}

fn pipeline_vs_raw(run: &Run) -> Option<(String, bool)> {
    let r = ratio(run.at("untraced", 64)?.bench.per_s, run.raw_at(64)?.per_s)?;
    Some((format!("{r:.2}"), r >= 0.75))
}

fn spans(run: &Run) -> Option<(String, bool)> {
    let traced = run.pipeline.iter().filter(|p| p.kind != "untraced");
    let (mut complete, mut expected, mut dropped) = (0, 0, 0);
    for p in traced {
        for w in std::iter::once(&p.bench).chain(&p.wrk) {
            complete += w.traces_complete?;
            expected += w.traces_expected?;
        }
        dropped += p.dropped_spans?;
    }
    (expected > 0).then(|| {
        let ok = complete == expected && dropped == 0;
        (
            format!("{complete} of {expected} complete, {dropped} dropped"),
            ok,
        )
    })
}

fn rss(run: &Run) -> Option<(String, bool)> {
    let worst = |service: &str| {
        let peaks = run
            .pipeline
            .iter()
            .filter_map(|p| p.rss_mb.get(service).copied());
        peaks.max_by(f64::total_cmp)
    };
    let peaks: Vec<f64> = super::data::SERVICES
        .iter()
        .filter_map(|s| worst(s))
        .collect();
    let text: Vec<String> = peaks.iter().map(|mb| format!("{mb:.0}")).collect();
    (!peaks.is_empty()).then(|| {
        (
            format!("{} MB", text.join(" / ")),
            peaks.iter().all(|mb| *mb < 50.0),
        )
    })
}

fn service_cpu(run: &Run) -> Option<(String, bool)> {
    let parts = ["gateway", "checkout-service"]
        .into_iter()
        .filter_map(|service| {
            let all = run
                .pipeline
                .iter()
                .filter_map(|p| p.bench.cpu_us.get(service).copied());
            let worst = all.max_by(f64::total_cmp)?;
            Some((format!("{worst:.0}"), worst < 150.0))
        });
    all(parts.collect())
        .map(|(text, ok)| (format!("{} µs at worst", text.replace(", ", " / ")), ok))
}

/// The C=1 traced window judged: wrk's when it ran, else the built-in load's.
fn c1(run: &Run) -> Option<(&'static str, &Window)> {
    let p = run.at("traced", 1)?;
    Some(p.wrk.as_ref().map_or(("", &p.bench), |w| (" (wrk)", w)))
}

fn c1_p50(run: &Run) -> Option<(String, bool)> {
    let (generator, w) = c1(run)?;
    let text = format!("{:.2} ms, {:.0}/s{generator}", w.p50_ms, w.per_s);
    Some((text, w.p50_ms <= 0.8 && w.per_s >= 1_200.0))
}

fn c1_p99(run: &Run) -> Option<(String, bool)> {
    let (generator, w) = c1(run)?;
    Some((format!("{:.2} ms{generator}", w.p99_ms), w.p99_ms <= 2.0))
}

fn traced_cpu(run: &Run) -> Option<(String, bool)> {
    let mut parts = Vec::new();
    for c in [16, 64] {
        for (generator, t, u) in pairs(run, c) {
            let r = t
                .services_us()
                .zip(u.services_us())
                .and_then(|(t, u)| ratio(t, u));
            parts.push((
                format!("{generator}C={c} ×{}", opt(r, 2)),
                r.is_some_and(|r| r <= 1.10),
            ));
        }
    }
    all(parts)
}

fn services_cpu(run: &Run) -> Option<(String, bool)> {
    let p = run.at("untraced", 64)?;
    let windows = std::iter::once(("", &p.bench)).chain(p.wrk.iter().map(|w| ("wrk ", w)));
    let parts = windows.filter_map(|(generator, w)| {
        let us = w.services_us()?;
        Some((format!("{generator}{us:.0} µs"), us <= 100.0))
    });
    all(parts.collect())
}
