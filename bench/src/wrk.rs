//! The second load generator: Debian's `wrk`, driving the gateway with the repository's
//! Lua script (`bench/wrk/checkout.lua`) at the same concurrency as the built-in load.
//!
//! Why a second one: figures measured elsewhere, notably those of the Go original of
//! this pipeline, come from wrk, and the built-in load ([`checkout_cli::load`]) is a
//! Rust HTTP client on the same two CPUs as the services, which generates a
//! `traceparent` per request and records every accepted order. Driving the same warm
//! pipeline with both tells what in a figure belongs to the pipeline and what to the
//! load generator, and makes the figures comparable with wrk's anywhere.
//!
//! wrk runs with one thread per gateway (one on the single node): wrk is far faster
//! than the pipeline, so one thread keeps C connections busy, and every extra thread
//! would take CPU from the services on a 2-core machine. The script's `done()` prints
//! one `WRK_JSON {…}` line (requests, duration, errors, latency percentiles in µs) that
//! [`parse_output`] reads; wrk's human output is ignored. wrk measures a request from
//! the moment it was written to the socket until its response was read, as the built-in
//! load does.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use serde::Deserialize;
use tokio::process::Command;

use crate::procfs;
use crate::stats::Latency;

/// What starts the script's machine-readable line.
pub const MARKER: &str = "WRK_JSON ";

/// wrk's `--timeout`: a response later than this counts as a timeout error (it still
/// counts as a response).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How long past its duration wrk may take before it is killed: it stops on its own at
/// the end of its duration, so this only bounds a wrk that hangs.
const EXIT_GRACE: Duration = Duration::from_secs(30);

/// The script in the repository, found from this crate's directory at compile time
/// (the benchmark runs from a checkout: `scripts/bench` builds it there).
pub fn default_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("wrk")
        .join("checkout.lua")
}

/// Where wrk and its script are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrkConfig {
    /// The `wrk` executable.
    pub program: PathBuf,
    /// The Lua script.
    pub script: PathBuf,
}

impl WrkConfig {
    /// Finds `wrk` on `PATH` and checks that `script` exists: both before any run, so
    /// a missing one stops the benchmark at once instead of failing every run.
    pub fn find(script: PathBuf) -> anyhow::Result<Self> {
        let program = find_on_path("wrk", std::env::var_os("PATH").as_deref()).context(
            "`wrk` is not installed: `sudo apt-get install wrk` (Debian's package; \
             scripts/bench installs it), or run with --no-wrk",
        )?;
        anyhow::ensure!(
            script.is_file(),
            "the wrk script {} does not exist (--wrk-script)",
            script.display()
        );
        Ok(Self { program, script })
    }
}

/// The first executable file called `name` in the directories of `path`.
fn find_on_path(name: &str, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path?)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        })
}

/// wrk's error counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub struct WrkErrors {
    /// Connections that could not be opened.
    pub connect: u64,
    /// Reads that failed (a connection closed mid-response, for one).
    pub read: u64,
    /// Writes that failed.
    pub write: u64,
    /// Responses with a status above 399 (wrk's "Non-2xx or 3xx").
    pub status: u64,
    /// Responses slower than `--timeout` (they are counted as responses too).
    pub timeout: u64,
}

/// The script's line, as printed.
#[derive(Debug, Deserialize)]
struct Line {
    requests: u64,
    duration_us: u64,
    errors: WrkErrors,
    latency_us: LatencyLine,
}

#[derive(Debug, Deserialize)]
struct LatencyLine {
    p50: u64,
    p99: u64,
    max: u64,
}

/// What one wrk run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkReport {
    /// Responses read (any status).
    pub requests: u64,
    /// wrk's own measured duration.
    pub elapsed: Duration,
    /// Its error counts.
    pub errors: WrkErrors,
    /// Latency of the responses.
    pub latency: Latency,
}

impl WrkReport {
    /// Responses with a status below 400: the accepted checkouts (the gateway answers
    /// 202, never 3xx). A response slower than `--timeout` is still one of them.
    pub fn ok(&self) -> u64 {
        self.requests.saturating_sub(self.errors.status)
    }

    /// Accepted checkouts per second.
    pub fn throughput(&self) -> f64 {
        self.ok() as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Requests that failed: an error status, or a connection that failed.
    pub fn failed(&self) -> u64 {
        let e = &self.errors;
        e.status + e.connect + e.read + e.write
    }
}

/// Reads the script's `WRK_JSON` line out of wrk's standard output.
pub fn parse_output(stdout: &str) -> anyhow::Result<WrkReport> {
    let json = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix(MARKER))
        .with_context(|| {
            format!(
                "no `{}` line in wrk's output (was it run with bench/wrk/checkout.lua?): {}",
                MARKER.trim_end(),
                tail(stdout)
            )
        })?;
    let line: Line = serde_json::from_str(json)
        .with_context(|| format!("cannot parse wrk's line `{}`", json.trim()))?;
    let us = Duration::from_micros;
    Ok(WrkReport {
        requests: line.requests,
        elapsed: us(line.duration_us),
        errors: line.errors,
        latency: Latency {
            p50: us(line.latency_us.p50),
            p99: us(line.latency_us.p99),
            max: us(line.latency_us.max),
        },
    })
}

/// The last few lines of an output, for an error message.
fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let text = lines[lines.len().saturating_sub(8)..].join(" / ");
    if text.trim().is_empty() {
        "(nothing)".to_owned()
    } else {
        text
    }
}

/// wrk's `-d`, in whole seconds (wrk takes no fractions), rounded up.
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs_f64().ceil().max(1.0) as u64
}

/// Threads and the `WRK_GATEWAYS` of a run at `concurrency` over `gateways` (base
/// URLs): one thread per gateway when C shares out evenly among them (wrk gives each
/// thread C / threads connections and drops the remainder), else one thread on the
/// first gateway.
fn spread(gateways: &[String], concurrency: usize) -> (usize, String) {
    let n = gateways.len().max(1);
    if n > 1 && concurrency.is_multiple_of(n) {
        let hosts: Vec<&str> = gateways
            .iter()
            .map(|url| url.trim_start_matches("http://").trim_end_matches('/'))
            .collect();
        (n, hosts.join(","))
    } else {
        (1, String::new())
    }
}

/// A finished wrk run: its report and the CPU time wrk itself used.
#[derive(Debug, Clone, PartialEq)]
pub struct WrkRun {
    /// What the script printed.
    pub report: WrkReport,
    /// wrk's own CPU time (user + system), read as this process's waited-for children's.
    pub cpu: Duration,
}

/// Runs wrk against `gateways` (base URLs, at least one) with `concurrency` connections
/// for `duration` (rounded up to whole seconds), and waits for it (bounded).
pub async fn run(
    config: &WrkConfig,
    gateways: &[String],
    concurrency: usize,
    duration: Duration,
    clock_ticks: u64,
) -> anyhow::Result<WrkRun> {
    let first = gateways.first().context("no gateway to send wrk to")?;
    let url = checkout_cli::checkout::checkout_url(first);
    let (threads, spread_to) = spread(gateways, concurrency);
    let seconds = whole_seconds(duration);
    let mut command = Command::new(&config.program);
    command
        .arg(format!("-t{threads}"))
        .arg(format!("-c{concurrency}"))
        .arg(format!("-d{seconds}s"))
        .arg(format!("--timeout={}s", REQUEST_TIMEOUT.as_secs()))
        .arg("-s")
        .arg(&config.script)
        .arg(&url)
        .env("WRK_GATEWAYS", spread_to)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    // wrk is the only child waited for meanwhile (the services are waited for when they
    // stop), so the children's CPU time grows by exactly wrk's.
    let children_before = procfs::children_cpu_ticks()?;
    let child = command
        .spawn()
        .with_context(|| format!("cannot run {}", config.program.display()))?;
    let limit = Duration::from_secs(seconds) + EXIT_GRACE;
    let output = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .with_context(|| format!("wrk did not finish within {limit:?}; killed"))?
        .context("waiting for wrk")?;
    let children_after = procfs::children_cpu_ticks()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "wrk failed ({}): {} {}",
        output.status,
        tail(&String::from_utf8_lossy(&output.stderr)),
        tail(&stdout)
    );
    Ok(WrkRun {
        report: parse_output(&stdout)?,
        cpu: procfs::ticks_to_duration(
            children_after.0.saturating_sub(children_before.0),
            clock_ticks,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// wrk's output as `wrk -s bench/wrk/checkout.lua` prints it.
    const OUTPUT: &str = "\
Running 3s test @ http://127.0.0.1:41234/api/checkout
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     6.47ms    2.01ms  22.83ms   75.56%
    Req/Sec     2.48k   302.79     2.90k    70.00%
  7446 requests in 3.00s, 1.72MB read
  Non-2xx or 3xx responses: 6
Requests/sec:   2480.27
Transfer/sec:    586.78KB
WRK_JSON {\"requests\":7446,\"duration_us\":3002053,\"bytes\":1804728,\"errors\":{\"connect\":0,\"read\":1,\"write\":0,\"status\":6,\"timeout\":2},\"latency_us\":{\"p50\":6164,\"p90\":8337,\"p99\":14236,\"max\":22832}}
";

    #[test]
    fn the_scripts_line_is_parsed_and_the_rest_ignored() {
        let report = parse_output(OUTPUT).unwrap();
        assert_eq!(report.requests, 7446);
        assert_eq!(report.elapsed, Duration::from_micros(3_002_053));
        assert_eq!(
            report.errors,
            WrkErrors {
                connect: 0,
                read: 1,
                write: 0,
                status: 6,
                timeout: 2
            }
        );
        assert_eq!(report.latency.p50, Duration::from_micros(6_164));
        assert_eq!(report.latency.p99, Duration::from_micros(14_236));
        assert_eq!(report.latency.max, Duration::from_micros(22_832));
        assert_eq!(report.ok(), 7440, "a late response still counts");
        assert_eq!(report.failed(), 7);
        assert!((report.throughput() - 7440.0 / 3.002053).abs() < 1e-6);
    }

    #[test]
    fn output_without_the_line_is_a_clear_error() {
        let human_only = OUTPUT
            .lines()
            .filter(|line| !line.starts_with(MARKER))
            .collect::<Vec<_>>()
            .join("\n");
        let error = parse_output(&human_only).unwrap_err().to_string();
        assert!(error.contains("no `WRK_JSON` line"), "{error}");
        assert!(error.contains("Requests/sec:   2480.27"), "{error}");
        assert!(
            parse_output("")
                .unwrap_err()
                .to_string()
                .contains("(nothing)"),
            "an empty output says so"
        );
        let broken = parse_output("WRK_JSON {\"requests\":1}\n").unwrap_err();
        assert!(
            format!("{broken:#}").contains("cannot parse wrk's line"),
            "{broken:#}"
        );
    }

    #[test]
    fn connections_share_out_over_the_gateways_or_go_to_the_first() {
        let one = ["http://127.0.0.1:1".to_owned()];
        assert_eq!(spread(&one, 16), (1, String::new()));
        let two = [
            "http://127.0.0.1:1".to_owned(),
            "http://127.0.0.1:2/".to_owned(),
        ];
        assert_eq!(spread(&two, 16), (2, "127.0.0.1:1,127.0.0.1:2".to_owned()));
        assert_eq!(spread(&two, 1), (1, String::new()));
        assert_eq!(whole_seconds(Duration::from_millis(2_500)), 3);
        assert_eq!(whole_seconds(Duration::from_secs(10)), 10);
        assert_eq!(whole_seconds(Duration::ZERO), 1);
    }

    #[test]
    fn the_script_is_in_the_repository_and_prints_the_line() {
        let script = std::fs::read_to_string(default_script()).unwrap();
        assert!(script.contains("'WRK_JSON {"), "{script}");
        // The very body the built-in load sends.
        let items = checkout_cli::load::LoadConfig::new(
            "http://127.0.0.1:1".to_owned(),
            checkout_cli::load::LoadMode::Closed { concurrency: 1 },
        )
        .items;
        let body = serde_json::to_string(&checkout_cli::checkout::body(&items)).unwrap();
        assert!(
            script.contains(&format!("wrk.body = '{body}'")),
            "{body} in {script}"
        );
        assert!(
            !script.contains("function response"),
            "no per-response callback"
        );
        assert!(find_on_path("sh", Some(std::ffi::OsStr::new("/nonexistent:/bin"))).is_some());
        assert_eq!(
            find_on_path("sh", Some(std::ffi::OsStr::new("/nonexistent"))),
            None
        );
    }
}
