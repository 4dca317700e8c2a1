//! What each request gets: the routes of one node's HTTP API.
//!
//! - `{base}{group}/{key}` (any method, as golang's HTTPPool): the peer API,
//!   answered with golang's exact status codes and bodies; in the forks'
//!   pools, methods mean what the fork says (see `dialect` and `writes`).
//! - `GET /cache/{group}/{key}`: the raw value, for users; `PUT` and
//!   `DELETE` write it, with `--allow-writes` in the forks' pools.
//! - `GET /stats`, `GET /peers`, `GET /healthz`.
//! - `GET /metrics`: Prometheus metrics (see `metrics`; with the `metrics`
//!   feature, else 404).
//! - `GET /`: the live status page, fed by `GET /status` (see `status`).
//!
//! Only writes read a request body, within the body-read timeout and the
//! node's load budget. Like Go's server, it answers an HTTP/1.1 request
//! without `Host` with 400, an unsupported transfer coding with 501, and a
//! wrong method on the user API with 405 and `Allow`.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use hyper::body::Body;
use hyper::header::{
    HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HOST, RETRY_AFTER,
    TRANSFER_ENCODING,
};
use hyper::service::Service;
use hyper::{Method, Request, Response, StatusCode, Version};

use crate::group::getter::BoxFuture;
use crate::group::{Counted, Group, GroupError, HotPolicy, Source};
use crate::http::cache_status::{cache_status, CACHE_STATUS};
use crate::http::reply::{
    closing, go_bad_request, html, json, no_such_group, text, InFlight, Reply, ReplyBody,
};
use crate::http_client::Reservation;
use crate::node::Node;
use crate::peers::protocol::PeerOp;
use crate::value::Expiry;
use crate::wire::{self, PathError, PathParts};
use crate::writes::{self, SetOptions, WriteError};

/// The user API's path prefix.
const CACHE_PREFIX: &str = "/cache/";

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

/// How long a client may take to send a request's body, unless the
/// listener says otherwise (`--body-read-timeout`).
pub(crate) const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

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
    if !transfer_coding_is_supported(request.headers()) {
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
        return serve_peer(node, &head, parsed, body, reading).await;
    }
    if access.apis == Apis::Peers && path != "/healthz" {
        return text(StatusCode::NOT_FOUND, "not found".into());
    }
    if head.method == Method::PUT || head.method == Method::DELETE {
        if let Some(parsed) = wire::split_path(path, CACHE_PREFIX) {
            return serve_user_write(node, &head, parsed, body, reading).await;
        }
    }
    reading.in_flight.begin();
    if head.method != Method::GET && head.method != Method::HEAD {
        let mut reply = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed".into());
        reply
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return reply;
    }
    match path {
        "/healthz" => text(StatusCode::OK, "ok".into()),
        "/stats" => json(&crate::http::views::stats(node)),
        "/peers" => json(&crate::http::views::peers(node)),
        #[cfg(feature = "metrics")]
        "/metrics" => metrics(node),
        "/" => html(crate::http::views::PAGE),
        "/status" => json(&crate::http::views::status(node)),
        _ => match wire::split_path(path, CACHE_PREFIX) {
            Some(parsed) => serve_user(node, parsed).await,
            None => text(StatusCode::NOT_FOUND, "not found".into()),
        },
    }
}

/// The peer API, with golang's (or the pool's fork's) statuses and bodies.
async fn serve_peer<B>(
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

/// How a request's body is read: within `timeout`, and once it has
/// arrived the request is `in_flight`.
struct Reading<'a> {
    timeout: Duration,
    in_flight: &'a mut InFlight,
}

/// Reads a request body of at most `limit` bytes, holding its size of the
/// node's load budget until the returned [`Reservation`] drops. A larger
/// body is 413, one the budget has no room for 503, one that does not
/// arrive within the body-read timeout 408; each of these closes the
/// connection.
async fn read_body<B>(
    node: &Node,
    head: &hyper::http::request::Parts,
    body: B,
    limit: u64,
    reading: Reading<'_>,
) -> Result<(Bytes, Reservation), Reply>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limit = limit.min(usize::MAX as u64);
    let refuse = |status, message: String| {
        let mut reply = text(status, message.into());
        closing(&mut reply);
        reply
    };
    let too_large = || {
        let message = format!("request body exceeds {limit} bytes");
        refuse(StatusCode::PAYLOAD_TOO_LARGE, message)
    };
    let busy = |e: crate::http_client::HttpError| {
        let mut reply = refuse(StatusCode::SERVICE_UNAVAILABLE, format!("busy: {e}"));
        reply
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        reply
    };
    let declared = head.headers.get(CONTENT_LENGTH);
    let declared = declared.and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large());
    }
    let mut held = node.peers().load_budget().reservation();
    if let Some(length) = declared {
        held.cover(length).map_err(busy)?;
    }
    let read = async {
        let mut body = std::pin::pin!(body);
        let mut bytes = BytesMut::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                let message = format!("reading body: {}", e.into());
                refuse(StatusCode::BAD_REQUEST, message)
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let size = (bytes.len() + data.len()) as u64;
            if size > limit {
                return Err(too_large());
            }
            held.cover(size).map_err(busy)?;
            if bytes.is_empty() {
                // The declared length at once, so the buffer never doubles.
                let expected = declared.unwrap_or(0).min(limit) as usize;
                bytes.reserve(expected.max(data.len()));
            }
            bytes.extend_from_slice(&data);
        }
        Ok(bytes.freeze())
    };
    match tokio::time::timeout(reading.timeout, read).await {
        Ok(Ok(bytes)) => {
            reading.in_flight.begin();
            Ok((bytes, held))
        }
        Ok(Err(reply)) => Err(reply),
        Err(_) => {
            let message = format!("request body not received within {:?}", reading.timeout);
            Err(refuse(StatusCode::REQUEST_TIMEOUT, message))
        }
    }
}

/// Whether a request's `Transfer-Encoding` is one this server reads: none,
/// or `chunked` alone (as Go's server, which answers others 501).
fn transfer_coding_is_supported(headers: &hyper::HeaderMap) -> bool {
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter();
    match (codings.next(), codings.next()) {
        (None, _) => true,
        (Some(coding), None) => coding
            .to_str()
            .is_ok_and(|c| c.trim().eq_ignore_ascii_case("chunked")),
        (Some(_), Some(_)) => false,
    }
}

fn write_error(error: &WriteError) -> Reply {
    text(error.status(), error.to_string().into())
}

/// `PUT` or `DELETE /cache/{group}/{key}`: a user's write, propagated to
/// the pool; 200 when every node confirmed it, else 502 naming the others.
async fn serve_user_write<B>(
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
        return not_allowed(reason);
    }
    if !node.allows_writes() {
        return not_allowed("writes are off: start the node with --allow-writes");
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

/// 405 for a write this node does not take, saying why.
fn not_allowed(reason: &str) -> Reply {
    let mut reply = text(StatusCode::METHOD_NOT_ALLOWED, reason.into());
    reply
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
    reply
}

/// `GET /cache/{group}/{key}`: the raw value.
async fn serve_user(node: &Node, parsed: Result<PathParts<'_>, PathError>) -> Reply {
    let Ok(parts) = parsed else {
        return text(StatusCode::BAD_REQUEST, "bad request".into());
    };
    let Some(group) = node.group(parts.group()) else {
        return no_such_group(parts.group());
    };
    let (loaded, source) = group.get_traced(parts.key()).await;
    let (mut reply, expiry) = match loaded {
        Ok(value) => {
            let expiry = value.expiry;
            let mut reply = Response::new(ReplyBody::from(value.bytes));
            let headers = reply.headers_mut();
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            if let Some(cache_control) = cache_control(expiry) {
                headers.insert(CACHE_CONTROL, cache_control);
            }
            (reply, Some(expiry))
        }
        Err(e) => {
            let expiry = match source {
                Source::NotFound(expiry) => Some(expiry),
                _ => None,
            };
            (text(user_status(&e), e.to_string().into()), expiry)
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

/// How long a user's browser or a downstream cache may keep a value: no
/// longer than this node does. `None` for a value that never expires.
fn cache_control(expiry: Expiry) -> Option<HeaderValue> {
    let left = expiry.remaining()?;
    if left.is_zero() {
        return Some(HeaderValue::from_static("no-store"));
    }
    let max_age = format!("max-age={}", left.as_secs());
    // Digits and ASCII letters are always a valid header value.
    Some(HeaderValue::from_str(&max_age).expect("ASCII header value"))
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

// The tests build nodes from the command's flags.
#[cfg(all(test, feature = "binary"))]
mod tests {
    use super::*;
    use http_body_util::Empty;

    /// A node with one group, `g`, whose value for a key is the key, and
    /// no other peers: every key is loaded here.
    fn echo_node() -> Node {
        echo_node_with(&[])
    }

    /// [`echo_node`] with more flags. Its peer replies are golang's exact
    /// bytes (`--hot-policy golang` sends no `minute_qps`) unless the flags
    /// choose another hot policy.
    fn echo_node_with(flags: &[&str]) -> Node {
        let mut all = vec!["--group", "g=echo"];
        if !flags.contains(&"--hot-policy") {
            all.extend(["--hot-policy", "golang"]);
        }
        all.extend(flags);
        crate::cmd::app::test_node(&all)
    }

    /// A connection to a single listener without TLS.
    const FULL_ACCESS: Access = Access {
        apis: Apis::All,
        peer_api: true,
        body_timeout: Duration::from_secs(10),
    };

    /// A request's in-flight mark when no server is draining.
    fn no_drain() -> InFlight {
        InFlight::untracked()
    }

    /// Status, `Content-Type` and body.
    type Answer = (u16, String, Vec<u8>);

    /// The answer to `GET path`.
    async fn get(node: &Node, path: &str) -> Answer {
        let request = Request::get(path)
            .header(HOST, "127.0.0.1")
            .body(Empty::<Bytes>::new())
            .expect("request");
        answer(handle(node, request, FULL_ACCESS, &mut no_drain()).await).await
    }

    async fn answer(reply: Reply) -> Answer {
        let content_type = reply.headers()[CONTENT_TYPE].to_str().unwrap().to_string();
        let status = reply.status().as_u16();
        // ReplyBody's error type is Infallible.
        let body = reply.into_body().collect().await.unwrap().to_bytes();
        (status, content_type, body.to_vec())
    }

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

    /// The `Cache-Control` header and body of `GET path`.
    async fn cache_control_and_body(node: &Node, path: &str) -> (Option<String>, Vec<u8>) {
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
            assert_eq!(reply.headers()[ALLOW], "GET, HEAD", "{method} {path}");
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

    /// The status and body of `method path` with `body`.
    async fn send(node: &Node, method: Method, path: &str, body: &'static [u8]) -> (u16, Vec<u8>) {
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
