//! The gRPC client for checkout-service: several replicas, one call each,
//! chosen by the checkout's idempotency key, and one retry. The catalog
//! (`ListItems`, read-only) goes the same way, spread over the replicas
//! rather than keyed.
//!
//! # Replicas
//!
//! `CHECKOUT_SERVICE_ADDRESS` lists one or more `http://host:port` entries
//! ([`targets`]); every address a host resolves to is one replica with its
//! own lazily-connected HTTP/2 channel, found, health-checked and dropped by
//! [`replicas`]. A replica is in the balancing while its gRPC health check
//! answers `SERVING`; a call that fails at the transport level (connection
//! refused, reset or closed) takes it out at once, and the next probe that
//! finds it serving brings it back. The gateway is ready while at least one
//! replica is.
//!
//! # Which replica
//!
//! Every checkout carries an idempotency key: the client's `Idempotency-Key`,
//! or a random UUID the gateway generates when it sent none
//! ([`crate::domain::IdempotencyKey`]). The replica is chosen by rendezvous
//! hashing of (client id, key) over the replicas that are up ([`picker`]):
//! generated keys spread the calls evenly, and a client's retry with its key
//! reaches the replica that saw the first attempt. That is what keeps
//! checkout-service's check "this key was used with another cart" (a 422),
//! which each replica keeps in its own memory, true across replicas.
//!
//! # Retry
//!
//! A call that fails with `UNAVAILABLE` (the replica refused or lost the
//! connection, or answered that it cannot take orders, say because its
//! broker connection is down) is tried once more, on the next replica in
//! the rendezvous order, within the same overall deadline
//! (`CHECKOUT_DEADLINE_MS`). Nothing else is retried: not a missed
//! deadline, not `RESOURCE_EXHAUSTED` (the replicas are overloaded: adding
//! calls would not help), not the caller's mistakes. The retry is safe
//! because of the key, even if the first attempt reached the broker: the
//! message carries the request fingerprint of client and key, and
//! stock-service applies one order per fingerprint, whatever order-id key
//! each replica has. With the same key on every replica (`ORDER_ID_SECRET`
//! or a shared `ORDER_ID_SECRET_FILE`) the retry also names the same order
//! id; with different keys it names another one, which stock-service
//! answers as a `duplicate` of the order it applied. Each attempt has its own CLIENT
//! span, a child of the request's SERVER span, carrying its own
//! `traceparent` to the replica, numbered by `checkout.rpc.attempt`.
//!
//! # What a change of replicas costs
//!
//! While the replicas stay the same, every call with a given key goes to the
//! same replica. When the replica a key maps to leaves (killed, scaled
//! down, not serving) or a new replica takes the key over, the next call
//! with that key reaches a replica that has not seen it. A retry with the
//! same cart is still the same order, applied once (and the same order id
//! when the replicas share their order-id key). But a reuse of the key with
//! *another* cart in that window is not refused with a 422: it gets a 202,
//! and stock-service, which applies one order per client and key, applies
//! only the first cart. The stock stays exact; only the warning to
//! a client that reused its key is lost. The keys of the other replicas do
//! not move.

pub mod picker;
pub mod replicas;
pub mod targets;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use contracts::grpc::{
    CheckoutRequest, CheckoutResponse, DO_CHECKOUT, LIST_ITEMS, LineItem, ListItemsRequest,
    ListItemsResponse, SERVICE_NAME,
};
use telemetry::spans;
use tokio::time::Instant;
use tonic::{Code, Status, metadata::MetadataValue};
use tracing::Instrument;

use self::replicas::{Inner, Replica, ReplicaSet};
pub use self::{
    replicas::Refresh,
    targets::{CheckoutTargets, Target},
};
use crate::{
    auth::Client,
    domain::{Cart, IdempotencyKey},
};

/// The metadata gRPC's own retries send with a retry (gRFC A6): how many
/// attempts came before this one.
const PREVIOUS_ATTEMPTS: &str = "grpc-previous-rpc-attempts";

/// A traced `DoCheckout` and `ListItems` caller in front of every
/// checkout-service replica. Cloning is cheap and shares the replicas.
#[derive(Clone)]
pub struct CheckoutClient {
    replicas: Arc<ReplicaSet>,
    deadline: Duration,
    /// `rpc.client.call.duration`, one measurement per attempt.
    durations: spans::grpc::CallDurations,
    /// Counts catalog calls, whose hash spreads them over the replicas.
    catalog_calls: Arc<AtomicU64>,
}

impl CheckoutClient {
    /// Finds the replicas of `targets` (resolving names once, within
    /// `deadline`) and starts watching them: names are resolved again every
    /// `refresh.resolve_interval` and every replica is probed every
    /// `refresh.probe_interval`. Nothing connects before it is used, so the
    /// gateway starts while checkout-service is down. Must run in a Tokio
    /// runtime, which the background tasks are spawned on; they stop when
    /// the last clone is dropped.
    pub async fn start(targets: &CheckoutTargets, deadline: Duration, refresh: Refresh) -> Self {
        let replicas = ReplicaSet::start(targets.iter().cloned().collect(), refresh).await;
        Self {
            replicas,
            deadline,
            durations: spans::grpc::CallDurations::client(),
            catalog_calls: Arc::default(),
        }
    }

    /// Calls `DoCheckout` for `cart`, on behalf of `client`, with `key`,
    /// within the deadline: on the replica the key maps to, and once more
    /// on the next one if that fails with `UNAVAILABLE`.
    pub async fn do_checkout(
        &self,
        cart: &Cart,
        client: &Client,
        key: &IdempotencyKey,
    ) -> Result<CheckoutResponse, Status> {
        let message = CheckoutRequest {
            items_id: Vec::new(),
            items: cart
                .lines()
                .iter()
                .map(|line| LineItem {
                    id: line.id,
                    quantity: line.quantity,
                })
                .collect(),
            idempotency_key: key.as_str().to_owned(),
            client_id: client.grpc_id().to_owned(),
            idempotency_key_generated: key.is_generated(),
        };
        let key_hash = picker::key_hash(client.grpc_id(), key.as_str());
        self.call(
            key_hash,
            DO_CHECKOUT,
            &message,
            |mut checkout, request| async move { checkout.do_checkout(request).await },
        )
        .await
    }

    /// Calls `ListItems` within the deadline, on a replica picked in turn,
    /// and once more on the next if that fails with `UNAVAILABLE` (the call
    /// reads only, so a retry is always safe).
    pub async fn list_items(&self) -> Result<ListItemsResponse, Status> {
        let turn = self.catalog_calls.fetch_add(1, Ordering::Relaxed);
        let hash = picker::key_hash("", &turn.to_string());
        self.call(
            hash,
            LIST_ITEMS,
            &ListItemsRequest {},
            |mut checkout, request| async move { checkout.list_items(request).await },
        )
        .await
    }

    /// Calls `method` with `message` through `send`, within the deadline:
    /// on the replica `key_hash` maps to, and once more on the next one if
    /// that fails with `UNAVAILABLE`.
    async fn call<Req, Resp, F, Fut>(
        &self,
        key_hash: u64,
        method: &'static str,
        message: &Req,
        send: F,
    ) -> Result<Resp, Status>
    where
        Req: Clone,
        F: Fn(Inner, tonic::Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        let deadline = Instant::now() + self.deadline;
        let replicas = self.replicas.snapshot();
        let (first, second) = picker::first_two(
            &replicas,
            key_hash,
            |replica| (replica.hash, replica.addr),
            |replica| replica.is_up(),
        );
        let Some(first) = first else {
            return Err(Status::unavailable(
                "no checkout-service replica: CHECKOUT_SERVICE_ADDRESS has resolved to no address",
            ));
        };
        let call = Call {
            method,
            deadline,
            durations: &self.durations,
        };
        match attempt(first, &call, message, 1, &send).await {
            Err(status) if status.code() == Code::Unavailable => match second {
                Some(second) if Instant::now() < deadline => {
                    attempt(second, &call, message, 2, &send).await
                }
                _ => Err(status),
            },
            outcome => outcome,
        }
    }

    /// Whether a replica can take orders (checkout-service reports
    /// `NOT_SERVING` while its broker connection is down). When the probes
    /// know of none, every replica is asked again at once, so readiness
    /// never waits for the next probe.
    pub async fn ready(&self) -> Result<(), String> {
        let replicas = self.replicas.snapshot();
        if replicas.iter().any(|replica| replica.is_up()) {
            return Ok(());
        }
        if replicas.is_empty() {
            return Err(
                "no checkout-service replica: CHECKOUT_SERVICE_ADDRESS has resolved to no address"
                    .to_owned(),
            );
        }
        let patience = self.replicas.patience();
        let mut probes = tokio::task::JoinSet::new();
        for replica in replicas.iter().cloned() {
            probes.spawn(async move {
                let answer = replica.probe_and_record(patience).await;
                answer.map_err(|reason| format!("{} {reason}", replica.addr))
            });
        }
        let mut reasons = Vec::new();
        while let Some(answer) = probes.join_next().await {
            match answer {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(reason)) => reasons.push(reason),
                Err(error) => reasons.push(error.to_string()),
            }
        }
        reasons.sort();
        Err(format!(
            "no checkout-service replica is serving: {}",
            reasons.join("; ")
        ))
    }
}

/// One call to checkout-service, whichever replica takes it.
struct Call<'a> {
    /// The method, as in span names and `rpc.method`.
    method: &'static str,
    /// When the call (its retry included) must be over.
    deadline: Instant,
    /// `rpc.client.call.duration`.
    durations: &'a spans::grpc::CallDurations,
}

/// Attempt number `attempt` at `call`, on `replica`, in a CLIENT span of
/// its own, with what is left until the deadline, sent through `send`.
async fn attempt<Req, Resp, F, Fut>(
    replica: &Replica,
    call: &Call<'_>,
    message: &Req,
    attempt: u32,
    send: &F,
) -> Result<Resp, Status>
where
    Req: Clone,
    F: Fn(Inner, tonic::Request<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
{
    let timed = spans::grpc::Call::start(SERVICE_NAME, call.method);
    let span = spans::grpc::client(
        SERVICE_NAME,
        call.method,
        &replica.host,
        replica.addr,
        attempt,
    );
    let left = call.deadline.saturating_duration_since(Instant::now());
    let mut request = tonic::Request::new(message.clone());
    request.set_timeout(left);
    if attempt > 1 {
        request
            .metadata_mut()
            .insert(PREVIOUS_ATTEMPTS, MetadataValue::from(attempt - 1));
    }
    // The interceptor writes the context of the span current when the call
    // starts, this attempt's, into the call's metadata.
    let sent = send(replica.checkout.clone(), request);
    let call_future = async move {
        match tokio::time::timeout(left, sent).await {
            Ok(result) => result.map(tonic::Response::into_inner),
            Err(_) => Err(Status::deadline_exceeded("deadline exceeded")),
        }
    };
    let result = call_future
        .instrument(span.clone())
        .await
        .map_err(|status| {
            if timed_out(&status) {
                // tonic enforces the `grpc-timeout` it sends, as `CANCELLED`.
                return Status::deadline_exceeded("deadline exceeded");
            }
            if !lost_connection(&status) {
                return status;
            }
            replica.mark_down(status.message());
            Status::unavailable(format!(
                "checkout-service replica {} unreachable: {}",
                replica.addr,
                status.message()
            ))
        });
    spans::grpc::record_client_status(&span, call.durations, timed, &result);
    result
}

/// Whether `status` is tonic's own enforcement of the call's timeout.
fn timed_out(status: &Status) -> bool {
    let mut source = std::error::Error::source(status);
    while let Some(error) = source {
        if error.is::<tonic::TimeoutExpired>() {
            return true;
        }
        source = error.source();
    }
    false
}

/// Whether `status` reports a failed connection rather than an answer: made
/// on this side from a transport error (a status the replica sent has no
/// source; a timeout, which also has one, is ruled out first), with a code
/// that says the call did not complete. tonic reports a refused connection
/// as `UNAVAILABLE`, but a connection lost mid-call as `UNKNOWN` (an I/O
/// error in HTTP/2), `INTERNAL` (a `GOAWAY`) or `CANCELLED` (the request
/// never left), all of which mean the same to the caller: the replica is
/// gone, and trying elsewhere is safe.
fn lost_connection(status: &Status) -> bool {
    std::error::Error::source(status).is_some()
        && matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Internal | Code::Cancelled
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replicas_answer_is_not_a_lost_connection() {
        for status in [
            Status::unavailable("NOT_SERVING"),
            Status::unknown("?"),
            Status::resource_exhausted("busy"),
        ] {
            assert!(!lost_connection(&status), "{status:?}");
            assert!(!timed_out(&status), "{status:?}");
        }
    }

    #[test]
    fn transport_errors_are_lost_connections_and_timeouts_are_not() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let lost = Status::from_error(Box::new(reset));
        assert!(lost_connection(&lost), "{lost:?}");
        assert!(!timed_out(&lost));

        let expired = Status::from_error(Box::new(tonic::TimeoutExpired(())));
        assert_eq!(expired.code(), Code::Cancelled);
        assert!(timed_out(&expired));
    }
}
