//! RFC 9211's `Cache-Status`: what a user's reply says about where its
//! answer came from.
//!
//! `groupcached; hit` from this node's main cache (`detail=hot` from its
//! copy of another owner's value, `detail=not-found` from a remembered
//! not-found); `groupcached; fwd=miss` with `detail=peer` or
//! `detail=origin` for an answer fetched or loaded just now; and for an
//! expired value served in its grace, `groupcached; hit;
//! detail=stale-while-revalidate` (a reload runs in the background),
//! `groupcached; fwd=stale; fwd-status=502; detail=stale-if-error` (its
//! reload just failed with that status; without `fwd-status` when the
//! reload had not ended within the stale wait), `groupcached; hit;
//! detail=stale-if-error` (a recent reload failed and the next is not due),
//! or `groupcached; fwd=stale; detail=peer` (the owner served it stale).
//! `ttl=` is the whole seconds the answer stays fresh, negative once
//! stale; it is left out for values that never expire and errors that are
//! not remembered (a not-found remembered just now has it already).

use hyper::header::{HeaderName, HeaderValue};
use hyper::StatusCode;

use crate::group::Source;
use crate::value::{now_nanos, Expiry};

/// The header's name.
pub(crate) const CACHE_STATUS: HeaderName = HeaderName::from_static("cache-status");

/// The `Cache-Status` of an answer from `source` whose value (or
/// remembered not-found) expires at `expiry`, if it has one. `fwd_status`
/// is the status of a failed reload that a stale value answers for.
pub(crate) fn cache_status(
    source: &Source,
    expiry: Option<Expiry>,
    fwd_status: Option<StatusCode>,
) -> HeaderValue {
    let stale_from_peer = expiry.is_some_and(is_stale);
    let status = match source {
        Source::Main => "groupcached; hit",
        Source::Hot => "groupcached; hit; detail=hot",
        Source::NotFound(_) => "groupcached; hit; detail=not-found",
        Source::Peer if stale_from_peer => "groupcached; fwd=stale; detail=peer",
        Source::Peer => "groupcached; fwd=miss; detail=peer",
        Source::Origin | Source::OriginNotFound(_) => "groupcached; fwd=miss; detail=origin",
        Source::Revalidating => "groupcached; hit; detail=stale-while-revalidate",
        Source::StaleOnError(None) => "groupcached; hit; detail=stale-if-error",
        Source::StaleOnError(Some(_)) | Source::StaleOnSlowLoad => {
            "groupcached; fwd=stale; detail=stale-if-error"
        }
    };
    // A remembered not-found has its own expiry, from the first answer on.
    let expiry = match source {
        Source::NotFound(until) | Source::OriginNotFound(until) => Some(*until),
        _ => expiry,
    };
    let fwd_status = fwd_status.filter(|_| matches!(source, Source::StaleOnError(Some(_))));
    let ttl = expiry.and_then(ttl_seconds);
    if fwd_status.is_none() && ttl.is_none() {
        // Most values never expire: no allocation for them.
        return HeaderValue::from_static(status);
    }
    let mut text = status.to_string();
    if let Some(fwd_status) = fwd_status {
        text.push_str(&format!("; fwd-status={}", fwd_status.as_u16()));
    }
    if let Some(ttl) = ttl {
        text.push_str(&format!("; ttl={ttl}"));
    }
    // ASCII words, digits and a minus sign only.
    HeaderValue::from_str(&text).expect("a valid header value")
}

/// True for a value whose expiry has passed, other than one that was
/// never cacheable.
fn is_stale(expiry: Expiry) -> bool {
    expiry != Expiry::UNCACHEABLE && expiry.is_expired()
}

/// Whole seconds of freshness left, rounded down (negative once stale);
/// 0 for a value that was never cacheable, `None` for one that never
/// expires.
fn ttl_seconds(expiry: Expiry) -> Option<i64> {
    match expiry {
        Expiry::Never => None,
        Expiry::UNCACHEABLE => Some(0),
        Expiry::At(at) => Some(at.saturating_sub(now_nanos()).div_euclid(1_000_000_000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::GroupError;
    use crate::value::now_nanos;

    fn secs(n: i64) -> Expiry {
        // Half a second past the whole second, so rounding down is stable.
        Expiry::At(now_nanos() + n * 1_000_000_000 + 500_000_000)
    }

    fn status(source: Source, expiry: Option<Expiry>, fwd: Option<StatusCode>) -> String {
        let value = cache_status(&source, expiry, fwd);
        value.to_str().unwrap().to_string()
    }

    #[test]
    fn each_source_says_what_happened() {
        let never = Some(Expiry::Never);
        assert_eq!(status(Source::Main, never, None), "groupcached; hit");
        assert_eq!(
            status(Source::Main, Some(secs(41)), None),
            "groupcached; hit; ttl=41"
        );
        assert_eq!(
            status(Source::Hot, never, None),
            "groupcached; hit; detail=hot"
        );
        assert_eq!(
            status(Source::Origin, Some(Expiry::UNCACHEABLE), None),
            "groupcached; fwd=miss; detail=origin; ttl=0"
        );
        assert_eq!(
            status(Source::Origin, None, None),
            "groupcached; fwd=miss; detail=origin"
        );
        assert_eq!(
            status(Source::Peer, Some(secs(9)), None),
            "groupcached; fwd=miss; detail=peer; ttl=9"
        );
        assert_eq!(
            status(Source::Peer, Some(secs(-4)), None),
            "groupcached; fwd=stale; detail=peer; ttl=-4"
        );
        assert_eq!(
            status(Source::NotFound(secs(30)), Some(secs(30)), None),
            "groupcached; hit; detail=not-found; ttl=30"
        );
        assert_eq!(
            status(Source::OriginNotFound(secs(30)), None, None),
            "groupcached; fwd=miss; detail=origin; ttl=30",
            "a not-found remembered just now says how long"
        );
        assert_eq!(
            status(Source::Revalidating, Some(secs(-2)), None),
            "groupcached; hit; detail=stale-while-revalidate; ttl=-2"
        );
        assert_eq!(
            status(Source::StaleOnError(None), Some(secs(-7)), None),
            "groupcached; hit; detail=stale-if-error; ttl=-7"
        );
        let failed = Source::StaleOnError(Some(GroupError::Panicked));
        assert_eq!(
            status(failed, Some(secs(-1)), Some(StatusCode::BAD_GATEWAY)),
            "groupcached; fwd=stale; detail=stale-if-error; fwd-status=502; ttl=-1"
        );
        assert_eq!(
            status(Source::StaleOnSlowLoad, Some(secs(-3)), None),
            "groupcached; fwd=stale; detail=stale-if-error; ttl=-3",
            "a reload still running has no status yet"
        );
        assert_eq!(
            status(Source::Main, Some(secs(5)), Some(StatusCode::BAD_GATEWAY)),
            "groupcached; hit; ttl=5",
            "fwd-status only for a failed reload"
        );
    }
}
