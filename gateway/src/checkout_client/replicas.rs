//! The checkout-service replicas: found by resolving the configured hosts,
//! each with its own lazily-connected channel, and whether it is serving.
//!
//! - **Discovery.** Every entry of `CHECKOUT_SERVICE_ADDRESS` is resolved at
//!   start and then every `CHECKOUT_SERVICE_RESOLVE_INTERVAL_MS`; each
//!   address is one replica. An address that appears becomes a replica, one
//!   that disappears is dropped (its channel closes once its calls in flight
//!   are done). A name that fails to resolve keeps its last addresses, so a
//!   DNS hiccup does not empty the pool; if they are really gone their
//!   probes fail and they leave the balancing all the same. IP addresses
//!   are not resolved again.
//! - **Health.** Each replica is probed with the standard gRPC health check
//!   every `CHECKOUT_SERVICE_PROBE_INTERVAL_MS` (within the call deadline):
//!   `SERVING` puts it in the balancing, anything else (`NOT_SERVING` while
//!   its broker connection is down, no answer, a refused connection) takes
//!   it out. A call that fails at the transport level takes it out at once
//!   ([`Replica::mark_down`]), without waiting for the next probe. A new
//!   replica is out until its first probe, which runs at once.
//!
//! Each state change is logged once, with the reason.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex, RwLock, Weak,
        atomic::{AtomicU8, Ordering},
    },
    time::Duration,
};

use contracts::grpc::SERVICE_NAME;
use telemetry::propagation::grpc::TraceContextInterceptor;
use tokio_util::task::AbortOnDropHandle;
use tonic::{
    service::interceptor::InterceptedService,
    transport::{Channel, Endpoint},
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use super::{picker, targets::Target};

/// The generated `DoCheckout` client, over a traced channel.
pub type Inner = contracts::grpc::checkout_client::CheckoutClient<
    InterceptedService<Channel, TraceContextInterceptor>,
>;

/// Not probed yet.
const UNKNOWN: u8 = 0;
/// Answered `SERVING` to its last probe, and no call failed since.
const SERVING: u8 = 1;
/// Anything else.
const DOWN: u8 = 2;

/// One checkout-service replica: one address of one configured host.
pub struct Replica {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The configured host it was resolved from (`server.address`).
    pub host: Arc<str>,
    /// [`picker::replica_hash`] of `addr`.
    pub hash: u64,
    /// Its `DoCheckout` client (cloning is cheap: one channel).
    pub checkout: Inner,
    health: HealthClient<Channel>,
    state: AtomicU8,
}

impl Replica {
    fn new(addr: SocketAddr, target: &Target, connect_timeout: Duration) -> Result<Self, String> {
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|error| error.to_string())?
            .connect_timeout(connect_timeout)
            .tcp_nodelay(true);
        // The requests name the host as configured (`:authority`), not the
        // address they were sent to, as a client of a single name would.
        let endpoint = match target.to_string().parse() {
            Ok(origin) => endpoint.origin(origin),
            Err(_) => endpoint,
        };
        let channel = endpoint.connect_lazy();
        Ok(Self {
            addr,
            host: target.host().into(),
            hash: picker::replica_hash(addr),
            checkout: contracts::grpc::checkout_client::CheckoutClient::with_interceptor(
                channel.clone(),
                TraceContextInterceptor,
            ),
            health: HealthClient::new(channel),
            state: AtomicU8::new(UNKNOWN),
        })
    }

    /// Whether it takes calls.
    pub fn is_up(&self) -> bool {
        self.state.load(Ordering::Relaxed) == SERVING
    }

    /// Takes it out of the balancing until a probe finds it serving again:
    /// a call to it failed at the transport level.
    pub fn mark_down(&self, reason: &str) {
        self.set(DOWN, reason);
    }

    /// Asks its health service whether it can take orders, within `patience`.
    pub async fn probe(&self, patience: Duration) -> Result<(), String> {
        let request = HealthCheckRequest {
            service: SERVICE_NAME.to_owned(),
        };
        let mut health = self.health.clone();
        let answer = tokio::time::timeout(patience, health.check(request))
            .await
            .map_err(|_| format!("no health answer within {patience:?}"))?
            .map_err(|status| format!("unreachable: {}", status.message()))?;
        match answer.into_inner().status() {
            ServingStatus::Serving => Ok(()),
            status => Err(status.as_str_name().to_owned()),
        }
    }

    /// Probes it and records the answer.
    pub async fn probe_and_record(&self, patience: Duration) -> Result<(), String> {
        let result = self.probe(patience).await;
        match &result {
            Ok(()) => self.set(SERVING, "SERVING"),
            Err(reason) => self.set(DOWN, reason),
        }
        result
    }

    fn set(&self, state: u8, reason: &str) {
        let before = self.state.swap(state, Ordering::Relaxed);
        let (addr, host) = (self.addr, &*self.host);
        match (before, state) {
            (SERVING, DOWN) => tracing::warn!(
                %addr, %host, %reason,
                "checkout-service replica down: no call goes to it until it answers SERVING again"
            ),
            (UNKNOWN, DOWN) => {
                tracing::info!(%addr, %host, %reason, "checkout-service replica not serving yet")
            }
            (UNKNOWN | DOWN, SERVING) => {
                tracing::info!(%addr, %host, "checkout-service replica serving")
            }
            _ => {}
        }
    }
}

/// A replica and its probe, which stops when this is dropped.
struct Member {
    replica: Arc<Replica>,
    _probe: AbortOnDropHandle<()>,
}

/// How the replica set refreshes itself.
#[derive(Clone, Copy, Debug)]
pub struct Refresh {
    /// Between two resolutions of the configured names.
    pub resolve_interval: Duration,
    /// Between two health probes of a replica.
    pub probe_interval: Duration,
    /// How long a probe, a resolution or a connection attempt may take.
    pub patience: Duration,
}

/// Every replica of every configured host.
pub struct ReplicaSet {
    targets: Vec<Target>,
    refresh: Refresh,
    /// The replicas calls choose from, by address; a cheap snapshot.
    current: RwLock<Arc<[Arc<Replica>]>>,
    /// The same replicas with their probes, and each target's last
    /// resolution.
    members: Mutex<Members>,
    /// Re-resolves the names; stops with the set.
    resolver: Mutex<Option<AbortOnDropHandle<()>>>,
}

struct Members {
    by_addr: BTreeMap<SocketAddr, Member>,
    /// Per target, in the configured order.
    resolved: Vec<Resolution>,
}

/// What a target last resolved to.
#[derive(Clone, Default)]
struct Resolution {
    /// The addresses of its last successful resolution (none before one).
    addrs: Vec<SocketAddr>,
    /// Whether its last resolution failed (to log a failure once).
    failing: bool,
}

impl ReplicaSet {
    /// Resolves `targets` once (within `refresh.patience`), starts a probe
    /// per replica and, if any target is a name, the task that resolves
    /// the names again. Runs on, and spawns onto, the current Tokio runtime.
    pub async fn start(targets: Vec<Target>, refresh: Refresh) -> Arc<Self> {
        let set = Arc::new(Self {
            refresh,
            current: RwLock::new(Arc::from(Vec::new())),
            members: Mutex::new(Members {
                by_addr: BTreeMap::new(),
                resolved: vec![Resolution::default(); targets.len()],
            }),
            resolver: Mutex::new(None),
            targets,
        });
        set.resolve_all().await;
        if set.targets.iter().any(|target| target.ip_addr().is_none()) {
            let task = tokio::spawn(resolve_forever(Arc::downgrade(&set)));
            if let Ok(mut resolver) = set.resolver.lock() {
                *resolver = Some(AbortOnDropHandle::new(task));
            }
        }
        set
    }

    /// The replicas now, by address.
    pub fn snapshot(&self) -> Arc<[Arc<Replica>]> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// How long a probe may take.
    pub fn patience(&self) -> Duration {
        self.refresh.patience
    }

    /// Resolves every target and updates the replicas.
    async fn resolve_all(&self) {
        let mut results = Vec::with_capacity(self.targets.len());
        for target in &self.targets {
            results.push(self.resolve(target).await);
        }
        self.update(results);
    }

    async fn resolve(&self, target: &Target) -> Result<Vec<SocketAddr>, String> {
        if let Some(addr) = target.ip_addr() {
            return Ok(vec![addr]);
        }
        let lookup = tokio::net::lookup_host((target.host(), target.port()));
        match tokio::time::timeout(self.refresh.patience, lookup).await {
            Ok(Ok(addrs)) => {
                let mut addrs: Vec<SocketAddr> = addrs.collect();
                addrs.sort();
                addrs.dedup();
                if addrs.is_empty() {
                    Err("no address".to_owned())
                } else {
                    Ok(addrs)
                }
            }
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.refresh.patience)),
        }
    }

    /// Replaces each target's addresses with what resolving it gave (keeping
    /// the last ones on an error), then adds and drops replicas to match.
    fn update(&self, results: Vec<Result<Vec<SocketAddr>, String>>) {
        let Ok(mut members) = self.members.lock() else {
            return;
        };
        for ((target, result), last) in self
            .targets
            .iter()
            .zip(results)
            .zip(members.resolved.iter_mut())
        {
            match result {
                Ok(addrs) => {
                    if last.failing {
                        tracing::info!(target = %target, "checkout-service address resolves again");
                    }
                    *last = Resolution {
                        addrs,
                        failing: false,
                    };
                }
                // Once per failure, not once per attempt.
                Err(reason) if !last.failing => {
                    tracing::warn!(
                        target = %target,
                        %reason,
                        kept = ?last.addrs,
                        "cannot resolve a checkout-service address; keeping its last addresses"
                    );
                    last.failing = true;
                }
                Err(_) => {}
            }
        }
        // The first target that names an address is the host it is reported under.
        let mut wanted: BTreeMap<SocketAddr, &Target> = BTreeMap::new();
        for (target, resolution) in self.targets.iter().zip(&members.resolved) {
            for addr in &resolution.addrs {
                wanted.entry(*addr).or_insert(target);
            }
        }
        let before = members.by_addr.len();
        members.by_addr.retain(|addr, member| {
            let keep = wanted.contains_key(addr);
            if !keep {
                tracing::info!(%addr, host = %member.replica.host, "checkout-service replica gone from DNS");
            }
            keep
        });
        let mut changed = members.by_addr.len() != before;
        for (addr, target) in wanted {
            if members.by_addr.contains_key(&addr) {
                continue;
            }
            match Replica::new(addr, target, self.refresh.patience) {
                Ok(replica) => {
                    let replica = Arc::new(replica);
                    tracing::info!(%addr, host = %replica.host, "checkout-service replica added");
                    let probe = tokio::spawn(probe_forever(replica.clone(), self.refresh));
                    members.by_addr.insert(
                        addr,
                        Member {
                            replica,
                            _probe: AbortOnDropHandle::new(probe),
                        },
                    );
                    changed = true;
                }
                Err(error) => tracing::error!(%addr, %error, "cannot make a channel to a replica"),
            }
        }
        if changed {
            let replicas: Arc<[Arc<Replica>]> = members
                .by_addr
                .values()
                .map(|member| member.replica.clone())
                .collect();
            match self.current.write() {
                Ok(mut current) => *current = replicas,
                Err(poisoned) => *poisoned.into_inner() = replicas,
            }
        }
    }
}

/// Probes `replica` until its probe is dropped.
async fn probe_forever(replica: Arc<Replica>, refresh: Refresh) {
    loop {
        let _ = replica.probe_and_record(refresh.patience).await;
        tokio::time::sleep(refresh.probe_interval).await;
    }
}

/// Resolves the names again and again, until the set is dropped.
async fn resolve_forever(set: Weak<ReplicaSet>) {
    loop {
        let Some(interval) = set.upgrade().map(|set| set.refresh.resolve_interval) else {
            return;
        };
        tokio::time::sleep(interval).await;
        let Some(set) = set.upgrade() else {
            return;
        };
        set.resolve_all().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkout_client::CheckoutTargets;

    /// Quick enough for a test, with no server behind any address (port 1
    /// and up on loopback refuse connections).
    const REFRESH: Refresh = Refresh {
        resolve_interval: Duration::from_secs(3600),
        probe_interval: Duration::from_secs(3600),
        patience: Duration::from_secs(5),
    };

    fn targets(raw: &str) -> Vec<Target> {
        CheckoutTargets::parse(raw)
            .unwrap()
            .iter()
            .cloned()
            .collect()
    }

    fn addrs(set: &ReplicaSet) -> Vec<String> {
        set.snapshot().iter().map(|r| r.addr.to_string()).collect()
    }

    fn addr(raw: &str) -> SocketAddr {
        raw.parse().unwrap()
    }

    #[tokio::test]
    async fn ip_addresses_are_replicas_at_once_and_names_are_resolved() {
        let set =
            ReplicaSet::start(targets("http://127.0.0.1:1,http://127.0.0.2:1"), REFRESH).await;
        assert_eq!(addrs(&set), ["127.0.0.1:1", "127.0.0.2:1"]);
        assert!(set.resolver.lock().unwrap().is_none(), "nothing to resolve");

        let set = ReplicaSet::start(targets("http://localhost:1"), REFRESH).await;
        let snapshot = set.snapshot();
        assert!(
            snapshot
                .iter()
                .any(|r| r.addr.ip().is_loopback() && &*r.host == "localhost"),
            "{:?}",
            addrs(&set)
        );
        assert!(
            set.resolver.lock().unwrap().is_some(),
            "names are resolved again"
        );
    }

    #[tokio::test]
    async fn new_addresses_join_gone_ones_leave_and_a_failed_resolution_keeps_the_last() {
        let set = ReplicaSet::start(
            targets("http://checkout.invalid:1,http://127.0.0.9:1"),
            REFRESH,
        )
        .await;
        // The name did not resolve: only the IP address is a replica.
        assert_eq!(addrs(&set), ["127.0.0.9:1"]);

        let (a, b, c) = (
            addr("127.0.0.3:1"),
            addr("127.0.0.4:1"),
            addr("127.0.0.5:1"),
        );
        let ip = Ok(vec![addr("127.0.0.9:1")]);
        set.update(vec![Ok(vec![a, b]), ip.clone()]);
        assert_eq!(addrs(&set), ["127.0.0.3:1", "127.0.0.4:1", "127.0.0.9:1"]);
        let kept = set.snapshot()[1].clone();
        assert_eq!(&*kept.host, "checkout.invalid");

        set.update(vec![Ok(vec![b, c]), ip.clone()]);
        assert_eq!(addrs(&set), ["127.0.0.4:1", "127.0.0.5:1", "127.0.0.9:1"]);
        // A replica that stays is the same replica (its channel, its state).
        assert!(Arc::ptr_eq(&kept, &set.snapshot()[0]));

        set.update(vec![Err("SERVFAIL".to_owned()), ip]);
        assert_eq!(addrs(&set), ["127.0.0.4:1", "127.0.0.5:1", "127.0.0.9:1"]);
    }

    #[tokio::test]
    async fn a_replica_that_refuses_connections_is_down_and_marked_down_at_once() {
        // No probe of its own runs: this test alone changes its state.
        let target = &targets("http://127.0.0.1:1")[0];
        let replica = Replica::new(addr("127.0.0.1:1"), target, REFRESH.patience).unwrap();
        let answer = replica.probe_and_record(REFRESH.patience).await;
        assert!(answer.is_err_and(|reason| reason.contains("unreachable")));
        assert!(!replica.is_up());

        replica.set(SERVING, "SERVING");
        assert!(replica.is_up());
        replica.mark_down("connection reset");
        assert!(!replica.is_up());
    }
}
