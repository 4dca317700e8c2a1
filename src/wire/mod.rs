//! Everything golang/groupcache puts on the wire, in one place: how keys
//! are escaped in peer URLs, how a peer request path is decoded and split
//! into group and key, the protobuf `GetResponse` body (with the forks'
//! `expire` field for values that expire), and the forks' write bodies: the
//! protobuf `SetRequest` of a PUT and groupcache-go's JSON remove-keys list.
//!
//! The rules are golang/groupcache's `HTTPPool` ones (its `http.go`): the
//! server percent-decodes the path only (a `+` stays a `+`) and splits
//! at the first `/` after the base path; the key keeps every later byte.

mod messages;
mod path;

use hyper::header::{HeaderName, HeaderValue};

pub use messages::encode_response;
pub(crate) use messages::{
    decode_remove_keys, decode_response, decode_set_request, encode_remove_keys,
    encode_set_request, max_response_len, ResponsePart, WriteBodyError,
};
pub use path::{escape, unescape, PathError};
pub(crate) use path::{split_path, PathParts};

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

#[cfg(test)]
mod tests {
    use super::messages::*;
    use super::path::*;
    use super::*;
    use crate::value::{Expiry, Value};
    use bytes::Bytes;

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
    use super::messages::*;
    use super::path::*;
    use super::*;
    use crate::value::{Expiry, Value};
    use bytes::Bytes;
    use proptest::prelude::*;
    use prost::Message;

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
