//! The rules a node's settings must follow, one set for embedders and
//! the binary: each setting's check, and the [`BuildError`] that names the
//! setting found wrong. `NodeBuilder::check` applies them.

use std::time::Duration;

use crate::group::freshness::TtlPolicy;
use crate::origin::TemplateError;
use crate::peers::url::{base_path_is_valid, InvalidPeerUrl};
use crate::representation::media_type::MediaTypeError;
use crate::units::limits;

/// What a group name may not be or contain: `/` would split the peer
/// API's paths, spaces and control characters its log lines and URLs.
pub(crate) const GROUP_NAME_RULE: &str =
    "may not be empty or contain '/', spaces or control characters";

/// What a base path must be (see [`base_path_is_valid`]).
pub(crate) const BASE_PATH_RULE: &str =
    "must be /SEGMENT/.../ of A-Z a-z 0-9 - . _ ~ and not start with /cache/";

/// Why `NodeBuilder::build` made no node. Each variant names the setting
/// that is wrong.
///
/// ```
/// use groupcached::{BuildError, NodeBuilder};
/// let error = NodeBuilder::new("http://10.0.0.1:8080").base_path("no-slashes").build();
/// assert!(matches!(error, Err(BuildError::BasePath(_))));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A peer URL (or the node's own) is not `http://host:port`.
    #[error(transparent)]
    Url(#[from] InvalidPeerUrl),
    /// The base path is not `/SEGMENT/.../` or shadows the user API.
    #[error("base path {0:?}: {rule}", rule = BASE_PATH_RULE)]
    BasePath(String),
    /// A group name is empty or contains `/`, a space or a control
    /// character.
    #[error("group name {0:?}: {rule}", rule = GROUP_NAME_RULE)]
    GroupName(String),
    /// Two groups have the same name.
    #[error("group {0:?}: a group of that name was already given")]
    DuplicateGroup(String),
    /// A group's origin template cannot be used.
    #[error("group {group:?}: {error}")]
    Origin {
        /// The group's name.
        group: String,
        /// What is wrong with its template.
        error: TemplateError,
    },
    /// A group's content type is not a media type.
    #[error("group {group:?}: content type {value:?}: {error}")]
    ContentType {
        /// The group's name.
        group: String,
        /// The content type given.
        value: String,
        /// What is wrong with it.
        error: MediaTypeError,
    },
    /// A group setting (`content_type`, `compress`) names no group.
    #[error("{option}: no group named {group:?}")]
    NoSuchGroup {
        /// The builder method.
        option: &'static str,
        /// The name given.
        group: String,
    },
    /// A number outside the range the binary's flag of that name allows.
    #[error("{option}: {value} is not between {min} and {max}")]
    OutOfRange {
        /// The builder method.
        option: &'static str,
        /// The value given.
        value: u64,
        /// The smallest value allowed.
        min: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// A duration or TTL outside the range the binary's flag of that name
    /// allows.
    #[error("{option}: {value:?} is not between {min:?} and {max:?}")]
    DurationOutOfRange {
        /// The builder method, or the TTL's name.
        option: &'static str,
        /// The value given.
        value: Duration,
        /// The shortest value allowed.
        min: Duration,
        /// The longest value allowed.
        max: Duration,
    },
    /// A zero fetch timeout would fail every peer fetch.
    #[error("fetch_timeout: must be more than zero")]
    ZeroTimeout,
}

/// A group name: not empty, and without `/`, whitespace or control
/// characters.
pub(super) fn check_group_name(name: &str) -> Result<(), BuildError> {
    let bad_char = |c: char| c == '/' || c.is_whitespace() || c.is_control();
    if name.is_empty() || name.contains(bad_char) {
        return Err(BuildError::GroupName(name.to_string()));
    }
    Ok(())
}

/// A base path (see [`base_path_is_valid`]).
pub(super) fn check_base_path(base_path: &str) -> Result<(), BuildError> {
    if !base_path_is_valid(base_path) {
        return Err(BuildError::BasePath(base_path.to_string()));
    }
    Ok(())
}

/// Every TTL of a group's policy is at most the longest TTL.
pub(super) fn check_ttls(ttl: &TtlPolicy) -> Result<(), BuildError> {
    let ttls = [
        ("default_ttl", ttl.default_ttl),
        ("max_ttl", ttl.max_ttl),
        ("stale_if_error", ttl.stale_if_error),
        ("stale_while_revalidate", ttl.stale_while_revalidate),
        ("negative_ttl", ttl.negative_ttl),
        ("negative_max_ttl", ttl.negative_max_ttl),
    ];
    for (option, value) in ttls {
        if let Some(value) = value {
            in_range(value, (Duration::ZERO, limits::MAX_TTL), duration(option))?;
        }
    }
    Ok(())
}

/// A count as the ranges of [`limits`] write it.
pub(super) fn count(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// `Ok` if `value` lies in `min..=max`, else the error `out_of_range`
/// makes of the value and the bounds.
pub(super) fn in_range<T: PartialOrd>(
    value: T,
    (min, max): (T, T),
    out_of_range: impl FnOnce(T, T, T) -> BuildError,
) -> Result<(), BuildError> {
    if min <= value && value <= max {
        Ok(())
    } else {
        Err(out_of_range(value, min, max))
    }
}

/// [`BuildError::OutOfRange`] for the count or size `option`.
pub(super) fn number(option: &'static str) -> impl FnOnce(u64, u64, u64) -> BuildError {
    move |value, min, max| BuildError::OutOfRange {
        option,
        value,
        min,
        max,
    }
}

/// [`BuildError::DurationOutOfRange`] for the duration or TTL `option`.
pub(super) fn duration(
    option: &'static str,
) -> impl FnOnce(Duration, Duration, Duration) -> BuildError {
    move |value, min, max| BuildError::DurationOutOfRange {
        option,
        value,
        min,
        max,
    }
}
