//! Describing the machine and the code under test: date, commit, CPU, memory, kernel,
//! compiler, broker and database versions.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::report::Environment;
use crate::topology::Deployment;

/// The first line of a command's stdout, if it ran and succeeded.
fn first_line(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_owned)
}

/// `model name` of the first CPU in /proc/cpuinfo.
pub fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim().to_owned())
    })
}

/// `MemTotal` of /proc/meminfo as `23.5 GiB`.
pub fn memory_total(meminfo: &str) -> Option<String> {
    let kb = crate::procfs::parse_status_kb(meminfo, "MemTotal")?;
    Some(format!("{:.1} GiB", kb as f64 / 1024.0 / 1024.0))
}

/// What a run rewrites: the results and the documents rendered from them. A change to
/// them (the other topology's run) says nothing about the code measured.
const WRITTEN: [&str; 3] = ["bench/results", "BENCHMARKS.md", "SCALING.md"];

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

/// The environment of a run against `deployment`. The commit is dirty when a tracked
/// file other than those a run rewrites has changes.
pub fn describe(deployment: &Deployment, clock_ticks: u64) -> Environment {
    let unknown = || "unknown".to_owned();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let commit = match first_line("git", &["rev-parse", "--short", "HEAD"]) {
        Some(hash) => {
            let dirty = Command::new("git")
                .args(["status", "--porcelain", "--untracked-files=no", "--", "."])
                .args(WRITTEN.map(|path| format!(":(top,exclude){path}")))
                .output()
                .ok()
                .map(|output| !output.stdout.is_empty());
            match dirty {
                Some(true) => format!("{hash} (dirty: uncommitted changes to tracked files)"),
                Some(false) => format!("{hash} (clean)"),
                None => hash,
            }
        }
        None => unknown(),
    };
    let read = |path| std::fs::read_to_string(path).unwrap_or_default();
    Environment {
        date: utc_date(now),
        commit,
        cpus: std::thread::available_parallelism().map_or(0, usize::from),
        cpu: cpu_model(&read("/proc/cpuinfo")).unwrap_or_else(unknown),
        memory: memory_total(&read("/proc/meminfo")).unwrap_or_else(unknown),
        kernel: first_line("uname", &["-r"]).unwrap_or_else(unknown),
        rustc: first_line("rustc", &["--version"]).unwrap_or_else(unknown),
        rabbitmq: first_line("rabbitmqctl", &["--timeout", "20", "version"])
            .unwrap_or_else(unknown),
        broker_found_by: deployment.broker_found_by.clone(),
        postgres: deployment
            .postgres
            .as_ref()
            .map(|server| server.version.clone()),
        clock_ticks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_and_memory_are_read_from_proc() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n";
        assert_eq!(
            cpu_model(cpuinfo).as_deref(),
            Some("Intel(R) Xeon(R) CPU @ 2.20GHz")
        );
        assert_eq!(cpu_model("processor : 0\n"), None);
        assert_eq!(
            memory_total("MemTotal:       24684544 kB\nMemFree: 1 kB\n").as_deref(),
            Some("23.5 GiB")
        );
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc_date(1_767_225_599), "2025-12-31 23:59 UTC");
    }
}
