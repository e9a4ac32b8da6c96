//! What the benchmark reads from `/proc`: a process's CPU time and peak memory, the
//! machine's busy time, and the RabbitMQ node's process.
//!
//! A [`Snapshot`] reads a fixed list of processes (the services, the broker, this one)
//! and, optionally, processes found anew at each snapshot (PostgreSQL's backends, which
//! a connection pool may open during the window): those are matched by pid between two
//! snapshots, one that appeared in between counting from zero. Several processes may
//! share a label (the replicas of a service, the nodes of a cluster): their CPU time is
//! summed under it.
//!
//! CPU time is `utime + stime` of `/proc/<pid>/stat` (all threads of the process), in
//! clock ticks of `CLK_TCK` (read with `getconf CLK_TCK`, normally 100 per second), so
//! one reading has a 10 ms resolution: over a window of several seconds and thousands of
//! checkouts that is well below the figures reported. Peak memory is `VmHWM` of
//! `/proc/<pid>/status`, the resident set's high-water mark since the process started.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

/// CPU time used by a process so far, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct CpuTicks(pub u64);

/// Parses `utime + stime` (fields 14 and 15) out of the contents of `/proc/<pid>/stat`,
/// or with `children`, `cutime + cstime` (fields 16 and 17): the CPU time of the
/// process's children that it has waited for.
///
/// Field 2, the command name, is in parentheses and may itself contain spaces and
/// parentheses, so the fields are counted from the *last* `)`.
pub fn parse_stat_cpu(stat: &str, children: bool) -> Option<CpuTicks> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // After the name: field 3 (state) is index 0, so field N is index N - 3.
    let first = if children { 16 - 3 } else { 14 - 3 };
    let mut fields = after_name.split_whitespace().skip(first);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(CpuTicks(user + system))
}

/// The value in kB of a `Name:   1234 kB` line of `/proc/<pid>/status` (e.g. `VmHWM`).
pub fn parse_status_kb(status: &str, name: &str) -> Option<u64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(':')?;
        let mut parts = rest.split_whitespace();
        let value = parts.next()?.parse().ok()?;
        (parts.next() == Some("kB")).then_some(value)
    })
}

/// Busy and total clock ticks of all CPUs, from the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MachineTicks {
    /// Everything but idle and iowait.
    pub busy: u64,
    /// user + nice + system + idle + iowait + irq + softirq + steal (guest time is
    /// already part of user time).
    pub total: u64,
}

/// Parses the aggregate `cpu ` line of `/proc/stat`.
pub fn parse_machine_ticks(stat: &str) -> Option<MachineTicks> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|field| field.parse().ok())
        .collect::<Option<_>>()?;
    if values.len() < 5 {
        return None;
    }
    let total: u64 = values.iter().sum();
    let idle = values[3] + values[4];
    Some(MachineTicks {
        busy: total - idle,
        total,
    })
}

/// Reads a process's CPU time.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<CpuTicks> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_stat_cpu(&stat, false).with_context(|| format!("cannot parse {path}"))
}

/// Reads the CPU time of this process's children it has waited for: how the CPU of a
/// short-lived child (wrk) is measured, since its `/proc` entry is gone once it exited.
pub fn children_cpu_ticks() -> anyhow::Result<CpuTicks> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("cannot read /proc/self/stat")?;
    parse_stat_cpu(&stat, true).context("cannot parse /proc/self/stat")
}

/// Reads a process's peak resident set (`VmHWM`), in kB.
pub fn peak_rss_kb(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
    parse_status_kb(&status, "VmHWM").with_context(|| format!("no VmHWM in {path}"))
}

/// Reads the machine's CPU ticks.
pub fn machine_ticks() -> anyhow::Result<MachineTicks> {
    let stat = std::fs::read_to_string("/proc/stat").context("cannot read /proc/stat")?;
    parse_machine_ticks(&stat).context("cannot parse /proc/stat")
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 if that cannot be run).
pub fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|output| String::from_utf8(output.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

/// Converts a tick count to a duration.
pub fn ticks_to_duration(ticks: u64, per_second: u64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / per_second.max(1) as f64)
}

/// CPU times of some processes and of the machine at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    processes: Vec<(String, CpuTicks)>,
    /// Processes found for this snapshot: label, pid, CPU time.
    found: Vec<(String, u32, CpuTicks)>,
    machine: MachineTicks,
}

impl Snapshot {
    /// Reads the CPU time of each `(label, pid)` and of the machine.
    pub fn take(processes: &[(String, u32)]) -> anyhow::Result<Self> {
        Self::take_with(processes, &[])
    }

    /// Like [`Snapshot::take`], plus the processes `found` just now; one of those that
    /// has exited since it was found is left out (it belongs to no window).
    pub fn take_with(processes: &[(String, u32)], found: &[(String, u32)]) -> anyhow::Result<Self> {
        Ok(Self {
            processes: processes
                .iter()
                .map(|(label, pid)| {
                    cpu_ticks(*pid)
                        .with_context(|| format!("measuring {label}"))
                        .map(|ticks| (label.clone(), ticks))
                })
                .collect::<anyhow::Result<_>>()?,
            found: found
                .iter()
                .filter_map(|(label, pid)| Some((label.clone(), *pid, cpu_ticks(*pid).ok()?)))
                .collect(),
            machine: machine_ticks()?,
        })
    }

    /// What each process and the machine used from `self` until `later` (same fixed
    /// processes, same order). Found processes are summed per label: each one in `later`
    /// counts from its time in `self`, or from zero if it was not there (it started in
    /// between). One that exited in between is lost with its CPU time.
    pub fn until(&self, later: &Snapshot, ticks_per_second: u64) -> Usage {
        let mut measured_ticks = 0;
        let mut per_process: Vec<(String, Duration)> = self
            .processes
            .iter()
            .zip(&later.processes)
            .map(|((label, before), (_, after))| {
                let ticks = after.0.saturating_sub(before.0);
                measured_ticks += ticks;
                (label.clone(), ticks_to_duration(ticks, ticks_per_second))
            })
            .collect();
        let mut found: Vec<(String, u64)> = Vec::new();
        for (label, _, _) in self.found.iter().chain(&later.found) {
            if !found.iter().any(|(seen, _)| seen == label) {
                found.push((label.clone(), 0));
            }
        }
        for (label, pid, after) in &later.found {
            let before = self
                .found
                .iter()
                .find(|(l, p, _)| p == pid && l == label)
                .map_or(0, |(_, _, ticks)| ticks.0);
            let ticks = after.0.saturating_sub(before);
            measured_ticks += ticks;
            if let Some((_, sum)) = found.iter_mut().find(|(l, _)| l == label) {
                *sum += ticks;
            }
        }
        per_process.extend(
            found
                .into_iter()
                .map(|(label, ticks)| (label, ticks_to_duration(ticks, ticks_per_second))),
        );
        let total = later.machine.total.saturating_sub(self.machine.total);
        let busy = later.machine.busy.saturating_sub(self.machine.busy);
        let share = |ticks: u64| {
            if total == 0 {
                0.0
            } else {
                ticks as f64 / total as f64
            }
        };
        Usage {
            per_process,
            machine_busy: share(busy),
            unaccounted_busy: share(busy.saturating_sub(measured_ticks)),
        }
    }
}

/// CPU use over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    /// CPU time of each measured process.
    pub per_process: Vec<(String, Duration)>,
    /// Share of all CPUs' time that was busy, 0–1.
    pub machine_busy: f64,
    /// Share of all CPUs' time busy in *other* processes (and the kernel's own threads),
    /// 0–1: a few percent is normal (disk flushes, network interrupts); much more means
    /// something else ran on the machine and disturbed the figures.
    pub unaccounted_busy: f64,
}

/// The RabbitMQ node's Erlang VM (`beam.smp`) and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerProcess {
    /// Its pid.
    pub pid: u32,
    /// `rabbitmqctl eval 'os:getpid().'` or a /proc scan.
    pub found_by: &'static str,
}

/// Finds the local RabbitMQ node's `beam.smp`: asks the node for its OS pid (bounded by
/// `rabbitmqctl`'s own timeout), else scans /proc for a single `beam.smp` whose command
/// line mentions rabbit.
pub fn find_broker() -> anyhow::Result<BrokerProcess> {
    let asked = std::process::Command::new("rabbitmqctl")
        .args(["--timeout", "20", "eval", "os:getpid()."])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| parse_erlang_pid(&String::from_utf8_lossy(&output.stdout)));
    if let Some(pid) = asked
        && is_beam(pid)
    {
        return Ok(BrokerProcess {
            pid,
            found_by: "rabbitmqctl eval 'os:getpid().'",
        });
    }
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").context("cannot list /proc")? {
        let Some(pid) = entry
            .ok()
            .and_then(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if is_beam(pid) && String::from_utf8_lossy(&cmdline).contains("rabbit") {
            found.push(pid);
        }
    }
    match found.as_slice() {
        [pid] => Ok(BrokerProcess {
            pid: *pid,
            found_by: "/proc scan for beam.smp",
        }),
        [] => anyhow::bail!("no RabbitMQ beam.smp process found (is RabbitMQ running locally?)"),
        _ => anyhow::bail!("several RabbitMQ beam.smp processes found: {found:?}"),
    }
}

/// The pid in `rabbitmqctl eval 'os:getpid().'` output (`"8620"`).
pub fn parse_erlang_pid(output: &str) -> Option<u32> {
    output
        .lines()
        .find_map(|line| line.trim().trim_matches('"').parse().ok())
}

/// Whether `pid` is an Erlang VM (`beam.smp`).
pub(crate) fn is_beam(pid: u32) -> bool {
    std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("comm"))
        .is_ok_and(|comm| comm.trim() == "beam.smp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_is_utime_plus_stime_counted_from_the_last_parenthesis() {
        let stat = "8620 (beam.smp) S 1 8619 8619 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 30 0 999 \
                    0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat_cpu(stat, false), Some(CpuTicks(1234 + 567)));
        let odd_name = "42 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 11 22 0 0";
        assert_eq!(parse_stat_cpu(odd_name, false), Some(CpuTicks(33)));
        assert_eq!(parse_stat_cpu("42 (short) R 1 2", false), None);
        assert_eq!(parse_stat_cpu("no parenthesis", false), None);
        let waited = "8620 (bench) S 1 8619 8619 0 -1 4194560 100 0 0 0 1234 567 80 9 20 0";
        assert_eq!(parse_stat_cpu(waited, true), Some(CpuTicks(80 + 9)));
        assert_eq!(parse_stat_cpu("42 (short) R 1 2", true), None);
        assert!(children_cpu_ticks().is_ok());
    }

    #[test]
    fn status_values_are_read_in_kb() {
        let status = "Name:\tgateway\nVmPeak:\t  123456 kB\nVmHWM:\t   20480 kB\nVmRSS:\t   19000 kB\nThreads:\t3\n";
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(20_480));
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(19_000));
        assert_eq!(parse_status_kb(status, "Threads"), None, "not a kB line");
        assert_eq!(parse_status_kb(status, "VmSwap"), None);
    }

    #[test]
    fn machine_busy_share_excludes_idle_and_iowait() {
        let before = parse_machine_ticks("cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 1 2 3\n").unwrap();
        assert_eq!(
            before,
            MachineTicks {
                busy: 150,
                total: 1000
            }
        );
        let after = parse_machine_ticks("cpu  250 0 100 1550 100 0 0 0 0 0\n").unwrap();
        assert_eq!(
            after,
            MachineTicks {
                busy: 350,
                total: 2000
            }
        );
        assert_eq!(parse_machine_ticks("intr 1 2 3"), None);
    }

    #[test]
    fn erlang_pid_output_is_parsed() {
        assert_eq!(parse_erlang_pid("\"8620\"\n"), Some(8620));
        assert_eq!(parse_erlang_pid("Error: unable to connect\n"), None);
        assert_eq!(
            ticks_to_duration(250, 100),
            Duration::from_millis(2_500),
            "CLK_TCK 100: a tick is 10 ms"
        );
    }

    #[test]
    fn snapshots_give_cpu_time_per_process() {
        let before = Snapshot {
            processes: vec![("a".into(), CpuTicks(100)), ("b".into(), CpuTicks(5))],
            found: Vec::new(),
            machine: MachineTicks { busy: 0, total: 0 },
        };
        let after = Snapshot {
            processes: vec![("a".into(), CpuTicks(350)), ("b".into(), CpuTicks(5))],
            found: Vec::new(),
            machine: MachineTicks {
                busy: 300,
                total: 1_000,
            },
        };
        let usage = before.until(&after, 100);
        assert_eq!(
            usage.per_process,
            vec![
                ("a".to_owned(), Duration::from_millis(2_500)),
                ("b".to_owned(), Duration::ZERO)
            ]
        );
        assert!((usage.machine_busy - 0.3).abs() < 1e-9);
        // 300 busy ticks, 250 of them in the measured processes.
        assert!((usage.unaccounted_busy - 0.05).abs() < 1e-9);
    }

    #[test]
    fn found_processes_are_matched_by_pid_and_summed_per_label() {
        let machine = MachineTicks {
            busy: 0,
            total: 1_000,
        };
        let before = Snapshot {
            processes: vec![("broker".into(), CpuTicks(10))],
            found: vec![
                ("postgres".into(), 101, CpuTicks(40)),
                ("postgres".into(), 102, CpuTicks(7)),
                ("postgres rest".into(), 200, CpuTicks(3)),
            ],
            machine,
        };
        let after = Snapshot {
            processes: vec![("broker".into(), CpuTicks(30))],
            found: vec![
                // 101 ran on, 102 exited, 103 started in the window.
                ("postgres".into(), 101, CpuTicks(100)),
                ("postgres".into(), 103, CpuTicks(25)),
                ("postgres rest".into(), 200, CpuTicks(3)),
            ],
            machine: MachineTicks {
                busy: 500,
                total: 2_000,
            },
        };
        let usage = before.until(&after, 100);
        assert_eq!(
            usage.per_process,
            vec![
                ("broker".to_owned(), Duration::from_millis(200)),
                ("postgres".to_owned(), Duration::from_millis(850)),
                ("postgres rest".to_owned(), Duration::ZERO),
            ]
        );
        // 500 busy ticks, 20 + 85 of them measured.
        assert!((usage.unaccounted_busy - 0.395).abs() < 1e-9);
        let me = std::process::id();
        let gone = Snapshot::take_with(
            &[("bench".into(), me)],
            &[("bench".into(), me), ("gone".into(), u32::MAX)],
        )
        .unwrap();
        assert_eq!(gone.found.len(), 1, "a process that is gone is left out");
    }

    #[test]
    fn this_process_can_be_measured() {
        let me = std::process::id();
        assert!(cpu_ticks(me).is_ok());
        assert!(peak_rss_kb(me).unwrap() > 0);
        assert!(machine_ticks().unwrap().total > 0);
    }
}
