//! Which replica takes a checkout: rendezvous (highest-random-weight)
//! hashing of (client id, idempotency key) over the replicas.
//!
//! Every replica gets a score for the key, a hash of the key's hash and the
//! replica's; the replica with the highest score takes the call, the next
//! highest takes the retry. That gives what the gateway needs:
//!
//! - the same key always reaches the same replica while the replicas stay
//!   the same, so a client's retry meets the replica that remembers its key
//!   (and refuses it with another cart);
//! - keys spread evenly (the gateway's generated keys are random UUIDs);
//! - when a replica leaves, only its keys move (each to its own next
//!   replica, so they spread over the others rather than piling onto one),
//!   and when it comes back they move back; nothing else moves;
//! - every gateway computes the same choice from the same replicas, with no
//!   state shared between them.
//!
//! Hand-written because the balancers on offer do not do this: tower's and
//! tonic's pick two replicas at random and take the less loaded one (p2c),
//! which spreads load but sends a retry with the same key anywhere. The
//! hashes are stable (FNV-1a, then a 64-bit finalizer to spread FNV's weak
//! low bits), so gateways of different builds agree.

use std::{hash::Hasher, net::SocketAddr};

use fnv::FnvHasher;

/// The hash of an idempotency key and the client it belongs to (the client
/// id is length-prefixed, so no two pairs hash the same input).
pub fn key_hash(client: &str, key: &str) -> u64 {
    let mut hasher = FnvHasher::default();
    hasher.write(&(client.len() as u64).to_be_bytes());
    hasher.write(client.as_bytes());
    hasher.write(key.as_bytes());
    hasher.finish()
}

/// The hash of a replica's address.
pub fn replica_hash(addr: SocketAddr) -> u64 {
    let mut hasher = FnvHasher::default();
    hasher.write(addr.to_string().as_bytes());
    mix(hasher.finish())
}

/// A replica's score for a key: the higher, the more the key wants it.
pub fn score(key_hash: u64, replica_hash: u64) -> u64 {
    mix(key_hash ^ replica_hash)
}

/// MurmurHash3's 64-bit finalizer: every input bit flips each output bit
/// with probability about one half, which rendezvous hashing needs from its
/// scores and FNV alone does not give.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The first and the second choice for `key_hash` among `replicas`: those
/// `up` before the others, each group by score. `hash` gives a replica's
/// [`replica_hash`]; ties (all but impossible) go to the lower address so
/// the choice never depends on the order of `replicas`.
pub fn first_two<R>(
    replicas: &[R],
    key_hash: u64,
    hash: impl Fn(&R) -> (u64, SocketAddr),
    up: impl Fn(&R) -> bool,
) -> (Option<&R>, Option<&R>) {
    let rank = |replica: &R| {
        let (replica_hash, addr) = hash(replica);
        (
            up(replica),
            score(key_hash, replica_hash),
            std::cmp::Reverse(addr),
        )
    };
    let mut best: Option<(&R, _)> = None;
    let mut second: Option<(&R, _)> = None;
    for replica in replicas {
        let ranked = rank(replica);
        match &best {
            Some((_, top)) if ranked <= *top => {
                if second.as_ref().is_none_or(|(_, next)| ranked > *next) {
                    second = Some((replica, ranked));
                }
            }
            _ => {
                second = best.take();
                best = Some((replica, ranked));
            }
        }
    }
    (best.map(|(r, _)| r), second.map(|(r, _)| r))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn replicas(count: u16) -> Vec<(u64, SocketAddr)> {
        (0..count)
            .map(|i| {
                let addr = SocketAddr::from(([10, 0, 0, 1 + i as u8], 8080));
                (replica_hash(addr), addr)
            })
            .collect()
    }

    fn pick(
        replicas: &[(u64, SocketAddr)],
        key: &str,
        down: &[SocketAddr],
    ) -> (Option<SocketAddr>, Option<SocketAddr>) {
        let (first, second) = first_two(
            replicas,
            key_hash("shop", key),
            |r| *r,
            |r| !down.contains(&r.1),
        );
        (first.map(|r| r.1), second.map(|r| r.1))
    }

    fn uuid_like(i: usize) -> String {
        format!("{:08x}-0000-4000-8000-{:012x}", i * 7919, i)
    }

    #[test]
    fn keys_spread_evenly_over_the_replicas() {
        for count in [2u16, 3, 5] {
            let replicas = replicas(count);
            let mut per_replica: BTreeMap<SocketAddr, usize> = BTreeMap::new();
            let keys = 30_000;
            for i in 0..keys {
                let (first, _) = pick(&replicas, &uuid_like(i), &[]);
                *per_replica.entry(first.unwrap()).or_default() += 1;
            }
            let fair = keys / usize::from(count);
            assert_eq!(per_replica.len(), usize::from(count));
            for (addr, calls) in per_replica {
                assert!(
                    calls.abs_diff(fair) * 20 < fair,
                    "{addr}: {calls} of {keys} keys over {count} replicas"
                );
            }
        }
    }

    #[test]
    fn the_same_key_reaches_the_same_replica_whatever_the_order() {
        let mut replicas = replicas(4);
        let before: Vec<_> = (0..200)
            .map(|i| pick(&replicas, &format!("key-{i}"), &[]))
            .collect();
        replicas.reverse();
        let after: Vec<_> = (0..200)
            .map(|i| pick(&replicas, &format!("key-{i}"), &[]))
            .collect();
        assert_eq!(before, after);
        // The client is part of the key.
        let hash = |client| key_hash(client, "order-1");
        assert_ne!(hash("shop"), hash("app"));
        assert_ne!(key_hash("ab", "c"), key_hash("a", "bc"));
    }

    #[test]
    fn a_replica_leaving_moves_only_its_own_keys_and_they_spread() {
        let all = replicas(4);
        let gone = all[1].1;
        let rest: Vec<_> = all.iter().copied().filter(|r| r.1 != gone).collect();
        let mut moved_to: BTreeMap<SocketAddr, usize> = BTreeMap::new();
        for i in 0..4000 {
            let key = uuid_like(i);
            let (before, next) = pick(&all, &key, &[]);
            let (after, _) = pick(&rest, &key, &[]);
            if before == Some(gone) {
                // Its keys go to the replica that was their second choice.
                assert_eq!(after, next, "{key}");
                *moved_to.entry(after.unwrap()).or_default() += 1;
            } else {
                assert_eq!(after, before, "{key} stays");
            }
        }
        assert_eq!(moved_to.len(), 3, "{moved_to:?}");
    }

    #[test]
    fn replicas_that_are_down_come_last_in_score_order() {
        let all = replicas(3);
        for i in 0..500 {
            let key = uuid_like(i);
            let (first, second) = pick(&all, &key, &[]);
            let (first, second) = (first.unwrap(), second.unwrap());
            // The first choice down: the second takes the call, and the
            // retry goes to the third (the best replica that is up).
            let (now_first, now_second) = pick(&all, &key, &[first]);
            assert_eq!(now_first, Some(second));
            let third = all
                .iter()
                .map(|r| r.1)
                .find(|a| ![first, second].contains(a));
            assert_eq!(now_second, third);
            // Every replica down: the same order as all up (the calls try
            // them anyway, best first).
            let addrs: Vec<_> = all.iter().map(|r| r.1).collect();
            assert_eq!(pick(&all, &key, &addrs), (Some(first), Some(second)));
            // The only replica up comes first, the best of the others next.
            assert_eq!(pick(&all, &key, &[first, second]).0, third);
            assert_eq!(pick(&all, &key, &[first, second]).1, Some(first));
        }
    }

    #[test]
    fn one_replica_has_no_second_choice() {
        let one = replicas(1);
        assert_eq!(pick(&one, "k", &[]), (Some(one[0].1), None));
        assert_eq!(pick(&[], "k", &[]), (None, None));
    }
}
