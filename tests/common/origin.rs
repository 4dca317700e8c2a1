//! An in-process HTTP origin that counts the loads of each key.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::tls;

/// The value the test origin serves for `key`: `value-of-` + key bytes.
pub fn value_of(key: &[u8]) -> Vec<u8> {
    let mut value = b"value-of-".to_vec();
    value.extend_from_slice(key);
    value
}

/// An in-process HTTP origin on a free port that counts requests per key.
///
/// `GET /v/{key}` (key percent-encoded) answers `value-of-{key}`; keys that
/// start with `missing` get 404, keys that start with `fail` get 500, keys
/// that start with `big` get 1 MiB of a repeating pattern, keys that
/// start with `slow` are answered after one second and `delay-N-...` keys
/// after N ms.
#[derive(Clone)]
pub struct Origin {
    pub url: String,
    hits: Arc<Mutex<HashMap<Vec<u8>, usize>>>,
}

impl Origin {
    pub async fn start() -> Origin {
        Origin::start_with(None).await
    }

    /// An `https://` origin serving `identity`.
    pub async fn start_tls(pki: &tls::Pki, identity: &tls::Issued) -> Origin {
        Origin::start_with(Some(pki.acceptor(identity))).await
    }

    async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>) -> Origin {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr().unwrap());
        let origin = Origin {
            url,
            hits: Arc::default(),
        };
        let hits = origin.hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (hits, tls) = (hits.clone(), tls.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let hits = hits.clone();
                        async move {
                            // A deliberately slow origin, to keep a load in flight.
                            if let Some(delay) = delay_of(request.uri().path()) {
                                tokio::time::sleep(delay).await;
                            }
                            Ok::<_, Infallible>(serve_origin(&hits, request))
                        }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match tls {
                        None => http.serve_connection(TokioIo::new(stream), service).await,
                        Some(tls) => match tls.accept(stream).await {
                            Ok(stream) => {
                                http.serve_connection(TokioIo::new(stream), service).await
                            }
                            Err(_) => return,
                        },
                    };
                });
            }
        });
        origin
    }

    /// The `--group` origin template for this origin.
    pub fn template(&self) -> String {
        format!("{}/v/{{key}}", self.url)
    }

    pub fn hits(&self, key: &[u8]) -> usize {
        self.hits.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    pub fn total_hits(&self) -> usize {
        self.hits.lock().unwrap().values().sum()
    }

    pub fn distinct_keys(&self) -> usize {
        self.hits.lock().unwrap().len()
    }

    /// Every key that was loaded more than once, with its count.
    pub fn repeated(&self) -> Vec<(Vec<u8>, usize)> {
        let hits = self.hits.lock().unwrap();
        hits.iter()
            .filter(|(_, &n)| n > 1)
            .map(|(k, &n)| (k.clone(), n))
            .collect()
    }
}

/// How long the origin takes for the key in `path`: one second for keys
/// starting with `slow`, N ms for `delay-N-...`, else no time.
fn delay_of(path: &str) -> Option<Duration> {
    let key = path.strip_prefix("/v/")?;
    if key.starts_with("slow") {
        return Some(Duration::from_secs(1));
    }
    let ms = key
        .strip_prefix("delay-")?
        .split('-')
        .next()?
        .parse()
        .ok()?;
    Some(Duration::from_millis(ms))
}

/// A 1 MiB value for keys starting with `big`.
pub fn big_value(key: &[u8]) -> Vec<u8> {
    let mut value: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
    value[..key.len().min(64)].copy_from_slice(&key[..key.len().min(64)]);
    value
}

fn serve_origin(
    hits: &Mutex<HashMap<Vec<u8>, usize>>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: Vec<u8>| {
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = status;
        response
    };
    let Some(raw) = request.uri().path().strip_prefix("/v/") else {
        return reply(StatusCode::BAD_REQUEST, b"bad origin path".to_vec());
    };
    let Ok(key) = groupcached::wire::unescape(raw.as_bytes()) else {
        return reply(StatusCode::BAD_REQUEST, b"bad escape".to_vec());
    };
    let loads = {
        let mut hits = hits.lock().unwrap();
        let count = hits.entry(key.clone()).or_default();
        *count += 1;
        *count
    };
    if let Some(rest) = key.strip_prefix(b"ver/") {
        let mut response = reply(StatusCode::OK, format!("version {loads}").into_bytes());
        let cache_control = rest.split(|&b| b == b'/').next().unwrap_or_default();
        if !cache_control.is_empty() {
            let value = hyper::header::HeaderValue::from_bytes(cache_control).unwrap();
            response.headers_mut().insert("cache-control", value);
        }
        response
    } else if key.starts_with(b"missing") {
        reply(StatusCode::NOT_FOUND, b"no such key".to_vec())
    } else if key.starts_with(b"fail") {
        reply(StatusCode::INTERNAL_SERVER_ERROR, b"origin broke".to_vec())
    } else if key.starts_with(b"big") {
        reply(StatusCode::OK, big_value(&key))
    } else {
        reply(StatusCode::OK, value_of(&key))
    }
}
