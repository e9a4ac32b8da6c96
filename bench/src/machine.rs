//! Describing the machine and the code under test: date, commit, CPU, memory, kernel,
//! compiler, broker and database versions.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::report::{Environment, utc_date};
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

/// The environment of a run against `deployment` that writes `output`. The commit is
/// dirty when a tracked file other than `output` has changes: the other topology's run
/// rewrote `output`, which says nothing about the code measured.
pub fn describe(deployment: &Deployment, clock_ticks: u64, output: &Path) -> Environment {
    let unknown = || "unknown".to_owned();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let commit = match first_line("git", &["rev-parse", "--short", "HEAD"]) {
        Some(hash) => {
            let not_output = format!(":(exclude){}", output.display());
            let dirty = Command::new("git")
                .args(["status", "--porcelain", "--untracked-files=no", "--", "."])
                .arg(not_output)
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
        nproc: std::thread::available_parallelism().map_or(0, usize::from),
        cpu_model: cpu_model(&read("/proc/cpuinfo")).unwrap_or_else(unknown),
        memory: memory_total(&read("/proc/meminfo")).unwrap_or_else(unknown),
        kernel: first_line("uname", &["-r"]).unwrap_or_else(unknown),
        rustc: first_line("rustc", &["--version"]).unwrap_or_else(unknown),
        rabbitmq: first_line("rabbitmqctl", &["--timeout", "20", "version"])
            .unwrap_or_else(unknown),
        broker_pid: deployment.broker_found_by.clone(),
        postgres: deployment
            .postgres
            .as_ref()
            .map(|server| server.version.clone())
            .unwrap_or_default(),
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
}
