//! The HTTP layer: one listener serves peers and users.
//!
//! - `{base}{group}/{key}` (any method, as golang's HTTPPool): the peer API,
//!   answered with golang's exact status codes and bodies.
//! - `GET /cache/{group}/{key}`: the raw value, for users.
//! - `GET /stats`, `GET /peers`, `GET /healthz`.
//!
//! [`run`] accepts until `shutdown` resolves, then stops accepting, lets
//! in-flight requests finish and returns.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONNECTION, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::discovery::EtcdStatus;
use crate::group::GroupStats;
use crate::node::{Node, PeerSource};
use crate::wire::{self, GroupKey, PathError};

/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The user API's path prefix.
const CACHE_PREFIX: &str = "/cache/";

type Reply = Response<Full<Bytes>>;

/// Serves `node` on `listener` until `shutdown` resolves.
pub async fn run(listener: TcpListener, node: Node, shutdown: impl Future<Output = ()>) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let node = node.clone();
        let service = service_fn(move |request| {
            let node = node.clone();
            async move { Ok::<_, Infallible>(handle(&node, request).await) }
        });
        let connection = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still running after {DRAIN_TIMEOUT:?}; exiting anyway");
    }
}

/// Routes one request.
async fn handle(node: &Node, request: Request<Incoming>) -> Reply {
    let path = request.uri().path();
    if let Some(parsed) = wire::parse_path(path, node.base_path()) {
        return serve_peer(node, parsed).await;
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed".into());
    }
    match path {
        "/healthz" => text(StatusCode::OK, "ok".into()),
        "/stats" => json(&stats(node)),
        "/peers" => json(&peers(node)),
        _ => match wire::parse_path(path, CACHE_PREFIX) {
            Some(parsed) => serve_user(node, parsed).await,
            None => text(StatusCode::NOT_FOUND, "not found".into()),
        },
    }
}

/// The peer API, with golang's statuses and bodies.
async fn serve_peer(node: &Node, parsed: Result<GroupKey, PathError>) -> Reply {
    let (group, key) = match parsed {
        Ok(parsed) => parsed,
        Err(PathError::BadEscape) => return go_bad_escape(),
        Err(PathError::NoKey) => return text(StatusCode::BAD_REQUEST, "bad request".into()),
    };
    let Some(group) = node.group(&group) else {
        return no_such_group(&group);
    };
    match group.get_for_peer(&key).await {
        Ok(value) => {
            let mut reply = Response::new(Full::new(wire::encode_response(&value)));
            reply.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(wire::PROTOBUF_CONTENT_TYPE),
            );
            reply
        }
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.to_string().into()),
    }
}

/// `GET /cache/{group}/{key}`: the raw value.
async fn serve_user(node: &Node, parsed: Result<GroupKey, PathError>) -> Reply {
    let Ok((group, key)) = parsed else {
        return text(StatusCode::BAD_REQUEST, "bad request".into());
    };
    let Some(group) = node.group(&group) else {
        return no_such_group(&group);
    };
    match group.get(&key).await {
        Ok(value) => {
            let mut reply = Response::new(Full::new(value));
            reply.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            reply
        }
        Err(e) if e.is_not_found() => text(StatusCode::NOT_FOUND, e.to_string().into()),
        Err(e) => text(StatusCode::BAD_GATEWAY, e.to_string().into()),
    }
}

fn no_such_group(name: &[u8]) -> Reply {
    let mut body = b"no such group: ".to_vec();
    body.extend_from_slice(name);
    text(StatusCode::NOT_FOUND, body)
}

/// A one-line text reply as Go's `http.Error` writes it: message, newline,
/// `text/plain; charset=utf-8` and `X-Content-Type-Options: nosniff`.
fn text(status: StatusCode, mut message: Vec<u8>) -> Reply {
    message.push(b'\n');
    let mut reply = Response::new(Full::new(Bytes::from(message)));
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    reply
}

/// What Go's HTTP server answers to a path with a malformed `%` escape,
/// before any handler runs.
fn go_bad_escape() -> Reply {
    let mut reply = Response::new(Full::new(Bytes::from_static(b"400 Bad Request")));
    *reply.status_mut() = StatusCode::BAD_REQUEST;
    let headers = reply.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    reply
}

fn json(value: &impl serde::Serialize) -> Reply {
    // Serializing maps of strings and integers cannot fail.
    let mut body = serde_json::to_vec_pretty(value).expect("stats serialize");
    body.push(b'\n');
    let mut reply = Response::new(Full::new(Bytes::from(body)));
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

#[derive(serde::Serialize)]
struct StatsReply {
    groups: BTreeMap<String, GroupStats>,
}

fn stats(node: &Node) -> StatsReply {
    StatsReply {
        groups: node
            .groups()
            .map(|g| (g.name().to_string(), g.stats()))
            .collect(),
    }
}

#[derive(serde::Serialize)]
struct PeersReply {
    #[serde(rename = "self")]
    self_url: String,
    source: &'static str,
    peers: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    etcd: Option<EtcdStatus>,
}

fn peers(node: &Node) -> PeersReply {
    let (source, etcd) = match node.source() {
        PeerSource::Static => ("static", None),
        PeerSource::Etcd(status) => ("etcd", Some(status.borrow().clone())),
    };
    PeersReply {
        self_url: node.peers().self_url().to_string(),
        source,
        peers: node.peers().list(),
        etcd,
    }
}
