//! Everything golang/groupcache puts on the wire, in one place: how keys
//! are escaped in peer URLs, how a peer request path is decoded and split
//! into group and key, the protobuf `GetResponse` body (with the forks'
//! `expire` field for values that expire), and the forks' write bodies: the
//! protobuf `SetRequest` of a PUT and groupcache-go's JSON remove-keys list.
//!
//! The rules are golang/groupcache's `HTTPPool` ones (its `http.go`): the
//! server percent-decodes the path only (a `+` stays a `+`) and splits
//! at the first `/` after the base path; the key keeps every later byte.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};
use hyper::header::{HeaderName, HeaderValue};
use prost::Message;

use crate::value::{Expiry, Value};

/// The golang/groupcache protobuf messages, generated from `proto/groupcache.proto`.
// GetRequest is unused: over HTTP the group and key travel in the path.
#[allow(dead_code, unreachable_pub)]
pub(crate) mod pb {
    include!(concat!(env!("OUT_DIR"), "/groupcachepb.rs"));
}

/// golang/groupcache's `defaultBasePath`.
pub const DEFAULT_BASE_PATH: &str = "/_groupcache/";

/// The content type of a successful peer reply.
pub const PROTOBUF_CONTENT_TYPE: &str = "application/x-protobuf";

/// A request header groupcached puts on its peer gets, saying it takes a
/// not-found as the owner's final answer (Go nodes never send it).
pub(crate) const NOT_FOUND_UNDERSTOOD: HeaderName = HeaderName::from_static("groupcached-accept");

/// The [`NOT_FOUND_UNDERSTOOD`] header as a requester sends it.
pub(crate) fn not_found_understood() -> (HeaderName, HeaderValue) {
    (NOT_FOUND_UNDERSTOOD, HeaderValue::from_static("not-found"))
}

/// True when a peer get's `headers` say the requester is a groupcached
/// node that takes a not-found as final.
pub(crate) fn understands_not_found(headers: &hyper::HeaderMap) -> bool {
    headers
        .get_all(NOT_FOUND_UNDERSTOOD)
        .iter()
        .any(|value| value.as_bytes().eq_ignore_ascii_case(b"not-found"))
}

/// The response header on a groupcached owner's 404 for a key its origin
/// does not have, sent only to requesters that sent
/// [`NOT_FOUND_UNDERSTOOD`]: in a golang pool the owner otherwise answers
/// 500 as golang does, and a Go owner's 404 ("no such group") is not one.
pub(crate) const NOT_FOUND: HeaderName = HeaderName::from_static("groupcached-not-found");

/// Why a request path could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-escape in path")]
    BadEscape,
    /// The path names a group but no key.
    #[error("bad request")]
    NoKey,
}

/// A base path is `/` + one or more `SEGMENT/` of unreserved characters
/// (peers put it into URLs unescaped and match it after decoding, so
/// anything else could never match), and may not shadow the user API,
/// whose other routes (`/stats`, `/peers`, `/healthz`) have no `/` after
/// their name and so cannot be reached by a prefix ending in `/`.
pub(crate) fn base_path_is_valid(base: &str) -> bool {
    let Some(inner) = base
        .strip_prefix('/')
        .and_then(|rest| rest.strip_suffix('/'))
    else {
        return false;
    };
    let unreserved = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
    !base.starts_with("/cache/")
        && inner
            .split('/')
            .all(|segment| !segment.is_empty() && segment.bytes().all(unreserved))
}

/// The longest peer URL accepted: `http://`, a host name of at most 253
/// bytes (DNS's limit), `:` and a port.
pub const MAX_PEER_URL_BYTES: usize = 7 + 253 + 6;

/// Why a string is not a peer URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadPeerUrl {
    /// Not `http://host[:port]` or `https://host[:port]`.
    #[error("expected http://host:port or https://host:port with no trailing '/'")]
    Syntax,
    /// Longer than [`MAX_PEER_URL_BYTES`].
    #[error("longer than {MAX_PEER_URL_BYTES} bytes")]
    TooLong,
}

/// A peer URL that failed [`check_peer_url`], with why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("peer URL {url:?}: {error}")]
pub struct InvalidPeerUrl {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub error: BadPeerUrl,
}

/// [`check_peer_url`] on each of `urls`; the first that fails.
pub fn check_peer_urls<'a>(
    urls: impl IntoIterator<Item = &'a String>,
) -> Result<(), InvalidPeerUrl> {
    for url in urls {
        check_peer_url(url).map_err(|error| InvalidPeerUrl {
            url: url.clone(),
            error,
        })?;
    }
    Ok(())
}

/// Checks that `url` is a peer URL as golang's `HTTPPool.Set` lists them:
/// `http://host[:port]` (or `https://`), with no user info, path or
/// trailing `/`. The ring hashes the exact string, so `http://a:1/` would
/// be a peer no Go node knows. The host is a DNS name (letters, digits,
/// `-` and `_`, no label starting or ending with `-`), an IPv4 address or a
/// bracketed IPv6 address; the port is plain digits, 1–65535. `--peers`,
/// `--self` and every etcd value pass through here.
pub fn check_peer_url(url: &str) -> Result<(), BadPeerUrl> {
    if url.len() > MAX_PEER_URL_BYTES {
        return Err(BadPeerUrl::TooLong);
    }
    let authority = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or(BadPeerUrl::Syntax)?;
    let (host_ok, port) = match authority.strip_prefix('[') {
        Some(bracketed) => {
            let (ip, rest) = bracketed.split_once(']').ok_or(BadPeerUrl::Syntax)?;
            let port = match rest {
                "" => None,
                rest => Some(rest.strip_prefix(':').ok_or(BadPeerUrl::Syntax)?),
            };
            (ip.parse::<std::net::Ipv6Addr>().is_ok(), port)
        }
        None => {
            let (host, port) = match authority.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            };
            let ok = host.parse::<std::net::Ipv4Addr>().is_ok() || is_dns_name(host);
            (ok, port)
        }
    };
    let port_ok = port.is_none_or(|port| {
        (1..=5).contains(&port.len())
            && port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|p| p > 0)
    });
    (host_ok && port_ok).then_some(()).ok_or(BadPeerUrl::Syntax)
}

/// A host name: dot-separated labels of 1–63 letters, digits, `-` or `_`,
/// none starting or ending with `-`.
fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// Percent-encodes every byte outside `A-Z a-z 0-9 - _ . ~` as `%XX`.
///
/// golang's client uses `url.QueryEscape`, which writes a space as `+`; the
/// golang server then decodes that `+` as a literal `+`, so Go nodes never
/// see keys with spaces intact. Escaping the space as `%20` instead makes
/// every key, spaces included, arrive exactly at Go and Rust owners alike.
pub fn escape(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
    out
}

/// Decodes `%XX` escapes (either hex case) and nothing else, as Go's path
/// unescaping does. A `%` not followed by two hex digits is an error, as it
/// is for Go's HTTP server.
pub fn unescape(path: &[u8]) -> Result<Vec<u8>, PathError> {
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        if path[i] == b'%' {
            let hi = path.get(i + 1).and_then(|&c| hex_value(c));
            let lo = path.get(i + 2).and_then(|&c| hex_value(c));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(PathError::BadEscape);
            };
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(path[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Splits a decoded path (after the base path) at its first `/` into
/// group and key. No `/` at all is golang's 400 `bad request`.
pub(crate) fn split_group_key(rest: &[u8]) -> Result<(&[u8], &[u8]), PathError> {
    let slash = rest
        .iter()
        .position(|&b| b == b'/')
        .ok_or(PathError::NoKey)?;
    Ok((&rest[..slash], &rest[slash + 1..]))
}

/// A decoded (group, key) pair.
#[cfg(test)]
pub(crate) type GroupKey = (Vec<u8>, Vec<u8>);

/// A request path decoded and split into group and key. It borrows the raw
/// path when that has no `%` escape (the usual case), so parsing a request
/// allocates nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathParts<'a> {
    decoded: Cow<'a, [u8]>,
    group_start: usize,
    slash: usize,
}

impl PathParts<'_> {
    pub(crate) fn group(&self) -> &[u8] {
        &self.decoded[self.group_start..self.slash]
    }

    pub(crate) fn key(&self) -> &[u8] {
        &self.decoded[self.slash + 1..]
    }
}

/// Decodes a raw request path that starts with `prefix` and splits it into
/// group and key. Returns `None` when the path does not start with `prefix`.
pub(crate) fn split_path<'a>(
    raw_path: &'a str,
    prefix: &str,
) -> Option<Result<PathParts<'a>, PathError>> {
    let raw = raw_path.as_bytes();
    let decoded = if raw.contains(&b'%') {
        match unescape(raw) {
            Ok(decoded) => Cow::Owned(decoded),
            // A bad escape anywhere makes the whole request bad, even one
            // that may not have been meant for `prefix`: Go rejects it
            // before routing.
            Err(e) => return raw_path.starts_with(prefix).then_some(Err(e)),
        }
    } else {
        Cow::Borrowed(raw)
    };
    let rest = decoded.strip_prefix(prefix.as_bytes())?;
    let group_len = match split_group_key(rest) {
        Ok((group, _)) => group.len(),
        Err(e) => return Some(Err(e)),
    };
    Some(Ok(PathParts {
        group_start: prefix.len(),
        slash: prefix.len() + group_len,
        decoded,
    }))
}

/// [`split_path`], with the group and key copied out.
#[cfg(test)]
pub(crate) fn parse_path(raw_path: &str, prefix: &str) -> Option<Result<GroupKey, PathError>> {
    split_path(raw_path, prefix)
        .map(|parsed| parsed.map(|parts| (parts.group().to_vec(), parts.key().to_vec())))
}

/// A few bytes of a `GetResponse` that travel inline next to the cached
/// value: field 1's tag and the value's length before it, or the
/// `minute_qps` (2) and `expire` (3) fields after it. At most 20 bytes, so
/// a reply can send them without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ResponsePart {
    bytes: [u8; 20],
    len: u8,
}

impl ResponsePart {
    /// The bytes before a value of `value_len` bytes.
    pub(crate) fn value_header(value_len: usize) -> ResponsePart {
        ResponsePart::tagged(0x0a, value_len as u64) // field 1, length-delimited
    }

    /// The `expire` field for an expiry, or nothing for a value that never
    /// expires (golang's reply has no field 3).
    pub(crate) fn expire(expiry: Expiry) -> Option<ResponsePart> {
        // An int64 varint is the two's-complement bit pattern.
        let nanos = expiry.to_wire()?;
        Some(ResponsePart::tagged(0x18, nanos as u64)) // field 3, varint
    }

    /// The `expire` field as the forks always send it: 0 for a value that
    /// never expires.
    pub(crate) fn expire_always(expiry: Expiry) -> ResponsePart {
        ResponsePart::expire(expiry).unwrap_or(ResponsePart::tagged(0x18, 0))
    }

    /// The fields after the value: `minute_qps` if given (the owner's
    /// estimate of the key's requests per second; golang nodes skip it),
    /// then `expire` as [`ResponsePart::expire`] or, with `always`,
    /// [`ResponsePart::expire_always`].
    pub(crate) fn after_value(
        minute_qps: Option<f64>,
        expiry: Expiry,
        always: bool,
    ) -> Option<ResponsePart> {
        let expire = if always {
            Some(ResponsePart::expire_always(expiry))
        } else {
            ResponsePart::expire(expiry)
        };
        let Some(qps) = minute_qps else {
            return expire;
        };
        let mut part = ResponsePart {
            bytes: [0; 20],
            len: 9,
        };
        part.bytes[0] = 0x11; // field 2, 64-bit
        part.bytes[1..9].copy_from_slice(&qps.to_le_bytes());
        if let Some(expire) = expire {
            let tail = expire.as_bytes();
            part.bytes[9..9 + tail.len()].copy_from_slice(tail);
            part.len += tail.len() as u8;
        }
        Some(part)
    }

    fn tagged(tag: u8, varint: u64) -> ResponsePart {
        let mut bytes = [0u8; 20];
        bytes[0] = tag;
        let unused = {
            let mut rest = &mut bytes[1..11];
            prost::encoding::encode_varint(varint, &mut rest);
            rest.len()
        };
        ResponsePart {
            bytes,
            len: (11 - unused) as u8,
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// The longest `GetResponse` body that carries a value of `value_len`
/// bytes: the value's tag and length, the value, `minute_qps` (its tag and
/// 8 bytes) and the longest `expire` field (its tag and a 10-byte varint).
/// A requester accepts this much from an owner whose values are limited to
/// `value_len`.
pub(crate) fn max_response_len(value_len: usize) -> usize {
    let header = ResponsePart::value_header(value_len).as_bytes().len();
    value_len.saturating_add(header + 9 + 11)
}

/// The body sent for a value: `GetResponse{value}` (field 1 always, so an
/// empty value is `0a 00`, as golang sends it), then `expire` if the value
/// expires.
pub fn encode_response(value: &[u8], expiry: Expiry) -> Bytes {
    let mut out = BytesMut::with_capacity(value.len() + 22);
    out.put_slice(ResponsePart::value_header(value.len()).as_bytes());
    out.put_slice(value);
    if let Some(expire) = ResponsePart::expire(expiry) {
        out.put_slice(expire.as_bytes());
    }
    out.freeze()
}

/// Decodes a peer's `GetResponse` body: the value, and the owner's
/// `minute_qps` if it sent one (a finite, non-negative number). A missing
/// value is the empty value; a missing or zero `expire` is "never"; unknown
/// fields are skipped.
pub(crate) fn decode_response(body: Bytes) -> Result<(Value, Option<f64>), prost::DecodeError> {
    let response = pb::GetResponse::decode(body)?;
    let value = Value::new(
        response.value.unwrap_or_default(),
        Expiry::from_wire(response.expire),
    );
    let qps = response.minute_qps.filter(|q| q.is_finite() && *q >= 0.0);
    Ok((value, qps))
}

/// Why a write body from a peer could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum WriteBodyError {
    #[error("{0}")]
    Protobuf(String),
    #[error("SetRequest has no key")]
    NoKey,
    #[error("invalid request: {0}")]
    Json(String),
    #[error("remove-keys lists more than {0} keys")]
    TooManyKeys(usize),
}

/// The body of a fork's PUT: `SetRequest{group, key, value, expire}`, every
/// field present (`expire` 0 for "never"), as mailgun v2 sends it.
pub(crate) fn encode_set_request(group: &[u8], key: &[u8], value: &Value) -> Bytes {
    let request = pb::SetRequest {
        group: Some(Bytes::copy_from_slice(group)),
        key: Some(Bytes::copy_from_slice(key)),
        value: Some(value.bytes.clone()),
        expire: Some(value.expiry.to_wire().unwrap_or(0)),
    };
    Bytes::from(request.encode_to_vec())
}

/// Decodes a PUT body into the key it names (the key comes from the body,
/// not the URL) and the value with its expiry.
pub(crate) fn decode_set_request(body: Bytes) -> Result<(Bytes, Value), WriteBodyError> {
    let request =
        pb::SetRequest::decode(body).map_err(|e| WriteBodyError::Protobuf(e.to_string()))?;
    let key = request.key.ok_or(WriteBodyError::NoKey)?;
    let value = Value::new(
        request.value.unwrap_or_default(),
        Expiry::from_wire(request.expire),
    );
    Ok((key, value))
}

/// groupcache-go v3's remove-keys body, `{"group":"g","keys":["k1",...]}`.
#[derive(Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RemoveKeys {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "at_most_max_keys"
    )]
    pub keys: Vec<String>,
}

/// The most keys one remove-keys body may list; decoding stops at the
/// next one, so a body of millions of empty keys costs no more than this.
pub(crate) const MAX_REMOVE_KEYS: usize = 10_000;

/// The error text a list over [`MAX_REMOVE_KEYS`] ends decoding with.
const TOO_MANY_KEYS: &str = "more keys than the limit";

/// `keys`, refused as soon as it has more than [`MAX_REMOVE_KEYS`].
fn at_most_max_keys<'de, D>(deserializer: D) -> Result<Vec<String>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    struct Bounded;
    impl<'de> serde::de::Visitor<'de> for Bounded {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "a list of at most {MAX_REMOVE_KEYS} keys")
        }

        fn visit_seq<A>(self, mut seq: A) -> Result<Vec<String>, A::Error>
        where
            A: serde::de::SeqAccess<'de>,
        {
            let mut keys = Vec::new();
            while let Some(key) = seq.next_element::<String>()? {
                if keys.len() == MAX_REMOVE_KEYS {
                    return Err(serde::de::Error::custom(TOO_MANY_KEYS));
                }
                keys.push(key);
            }
            Ok(keys)
        }
    }
    deserializer.deserialize_seq(Bounded)
}

/// Encodes a remove-keys body for `group` and `keys`.
pub(crate) fn encode_remove_keys(group: &str, keys: Vec<String>) -> Bytes {
    let body = RemoveKeys {
        group: group.to_string(),
        keys,
    };
    // Serializing strings into a Vec cannot fail.
    Bytes::from(serde_json::to_vec(&body).unwrap_or_default())
}

/// Decodes a remove-keys body.
pub(crate) fn decode_remove_keys(body: &[u8]) -> Result<RemoveKeys, WriteBodyError> {
    serde_json::from_slice(body).map_err(|e| {
        if e.to_string().starts_with(TOO_MANY_KEYS) {
            WriteBodyError::TooManyKeys(MAX_REMOVE_KEYS)
        } else {
            WriteBodyError::Json(e.to_string())
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_urls_are_plain_http_authorities() {
        for good in [
            "http://127.0.0.1:8001",
            "http://h:1",
            "http://node-1.example",
            "http://[::1]:8080",
            "http://[::1]",
            "https://h:1",
            "http://10.0.0.1:65535",
            "http://node_1.compose-net:80",
            "http://a:00080",
        ] {
            assert_eq!(check_peer_url(good), Ok(()), "{good}");
        }
        for bad in [
            "not a url at all",
            "http://h:1/",
            "http://h:p",
            "http://h:",
            "http://",
            "http://u@h:1",
            "https://h:1/",
            "ftp://h:1",
            "http://h:1/path",
            "http://h h:1",
            "http://:1",
            "",
            "http://a:+80",
            "http://a:0",
            "http://a:65536",
            "http://a:080000",
            "http://-:1",
            "http://a-.b:1",
            "http://x'+alert(1)+'y:80",
            "http://a..b:1",
            "http://[::1:1",
            "http://[zz]:1",
            "http://[::1]x",
            "http://a:1:2",
            "http://a\n:1",
        ] {
            assert_eq!(check_peer_url(bad), Err(BadPeerUrl::Syntax), "{bad}");
        }
        let long = format!("http://{}:1", "h".repeat(5000));
        assert_eq!(check_peer_url(&long), Err(BadPeerUrl::TooLong));
        let label = "h".repeat(63);
        let longest = format!("http://{label}.{label}.{label}.{}:65535", "h".repeat(61));
        assert_eq!(check_peer_url(&longest), Ok(()));
    }

    #[test]
    fn escape_leaves_only_unreserved_bytes() {
        assert_eq!(escape(b"AZaz09-_.~"), "AZaz09-_.~");
        assert_eq!(escape(b"a b"), "a%20b");
        assert_eq!(escape(b"c/d"), "c%2Fd");
        assert_eq!(escape(b"c+d"), "c%2Bd");
        assert_eq!(escape("ü?&=#%".as_bytes()), "%C3%BC%3F%26%3D%23%25");
        assert_eq!(escape(b"*!'()"), "%2A%21%27%28%29");
        assert_eq!(escape(&[0xff, 0x00]), "%FF%00");
        assert_eq!(escape(b""), "");
    }

    #[test]
    fn unescape_is_path_decoding() {
        assert_eq!(unescape(b"a+b").unwrap(), b"a+b");
        assert_eq!(unescape(b"a%20b").unwrap(), b"a b");
        assert_eq!(unescape(b"%E2%82").unwrap(), [0xe2, 0x82]);
        assert_eq!(unescape(b"%c3%bc").unwrap(), "ü".as_bytes());
        assert_eq!(unescape(b"a%zz"), Err(PathError::BadEscape));
        assert_eq!(unescape(b"a%2"), Err(PathError::BadEscape));
        assert_eq!(unescape(b"%"), Err(PathError::BadEscape));
    }

    #[test]
    fn escape_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(unescape(escape(&all).as_bytes()).unwrap(), all);
    }

    #[test]
    fn peer_path_table() {
        let base = DEFAULT_BASE_PATH;
        let ok = |path: &str, group: &[u8], key: &[u8]| {
            assert_eq!(
                parse_path(path, base),
                Some(Ok((group.to_vec(), key.to_vec()))),
                "{path}"
            );
        };
        ok("/_groupcache/g/a+b", b"g", b"a+b");
        ok("/_groupcache/g/a%20b", b"g", b"a b");
        ok("/_groupcache/g/%E2%82", b"g", &[0xe2, 0x82]);
        ok("/_groupcache/g/", b"g", b"");
        ok("/_groupcache/g/trail/", b"g", b"trail/");
        ok("/_groupcache/g/a/b", b"g", b"a/b");
        ok("/_groupcache/g%2Fx/k", b"g", b"x/k");
        ok("/_groupcache/g/%2Flead", b"g", b"/lead");
        ok("/_groupcache/nosuch/k", b"nosuch", b"k");
        assert_eq!(
            parse_path("/_groupcache/g", base),
            Some(Err(PathError::NoKey))
        );
        assert_eq!(
            parse_path("/_groupcache/", base),
            Some(Err(PathError::NoKey))
        );
        assert_eq!(
            parse_path("/_groupcache/g/a%zz", base),
            Some(Err(PathError::BadEscape))
        );
        assert_eq!(parse_path("/cache/g/k", base), None);
        assert_eq!(parse_path("/_groupcache", base), None);
    }

    #[test]
    fn split_path_borrows_unless_escaped() {
        let parts = split_path("/_groupcache/g/a/b", DEFAULT_BASE_PATH)
            .unwrap()
            .unwrap();
        assert_eq!((parts.group(), parts.key()), (&b"g"[..], &b"a/b"[..]));
        assert!(matches!(parts.decoded, Cow::Borrowed(_)));
        let parts = split_path("/_groupcache/g%2Fx/k%20", DEFAULT_BASE_PATH)
            .unwrap()
            .unwrap();
        assert_eq!((parts.group(), parts.key()), (&b"g"[..], &b"x/k "[..]));
        // The prefix is matched after decoding, as Go does.
        let parts = split_path("/cache/%67/k", "/cache/").unwrap().unwrap();
        assert_eq!((parts.group(), parts.key()), (&b"g"[..], &b"k"[..]));
    }

    #[test]
    fn response_prefix_is_tag_and_length() {
        let prefix = |len| ResponsePart::value_header(len).as_bytes().to_vec();
        assert_eq!(prefix(0), b"\x0a\x00");
        assert_eq!(prefix(5), b"\x0a\x05");
        assert_eq!(prefix(300), b"\x0a\xac\x02");
        assert_eq!(prefix(usize::MAX).len(), 11);
    }

    #[test]
    fn response_bytes_match_golang() {
        let never = |value: &[u8]| encode_response(value, Expiry::Never);
        assert_eq!(&never(b"hello")[..], b"\x0a\x05hello");
        assert_eq!(&never(b"")[..], b"\x0a\x00");
        assert_eq!(&never(b"v(hello)")[..], b"\x0a\x08v(hello)");
        let big = vec![1u8; 300];
        let encoded = never(&big);
        assert_eq!(&encoded[..3], &[0x0a, 0xac, 0x02]);
        assert_eq!(
            decode_response(encoded).unwrap(),
            (Value::from(Bytes::from(big)), None)
        );
    }

    #[test]
    fn expire_is_field_3_in_unix_nanoseconds_as_mailgun_sends_it() {
        // The bytes a real mailgun v2.6.0 node sent for a value that expires.
        let captured = b"\x0a\x0borigin:exp1\x18\x8a\xa6\xef\xe1\xc8\xad\xad\xf5\x18";
        let expiry = Expiry::At(1_795_446_879_274_390_282);
        assert_eq!(&encode_response(b"origin:exp1", expiry)[..], captured);
        let decoded = decode_response(Bytes::from_static(captured)).unwrap();
        assert_eq!(decoded, (Value::new(&b"origin:exp1"[..], expiry), None));
        // An uncacheable value: expire = 1, already past everywhere.
        assert_eq!(
            &encode_response(b"x", Expiry::UNCACHEABLE)[..],
            b"\x0a\x01x\x18\x01"
        );
        assert_eq!(ResponsePart::expire(Expiry::Never), None);
    }

    #[test]
    fn max_response_len_covers_any_expiry() {
        for len in [0, 127, 128, 16 << 20] {
            let value = vec![0u8; len];
            for expiry in [
                Expiry::Never,
                Expiry::UNCACHEABLE,
                Expiry::At(-1),
                Expiry::At(i64::MAX),
            ] {
                assert!(encode_response(&value, expiry).len() <= max_response_len(len));
            }
        }
        assert_eq!(max_response_len(5), 2 + 5 + 9 + 11);
        let longest = ResponsePart::after_value(Some(1.0), Expiry::At(-1), true).unwrap();
        assert_eq!(longest.as_bytes().len(), 9 + 11);
    }

    #[test]
    fn decode_skips_unknown_fields_and_defaults_missing_value() {
        // mailgun's reply: value "hello" plus expire (field 3) = 0.
        let mailgun = Bytes::from_static(b"\x0a\x05hello\x18\x00");
        let never = |value: &'static [u8]| (Value::from(Bytes::from_static(value)), None);
        assert_eq!(decode_response(mailgun).unwrap(), never(b"hello"));
        let with_qps = Bytes::from_static(b"\x0a\x01v\x11\x00\x00\x00\x00\x00\x00\xf0\x3f");
        let (value, qps) = decode_response(with_qps).unwrap();
        assert_eq!((value, qps), (never(b"v").0, Some(1.0)));
        // A rate that is no rate is dropped.
        let nan = Bytes::from_static(b"\x0a\x01v\x11\x00\x00\x00\x00\x00\x00\xf8\x7f");
        assert_eq!(decode_response(nan).unwrap(), never(b"v"));
        assert_eq!(decode_response(Bytes::new()).unwrap(), never(b""));
        assert!(decode_response(Bytes::from_static(b"\x0a\x09short")).is_err());
    }

    #[test]
    fn captured_mailgun_get_replies() {
        // As a mailgun v2.6.0 node sends it: a value that never expires still
        // carries `expire` = 0.
        let mut reply = ResponsePart::value_header(8).as_bytes().to_vec();
        reply.extend_from_slice(b"origin:a");
        reply.extend_from_slice(ResponsePart::expire_always(Expiry::Never).as_bytes());
        assert_eq!(reply, b"\x0a\x08origin:a\x18\x00");
        let expiry = Expiry::At(1_795_446_879_274_390_282);
        let mut reply = ResponsePart::value_header(11).as_bytes().to_vec();
        reply.extend_from_slice(b"origin:exp1");
        reply.extend_from_slice(ResponsePart::expire_always(expiry).as_bytes());
        assert_eq!(
            reply,
            b"\x0a\x0borigin:exp1\x18\x8a\xa6\xef\xe1\xc8\xad\xad\xf5\x18"
        );
    }

    #[test]
    fn captured_mailgun_put_body() {
        let captured: &[u8] =
            b"\x0a\x01g\x12\x07capset0\x1a\x03val\x20\xc6\xa8\xc1\x97\xa9\xae\xad\xf5\x18";
        let value = Value::new(&b"val"[..], Expiry::At(1_795_446_905_156_686_918));
        assert_eq!(&encode_set_request(b"g", b"capset0", &value)[..], captured);
        let (key, decoded) = decode_set_request(Bytes::from_static(captured)).unwrap();
        assert_eq!((&key[..], decoded), (&b"capset0"[..], value));
        // Without a TTL the body ends in `20 00`: expire 0 is still sent.
        let never = Value::new(&b"val"[..], Expiry::Never);
        let body = encode_set_request(b"g", b"capset0", &never);
        assert!(body.ends_with(b"\x1a\x03val\x20\x00"), "{body:?}");
        let (_, decoded) = decode_set_request(body).unwrap();
        assert_eq!(decoded, never);
    }

    #[test]
    fn bad_write_bodies_are_refused() {
        assert_eq!(
            decode_set_request(Bytes::from_static(b"\x0a\x01g")),
            Err(WriteBodyError::NoKey)
        );
        assert!(matches!(
            decode_set_request(Bytes::from_static(b"\x12\x09short")),
            Err(WriteBodyError::Protobuf(_))
        ));
        let keys = decode_remove_keys(br#"{"group":"g","keys":["a","b c"]}"#).unwrap();
        assert_eq!(keys.keys, ["a", "b c"]);
        let encoded = encode_remove_keys("g", vec!["a".into(), "b c".into()]);
        assert_eq!(&encoded[..], br#"{"group":"g","keys":["a","b c"]}"#);
        assert_eq!(
            serde_json::to_string(&RemoveKeys::default()).unwrap(),
            "{}",
            "omitempty, as Go encodes it"
        );
        let error = decode_remove_keys(b"{").unwrap_err().to_string();
        assert!(error.starts_with("invalid request: "), "{error}");
    }
}

/// Properties over arbitrary input. CI runs proptest's default 256 cases
/// each; `scripts/fuzz` runs them with `PROPTEST_CASES` in the millions.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn unreserved(b: u8) -> bool {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
    }

    proptest! {
        #[test]
        fn escape_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let escaped = escape(&bytes);
            let kept = bytes.iter().filter(|&&b| unreserved(b)).count();
            prop_assert_eq!(escaped.len(), kept + 3 * (bytes.len() - kept));
            prop_assert_eq!(unescape(escaped.as_bytes()), Ok(bytes));
        }

        #[test]
        fn unescape_never_panics_and_reescapes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(decoded) = unescape(&bytes) {
                prop_assert!(decoded.len() <= bytes.len());
                prop_assert_eq!(unescape(escape(&decoded).as_bytes()), Ok(decoded));
            } else {
                prop_assert!(bytes.contains(&b'%'));
            }
        }

        /// Any path: no panic, and a split puts back together into the
        /// decoded path with the group free of `/`.
        #[test]
        fn split_path_of_any_path(path in "(/|_|g|c|a|%|[0-9A-Fa-f]|/_groupcache/|\\PC)*") {
            if let Some(Ok(parts)) = split_path(&path, DEFAULT_BASE_PATH) {
                prop_assert!(!parts.group().contains(&b'/'));
                let mut joined = DEFAULT_BASE_PATH.as_bytes().to_vec();
                joined.extend_from_slice(parts.group());
                joined.push(b'/');
                joined.extend_from_slice(parts.key());
                prop_assert_eq!(joined, unescape(path.as_bytes()).unwrap());
            }
        }

        /// What a client builds from a group without `/` and any key, the
        /// server splits back into exactly that group and key.
        #[test]
        fn peer_paths_round_trip(
            group in prop::collection::vec(
                prop::sample::select((0..=255u8).filter(|&b| b != b'/').collect::<Vec<_>>()),
                0..16,
            ),
            key in prop::collection::vec(any::<u8>(), 0..48),
        ) {
            let path = format!("{DEFAULT_BASE_PATH}{}/{}", escape(&group), escape(&key));
            prop_assert_eq!(parse_path(&path, DEFAULT_BASE_PATH), Some(Ok((group, key))));
        }

        /// Arbitrary bytes as a peer's reply: an error or a value, never a
        /// panic, and never a value longer than the body.
        #[test]
        fn decode_response_of_any_bytes(body in prop::collection::vec(any::<u8>(), 0..96)) {
            let len = body.len();
            if let Ok((value, _)) = decode_response(Bytes::from(body)) {
                prop_assert!(value.bytes.len() <= len);
            }
        }

        /// A value and any expiry, framed as this node frames them, are
        /// prost's own encoding of `GetResponse`, and decode to themselves
        /// with `minute_qps` after them too; with the rate framed inline
        /// (as an owner's reply carries it) they are prost's encoding of
        /// all three fields.
        #[test]
        fn responses_round_trip(
            value in prop::collection::vec(any::<u8>(), 0..300),
            expire in prop::option::of(any::<i64>()),
            minute_qps in any::<f64>(),
        ) {
            let expiry = Expiry::from_wire(expire);
            let encoded = encode_response(&value, expiry);
            let message = pb::GetResponse {
                value: Some(Bytes::from(value.clone())),
                expire: expiry.to_wire(),
                ..Default::default()
            };
            prop_assert_eq!(&encoded[..], &message.encode_to_vec()[..]);
            let mut with_unknown = encoded.to_vec();
            with_unknown.push(0x11); // field 2, 64-bit
            with_unknown.extend_from_slice(&minute_qps.to_le_bytes());
            let decoded = decode_response(Bytes::from(with_unknown)).unwrap();
            prop_assert_eq!(&decoded.0, &Value::new(value.clone(), expiry));
            let rate = minute_qps.abs();
            let inline = ResponsePart::after_value(Some(rate), expiry, false).unwrap();
            let mut framed = ResponsePart::value_header(value.len()).as_bytes().to_vec();
            framed.extend_from_slice(&value);
            framed.extend_from_slice(inline.as_bytes());
            let message = pb::GetResponse {
                value: Some(Bytes::from(value)),
                minute_qps: Some(rate),
                expire: expiry.to_wire(),
            };
            prop_assert_eq!(&framed[..], &message.encode_to_vec()[..]);
        }
    }
}
