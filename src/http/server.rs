//! The listener: accepts connections (at most `--max-connections` at
//! once; more wait in the kernel's backlog), completes TLS handshakes on
//! each connection's own task, serves HTTP/1.1 on them with [`routes`]
//! answering each request, and at shutdown stops accepting and drains.
//!
//! [`serve_with`] serves a node as its [`ServeOptions`] say (the binary's
//! listeners too) until `shutdown` resolves, then lets in-flight requests
//! finish and returns without waiting for connections that have not sent
//! a whole request (headers or body); [`serve`] is the same with the
//! defaults: users and peers over plain HTTP.
//!
//! [`routes`]: crate::http::routes

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use crate::backoff::Backoff;
use crate::http::reply::InFlight;
use crate::http::routes::{handle, Access};
use crate::http::serve_options::{ListenerTls, ServeOptions};
use crate::log_gate::WarnGate;
use crate::node::Node;

/// How long a client may take to complete a TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Pauses after failed accepts double from 10 ms up to 1 s.
const ACCEPT_BACKOFF: Backoff = Backoff::new(Duration::from_millis(10), Duration::from_secs(1));

/// Serves the user API and the peer API of `node` over plain HTTP on
/// `listener` (bound by the caller) with the binary's default limits,
/// until `shutdown` resolves; then drains in-flight requests.
pub async fn serve(listener: TcpListener, node: Node, shutdown: impl Future<Output = ()>) {
    serve_with(listener, node, ServeOptions::default(), shutdown).await
}

/// [`serve`] with `options`: limits on connections and on how long a
/// request may take to arrive, and TLS.
///
/// ```
/// # #[tokio::main]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let addr = listener.local_addr()?;
/// let node = groupcached::NodeBuilder::new(format!("http://{addr}")).build()?;
/// let options = groupcached::ServeOptions::new()
///     .max_connections(100)
///     .header_read_timeout(Duration::from_secs(2));
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// let shutdown = async move {
///     let _ = stopped.await;
/// };
/// let server = tokio::spawn(groupcached::serve_with(listener, node, options, shutdown));
///
/// let mut client = tokio::net::TcpStream::connect(addr).await?;
/// client.write_all(b"GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await?;
/// let mut reply = String::new();
/// client.read_to_string(&mut reply).await?;
/// assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
///
/// let _ = stop.send(());
/// server.await?;
/// # Ok(())
/// # }
/// ```
pub async fn serve_with(
    listener: TcpListener,
    node: Node,
    options: ServeOptions,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut http = http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .half_close(true);
    let max_connections = options
        .max_connections
        .unwrap_or_else(default_max_connections);
    let connections = Arc::new(Semaphore::new(max_connections));
    // Every request holds a sender until its reply is written: when all
    // are dropped, nothing is in flight (tokio's graceful-shutdown idiom).
    let (in_flight, all_done) = mpsc::channel::<()>(1);
    let mut backoff = AcceptBackoff::default();
    tokio::pin!(shutdown);
    loop {
        // The semaphore is never closed, so acquiring cannot fail.
        let permit = tokio::select! {
            permit = connections.clone().acquire_owned() => permit.expect("semaphore never closed"),
            () = &mut shutdown => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let Some(stream) = backoff.after(accepted).await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let connection = Connection {
            http: http.clone(),
            node: node.clone(),
            // Weak: an idle connection holds no token, only its requests do.
            in_flight: in_flight.downgrade(),
            watcher: graceful.watcher(),
            permit,
        };
        let access = Access {
            apis: options.apis,
            peer_api: true,
            body_timeout: options.body_read_timeout,
        };
        tokio::spawn(connection.run(stream, options.tls.clone(), access));
    }
    drop(listener);
    drain(graceful, in_flight, all_done).await;
}

/// Pauses after failed accepts, usually for want of file descriptors,
/// instead of spinning, by [`ACCEPT_BACKOFF`].
#[derive(Default)]
struct AcceptBackoff {
    failures: u32,
    warnings: WarnGate,
}

impl AcceptBackoff {
    /// The accepted connection, or `None` after pausing for a failed
    /// accept.
    async fn after(
        &mut self,
        accepted: std::io::Result<(TcpStream, SocketAddr)>,
    ) -> Option<TcpStream> {
        match accepted {
            Ok((stream, _)) => {
                self.failures = 0;
                Some(stream)
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                if let Some(unlogged) = self.warnings.admit() {
                    tracing::warn!(error = %e, unlogged, "accept failed; backing off");
                }
                tokio::time::sleep(ACCEPT_BACKOFF.after(self.failures)).await;
                None
            }
        }
    }
}

/// Once no more connections are accepted: waits until no request is in
/// flight, or every connection has closed, or [`DRAIN_TIMEOUT`] passed.
async fn drain(
    graceful: GracefulShutdown,
    in_flight: mpsc::Sender<()>,
    mut all_done: mpsc::Receiver<()>,
) {
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

/// One accepted connection, with what its task shares with the listener.
struct Connection {
    http: http1::Builder,
    node: Node,
    in_flight: mpsc::WeakSender<()>,
    watcher: Watcher,
    /// Its place under `--max-connections`.
    permit: OwnedSemaphorePermit,
}

impl Connection {
    /// Completes the TLS handshake, if the listener has TLS, and serves
    /// the connection; `access` is what it may ask for without TLS.
    async fn run(self, stream: TcpStream, tls: Option<ListenerTls>, mut access: Access) {
        let Some(tls) = tls else {
            return self.serve(TokioIo::new(stream), access).await;
        };
        let stream =
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.acceptor.accept(stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => return tracing::debug!(error = %e, "TLS handshake failed"),
                Err(_) => return tracing::debug!("TLS handshake timed out"),
            };
        access.peer_api = !tls.peers_need_cert || stream.get_ref().1.peer_certificates().is_some();
        self.serve(TokioIo::new(stream), access).await
    }

    /// Serves HTTP/1.1 on the (handshaken) connection until it closes.
    async fn serve<I>(self, io: I, access: Access)
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let Connection {
            http,
            node,
            in_flight,
            watcher,
            permit,
        } = self;
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An embedder's own rustls config: the node answers over HTTPS.
    #[tokio::test]
    async fn serve_with_a_tls_config_answers_over_https() {
        let issued = rcgen::generate_simple_self_signed(["localhost".to_string()]).unwrap();
        let key = PrivateKeyDer::try_from(issued.signing_key.serialize_der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![issued.cert.der().clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(issued.cert.der().clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let node = crate::NodeBuilder::new(format!("https://localhost:{}", addr.port()))
            .build()
            .unwrap();
        let options = ServeOptions::new().tls(Arc::new(server));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(serve_with(listener, node, options, async move {
            let _ = stopped.await;
        }));

        let tcp = TcpStream::connect(addr).await.unwrap();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let request = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
        tls.write_all(request).await.unwrap();
        let mut reply = Vec::new();
        // The server closes the connection after its reply.
        let _ = tls.read_to_end(&mut reply).await;
        let reply = String::from_utf8_lossy(&reply);
        assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
        assert!(reply.ends_with("\r\n\r\nok\n"), "{reply}");

        stop.send(()).unwrap();
        serving.await.unwrap();
    }
}
