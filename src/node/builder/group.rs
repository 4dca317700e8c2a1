//! A group as the node builder is given it: a name, a cache size, a TTL
//! policy, an embedder's getter or a `--group` origin (read once, when
//! given), and how its values are sent (content type, compression); its
//! checks, and the parts of a node it becomes.

use std::sync::Arc;

use hyper::header::HeaderValue;

use super::rules::{check_group_name, check_ttls, in_range, number, BuildError};
use crate::group::freshness::TtlPolicy;
use crate::group::getter::Getter;
use crate::group::HotPolicy;
use crate::http_client::HttpClient;
use crate::node::GroupParts;
use crate::origin::{Origin, TemplateError};
use crate::representation::media_type::{self, MediaTypeError};
use crate::representation::Representation;
use crate::units::limits;

/// A group as the builder was given it.
pub(crate) struct NewGroup {
    pub(crate) name: String,
    pub(super) cache_bytes: u64,
    pub(super) loader: Loader,
    pub(crate) ttl: TtlPolicy,
    pub(super) hot_policy: HotPolicy,
    /// How its values are sent; the content type as given, read when
    /// given (a bad one is reported by the checks).
    pub(super) content_type: Option<(String, Result<HeaderValue, MediaTypeError>)>,
    pub(super) compress: bool,
}

/// What a group loads with: an embedder's getter, or a `--group` origin,
/// read once when it was given (a bad one is reported by the checks).
pub(super) enum Loader {
    Getter(Arc<dyn Getter>),
    Origin(Result<Origin, TemplateError>),
}

impl NewGroup {
    /// A group of `name` and `cache_bytes` loading with `loader`, sending
    /// its values as raw bytes.
    pub(super) fn new(
        name: &str,
        cache_bytes: u64,
        loader: Loader,
        ttl: TtlPolicy,
        hot_policy: HotPolicy,
    ) -> NewGroup {
        NewGroup {
            name: name.to_string(),
            cache_bytes,
            loader,
            ttl,
            hot_policy,
            content_type: None,
            compress: false,
        }
    }

    /// Sends its values as `media_type` (checked when the node is built).
    pub(super) fn set_content_type(&mut self, media_type: &str) {
        self.content_type = Some((media_type.to_string(), media_type::parse(media_type)));
    }

    /// Its name (new among `earlier` groups), origin, size and TTLs.
    pub(super) fn check(&self, earlier: &[NewGroup]) -> Result<(), BuildError> {
        let name = &self.name;
        check_group_name(name)?;
        if earlier.iter().any(|g| g.name == *name) {
            return Err(BuildError::DuplicateGroup(name.clone()));
        }
        if let Loader::Origin(Err(error)) = &self.loader {
            return Err(BuildError::Origin {
                group: name.clone(),
                error: error.clone(),
            });
        }
        if let Some((value, Err(error))) = &self.content_type {
            return Err(BuildError::ContentType {
                group: name.clone(),
                value: value.clone(),
                error: error.clone(),
            });
        }
        in_range(self.cache_bytes, limits::CACHE_BYTES, number("cache_bytes"))?;
        check_ttls(&self.ttl)
    }

    /// The group with its getter: an origin's is made here, loading
    /// through the client `origin_http` gives.
    pub(super) fn into_parts(
        self,
        origin_http: impl FnOnce() -> HttpClient,
        max_conns: usize,
    ) -> Result<GroupParts, BuildError> {
        let getter = match self.loader {
            Loader::Getter(getter) => getter,
            Loader::Origin(Ok(origin)) => origin.getter(origin_http(), max_conns, self.ttl),
            Loader::Origin(Err(error)) => {
                return Err(BuildError::Origin {
                    group: self.name,
                    error,
                })
            }
        };
        let mut representation = Representation {
            compress: self.compress,
            ..Representation::default()
        };
        match self.content_type {
            Some((_, Ok(content_type))) => representation.content_type = content_type,
            Some((value, Err(error))) => {
                let group = self.name;
                return Err(BuildError::ContentType {
                    group,
                    value,
                    error,
                });
            }
            None => {}
        }
        Ok(GroupParts {
            name: self.name,
            cache_bytes: self.cache_bytes,
            getter,
            ttl: self.ttl,
            hot_policy: self.hot_policy,
            representation,
        })
    }
}
