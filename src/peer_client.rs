//! The peer client: fetches a value from the peer that owns it, with
//! `GET {peer}{base}{group}/{key}` as golang's `httpGetter` does.
//!
//! Keys are escaped byte for byte (see [`crate::wire::escape`]); any reply
//! but a 200 whose body decodes as a `GetResponse` is a peer error, which
//! the group answers by loading the key itself.

use bytes::Bytes;
use hyper::{StatusCode, Uri};

use crate::http_client::{status_text, HostLimit, HttpClient, HttpError};
use crate::wire;

/// Why a fetch from a peer failed; the texts follow golang's client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PeerError {
    #[error("bad peer URL {0:?}")]
    BadUrl(String),
    #[error("{0}")]
    Http(#[from] HttpError),
    #[error("server returned: {}", status_text(*.0))]
    Status(StatusCode),
    #[error("decoding response body: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// A handle for one peer: its URL prefix and a bound on concurrent fetches.
#[derive(Clone)]
pub struct PeerClient {
    /// `{peer}{base_path}`, e.g. `http://10.0.0.2:8080/_groupcache/`.
    base: String,
    http: HttpClient,
    limit: HostLimit,
}

impl PeerClient {
    pub fn new(peer: &str, base_path: &str, http: HttpClient, max_conns: usize) -> PeerClient {
        PeerClient {
            base: format!("{peer}{base_path}"),
            http,
            limit: HttpClient::host_limit(max_conns),
        }
    }

    /// Fetches `group`/`key` from this peer.
    pub async fn get(&self, group: &[u8], key: &[u8]) -> Result<Bytes, PeerError> {
        let url = format!("{}{}/{}", self.base, wire::escape(group), wire::escape(key));
        let uri: Uri = url
            .parse()
            .map_err(|_| PeerError::BadUrl(self.base.clone()))?;
        let (status, body) = self.http.get(uri, &self.limit).await?;
        if status != StatusCode::OK {
            return Err(PeerError::Status(status));
        }
        Ok(wire::decode_response(body)?)
    }
}
