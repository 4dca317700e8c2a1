//! The rules a node's settings must follow, one set for embedders and
//! the binary: [`NodeBuilder::check`] and the [`BuildError`] that names
//! the setting it found wrong.

use std::time::Duration;

use super::{Loader, NewGroup, NodeBuilder};
use crate::origin::TemplateError;
use crate::units::limits;
use crate::wire::{self, base_path_is_valid, InvalidPeerUrl};

/// What a group name may not be or contain: `/` would split the peer
/// API's paths, spaces and control characters its log lines and URLs.
pub(crate) const GROUP_NAME_RULE: &str =
    "may not be empty or contain '/', spaces or control characters";

/// What a base path must be (see [`base_path_is_valid`]).
pub(crate) const BASE_PATH_RULE: &str =
    "must be /SEGMENT/.../ of A-Z a-z 0-9 - . _ ~ and not start with /cache/";

/// Why [`NodeBuilder::build`] made no node. Each variant names the setting
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

impl NodeBuilder {
    /// Checks every setting: [`NodeBuilder::build`] runs it, and the
    /// binary's flags run it before anything is bound (without the node's
    /// own URL when `--self` is not given: the listener gives it later).
    pub(crate) fn check(&self) -> Result<(), BuildError> {
        wire::check_peer_urls(self.self_url.iter().chain(&self.peers))?;
        if !base_path_is_valid(&self.base_path) {
            return Err(BuildError::BasePath(self.base_path.clone()));
        }
        self.check_groups()?;
        in_range(count(self.replicas), limits::REPLICAS, number("replicas"))?;
        let max_conns = count(self.max_conns_per_peer);
        let max_conns_range = limits::MAX_CONNS_PER_PEER;
        in_range(max_conns, max_conns_range, number("max_conns_per_peer"))?;
        if self.fetch_timeout.is_zero() {
            return Err(BuildError::ZeroTimeout);
        }
        let probe_timeout = self.probe_timeout;
        in_range(
            probe_timeout,
            limits::PROBE_TIMEOUT,
            duration("probe_timeout"),
        )?;
        in_range(self.stale_wait, limits::STALE_WAIT, duration("stale_wait"))
    }
}

impl NodeBuilder {
    /// The groups' rules, group by group in the order they were given:
    /// the binary checks each `--group` as it reads it.
    pub(crate) fn check_groups(&self) -> Result<(), BuildError> {
        for (i, group) in self.groups.iter().enumerate() {
            group.check(&self.groups[..i])?;
        }
        Ok(())
    }
}

impl NewGroup {
    /// Its name (new among `earlier` groups), origin, size and TTLs.
    fn check(&self, earlier: &[NewGroup]) -> Result<(), BuildError> {
        let name = &self.name;
        let bad_char = |c: char| c == '/' || c.is_whitespace() || c.is_control();
        if name.is_empty() || name.contains(bad_char) {
            return Err(BuildError::GroupName(name.clone()));
        }
        if earlier.iter().any(|g| g.name == *name) {
            return Err(BuildError::DuplicateGroup(name.clone()));
        }
        if let Loader::Origin(Err(error)) = &self.loader {
            return Err(BuildError::Origin {
                group: name.clone(),
                error: error.clone(),
            });
        }
        in_range(self.cache_bytes, limits::CACHE_BYTES, number("cache_bytes"))?;
        let ttl = &self.ttl;
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
}

/// A count as the ranges of [`limits`] write it.
fn count(value: usize) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// `Ok` if `value` lies in `min..=max`, else the error `out_of_range`
/// makes of the value and the bounds.
fn in_range<T: PartialOrd>(
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
fn number(option: &'static str) -> impl FnOnce(u64, u64, u64) -> BuildError {
    move |value, min, max| BuildError::OutOfRange {
        option,
        value,
        min,
        max,
    }
}

/// [`BuildError::DurationOutOfRange`] for the duration or TTL `option`.
fn duration(option: &'static str) -> impl FnOnce(Duration, Duration, Duration) -> BuildError {
    move |value, min, max| BuildError::DurationOutOfRange {
        option,
        value,
        min,
        max,
    }
}
