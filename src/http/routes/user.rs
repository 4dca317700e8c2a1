//! The user API, `/cache/{group}/{key}`: a `GET` or `HEAD` answers the raw
//! value (`http::value_reply`: validators, conditional requests, ranges,
//! content type and coding) with `Cache-Status`; `PUT` and `DELETE` write
//! it, with `--allow-writes` in the forks' pools.

use bytes::Bytes;
use hyper::body::Body;
use hyper::{Method, StatusCode};

use crate::group::{GroupError, Source};
use crate::http::cache_status::{cache_status, CACHE_STATUS};
use crate::http::reply::{no_such_group, text, Reply};
use crate::http::value_reply::{value_reply, vary};
use crate::node::Node;
use crate::wire::{PathError, PathParts};
use crate::writes::{self, SetOptions};

use super::body::{read_body, Reading};
use crate::http::reply::{method_not_allowed, write_error};

/// The user API's path prefix.
pub(super) const CACHE_PREFIX: &str = "/cache/";

/// `PUT` or `DELETE /cache/{group}/{key}`: a user's write, propagated to
/// the pool; 200 when every node confirmed it, else 502 naming the others.
pub(super) async fn serve_user_write<B>(
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
    if !node.protocol().has_writes() {
        let reason = "writes need --protocol mailgun or groupcache-go: golang/groupcache pools have no writes";
        return method_not_allowed(reason);
    }
    if !node.allows_writes() {
        return method_not_allowed("writes are off: start the node with --allow-writes");
    }
    let Ok(parts) = parsed else {
        return text(StatusCode::BAD_REQUEST, "bad request".into());
    };
    let Some(group) = node.group(parts.group()) else {
        return no_such_group(parts.group());
    };
    let key = parts.key();
    let unconfirmed = if head.method == Method::DELETE {
        reading.in_flight.begin();
        writes::user_remove(group, node.peers(), key).await
    } else {
        let options = match SetOptions::from_query(head.uri.query().unwrap_or_default()) {
            Ok(options) => options,
            Err(message) => return text(StatusCode::BAD_REQUEST, message.into()),
        };
        let limit = writes::max_value_bytes(group, key).min(node.max_write_bytes());
        let (value, _held) = match read_body(node, head, body, limit, reading).await {
            Ok(read) => read,
            Err(reply) => return reply,
        };
        let policy = node.ttl_policy(parts.group());
        match writes::user_set(group, node.peers(), &policy, key, value, options).await {
            Ok(unconfirmed) => unconfirmed,
            Err(e) => return write_error(&e),
        }
    };
    let (status, message) = unconfirmed.reply();
    text(status, message.into())
}

/// `GET` or `HEAD /cache/{group}/{key}`: the raw value, as the request's
/// header fields select it (see `http::value_reply`).
pub(super) async fn serve_user(
    node: &Node,
    head: &hyper::http::request::Parts,
    parsed: Result<PathParts<'_>, PathError>,
) -> Reply {
    let Ok(parts) = parsed else {
        return text(StatusCode::BAD_REQUEST, "bad request".into());
    };
    let Some((group, representation)) = node.served(parts.group()) else {
        return no_such_group(parts.group());
    };
    let key = parts.key();
    let (loaded, source) = group.get_traced(key).await;
    let (mut reply, expiry) = match loaded {
        Ok(value) => {
            let expiry = value.expiry;
            let (method, headers) = (&head.method, &head.headers);
            let reply = value_reply(group, representation, key, value, method, headers).await;
            (reply, Some(expiry))
        }
        Err(e) => {
            let expiry = match source {
                Source::NotFound(expiry) => Some(expiry),
                _ => None,
            };
            let mut reply = text(user_status(&e), e.to_string().into());
            vary(representation, reply.headers_mut());
            (reply, expiry)
        }
    };
    let fwd_status = match &source {
        Source::StaleOnError(Some(e)) => Some(user_status(e)),
        _ => None,
    };
    let status = cache_status(&source, expiry, fwd_status);
    reply.headers_mut().insert(CACHE_STATUS, status);
    reply
}

/// The status a user gets for a failed get.
fn user_status(e: &GroupError) -> StatusCode {
    if e.is_not_found() {
        StatusCode::NOT_FOUND
    } else if e.is_bad_key() {
        StatusCode::BAD_REQUEST
    } else if e.is_busy() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::BAD_GATEWAY
    }
}

// The tests build nodes from the command's flags.
#[cfg(all(test, feature = "binary"))]
mod tests {
    use hyper::Method;

    use crate::http::routes::tests::{
        cache_control_and_body, echo_node, echo_node_with, get, send,
    };

    #[tokio::test]
    async fn user_api_answers_raw_values_and_text_errors() {
        let node = echo_node();
        assert_eq!(
            get(&node, "/cache/g/%FF%00k").await,
            (
                200,
                "application/octet-stream".into(),
                vec![0xff, 0x00, b'k']
            )
        );
        assert_eq!(get(&node, "/cache/nosuch/k").await.0, 404);
        assert_eq!(get(&node, "/cache/g").await.0, 400);
        assert_eq!(get(&node, "/nowhere").await.0, 404);
        assert_eq!(get(&node, "/healthz").await.0, 200);
    }

    #[tokio::test]
    async fn user_writes_refuse_a_zero_ttl_and_repeated_parameters() {
        let node = echo_node_with(&["--protocol", "mailgun", "--allow-writes"]);
        assert_eq!(send(&node, Method::PUT, "/cache/g/k", b"old").await.0, 200);
        for (query, message) in [
            (
                "ttl=0",
                "ttl=0: a written value must live; DELETE removes a key\n",
            ),
            (
                "ttl=0s",
                "ttl=0s: a written value must live; DELETE removes a key\n",
            ),
            ("ttl=5s&ttl=1h", "query parameter ttl given twice\n"),
            ("hot=1&hot=0", "query parameter hot given twice\n"),
        ] {
            let (status, body) =
                send(&node, Method::PUT, &format!("/cache/g/k?{query}"), b"new").await;
            assert_eq!(
                (status, String::from_utf8(body).unwrap()),
                (400, message.to_string()),
                "{query}"
            );
        }
        assert_eq!(
            get(&node, "/cache/g/k").await.2,
            b"old",
            "refused writes change nothing"
        );
    }

    #[tokio::test]
    async fn golang_mode_keeps_any_method_a_get_and_refuses_user_writes() {
        let node = echo_node();
        assert_eq!(
            send(&node, Method::PUT, "/_groupcache/g/k", b"x").await,
            (200, b"\x0a\x01k".to_vec())
        );
        let (status, body) = send(&node, Method::PUT, "/cache/g/k", b"x").await;
        assert_eq!(status, 405);
        assert!(String::from_utf8(body).unwrap().contains("--protocol"));
        let node = echo_node_with(&["--protocol", "mailgun"]);
        let (status, body) = send(&node, Method::DELETE, "/cache/g/k", b"").await;
        assert_eq!(status, 405);
        assert!(String::from_utf8(body).unwrap().contains("--allow-writes"));
    }

    #[tokio::test]
    async fn user_writes_on_a_lone_node() {
        let node = echo_node_with(&[
            "--protocol",
            "mailgun",
            "--allow-writes",
            // Entries of up to 100 bytes, with their overhead.
            "--cache-bytes",
            "228",
            "--max-ttl",
            "60s",
        ]);
        assert_eq!(
            send(&node, Method::PUT, "/cache/g/k?ttl=1h", b"new").await,
            (200, b"ok\n".to_vec())
        );
        let (cache_control, body) = cache_control_and_body(&node, "/cache/g/k").await;
        assert_eq!(body, b"new");
        assert!(
            matches!(cache_control.as_deref(), Some("max-age=59" | "max-age=60")),
            "capped by --max-ttl: {cache_control:?}"
        );
        assert_eq!(
            send(&node, Method::PUT, "/cache/g/k", &[b'x'; 100]).await.0,
            413
        );
        assert_eq!(
            send(&node, Method::PUT, "/cache/g/k?ttl=x", b"v").await.0,
            400
        );
        let (status, body) = send(&node, Method::PUT, "/cache/g/k?ttl=2147483649s", b"v").await;
        assert_eq!(status, 400);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "ttl=2147483649s: \"2147483649s\" is longer than the longest TTL, 2147483648s (about 68 years)\n"
        );
        assert_eq!(
            send(&node, Method::PUT, "/cache/g/k?color=red", b"v")
                .await
                .0,
            400
        );
        assert_eq!(
            get(&node, "/cache/g/k").await.2,
            b"new",
            "refused writes change nothing"
        );
        assert_eq!(send(&node, Method::DELETE, "/cache/g/k", b"").await.0, 200);
        assert_eq!(get(&node, "/cache/g/k").await.2, b"k");
        // Refused writes are not counted; a lone node confirms every write.
        let stats = node.group(b"g").expect("group g").stats();
        assert_eq!(
            (
                stats.user_sets,
                stats.user_removes,
                stats.unconfirmed_writes
            ),
            (1, 1, 0),
            "{stats:?}"
        );
        assert_eq!(
            (stats.peer_sets, stats.peer_removes, stats.server_requests),
            (0, 0, 0)
        );
    }
}
