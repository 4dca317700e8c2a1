//! How keys travel in peer URLs: golang's percent-escaping, and a peer
//! request's path decoded and split into group and key.
//!
//! The rules are golang/groupcache's `HTTPPool` ones (its `http.go`): the
//! server percent-decodes the path only (a `+` stays a `+`) and splits
//! at the first `/` after the base path; the key keeps every later byte.

use std::borrow::Cow;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::DEFAULT_BASE_PATH;

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
}
