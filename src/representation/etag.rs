//! A value's strong validator (RFC 9110 §8.8.3) and the entity-tag lists
//! requests compare with it (`If-None-Match`, `If-Match`, `If-Range`).
//!
//! The tag is the XXH3-64 hash of the bytes sent, in hex, with the content
//! coding after it (`"8c3f…"`, `"51a0…-gzip"`): every node gives the same
//! tag for the same bytes, whoever loaded them, and a compressed copy has
//! a tag of its own, as a different representation must.

use hyper::header::HeaderValue;
use xxhash_rust::xxh3::xxh3_64;

use super::coding::Coding;

/// The strong entity tag of bytes sent in a coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ETag {
    hash: u64,
    coding: Coding,
}

/// The longest tag: quotes, 16 hex digits, `-`, the longest coding name.
const MAX_LEN: usize = 2 + 16 + 1 + 8;

impl ETag {
    /// The tag of `bytes` as sent in `coding` (they are the coded bytes).
    #[cfg(test)]
    pub(crate) fn of(bytes: &[u8], coding: Coding) -> ETag {
        ETag::from_hash(hash(bytes), coding)
    }

    /// The tag of bytes whose [`hash`] is `hash`.
    pub(crate) fn from_hash(hash: u64, coding: Coding) -> ETag {
        ETag { hash, coding }
    }

    /// The tag as sent: `"hex"` or `"hex-coding"`.
    fn write(&self, out: &mut [u8; MAX_LEN]) -> usize {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out[0] = b'"';
        for (i, slot) in out[1..17].iter_mut().enumerate() {
            *slot = HEX[(self.hash >> (60 - 4 * i) & 0xf) as usize];
        }
        let mut len = 17;
        if self.coding != Coding::Identity {
            let name = self.coding.name().as_bytes();
            out[len] = b'-';
            out[len + 1..len + 1 + name.len()].copy_from_slice(name);
            len += 1 + name.len();
        }
        out[len] = b'"';
        len + 1
    }

    /// The `ETag` field's value.
    pub(crate) fn header_value(&self) -> HeaderValue {
        let mut out = [0; MAX_LEN];
        let len = self.write(&mut out);
        // Quotes, hex digits, `-` and a coding's letters are valid.
        HeaderValue::from_bytes(&out[..len]).expect("an ETag is visible ASCII")
    }
}

/// The hash a tag is made of.
pub(crate) fn hash(bytes: &[u8]) -> u64 {
    xxh3_64(bytes)
}

/// An entity-tag in a request: weak or not, and its quoted opaque part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tag<'a> {
    weak: bool,
    opaque: &'a [u8],
}

impl Tag<'_> {
    /// Whether it matches `own` (a tag as this node sends it): weakly
    /// (`W/"x"` matches `"x"`), or strongly (both strong).
    fn matches(self, own: &[u8], strong: bool) -> bool {
        self.opaque == own && !(strong && self.weak)
    }
}

/// How a list of entity-tags compares with a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListMatch {
    /// No such field in the request.
    Absent,
    /// `*`, or a member that matches.
    Matches,
    /// No member matches, or the field is malformed.
    DoesNot,
}

/// How the fields (one list, however many lines) of a request's
/// `If-None-Match` (weak comparison) or `If-Match` (strong) compare with
/// `etag`.
pub(crate) fn list_matches<'a>(
    fields: impl Iterator<Item = &'a HeaderValue>,
    etag: &ETag,
    strong: bool,
) -> ListMatch {
    let mut written = [0; MAX_LEN];
    let len = etag.write(&mut written);
    let own = &written[..len];
    let mut answer = ListMatch::Absent;
    for field in fields {
        let value = field.as_bytes();
        if trim(value) == b"*" {
            return ListMatch::Matches;
        }
        let Some(tags) = parse_list(value) else {
            return ListMatch::DoesNot;
        };
        if tags.iter().any(|tag| tag.matches(own, strong)) {
            return ListMatch::Matches;
        }
        answer = ListMatch::DoesNot;
    }
    answer
}

/// Whether an `If-Range` field names exactly `etag`, strongly (RFC 9110
/// §13.1.5). A date never matches: values have no `Last-Modified`.
pub(crate) fn if_range_matches(field: &HeaderValue, etag: &ETag) -> bool {
    let mut written = [0; MAX_LEN];
    let len = etag.write(&mut written);
    let own = &written[..len];
    match parse_list(field.as_bytes()).as_deref() {
        Some([tag]) => tag.matches(own, true),
        _ => false,
    }
}

/// `#entity-tag`: empty members are skipped; `None` if malformed.
fn parse_list(mut rest: &[u8]) -> Option<Vec<Tag<'_>>> {
    let mut tags = Vec::new();
    loop {
        rest = trim_start(rest);
        while let Some(after) = rest.strip_prefix(b",") {
            rest = trim_start(after);
        }
        if rest.is_empty() {
            return Some(tags);
        }
        let (weak, quoted) = match rest.strip_prefix(b"W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let body = quoted.strip_prefix(b"\"")?;
        let end = body.iter().position(|&b| b == b'"')?;
        if !body[..end]
            .iter()
            .all(|&b| b == 0x21 || b >= 0x23 && b != 0x7f)
        {
            return None;
        }
        tags.push(Tag {
            weak,
            opaque: &quoted[..end + 2],
        });
        rest = trim_start(&body[end + 1..]);
        if !rest.is_empty() && !rest.starts_with(b",") {
            return None;
        }
    }
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ' && b != b'\t');
    &bytes[start.unwrap_or(bytes.len())..]
}

fn trim(bytes: &[u8]) -> &[u8] {
    let bytes = trim_start(bytes);
    let end = bytes.iter().rposition(|&b| b != b' ' && b != b'\t');
    &bytes[..end.map_or(0, |e| e + 1)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(text: &str) -> HeaderValue {
        HeaderValue::from_str(text).unwrap()
    }

    fn compare(fields: &[&str], etag: &ETag, strong: bool) -> ListMatch {
        let values: Vec<HeaderValue> = fields.iter().map(|f| field(f)).collect();
        list_matches(values.iter(), etag, strong)
    }

    #[test]
    fn a_tag_is_the_hash_of_the_bytes_sent_and_names_their_coding() {
        let tag = ETag::of(b"abc", Coding::Identity);
        // XXH3-64 of "abc" (the algorithm's published test value).
        assert_eq!(tag.header_value(), "\"78af5f94892f3950\"");
        assert_eq!(
            ETag::of(b"abc", Coding::Gzip).header_value(),
            "\"78af5f94892f3950-gzip\""
        );
        assert_eq!(
            ETag::of(b"", Coding::Zstd).header_value(),
            "\"2d06800538d394c2-zstd\""
        );
        assert_ne!(ETag::of(b"abd", Coding::Identity), tag);
    }

    #[test]
    fn if_none_match_compares_weakly_and_if_match_strongly() {
        let tag = ETag::of(b"abc", Coding::Identity);
        let own = "\"78af5f94892f3950\"";
        let weak = "W/\"78af5f94892f3950\"";
        assert_eq!(compare(&[], &tag, false), ListMatch::Absent);
        assert_eq!(compare(&[own], &tag, false), ListMatch::Matches);
        assert_eq!(compare(&[weak], &tag, false), ListMatch::Matches);
        assert_eq!(compare(&[weak], &tag, true), ListMatch::DoesNot);
        assert_eq!(compare(&["*"], &tag, true), ListMatch::Matches);
        assert_eq!(compare(&[" * "], &tag, false), ListMatch::Matches);
        let list = format!("\"x\", ,W/\"y\" , {own}");
        assert_eq!(compare(&[&list], &tag, false), ListMatch::Matches);
        assert_eq!(
            compare(&["\"x\"", own], &tag, true),
            ListMatch::Matches,
            "two lines, one list"
        );
        assert_eq!(compare(&["\"x\", \"y\""], &tag, false), ListMatch::DoesNot);
        assert_eq!(
            compare(&["\"78af5f94892f3950-gzip\""], &tag, false),
            ListMatch::DoesNot
        );
        for malformed in [
            "78af5f94892f3950",
            "\"78af5f94892f3950",
            "w/\"78af5f94892f3950\"",
            "\"a\" \"b\"",
        ] {
            assert_eq!(
                compare(&[malformed], &tag, false),
                ListMatch::DoesNot,
                "{malformed}"
            );
        }
    }

    #[test]
    fn if_range_needs_one_strong_tag_that_matches() {
        let tag = ETag::of(b"abc", Coding::Identity);
        assert!(if_range_matches(&field("\"78af5f94892f3950\""), &tag));
        assert!(!if_range_matches(&field("W/\"78af5f94892f3950\""), &tag));
        assert!(!if_range_matches(&field("\"other\""), &tag));
        assert!(!if_range_matches(
            &field("Sat, 05 Dec 2026 01:00:00 GMT"),
            &tag
        ));
    }
}
