//! Loading a key with this node's getter: a singleflight of its own,
//! shared by user and peer gets, that never waits on a peer (so two nodes
//! never wait on each other); the value stored in the main cache unless a
//! write came while it loaded, and a not-found remembered for its negative
//! lifetime.

use std::time::Instant;

use crate::cache::Which;
use crate::group::answer::{panicked, Source, Traced};
use crate::group::counters::Counted;
use crate::group::error::GroupError;
use crate::group::freshness::Lifetime;
use crate::group::getter::GetterError;
use crate::group::load::flight_key;
use crate::group::Group;
use crate::value::Expiry;

impl Group {
    /// Loads `key` with this node's getter, once per key in flight.
    /// `count_dedup` is false when the caller already counted this load as
    /// deduplicated (a fallback after a failed peer fetch).
    pub(super) async fn load_locally(&self, key: &[u8], since: u64, count_dedup: bool) -> Traced {
        let this = self.clone();
        let owned_key = key.to_vec();
        // Boxed for the same reason as in `load_by`.
        let flight = flight_key(key, since);
        let loaded = self.inner.local_loads.run(&flight, move || {
            Box::pin(async move { this.load_from_getter(owned_key, since, count_dedup).await })
        });
        loaded.await.unwrap_or(panicked())
    }

    /// The singleflight leader's work for a local load.
    async fn load_from_getter(&self, key: Vec<u8>, since: u64, count_dedup: bool) -> Traced {
        let inner = &self.inner;
        if let Some(found) = self.recheck(&key) {
            return found;
        }
        if count_dedup {
            inner.stats.count(Counted::LoadDeduped);
        }
        let started = Instant::now();
        let loaded = inner.getter.get(&key).await;
        inner.timings.origin_load(started.elapsed());
        match loaded {
            Ok(value) => {
                inner.stats.count(Counted::LocalLoad);
                let value = self.with_grace(value);
                let since = Some(since);
                let value = inner
                    .caches
                    .add_unless_written(Which::Main, &key, value, since);
                (Ok(value), Source::Origin)
            }
            Err(e) => {
                inner.stats.count(Counted::LocalLoadErr);
                let mut source = Source::Origin;
                if e.is_not_found() {
                    if let Some(until) = self.remember_not_found(&key, &e, since) {
                        source = Source::OriginNotFound(until);
                    }
                } else if matches!(e, GetterError::Failed(_)) {
                    if let Some(unlogged) = inner.getter_warnings.admit() {
                        tracing::warn!(group = %inner.name, error = %e, unlogged, "origin load failed");
                    }
                }
                (Err(GroupError::Getter(e)), source)
            }
        }
    }

    /// Keeps a not-found for its negative lifetime: the getter's, else the
    /// group's `--negative-ttl` (capped by `--negative-max-ttl`). Returns
    /// the expiry it is kept until, `None` when it is not kept.
    fn remember_not_found(&self, key: &[u8], error: &GetterError, since: u64) -> Option<Expiry> {
        let expiry = match error {
            GetterError::NotFoundUntil(_, expiry) => *expiry,
            _ => {
                let silent = Lifetime::Unspecified;
                self.inner
                    .policy
                    .negative_expiry(silent, crate::value::now())
            }
        };
        if expiry.is_expired() {
            return None;
        }
        let message = error.to_string();
        let caches = &self.inner.caches;
        caches
            .add_not_found(key, &message, expiry, since)
            .then_some(expiry)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;
    use std::time::Duration;

    use crate::group::freshness::TtlPolicy;
    use crate::group::tests::{
        concurrent_gets, counting_getter, local_group, stale_group, GONE, UP,
    };
    use crate::group::Source;
    use crate::value::advance_clock;

    #[tokio::test(start_paused = true)]
    async fn a_getter_error_reaches_every_waiter_and_is_not_cached() {
        let calls = Arc::new(AtomicUsize::new(0));
        let group = local_group(counting_getter(calls.clone(), Duration::from_millis(100)));
        for loaded in concurrent_gets(&group, b"missing", 50).await {
            let error = loaded.unwrap_err();
            assert!(error.is_not_found());
            assert_eq!(error.to_string(), "origin returned 404 Not Found");
        }
        assert_eq!(calls.load(Relaxed), 1);
        assert_eq!(group.stats().local_load_errs, 1);
        assert!(group.get(b"missing").await.is_err());
        assert_eq!(calls.load(Relaxed), 2, "errors are not cached");
    }

    #[tokio::test(start_paused = true)]
    async fn not_founds_are_remembered_for_the_negative_ttl() {
        let (group, calls, mode) = stale_group(TtlPolicy {
            negative_ttl: Some(Duration::from_secs(60)),
            ..TtlPolicy::default()
        });
        mode.store(GONE, Relaxed);
        let (loaded, first) = group.get_traced(b"k").await;
        assert!(loaded.unwrap_err().is_not_found());
        let Source::OriginNotFound(until) = first else {
            panic!("the first answer says it is remembered: {first:?}");
        };
        let left = until.remaining().unwrap_or_default();
        assert!(left > Duration::from_secs(59), "kept for the negative TTL");
        for _ in 0..5 {
            let (loaded, source) = group.get_traced(b"k").await;
            assert_eq!(loaded.unwrap_err().to_string(), "origin returned 404");
            assert!(matches!(source, Source::NotFound(_)));
        }
        assert_eq!(calls.load(Relaxed), 1);
        assert_eq!(group.stats().negative_hits, 5);
        // A write clears it at once.
        group.write(b"k", None).unwrap();
        assert!(group.get(b"k").await.is_err());
        assert_eq!(calls.load(Relaxed), 2);
        // And it expires.
        advance_clock(Duration::from_secs(61));
        mode.store(UP, Relaxed);
        assert_eq!(group.get(b"k").await.unwrap().bytes, "v3");
        // Without a negative TTL, nothing is remembered.
        let (group, calls, mode) = stale_group(TtlPolicy::default());
        mode.store(GONE, Relaxed);
        for _ in 0..3 {
            assert!(group.get(b"k").await.is_err());
        }
        assert_eq!(calls.load(Relaxed), 3);
    }
}
