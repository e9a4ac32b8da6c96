//! Serving an axum [`Router`] so that no connection holds a listener open
//! for free: every HTTP listener of every service goes through [`serve`].
//!
//! `axum::serve` keeps a connection for as long as the client keeps it open:
//! one that trickles its headers, or sends nothing at all, holds a file
//! descriptor and a task forever, and enough of them exhaust the process's
//! descriptors until even `/healthz` stops answering. [`serve`] is the same
//! server (hyper-util's HTTP/1.1 + HTTP/2 connection, graceful shutdown)
//! with three bounds, set by [`HttpLimits`]:
//!
//! - **Headers** (`HTTP_HEADER_READ_TIMEOUT_MS`): a connection must deliver
//!   its first request's complete headers within this long of being
//!   accepted. On HTTP/1.1 hyper's `header_read_timeout` also bounds every
//!   later request, counted from the end of the previous response: hyper
//!   starts that clock as soon as it waits for the next request, so it
//!   closes an idle keep-alive connection too. hyper has no such clock
//!   while it finds out which protocol a connection speaks (the first 24
//!   bytes, which may never come) nor on HTTP/2, so a timer per connection
//!   (below) enforces the same bound there.
//! - **Idle** (`HTTP_IDLE_TIMEOUT_MS`): a connection that has served a
//!   request and has none in flight for this long is closed. The timer
//!   restarts whenever the last request in flight is answered; it is what
//!   bounds an idle HTTP/2 connection, which hyper would keep forever. A
//!   request counts as answered once its response is handed to hyper, so a
//!   client that never reads its response is closed by this timer too.
//! - **Connections** (`HTTP_MAX_CONNECTIONS`): past the cap, a new connection
//!   is accepted and closed at once, unanswered (see [`serve`] for why it is
//!   not left waiting instead), and the refusals are logged once per burst.
//!
//! A request in flight has no bound here: the routes bound their own work
//! (the gateway's `HTTP_REQUEST_TIMEOUT_MS`).
//!
//! HTTP upgrades (WebSockets) are not served: no route uses them, and an
//! upgraded connection would leave hyper, and with it these bounds.

use std::{sync::Arc, time::Duration};

use axum::Router;
use hyper::{Request, body::Incoming, service::service_fn};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore, watch},
    time::Instant,
};
use tower::ServiceExt;

use crate::{
    configuration::{defaults, parse_millis_at_least_one, parse_positive},
    shutdown::CancellationToken,
};

/// The bounds every HTTP listener enforces; flattened into the settings of
/// each service that serves HTTP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::Args)]
pub struct HttpLimits {
    /// A connection must send a request's complete headers within this long, in milliseconds, or it is closed (on HTTP/1.1 counted from its previous response too, so this also closes idle keep-alive connections).
    #[arg(long = "http-header-read-timeout-ms", env = "HTTP_HEADER_READ_TIMEOUT_MS", default_value = "10000", value_parser = parse_millis_at_least_one)]
    pub header_read_timeout: Duration,
    /// A connection with no request in flight for this long after its last answer, in milliseconds, is closed (on HTTP/1.1 the header timeout, if shorter, closes it first).
    #[arg(long = "http-idle-timeout-ms", env = "HTTP_IDLE_TIMEOUT_MS", default_value = "60000", value_parser = parse_millis_at_least_one)]
    pub idle_timeout: Duration,
    /// Open connections per listener; past it a new connection is closed at once, unanswered.
    ///
    /// Sized for the soft limit of 1024 open files that Debian and Ubuntu
    /// shells and systemd services start with: three quarters of it, which
    /// leaves the rest for what the process opens itself (database, broker,
    /// exporter and gRPC connections). Raise it together with `ulimit -n`.
    #[arg(long = "http-max-connections", env = "HTTP_MAX_CONNECTIONS", default_value = "768", value_parser = parse_positive)]
    pub max_connections: usize,
}

impl Default for HttpLimits {
    /// The documented defaults, for listeners that have no settings of their
    /// own (checkout-service's admin endpoint).
    fn default() -> Self {
        #[derive(clap::Parser)]
        struct Only {
            #[command(flatten)]
            limits: HttpLimits,
        }
        defaults::<Only>().limits
    }
}

/// Serves `router` on `listener` within `limits` until `shutdown` is
/// cancelled; then stops accepting, lets the requests in flight finish
/// (idle connections close at once) and returns when every connection has
/// closed. HTTP/1.1 and HTTP/2 (prior knowledge) are both served, with
/// `TCP_NODELAY` set: answers are small, and waiting to coalesce them only
/// adds latency.
///
/// Past the connection cap a new connection is accepted and closed at once
/// rather than left in the kernel's listen backlog until a slot frees. A
/// waiting connection would look accepted to its client, which then waits
/// in silence behind whatever filled the cap (a health check times out
/// instead of failing, a load balancer cannot fail over); once the backlog
/// is full the kernel drops new connections and clients retry only after
/// seconds. Closed at once, the client learns immediately and can retry or
/// go elsewhere, and the process never holds more than the cap plus the one
/// connection it is closing.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
) {
    let builder = Arc::new(builder(&limits));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut refusals = Refusals::default();
    loop {
        let stream = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    accept_failed(error, &shutdown).await;
                    continue;
                }
            },
        };
        let slot = slots.clone().try_acquire_owned().ok();
        refusals.log(slot.is_none(), limits.max_connections);
        let Some(slot) = slot else {
            drop(stream);
            continue;
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let connection = Connection {
            builder: builder.clone(),
            router: router.clone(),
            limits,
            shutdown: shutdown.clone(),
            _slot: slot,
        };
        tokio::spawn(connection.run(stream, graceful.watcher()));
    }
    drop(listener);
    graceful.shutdown().await;
}

/// hyper-util's server for both protocols, with hyper's header timeout on
/// HTTP/1.1 (it needs a timer to run).
fn builder(limits: &HttpLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// An accept error: one connection's (reset before it was accepted) is
/// skipped; any other, usually running out of file descriptors, is logged
/// and the listener pauses a second so it does not spin on it.
async fn accept_failed(error: std::io::Error, shutdown: &CancellationToken) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        error.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(%error, "cannot accept a connection; retrying in 1 s");
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(Duration::from_secs(1)) => {}
    }
}

/// How long the listener must go without refusing a connection before the
/// next refusal counts as a new burst (and is logged again).
const BURST_GAP: Duration = Duration::from_secs(10);

/// Connections refused at the cap, counted by burst so that they are logged
/// once per burst rather than once per connection: a flood must not turn
/// into a flood of log lines.
#[derive(Debug, Default)]
struct Refusals {
    burst: Option<Burst>,
}

/// Refusals with less than [`BURST_GAP`] between one and the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Burst {
    started: Instant,
    last: Instant,
    refused: u64,
}

impl Refusals {
    /// Ends the burst if none of its refusals is as recent as [`BURST_GAP`]
    /// before `now`, and returns it.
    fn end_quiet_burst(&mut self, now: Instant) -> Option<Burst> {
        self.burst
            .take_if(|burst| now.duration_since(burst.last) >= BURST_GAP)
    }

    /// Counts a connection refused at `now`; true when it starts a burst.
    fn refused(&mut self, now: Instant) -> bool {
        match &mut self.burst {
            Some(burst) => {
                burst.refused += 1;
                burst.last = now;
                false
            }
            None => {
                self.burst = Some(Burst {
                    started: now,
                    last: now,
                    refused: 1,
                });
                true
            }
        }
    }

    /// Logs the start and end of bursts around one accepted connection,
    /// refused or not.
    fn log(&mut self, refused: bool, max_connections: usize) {
        let now = Instant::now();
        if let Some(burst) = self.end_quiet_burst(now) {
            tracing::info!(
                refused = burst.refused,
                lasted_ms = burst.last.duration_since(burst.started).as_millis() as u64,
                "connection limit no longer reached"
            );
        }
        if refused && self.refused(now) {
            tracing::warn!(
                max_connections,
                "connection limit reached: refusing new connections until some close"
            );
        }
    }
}

/// One accepted connection, holding its slot under the cap until it closes.
struct Connection {
    builder: Arc<auto::Builder<TokioExecutor>>,
    router: Router,
    limits: HttpLimits,
    shutdown: CancellationToken,
    _slot: OwnedSemaphorePermit,
}

impl Connection {
    /// Serves the connection until it ends, graceful shutdown ends it, or it
    /// has waited too long without a request in flight ([`Activity`]).
    ///
    /// On shutdown hyper lets an HTTP/1.1 connection finish the request it
    /// is reading; a connection that has not yet sent a whole first request
    /// is closed at once instead, so a slow client cannot hold the shutdown
    /// up for the header timeout. Nothing was ever answered on it, so no
    /// answer can be cut short.
    async fn run(self, stream: TcpStream, watcher: hyper_util::server::graceful::Watcher) {
        let (activity, mut changes) = watch::channel(Activity::accepted());
        let activity = Arc::new(activity);
        let router = self.router;
        let service = service_fn(move |request: Request<Incoming>| {
            let in_flight = InFlight::start(activity.clone());
            let router = router.clone();
            async move {
                let response = router.oneshot(request).await;
                drop(in_flight);
                response
            }
        });
        let connection = self.builder.serve_connection(TokioIo::new(stream), service);
        let connection = watcher.watch(connection);
        tokio::pin!(connection);
        let mut watching = true;
        loop {
            let activity = *changes.borrow_and_update();
            let deadline = activity.deadline(&self.limits);
            let unused = activity.in_flight == 0 && !activity.served_any;
            let expired = async {
                match deadline {
                    Some(deadline) => tokio::time::sleep_until(deadline).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                served = connection.as_mut() => {
                    if let Err(error) = served {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                    return;
                }
                changed = changes.changed(), if watching => watching = changed.is_ok(),
                () = self.shutdown.cancelled(), if unused => {
                    tracing::debug!("shutting down: closing a connection that sent no request");
                    return;
                }
                () = expired => {
                    tracing::debug!("closing a connection that waited too long without a request");
                    return;
                }
            }
        }
    }
}

/// What a connection's timer needs: how many requests are in flight, and
/// since when none has been.
#[derive(Clone, Copy, Debug)]
struct Activity {
    in_flight: usize,
    served_any: bool,
    idle_since: Instant,
}

impl Activity {
    fn accepted() -> Self {
        Self {
            in_flight: 0,
            served_any: false,
            idle_since: Instant::now(),
        }
    }

    /// When the connection is closed if nothing changes: none while a request
    /// is in flight; before its first request, the header timeout from
    /// accepting it; after that, the idle timeout from its last answer.
    fn deadline(&self, limits: &HttpLimits) -> Option<Instant> {
        if self.in_flight > 0 {
            None
        } else if self.served_any {
            Some(self.idle_since + limits.idle_timeout)
        } else {
            Some(self.idle_since + limits.header_read_timeout)
        }
    }
}

/// One request in flight on a connection, from the moment hyper has its
/// headers until its response is handed back (or the request is dropped).
struct InFlight(Arc<watch::Sender<Activity>>);

impl InFlight {
    fn start(activity: Arc<watch::Sender<Activity>>) -> Self {
        activity.send_modify(|activity| {
            activity.in_flight += 1;
            activity.served_any = true;
        });
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|activity| {
            activity.in_flight = activity.in_flight.saturating_sub(1);
            if activity.in_flight == 0 {
                activity.idle_since = Instant::now();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> HttpLimits {
        HttpLimits {
            header_read_timeout: Duration::from_millis(100),
            idle_timeout: Duration::from_millis(1000),
            max_connections: 1,
        }
    }

    #[test]
    fn defaults_come_from_the_declaration() {
        let limits = HttpLimits::default();
        assert_eq!(limits.header_read_timeout, Duration::from_secs(10));
        assert_eq!(limits.idle_timeout, Duration::from_secs(60));
        assert_eq!(limits.max_connections, 768);
    }

    #[test]
    fn refusals_are_counted_by_burst() {
        let mut refusals = Refusals::default();
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        assert!(refusals.refused(at(0)), "the first refusal starts a burst");
        assert_eq!(refusals.end_quiet_burst(at(9_000)), None);
        assert!(!refusals.refused(at(9_000)), "9 s later: the same burst");
        assert!(!refusals.refused(at(18_000)), "another 9 s: the same burst");
        assert_eq!(
            refusals.end_quiet_burst(at(28_000)),
            Some(Burst {
                started: at(0),
                last: at(18_000),
                refused: 3
            }),
            "10 s without a refusal end it"
        );
        assert!(
            refusals.refused(at(28_000)),
            "the next refusal starts another"
        );
    }

    #[tokio::test]
    async fn the_deadline_follows_the_requests_in_flight() {
        let (activity, changes) = watch::channel(Activity::accepted());
        let accepted = changes.borrow().idle_since;
        assert_eq!(
            changes.borrow().deadline(&limits()),
            Some(accepted + Duration::from_millis(100)),
            "before the first request: the header timeout"
        );
        let activity = Arc::new(activity);
        let first = InFlight::start(activity.clone());
        let second = InFlight::start(activity.clone());
        drop(first);
        assert_eq!(changes.borrow().deadline(&limits()), None, "one in flight");
        drop(second);
        let idle = *changes.borrow();
        assert_eq!(
            idle.deadline(&limits()),
            Some(idle.idle_since + Duration::from_millis(1000)),
            "after an answer: the idle timeout"
        );
    }
}
