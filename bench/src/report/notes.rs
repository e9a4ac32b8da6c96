//! The notes under the tables: what in a run is worth a look.

use super::generators::wrk_notes;
use super::tables::percent;
use super::targets::limits;
use super::{Results, kind};
use crate::cluster::CLUSTER_NODES;
use crate::pipeline::Tracing;

/// Things worth a look: failed runs, failed requests, orders not applied, incomplete
/// or dropped spans, service warnings, services that had to be killed; the same of the
/// wrk windows.
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
    notes.extend(replica_notes(results));
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
    notes.extend(wrk_notes(results));
    notes
}

/// In a cluster, where the pipeline runs' queues were replicated: one line when every
/// run's queue was on all the nodes, else one per run that was not (or could not be
/// asked). Nothing on a single node, where nobody asks.
fn replica_notes(results: &Results) -> Vec<String> {
    let asked: Vec<(String, Option<usize>)> = results
        .pipelines()
        .map(|r| {
            (
                format!("{} C={}", kind(r.tracing), r.concurrency),
                r.queue_members,
            )
        })
        .collect();
    if asked.iter().all(|(_, members)| members.is_none()) {
        return Vec::new();
    }
    if asked
        .iter()
        .all(|(_, members)| *members == Some(CLUSTER_NODES))
    {
        return vec![format!(
            "every pipeline run's queue had a replica on each of the {CLUSTER_NODES} nodes"
        )];
    }
    asked
        .into_iter()
        .filter(|(_, members)| *members != Some(CLUSTER_NODES))
        .map(|(run, members)| match members {
            Some(n) => format!("{run}: the queue had replicas on {n} of {CLUSTER_NODES} nodes"),
            None => format!("{run}: could not ask where the queue's replicas were"),
        })
        .collect()
}
