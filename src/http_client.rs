//! The pooled HTTP/1.1 client behind peer fetches and origin loads.
//!
//! One hyper client keeps idle keep-alive connections per host; each caller
//! passes the semaphore that bounds its own host's concurrent requests.
//! Waiting for that semaphore has one deadline, and the request itself
//! (connecting, headers and body) another of the same length, so a request
//! queued behind slow ones still gets its whole time once it runs. Bodies
//! are read into one buffer: a body over the client's limit is refused from
//! its `Content-Length` before any of it is read (or as soon as it streams
//! past the limit), and the bytes held by bodies being read are bounded by a
//! [`LoadBudget`] shared by every request of the node. `https://` URLs go
//! over rustls with the caller's client configuration.
//!
//! Peers and origins use hyper-util's client rather than reqwest on
//! purpose: reqwest normalises `.` and `..` path segments (so a key could
//! reach a different path than the one escaped for it) and honours proxy
//! variables from the environment (so peer traffic could leave through a
//! proxy nobody configured for it).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, StatusCode, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The largest body a client built by [`HttpClient::new`] accepts, until
/// [`HttpClient::with_max_body`] says otherwise.
pub(crate) const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;

/// Why a request failed before a status code could be read or its body
/// could be buffered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// No whole answer within the deadline.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// Every connection to the host stayed busy until the deadline.
    #[error("no free connection to the host after {0:?}")]
    Queue(Duration),
    /// The connection could not be made or broke.
    #[error("{0}")]
    Request(String),
    /// The body could not be read.
    #[error("reading response body: {0}")]
    Body(String),
    /// The body was over the client's limit.
    #[error("response body is larger than the {0}-byte limit")]
    TooLarge(usize),
    /// The node's load budget had no room for the body.
    #[error("load budget of {0} bytes is in use by other loads")]
    OverBudget(u64),
}

impl HttpError {
    /// True when the host did not answer at all: it timed out, refused the
    /// connection or dropped it. Peer health marks such a peer down.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, HttpError::Timeout(_) | HttpError::Request(_))
    }

    /// True when this node, not the host, ran out of room for the request.
    pub fn is_busy(&self) -> bool {
        matches!(self, HttpError::Queue(_) | HttpError::OverBudget(_))
    }
}

/// A bound on the bytes held by response bodies being read, shared by every
/// request of a node. Counted in KiB so a `u32` reservation covers any body.
#[derive(Clone)]
pub(crate) struct LoadBudget {
    bytes: u64,
    kib: Arc<Semaphore>,
}

impl LoadBudget {
    pub(crate) fn new(bytes: u64) -> LoadBudget {
        // Rounded up, like reservations, so a budget of exactly one
        // body's size always admits that body.
        let kib = bytes.div_ceil(1024).clamp(1, Semaphore::MAX_PERMITS as u64);
        LoadBudget {
            bytes,
            // `kib` is clamped to MAX_PERMITS, so it fits a usize.
            kib: Arc::new(Semaphore::new(usize::try_from(kib).unwrap_or(1))),
        }
    }

    /// Bytes available to loads right now.
    #[cfg(test)]
    pub(crate) fn available(&self) -> u64 {
        self.kib.available_permits() as u64 * 1024
    }

    /// Grows `held` to cover `bytes`, or fails at once when the budget
    /// has no room: a node under memory pressure answers 503 rather than
    /// queueing more bodies.
    fn reserve(&self, held: &mut Held, bytes: usize) -> Result<(), HttpError> {
        let need = bytes.div_ceil(1024);
        if need <= held.kib {
            return Ok(());
        }
        let more = u32::try_from(need - held.kib).map_err(|_| self.over())?;
        let permit = self
            .kib
            .clone()
            .try_acquire_many_owned(more)
            .map_err(|_| self.over())?;
        match &mut held.permit {
            Some(old) => old.merge(permit),
            None => held.permit = Some(permit),
        }
        held.kib = need;
        Ok(())
    }

    fn over(&self) -> HttpError {
        HttpError::OverBudget(self.bytes)
    }

    /// An empty hold on this budget, for a request body this node reads.
    pub(crate) fn reservation(&self) -> Reservation {
        Reservation {
            budget: self.clone(),
            held: Held::default(),
        }
    }
}

/// Part of a [`LoadBudget`] held by one request body, returned when it
/// drops.
pub(crate) struct Reservation {
    budget: LoadBudget,
    held: Held,
}

impl Reservation {
    /// Grows the hold to cover `bytes`, or fails at once when the budget
    /// has no room.
    pub(crate) fn cover(&mut self, bytes: u64) -> Result<(), HttpError> {
        let bytes = usize::try_from(bytes).map_err(|_| self.budget.over())?;
        self.budget.reserve(&mut self.held, bytes)
    }
}

/// The part of the budget one body holds, returned when it drops.
#[derive(Default)]
struct Held {
    kib: usize,
    permit: Option<OwnedSemaphorePermit>,
}

/// A cheap-to-clone pooled client with a per-request deadline, a body size
/// limit and a shared load budget.
#[derive(Clone)]
pub(crate) struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
    max_body: usize,
    budget: LoadBudget,
}

/// A bound on concurrent requests to one host.
pub(crate) type HostLimit = Arc<Semaphore>;

impl HttpClient {
    /// A client whose requests each finish within `timeout` (connections
    /// within `timeout` too), keeping up to `max_idle_per_host` idle
    /// connections per host, accepting bodies up to
    /// [`DEFAULT_MAX_BODY_BYTES`], with no load budget to speak of;
    /// `https://` URLs are verified against the system's roots.
    pub(crate) fn new(timeout: Duration, max_idle_per_host: usize) -> HttpClient {
        // Without a CA file nothing is read that could fail.
        let tls = crate::tls::client_config(None, None).expect("system roots");
        HttpClient::with_tls(timeout, max_idle_per_host, tls)
    }

    /// [`HttpClient::new`], with `tls` for `https://` URLs.
    pub(crate) fn with_tls(
        timeout: Duration,
        max_idle_per_host: usize,
        tls: Arc<rustls::ClientConfig>,
    ) -> HttpClient {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(Some(timeout));
        http.enforce_http(false);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(Arc::unwrap_or_clone(tls))
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(max_idle_per_host)
            .build(connector);
        HttpClient {
            client,
            timeout,
            max_body: DEFAULT_MAX_BODY_BYTES,
            budget: LoadBudget::new(u64::MAX),
        }
    }

    /// The same client (same connection pool) with another request deadline.
    pub(crate) fn with_timeout(&self, timeout: Duration) -> HttpClient {
        HttpClient {
            timeout,
            ..self.clone()
        }
    }

    /// The same client refusing bodies over `max_body` bytes.
    pub(crate) fn with_max_body(&self, max_body: usize) -> HttpClient {
        HttpClient {
            max_body,
            ..self.clone()
        }
    }

    /// The deadline of each request (and of each wait for a connection).
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The load budget this client's bodies share.
    pub(crate) fn budget(&self) -> &LoadBudget {
        &self.budget
    }

    /// The largest body this client accepts.
    pub(crate) fn max_body(&self) -> usize {
        self.max_body
    }

    /// The same client holding bodies being read within `budget`.
    pub(crate) fn with_budget(&self, budget: LoadBudget) -> HttpClient {
        HttpClient {
            budget,
            ..self.clone()
        }
    }

    /// A semaphore allowing `n` concurrent requests to one host.
    pub(crate) fn host_limit(n: usize) -> HostLimit {
        Arc::new(Semaphore::new(n.max(1)))
    }

    /// GETs `uri` and returns the status, the headers and the whole body.
    pub(crate) async fn get_with_headers(
        &self,
        uri: Uri,
        limit: &Semaphore,
    ) -> Result<(StatusCode, HeaderMap, Bytes), HttpError> {
        self.send(Method::GET, uri, None, Bytes::new(), limit).await
    }

    /// Sends `method` to `uri` with `body` (empty: no body) and `header`
    /// besides the client's own, and returns the status, the headers and
    /// the whole body.
    pub(crate) async fn send(
        &self,
        method: Method,
        uri: Uri,
        header: Option<(HeaderName, HeaderValue)>,
        body: Bytes,
        limit: &Semaphore,
    ) -> Result<(StatusCode, HeaderMap, Bytes), HttpError> {
        let _permit = match tokio::time::timeout(self.timeout, limit.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(closed)) => return Err(HttpError::Request(closed.to_string())),
            Err(_) => return Err(HttpError::Queue(self.timeout)),
        };
        let sending = self.send_untimed(method, uri, header, body);
        tokio::time::timeout(self.timeout, sending)
            .await
            .unwrap_or(Err(HttpError::Timeout(self.timeout)))
    }

    async fn send_untimed(
        &self,
        method: Method,
        uri: Uri,
        header: Option<(HeaderName, HeaderValue)>,
        body: Bytes,
    ) -> Result<(StatusCode, HeaderMap, Bytes), HttpError> {
        let mut request = Request::builder().method(method).uri(uri).header(
            header::USER_AGENT,
            concat!("groupcached/", env!("CARGO_PKG_VERSION")),
        );
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| HttpError::Request(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| HttpError::Request(error_chain(&e)))?;
        let (head, body) = response.into_parts();
        let body = self.read_body(body).await?;
        Ok((head.status, head.headers, body))
    }

    /// Reads a whole body into one buffer. With a `Content-Length` the
    /// buffer is allocated once at its exact size (after checking the limit
    /// and the budget); without one, chunks are kept as they arrive and
    /// joined once at the end, so the buffer never grows by doubling.
    async fn read_body(&self, mut body: Incoming) -> Result<Bytes, HttpError> {
        let too_large = HttpError::TooLarge(self.max_body);
        let declared = body.size_hint().exact();
        let mut held = Held::default();
        let mut exact = match declared {
            Some(len) => {
                let len = usize::try_from(len)
                    .ok()
                    .filter(|&len| len <= self.max_body)
                    .ok_or_else(|| too_large.clone())?;
                self.budget.reserve(&mut held, len)?;
                Some(BytesMut::with_capacity(len))
            }
            None => None,
        };
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut total = 0usize;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| HttpError::Body(error_chain(&e)))?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers
            };
            total = total.saturating_add(data.len());
            if total > self.max_body {
                return Err(too_large);
            }
            match &mut exact {
                Some(buffer) => buffer.extend_from_slice(&data),
                None => {
                    self.budget.reserve(&mut held, total)?;
                    chunks.push(data);
                }
            }
        }
        Ok(match exact {
            Some(buffer) => buffer.freeze(),
            None if chunks.len() == 1 => chunks.remove(0),
            None => {
                let mut buffer = BytesMut::with_capacity(total);
                for chunk in chunks.drain(..) {
                    buffer.extend_from_slice(&chunk);
                }
                buffer.freeze()
            }
        })
    }
}

/// "outer: inner: innermost", so connection errors say what really failed.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `"200 OK"`, as Go's `Response.Status` reads.
pub(crate) fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {}", status.as_u16(), reason),
        None => status.as_u16().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_grows_a_reservation_and_returns_it_on_drop() {
        let budget = LoadBudget::new(10 * 1024);
        let mut held = Held::default();
        budget.reserve(&mut held, 3000).unwrap();
        assert_eq!(budget.available(), 7 * 1024);
        budget.reserve(&mut held, 8 * 1024).unwrap();
        assert_eq!(budget.available(), 2 * 1024);
        let mut other = Held::default();
        assert_eq!(
            budget.reserve(&mut other, 3 * 1024),
            Err(HttpError::OverBudget(10 * 1024))
        );
        drop(held);
        assert_eq!(budget.available(), 10 * 1024);
        budget.reserve(&mut other, 3 * 1024).unwrap();
        // A budget that is not a whole number of KiB still admits a body
        // of its own size.
        let odd = LoadBudget::new(1_000_000);
        odd.reserve(&mut Held::default(), 1_000_000).unwrap();
    }
}
