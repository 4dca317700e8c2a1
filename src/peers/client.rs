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
//! Each peer has a health record (see [`crate::peers::health`]): a peer that
//! stops answering is marked down, found out by a liveness probe while a
//! fetch waits on it, and its keys load locally until it answers again. A
//! peer that held a fetch to its deadline is tried again by a fetch on a
//! task of its own, which the user whose fetch it is waits for only
//! briefly.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::{Method, StatusCode, Uri};
// tokio's clock, so that tests can pause and advance it.
use tokio::time::Instant;

use crate::group::getter::BoxFuture;
use crate::http_client::{HostLimit, HttpClient};
use crate::log_gate::WarnGate;
use crate::peers::health::{Attempt, Health, HealthReport, Outcome};
use crate::peers::picker::{FetchPeer, PeerError};
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
    /// A client of `peer`'s API under `base_path`, with at most
    /// `max_conns` requests to it at once, probing it with `probe_timeout`
    /// (zero: no probes) while a fetch waits.
    pub(crate) fn new(
        peer: &str,
        base_path: &str,
        http: HttpClient,
        max_conns: usize,
        probe_timeout: Duration,
    ) -> PeerClient {
        let base = format!("{peer}{base_path}");
        // A peer URL that makes no URI is refused before any fetch (each
        // fetch reports it as `BadUrl`); it is never probed.
        let health = match base.parse::<Uri>() {
            Ok(url) => Health::probing(url, &http, probe_timeout),
            Err(_) => Health::default(),
        };
        PeerClient {
            base,
            http,
            limit: HttpClient::host_limit(max_conns),
            warnings: Arc::new(WarnGate::default()),
            health: Arc::new(health),
        }
    }

    /// This peer's health, for `GET /peers`.
    pub(crate) fn health(&self) -> HealthReport {
        self.health.report()
    }

    /// Fetches `group`/`key` from this peer, unless it is marked down or
    /// stops answering probes meanwhile. `started`: when the caller began
    /// waiting; the caller gives up after this client's timeout counted
    /// from then.
    async fn get(
        &self,
        started: Instant,
        group: &[u8],
        key: &[u8],
    ) -> Result<(Value, Option<f64>), PeerError> {
        let attempt = self.health.admit().ok_or(PeerError::Down)?;
        if attempt.in_background() {
            return self.try_in_background(attempt, group, key).await;
        }
        let mut attempt = attempt.giving_up_at(started, self.http.timeout());
        self.get_recorded(&mut attempt, started, group, key).await
    }

    /// The fetch of an admitted `attempt`, its outcome recorded in the
    /// peer's health.
    async fn get_recorded(
        &self,
        attempt: &mut Attempt,
        started: Instant,
        group: &[u8],
        key: &[u8],
    ) -> Result<(Value, Option<f64>), PeerError> {
        let result = tokio::select! {
            result = self.get_value(group, key) => result,
            unanswered = self.health.clone().until_unanswered(started) => Err(unanswered),
        };
        attempt.finish(Outcome::of(&result), result.as_ref().err());
        result
    }

    /// Sends a hung peer's trial fetch of `group`/`key` on a task of its
    /// own, with this client's whole deadline, and waits for it only as
    /// long as a live peer takes to answer ([`Health::trial_wait`]): its
    /// answer by then is the caller's, else the caller gets
    /// [`PeerError::Down`] and the trial runs on. Its outcome marks the
    /// peer up or down again.
    async fn try_in_background(
        &self,
        attempt: Attempt,
        group: &[u8],
        key: &[u8],
    ) -> Result<(Value, Option<f64>), PeerError> {
        let (client, group, key) = (self.clone(), group.to_vec(), key.to_vec());
        let mut trial = tokio::spawn(async move {
            let (started, timeout) = (Instant::now(), client.http.timeout());
            let mut attempt = attempt.giving_up_at(started, timeout);
            let fetching = client.get_recorded(&mut attempt, started, &group, &key);
            // Unfinished at the deadline, `attempt` drops as timed out.
            tokio::time::timeout(timeout, fetching).await.ok()
        });
        match tokio::time::timeout(self.health.trial_wait(), &mut trial).await {
            Ok(Ok(Some(answered))) => answered,
            _ => Err(PeerError::Down),
        }
    }

    async fn get_value(&self, group: &[u8], key: &[u8]) -> Result<(Value, Option<f64>), PeerError> {
        let body = self.send(Method::GET, group, key, Bytes::new()).await?;
        let (value, minute_qps) = wire::decode_response(body)?;
        // The client takes bodies up to `max_response_len(max value)`; that
        // much room for the `expire` field could carry a few bytes more of
        // value, so the value itself is checked too.
        if wire::max_response_len(value.bytes.len()) > self.http.max_body() {
            return Err(PeerError::TooLarge(value.bytes.len()));
        }
        Ok((value, minute_qps))
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

    /// groupcache-go's batch Remove: `POST {base}{group}/_remove-keys/`
    /// with the keys as JSON (see [`wire::encode_remove_keys`]).
    pub(crate) async fn remove_keys(
        &self,
        group: &str,
        keys: Vec<String>,
    ) -> Result<(), PeerError> {
        let url = format!(
            "{}{}/_remove-keys/",
            self.base,
            wire::escape(group.as_bytes())
        );
        let uri: Uri = url
            .parse()
            .map_err(|_| PeerError::BadUrl(self.base.clone()))?;
        let body = wire::encode_remove_keys(group, keys);
        let (status, _, body) = self
            .http
            .send(Method::POST, uri, None, body, &self.limit)
            .await?;
        match status {
            StatusCode::OK => Ok(()),
            status => Err(PeerError::Status(status, first_line(&body))),
        }
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
        // Gets say that this node takes a not-found as the owner's answer.
        let header = (method == Method::GET).then(wire::not_found_understood);
        let (status, headers, body) = self
            .http
            .send(method, uri, header, body, &self.limit)
            .await?;
        if status == StatusCode::OK {
            return Ok(body);
        }
        if status == StatusCode::NOT_FOUND && headers.contains_key(wire::NOT_FOUND) {
            return Err(PeerError::NotFound(first_line(&body)));
        }
        Err(PeerError::Status(status, first_line(&body)))
    }
}

impl FetchPeer for PeerClient {
    /// The caller's deadline starts now, before the future is first polled.
    fn fetch<'a>(
        &'a self,
        group: &'a [u8],
        key: &'a [u8],
    ) -> BoxFuture<'a, Result<Value, PeerError>> {
        let fetching = self.get(Instant::now(), group, key);
        Box::pin(async move { fetching.await.map(|(value, _)| value) })
    }

    /// The caller's deadline starts now, as for `fetch`.
    fn fetch_with_rate<'a>(
        &'a self,
        group: &'a [u8],
        key: &'a [u8],
    ) -> BoxFuture<'a, Result<(Value, Option<f64>), PeerError>> {
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

/// The first line of an error reply, at most 200 bytes, for messages.
fn first_line(body: &[u8]) -> String {
    let line = body.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(&line[..line.len().min(200)]);
    line.trim_end_matches('\r').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

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
            Duration::ZERO,
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
