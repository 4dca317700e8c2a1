//! Waiting for a condition by polling, never by sleeping for a guess, and
//! running many requests at once.

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::http::try_get;

/// Polls `probe` every 20 ms until it yields `Some`, and returns that;
/// panics after `within`, naming `what` (formatted only then, so it may
/// read a log file when displayed). Every "wait until the node shows X" in
/// the tests goes through here or [`until_ok`].
pub async fn eventually<T, F, Fut>(within: Duration, what: impl Display, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    until_ok(within, what, || {
        let probed = probe();
        async move { probed.await.ok_or_else(String::new) }
    })
    .await
}

/// [`eventually`] for a probe that says what it saw when it fails: polls
/// until `probe` is `Ok`; the panic after `within` shows the last `Err`.
pub async fn until_ok<T, F, Fut>(within: Duration, what: impl Display, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        let seen = match probe().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}; last seen: {seen}"
        );
        // Poll interval; the loop waits for `probe`.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`eventually`] for a plain condition.
pub async fn poll_until(within: Duration, mut condition: impl FnMut() -> bool) {
    eventually(within, "condition still false", || {
        let holds = condition();
        async move { holds.then_some(()) }
    })
    .await
}

/// Polls `{url}/healthz` until it answers 200 (at most 10 s).
pub async fn wait_healthy(url: &str) {
    let healthz = format!("{url}/healthz");
    eventually(
        Duration::from_secs(10),
        &format!("{url} healthy"),
        || async {
            matches!(try_get(&healthz).await, Ok(reply) if reply.status == 200).then_some(())
        },
    )
    .await
}

/// Runs `task(item)` for every item with at most `limit` in flight, each on
/// its own tokio task; the results in the order of `items`.
pub async fn bounded<T, F, Fut>(limit: usize, items: Vec<T>, task: F) -> Vec<Fut::Output>
where
    F: Fn(T) -> Fut,
    Fut: std::future::Future + Send + 'static,
    Fut::Output: Send + 'static,
{
    let permits = Arc::new(tokio::sync::Semaphore::new(limit));
    let mut handles = Vec::with_capacity(items.len());
    for item in items {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let work = task(item);
        handles.push(tokio::spawn(async move {
            let output = work.await;
            drop(permit);
            output
        }));
    }
    let mut outputs = Vec::with_capacity(handles.len());
    for handle in handles {
        outputs.push(handle.await.expect("bounded task"));
    }
    outputs
}
