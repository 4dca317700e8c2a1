//! What each request gets: the routes of one node's HTTP API.
//!
//! - `{base}{group}/{key}` (any method, as golang's HTTPPool): the peer API,
//!   answered with golang's exact status codes and bodies; in the forks'
//!   pools, methods mean what the fork says (see `peers::protocol` and `writes`).
//! - `GET /cache/{group}/{key}`: the raw value, for users; `PUT` and
//!   `DELETE` write it, with `--allow-writes` in the forks' pools.
//! - `GET /stats`, `GET /peers`, `GET /healthz`.
//! - `GET /metrics`: Prometheus metrics (see `http::metrics`; with the `metrics`
//!   feature, else 404).
//! - `GET /`: the live status page, fed by `GET /status` (see `http::views`).
//!
//! This module routes; [`peer`] and [`user`] answer their APIs and
//! [`body`] reads the bodies of writes, within the body-read timeout and
//! the node's load budget. Like Go's server, it answers an HTTP/1.1 request
//! without `Host` with 400, an unsupported transfer coding with 501, and a
//! wrong method on the user API with 405 and `Allow`.

use std::time::Duration;

use bytes::Bytes;
use hyper::body::Body;
use hyper::header::HOST;
use hyper::service::Service;
use hyper::{Method, Request, Response, StatusCode, Version};

use crate::group::getter::BoxFuture;
use crate::http::reply::{
    closing, go_bad_request, html, json, method_not_allowed, text, InFlight, Reply, ReplyBody,
};
use crate::node::Node;
use crate::wire;

use body::{Reading, DEFAULT_BODY_READ_TIMEOUT};

pub(crate) mod body;
mod peer;
mod user;

/// Which APIs a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Apis {
    /// Users and peers (no `--peer-listen`).
    All,
    /// The main listener when peers have their own: the peer path is 404.
    Users,
    /// The peer listener: the peer API and `/healthz`.
    Peers,
}

/// What one connection may ask for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Access {
    pub(crate) apis: Apis,
    /// False on a connection without the client certificate the peer API
    /// requires (`--peer-client-ca` on a shared listener).
    pub(crate) peer_api: bool,
    /// How long the client may take to send a request's body.
    pub(crate) body_timeout: Duration,
}

/// Answers one request as a node's own listener would (users and peers,
/// plain HTTP, the default body-read timeout): for mounting a node's APIs
/// inside an embedder's own hyper server, next to its own routes.
pub async fn respond<B>(node: &Node, request: Request<B>) -> Response<ReplyBody>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let access = Access {
        apis: Apis::All,
        peer_api: true,
        body_timeout: DEFAULT_BODY_READ_TIMEOUT,
    };
    handle(node, request, access, &mut InFlight::untracked()).await
}

/// A node's user and peer APIs as a hyper [`Service`], answering as
/// [`respond`] does: hand it to `serve_connection`, or call it from your
/// own service for the paths you do not answer yourself.
///
/// ```no_run
/// # async fn run(node: groupcached::Node, listener: tokio::net::TcpListener) {
/// let (stream, _) = listener.accept().await.unwrap();
/// let io = hyper_util::rt::TokioIo::new(stream);
/// let service = groupcached::NodeService::new(node);
/// let _ = hyper::server::conn::http1::Builder::new()
///     .serve_connection(io, service)
///     .await;
/// # }
/// ```
#[derive(Clone)]
pub struct NodeService {
    node: Node,
}

impl NodeService {
    /// The APIs of `node`.
    pub fn new(node: Node) -> NodeService {
        NodeService { node }
    }
}

impl<B> Service<Request<B>> for NodeService
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<ReplyBody>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<'static, Result<Response<ReplyBody>, std::convert::Infallible>>;

    fn call(&self, request: Request<B>) -> Self::Future {
        let node = self.node.clone();
        Box::pin(async move { Ok(respond(&node, request).await) })
    }
}

/// Routes one request. Only writes read a request body; other requests
/// are in flight from the start.
pub(crate) async fn handle<B>(
    node: &Node,
    request: Request<B>,
    access: Access,
    in_flight: &mut InFlight,
) -> Reply
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if request.version() == Version::HTTP_11 && !request.headers().contains_key(HOST) {
        return go_bad_request("400 Bad Request: missing required Host header");
    }
    if !body::transfer_coding_is_supported(request.headers()) {
        let mut reply = text(
            StatusCode::NOT_IMPLEMENTED,
            "unsupported transfer coding".into(),
        );
        closing(&mut reply);
        return reply;
    }
    let writes = [Method::PUT, Method::DELETE, Method::POST];
    if !writes.contains(request.method()) {
        in_flight.begin();
    }
    let reading = Reading {
        timeout: access.body_timeout,
        in_flight,
    };
    let (head, body) = request.into_parts();
    let path = head.uri.path();
    if let Some(parsed) = wire::split_path(path, node.base_path()) {
        if access.apis == Apis::Users {
            return text(StatusCode::NOT_FOUND, "not found".into());
        }
        if !access.peer_api {
            return text(StatusCode::FORBIDDEN, "client certificate required".into());
        }
        return peer::serve_peer(node, &head, parsed, body, reading).await;
    }
    if access.apis == Apis::Peers && path != "/healthz" {
        return text(StatusCode::NOT_FOUND, "not found".into());
    }
    if head.method == Method::PUT || head.method == Method::DELETE {
        if let Some(parsed) = wire::split_path(path, user::CACHE_PREFIX) {
            return user::serve_user_write(node, &head, parsed, body, reading).await;
        }
    }
    reading.in_flight.begin();
    if head.method != Method::GET && head.method != Method::HEAD {
        return method_not_allowed("method not allowed");
    }
    match path {
        "/healthz" => text(StatusCode::OK, "ok".into()),
        "/stats" => json(&crate::http::views::stats(node)),
        "/peers" => json(&crate::http::views::peers(node)),
        #[cfg(feature = "metrics")]
        "/metrics" => metrics(node),
        "/" => html(crate::http::views::PAGE),
        "/status" => json(&crate::http::views::status(node)),
        _ => match wire::split_path(path, user::CACHE_PREFIX) {
            Some(parsed) => user::serve_user(node, &head, parsed).await,
            None => text(StatusCode::NOT_FOUND, "not found".into()),
        },
    }
}

/// `GET /metrics`: the Prometheus exposition.
#[cfg(feature = "metrics")]
fn metrics(node: &Node) -> Reply {
    use crate::http::reply::typed;
    match crate::http::metrics::render(node) {
        Ok(body) => typed(Bytes::from(body), crate::http::metrics::CONTENT_TYPE),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string().into()),
    }
}

// The tests build nodes from the command's flags; the helpers serve the
// tests of `peer` and `user` too.
#[cfg(all(test, feature = "binary"))]
pub(super) mod tests {
    use super::*;
    use crate::value::Expiry;
    use http_body_util::{BodyExt, Empty};
    use hyper::header::{CACHE_CONTROL, CONTENT_TYPE};

    /// A node with one group, `g`, whose value for a key is the key, and
    /// no other peers: every key is loaded here.
    pub(super) fn echo_node() -> Node {
        echo_node_with(&[])
    }

    /// [`echo_node`] with more flags. Its peer replies are golang's exact
    /// bytes (`--hot-policy golang` sends no `minute_qps`) unless the flags
    /// choose another hot policy.
    pub(super) fn echo_node_with(flags: &[&str]) -> Node {
        let mut all = vec!["--group", "g=echo"];
        if !flags.contains(&"--hot-policy") {
            all.extend(["--hot-policy", "golang"]);
        }
        all.extend(flags);
        crate::cmd::app::test_node(&all)
    }

    /// A connection to a single listener without TLS.
    pub(super) const FULL_ACCESS: Access = Access {
        apis: Apis::All,
        peer_api: true,
        body_timeout: Duration::from_secs(10),
    };

    /// A request's in-flight mark when no server is draining.
    pub(super) fn no_drain() -> InFlight {
        InFlight::untracked()
    }

    /// Status, `Content-Type` and body.
    pub(super) type Answer = (u16, String, Vec<u8>);

    /// The answer to `GET path`.
    pub(super) async fn get(node: &Node, path: &str) -> Answer {
        let request = Request::get(path)
            .header(HOST, "127.0.0.1")
            .body(Empty::<Bytes>::new())
            .expect("request");
        answer(handle(node, request, FULL_ACCESS, &mut no_drain()).await).await
    }

    pub(super) async fn answer(reply: Reply) -> Answer {
        let content_type = reply.headers()[CONTENT_TYPE].to_str().unwrap().to_string();
        let status = reply.status().as_u16();
        // ReplyBody's error type is Infallible.
        let body = reply.into_body().collect().await.unwrap().to_bytes();
        (status, content_type, body.to_vec())
    }

    /// The `Cache-Control` header and body of `GET path`.
    pub(super) async fn cache_control_and_body(
        node: &Node,
        path: &str,
    ) -> (Option<String>, Vec<u8>) {
        let request = Request::get(path)
            .header(HOST, "127.0.0.1")
            .body(Empty::<Bytes>::new())
            .expect("request");
        let reply = handle(node, request, FULL_ACCESS, &mut no_drain()).await;
        let cache_control = reply
            .headers()
            .get(CACHE_CONTROL)
            .map(|v| v.to_str().unwrap().to_string());
        // ReplyBody's error type is Infallible.
        let body = reply.into_body().collect().await.unwrap().to_bytes();
        (cache_control, body.to_vec())
    }

    /// The status and body of `method path` with `body`.
    pub(super) async fn send(
        node: &Node,
        method: Method,
        path: &str,
        body: &'static [u8],
    ) -> (u16, Vec<u8>) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, "127.0.0.1")
            .body(http_body_util::Full::new(Bytes::from_static(body)))
            .expect("request");
        let reply = handle(node, request, FULL_ACCESS, &mut no_drain()).await;
        let status = reply.status().as_u16();
        // ReplyBody's error type is Infallible.
        let body = reply.into_body().collect().await.unwrap().to_bytes();
        (status, body.to_vec())
    }

    #[tokio::test]
    async fn expiring_values_carry_their_expiry_to_users_and_peers() {
        let node = echo_node_with(&["--default-ttl", "60s", "--hot-policy", "heat"]);
        let (cache_control, body) = cache_control_and_body(&node, "/cache/g/k").await;
        assert!(
            matches!(cache_control.as_deref(), Some("max-age=59" | "max-age=60")),
            "{cache_control:?}"
        );
        assert_eq!(body, b"k");
        let (cache_control, body) = cache_control_and_body(&node, "/_groupcache/g/k").await;
        assert_eq!(cache_control, None);
        let (decoded, rate) = wire::decode_response(Bytes::from(body.clone())).unwrap();
        let Expiry::At(at) = decoded.expiry else {
            panic!("no expire field in {body:?}");
        };
        let left = at - crate::value::now_nanos();
        assert!(left > 59_000_000_000 && left <= 60_000_000_000, "{left}");
        // golang's bytes, and the key's rate here as field 2 before expire.
        let rate = rate.expect("minute_qps");
        assert!(rate > 0.0, "{rate}");
        let mut want = b"\x0a\x01k\x11".to_vec();
        want.extend_from_slice(&rate.to_le_bytes());
        want.extend_from_slice(&wire::encode_response(b"", decoded.expiry)[2..]);
        assert_eq!(body, want);
    }

    #[tokio::test]
    async fn uncacheable_values_say_no_store_and_never_expiring_ones_say_nothing() {
        let node = echo_node_with(&["--default-ttl", "0"]);
        let (cache_control, body) = cache_control_and_body(&node, "/cache/g/k").await;
        assert_eq!(
            (cache_control.as_deref(), &body[..]),
            (Some("no-store"), &b"k"[..])
        );
        let (_, body) = cache_control_and_body(&node, "/_groupcache/g/k").await;
        assert_eq!(body, b"\x0a\x01k\x18\x01", "expire = 1: already expired");
        let (cache_control, _) = cache_control_and_body(&echo_node(), "/cache/g/k").await;
        assert_eq!(cache_control, None);
    }

    #[tokio::test]
    async fn wrong_methods_get_405_with_allow() {
        let node = echo_node();
        for (method, path) in [("POST", "/cache/g/k"), ("DELETE", "/stats"), ("PUT", "/x")] {
            let request = Request::builder()
                .method(method)
                .uri(path)
                .header(HOST, "h")
                .body(Empty::<Bytes>::new())
                .expect("request");
            let reply = handle(&node, request, FULL_ACCESS, &mut no_drain()).await;
            assert_eq!(
                reply.status(),
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}"
            );
            assert_eq!(
                reply.headers()[hyper::header::ALLOW],
                "GET, HEAD",
                "{method} {path}"
            );
        }
    }

    /// As Go's server: HTTP/1.1 requires `Host`, HTTP/1.0 does not.
    #[tokio::test]
    async fn http_1_1_without_host_is_a_bad_request() {
        let node = echo_node();
        for path in ["/cache/g/k", "/_groupcache/g/k", "/healthz"] {
            let request = Request::get(path)
                .body(Empty::<Bytes>::new())
                .expect("request");
            let (status, _, body) =
                answer(handle(&node, request, FULL_ACCESS, &mut no_drain()).await).await;
            assert_eq!(
                (status, &body[..]),
                (400, &b"400 Bad Request: missing required Host header"[..]),
                "{path}"
            );
        }
        let request = Request::get("/cache/g/k")
            .version(Version::HTTP_10)
            .body(Empty::<Bytes>::new())
            .expect("request");
        assert_eq!(
            answer(handle(&node, request, FULL_ACCESS, &mut no_drain()).await)
                .await
                .2,
            b"k"
        );
    }
}
