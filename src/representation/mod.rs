//! How a value is represented to HTTP clients (RFC 9110's "selected
//! representation"): the media type a group's values are sent as
//! ([`media_type`]), the content codings a group may send them in
//! ([`coding`]), the strong validator every value carries ([`etag`]), the
//! preconditions a request may set ([`conditional`]) and the byte ranges it
//! may ask for ([`range`]).
//!
//! These are pure functions of a request's header fields and a value's
//! bytes, below every other layer: the builder checks a group's
//! [`Representation`] with them, and the user API (`http::value_reply`)
//! puts them together into a reply.

use hyper::header::HeaderValue;

pub(crate) mod coding;
pub(crate) mod conditional;
pub(crate) mod etag;
pub(crate) mod media_type;
pub(crate) mod range;

/// The `Content-Type` of a group's values unless the group sets its own.
pub(crate) const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// How a group's values are sent to users: `--content-type` and
/// `--compress`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Representation {
    /// The values' `Content-Type`.
    pub(crate) content_type: HeaderValue,
    /// Whether values are sent in a content coding the client accepts
    /// (gzip, br, zstd), with `Vary: Accept-Encoding` on every reply.
    pub(crate) compress: bool,
}

impl Default for Representation {
    fn default() -> Representation {
        Representation {
            content_type: HeaderValue::from_static(DEFAULT_CONTENT_TYPE),
            compress: false,
        }
    }
}
