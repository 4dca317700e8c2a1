//! An in-process HTTP origin that counts the loads of each key.

use std::collections::HashMap;
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
/// start with `slow` are answered after one second and keys with a
/// `delay-N-...` segment after N ms. `ver/{cache-control}/...` keys answer
/// `version N` on their Nth load with that `Cache-Control`;
/// `missing/{cache-control}/...` and `gone/{cache-control}/...` answer 404
/// and 410 with it.
///
/// [`Origin::set_state`] takes it down without closing its port.
#[derive(Clone)]
pub struct Origin {
    pub url: String,
    hits: Arc<Mutex<HashMap<Vec<u8>, usize>>>,
    control: Arc<Mutex<Control>>,
    /// Told of every change of state, for the requests held while hanging.
    changed: Arc<tokio::sync::Notify>,
}

/// How the origin answers: normally, or as a broken origin would.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OriginState {
    Up,
    /// Every connection is closed at once, before a reply: no status at
    /// all, like a crashed origin behind a load balancer.
    Closing,
    /// Every request gets a 503.
    Unavailable,
    /// Requests are read and not answered while the origin hangs; set to
    /// another state, it answers them as that state says.
    Hanging,
}

#[derive(Debug, Clone)]
struct Control {
    state: OriginState,
    /// Replaces the `Cache-Control` of `ver/` keys.
    cache_control: Option<String>,
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
            control: Arc::new(Mutex::new(Control {
                state: OriginState::Up,
                cache_control: None,
            })),
            changed: Arc::default(),
        };
        let (hits, control) = (origin.hits.clone(), origin.control.clone());
        let changed = origin.changed.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                if control.lock().unwrap().state == OriginState::Closing {
                    drop(stream);
                    continue;
                }
                let (hits, tls, control) = (hits.clone(), tls.clone(), control.clone());
                let changed = changed.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                        let (hits, control) = (hits.clone(), control.clone());
                        let changed = changed.clone();
                        async move {
                            let now = loop {
                                // Registered before the state is read, so no
                                // change is missed in between.
                                let change = changed.notified();
                                let now = control.lock().unwrap().clone();
                                if now.state != OriginState::Hanging {
                                    break now;
                                }
                                change.await;
                            };
                            match now.state {
                                // An error ends the connection without a reply.
                                OriginState::Closing => return Err("closing"),
                                OriginState::Unavailable => {
                                    let mut reply = Response::new(Full::new(Bytes::from("down")));
                                    *reply.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                                    return Ok::<_, &str>(reply);
                                }
                                OriginState::Hanging | OriginState::Up => {}
                            }
                            // A deliberately slow origin, to keep a load in flight.
                            if let Some(delay) = delay_of(request.uri().path()) {
                                tokio::time::sleep(delay).await;
                            }
                            Ok(serve_origin(&hits, request, now.cache_control.as_deref()))
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

    /// Takes the origin down (or brings it back) without closing its port.
    pub fn set_state(&self, state: OriginState) {
        self.control.lock().unwrap().state = state;
        self.changed.notify_waiters();
    }

    /// From now on `ver/` keys carry this `Cache-Control` instead of their
    /// own (`None`: their own again).
    pub fn override_cache_control(&self, cache_control: Option<&str>) {
        self.control.lock().unwrap().cache_control = cache_control.map(str::to_string);
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
/// starting with `slow`, N ms for keys with a `delay-N-...` segment, else
/// no time.
fn delay_of(path: &str) -> Option<Duration> {
    let key = path.strip_prefix("/v/")?;
    if key.starts_with("slow") {
        return Some(Duration::from_secs(1));
    }
    let key = groupcached::wire::unescape(key.as_bytes()).ok()?;
    let key = String::from_utf8(key).ok()?;
    let ms = key
        .split('/')
        .find_map(|segment| segment.strip_prefix("delay-"))?
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
    cache_control_override: Option<&str>,
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
    // The Cache-Control a `prefix/{cache-control}/...` key asks for.
    let with_cache_control = |mut response: Response<Full<Bytes>>, rest: &[u8]| {
        let cache_control = rest.split(|&b| b == b'/').next().unwrap_or_default();
        if !cache_control.is_empty() {
            let value = hyper::header::HeaderValue::from_bytes(cache_control).unwrap();
            response.headers_mut().insert("cache-control", value);
        }
        response
    };
    if let Some(rest) = key.strip_prefix(b"ver/") {
        let response = reply(StatusCode::OK, format!("version {loads}").into_bytes());
        let rest = cache_control_override.map_or(rest, str::as_bytes);
        with_cache_control(response, rest)
    } else if let Some(rest) = key.strip_prefix(b"missing/") {
        with_cache_control(reply(StatusCode::NOT_FOUND, b"no such key".to_vec()), rest)
    } else if let Some(rest) = key.strip_prefix(b"gone/") {
        with_cache_control(reply(StatusCode::GONE, b"gone for good".to_vec()), rest)
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
