//! Singleflight: at most one load per key in flight on this node.
//!
//! The first caller for a key (the leader) starts the work on its own tokio
//! task; later callers for the same key wait for that task and receive a
//! clone of the same result, value or error. Running the work on a task of
//! its own means a leader whose HTTP client hangs up does not cancel the
//! load for everyone else, and a panicking load cannot leave waiters
//! blocked: they get `None`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

type CallMap<T> = HashMap<Box<[u8]>, watch::Receiver<Option<T>>>;
type Calls<T> = Arc<Mutex<CallMap<T>>>;

/// A set of in-flight calls keyed by byte strings.
pub struct Flight<T> {
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
    pub async fn run<F, Fut>(&self, key: &[u8], work: F) -> Option<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let mut result = {
            let mut calls = lock(&self.calls);
            match calls.get(key) {
                Some(waiting) => waiting.clone(),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    calls.insert(key.into(), receiver.clone());
                    let done = Finished {
                        calls: self.calls.clone(),
                        key: key.into(),
                    };
                    let work = work();
                    tokio::spawn(async move {
                        let value = work.await;
                        // Forget the call before publishing, so a caller
                        // arriving after this point starts afresh (and finds
                        // the value in the cache) instead of reading a result
                        // that is about to go stale.
                        drop(done);
                        sender.send_replace(Some(value));
                    });
                    receiver
                }
            }
        };
        let value = result.wait_for(Option::is_some).await.ok()?;
        value.clone()
    }

    /// How many keys have a call in flight.
    pub fn in_flight(&self) -> usize {
        lock(&self.calls).len()
    }
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

fn lock<T>(calls: &Calls<T>) -> std::sync::MutexGuard<'_, CallMap<T>> {
    // The map is only ever inserted into or removed from while locked; a
    // panic cannot interrupt either half way, so a poisoned lock is usable.
    calls
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hundred_concurrent_callers_share_one_call() {
        let flight: Arc<Flight<Result<String, String>>> = Arc::default();
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let (flight, calls) = (flight.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                flight
                    .run(b"slow", || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        Ok("value".to_string())
                    })
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), Some(Ok("value".to_string())));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(flight.in_flight(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_error_reaches_every_waiter() {
        let flight: Arc<Flight<Result<String, String>>> = Arc::default();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let flight = flight.clone();
            tasks.push(tokio::spawn(async move {
                flight
                    .run(b"bad", || async {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        Err("boom".to_string())
                    })
                    .await
            }));
        }
        for task in tasks {
            assert_eq!(task.await.unwrap(), Some(Err("boom".to_string())));
        }
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
    async fn calls_after_completion_run_again() {
        let flight: Flight<u32> = Flight::default();
        assert_eq!(flight.run(b"k", || async { 1 }).await, Some(1));
        assert_eq!(flight.run(b"k", || async { 2 }).await, Some(2));
    }
}
