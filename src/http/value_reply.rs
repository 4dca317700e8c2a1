//! A value's reply to a user's `GET` or `HEAD` (RFC 9110): the
//! representation the request selects (in a `--compress` group, the
//! coding its `Accept-Encoding` prefers, from a compressed copy made once
//! and kept), that representation's ETag, the preconditions (304, 412),
//! the ranges (206, 416), and the header fields every reply of the value
//! carries: `Content-Type`, `ETag`, `Accept-Ranges`, `Cache-Control` and,
//! in a `--compress` group, `Vary: Accept-Encoding`. The route adds
//! `Cache-Status`.

use bytes::Bytes;
use hyper::header::{
    HeaderMap, HeaderValue, ACCEPT_ENCODING, ACCEPT_RANGES, CACHE_CONTROL, CONTENT_ENCODING,
    CONTENT_RANGE, CONTENT_TYPE, ETAG, VARY,
};
use hyper::{Method, Response, StatusCode};

use crate::cache::compressed::CompressedCopy;
use crate::group::{Counted, Group};
use crate::http::reply::{text, Reply, ReplyBody};
use crate::representation::coding::{self, Accepted, Coding, Plan};
use crate::representation::conditional::{self, Precondition};
use crate::representation::etag::{self, ETag};
use crate::representation::range::{self, Selected};
use crate::representation::Representation;
use crate::value::{Expiry, Value};

/// The bytes a reply sends of a value, and in which coding.
struct Selection {
    coding: Coding,
    bytes: Bytes,
    etag: ETag,
}

/// The reply to a `GET` or `HEAD` (with `headers`) that found `value` for
/// `key` in `group`.
pub(crate) async fn value_reply(
    group: &Group,
    representation: &Representation,
    key: &[u8],
    value: Value,
    method: &Method,
    headers: &HeaderMap,
) -> Reply {
    let cache_control = cache_control(value.expiry);
    let mut reply = match select(group, representation, key, value.bytes, headers).await {
        Some(selected) => reply_with(group, representation, selected, method, headers),
        None => text(
            StatusCode::NOT_ACCEPTABLE,
            "not acceptable: this group's values are sent as identity, gzip, br or zstd".into(),
        ),
    };
    let fields = reply.headers_mut();
    if let Some(cache_control) = cache_control {
        fields.insert(CACHE_CONTROL, cache_control);
    }
    vary(representation, fields);
    reply
}

/// Adds `Vary: Accept-Encoding` to every reply of a `--compress` group,
/// so that caches downstream keep each coding apart.
pub(crate) fn vary(representation: &Representation, fields: &mut HeaderMap) {
    if representation.compress {
        fields.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// The representation to send; `None`: nothing the client accepts.
async fn select(
    group: &Group,
    representation: &Representation,
    key: &[u8],
    bytes: Bytes,
    headers: &HeaderMap,
) -> Option<Selection> {
    let accepted = match representation.compress {
        true => coding::accepted(headers.get_all(ACCEPT_ENCODING).iter()),
        false => Accepted::IDENTITY_ONLY,
    };
    let source = etag::hash(&bytes);
    let identity = |bytes| Selection {
        coding: Coding::Identity,
        bytes,
        etag: ETag::from_hash(source, Coding::Identity),
    };
    let (coding, or_identity) = match accepted.plan(bytes.len()) {
        Plan::Identity => return Some(identity(bytes)),
        Plan::NotAcceptable => return None,
        Plan::Compress {
            coding,
            or_identity,
        } => (coding, or_identity),
    };
    let coded = match compressed_copy(group, key, &bytes, source, coding).await {
        Some(CompressedCopy {
            coded: Some(coded), ..
        }) => coded,
        // It does not shrink, or a write changed the value meanwhile.
        _ if or_identity => return Some(identity(bytes)),
        // The client takes nothing else: sent coded, shrinking or not.
        _ => {
            let coded = Bytes::from(coding.compress(&bytes));
            let hash = etag::hash(&coded);
            (coded, hash)
        }
    };
    let (bytes, hash) = coded;
    Some(Selection {
        coding,
        bytes,
        etag: ETag::from_hash(hash, coding),
    })
}

/// The group's copy of `bytes` (whose hash is `source`) in `coding`: the
/// one it keeps, or one made now, off the async threads, and kept.
async fn compressed_copy(
    group: &Group,
    key: &[u8],
    bytes: &Bytes,
    source: u64,
    coding: Coding,
) -> Option<CompressedCopy> {
    let copies = group.compressed_copies()?;
    let (bytes, counting) = (bytes.clone(), group.clone());
    let make = move || async move {
        let made = tokio::task::spawn_blocking(move || {
            let mut coded = coding.compress(&bytes);
            if coded.len() >= bytes.len() {
                return None;
            }
            // A copy keeps no spare capacity: it is counted by its length.
            coded.shrink_to_fit();
            let hash = etag::hash(&coded);
            Some((Bytes::from(coded), hash))
        })
        .await;
        counting.count(Counted::Compression);
        // Compressing into memory does not panic; if it did, the value
        // would be sent as it is.
        let coded = made.unwrap_or(None);
        CompressedCopy { source, coded }
    };
    copies.get_or_make(key, coding.tag(), source, make).await
}

/// The reply to send `selected`, after the request's preconditions and
/// ranges.
fn reply_with(
    group: &Group,
    representation: &Representation,
    selected: Selection,
    method: &Method,
    headers: &HeaderMap,
) -> Reply {
    let Selection {
        coding,
        bytes,
        etag,
    } = selected;
    let mut reply = match conditional::evaluate(headers, &etag) {
        Precondition::Failed => {
            return text(
                StatusCode::PRECONDITION_FAILED,
                "precondition failed: If-Match".into(),
            )
        }
        Precondition::NotModified => {
            group.count(Counted::NotModified);
            let mut reply = Response::new(ReplyBody::from(Bytes::new()));
            *reply.status_mut() = StatusCode::NOT_MODIFIED;
            reply.headers_mut().insert(ETAG, etag.header_value());
            return reply;
        }
        Precondition::Proceed => {
            let ranges = match *method == Method::GET {
                true => range::select(headers, &etag, bytes.len()),
                false => Selected::Whole,
            };
            ranged(group, representation, &bytes, ranges, &etag)
        }
    };
    if coding != Coding::Identity && reply.status() != StatusCode::RANGE_NOT_SATISFIABLE {
        group.count(Counted::CompressedReply);
    }
    let fields = reply.headers_mut();
    fields.insert(ETAG, etag.header_value());
    fields.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if let Some(encoding) = coding.header_value() {
        fields.insert(CONTENT_ENCODING, encoding);
    }
    reply
}

/// The 200, 206 or 416 that sends `ranges` of `bytes`.
fn ranged(
    group: &Group,
    representation: &Representation,
    bytes: &Bytes,
    ranges: Selected,
    etag: &ETag,
) -> Reply {
    let content_type = &representation.content_type;
    let (status, body, content_type, content_range) = match ranges {
        Selected::Whole => (StatusCode::OK, bytes.clone(), content_type.clone(), None),
        Selected::Unsatisfiable => {
            let unsatisfied = range::unsatisfied_range(bytes.len());
            let status = StatusCode::RANGE_NOT_SATISFIABLE;
            (
                status,
                Bytes::new(),
                content_type.clone(),
                Some(unsatisfied),
            )
        }
        Selected::Parts(parts) => {
            group.count(Counted::PartialReply);
            let status = StatusCode::PARTIAL_CONTENT;
            match &parts[..] {
                [part] => {
                    let content_range = range::content_range(part, bytes.len());
                    let body = bytes.slice(part.clone());
                    (status, body, content_type.clone(), Some(content_range))
                }
                parts => {
                    let (body, multipart) = range::multipart(bytes, parts, content_type, etag);
                    (status, body, multipart, None)
                }
            }
        }
    };
    let mut reply = Response::new(ReplyBody::from(body));
    *reply.status_mut() = status;
    let fields = reply.headers_mut();
    fields.insert(CONTENT_TYPE, content_type);
    if let Some(content_range) = content_range {
        fields.insert(CONTENT_RANGE, content_range);
    }
    reply
}

/// How long a user's browser or a downstream cache may keep a value: no
/// longer than this node does. `None` for a value that never expires.
fn cache_control(expiry: Expiry) -> Option<HeaderValue> {
    let left = expiry.remaining()?;
    if left.is_zero() {
        return Some(HeaderValue::from_static("no-store"));
    }
    let max_age = format!("max-age={}", left.as_secs());
    // Digits and ASCII letters are always a valid header value.
    Some(HeaderValue::from_str(&max_age).expect("ASCII header value"))
}
