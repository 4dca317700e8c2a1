//! Answering with an expired value in its grace (RFC 5861): at once
//! within `stale-while-revalidate` (one reload in the background), and
//! within `stale-if-error` when its reload fails, has failed recently
//! (retried in the background as the back-off allows), or has not ended
//! within the group's stale wait (it runs on, and counts as failed for the
//! back-off).

use crate::cache::StaleHit;
use crate::group::answer::{panicked, Source, Traced};
use crate::group::counters::Counted;
use crate::group::{Group, Path};

impl Group {
    /// What a get by `path` that found `stale`, an expired value in its
    /// grace, answers: the stale value at once, or a reload's answer, or
    /// the stale value when the reload fails or is slow.
    pub(super) async fn answer_stale(&self, key: &[u8], stale: StaleHit, path: Path) -> Traced {
        let inner = &self.inner;
        if stale.revalidating || stale.failing {
            if inner.caches.begin_refresh(key) {
                self.refresh_in_background(key, path);
            }
            let (counted, source) = if stale.revalidating {
                (Counted::StaleWhileRevalidate, Source::Revalidating)
            } else {
                (Counted::StaleIfError, Source::StaleOnError(None))
            };
            inner.stats.count(counted);
            return (Ok(stale.value), source);
        }
        inner.stats.count(Counted::Load);
        let Some((loaded, source)) = self.load_within_stale_wait(key, path).await else {
            // The load runs on; gets answer stale at once until it ends.
            inner.caches.end_reload(key, true);
            inner.stats.count(Counted::StaleIfError);
            return (Ok(stale.value), Source::StaleOnSlowLoad);
        };
        match loaded {
            Err(e) if e.allows_stale() => {
                inner.caches.end_reload(key, true);
                inner.stats.count(Counted::StaleIfError);
                (Ok(stale.value), Source::StaleOnError(Some(e)))
            }
            loaded => {
                inner.caches.end_reload(key, false);
                (loaded, source)
            }
        }
    }

    /// [`Group::load_by`], waited for at most the stale wait: `None` when
    /// it has not ended by then. It then runs on, on a task of its own, and
    /// ends the reload of the stale value when it does.
    async fn load_within_stale_wait(&self, key: &[u8], path: Path) -> Option<Traced> {
        let (this, owned_key) = (self.clone(), key.to_vec());
        let mut loading = tokio::spawn(async move { this.load_by(&owned_key, path).await });
        if let Ok(joined) = tokio::time::timeout(self.inner.stale_wait, &mut loading).await {
            return Some(joined.unwrap_or_else(|_| panicked()));
        }
        let (this, key) = (self.clone(), key.to_vec());
        tokio::spawn(async move {
            let failed = match loading.await {
                Ok((loaded, _)) => matches!(&loaded, Err(e) if e.allows_stale()),
                Err(_) => true,
            };
            this.inner.caches.end_reload(&key, failed);
        });
        None
    }

    /// Reloads `key`, whose stale value is being served, on a task of its
    /// own; its new value replaces the stale one, its failure backs off.
    fn refresh_in_background(&self, key: &[u8], path: Path) {
        self.inner.stats.count(Counted::BackgroundRefresh);
        let (this, key) = (self.clone(), key.to_vec());
        tokio::spawn(async move {
            let (loaded, _) = this.load_by(&key, path).await;
            let failed = matches!(&loaded, Err(e) if e.allows_stale());
            this.inner.caches.end_reload(&key, failed);
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::Arc;
    use std::time::Duration;

    use bytes::Bytes;

    use crate::group::freshness::TtlPolicy;
    use crate::group::getter::GetterError;
    use crate::group::tests::{stale_group, FAILING, GONE, SLOW, UP};
    use crate::group::{Group, GroupError, Source, DEFAULT_STALE_WAIT};
    use crate::value::advance_clock;

    /// A get that must not wait at all (time is paused: any wait shows).
    async fn get_at_once(group: &Group, key: &[u8]) -> (Bytes, Source) {
        let started = tokio::time::Instant::now();
        let (loaded, source) = group.get_traced(key).await;
        assert_eq!(started.elapsed(), Duration::ZERO, "{source:?} waited");
        (loaded.expect("a value").bytes, source)
    }

    /// Lets background refreshes run to the end.
    async fn let_background_work_finish() {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    // Expiry runs on `value::now`, moved by `advance_clock`; the getter's
    // delay on tokio's paused clock. A current-thread runtime keeps both
    // on this thread.
    #[tokio::test(start_paused = true)]
    async fn stale_while_revalidate_answers_at_once_and_reloads_once() {
        let (group, calls, _) = stale_group(TtlPolicy {
            stale_while_revalidate: Some(Duration::from_secs(30)),
            ..TtlPolicy::default()
        });
        assert_eq!(group.get(b"k").await.unwrap().bytes, "v1");
        for expiry in 1..=3 {
            advance_clock(Duration::from_secs(2));
            for _ in 0..10 {
                let answer = get_at_once(&group, b"k").await;
                assert_eq!(
                    answer,
                    (Bytes::from(format!("v{expiry}")), Source::Revalidating)
                );
            }
            let_background_work_finish().await;
            assert_eq!(calls.load(Relaxed), expiry + 1, "one reload per expiry");
            let fresh = get_at_once(&group, b"k").await;
            assert_eq!(
                fresh,
                (Bytes::from(format!("v{}", expiry + 1)), Source::Main)
            );
        }
        let stats = group.stats();
        assert_eq!(
            (stats.stale_while_revalidate, stats.background_refreshes),
            (30, 3)
        );
        assert_eq!(
            stats.stale_cache.items, 0,
            "each refresh replaced its stale value"
        );
    }

    /// A group whose `k`, loaded as v1 with a minute of `stale-if-error`,
    /// has expired, its getter now in `mode`; gets wait `stale_wait` for a
    /// reload.
    async fn expired_in_grace(
        mode_now: u8,
        stale_wait: Duration,
    ) -> (Group, Arc<AtomicUsize>, Arc<std::sync::atomic::AtomicU8>) {
        let (group, calls, mode) = stale_group(TtlPolicy {
            stale_if_error: Some(Duration::from_secs(60)),
            ..TtlPolicy::default()
        });
        let group = group.with_stale_wait(stale_wait);
        assert_eq!(group.get(b"k").await.unwrap().bytes, "v1");
        mode.store(mode_now, Relaxed);
        advance_clock(Duration::from_secs(2));
        (group, calls, mode)
    }

    #[tokio::test(start_paused = true)]
    async fn stale_if_error_answers_failed_reloads_and_retries_in_the_background() {
        let (group, calls, mode) = expired_in_grace(FAILING, DEFAULT_STALE_WAIT).await;
        // The first get after expiry tries the origin, and gets v1 instead.
        let (loaded, source) = group.get_traced(b"k").await;
        assert_eq!(loaded.unwrap().bytes, "v1");
        assert!(matches!(
            source,
            Source::StaleOnError(Some(GroupError::Getter(GetterError::Failed(_))))
        ));
        assert_eq!(calls.load(Relaxed), 2);
        // Within the back-off: answered at once, the origin left alone.
        for _ in 0..5 {
            let answer = get_at_once(&group, b"k").await;
            assert_eq!(answer, (Bytes::from("v1"), Source::StaleOnError(None)));
        }
        assert_eq!(calls.load(Relaxed), 2);
        // After the back-off: still at once, one retry in the background.
        advance_clock(Duration::from_millis(1100));
        assert_eq!(
            get_at_once(&group, b"k").await.1,
            Source::StaleOnError(None)
        );
        let_background_work_finish().await;
        assert_eq!(calls.load(Relaxed), 3);
        // The origin is back; the next retry (after 2 s) brings v4.
        mode.store(UP, Relaxed);
        advance_clock(Duration::from_millis(2100));
        assert_eq!(get_at_once(&group, b"k").await.0, "v1");
        let_background_work_finish().await;
        assert_eq!(calls.load(Relaxed), 4);
        assert_eq!(
            get_at_once(&group, b"k").await,
            (Bytes::from("v4"), Source::Main)
        );
        // Past the window, a failure is an error again.
        mode.store(FAILING, Relaxed);
        advance_clock(Duration::from_secs(62));
        assert!(group.get(b"k").await.is_err());
        // A key that is gone is not answered stale.
        mode.store(UP, Relaxed);
        assert_eq!(group.get(b"k").await.unwrap().bytes, "v6");
        mode.store(GONE, Relaxed);
        advance_clock(Duration::from_secs(2));
        assert!(group.get(b"k").await.unwrap_err().is_not_found());
        assert_eq!(group.stats().stale_cache.items, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_reload_is_answered_stale_after_the_stale_wait() {
        let (group, calls, _) = expired_in_grace(SLOW, DEFAULT_STALE_WAIT).await;
        let started = tokio::time::Instant::now();
        let (loaded, source) = group.get_traced(b"k").await;
        assert_eq!(started.elapsed(), DEFAULT_STALE_WAIT, "not the load's 5 s");
        assert_eq!(
            (loaded.unwrap().bytes, source),
            (Bytes::from("v1"), Source::StaleOnSlowLoad)
        );
        // While the reload runs on: answered at once, the origin asked once.
        for _ in 0..5 {
            let answer = get_at_once(&group, b"k").await;
            assert_eq!(answer, (Bytes::from("v1"), Source::StaleOnError(None)));
        }
        assert_eq!(calls.load(Relaxed), 2);
        // Its value replaces the stale one.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            get_at_once(&group, b"k").await,
            (Bytes::from("v2"), Source::Main)
        );
        assert_eq!(calls.load(Relaxed), 2);
        assert_eq!(group.stats().stale_if_error, 6);
        // With no stale wait, the same get answers stale at once.
        let (group, _, _) = expired_in_grace(SLOW, Duration::ZERO).await;
        assert_eq!(
            get_at_once(&group, b"k").await,
            (Bytes::from("v1"), Source::StaleOnSlowLoad)
        );
    }
}
