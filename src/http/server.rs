//! The listener: accepts connections (at most `--max-connections` at
//! once; more wait in the kernel's backlog), completes TLS handshakes on
//! each connection's own task, serves HTTP/1.1 on them with [`routes`]
//! answering each request, and at shutdown stops accepting and drains.
//!
//! [`run`] (exported as `groupcached::serve`) serves users and peers over
//! plain HTTP until `shutdown` resolves, then lets in-flight requests
//! finish and returns without waiting for connections that have not sent
//! a whole request (headers or body). [`serve`] is the same with TLS and a
//! choice of APIs, for the binary.
//!
//! [`routes`]: crate::http::routes

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Semaphore};

use crate::log_gate::WarnGate;
use crate::node::Node;
use crate::tls::{ClientAuth, ServerTls};

use crate::http::reply::InFlight;
use crate::http::routes::{handle, Access, Apis};

/// How long a client may take to complete a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest pause after a failed accept; pauses double from 10 ms.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// How the listener serves connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Most connections open at once; `None`: half the open-file limit.
    pub max_connections: Option<usize>,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request's body, once its
    /// headers are in; then the request is answered 408 and the connection
    /// closed.
    pub body_read_timeout: Duration,
}

/// `--max-connections`, `--header-read-timeout` and
/// `--body-read-timeout`'s defaults.
impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: None,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: crate::http::routes::DEFAULT_BODY_READ_TIMEOUT,
        }
    }
}

/// Serves the user API and the peer API of `node` over plain HTTP on
/// `listener` (bound by the caller) with the binary's default limits,
/// until `shutdown` resolves; then drains in-flight requests.
pub async fn run(listener: TcpListener, node: Node, shutdown: impl Future<Output = ()>) {
    let limits = Limits::default();
    serve(listener, None, Apis::All, node, limits, shutdown).await
}

/// Serves `apis` of `node` on `listener`, over TLS if `tls` is given,
/// until `shutdown` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<ServerTls>,
    apis: Apis,
    node: Node,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .half_close(true);
    let max_connections = limits
        .max_connections
        .unwrap_or_else(default_max_connections);
    let connections = Arc::new(Semaphore::new(max_connections));
    // Every request holds a sender until its reply is written: when all
    // are dropped, nothing is in flight (tokio's graceful-shutdown idiom).
    let (in_flight, mut all_done) = mpsc::channel::<()>(1);
    let accept_warnings = WarnGate::default();
    let mut backoff = Duration::ZERO;
    tokio::pin!(shutdown);
    loop {
        // The semaphore is never closed, so acquiring cannot fail.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("semaphore never closed"),
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Usually out of file descriptors: back off instead of spinning.
                    backoff = (backoff * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_BACKOFF);
                    if let Some(unlogged) = accept_warnings.admit() {
                        tracing::warn!(error = %e, unlogged, "accept failed; backing off");
                    }
                    tokio::time::sleep(backoff).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        backoff = Duration::ZERO;
        let _ = stream.set_nodelay(true);
        let (node, http, watcher) = (node.clone(), http.clone(), graceful.watcher());
        // Weak: an idle connection holds no token, only its requests do.
        let in_flight = in_flight.downgrade();
        let tls = tls.clone();
        tokio::spawn(async move {
            let Some(tls) = tls else {
                let access = Access {
                    apis,
                    peer_api: true,
                    body_timeout: limits.body_read_timeout,
                };
                let io = TokioIo::new(stream);
                return serve_connection(http, io, node, access, in_flight, watcher, permit).await;
            };
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(e)) => return tracing::debug!(error = %e, "TLS handshake failed"),
                    Err(_) => return tracing::debug!("TLS handshake timed out"),
                };
            let access = Access {
                apis,
                peer_api: tls.client_auth != ClientAuth::Optional
                    || stream.get_ref().1.peer_certificates().is_some(),
                body_timeout: limits.body_read_timeout,
            };
            let io = TokioIo::new(stream);
            serve_connection(http, io, node, access, in_flight, watcher, permit).await
        });
    }
    drop(listener);
    drop(in_flight);
    // Idle keep-alive connections close at once; a connection stuck in its
    // request's headers would hold `graceful` until its header timeout, so
    // the drain ends as soon as no request is in flight.
    let drained = async {
        tokio::select! {
            () = graceful.shutdown() => {}
            _ = all_done.recv() => {}
        }
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
        tracing::warn!("requests still running after {DRAIN_TIMEOUT:?}; exiting anyway");
    }
}

/// Half the soft open-file limit (which `main` raises to the hard limit),
/// leaving the other half for peer and origin connections.
fn default_max_connections() -> usize {
    let (soft, _) = rlimit::getrlimit(rlimit::Resource::NOFILE).unwrap_or((1024, 1024));
    usize::try_from(soft / 2).unwrap_or(usize::MAX).max(1)
}

/// Serves HTTP/1.1 on one accepted (and, with TLS, handshaken)
/// connection; `permit` is its place under `--max-connections`.
async fn serve_connection<I>(
    http: http1::Builder,
    io: I,
    node: Node,
    access: Access,
    in_flight: mpsc::WeakSender<()>,
    watcher: Watcher,
    permit: tokio::sync::OwnedSemaphorePermit,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let node = node.clone();
        let mut in_flight = InFlight::new(in_flight.clone());
        async move {
            let mut reply = handle(&node, request, access, &mut in_flight).await;
            in_flight.attach(&mut reply);
            Ok::<_, Infallible>(reply)
        }
    });
    if let Err(e) = watcher.watch(http.serve_connection(io, service)).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
    drop(permit);
}
