//! Peer discovery through etcd: the peer list comes from etcd instead of
//! `--peers`, and is fed to the pool exactly as `HTTPPool.Set` would be.
//! What the keys under the prefix mean, and which values count, is
//! `registry`'s; this module is the etcd I/O around it.
//!
//! Key layout (so any node, Go included, can join with `etcdctl`): each node
//! puts `{prefix}{url}` = `{url}` under a lease it keeps alive.
//!
//! One session: connect → grant a lease → register → list the prefix →
//! watch it from the listing's revision + 1 (so no change is missed) while
//! keeping the lease alive. Any failure (etcd down, lease lost, no
//! keep-alive reply for a whole TTL, watch cancelled or compacted, our key
//! deleted or overwritten with another value) ends the session; the loop
//! keeps the last known peer list, backs off, and starts a fresh session,
//! which registers again. On stop, the lease is revoked so others drop this
//! node at once.

use std::future::Future;
use std::time::Duration;

use etcd_client::{
    Client, ConnectOptions, EventType, GetOptions, PutOptions, WatchOptions, WatchResponse,
};
use tokio::sync::watch;

use crate::backoff::Backoff;
use crate::discovery::registry::{Event, OwnEntry, Refused, Registry};
use crate::discovery::{self, EtcdStatus};
use crate::log_gate::WarnGate;
use crate::node::Node;

/// Where and how this node registers in etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EtcdConfig {
    pub endpoints: Vec<String>,
    pub prefix: String,
    pub ttl: Duration,
}

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd did not answer within {0:?}")]
    Timeout(Duration),
    #[error("lease {0:x} expired or was revoked")]
    LeaseLost(i64),
    #[error("keep-alive stream ended")]
    KeepAliveEnded,
    #[error("no keep-alive reply for lease {0:x} within its TTL; etcd is unreachable")]
    KeepAliveSilent(i64),
    #[error("watch ended")]
    WatchEnded,
    #[error("watch cancelled (compacted at {compacted}): {reason}")]
    WatchCancelled { compacted: i64, reason: String },
    #[error("this node's key was deleted")]
    Deregistered,
    #[error("this node's key was overwritten with {0:?}; registering again")]
    Overwritten(String),
}

/// The longest wait between two attempts to reach etcd.
const BACKOFF: Backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
/// The deadline of any single etcd call.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Keeps `node`'s peer list in step with etcd until `stop` resolves, then revokes this
/// node's lease and returns. Progress is published on `status`.
pub(crate) async fn run(
    config: EtcdConfig,
    node: Node,
    status: watch::Sender<EtcdStatus>,
    stop: impl Future<Output = ()>,
) {
    let mut discovery = Discovery {
        config,
        node,
        status,
        lease: None,
        bad_values: WarnGate::default(),
    };
    discovery.status.send_modify(|s| {
        s.endpoints = discovery.config.endpoints.clone();
        s.prefix = discovery.config.prefix.clone();
    });
    tokio::pin!(stop);
    let mut failures = 0;
    loop {
        let ended = tokio::select! {
            ended = discovery.session() => ended,
            () = &mut stop => break,
        };
        let was_connected = discovery.status.borrow().connected;
        tracing::warn!(error = %ended, "etcd session ended; keeping the last peer list");
        discovery.status.send_modify(|s| {
            s.connected = false;
            s.last_error = Some(ended.to_string());
        });
        failures = if was_connected { 1 } else { failures + 1 };
        tokio::select! {
            () = tokio::time::sleep(BACKOFF.after(failures)) => {}
            () = &mut stop => break,
        }
    }
    discovery.deregister().await;
}

struct Discovery {
    config: EtcdConfig,
    node: Node,
    status: watch::Sender<EtcdStatus>,
    /// The current lease and the client that holds it, for revoking.
    lease: Option<(Client, i64)>,
    /// Rate limit on warnings about values that are not peer URLs.
    bad_values: WarnGate,
}

impl Discovery {
    /// One session; returns only when it fails.
    async fn session(&mut self) -> SessionError {
        match self.try_session().await {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }

    async fn try_session(&mut self) -> Result<std::convert::Infallible, SessionError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(CALL_TIMEOUT)
            .with_timeout(CALL_TIMEOUT);
        let mut client = timed(Client::connect(&self.config.endpoints, Some(options))).await?;

        // Register under a fresh lease, then drop the previous one (if etcd
        // kept it) so it cannot linger.
        let asked = self.config.ttl.as_secs().max(1) as i64;
        let granted = timed(client.lease_grant(asked, None)).await?;
        // etcd may grant more than asked (it has a minimum TTL).
        let (lease, ttl) = (
            granted.id(),
            Duration::from_secs(granted.ttl().unsigned_abs()),
        );
        let url = self.node.peers().self_url().to_string();
        let mut registry = Registry::new(&self.config.prefix, &url);
        let key = registry.own_key().to_vec();
        let put = PutOptions::new().with_lease(lease);
        timed(client.put(key.clone(), url, Some(put))).await?;
        if let Some((mut old_client, old)) = self.lease.replace((client.clone(), lease)) {
            let _ = timed(old_client.lease_revoke(old)).await;
        }
        let (mut keeper, mut keep_alives) = timed(client.lease_keep_alive(lease)).await?;

        // List, then watch from just after the listing.
        let listing = timed(client.get(
            self.config.prefix.clone(),
            Some(GetOptions::new().with_prefix()),
        ))
        .await?;
        let revision = listing.header().map_or(0, |h| h.revision());
        for kv in listing.kvs() {
            let put = Event::Put {
                key: kv.key(),
                value: kv.value(),
            };
            self.warn(registry.apply(put));
        }
        let watch_options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let mut watch =
            timed(client.watch(self.config.prefix.clone(), Some(watch_options))).await?;
        self.publish(&registry, revision);
        self.status.send_modify(|s| {
            s.connected = true;
            s.lease_id = Some(lease);
            s.last_error = None;
        });
        let shown_key = String::from_utf8_lossy(&key);
        tracing::info!(lease = format!("{lease:x}"), key = %shown_key, "registered in etcd");

        // A hung etcd or a silent partition keeps the streams open but
        // answers nothing: once a whole TTL passes without a keep-alive
        // reply, the lease is gone for sure and the session is over.
        let mut tick = tokio::time::interval(ttl / 3);
        let mut lease_expires = tokio::time::Instant::now() + ttl;
        loop {
            tokio::select! {
                _ = tick.tick() => timed(keeper.keep_alive()).await?,
                () = tokio::time::sleep_until(lease_expires) => {
                    return Err(SessionError::KeepAliveSilent(lease));
                }
                reply = keep_alives.message() => match reply? {
                    Some(reply) if reply.ttl() <= 0 => return Err(SessionError::LeaseLost(lease)),
                    Some(reply) => {
                        lease_expires = tokio::time::Instant::now()
                            + Duration::from_secs(reply.ttl().unsigned_abs());
                    }
                    None => return Err(SessionError::KeepAliveEnded),
                },
                reply = watch.message() => {
                    let reply = reply?.ok_or(SessionError::WatchEnded)?;
                    self.watched(&mut registry, &reply)?;
                }
            }
        }
    }

    /// Folds one watch reply into `registry` and publishes the list; an
    /// error ends the session (the watch was cancelled, or this node's own
    /// entry is gone or taken).
    fn watched(
        &mut self,
        registry: &mut Registry,
        reply: &WatchResponse,
    ) -> Result<(), SessionError> {
        if reply.canceled() || reply.compact_revision() > 0 {
            return Err(SessionError::WatchCancelled {
                compacted: reply.compact_revision(),
                reason: reply.cancel_reason().to_string(),
            });
        }
        let mut revision = None;
        for event in reply.events() {
            let Some(kv) = event.kv() else { continue };
            revision = Some(kv.mod_revision());
            let event = match event.event_type() {
                EventType::Put => Event::Put {
                    key: kv.key(),
                    value: kv.value(),
                },
                EventType::Delete => Event::Delete { key: kv.key() },
            };
            self.warn(registry.apply(event));
        }
        if let Some(revision) = revision {
            self.publish(registry, revision);
        }
        match registry.own_entry() {
            OwnEntry::Registered => Ok(()),
            OwnEntry::Missing => Err(SessionError::Deregistered),
            OwnEntry::Overwritten(url) => Err(SessionError::Overwritten(url)),
        }
    }

    /// Feeds the registry's peer list to the pool if it changed, logging
    /// what was added and removed.
    fn publish(&self, registry: &Registry, revision: i64) {
        self.status.send_modify(|s| s.revision = revision);
        let list = registry.peers();
        if let Some(diff) = discovery::diff(&self.node.peer_list(), &list) {
            tracing::info!(
                added = %diff.added,
                removed = %diff.removed,
                total = list.len(),
                revision,
                "peer list from etcd changed"
            );
            self.node.replace_peers(list);
        }
    }

    /// Warns about a value that is not a peer URL, at most once a second:
    /// anyone who can write under the prefix could otherwise flood the log.
    fn warn(&self, refused: Option<Refused>) {
        let Some(Refused { key, value, error }) = refused else {
            return;
        };
        if let Some(unlogged) = self.bad_values.admit() {
            tracing::warn!(
                %key,
                %value,
                %error,
                unlogged,
                "ignoring an etcd value that is not a peer URL"
            );
        }
    }

    /// Revokes the lease so the other nodes drop this one at once.
    async fn deregister(&mut self) {
        if let Some((mut client, lease)) = self.lease.take() {
            match timed(client.lease_revoke(lease)).await {
                Ok(_) => tracing::info!(lease = format!("{lease:x}"), "lease revoked"),
                Err(e) => {
                    tracing::warn!(error = %e, "could not revoke the lease; it expires by itself")
                }
            }
        }
        self.status.send_modify(|s| {
            s.connected = false;
            s.lease_id = None;
        });
    }
}

/// Runs an etcd call with [`CALL_TIMEOUT`].
async fn timed<T>(
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, SessionError> {
    match tokio::time::timeout(CALL_TIMEOUT, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(SessionError::Timeout(CALL_TIMEOUT)),
    }
}
