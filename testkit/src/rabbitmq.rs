//! Private RabbitMQ nodes, for the tests that stop, crash or restart one and for
//! the benchmark's cluster topology: the machine's default node, which other tests
//! and people use, is never touched.
//!
//! A [`PrivateCluster`] is N clustered nodes (`scripts/rabbitmq-cluster`, each node
//! a `scripts/rabbitmq-node` with its data, logs and pid file under
//! `/tmp/rabbitmq-private/<name>`) on free ports; a cluster of one is a private
//! broker. It can crash a node and start it again, run `rabbitmqctl` on a node, and
//! say where things are (running nodes, a quorum queue's leader and members, the
//! node a client is connected to). It is stopped and its directories removed when
//! dropped, however its owner ends.
//!
//! It needs what `rabbitmqctl` needs: root or the rabbitmq user (CI runs as root).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;
use tokio::process::Command;

/// Where `scripts/rabbitmq-node` keeps each private node's directory.
const NODES_DIR: &str = "/tmp/rabbitmq-private";

/// Longest wait for the nodes to start and join (the script bounds each step too).
const START_TIMEOUT: Duration = Duration::from_secs(600);

/// Longest wait for a node to stop, be killed or start again.
const NODE_TIMEOUT: Duration = Duration::from_secs(180);

/// Longest wait for one `rabbitmqctl` command.
const CTL_TIMEOUT: Duration = Duration::from_secs(60);

/// `scripts/NAME` of this repository (the tests and the benchmark run from its
/// checkout).
fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scripts")
        .join(name)
}

/// Runs `program ARGS` (no input) for at most `patience`; its standard output if it
/// succeeded. Standard error goes to ours when `show_stderr` (a script's progress),
/// else into the error.
async fn run(
    program: &Path,
    args: &[&str],
    patience: Duration,
    show_stderr: bool,
) -> anyhow::Result<String> {
    let command = || format!("{} {}", program.display(), args.join(" "));
    let output = tokio::time::timeout(
        patience,
        Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stderr(if show_stderr {
                Stdio::inherit()
            } else {
                Stdio::piped()
            })
            .kill_on_drop(true)
            .output(),
    )
    .await
    .with_context(|| format!("{} did not finish within {patience:?}", command()))?
    .with_context(|| format!("cannot run {}", command()))?;
    anyhow::ensure!(
        output.status.success(),
        "{} failed ({}): {}",
        command(),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `rabbitmqctl -q -n NODE ARGS` (`NAME@localhost`, this node only); its output.
pub async fn rabbitmqctl(node: &str, args: &[&str]) -> anyhow::Result<String> {
    let args = [&["-q", "-n", node], args].concat();
    run(Path::new("rabbitmqctl"), &args, CTL_TIMEOUT, false).await
}

/// `rabbitmqctl -q -n NODE ARGS --formatter json`, parsed.
pub async fn rabbitmqctl_json(node: &str, args: &[&str]) -> anyhow::Result<Value> {
    let json = rabbitmqctl(node, &[args, &["--formatter", "json"]].concat()).await?;
    serde_json::from_str(&json).with_context(|| format!("rabbitmqctl's JSON: {json}"))
}

/// The nodes (`NAME@localhost`) in column `column` (`members`, `online`) of queue
/// `queue` in `rabbitmqctl list_queues name COLUMN --formatter json` output; `None`
/// if the queue is not listed.
pub fn queue_nodes<'a>(queues: &'a Value, queue: &str, column: &str) -> Option<Vec<&'a str>> {
    let found = queues.as_array()?.iter().find(|q| q["name"] == queue)?;
    let nodes = found[column]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    Some(nodes.iter().filter_map(Value::as_str).collect())
}

/// Private clustered RabbitMQ nodes on free ports; stopped when dropped. Nodes are
/// numbered from 0 here (the scripts' `PREFIX-1` is node 0).
#[derive(Debug)]
pub struct PrivateCluster {
    prefix: String,
    /// `(AMQP port, distribution port)` of each node.
    ports: Vec<(u16, u16)>,
    /// Whether the nodes may be running (from the moment `start` is called until
    /// they are stopped), so `Drop` knows whether to stop them.
    live: bool,
}

impl PrivateCluster {
    /// `nodes` nodes named `LABEL-<12 hex digits>-i` on free ports, not started yet
    /// (for a test of services that start before their broker): see
    /// [`PrivateCluster::start`].
    pub fn new(label: &str, nodes: usize) -> anyhow::Result<Self> {
        let (amqp_base, dist_base) = crate::ports::free_port_ranges(nodes)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        Ok(Self {
            prefix: format!("{label}-{}", &id[..12]),
            ports: (0..nodes as u16)
                .map(|i| (amqp_base + i, dist_base + i))
                .collect(),
            live: false,
        })
    }

    /// [`new`](Self::new) and [`start`](Self::start).
    pub async fn started(label: &str, nodes: usize) -> anyhow::Result<Self> {
        let mut cluster = Self::new(label, nodes)?;
        cluster.start().await?;
        Ok(cluster)
    }

    /// Starts the nodes, joins them and waits until all of them run (the script's
    /// progress on stderr).
    pub async fn start(&mut self) -> anyhow::Result<()> {
        // From here on a stop is due, even if the start is interrupted half-way.
        self.live = true;
        let started = Instant::now();
        let (amqp, dist) = self.ports[0];
        let args = [self.len().to_string(), amqp.to_string(), dist.to_string()];
        let printed = run(
            &script("rabbitmq-cluster"),
            &["start", &self.prefix, &args[0], &args[1], &args[2]],
            START_TIMEOUT,
            true,
        )
        .await?;
        anyhow::ensure!(
            printed.trim() == self.amqp_url(),
            "the script printed {:?}, not the expected node list",
            printed.trim()
        );
        eprintln!(
            "private RabbitMQ nodes {} started in {:?}",
            self.describe(),
            started.elapsed()
        );
        Ok(())
    }

    /// Stops the nodes and removes their directories.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if self.live {
            let count = self.len().to_string();
            let args = ["stop", &self.prefix, &count];
            run(&script("rabbitmq-cluster"), &args, NODE_TIMEOUT, true).await?;
            self.live = false;
        }
        Ok(())
    }

    /// The cluster's `AMQP_URL`: every node's URL, comma-separated.
    pub fn amqp_url(&self) -> String {
        self.node_urls().join(",")
    }

    /// Each node's `amqp://` URL.
    pub fn node_urls(&self) -> Vec<String> {
        (0..self.len())
            .map(|i| format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.amqp_port(i)))
            .collect()
    }

    /// Node `index`'s AMQP port (the `server.port` of spans through it).
    pub fn amqp_port(&self, index: usize) -> u16 {
        self.ports[index].0
    }

    /// How many nodes the cluster has (running or not).
    pub fn len(&self) -> usize {
        self.ports.len()
    }

    /// Always false: a cluster has a node.
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }

    /// `NAME` of node `index`'s `NAME@localhost`.
    pub fn node_name(&self, index: usize) -> String {
        format!("{}-{}", self.prefix, index + 1)
    }

    /// `NAME@localhost` of node `index`, which `rabbitmqctl -n` addresses.
    pub fn node(&self, index: usize) -> String {
        format!("{}@localhost", self.node_name(index))
    }

    /// `PREFIX-1..N (AMQP 127.0.0.1:FIRST..LAST)`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "{}-1..{} (AMQP 127.0.0.1:{}..{})",
            self.prefix,
            self.len(),
            self.amqp_port(0),
            self.amqp_port(self.len() - 1)
        )
    }

    /// The Erlang VM's OS pid of every node, from the nodes' pid files.
    pub fn pids(&self) -> anyhow::Result<Vec<u32>> {
        (0..self.len())
            .map(|i| {
                let name = self.node_name(i);
                let path = Path::new(NODES_DIR).join(&name).join(format!("{name}.pid"));
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                text.trim()
                    .parse()
                    .with_context(|| format!("{} holds no pid", path.display()))
            })
            .collect()
    }

    /// The index of node `NAME@localhost`, if it is one of this cluster's.
    fn index_of(&self, node: &str) -> Option<usize> {
        (0..self.len()).find(|&i| node == self.node(i))
    }

    /// Crashes node `index`: SIGKILL to its VM. Its data stays, for
    /// [`PrivateCluster::restart`].
    pub async fn kill(&self, index: usize) -> anyhow::Result<()> {
        let args = ["kill", &self.node_name(index)];
        run(&script("rabbitmq-node"), &args, NODE_TIMEOUT, true).await?;
        Ok(())
    }

    /// Starts killed node `index` again on its data; it rejoins the cluster.
    pub async fn restart(&self, index: usize) -> anyhow::Result<()> {
        let (amqp, dist) = self.ports[index];
        let (amqp, dist) = (amqp.to_string(), dist.to_string());
        let args = ["start", &self.node_name(index), &amqp, &dist];
        run(&script("rabbitmq-node"), &args, NODE_TIMEOUT, true).await?;
        Ok(())
    }

    /// `rabbitmqctl -n NODE ARGS` on this cluster's node `index` only (never the
    /// machine's default node), e.g. `stop_app` to take the broker down while its
    /// VM stays up.
    pub async fn rabbitmqctl(&self, index: usize, args: &[&str]) -> anyhow::Result<String> {
        rabbitmqctl(&self.node(index), args).await
    }

    /// `rabbitmqctl ARGS --formatter json` on the first node that answers, parsed.
    async fn ask(&self, args: &[&str]) -> anyhow::Result<Value> {
        let mut errors = Vec::new();
        for index in 0..self.len() {
            match rabbitmqctl_json(&self.node(index), args).await {
                Ok(answer) => return Ok(answer),
                Err(error) => errors.push(format!("{error:#}")),
            }
        }
        anyhow::bail!("no node of {} answers: {errors:#?}", self.prefix)
    }

    /// Node indexes of `nodes` (`NAME@localhost`), sorted.
    fn indexes<'a>(&self, nodes: impl IntoIterator<Item = &'a str>) -> Vec<usize> {
        let mut indexes: Vec<usize> = nodes.into_iter().filter_map(|n| self.index_of(n)).collect();
        indexes.sort_unstable();
        indexes
    }

    /// The nodes running, as the cluster sees them.
    pub async fn running_nodes(&self) -> anyhow::Result<Vec<usize>> {
        let status = self.ask(&["cluster_status"]).await?;
        let running = status["running_nodes"].as_array().into_iter().flatten();
        Ok(self.indexes(running.filter_map(Value::as_str)))
    }

    /// The node holding the leader of quorum queue `queue` (in vhost `/`), if the
    /// queue exists and has one.
    pub async fn leader_of(&self, queue: &str) -> anyhow::Result<Option<usize>> {
        let queues = self.ask(&["list_queues", "name", "leader"]).await?;
        let found = queues
            .as_array()
            .into_iter()
            .flatten()
            .find(|q| q["name"] == queue);
        Ok(found.and_then(|q| self.index_of(q["leader"].as_str()?)))
    }

    /// The nodes quorum queue `queue` (in vhost `/`) is replicated on.
    pub async fn members_of(&self, queue: &str) -> anyhow::Result<Vec<usize>> {
        self.queue_column(queue, "members").await
    }

    /// The nodes whose member of quorum queue `queue` (in vhost `/`) is running: a
    /// node that was killed and started again counts once its member has recovered.
    pub async fn online_members_of(&self, queue: &str) -> anyhow::Result<Vec<usize>> {
        self.queue_column(queue, "online").await
    }

    async fn queue_column(&self, queue: &str, column: &str) -> anyhow::Result<Vec<usize>> {
        let queues = self.ask(&["list_queues", "name", column]).await?;
        Ok(self.indexes(queue_nodes(&queues, queue, column).unwrap_or_default()))
    }

    /// The nodes the open connections named `connection_name` (the name a client
    /// gives its connection: `checkout-service`, `stock-service`) are on, one entry
    /// per connection.
    pub async fn nodes_of_connection(&self, connection_name: &str) -> anyhow::Result<Vec<usize>> {
        let connections = self
            .ask(&["list_connections", "port", "client_properties"])
            .await?;
        Ok(connections
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| {
                client_property(&c["client_properties"], "connection_name") == Some(connection_name)
            })
            .filter_map(|c| {
                let port = u16::try_from(c["port"].as_u64()?).ok()?;
                self.ports.iter().position(|(amqp, _)| *amqp == port)
            })
            .collect())
    }
}

impl Drop for PrivateCluster {
    /// The fallback when [`PrivateCluster::stop`] did not run: blocks until the
    /// script has stopped the nodes. Never panics: it may run while a failed
    /// assertion unwinds, and then the nodes' logs are kept first, in
    /// `/tmp/rabbitmq-private-logs`.
    fn drop(&mut self) {
        if !self.live {
            return;
        }
        if std::thread::panicking() {
            let kept = format!("/tmp/rabbitmq-private-logs/{}", self.prefix);
            let copied = std::fs::create_dir_all(&kept).is_ok()
                && (0..self.len()).all(|i| {
                    let name = self.node_name(i);
                    std::process::Command::new("cp")
                        .arg("-r")
                        .arg(Path::new(NODES_DIR).join(&name).join("log"))
                        .arg(format!("{kept}/{name}"))
                        .status()
                        .is_ok_and(|status| status.success())
                });
            eprintln!(
                "the nodes' logs{} in {kept}",
                if copied { "" } else { " (some)" }
            );
        }
        let count = self.len().to_string();
        let stopped = std::process::Command::new(script("rabbitmq-cluster"))
            .args(["stop", &self.prefix, &count])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !stopped {
            eprintln!(
                "could not stop the private RabbitMQ nodes {}: `scripts/rabbitmq-cluster stop {} {count}`",
                self.describe(),
                self.prefix
            );
        }
    }
}

/// The value of `key` among a connection's client properties as `rabbitmqctl
/// --formatter json` shows them: a list of `[key, type, value]`, or an object.
fn client_property<'a>(properties: &'a Value, key: &str) -> Option<&'a str> {
    match properties {
        Value::Object(map) => map.get(key)?.as_str(),
        Value::Array(entries) => entries.iter().find_map(|entry| {
            let entry = entry.as_array()?;
            (entry.first()?.as_str()? == key).then(|| entry.last()?.as_str())?
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn client_properties_in_either_shape() {
        let listed = json!([
            ["product", "longstr", "lapin"],
            ["connection_name", "longstr", "stock-service"]
        ]);
        assert_eq!(
            client_property(&listed, "connection_name"),
            Some("stock-service")
        );
        let object = json!({"connection_name": "checkout-service"});
        assert_eq!(
            client_property(&object, "connection_name"),
            Some("checkout-service")
        );
        assert_eq!(client_property(&json!([]), "connection_name"), None);
    }

    #[test]
    fn queue_nodes_are_read_from_rabbitmqctl_json() {
        let queues: Value = serde_json::from_str(
            r#"[{"name":"other","members":["a@localhost"]},
            {"name":"q","members":["n-1@localhost","n-2@localhost","n-3@localhost"]}]"#,
        )
        .unwrap();
        assert_eq!(queue_nodes(&queues, "q", "members").unwrap().len(), 3);
        assert_eq!(
            queue_nodes(&queues, "other", "members"),
            Some(vec!["a@localhost"])
        );
        assert_eq!(queue_nodes(&queues, "missing", "members"), None);
        assert_eq!(queue_nodes(&json!("Error"), "q", "members"), None);
    }

    #[test]
    fn a_new_cluster_has_a_node_list_and_nothing_to_stop() {
        let cluster = PrivateCluster::new("kit", 3).unwrap();
        let urls = cluster.node_urls();
        assert_eq!(urls.len(), 3);
        assert!(urls[0].starts_with("amqp://guest:guest@127.0.0.1:"));
        assert_eq!(cluster.amqp_url(), urls.join(","));
        assert_eq!(cluster.index_of(&cluster.node(2)), Some(2));
        assert!(!cluster.live, "dropping an unstarted cluster runs nothing");
    }
}
