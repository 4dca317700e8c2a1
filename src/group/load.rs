//! Loading a user get's miss, once per key and write generation: the
//! owner by the ring, the fetch from it (given up on after the pool's
//! fetch timeout), keeping a hot copy as the [`HotPolicy`] says, and the
//! fall back to a local load when the fetch fails.
//!
//! [`HotPolicy`]: crate::group::HotPolicy

use std::time::Instant;

use crate::cache::Which;
use crate::group::answer::{answer, panicked, Source, Traced};
use crate::group::counters::Counted;
use crate::group::error::GroupError;
use crate::group::hot_policy::HotPolicy;
use crate::group::{Group, Path};
use crate::http_client::HttpError;
use crate::peers::picker::{FetchPeer, PeerError};
use crate::value::Value;

impl Group {
    /// Loads `key` as a miss by `path` would, once per key in flight.
    pub(super) async fn load_by(&self, key: &[u8], path: Path) -> Traced {
        let since = self.inner.caches.generation(key);
        if path == Path::Peer {
            return self.load_locally(key, since, true).await;
        }
        let this = self.clone();
        let owned_key = key.to_vec();
        // Boxed: the singleflight moves the work into a task of its own,
        // and moving a pointer is cheaper than moving the whole future.
        let flight = flight_key(key, since);
        let loaded = self.inner.loads.run(&flight, move || {
            Box::pin(async move { this.load(owned_key, since).await })
        });
        loaded.await.unwrap_or(panicked())
    }

    /// A singleflight leader's second look: another load may have filled
    /// the cache just before this one began.
    pub(super) fn recheck(&self, key: &[u8]) -> Option<Traced> {
        answer(self.inner.caches.lookup_again(key), &self.inner.stats).ok()
    }

    /// The singleflight leader's work for a user get.
    async fn load(&self, key: Vec<u8>, since: u64) -> Traced {
        let inner = &self.inner;
        let Some(peer) = inner.peers.pick(&key) else {
            // This node owns the key; the local load re-checks the caches.
            return self.load_locally(&key, since, true).await;
        };
        if let Some(found) = self.recheck(&key) {
            return found;
        }
        inner.stats.count(Counted::LoadDeduped);
        let started = Instant::now();
        let fetched = self.fetch(peer.as_ref(), &key).await;
        inner.timings.peer_fetch(started.elapsed());
        match fetched {
            Ok((value, reported_rate)) => {
                inner.stats.count(Counted::PeerLoad);
                let value = self.mirror(&key, value, since, reported_rate);
                return (Ok(value), Source::Peer);
            }
            // Its keys load here at once while the owner is marked down.
            Err(PeerError::Down) => {}
            // The owner asked its origin: the key does not exist.
            Err(PeerError::NotFound(message)) => {
                let not_found = true;
                return (
                    Err(GroupError::Refused { not_found, message }),
                    Source::Peer,
                );
            }
            Err(PeerError::Status(status, message))
                if inner.peers.protocol().is_final_refusal(status) =>
            {
                let not_found = status == hyper::StatusCode::NOT_FOUND;
                return (
                    Err(GroupError::Refused { not_found, message }),
                    Source::Peer,
                );
            }
            Err(e) => {
                inner.stats.count(Counted::PeerError);
                if let Some(unlogged) = peer.failure_to_log() {
                    tracing::warn!(
                        group = %inner.name,
                        peer = peer.url(),
                        error = %e,
                        unlogged,
                        "peer fetch failed, loading locally"
                    );
                }
            }
        }
        self.load_locally(&key, since, false).await
    }

    /// Keeps a hot copy of `value`, fetched from its owner, as the hot
    /// policy says; returns the value.
    fn mirror(&self, key: &[u8], value: Value, since: u64, reported_rate: Option<f64>) -> Value {
        let inner = &self.inner;
        match inner.hot_policy {
            HotPolicy::Golang => {
                if inner.peers.protocol().always_fills_hot() || (inner.mirror_sample)() {
                    let since = Some(since);
                    return inner
                        .caches
                        .add_unless_written(Which::Hot, key, value, since);
                }
                value
            }
            HotPolicy::Heat => {
                let (value, admitted) = inner.caches.offer_hot(key, value, since, reported_rate);
                match admitted {
                    Some(true) => inner.stats.count(Counted::HotAdmission),
                    Some(false) => inner.stats.count(Counted::HotRejection),
                    None => {}
                }
                value
            }
        }
    }

    /// Fetches `key` from its owner, with the owner's estimate of its rate,
    /// giving up after the pool's fetch timeout even if the peer never
    /// answers.
    async fn fetch(
        &self,
        peer: &dyn FetchPeer,
        key: &[u8],
    ) -> Result<(Value, Option<f64>), PeerError> {
        let timeout = self.inner.peers.fetch_timeout();
        // `fetch` before the timer: the peer client counts the same deadline
        // from its call, so when this timer fires it sees it has passed.
        let fetching = peer.fetch_with_rate(self.inner.name.as_bytes(), key);
        tokio::time::timeout(timeout, fetching)
            .await
            .unwrap_or(Err(PeerError::Http(HttpError::Timeout(timeout))))
    }
}

/// The singleflight key of a load of `key` begun at write generation
/// `since`: a get after a write never joins a load begun before it.
pub(super) fn flight_key(key: &[u8], since: u64) -> Vec<u8> {
    let mut flight = Vec::with_capacity(key.len() + 8);
    flight.extend_from_slice(&since.to_le_bytes());
    flight.extend_from_slice(key);
    flight
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;
    use std::time::Duration;

    use hyper::StatusCode;

    use crate::group::freshness::TtlPolicy;
    use crate::group::tests::{concurrent_gets, counting_getter, group_over, local_group};
    use crate::group::{Group, GroupError, HotPolicy};
    use crate::http_client::{HttpClient, HttpError};
    use crate::peers::picker::fake::{Answer, FakePeer, FakePool, FETCH_TIMEOUT};
    use crate::peers::picker::PeerError;
    use crate::peers::protocol::Protocol;
    use crate::peers::Peers;
    use std::sync::atomic::Ordering::Relaxed;

    // Paused time: the getter's delay passes only once every get is
    // waiting, so all hundred join the one load.
    #[tokio::test(start_paused = true)]
    async fn hundred_concurrent_gets_load_once() {
        let calls = Arc::new(AtomicUsize::new(0));
        let group = local_group(counting_getter(calls.clone(), Duration::from_millis(200)));
        for loaded in concurrent_gets(&group, b"slow", 100).await {
            assert_eq!(loaded.unwrap().bytes, "value-of-slow");
        }
        assert_eq!(calls.load(Relaxed), 1);
        let stats = group.stats();
        assert_eq!(stats.gets, 100);
        assert_eq!(stats.local_loads, 1);
        assert_eq!(stats.loads_deduped, 1);
        assert_eq!(stats.main_cache.items, 1);
        // A later get is a cache hit.
        assert_eq!(group.get(b"slow").await.unwrap().bytes, "value-of-slow");
        assert_eq!(calls.load(Relaxed), 1);
    }

    #[tokio::test]
    async fn owner_down_falls_back_to_a_local_load() {
        // Self is 127.0.0.1:1; the other peer is a closed port, and with
        // two peers some keys are owned by it.
        let http = HttpClient::new(Duration::from_millis(500), 4);
        let peers = Arc::new(Peers::new(
            "http://127.0.0.1:1".into(),
            "/_groupcache/".into(),
            50,
            http,
            4,
        ));
        peers.set(vec![
            "http://127.0.0.1:1".into(),
            "http://127.0.0.1:9".into(),
        ]);
        let key = (0..)
            .map(|i: u32| format!("key{i}"))
            .find(|k| peers.owner(k.as_bytes()).as_deref() == Some("http://127.0.0.1:9"))
            .unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let group = Group::new(
            "g",
            1 << 20,
            counting_getter(calls.clone(), Duration::ZERO),
            peers,
            TtlPolicy::default(),
            HotPolicy::Golang,
        );
        assert_eq!(
            group.get(key.as_bytes()).await.unwrap().bytes,
            format!("value-of-{key}")
        );
        let stats = group.stats();
        assert_eq!(
            (stats.peer_errors, stats.peer_loads, stats.local_loads),
            (1, 0, 1)
        );
        assert_eq!(calls.load(Relaxed), 1);
    }

    #[tokio::test]
    async fn a_value_from_the_owner_is_returned_without_a_local_load() {
        let owner = FakePeer::new(Answer::Value("remote"));
        let pool = FakePool::new(Some(owner.clone()), Protocol::Golang);
        let calls = Arc::new(AtomicUsize::new(0));
        let group = group_over(&pool, counting_getter(calls.clone(), Duration::ZERO));
        assert_eq!(group.get(b"k").await.unwrap().bytes, "remote");
        assert_eq!(calls.load(Relaxed), 0, "the getter is not called");
        assert_eq!(owner.fetched(), [b"k".to_vec()]);
        let stats = group.stats();
        assert_eq!(
            (stats.loads, stats.peer_loads, stats.local_loads),
            (1, 1, 0)
        );
        assert_eq!((stats.peer_errors, stats.local_load_errs), (0, 0));
        // Not mirrored and not the owner: nothing is cached here.
        assert_eq!((stats.main_cache.items, stats.hot_cache.items), (0, 0));
    }

    #[tokio::test]
    async fn golang_mirrors_exactly_the_sampled_fetches_into_the_hot_cache() {
        // The 2nd and 5th fetches are chosen (golang: 1 in 10 at random).
        fn second_and_fifth() -> bool {
            static FETCHES: AtomicUsize = AtomicUsize::new(0);
            matches!(FETCHES.fetch_add(1, Relaxed), 1 | 4)
        }
        let owner = FakePeer::new(Answer::Value("remote"));
        let pool = FakePool::new(Some(owner.clone()), Protocol::Golang);
        let getter = counting_getter(Arc::new(AtomicUsize::new(0)), Duration::ZERO);
        let group = Group::with_mirror_sample("g", 1 << 20, getter, pool, second_and_fifth);
        let keys: Vec<Vec<u8>> = (0..6).map(|i| format!("k{i}").into_bytes()).collect();
        for key in &keys {
            assert_eq!(group.get(key).await.unwrap().bytes, "remote");
        }
        assert_eq!(owner.fetched(), keys);
        assert_eq!(group.stats().hot_cache.items, 2);
        // Mirrored keys are hits now; the others are fetched again.
        for key in &keys {
            assert_eq!(group.get(key).await.unwrap().bytes, "remote");
        }
        let again = &owner.fetched()[keys.len()..];
        assert_eq!(again, [&keys[0][..], &keys[2], &keys[3], &keys[5]]);
        let stats = group.stats();
        assert_eq!((stats.cache_hits, stats.peer_loads), (2, 10));
    }

    #[tokio::test]
    async fn the_forks_mirror_every_fetched_value_and_a_hit_asks_no_peer() {
        for protocol in [Protocol::Mailgun, Protocol::GroupcacheGo] {
            let owner = FakePeer::new(Answer::Value("remote"));
            let pool = FakePool::new(Some(owner.clone()), protocol);
            let getter = counting_getter(Arc::new(AtomicUsize::new(0)), Duration::ZERO);
            let group = group_over(&pool, getter);
            for _ in 0..3 {
                assert_eq!(group.get(b"k").await.unwrap().bytes, "remote");
            }
            assert_eq!(owner.fetched().len(), 1, "{protocol:?}");
            assert_eq!(
                pool.picks.load(Relaxed),
                1,
                "{protocol:?}: hits skip the pool"
            );
            let stats = group.stats();
            assert_eq!((stats.hot_cache.items, stats.cache_hits), (1, 2));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_owner_is_given_up_on_after_the_fetch_timeout() {
        let owner = FakePeer::new(Answer::Hang);
        let pool = FakePool::new(Some(owner.clone()), Protocol::Golang);
        let calls = Arc::new(AtomicUsize::new(0));
        let group = group_over(&pool, counting_getter(calls.clone(), Duration::ZERO));
        let started = tokio::time::Instant::now();
        for loaded in concurrent_gets(&group, b"k", 10).await {
            assert_eq!(loaded.unwrap().bytes, "value-of-k");
        }
        let waited = started.elapsed();
        assert!(
            (FETCH_TIMEOUT..FETCH_TIMEOUT + Duration::from_millis(10)).contains(&waited),
            "{waited:?}"
        );
        assert_eq!(owner.fetched().len(), 1, "one fetch for all ten gets");
        assert_eq!(calls.load(Relaxed), 1);
        let stats = group.stats();
        assert_eq!(
            (stats.peer_errors, stats.peer_loads, stats.local_loads),
            (1, 0, 1)
        );
    }

    #[tokio::test]
    async fn golang_loads_locally_whatever_the_owner_answers() {
        let refusals = [StatusCode::NOT_FOUND, StatusCode::SERVICE_UNAVAILABLE];
        let errors = refusals
            .map(|status| PeerError::Status(status, "no".into()))
            .into_iter()
            .chain([
                PeerError::Status(StatusCode::INTERNAL_SERVER_ERROR, "boom".into()),
                PeerError::Http(HttpError::Request("connection refused".into())),
                PeerError::Down,
            ]);
        for error in errors {
            let down = error == PeerError::Down;
            let owner = FakePeer::new(Answer::Error(error));
            let pool = FakePool::new(Some(owner.clone()), Protocol::Golang);
            let calls = Arc::new(AtomicUsize::new(0));
            let group = group_over(&pool, counting_getter(calls.clone(), Duration::ZERO));
            assert_eq!(group.get(b"k").await.unwrap().bytes, "value-of-k");
            assert_eq!(calls.load(Relaxed), 1);
            let stats = group.stats();
            // A peer marked down is skipped, not counted as an error.
            let errors = if down { 0 } else { 1 };
            assert_eq!((stats.peer_errors, stats.local_loads), (errors, 1));
            // Loaded here, so cached here: the next get asks no one.
            assert_eq!(group.get(b"k").await.unwrap().bytes, "value-of-k");
            assert_eq!(owner.fetched().len(), 1);
        }
    }

    #[tokio::test]
    async fn the_forks_pass_on_an_owners_404_or_503_without_a_local_load() {
        for protocol in [Protocol::Mailgun, Protocol::GroupcacheGo] {
            for (status, not_found) in [
                (StatusCode::NOT_FOUND, true),
                (StatusCode::SERVICE_UNAVAILABLE, false),
            ] {
                let refusal = PeerError::Status(status, "no such key".into());
                let owner = FakePeer::new(Answer::Error(refusal));
                let pool = FakePool::new(Some(owner), protocol);
                let calls = Arc::new(AtomicUsize::new(0));
                let group = group_over(&pool, counting_getter(calls.clone(), Duration::ZERO));
                let error = group.get(b"k").await.unwrap_err();
                let expected = GroupError::Refused {
                    not_found,
                    message: "no such key".into(),
                };
                assert_eq!(error, expected, "{protocol:?}");
                assert_eq!(calls.load(Relaxed), 0, "{protocol:?}: no local load");
                let stats = group.stats();
                assert_eq!((stats.peer_errors, stats.local_loads), (0, 0));
            }
            // Any other failure still falls back to a local load.
            let failure = PeerError::Status(StatusCode::INTERNAL_SERVER_ERROR, "boom".into());
            let pool = FakePool::new(Some(FakePeer::new(Answer::Error(failure))), protocol);
            let calls = Arc::new(AtomicUsize::new(0));
            let group = group_over(&pool, counting_getter(calls.clone(), Duration::ZERO));
            assert_eq!(group.get(b"k").await.unwrap().bytes, "value-of-k");
            assert_eq!(calls.load(Relaxed), 1);
        }
    }
}
