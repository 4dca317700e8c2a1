//! The pooled HTTP/1.1 client behind peer fetches and origin loads.
//!
//! One hyper client keeps idle keep-alive connections per host; each caller
//! passes the semaphore that bounds its own host's concurrent requests, and
//! every request (queueing, connecting, headers and body) has one deadline.
//! `https://` URLs go over rustls with the caller's client configuration.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{header, HeaderMap, Request, StatusCode, Uri};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;

/// Bodies larger than this are refused rather than buffered.
pub const MAX_BODY_BYTES: usize = 256 << 20;

/// Why a request failed before a status code could be read or its body
/// could be buffered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Request(String),
    #[error("reading response body: {0}")]
    Body(String),
}

/// A cheap-to-clone pooled client with a per-request deadline.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    timeout: Duration,
}

/// A bound on concurrent requests to one host.
pub type HostLimit = Arc<Semaphore>;

impl HttpClient {
    /// A client whose requests each finish within `timeout`, keeping up to
    /// `max_idle_per_host` idle connections per host; `https://` URLs are
    /// verified against the system's roots.
    pub fn new(timeout: Duration, max_idle_per_host: usize) -> HttpClient {
        // Without a CA file nothing is read that could fail.
        let tls = crate::tls::client_config(None, None).expect("system roots");
        HttpClient::with_tls(timeout, max_idle_per_host, tls)
    }

    /// [`HttpClient::new`], with `tls` for `https://` URLs.
    pub fn with_tls(
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
        HttpClient { client, timeout }
    }

    /// A semaphore allowing `n` concurrent requests to one host.
    pub fn host_limit(n: usize) -> HostLimit {
        Arc::new(Semaphore::new(n.max(1)))
    }

    /// GETs `uri` and returns the status and the whole body.
    pub async fn get(&self, uri: Uri, limit: &Semaphore) -> Result<(StatusCode, Bytes), HttpError> {
        let (status, _, body) = self.get_with_headers(uri, limit).await?;
        Ok((status, body))
    }

    /// GETs `uri` and returns the status, the headers and the whole body.
    pub async fn get_with_headers(
        &self,
        uri: Uri,
        limit: &Semaphore,
    ) -> Result<(StatusCode, HeaderMap, Bytes), HttpError> {
        tokio::time::timeout(self.timeout, self.get_untimed(uri, limit))
            .await
            .unwrap_or(Err(HttpError::Timeout(self.timeout)))
    }

    async fn get_untimed(
        &self,
        uri: Uri,
        limit: &Semaphore,
    ) -> Result<(StatusCode, HeaderMap, Bytes), HttpError> {
        // The semaphore is never closed, so acquiring only fails if it is.
        let _permit = limit
            .acquire()
            .await
            .map_err(|e| HttpError::Request(e.to_string()))?;
        let request = Request::get(uri)
            .header(
                header::USER_AGENT,
                concat!("groupcached/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::new())
            .map_err(|e| HttpError::Request(e.to_string()))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| HttpError::Request(error_chain(&e)))?;
        let (head, body) = response.into_parts();
        let body = Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|e| HttpError::Body(e.to_string()))?
            .to_bytes();
        Ok((head.status, head.headers, body))
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
pub fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {}", status.as_u16(), reason),
        None => status.as_u16().to_string(),
    }
}
