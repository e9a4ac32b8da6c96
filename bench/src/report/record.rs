//! From measurements to data: the [`Results`] a benchmark collects, the median of
//! repeated runs, and the [`Run`] record written to `bench/results/<topology>.json`,
//! with the notes on what in the run is worth a look.

use std::collections::BTreeMap;
use std::time::Duration;

use super::data::{Environment, Pipeline, Raw, Run, SERVICES, Settings, Window};
use crate::broker::RawResult;
use crate::cluster::CLUSTER_NODES;
use crate::pipeline::{PipelineResult, Tracing};
use crate::stats::{self, Latency};
use crate::topology::Topology;

/// Above this share of the machine busy in processes not measured, a window is noted
/// as possibly disturbed.
const UNACCOUNTED_BUSY: f64 = 0.10;

/// Everything one benchmark measured.
#[derive(Debug, Clone, Default)]
pub struct Results {
    /// Raw broker runs.
    pub raw: Vec<RawResult>,
    /// Pipeline runs, every kind.
    pub pipeline: Vec<PipelineResult>,
    /// Runs that failed, with their error.
    pub failures: Vec<String>,
    /// With repeated runs: the spread of each (kind, C) whose median run is kept.
    pub spreads: Vec<String>,
}

/// The raw broker's message, as the settings describe it.
pub fn message() -> String {
    let (body, headers) = crate::broker::sample_message();
    let headers = crate::broker::header_bytes(&headers);
    format!(
        "`checkout.processed` of {} B JSON plus {headers} B of `traceparent` and `baggage` \
         headers, persistent, `mandatory`",
        body.len()
    )
}

/// `untraced`, `traced` or `full`.
pub fn kind(tracing: Tracing) -> &'static str {
    match tracing {
        Tracing::Off => "untraced",
        Tracing::On => "traced",
        Tracing::Full => "full",
    }
}

impl Results {
    /// With several runs of the same kind and C (`--repeat`), keeps the one of median
    /// throughput (the lower middle one for an even count) and records the spread.
    pub fn keep_medians(&mut self) {
        self.raw = medians(
            &self.raw,
            |r| ("raw", r.concurrency),
            RawResult::throughput,
            &mut self.spreads,
        );
        self.pipeline = medians(
            &self.pipeline,
            |r| (kind(r.tracing), r.concurrency),
            PipelineResult::throughput,
            &mut self.spreads,
        );
    }

    /// The record of these results.
    pub fn record(&self, topology: Topology, environment: Environment, settings: Settings) -> Run {
        Run {
            topology: topology.name().to_owned(),
            environment,
            settings,
            raw: self.raw.iter().map(raw).collect(),
            pipeline: self.pipeline.iter().map(pipeline).collect(),
            notes: self.notes(),
        }
    }

    /// What is worth a look: failed runs, spreads, disturbed windows, failed publishes,
    /// spans while untraced, queues not on every node, services killed or warning.
    fn notes(&self) -> Vec<String> {
        let disturbed = |share: f64| {
            let text = "of the machine's CPU went to processes not measured here: disturbed?";
            (share > UNACCOUNTED_BUSY).then(|| format!("{:.0} % {text}", share * 100.0))
        };
        let mut notes: Vec<String> = self
            .failures
            .iter()
            .map(|f| format!("run failed: {f}"))
            .collect();
        notes.extend(self.spreads.iter().cloned());
        for r in &self.raw {
            let failed = (r.failed > 0).then(|| format!("{} publishes failed", r.failed));
            let found = [disturbed(r.unaccounted_busy), failed]
                .into_iter()
                .flatten();
            notes.extend(found.map(|note| format!("raw C={}: {note}", r.concurrency)));
        }
        for r in &self.pipeline {
            let wrk = r.wrk.as_ref().and_then(|w| disturbed(w.unaccounted_busy));
            let spans = r.spans_received;
            let members = r.queue_members.filter(|n| *n != CLUSTER_NODES);
            let mut found = vec![
                disturbed(r.unaccounted_busy),
                wrk.map(|note| format!("wrk window: {note}")),
                (r.tracing == Tracing::Off && spans > 0).then(|| format!("{spans} spans untraced")),
                members.map(|n| format!("the queue had replicas on {n} of {CLUSTER_NODES} nodes")),
                (!r.dropped_spans().1).then(|| "spans dropped, not all counted".to_owned()),
            ];
            for s in &r.services {
                found.push((!s.graceful).then(|| format!("{} was killed after SIGTERM", s.name)));
                found.push(s.logs.problem_lines.first().map(|first| {
                    let (warnings, errors) = (s.logs.warnings, s.logs.errors);
                    let first: String = first.chars().take(300).collect();
                    format!(
                        "{} logged {warnings} warnings, {errors} errors; first: `{first}`",
                        s.name
                    )
                }));
            }
            let run = format!("{} C={}", kind(r.tracing), r.concurrency);
            notes.extend(
                found
                    .into_iter()
                    .flatten()
                    .map(|note| format!("{run}: {note}")),
            );
        }
        notes
    }
}

/// The run of median throughput of each key, in the order of the keys' first runs.
fn medians<T: Clone>(
    runs: &[T],
    key: impl Fn(&T) -> (&'static str, usize),
    throughput: impl Fn(&T) -> f64,
    spreads: &mut Vec<String>,
) -> Vec<T> {
    let mut keys: Vec<(&str, usize)> = Vec::new();
    for k in runs.iter().map(&key) {
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut kept = Vec::new();
    for (name, c) in keys {
        let mut group: Vec<&T> = runs.iter().filter(|r| key(r) == (name, c)).collect();
        group.sort_by(|a, b| throughput(a).total_cmp(&throughput(b)));
        if group.len() > 1 {
            let all: Vec<String> = group
                .iter()
                .map(|r| format!("{:.0}", throughput(r)))
                .collect();
            spreads.push(format!(
                "{name} C={c}: {} runs, {} per second (median shown)",
                group.len(),
                all.join(" / ")
            ));
        }
        kept.push(group[(group.len() - 1) / 2].clone());
    }
    kept
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// CPU per operation, µs, of each label measured (summed over its processes).
fn cpu_us(cpu: &[(String, Duration)], operations: u64) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, Duration> = BTreeMap::new();
    for (label, time) in cpu {
        *sums.entry(label.clone()).or_default() += *time;
    }
    sums.into_iter()
        .filter_map(|(label, time)| Some((label, stats::cpu_per_thousand(time, operations)? * 1e3)))
        .collect()
}

fn raw(r: &RawResult) -> Raw {
    Raw {
        c: r.concurrency,
        per_s: r.throughput(),
        p50_ms: ms(r.latency.p50),
        p99_ms: ms(r.latency.p99),
        max_ms: Some(ms(r.latency.max)),
        cpu_us: cpu_us(&r.cpu, r.confirmed),
        machine_busy: Some(r.machine_busy),
        unconsumed: Some(r.confirmed_total.saturating_sub(r.consumed)),
        queue_on: r.queue_members,
    }
}

fn window(
    per_s: f64,
    latency: Latency,
    failed: u64,
    cpu_us: BTreeMap<String, f64>,
    busy: f64,
) -> Window {
    Window {
        per_s,
        p50_ms: ms(latency.p50),
        p99_ms: ms(latency.p99),
        max_ms: Some(ms(latency.max)),
        failed: Some(failed),
        cpu_us,
        machine_busy: Some(busy),
        ..Window::default()
    }
}

fn pipeline(r: &PipelineResult) -> Pipeline {
    let accepted = r.accepted();
    let mut bench = window(
        r.throughput(),
        r.latency(),
        r.load.errors(),
        cpu_us(&r.cpu, accepted),
        r.machine_busy,
    );
    bench.unapplied = Some(accepted.saturating_sub(r.applied));
    if let Some(t) = &r.traces {
        bench.traces_complete = Some(t.complete as u64);
        bench.traces_expected = Some(t.checked as u64);
    }
    let wrk = r.wrk.as_ref().map(|w| {
        let accepted = w.report.ok();
        let mut cpu = cpu_us(&w.cpu, accepted);
        if let Some(us) = stats::cpu_per_thousand(w.wrk_cpu, accepted) {
            cpu.insert("wrk".to_owned(), us * 1e3);
        }
        let mut window = window(
            w.report.throughput(),
            w.report.latency,
            w.report.failed(),
            cpu,
            w.machine_busy,
        );
        window.unapplied = Some(accepted.saturating_sub(w.applied));
        // Counted, not checked by id: a surplus (requests wrk left in flight) is not more
        // than all.
        window.traces_complete = w.complete_traces.map(|n| (n as u64).min(accepted));
        window.traces_expected = w.complete_traces.map(|_| accepted);
        window
    });
    let rss_mb = SERVICES
        .iter()
        .filter_map(|name| {
            let peak = r
                .services
                .iter()
                .filter(|s| s.name == *name)
                .map(|s| s.peak_rss_kb)
                .max()?;
            Some(((*name).to_owned(), peak as f64 / 1024.0))
        })
        .collect();
    Pipeline {
        kind: kind(r.tracing).to_owned(),
        c: r.concurrency,
        bench,
        wrk,
        dropped_spans: (r.tracing != Tracing::Off).then(|| r.dropped_spans().0),
        rss_mb,
    }
}
