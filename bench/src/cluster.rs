//! The private RabbitMQ cluster of `--topology cluster`: [`CLUSTER_NODES`] nodes started
//! for the benchmark with `scripts/rabbitmq-cluster` on free ports, their Erlang VMs'
//! pids (for their CPU time), where a quorum queue's replicas are, and stopping the
//! cluster at the end.
//!
//! The machine's default RabbitMQ node is never touched: the nodes are private ones
//! (`scripts/rabbitmq-node`), with their data, logs and pid files under
//! `/tmp/rabbitmq-private/<prefix>-<i>`. A [`PrivateCluster`] that is dropped without
//! [`PrivateCluster::stop`] (an error, Ctrl-C) stops the nodes in its `Drop`, blocking:
//! a benchmark that ends must not leave three Erlang VMs running.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::process::Command;

/// Nodes in the cluster, and the replicas of each quorum queue.
pub const CLUSTER_NODES: usize = 3;

/// Where `scripts/rabbitmq-node` keeps each private node's directory.
const NODES_DIR: &str = "/tmp/rabbitmq-private";

/// Longest wait for the cluster to start and join (the script bounds each step too).
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// Longest wait for the nodes to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(180);

/// Longest wait for one `rabbitmqctl` question.
const CTL_TIMEOUT: Duration = Duration::from_secs(60);

/// `scripts/` of this repository (the benchmark is a tool of this repository, run from
/// its checkout by `scripts/bench`).
fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts")
}

/// A private cluster of [`CLUSTER_NODES`] RabbitMQ nodes; stopped when dropped.
#[derive(Debug)]
pub struct PrivateCluster {
    prefix: String,
    nodes: usize,
    amqp_base: u16,
    dist_base: u16,
    /// Whether the nodes may be running (from the moment `start` is called until they
    /// are stopped), so `Drop` knows whether to stop them.
    live: bool,
}

impl PrivateCluster {
    /// A cluster on free ports with a fresh name, not started yet.
    pub fn new() -> anyhow::Result<Self> {
        let (amqp_base, dist_base) = free_port_ranges(CLUSTER_NODES)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        Ok(Self {
            prefix: format!("bench-{}", &id[..8]),
            nodes: CLUSTER_NODES,
            amqp_base,
            dist_base,
            live: false,
        })
    }

    /// Starts the nodes, joins them and waits until all of them run
    /// (`scripts/rabbitmq-cluster start`, its progress on stderr).
    pub async fn start(&mut self) -> anyhow::Result<()> {
        // From here on a stop is due, even if the start is interrupted half-way.
        self.live = true;
        let script = scripts_dir().join("rabbitmq-cluster");
        let args = [
            "start".to_owned(),
            self.prefix.clone(),
            self.nodes.to_string(),
            self.amqp_base.to_string(),
            self.dist_base.to_string(),
        ];
        let output = tokio::time::timeout(
            START_TIMEOUT,
            Command::new(&script)
                .args(&args)
                .stdin(Stdio::null())
                .stderr(Stdio::inherit())
                .output(),
        )
        .await
        .with_context(|| format!("{} did not start within {START_TIMEOUT:?}", self.prefix))?
        .with_context(|| format!("cannot run {}", script.display()))?;
        anyhow::ensure!(
            output.status.success(),
            "{} start failed ({})",
            script.display(),
            output.status
        );
        let printed = String::from_utf8_lossy(&output.stdout);
        anyhow::ensure!(
            printed.trim() == self.amqp_url(),
            "the script printed {:?}, not the expected node list",
            printed.trim()
        );
        Ok(())
    }

    /// Each node's `amqp://` URL (node 1 first).
    pub fn node_urls(&self) -> Vec<String> {
        (0..self.nodes)
            .map(|i| {
                format!(
                    "amqp://guest:guest@127.0.0.1:{}/%2f",
                    self.amqp_base + i as u16
                )
            })
            .collect()
    }

    /// The services' `AMQP_URL`: every node's URL, comma-separated.
    pub fn amqp_url(&self) -> String {
        self.node_urls().join(",")
    }

    /// `NAME` of node `i`'s `NAME@localhost` (1-based, as the script names them).
    fn node_name(&self, i: usize) -> String {
        format!("{}-{i}", self.prefix)
    }

    /// The Erlang VM (`beam.smp`) pid of every node, from the nodes' pid files.
    pub fn pids(&self) -> anyhow::Result<Vec<u32>> {
        (1..=self.nodes)
            .map(|i| {
                let name = self.node_name(i);
                let path = Path::new(NODES_DIR).join(&name).join(format!("{name}.pid"));
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let pid: u32 = text
                    .trim()
                    .parse()
                    .with_context(|| format!("{} holds no pid", path.display()))?;
                anyhow::ensure!(
                    crate::procfs::is_beam(pid),
                    "pid {pid} of {} is not a beam.smp",
                    path.display()
                );
                Ok(pid)
            })
            .collect()
    }

    /// `NAME@localhost` of node 1, which `rabbitmqctl -n` addresses.
    pub fn ctl_node(&self) -> String {
        format!("{}@localhost", self.node_name(1))
    }

    /// Stops the nodes and removes their directories (`scripts/rabbitmq-cluster stop`).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if !self.live {
            return Ok(());
        }
        let script = scripts_dir().join("rabbitmq-cluster");
        let status = tokio::time::timeout(
            STOP_TIMEOUT,
            Command::new(&script)
                .args(["stop", &self.prefix, &self.nodes.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .status(),
        )
        .await
        .with_context(|| format!("{} did not stop within {STOP_TIMEOUT:?}", self.prefix))?
        .with_context(|| format!("cannot run {}", script.display()))?;
        anyhow::ensure!(status.success(), "{} stop failed ({status})", self.prefix);
        self.live = false;
        Ok(())
    }

    /// `<prefix>-1..N`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{}-1..{} (AMQP 127.0.0.1:{}..{})",
            self.prefix,
            self.nodes,
            self.amqp_base,
            self.amqp_base + self.nodes as u16 - 1
        )
    }
}

impl Drop for PrivateCluster {
    /// The fallback when [`PrivateCluster::stop`] did not run: blocks until the script
    /// has stopped the nodes. Never panics.
    fn drop(&mut self) {
        if !self.live {
            return;
        }
        eprintln!(
            "bench: stopping the private RabbitMQ cluster {}",
            self.prefix
        );
        let stopped = std::process::Command::new(scripts_dir().join("rabbitmq-cluster"))
            .args(["stop", &self.prefix, &self.nodes.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !stopped {
            eprintln!(
                "bench: could not stop {}: `scripts/rabbitmq-cluster stop {} {}`",
                self.prefix, self.prefix, self.nodes
            );
        }
    }
}

/// How many nodes quorum queue `queue` (vhost `/`) has a replica on, as cluster node
/// `node` (`NAME@localhost`) sees it (`rabbitmqctl list_queues name members`); `None` if
/// it cannot be told.
pub async fn queue_members(node: &str, queue: &str) -> Option<usize> {
    let output = tokio::time::timeout(
        CTL_TIMEOUT,
        Command::new("rabbitmqctl")
            .args(["-q", "-n", node, "list_queues", "name", "members"])
            .args(["--formatter", "json"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    if !output.status.success() {
        return None;
    }
    members_in(&String::from_utf8_lossy(&output.stdout), queue)
}

/// The number of members of `queue` in `rabbitmqctl list_queues name members
/// --formatter json` output.
pub fn members_in(json: &str, queue: &str) -> Option<usize> {
    let queues: serde_json::Value = serde_json::from_str(json).ok()?;
    queues
        .as_array()?
        .iter()
        .find(|q| q["name"] == queue)?
        .get("members")?
        .as_array()
        .map(Vec::len)
}

/// Two ranges of `count` consecutive loopback ports, all free a moment ago (the nodes'
/// AMQP and distribution ports: the script numbers them from a base). Drawn at random
/// below the kernel's ephemeral ports (32768 and up), where nothing else picks ports on
/// its own.
fn free_port_ranges(count: usize) -> anyhow::Result<(u16, u16)> {
    let count = u16::try_from(count).context("too many nodes")?;
    for _ in 0..100 {
        let random = uuid::Uuid::new_v4().as_u128();
        let amqp = 20_000 + (random % 6_000) as u16;
        let dist = 26_000 + ((random >> 64) % 6_000) as u16;
        let free = (0..count).all(|i| {
            TcpListener::bind(("127.0.0.1", amqp + i)).is_ok()
                && TcpListener::bind(("127.0.0.1", dist + i)).is_ok()
        });
        if free {
            return Ok((amqp, dist));
        }
    }
    anyhow::bail!("no {count} consecutive free ports found for the cluster")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_cluster_has_a_node_list_and_nothing_to_stop() {
        let cluster = PrivateCluster::new().unwrap();
        let urls = cluster.node_urls();
        assert_eq!(urls.len(), CLUSTER_NODES);
        assert!(urls[0].starts_with("amqp://guest:guest@127.0.0.1:"));
        assert_eq!(cluster.amqp_url(), urls.join(","));
        assert!(cluster.prefix.starts_with("bench-"));
        assert!(!cluster.live, "dropping an unstarted cluster runs nothing");
    }

    #[test]
    fn queue_members_are_counted_from_rabbitmqctl_json() {
        let json = r#"[{"name":"other","members":["a@localhost"]},
            {"name":"bench-raw-1","members":["n-1@localhost","n-2@localhost","n-3@localhost"]}]"#;
        assert_eq!(members_in(json, "bench-raw-1"), Some(3));
        assert_eq!(members_in(json, "other"), Some(1));
        assert_eq!(members_in(json, "missing"), None);
        assert_eq!(members_in("Error", "bench-raw-1"), None);
    }
}
