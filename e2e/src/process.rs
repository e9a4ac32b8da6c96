//! A service run as a real child process, for the fault tests that must kill
//! it with SIGKILL (a thread cannot be killed like that).
//!
//! The binary is the one cargo built next to the test executable
//! (`target/debug/<name>`); `cargo test --workspace` builds every service's
//! binary before running tests. Its bound address is read from its JSON
//! start-up log line, so it can listen on port 0.

use std::{net::SocketAddr, path::PathBuf, process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

/// A running service process; killed when dropped.
pub struct ServiceProcess {
    child: Child,
    /// The address it reported listening on.
    pub addr: SocketAddr,
}

/// The path of a workspace binary built for these tests.
pub fn binary(name: &str) -> PathBuf {
    let test_exe = std::env::current_exe().expect("the test executable's path");
    // target/debug/deps/<test> → target/debug/<name>
    let path = test_exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join(name))
        .expect("a target directory");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --bin {name}` (cargo test --workspace does)",
        path.display()
    );
    path
}

impl ServiceProcess {
    /// Starts binary `name` with `env` and waits (up to `patience`) for the
    /// log line whose `addr_field` holds its listening address.
    pub async fn start(
        name: &str,
        env: &[(&str, String)],
        addr_field: &str,
        patience: Duration,
    ) -> Self {
        let mut child = Command::new(binary(name))
            .envs(env.iter().map(|(key, value)| (*key, value.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name}: {error}"));
        let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let find_addr = async {
            while let Ok(Some(line)) = lines.next_line().await {
                let parsed: Option<SocketAddr> = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .and_then(|log| log[addr_field].as_str().and_then(|a| a.parse().ok()));
                if let Some(addr) = parsed {
                    return Some(addr);
                }
            }
            None
        };
        let addr = tokio::time::timeout(patience, find_addr)
            .await
            .unwrap_or_else(|_| panic!("{name} did not report {addr_field} within {patience:?}"))
            .unwrap_or_else(|| panic!("{name} exited before reporting {addr_field}"));
        // Keep draining its output so a full pipe never blocks it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self { child, addr }
    }

    /// Kills the process with SIGKILL: no shutdown code runs.
    pub async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL delivered");
    }

    /// Sends SIGTERM (what `docker stop` sends) and waits up to `patience`
    /// for the process to exit; returns its exit status.
    pub async fn terminate(mut self, patience: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().expect("still running");
        let sent = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM delivered");
        tokio::time::timeout(patience, self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("no exit within {patience:?} of SIGTERM"))
            .expect("exit status")
    }
}
