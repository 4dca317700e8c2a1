//! Byte ranges (RFC 9110 §14): which part of a value a GET's `Range`
//! asks for, whether `If-Range` lets it, and the `multipart/byteranges`
//! body several ranges are sent as.
//!
//! A `Range` this node cannot read (another unit, bad syntax, more than
//! [`MAX_RANGES`] ranges) is ignored and the whole value sent, as §14.2
//! allows; so is any range of an empty value. Ranges that overlap or
//! touch are merged, in ascending order, so a reply is never longer than
//! the value plus the parts' headers.

use std::ops::Range;

use bytes::{BufMut, Bytes, BytesMut};
use hyper::header::{HeaderMap, HeaderValue, IF_RANGE, RANGE};

use super::etag::{if_range_matches, ETag};

/// The most ranges one `Range` field may ask for; more are ignored.
pub(crate) const MAX_RANGES: usize = 64;

/// What part of a value to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selected {
    /// All of it (200).
    Whole,
    /// These ranges, ascending and disjoint (206).
    Parts(Vec<Range<usize>>),
    /// None of the ranges asked for lies within it (416).
    Unsatisfiable,
}

/// What a GET with `headers` asks for of a value of `len` bytes whose
/// ETag is `etag`.
pub(crate) fn select(headers: &HeaderMap, etag: &ETag, len: usize) -> Selected {
    let mut fields = headers.get_all(RANGE).iter();
    let (Some(field), None) = (fields.next(), fields.next()) else {
        return Selected::Whole;
    };
    if let Some(if_range) = headers.get(IF_RANGE) {
        if !if_range_matches(if_range, etag) {
            return Selected::Whole;
        }
    }
    if len == 0 {
        return Selected::Whole;
    }
    let Some(specs) = parse(field) else {
        return Selected::Whole;
    };
    let mut parts: Vec<Range<usize>> = specs
        .into_iter()
        .filter_map(|spec| spec.within(len))
        .collect();
    if parts.is_empty() {
        return Selected::Unsatisfiable;
    }
    parts.sort_by_key(|part| part.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(parts.len());
    for part in parts {
        match merged.last_mut() {
            Some(last) if part.start <= last.end => last.end = last.end.max(part.end),
            _ => merged.push(part),
        }
    }
    Selected::Parts(merged)
}

/// One range-spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-last` or `first-` (to the end).
    From(u64, Option<u64>),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

impl Spec {
    /// The bytes of a value of `len` (> 0) bytes it covers, if any.
    fn within(self, len: usize) -> Option<Range<usize>> {
        let len64 = len as u64;
        match self {
            Spec::From(first, _) if first >= len64 => None,
            Spec::From(first, last) => {
                let end = last.map_or(len64, |last| last.saturating_add(1).min(len64));
                Some(first as usize..end as usize)
            }
            Spec::Suffix(0) => None,
            Spec::Suffix(n) => Some((len64 - n.min(len64)) as usize..len),
        }
    }
}

/// `bytes=spec, spec, ...`; `None` for anything else.
fn parse(field: &HeaderValue) -> Option<Vec<Spec>> {
    let text = field.to_str().ok()?;
    let (unit, set) = text.trim().split_once('=')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = Vec::new();
    for member in set.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        if specs.len() == MAX_RANGES {
            return None;
        }
        let (first, last) = member.split_once('-')?;
        let number = |digits: &str| -> Option<u64> {
            (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse().unwrap_or(u64::MAX))
        };
        specs.push(match (first, last) {
            ("", suffix) => Spec::Suffix(number(suffix)?),
            (first, "") => Spec::From(number(first)?, None),
            (first, last) => {
                let (first, last) = (number(first)?, number(last)?);
                if last < first {
                    return None;
                }
                Spec::From(first, Some(last))
            }
        });
    }
    (!specs.is_empty()).then_some(specs)
}

/// `Content-Range` of one part: `bytes first-last/len`.
pub(crate) fn content_range(part: &Range<usize>, len: usize) -> HeaderValue {
    let text = format!("bytes {}-{}/{len}", part.start, part.end - 1);
    // Digits, a space, `-` and `/` are a valid header value.
    HeaderValue::from_str(&text).expect("ASCII header value")
}

/// `Content-Range` of a 416: `bytes */len`.
pub(crate) fn unsatisfied_range(len: usize) -> HeaderValue {
    // Digits and ASCII punctuation are a valid header value.
    HeaderValue::from_str(&format!("bytes */{len}")).expect("ASCII header value")
}

/// The `multipart/byteranges` body of `parts` of `value` (each part with
/// its `Content-Type` and `Content-Range`), and the reply's
/// `Content-Type`. The boundary appears nowhere in the value.
pub(crate) fn multipart(
    value: &[u8],
    parts: &[Range<usize>],
    content_type: &HeaderValue,
    etag: &ETag,
) -> (Bytes, HeaderValue) {
    let mut boundary = format!("{:x}", etag_seed(etag));
    while memchr::memmem::find(value, boundary.as_bytes()).is_some() {
        boundary.push('0');
    }
    let mut body = BytesMut::new();
    for part in parts {
        body.put_slice(b"\r\n--");
        body.put_slice(boundary.as_bytes());
        body.put_slice(b"\r\nContent-Type: ");
        body.put_slice(content_type.as_bytes());
        body.put_slice(b"\r\nContent-Range: ");
        body.put_slice(content_range(part, value.len()).as_bytes());
        body.put_slice(b"\r\n\r\n");
        body.put_slice(&value[part.clone()]);
    }
    body.put_slice(b"\r\n--");
    body.put_slice(boundary.as_bytes());
    body.put_slice(b"--\r\n");
    let content_type = format!("multipart/byteranges; boundary={boundary}");
    // Hex digits and ASCII letters are a valid header value.
    let content_type = HeaderValue::from_str(&content_type).expect("ASCII header value");
    (body.freeze(), content_type)
}

/// A boundary's start: the ETag's hash, so it is the same on every node.
fn etag_seed(etag: &ETag) -> u64 {
    let value = etag.header_value();
    super::etag::hash(value.as_bytes())
}

// `vec![0..2]` is meant: one range, as a reply's list of parts.
#[allow(clippy::single_range_in_vec_init)]
#[cfg(test)]
mod tests {
    use super::*;
    use crate::representation::coding::Coding;

    fn ask(range: &str, len: usize) -> Selected {
        let mut headers = HeaderMap::new();
        headers.insert(RANGE, HeaderValue::from_str(range).unwrap());
        select(&headers, &ETag::of(b"v", Coding::Identity), len)
    }

    #[test]
    fn one_range_of_each_form() {
        use Selected::*;
        assert_eq!(ask("bytes=0-1", 10), Parts(vec![0..2]));
        assert_eq!(ask("bytes=3-", 10), Parts(vec![3..10]));
        assert_eq!(ask("bytes=-4", 10), Parts(vec![6..10]));
        assert_eq!(ask("bytes=-40", 10), Parts(vec![0..10]));
        assert_eq!(ask("bytes=5-400", 10), Parts(vec![5..10]));
        assert_eq!(ask("BYTES = 9-9", 10), Whole, "no spaces around =");
        assert_eq!(ask("Bytes=9-9", 10), Parts(vec![9..10]));
        assert_eq!(ask("bytes=10-", 10), Unsatisfiable);
        assert_eq!(ask("bytes=10-20", 10), Unsatisfiable);
        assert_eq!(ask("bytes=-0", 10), Unsatisfiable);
        assert_eq!(ask("bytes=99999999999999999999999-", 10), Unsatisfiable);
        assert_eq!(ask("bytes=0-", 0), Whole, "an empty value is sent whole");
    }

    #[test]
    fn ranges_it_cannot_read_are_ignored() {
        for ignored in [
            "items=0-1",
            "bytes=",
            "bytes=a-b",
            "bytes=5-1",
            "bytes=-",
            "bytes=1-2-3",
            "0-1",
        ] {
            assert_eq!(ask(ignored, 10), Selected::Whole, "{ignored}");
        }
        let many = format!("bytes={}", vec!["0-0"; MAX_RANGES + 1].join(","));
        assert_eq!(ask(&many, 10), Selected::Whole);
    }

    #[test]
    fn several_ranges_are_merged_in_order_and_unsatisfiable_ones_dropped() {
        use Selected::*;
        assert_eq!(ask("bytes=6-7, 0-1", 10), Parts(vec![0..2, 6..8]));
        assert_eq!(ask("bytes=0-4,2-6,-1", 10), Parts(vec![0..7, 9..10]));
        assert_eq!(ask("bytes=0-1,2-3", 10), Parts(vec![0..4]), "touching");
        assert_eq!(ask("bytes=0-1,50-60", 10), Parts(vec![0..2]));
        let many = format!("bytes={}", vec!["0-0"; MAX_RANGES].join(","));
        assert_eq!(ask(&many, 10), Parts(vec![0..1]));
    }

    #[test]
    fn if_range_lets_ranges_through_only_for_the_current_strong_tag() {
        let etag = ETag::of(b"v", Coding::Identity);
        let mut headers = HeaderMap::new();
        headers.insert(RANGE, HeaderValue::from_static("bytes=0-1"));
        headers.insert(IF_RANGE, etag.header_value());
        assert_eq!(select(&headers, &etag, 10), Selected::Parts(vec![0..2]));
        headers.insert(IF_RANGE, HeaderValue::from_static("\"old\""));
        assert_eq!(select(&headers, &etag, 10), Selected::Whole);
        headers.insert(
            IF_RANGE,
            HeaderValue::from_static("Sat, 05 Dec 2026 01:00:00 GMT"),
        );
        assert_eq!(select(&headers, &etag, 10), Selected::Whole);
    }

    #[test]
    fn several_parts_are_one_multipart_body() {
        let etag = ETag::of(b"0123456789", Coding::Identity);
        let content_type = HeaderValue::from_static("text/plain");
        let (body, reply_type) = multipart(b"0123456789", &[0..2, 8..10], &content_type, &etag);
        let boundary = reply_type
            .to_str()
            .unwrap()
            .strip_prefix("multipart/byteranges; boundary=")
            .unwrap();
        let want = format!(
            "\r\n--{b}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01\
             \r\n--{b}\r\nContent-Type: text/plain\r\nContent-Range: bytes 8-9/10\r\n\r\n89\
             \r\n--{b}--\r\n",
            b = boundary
        );
        assert_eq!(String::from_utf8(body.to_vec()).unwrap(), want);
        // A value holding the boundary gets a longer one.
        let (_, longer) = multipart(boundary.as_bytes(), &[0..1, 3..4], &content_type, &etag);
        assert_ne!(longer, reply_type);
    }
}
