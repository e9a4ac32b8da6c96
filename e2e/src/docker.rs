//! A compose project run for real: `docker compose up` of the repository's
//! compose files, as a user runs them, for the compose tests
//! (`tests/compose_up.rs`, run by `scripts/compose-test`).
//!
//! Each [`Stack`] is a project of its own (its own containers, network and
//! volumes, named after the process), publishes its ports on a loopback
//! address of its own (`PUBLISH_ADDRESS`, so a demo running on 127.0.0.1
//! keeps its ports), and is taken down with its volumes when dropped. The
//! compose command is `COMPOSE` if set, else `docker-compose` (Debian 12's
//! 1.29) where installed, else `docker compose` (v2).

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    process::Command,
    sync::{Mutex, Once, PoisonError},
    time::Duration,
};

use serde_json::Value;
use testkit::receiver::{ReceivedSpan, SpanStatus};

use crate::compose::ROOT;

/// The loopback address the stacks publish their ports on.
pub const PUBLISH_ADDRESS: &str = "127.0.0.77";

/// A running compose project; `down -v` when dropped.
pub struct Stack {
    project: String,
    files: Vec<&'static str>,
}

impl Stack {
    /// `up -d --build` of `files` (relative to the repository root) as a
    /// project of its own, named `checkout-<name>-<pid>`. Quick once
    /// `scripts/compose-test` has built the images: the layers are cached.
    pub fn up(name: &str, files: &[&'static str]) -> Self {
        remember_panics();
        let stack = Self {
            project: format!("checkout-{name}-{}", std::process::id()),
            files: files.to_vec(),
        };
        if let Err(error) = stack.try_compose(&["up", "-d", "--build"]) {
            panic!("{error}\nnot healthy: {:?}", stack.unhealthy());
        }
        stack
    }

    /// The compose project's name.
    pub fn project(&self) -> &str {
        &self.project
    }

    /// Runs the compose command with this project's files and name; fails
    /// the test with its output if it fails.
    pub fn compose(&self, args: &[&str]) -> String {
        self.try_compose(args)
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Runs the compose command: its output, or what it said when it failed.
    fn try_compose(&self, args: &[&str]) -> Result<String, String> {
        let (program, first) = compose_command();
        let mut command = Command::new(program);
        command.args(first).args(["-p", &self.project]);
        for file in &self.files {
            command.args(["-f", file]);
        }
        let output = command
            .args(args)
            .current_dir(ROOT)
            .env("PUBLISH_ADDRESS", PUBLISH_ADDRESS)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        if !output.status.success() {
            return Err(format!(
                "{program} {}: {}\n{text}",
                args.join(" "),
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        Ok(text)
    }

    /// The project's containers: `(compose service, container id)`, with
    /// replicas and stopped ones.
    pub fn containers(&self) -> Vec<(String, String)> {
        let filter = format!("label=com.docker.compose.project={}", self.project);
        docker(&[
            "ps",
            "-a",
            "--filter",
            &filter,
            "--format",
            r#"{{.Label "com.docker.compose.service"}} {{.ID}}"#,
        ])
        .lines()
        .filter_map(|line| line.split_once(' '))
        .map(|(service, id)| (service.to_owned(), id.to_owned()))
        .collect()
    }

    /// The container ids of `service` (one per replica).
    pub fn containers_of(&self, service: &str) -> Vec<String> {
        self.containers()
            .into_iter()
            .filter(|(name, _)| name == service)
            .map(|(_, id)| id)
            .collect()
    }

    /// Waits until every container is running and every health check says
    /// `healthy`; fails naming the ones that are not, with their last logs.
    pub async fn wait_until_healthy(&self, patience: Duration) {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let unhealthy = self.unhealthy();
            if !self.containers().is_empty() && unhealthy.is_empty() {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "not healthy within {patience:?}: {unhealthy:?}\n{}",
                    self.compose(&["logs", "--no-color", "--tail", "30"])
                );
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// The containers neither running healthy nor running without a health
    /// check: `service/container → "running unhealthy"`, `"exited"`…
    fn unhealthy(&self) -> BTreeMap<String, String> {
        let mut states = self.states();
        states.retain(|_, state| !matches!(state.as_str(), "running" | "running healthy"));
        states
    }

    /// `service/container → "running healthy"`, `"running"` (no health
    /// check), `"running starting"`, `"exited"`…
    fn states(&self) -> BTreeMap<String, String> {
        self.containers()
            .into_iter()
            .map(|(service, id)| {
                let state = docker(&[
                    "inspect",
                    "-f",
                    "{{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{end}}",
                    &id,
                ]);
                (format!("{service}/{id}"), state.trim().to_owned())
            })
            .collect()
    }

    /// The address of `container` on the project's network: this machine's
    /// own test host, for what is not published (stock-service's API).
    pub fn address_of(&self, container: &str) -> String {
        docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            container,
        ])
        .trim()
        .to_owned()
    }

    /// What `services` wrote to stdout and stderr, without the prefixes.
    pub fn logs(&self, services: &[&str]) -> Vec<String> {
        let mut args = vec!["logs", "--no-color"];
        args.extend_from_slice(services);
        self.compose(&args)
            .lines()
            .map(|line| line.split_once(" | ").map_or(line, |(_, rest)| rest))
            .map(str::to_owned)
            .collect()
    }

    /// Whatever of the project is still there after `down -v`: containers,
    /// volumes and networks labelled with its name.
    pub fn leftovers(&self) -> Vec<String> {
        let filter = format!("label=com.docker.compose.project={}", self.project);
        let mut left = Vec::new();
        for kind in [["ps", "-a"], ["volume", "ls"], ["network", "ls"]] {
            let listed = docker(&[kind[0], kind[1], "-q", "--filter", &filter]);
            left.extend(listed.lines().map(|id| format!("{} {id}", kind[0])));
        }
        left
    }

    /// `down -v` (and the project's image names), then checks nothing of
    /// the project is left.
    pub fn down(self) {
        self.compose(&["down", "-v", "--rmi", "local", "--remove-orphans"]);
        let left = self.leftovers();
        std::mem::forget(self);
        assert!(left.is_empty(), "left behind after down -v: {left:?}");
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // A failed test: show what the services said, then clean up.
        if std::thread::panicking() {
            let (program, first) = compose_command();
            let _ = Command::new(program)
                .args(first)
                .args(["-p", &self.project])
                .args(self.files.iter().flat_map(|file| ["-f", file]))
                .args(["logs", "--no-color", "--tail", "40"])
                .current_dir(ROOT)
                .status();
            let panics = PANICS.lock().unwrap_or_else(PoisonError::into_inner);
            eprintln!("\nthe failure, again below the logs: {}", panics.join("\n"));
        }
        let (program, first) = compose_command();
        let _ = Command::new(program)
            .args(first)
            .args(["-p", &self.project])
            .args(self.files.iter().flat_map(|file| ["-f", file]))
            .args(["down", "-v", "--rmi", "local", "--remove-orphans"])
            .current_dir(ROOT)
            .output();
    }
}

/// The last few panic messages of the test process: a failed stack prints
/// the services' logs after the panic message, and a CI page that shows only
/// the end of the output would show the logs without the reason.
static PANICS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Keeps each panic's message in [`PANICS`] (the last five), then reports
/// it as before.
fn remember_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let mut panics = PANICS.lock().unwrap_or_else(PoisonError::into_inner);
            if panics.len() == 5 {
                panics.remove(0);
            }
            panics.push(info.to_string());
            drop(panics);
            report(info);
        }));
    });
}

/// The compose command: `COMPOSE`, or `docker-compose`, or `docker compose`.
fn compose_command() -> (&'static str, &'static [&'static str]) {
    match std::env::var("COMPOSE").as_deref() {
        Ok("docker compose") => ("docker", &["compose"]),
        Ok("docker-compose") => ("docker-compose", &[]),
        _ if Path::new("/usr/bin/docker-compose").exists() => ("docker-compose", &[]),
        _ => ("docker", &["compose"]),
    }
}

/// Runs `docker args…`; fails the test with its error output if it fails.
pub fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run docker: {e}"));
    assert!(
        output.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The spans the collector stand-in printed (`checkout traces --json`, one
/// trace a line; a span that came late is on a later line of its own), by
/// trace id. Lines that are not traces (its start-up line) are skipped.
pub fn spans_from_standin(lines: &[String]) -> HashMap<String, Vec<ReceivedSpan>> {
    let mut traces: HashMap<String, Vec<ReceivedSpan>> = HashMap::new();
    for line in lines {
        let Ok(trace) = serde_json::from_str::<Value>(line.trim()) else {
            continue;
        };
        for span in trace["spans"].as_array().into_iter().flatten() {
            let text = |key: &str| span[key].as_str().unwrap_or_default().to_owned();
            let received = ReceivedSpan {
                trace_id: text("trace_id"),
                span_id: text("span_id"),
                parent_span_id: span["parent_span_id"].as_str().map(str::to_owned),
                name: text("name"),
                kind: checkout_cli::jaeger::kind_from_name(&text("kind")),
                service_name: text("service_name"),
                service_instance_id: text("service_instance_id"),
                attributes: BTreeMap::new(),
                status: SpanStatus::Unset,
                start_unix_nanos: span["start_unix_nanos"].as_u64().unwrap_or_default(),
                end_unix_nanos: span["end_unix_nanos"].as_u64().unwrap_or_default(),
                events: Vec::new(),
                links: Vec::new(),
            };
            traces
                .entry(received.trace_id.clone())
                .or_default()
                .push(received);
        }
    }
    traces
}

/// What is wrong with a checkout's trace, if anything: a span of
/// [`testkit::verify::CHECKOUT_TRACE`] missing, more or fewer than one
/// root, or a span whose parent is not in the trace.
pub fn trace_problem(spans: &[ReceivedSpan]) -> Option<String> {
    let missing = testkit::verify::missing_spans(spans);
    if !missing.is_empty() {
        let missing: Vec<String> = missing.iter().map(ToString::to_string).collect();
        return Some(format!("missing {}", missing.join(", ")));
    }
    let roots = spans.iter().filter(|span| span.is_root()).count();
    if roots != 1 {
        return Some(format!("{roots} roots"));
    }
    spans
        .iter()
        .filter_map(|span| span.parent_span_id.as_ref().map(|parent| (span, parent)))
        .find(|(_, parent)| !spans.iter().any(|other| &other.span_id == *parent))
        .map(|(span, _)| {
            format!(
                "{} {} has no parent in the trace",
                span.service_name, span.name
            )
        })
}
