//! A service run as a real child process: for the fault tests that must kill it
//! with SIGKILL (a thread cannot be killed like that), and for the benchmark, which
//! measures each service's own CPU time.
//!
//! The binary is one cargo built next to the running executable (`target/debug` for
//! a test, `target/release` for the release benchmark). The service listens on port
//! 0 and its bound address is read from its JSON start-up log line. Every line it
//! writes goes to the owner's callback, so a pipe never fills and blocks it. It is
//! killed when dropped, so a failure anywhere never leaves it running.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The last lines of output kept for the error of a service that did not start.
const LAST_WORDS: usize = 20;

/// The directory of the binaries built with the running executable: its own, or
/// the one above for a test executable (`target/debug/deps/<test>`).
pub fn target_dir() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find this executable's path")?;
    let dir = exe.parent().context("this executable has no directory")?;
    Ok(match dir.parent() {
        Some(parent) if dir.ends_with("deps") => parent.to_path_buf(),
        _ => dir.to_path_buf(),
    })
}

/// `dir/name`, if that binary has been built.
pub fn binary_in(dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(name);
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: build it with `cargo build --locked --bins` \
         (with --release for target/release)",
        path.display()
    );
    Ok(path)
}

/// Workspace binary `name` built with the running executable.
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    binary_in(&target_dir()?, name)
}

/// Which of a child's outputs a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Standard output: the services' JSON logs.
    Stdout,
    /// Standard error.
    Stderr,
}

/// A line callback that shows standard error (in a test's captured output) and
/// drops the rest.
pub fn show_stderr(output: Output, line: &str) {
    if output == Output::Stderr {
        eprintln!("{line}");
    }
}

/// A running service process; killed when dropped.
#[derive(Debug)]
pub struct ServiceProcess {
    /// Its pid.
    pub pid: u32,
    /// The address it reported listening on.
    pub addr: SocketAddr,
    child: Child,
    readers: Vec<JoinHandle<()>>,
}

/// How a service process ended.
#[derive(Debug, Clone, Copy)]
pub struct Stopped {
    /// Whether it exited on SIGTERM within the grace period (else it was killed).
    pub graceful: bool,
    /// Its exit status, if it could be read.
    pub status: Option<ExitStatus>,
}

impl ServiceProcess {
    /// Spawns `command` (its program and environment set) and waits up to
    /// `patience` for the JSON log line whose `addr_field` holds the address it
    /// bound. Every line of its output is passed to `on_line`.
    pub async fn start(
        mut command: Command,
        addr_field: &'static str,
        patience: Duration,
        on_line: impl Fn(Output, &str) + Send + Sync + 'static,
    ) -> anyhow::Result<Self> {
        let name = command
            .as_std()
            .get_program()
            .to_string_lossy()
            .into_owned();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {name}"))?;
        let pid = child.id().context("the child has no pid")?;
        let on_line = Arc::new(on_line);
        let last_words = Arc::new(Mutex::new(VecDeque::new()));
        let (found, addr) = oneshot::channel();
        let mut found = Some(found);
        let stdout = child.stdout.take().context("piped stdout")?;
        let stderr = child.stderr.take().context("piped stderr")?;
        let readers = vec![
            tokio::spawn(read(
                stdout,
                Output::Stdout,
                on_line.clone(),
                last_words.clone(),
                {
                    move |line: &str| {
                        if let Some(addr) = address_in(line, addr_field)
                            && let Some(found) = found.take()
                        {
                            let _ = found.send(addr);
                        }
                    }
                },
            )),
            tokio::spawn(read(
                stderr,
                Output::Stderr,
                on_line,
                last_words.clone(),
                |_: &str| {},
            )),
        ];
        let mut process = Self {
            pid,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child,
            readers,
        };
        let failed = match tokio::time::timeout(patience, addr).await {
            Ok(Ok(addr)) => {
                process.addr = addr;
                return Ok(process);
            }
            Ok(Err(_)) => {
                // stdout closed: the process is exiting; give it a moment to say why.
                for reader in std::mem::take(&mut process.readers) {
                    let _ = tokio::time::timeout(Duration::from_secs(2), reader).await;
                }
                format!("{name} exited before logging `{addr_field}`")
            }
            Err(_) => format!("{name} did not log `{addr_field}` within {patience:?}"),
        };
        let last_words = last_words.lock().unwrap_or_else(PoisonError::into_inner);
        let last_words: Vec<&str> = last_words.iter().map(String::as_str).collect();
        anyhow::bail!("{failed}; its last words:\n{}", last_words.join("\n"))
    }

    /// Kills the process with SIGKILL: no shutdown code runs.
    pub async fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill().await.context("SIGKILL not delivered")
    }

    /// Sends SIGTERM (what `docker stop` sends) and waits up to `grace` for the exit,
    /// killing it after that; then reads its output to the end.
    pub async fn stop(mut self, grace: Duration) -> Stopped {
        let mut stopped = Stopped {
            graceful: false,
            status: None,
        };
        if let Ok(Some(exited)) = self.child.try_wait() {
            stopped.status = Some(exited);
        } else {
            // `kill` is the portable way without unsafe code: the workspace forbids it.
            let signalled = Command::new("kill")
                .args(["-TERM", &self.pid.to_string()])
                .stdin(Stdio::null())
                .status()
                .await
                .is_ok_and(|s| s.success());
            if signalled
                && let Ok(Ok(exited)) = tokio::time::timeout(grace, self.child.wait()).await
            {
                stopped = Stopped {
                    graceful: true,
                    status: Some(exited),
                };
            } else {
                let _ = self.child.kill().await;
                stopped.status = self.child.try_wait().ok().flatten();
            }
        }
        for reader in std::mem::take(&mut self.readers) {
            let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
        }
        stopped
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
    }
}

/// Passes each line of `output` to `look` and then `on_line`, keeping the last ones.
async fn read(
    output: impl AsyncRead + Unpin,
    which: Output,
    on_line: Arc<impl Fn(Output, &str) + Send + Sync>,
    last_words: Arc<Mutex<VecDeque<String>>>,
    mut look: impl FnMut(&str),
) {
    let mut lines = BufReader::new(output).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        look(&line);
        on_line(which, &line);
        let mut last_words = last_words.lock().unwrap_or_else(PoisonError::into_inner);
        if last_words.len() == LAST_WORDS {
            last_words.pop_front();
        }
        last_words.push_back(line);
    }
}

/// The socket address in field `field` of a JSON log line.
pub fn address_in(line: &str, field: &str) -> Option<SocketAddr> {
    let log: serde_json::Value = serde_json::from_str(line).ok()?;
    log.get(field)?.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_address_is_read_from_the_start_up_line() {
        let line = r#"{"timestamp":"…","level":"INFO","target":"service::startup","service":"gateway","version":"0.1.0","http_address":"127.0.0.1:40123","message":"listening"}"#;
        assert_eq!(
            address_in(line, "http_address"),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(address_in(line, "grpc_address"), None);
        assert_eq!(address_in("not json", "http_address"), None);
    }

    #[tokio::test]
    async fn a_process_that_exits_early_says_its_last_words() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo starting; echo broken >&2; exit 3"]);
        let error = ServiceProcess::start(command, "addr", Duration::from_secs(30), show_stderr)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("sh exited before logging `addr`"), "{error}");
        assert!(
            error.contains("starting") && error.contains("broken"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn a_process_reports_its_address_and_stops_on_sigterm() {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            // The trap is set before the address is written: a SIGTERM sent as
            // soon as the address is read must find it.
            r#"trap 'exit 0' TERM; echo '{"addr":"127.0.0.1:4"}'; while :; do sleep 0.1; done"#,
        ]);
        let process = ServiceProcess::start(command, "addr", Duration::from_secs(30), show_stderr)
            .await
            .unwrap();
        assert_eq!(process.addr, "127.0.0.1:4".parse().unwrap());
        let stopped = process.stop(Duration::from_secs(30)).await;
        assert!(
            stopped.graceful && stopped.status.unwrap().success(),
            "{stopped:?}"
        );
    }
}
