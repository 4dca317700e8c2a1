//! The peer client: fetches a value from the peer that owns it, with
//! `GET {peer}{base}{group}/{key}` as golang's `httpGetter` does.
//!
//! Keys are escaped byte for byte (see [`crate::wire::escape`]); any reply
//! but a 200 whose body decodes as a `GetResponse` is a peer error, which
//! the group answers by loading the key itself (or, in the forks' pools,
//! passes on a 404 or 503 as it is). The value comes back with the owner's
//! expiry, if it sent one. In the forks' pools it also sends their writes:
//! PUT with a `SetRequest`, DELETE, and groupcache-go's POST remove-keys.
//!
//! Each peer has a health record: a fetch that times out or cannot connect
//! marks the peer down for a back-off that starts at 500 ms and doubles with
//! each failure in a row, up to 5 s. While a peer is down, fetches from it
//! fail at once with [`PeerError::Down`] (so its keys load locally without
//! waiting), except one probe at a time once the back-off has passed; the
//! first fetch that gets any answer marks it up again. A fetch the group
//! stops waiting for at the peer deadline counts as one that timed out.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode, Uri};
// tokio's clock, so that tests can pause and advance it.
use tokio::time::Instant;

use crate::getter::BoxFuture;
use crate::http_client::{HostLimit, HttpClient, HttpError};
use crate::picker::{FetchPeer, PeerError};
use crate::ratelimit::WarnGate;
use crate::value::Value;
use crate::wire;

/// A handle for one peer: its URL prefix and a bound on concurrent fetches.
#[derive(Clone)]
pub(crate) struct PeerClient {
    /// `{peer}{base_path}`, e.g. `http://10.0.0.2:8080/_groupcache/`.
    base: String,
    http: HttpClient,
    limit: HostLimit,
    warnings: Arc<WarnGate>,
    health: Arc<Health>,
}

impl PeerClient {
    pub(crate) fn new(
        peer: &str,
        base_path: &str,
        http: HttpClient,
        max_conns: usize,
    ) -> PeerClient {
        PeerClient {
            base: format!("{peer}{base_path}"),
            http,
            limit: HttpClient::host_limit(max_conns),
            warnings: Arc::new(WarnGate::default()),
            health: Arc::new(Health::default()),
        }
    }

    /// This peer's health, for `GET /peers`.
    pub(crate) fn health(&self) -> HealthReport {
        self.health.report()
    }

    /// Fetches `group`/`key` from this peer, unless it is marked down.
    /// `started`: when the caller began waiting; the caller gives up after
    /// this client's timeout counted from then.
    async fn get(&self, started: Instant, group: &[u8], key: &[u8]) -> Result<Value, PeerError> {
        let mut attempt = self
            .health
            .admit()
            .ok_or(PeerError::Down)?
            .giving_up_at(started, self.http.timeout());
        let result = self.get_value(group, key).await;
        let unreachable = matches!(&result, Err(PeerError::Http(e)) if e.is_unreachable());
        attempt.finish(!unreachable, result.as_ref().err());
        result
    }

    async fn get_value(&self, group: &[u8], key: &[u8]) -> Result<Value, PeerError> {
        let body = self.send(Method::GET, group, key, Bytes::new()).await?;
        let value = wire::decode_response(body)?;
        // The client takes bodies up to `max_response_len(max value)`; that
        // much room for the `expire` field could carry a few bytes more of
        // value, so the value itself is checked too.
        if wire::max_response_len(value.bytes.len()) > self.http.max_body() {
            return Err(PeerError::TooLarge(value.bytes.len()));
        }
        Ok(value)
    }

    /// A fork's remote Set: `PUT` with a `SetRequest` body.
    pub(crate) async fn set(
        &self,
        group: &[u8],
        key: &[u8],
        value: &Value,
    ) -> Result<(), PeerError> {
        let body = wire::encode_set_request(group, key, value);
        self.send(Method::PUT, group, key, body).await.map(drop)
    }

    /// A fork's remote Remove: `DELETE`, no body.
    pub(crate) async fn remove(&self, group: &[u8], key: &[u8]) -> Result<(), PeerError> {
        self.send(Method::DELETE, group, key, Bytes::new())
            .await
            .map(drop)
    }

    /// Sends `method` to `{peer}{base}{group}/{key}`; the body of a 200.
    async fn send(
        &self,
        method: Method,
        group: &[u8],
        key: &[u8],
        body: Bytes,
    ) -> Result<Bytes, PeerError> {
        let url = format!("{}{}/{}", self.base, wire::escape(group), wire::escape(key));
        let uri: Uri = url
            .parse()
            .map_err(|_| PeerError::BadUrl(self.base.clone()))?;
        let (status, _, body) = self.http.send(method, uri, body, &self.limit).await?;
        if status != StatusCode::OK {
            return Err(PeerError::Status(status, first_line(&body)));
        }
        Ok(body)
    }
}

impl FetchPeer for PeerClient {
    /// The caller's deadline starts now, before the future is first polled.
    fn fetch<'a>(
        &'a self,
        group: &'a [u8],
        key: &'a [u8],
    ) -> BoxFuture<'a, Result<Value, PeerError>> {
        Box::pin(self.get(Instant::now(), group, key))
    }

    /// `{peer}{base_path}`.
    fn url(&self) -> &str {
        &self.base
    }

    /// At most once a second, so a dead owner under load does not flood
    /// the log.
    fn failure_to_log(&self) -> Option<u64> {
        self.warnings.admit()
    }
}

/// The first back-off of a peer marked down, and the longest.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Whether a peer answers, and when to try it again if not.
#[derive(Default)]
struct Health {
    state: Mutex<HealthState>,
}

#[derive(Default)]
struct HealthState {
    /// Unreachable fetches in a row; 0 means up.
    failures: u32,
    /// While down: when the next probe may go.
    retry_at: Option<Instant>,
    /// A probe is in flight.
    probing: bool,
    /// The last fetch error of any kind, kept after the peer recovers.
    last_error: Option<String>,
}

/// A peer's health as `GET /peers` shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub(crate) struct HealthReport {
    /// `up`, `down` or `probing`.
    pub state: &'static str,
    /// Unreachable fetches in a row.
    pub failures: u32,
    /// While down: milliseconds until the next probe may go.
    pub retry_in_ms: u64,
    /// The last fetch error of any kind, kept after the peer recovers.
    pub last_error: Option<String>,
}

/// One admitted fetch. Dropped unfinished once the caller's deadline has
/// passed (the group gave up on it), it counts as a fetch that timed out;
/// dropped earlier (a cancelled probe), it lets the next fetch probe
/// instead.
struct Attempt<'a> {
    health: &'a Health,
    probe: bool,
    finished: bool,
    /// The caller's deadline and the timeout it ends, if it has one.
    deadline: Option<(Instant, Duration)>,
}

impl Health {
    fn lock(&self) -> std::sync::MutexGuard<'_, HealthState> {
        // Every update leaves the state whole, so a poisoned lock is usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `None` while the peer is down and it is not yet time to probe (or
    /// another probe is in flight).
    fn admit(&self) -> Option<Attempt<'_>> {
        let mut state = self.lock();
        let probe = match state.retry_at {
            None => false,
            Some(at) if !state.probing && Instant::now() >= at => true,
            Some(_) => return None,
        };
        state.probing |= probe;
        Some(Attempt {
            health: self,
            probe,
            finished: false,
            deadline: None,
        })
    }

    fn report(&self) -> HealthReport {
        let state = self.lock();
        let retry_in = state
            .retry_at
            .map(|at| at.saturating_duration_since(Instant::now()));
        HealthReport {
            state: match (state.retry_at, state.probing) {
                (None, _) => "up",
                (Some(_), true) => "probing",
                (Some(_), false) => "down",
            },
            failures: state.failures,
            retry_in_ms: retry_in.map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX)),
            last_error: state.last_error.clone(),
        }
    }
}

impl Attempt<'_> {
    /// The attempt counts as timed out if dropped unfinished `timeout`
    /// after `started` or later.
    fn giving_up_at(mut self, started: Instant, timeout: Duration) -> Self {
        self.deadline = started.checked_add(timeout).map(|at| (at, timeout));
        self
    }

    /// Records whether the peer answered at all, and the fetch's error.
    fn finish(&mut self, answered: bool, error: Option<&PeerError>) {
        self.finished = true;
        let mut state = self.health.lock();
        if self.probe {
            state.probing = false;
        }
        if let Some(error) = error {
            state.last_error = Some(error.to_string());
        }
        if answered {
            *state = HealthState {
                last_error: state.last_error.take(),
                ..HealthState::default()
            };
        } else {
            state.failures = state.failures.saturating_add(1);
            let backoff = FIRST_BACKOFF
                .saturating_mul(1 << (state.failures - 1).min(16))
                .min(MAX_BACKOFF);
            state.retry_at = Some(Instant::now() + backoff);
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        match self.deadline {
            Some((deadline, timeout)) if Instant::now() >= deadline => {
                self.finish(false, Some(&PeerError::Http(HttpError::Timeout(timeout))));
            }
            _ if self.probe => self.health.lock().probing = false,
            _ => {}
        }
    }
}

/// The first line of an error reply, at most 200 bytes, for messages.
fn first_line(body: &[u8]) -> String {
    let line = body.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(&line[..line.len().min(200)]);
    line.trim_end_matches('\r').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_peer_down_is_skipped_then_probed_once_and_comes_back() {
        let health = Health::default();
        assert_eq!(health.report().state, "up");
        let refused = PeerError::Status(StatusCode::SERVICE_UNAVAILABLE, String::new());
        health.admit().unwrap().finish(false, Some(&refused));
        let report = health.report();
        assert_eq!((report.state, report.failures), ("down", 1));
        assert_eq!(
            report.last_error.as_deref(),
            Some("server returned: 503 Service Unavailable")
        );
        assert_eq!(report.retry_in_ms, 500);
        assert!(health.admit().is_none(), "down: fetches fail at once");
        tokio::time::advance(Duration::from_millis(499)).await;
        assert!(health.admit().is_none(), "down until the back-off passes");
        tokio::time::advance(Duration::from_millis(1)).await;
        let mut probe = health.admit().expect("the back-off has passed");
        assert_eq!(health.report().state, "probing");
        assert!(health.admit().is_none(), "one probe at a time");
        probe.finish(false, None);
        drop(probe);
        let report = health.report();
        assert_eq!((report.state, report.failures), ("down", 2));
        assert_eq!(report.retry_in_ms, 1000, "the back-off doubled");
        tokio::time::advance(Duration::from_millis(1000)).await;
        health.admit().unwrap().finish(true, None);
        assert_eq!(
            health.report(),
            HealthReport {
                state: "up",
                failures: 0,
                retry_in_ms: 0,
                last_error: Some("server returned: 503 Service Unavailable".into()),
            }
        );
    }

    #[test]
    fn a_fetch_dropped_at_its_deadline_counts_as_timed_out() {
        let health = Health::default();
        // Dropped before the deadline (cancelled): nothing is recorded.
        let attempt = health.admit().unwrap();
        drop(attempt.giving_up_at(Instant::now(), Duration::from_secs(3600)));
        assert_eq!(health.report().state, "up");
        // Dropped at the deadline (the group stopped waiting): a timeout.
        let attempt = health.admit().unwrap();
        drop(attempt.giving_up_at(Instant::now(), Duration::ZERO));
        let report = health.report();
        assert_eq!((report.state, report.failures), ("down", 1));
        assert_eq!(report.last_error.as_deref(), Some("timed out after 0ns"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_probe_lets_the_next_fetch_probe() {
        let health = Health::default();
        health.admit().unwrap().finish(false, None);
        tokio::time::advance(FIRST_BACKOFF).await;
        drop(health.admit().unwrap());
        assert!(health.admit().is_some());
    }

    /// Answers one request on a loopback port with `200` and an empty body,
    /// and returns the port and the request's bytes as they arrived.
    fn capture_one_request() -> (u16, std::thread::JoinHandle<Vec<u8>>) {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // The head, then as many body bytes as Content-Length says.
            loop {
                let n = stream.read(&mut buf).unwrap();
                request.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&request).to_lowercase();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .map_or(0, |l| l.trim().parse::<usize>().unwrap());
                    if request.len() >= end + 4 + length || n == 0 {
                        break;
                    }
                }
            }
            stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .unwrap();
            request
        });
        (port, handle)
    }

    fn client_for(port: u16) -> PeerClient {
        let http = HttpClient::new(Duration::from_secs(60), 1);
        PeerClient::new(
            &format!("http://127.0.0.1:{port}"),
            "/_groupcache/",
            http,
            1,
        )
    }

    #[tokio::test]
    async fn remove_and_set_send_what_mailgun_sends() {
        // As mailgun v2.6.0 sends it: DELETE with an empty body, the key
        // path-escaped.
        let (port, captured) = capture_one_request();
        client_for(port).remove(b"g", b"cap get/10").await.unwrap();
        let request = String::from_utf8(captured.join().unwrap()).unwrap();
        assert!(
            request.starts_with("DELETE /_groupcache/g/cap%20get%2F10 HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.ends_with("\r\n\r\n"), "no body: {request}");
        // The PUT body is the SetRequest mailgun v2.6.0 sends, with no
        // Content-Type.
        let (port, captured) = capture_one_request();
        let value = Value::new(
            &b"val"[..],
            crate::value::Expiry::At(1_795_446_905_156_686_918),
        );
        client_for(port)
            .set(b"g", b"capset0", &value)
            .await
            .unwrap();
        let request = captured.join().unwrap();
        let text = String::from_utf8_lossy(&request).to_string();
        assert!(
            text.starts_with("PUT /_groupcache/g/capset0 HTTP/1.1\r\n"),
            "{text}"
        );
        assert!(!text.to_lowercase().contains("content-type"), "{text}");
        let body: &[u8] =
            b"\x0a\x01g\x12\x07capset0\x1a\x03val\x20\xc6\xa8\xc1\x97\xa9\xae\xad\xf5\x18";
        assert!(request.ends_with(body), "{text}");
    }
}
