//! Singleflight: at most one load per key in flight on this node.
//!
//! The first caller for a key (the leader) starts the work on its own tokio
//! task; later callers for the same key wait for that task and receive a
//! clone of the same result, value or error. Running the work on a task of
//! its own means a leader whose HTTP client hangs up does not cancel the
//! load for everyone else, and a panicking load cannot leave waiters
//! blocked: they get `None`. The map's lock is held only to look a key up,
//! insert it or remove it; the caller's work (even building its future)
//! runs outside it, on the task.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;

use tokio::sync::watch;

type CallMap<T> = HashMap<Box<[u8]>, watch::Receiver<Option<T>>>;
type Calls<T> = Arc<Mutex<CallMap<T>>>;

/// A set of in-flight calls keyed by byte strings.
pub(crate) struct Flight<T> {
    calls: Calls<T>,
}

impl<T> Default for Flight<T> {
    fn default() -> Self {
        Flight {
            calls: Arc::default(),
        }
    }
}

impl<T: Clone + Send + Sync + 'static> Flight<T> {
    /// Runs `work()` for `key` unless a call for `key` is already in flight,
    /// in which case waits for that call instead. Returns `None` only when
    /// the work panicked.
    pub(crate) async fn run<F, Fut>(&self, key: &[u8], work: F) -> Option<T>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let mut result = match self.join_or_lead(key) {
            Role::Waiter(receiver) => receiver,
            Role::Leader(sender, done) => {
                let receiver = sender.subscribe();
                tokio::spawn(async move {
                    let value = work().await;
                    // Forget the call before publishing, so a caller
                    // arriving after this point starts afresh (and finds
                    // the value in the cache) instead of reading a result
                    // that is about to go stale. If `work` panics, `done`
                    // and `sender` drop during the unwind: the call is
                    // forgotten and the waiters see the sender gone.
                    drop(done);
                    sender.send_replace(Some(value));
                });
                receiver
            }
        };
        let value = result.wait_for(Option::is_some).await.ok()?;
        value.clone()
    }

    /// Under the lock, and nothing else under it: joins the call in flight
    /// for `key`, or registers a new one that this caller leads.
    fn join_or_lead(&self, key: &[u8]) -> Role<T> {
        let mut calls = lock(&self.calls);
        if let Some(waiting) = calls.get(key) {
            return Role::Waiter(waiting.clone());
        }
        let (sender, receiver) = watch::channel(None);
        calls.insert(key.into(), receiver);
        let done = Finished {
            calls: self.calls.clone(),
            key: key.into(),
        };
        Role::Leader(sender, done)
    }

    /// How many keys have a call in flight.
    #[cfg(test)]
    pub(crate) fn in_flight(&self) -> usize {
        lock(&self.calls).len()
    }
}

/// What [`Flight::join_or_lead`] made of a caller.
enum Role<T> {
    Waiter(watch::Receiver<Option<T>>),
    Leader(watch::Sender<Option<T>>, Finished<T>),
}

/// Removes a call from the map when dropped: when the work finishes, and
/// also when its task panics or is cancelled by runtime shutdown.
struct Finished<T> {
    calls: Calls<T>,
    key: Box<[u8]>,
}

impl<T> Drop for Finished<T> {
    fn drop(&mut self) {
        lock(&self.calls).remove(&self.key);
    }
}

fn lock<T>(calls: &Calls<T>) -> parking_lot::MutexGuard<'_, CallMap<T>> {
    calls.lock()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Polls `call` once, so that it has led or joined the flight, counts
    /// it in `joined`, then waits for its result.
    async fn join_then_wait<T>(call: impl Future<Output = T>, joined: &AtomicUsize) -> T {
        tokio::pin!(call);
        let early = tokio::select! {
            biased;
            early = &mut call => Some(early),
            () = std::future::ready(()) => None,
        };
        joined.fetch_add(1, Ordering::SeqCst);
        match early {
            Some(early) => early,
            None => call.await,
        }
    }

    /// Runs `callers` concurrent calls of `key` on tasks, each doing
    /// `work`, which finishes only once every caller has joined; their
    /// results and how many times `work` ran.
    async fn concurrent_callers(
        callers: usize,
        key: &'static [u8],
        result: Result<String, String>,
    ) -> (Vec<Option<Result<String, String>>>, usize) {
        let flight: Arc<Flight<Result<String, String>>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let joined = Arc::new(AtomicUsize::new(0));
        let (release, released) = watch::channel(false);
        let mut tasks = Vec::new();
        for _ in 0..callers {
            let (flight, calls, joined) = (flight.clone(), calls.clone(), joined.clone());
            let (mut released, result) = (released.clone(), result.clone());
            tasks.push(tokio::spawn(async move {
                let work = || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let _ = released.wait_for(|&r| r).await;
                    result
                };
                join_then_wait(flight.run(key, work), &joined).await
            }));
        }
        while joined.load(Ordering::SeqCst) < callers {
            tokio::task::yield_now().await;
        }
        release.send_replace(true);
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap());
        }
        assert_eq!(flight.in_flight(), 0);
        (results, calls.load(Ordering::SeqCst))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hundred_concurrent_callers_share_one_call() {
        let (results, calls) = concurrent_callers(100, b"slow", Ok("value".into())).await;
        assert_eq!(results, vec![Some(Ok("value".to_string())); 100]);
        assert_eq!(calls, 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_error_reaches_every_waiter() {
        let (results, calls) = concurrent_callers(20, b"bad", Err("boom".into())).await;
        assert_eq!(results, vec![Some(Err("boom".to_string())); 20]);
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn a_panicking_call_releases_its_waiters() {
        let flight: Flight<u32> = Flight::default();
        let result = flight
            .run(b"k", || async {
                panic!("getter bug");
            })
            .await;
        assert_eq!(result, None);
        assert_eq!(flight.in_flight(), 0);
        // The key is usable again afterwards.
        assert_eq!(flight.run(b"k", || async { 7 }).await, Some(7));
    }

    #[tokio::test]
    async fn a_loader_that_panics_before_its_future_exists_poisons_nothing() {
        let flight: Flight<u32> = Flight::default();
        let work = || -> std::future::Ready<u32> { panic!("getter bug while building the load") };
        assert_eq!(flight.run(b"k", work).await, None);
        assert_eq!(flight.in_flight(), 0);
        assert_eq!(flight.run(b"k", || async { 7 }).await, Some(7));
        assert_eq!(flight.run(b"other", || async { 8 }).await, Some(8));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_runs_without_the_map_lock_held() {
        // The work looks at the flight itself, which takes the map's lock:
        // had `run` kept holding it, this would deadlock.
        let flight: Arc<Flight<usize>> = Arc::default();
        let inner = flight.clone();
        let seen = tokio::time::timeout(
            Duration::from_secs(10),
            flight.run(b"k", move || async move { inner.in_flight() }),
        )
        .await
        .expect("work that takes the flight's lock must not deadlock");
        assert_eq!(seen, Some(1));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_leader_does_not_cancel_the_load_for_the_others() {
        let flight: Arc<Flight<u32>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let (release, released) = watch::channel(false);
        let work = {
            let calls = calls.clone();
            move || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let mut released = released;
                let _ = released.wait_for(|&r| r).await;
                42
            }
        };
        let leader = tokio::spawn({
            let flight = flight.clone();
            async move { flight.run(b"k", work).await }
        });
        while flight.in_flight() == 0 {
            tokio::task::yield_now().await;
        }
        // Poll the follower once here, so it has surely joined the call
        // before the leader goes away and the load is released.
        let follower = flight.run(b"k", || async { 0 });
        tokio::pin!(follower);
        tokio::select! {
            biased;
            early = &mut follower => panic!("the follower finished early: {early:?}"),
            () = std::future::ready(()) => {}
        }
        leader.abort();
        assert!(leader.await.unwrap_err().is_cancelled());
        release.send_replace(true);
        assert_eq!(follower.await, Some(42), "the leader's load");
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn calls_after_completion_run_again() {
        let flight: Flight<u32> = Flight::default();
        assert_eq!(flight.run(b"k", || async { 1 }).await, Some(1));
        assert_eq!(flight.run(b"k", || async { 2 }).await, Some(2));
    }
}
