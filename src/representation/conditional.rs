//! The preconditions of a get (RFC 9110 §13), evaluated in §13.2.2's
//! order against the selected representation's ETag: `If-Match` (strong
//! comparison, 412 when it fails), then `If-None-Match` (weak comparison,
//! 304 when it matches). Values have no `Last-Modified`, so
//! `If-Unmodified-Since` and `If-Modified-Since` are ignored, as §13.1.3
//! and §13.1.4 ask of a resource without a modification date; `If-Range`
//! belongs to ranges (`range`).

use hyper::header::{HeaderMap, IF_MATCH, IF_NONE_MATCH};

use super::etag::{list_matches, ETag, ListMatch};

/// What the preconditions of a GET or HEAD decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precondition {
    /// Answer as if there were none.
    Proceed,
    /// `304 Not Modified`: the client's copy is current.
    NotModified,
    /// `412 Precondition Failed`.
    Failed,
}

/// Evaluates a GET's or HEAD's preconditions; called only when the
/// answer would otherwise be a 2xx (§13.2.1).
pub(crate) fn evaluate(headers: &HeaderMap, etag: &ETag) -> Precondition {
    if list_matches(headers.get_all(IF_MATCH).iter(), etag, true) == ListMatch::DoesNot {
        return Precondition::Failed;
    }
    match list_matches(headers.get_all(IF_NONE_MATCH).iter(), etag, false) {
        ListMatch::Matches => Precondition::NotModified,
        ListMatch::Absent | ListMatch::DoesNot => Precondition::Proceed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::representation::coding::Coding;
    use hyper::header::{HeaderValue, IF_MODIFIED_SINCE, IF_UNMODIFIED_SINCE};

    fn headers(fields: &[(hyper::header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn if_match_is_evaluated_before_if_none_match_and_dates_are_ignored() {
        let etag = ETag::of(b"abc", Coding::Identity);
        let own = "\"78af5f94892f3950\"";
        let date = "Sat, 05 Dec 2026 01:00:00 GMT";
        for (fields, want) in [
            (vec![], Precondition::Proceed),
            (vec![(IF_NONE_MATCH, own)], Precondition::NotModified),
            (vec![(IF_NONE_MATCH, "*")], Precondition::NotModified),
            (vec![(IF_NONE_MATCH, "\"old\"")], Precondition::Proceed),
            (vec![(IF_MATCH, own)], Precondition::Proceed),
            (vec![(IF_MATCH, "\"old\"")], Precondition::Failed),
            (
                vec![(IF_MATCH, "\"old\""), (IF_NONE_MATCH, own)],
                Precondition::Failed,
            ),
            (
                vec![(IF_MATCH, "*"), (IF_NONE_MATCH, own)],
                Precondition::NotModified,
            ),
            (vec![(IF_MODIFIED_SINCE, date)], Precondition::Proceed),
            (vec![(IF_UNMODIFIED_SINCE, date)], Precondition::Proceed),
            (
                vec![(IF_NONE_MATCH, "\"old\""), (IF_MODIFIED_SINCE, date)],
                Precondition::Proceed,
            ),
        ] {
            assert_eq!(evaluate(&headers(&fields), &etag), want, "{fields:?}");
        }
    }
}
