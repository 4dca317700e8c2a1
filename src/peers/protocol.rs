//! The three families of Go groupcache pools a node can join, and what
//! differs between them (golang/groupcache, mailgun/groupcache v2 and
//! groupcache/groupcache-go v3, as their `http.go` files behave): the
//! ring, the statuses a peer answers, how a peer's refusal is taken, how
//! often fetched values are mirrored, and the write methods of the forks'
//! peer API (PUT = Set, DELETE = Remove, groupcache-go's POST remove-keys).
//!
//! Every node of a pool uses the same protocol (`--protocol`). The rest of
//! the code asks a [`Protocol`] what to do instead of matching on it.

use hyper::{Method, StatusCode};

use crate::consistenthash::Hashing;

/// Which Go groupcache a pool speaks.
///
/// ```
/// use groupcached::Protocol;
/// let protocol: Protocol = "groupcache-go".parse().unwrap();
/// assert_eq!(protocol, Protocol::GroupcacheGo);
/// assert_eq!(protocol.to_string(), "groupcache-go");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// golang/groupcache: any method is a get, no writes.
    #[default]
    Golang,
    /// mailgun/groupcache v2.
    Mailgun,
    /// groupcache/groupcache-go v3.
    GroupcacheGo,
}

/// A protocol name that is none of [`Protocol::ALL`]'s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown protocol {0:?}: expected golang, mailgun or groupcache-go")]
pub struct UnknownProtocol(String);

impl std::str::FromStr for Protocol {
    type Err = UnknownProtocol;

    fn from_str(name: &str) -> Result<Protocol, UnknownProtocol> {
        Protocol::ALL
            .into_iter()
            .find(|protocol| protocol.name() == name)
            .ok_or_else(|| UnknownProtocol(name.to_string()))
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a request on the peer path asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PeerOp {
    Get,
    /// PUT: a SetRequest body.
    Set,
    /// DELETE: remove the URL's key.
    Remove,
    /// groupcache-go's `POST {base}{group}/_remove-keys/` with a JSON body.
    RemoveKeys,
    /// Refused with this status and one-line message.
    Refuse(StatusCode, &'static str),
}

/// The key of groupcache-go's remove-keys path.
const REMOVE_KEYS: &[u8] = b"_remove-keys/";

impl Protocol {
    /// Every protocol.
    pub const ALL: [Protocol; 3] = [Protocol::Golang, Protocol::Mailgun, Protocol::GroupcacheGo];

    /// The name `--protocol` takes: `golang`, `mailgun` or `groupcache-go`.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Golang => "golang",
            Protocol::Mailgun => "mailgun",
            Protocol::GroupcacheGo => "groupcache-go",
        }
    }

    /// The ring every node of the pool builds.
    pub fn hashing(self) -> Hashing {
        match self {
            Protocol::Golang => Hashing::Golang,
            Protocol::Mailgun => Hashing::Mailgun,
            Protocol::GroupcacheGo => Hashing::GroupcacheGo,
        }
    }

    /// Whether the pool has writes at all.
    pub fn has_writes(self) -> bool {
        self != Protocol::Golang
    }

    /// What `method` on the peer path of `key` means.
    pub(crate) fn peer_op(self, method: &Method, key: &[u8]) -> PeerOp {
        match (self, method) {
            (Protocol::Golang, _) => PeerOp::Get,
            (_, &Method::GET) => PeerOp::Get,
            (_, &Method::PUT) => PeerOp::Set,
            (_, &Method::DELETE) => PeerOp::Remove,
            (Protocol::Mailgun, _) => PeerOp::Get,
            (Protocol::GroupcacheGo, &Method::POST) if key == REMOVE_KEYS => PeerOp::RemoveKeys,
            (Protocol::GroupcacheGo, &Method::POST) => {
                PeerOp::Refuse(StatusCode::NOT_FOUND, "invalid path for POST method")
            }
            (Protocol::GroupcacheGo, _) => PeerOp::Refuse(
                StatusCode::METHOD_NOT_ALLOWED,
                "Only GET, DELETE, PUT, POST are supported",
            ),
        }
    }

    /// The status a peer gets when a load fails (`not_found`: the key does
    /// not exist): golang's 500, or the forks' 404 for "not found" and 503
    /// for anything else.
    pub(crate) fn load_error_status(self, not_found: bool) -> StatusCode {
        match self {
            Protocol::Golang => StatusCode::INTERNAL_SERVER_ERROR,
            _ if not_found => StatusCode::NOT_FOUND,
            _ => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Whether a peer's reply with `status` is its final answer (the forks
    /// pass a 404 or 503 on as it is), rather than a failure to fall back
    /// from with a local load (golang, and every other status).
    pub(crate) fn is_final_refusal(self, status: StatusCode) -> bool {
        self.has_writes()
            && (status == StatusCode::NOT_FOUND || status == StatusCode::SERVICE_UNAVAILABLE)
    }

    /// Whether every value fetched from a peer is mirrored into the hot
    /// cache (the forks), rather than one in ten (golang).
    pub(crate) fn always_fills_hot(self) -> bool {
        self.has_writes()
    }

    /// Whether a GET reply always carries `expire` (0 for "never").
    pub(crate) fn always_sends_expire(self) -> bool {
        self.has_writes()
    }

    /// Whether a Set of a key also goes to every other node (groupcache-go
    /// stores it there too), rather than only removing their hot copies.
    pub(crate) fn set_goes_everywhere(self) -> bool {
        self == Protocol::GroupcacheGo
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_on_the_peer_path() {
        let op = |p: Protocol, m: Method, key: &[u8]| p.peer_op(&m, key);
        for method in [Method::GET, Method::PUT, Method::DELETE, Method::POST] {
            assert_eq!(op(Protocol::Golang, method, b"k"), PeerOp::Get);
        }
        assert_eq!(op(Protocol::Mailgun, Method::PUT, b"k"), PeerOp::Set);
        assert_eq!(op(Protocol::Mailgun, Method::DELETE, b"k"), PeerOp::Remove);
        assert_eq!(op(Protocol::Mailgun, Method::POST, b"k"), PeerOp::Get);
        assert_eq!(
            op(Protocol::GroupcacheGo, Method::POST, b"_remove-keys/"),
            PeerOp::RemoveKeys
        );
        assert_eq!(
            op(Protocol::GroupcacheGo, Method::POST, b"k"),
            PeerOp::Refuse(StatusCode::NOT_FOUND, "invalid path for POST method")
        );
        assert!(matches!(
            op(Protocol::GroupcacheGo, Method::PATCH, b"k"),
            PeerOp::Refuse(StatusCode::METHOD_NOT_ALLOWED, _)
        ));
    }

    #[test]
    fn refusals_are_final_only_in_the_forks() {
        for status in [StatusCode::NOT_FOUND, StatusCode::SERVICE_UNAVAILABLE] {
            assert!(!Protocol::Golang.is_final_refusal(status));
            assert!(Protocol::Mailgun.is_final_refusal(status));
            assert!(Protocol::GroupcacheGo.is_final_refusal(status));
        }
        assert!(!Protocol::Mailgun.is_final_refusal(StatusCode::INTERNAL_SERVER_ERROR));
    }
}
