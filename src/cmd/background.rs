//! The node's long-lived background tasks (etcd or DNS discovery, the TLS
//! reload watcher), watched: one that panics or ends before shutdown is
//! reported by name, so the node stops instead of running on silently
//! without membership or certificate reloads.

use std::collections::HashMap;
use std::future::Future;

use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

/// The node's long-lived background tasks (etcd discovery, the TLS reload
/// watcher): any that ends before shutdown, or panics, is an error.
#[derive(Default)]
pub(crate) struct Background {
    tasks: JoinSet<()>,
    names: HashMap<Id, &'static str>,
    /// Cancelled at shutdown; each task is handed a child of it.
    stop: CancellationToken,
}

/// A background task panicked or ended before shutdown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("background task {task} {how}")]
pub(crate) struct TaskEnded {
    /// The task's name.
    pub(crate) task: &'static str,
    /// `ended`, `panicked: MESSAGE` or `was cancelled`.
    pub(crate) how: String,
}

impl Background {
    /// Spawns the task `start` makes; it must end once its token is
    /// cancelled.
    pub(crate) fn spawn<F>(
        &mut self,
        name: &'static str,
        start: impl FnOnce(CancellationToken) -> F,
    ) where
        F: Future<Output = ()> + Send + 'static,
    {
        let task = self.tasks.spawn(start(self.stop.child_token()));
        self.names.insert(task.id(), name);
    }

    /// Resolves when the first task ends, saying which and how; never when
    /// there are none.
    pub(crate) async fn first_ended(&mut self) -> TaskEnded {
        let Some(ended) = self.tasks.join_next_with_id().await else {
            return std::future::pending().await;
        };
        let (id, how) = match ended {
            Ok((id, ())) => (id, "ended".to_string()),
            Err(e) if e.is_panic() => {
                let id = e.id();
                let payload = e.into_panic();
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                (id, format!("panicked: {message}"))
            }
            Err(e) => (e.id(), "was cancelled".to_string()),
        };
        let task = self.names.get(&id).copied().unwrap_or("unnamed");
        TaskEnded { task, how }
    }

    /// Cancels every task and waits for them to finish.
    pub(crate) async fn stop(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_task_is_reported_by_name() {
        let mut background = Background::default();
        background.spawn("idle", |stop| async move { stop.cancelled().await });
        background.spawn("doomed", |_| async {
            tokio::task::yield_now().await;
            panic!("lost the lease");
        });
        let ended = background.first_ended().await;
        assert_eq!(
            ended.to_string(),
            "background task doomed panicked: lost the lease"
        );
        // Stopping waits for "idle", which ends when told to.
        background.stop().await;
    }

    #[tokio::test]
    async fn a_task_that_returns_is_reported_too() {
        let mut background = Background::default();
        background.spawn("quitter", |_| async {});
        let ended = background.first_ended().await;
        assert_eq!(ended.to_string(), "background task quitter ended");
    }

    #[tokio::test]
    async fn no_tasks_never_end() {
        let mut background = Background::default();
        let mut never = std::pin::pin!(background.first_ended());
        let polled =
            std::future::poll_fn(|cx| std::task::Poll::Ready(never.as_mut().poll(cx))).await;
        assert!(polled.is_pending());
    }
}
