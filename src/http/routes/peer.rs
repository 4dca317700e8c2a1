//! The peer API, `{base}{group}/{key}`: gets answered with golang's exact
//! statuses and bodies, and in the forks' pools the writes their methods
//! mean (see `peers::protocol` and `writes`).

use bytes::Bytes;
use hyper::body::Body;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};

use crate::group::{Counted, Group, HotPolicy};
use crate::http::reply::{go_bad_request, no_such_group, text, Reply, ReplyBody};
use crate::node::Node;
use crate::peers::protocol::PeerOp;
use crate::wire::{self, PathError, PathParts};
use crate::writes;

use super::body::{read_body, Reading};
use crate::http::reply::write_error;

/// The peer API, with golang's (or the pool's fork's) statuses and bodies.
pub(super) async fn serve_peer<B>(
    node: &Node,
    head: &hyper::http::request::Parts,
    parsed: Result<PathParts<'_>, PathError>,
    body: B,
    reading: Reading<'_>,
) -> Reply
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let parts = match parsed {
        Ok(parts) => parts,
        Err(PathError::BadEscape) => {
            reading.in_flight.begin();
            return go_bad_request("400 Bad Request");
        }
        Err(PathError::NoKey) => return text(StatusCode::BAD_REQUEST, "bad request".into()),
    };
    let Some(group) = node.group(parts.group()) else {
        return no_such_group(parts.group());
    };
    let protocol = node.protocol();
    let op = protocol.peer_op(&head.method, parts.key());
    if matches!(op, PeerOp::Remove | PeerOp::Set | PeerOp::RemoveKeys) {
        // As mailgun counts them: a peer's write is a server request too
        // (a peer's get counts itself).
        group.count(Counted::ServerRequest);
    }
    let written = match op {
        PeerOp::Get => {
            reading.in_flight.begin();
            let understood = wire::understands_not_found(&head.headers);
            return serve_peer_get(node, group, parts.key(), understood).await;
        }
        PeerOp::Refuse(status, message) => return text(status, message.into()),
        PeerOp::Remove => {
            reading.in_flight.begin();
            writes::peer_remove(group, parts.key());
            Ok(())
        }
        PeerOp::Set | PeerOp::RemoveKeys => {
            // Room for the value and the request's other fields.
            let limit = node.max_write_bytes().saturating_add(64 << 10);
            let (body, _held) = match read_body(node, head, body, limit, reading).await {
                Ok(read) => read,
                Err(reply) => return reply,
            };
            if op == PeerOp::Set {
                writes::peer_set(group, &node.ttl_policy(parts.group()), body)
            } else {
                writes::peer_remove_keys(group.clone(), body).await
            }
        }
    };
    match written {
        // 200 with an empty body and no Content-Type, as the forks reply.
        Ok(()) => Response::new(ReplyBody::from(Bytes::new())),
        Err(e) => write_error(&e),
    }
}

/// A peer's get: the value as a `GetResponse`. A key the origin does not
/// have is the protocol's error status, or, for a groupcached requester
/// that said it `understood` (even in a golang pool), a 404 marked as the
/// owner's final answer.
async fn serve_peer_get(node: &Node, group: &Group, key: &[u8], understood: bool) -> Reply {
    let protocol = node.protocol();
    let (loaded, rate) = group.get_for_peer(key).await;
    match loaded {
        Ok(value) => {
            let always = protocol.always_sends_expire();
            // The key's rate here, for the requester's hot policy (none
            // under golang's policy: golang's exact bytes).
            let rate = (group.hot_policy() == HotPolicy::Heat).then_some(rate);
            let mut reply = Response::new(ReplyBody::get_response(value, always, rate));
            reply.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(wire::PROTOBUF_CONTENT_TYPE),
            );
            reply
        }
        Err(e) if e.is_not_found() && understood => {
            let mut reply = text(StatusCode::NOT_FOUND, e.to_string().into());
            let marked = HeaderValue::from_static("?1");
            reply.headers_mut().insert(wire::NOT_FOUND, marked);
            reply
        }
        Err(e) => text(
            protocol.load_error_status(e.is_not_found()),
            e.to_string().into(),
        ),
    }
}

// The tests build nodes from the command's flags.
#[cfg(all(test, feature = "binary"))]
mod tests {
    use hyper::Method;

    use crate::http::routes::tests::{cache_control_and_body, echo_node_with, get, send};

    #[tokio::test]
    async fn mailgun_peer_api_sets_removes_and_always_sends_expire() {
        let node = echo_node_with(&["--protocol", "mailgun"]);
        let (_, _, body) = get(&node, "/_groupcache/g/a").await;
        assert_eq!(body, b"\x0a\x01a\x18\x00", "expire 0 always sent");
        // The PUT body a mailgun v2.6.0 node sends: the key comes from the body.
        let put = b"\x0a\x01g\x12\x07capset0\x1a\x03val\x20\x00";
        assert_eq!(
            send(&node, Method::PUT, "/_groupcache/g/ignored", put).await,
            (200, vec![])
        );
        let (_, _, body) = get(&node, "/_groupcache/g/capset0").await;
        assert_eq!(body, b"\x0a\x03val\x18\x00");
        assert_eq!(
            send(&node, Method::DELETE, "/_groupcache/g/capset0", b"").await,
            (200, vec![])
        );
        let (_, _, body) = get(&node, "/_groupcache/g/capset0").await;
        assert_eq!(body, b"\x0a\x07capset0\x18\x00", "reloaded from the origin");
        let (status, body) = send(&node, Method::PUT, "/_groupcache/g/k", b"\x0a\x01g").await;
        assert_eq!((status, &body[..]), (400, &b"SetRequest has no key\n"[..]));
        assert_eq!(
            send(&node, Method::PUT, "/_groupcache/nosuch/k", put)
                .await
                .0,
            404
        );
        // Anything else is a get in mailgun's handler.
        assert_eq!(
            send(&node, Method::POST, "/_groupcache/g/a", b"").await.0,
            200
        );
        // As mailgun counts: four gets, the PUT, the DELETE and the bad PUT
        // are server requests; the unknown group's PUT is not.
        let stats = node.group(b"g").expect("group g").stats();
        assert_eq!(
            (stats.server_requests, stats.peer_sets, stats.peer_removes),
            (7, 1, 1),
            "{stats:?}"
        );
        assert_eq!((stats.user_sets, stats.user_removes), (0, 0));
    }

    #[tokio::test]
    async fn peer_writes_obey_max_ttl_and_the_longest_lifetime() {
        let capped = echo_node_with(&["--protocol", "mailgun", "--max-ttl", "10s"]);
        let never = b"\x0a\x01g\x12\x01k\x1a\x01v\x20\x00";
        assert_eq!(
            send(&capped, Method::PUT, "/_groupcache/g/k", never)
                .await
                .0,
            200
        );
        let (cache_control, body) = cache_control_and_body(&capped, "/cache/g/k").await;
        assert_eq!(body, b"v");
        assert!(
            matches!(cache_control.as_deref(), Some("max-age=9" | "max-age=10")),
            "expire=0 capped by --max-ttl: {cache_control:?}"
        );
        let uncapped = echo_node_with(&["--protocol", "mailgun"]);
        let far = b"\x0a\x01g\x12\x01k\x1a\x01v\x20\xff\xff\xff\xff\xff\xff\xff\xff\x7f";
        assert_eq!(
            send(&uncapped, Method::PUT, "/_groupcache/g/k", far)
                .await
                .0,
            200
        );
        let (cache_control, _) = cache_control_and_body(&uncapped, "/cache/g/k").await;
        assert!(
            matches!(
                cache_control.as_deref(),
                Some("max-age=2147483647" | "max-age=2147483648")
            ),
            "expire=i64::MAX clamped to 2^31 s: {cache_control:?}"
        );
    }

    #[tokio::test]
    async fn groupcache_go_peer_api_takes_remove_keys_and_refuses_other_methods() {
        let node = echo_node_with(&["--protocol", "groupcache-go"]);
        let put = b"\x0a\x01g\x12\x01k\x1a\x03val\x20\x00";
        assert_eq!(
            send(&node, Method::PUT, "/_groupcache/g/k", put).await.0,
            200
        );
        let keys = br#"{"group":"g","keys":["k","other"]}"#;
        assert_eq!(
            send(&node, Method::POST, "/_groupcache/g/_remove-keys/", keys).await,
            (200, vec![])
        );
        let (_, _, body) = get(&node, "/_groupcache/g/k").await;
        assert_eq!(body, b"\x0a\x01k\x18\x00", "removed, reloaded");
        let (status, body) = send(&node, Method::POST, "/_groupcache/g/_remove-keys/", b"{").await;
        assert_eq!(status, 400);
        assert!(body.starts_with(b"invalid request: "));
        assert_eq!(
            send(&node, Method::POST, "/_groupcache/g/k", b"").await,
            (404, b"invalid path for POST method\n".to_vec())
        );
        assert_eq!(
            send(&node, Method::PATCH, "/_groupcache/g/k", b"").await,
            (405, b"Only GET, DELETE, PUT, POST are supported\n".to_vec())
        );
        // Each key of a _remove-keys/ list counts as a removal.
        let stats = node.group(b"g").expect("group g").stats();
        assert_eq!((stats.peer_sets, stats.peer_removes), (1, 2), "{stats:?}");
    }
}
