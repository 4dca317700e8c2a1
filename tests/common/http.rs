//! A small HTTP client for tests: any method, `http://` and `https://`,
//! replies read whole, every request with a 20 s deadline.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;

use super::tls;

/// An HTTP reply, fully read.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client for `http://` and `https://` URLs.
pub type TestClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The default test client: `https://` servers must have certificates from
/// [`tls::Pki::shared`], and it presents [`tls::Pki::shared_client`].
fn client() -> &'static TestClient {
    static CLIENT: std::sync::OnceLock<TestClient> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        let pki = tls::Pki::shared();
        https_client(pki.client_config(Some(tls::Pki::shared_client())))
    })
}

/// A client whose `https://` requests use `config`.
pub fn https_client(config: Arc<rustls::ClientConfig>) -> TestClient {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(Arc::unwrap_or_clone(config))
        .https_or_http()
        .enable_http1()
        .build();
    // A node closes a keep-alive connection that sends no request within
    // its header-read timeout (1 s in some tests); reusing one just as it
    // closes fails the request. Idle connections are reused only briefly.
    Client::builder(TokioExecutor::new())
        .pool_timer(hyper_util::rt::TokioTimer::new())
        .pool_idle_timeout(Duration::from_millis(300))
        .build(connector)
}

/// GET `url`, panicking on transport errors.
pub async fn http_get(url: &str) -> Reply {
    try_get(url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// GET `url` with a 20 s deadline.
pub async fn try_get(url: &str) -> Result<Reply, String> {
    http_request("GET", url).await
}

/// Any method, no body, 20 s deadline.
pub async fn http_request(method: &str, url: &str) -> Result<Reply, String> {
    http_send(method, url, Bytes::new()).await
}

/// Any method with `body` (empty: none), 20 s deadline.
pub async fn http_send(method: &str, url: &str, body: Bytes) -> Result<Reply, String> {
    send_with(client(), method, url, body).await
}

/// [`http_request`] with `client`.
pub async fn request_with(client: &TestClient, method: &str, url: &str) -> Result<Reply, String> {
    send_with(client, method, url, Bytes::new()).await
}

/// [`http_send`] with `client`.
async fn send_with(
    client: &TestClient,
    method: &str,
    url: &str,
    body: Bytes,
) -> Result<Reply, String> {
    let uri: Uri = url.parse().map_err(|e| format!("{e}"))?;
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .body(Full::new(body))
        .map_err(|e| e.to_string())?;
    let work = async {
        let response = client.request(request).await.map_err(|e| error_chain(&e))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Reply {
            status,
            headers,
            body,
        })
    };
    tokio::time::timeout(Duration::from_secs(20), work)
        .await
        .map_err(|_| format!("{method} {url}: timed out"))?
}

/// "outer: inner: innermost".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

/// Percent-encodes every byte outside `A-Za-z0-9-_.~`.
pub fn esc(bytes: &[u8]) -> String {
    groupcached::wire::escape(bytes)
}
