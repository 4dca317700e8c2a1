//! The HTTP origin: where a `--group NAME=URL` group loads a value that no
//! cache holds.
//!
//! [`HttpOrigin`] is the [`Getter`] behind the
//! `--group NAME=URL` flag: it GETs a URL template with `{group}` and `{key}`
//! replaced by their percent-encoded values. Origin 200 is the value, 404 a
//! not-found error, anything else an error carrying the origin's status.
//! A 200's caching headers give the value its expiry and its grace (see
//! [`crate::group::freshness`]); a 404's or 410's give the not-found its lifetime.
//!
//! A key never moves the URL outside its placeholder: escaping keeps it in
//! one path segment for origins that do not decode `%2F`, and when `{key}`
//! stands in the path, keys with a `.` or `..` segment (split at `/` or `\`)
//! are refused, so an origin that decodes the path once and then resolves
//! dot-segments (Python's `http.server`, many proxies) still stays inside it.
//!
//! [`Origin`] is a group's `ORIGIN` read once, when the node builder is
//! given it: the built-in `echo` or a parsed [`Template`]; the getter is
//! made from it when the node is built.

use std::sync::Arc;

use hyper::{StatusCode, Uri};

use crate::group::freshness::{self, Lifetime, TtlPolicy};
use crate::group::getter::{BoxFuture, Getter, GetterError};
use crate::http_client::{status_text, HostLimit, HttpClient};
use crate::value::Value;
use crate::wire;

/// Why an origin template cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The template is not an `http://` or `https://` URL.
    #[error("origin URL must start with http:// or https://: {0}")]
    NotHttp(String),
    /// The template has no `{key}` placeholder.
    #[error("origin URL must contain {{key}}: {0}")]
    NoKey(String),
    /// The template, filled in, does not parse as a URL.
    #[error("origin URL is not a valid URL: {0}")]
    Invalid(String),
}

/// Where a group loads from, as `--group NAME=ORIGIN` writes it: the
/// built-in `echo` (the value is the key) or an HTTP origin's template.
#[derive(Debug, Clone)]
pub(crate) enum Origin {
    Echo,
    Http(Template),
}

impl Origin {
    /// Reads `origin`, the `ORIGIN` of `--group NAME=ORIGIN`, for `group`.
    pub(crate) fn parse(group: &str, origin: &str) -> Result<Origin, TemplateError> {
        match origin {
            "echo" => Ok(Origin::Echo),
            template => Template::parse(group, template).map(Origin::Http),
        }
    }

    /// The getter: HTTP loads through `http`, at most `max_conns` at once,
    /// with `ttl` turning the answers' caching headers into expiries.
    pub(crate) fn getter(
        self,
        http: HttpClient,
        max_conns: usize,
        ttl: TtlPolicy,
    ) -> Arc<dyn Getter> {
        match self {
            // The echo origin sends no caching headers: only the policy applies.
            Origin::Echo => Arc::new(move |key: Vec<u8>| async move {
                let expiry = ttl.expiry(Lifetime::Unspecified, crate::value::now());
                Ok::<_, GetterError>(Value::new(key, expiry))
            }),
            Origin::Http(template) => Arc::new(HttpOrigin::new(template, http, max_conns, ttl)),
        }
    }
}

/// An origin URL template, parsed: the URL with `{group}` filled in, split
/// at each `{key}`.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pieces: Vec<String>,
    /// True when a `{key}` stands before the query: dot-segments matter.
    key_in_path: bool,
}

impl Template {
    /// Parses `template` for `group`: an http(s) URL with at least one
    /// `{key}`, which stays a valid URL whatever key fills it.
    pub(crate) fn parse(group: &str, template: &str) -> Result<Template, TemplateError> {
        if !template.starts_with("http://") && !template.starts_with("https://") {
            return Err(TemplateError::NotHttp(template.to_string()));
        }
        if !template.contains("{key}") {
            return Err(TemplateError::NoKey(template.to_string()));
        }
        let filled = template.replace("{group}", &wire::escape(group.as_bytes()));
        let path_end = filled.find(['?', '#']).unwrap_or(filled.len());
        let parsed = Template {
            key_in_path: filled[..path_end].contains("{key}"),
            pieces: filled.split("{key}").map(str::to_string).collect(),
        };
        parsed
            .url(b"probe")
            .map_err(|_| TemplateError::Invalid(template.to_string()))?;
        Ok(parsed)
    }

    fn url(&self, key: &[u8]) -> Result<Uri, hyper::http::uri::InvalidUri> {
        self.pieces.join(&wire::escape(key)).parse()
    }
}

/// A getter that loads from an HTTP origin.
pub(crate) struct HttpOrigin {
    template: Template,
    http: HttpClient,
    limit: HostLimit,
    ttl: TtlPolicy,
}

impl HttpOrigin {
    /// Loads through `template`; at most `max_conns` requests to the
    /// origin run at once, and `ttl` turns its caching headers into expiries.
    pub(crate) fn new(
        template: Template,
        http: HttpClient,
        max_conns: usize,
        ttl: TtlPolicy,
    ) -> HttpOrigin {
        HttpOrigin {
            template,
            http,
            limit: HttpClient::host_limit(max_conns),
            ttl,
        }
    }

    async fn load(&self, key: &[u8]) -> Result<Value, GetterError> {
        if self.template.key_in_path && has_dot_segment(key) {
            return Err(GetterError::BadKey(
                "key has a '.' or '..' path segment, which the origin would resolve".into(),
            ));
        }
        // `Template::parse` proved the template parses, and escaped keys add
        // only unreserved characters and `%XX`, so this cannot fail; map it anyway.
        let uri = self
            .template
            .url(key)
            .map_err(|e| GetterError::Failed(format!("origin request failed: {e}")))?;
        let request_time = crate::value::now();
        match self.http.get_with_headers(uri, &self.limit).await {
            Ok((StatusCode::OK, headers, body)) => {
                let response_time = crate::value::now();
                let lifetime = freshness::lifetime(&headers, request_time, response_time);
                let grace = self.ttl.grace(freshness::stale_directives(&headers));
                let expiry = self.ttl.expiry(lifetime, response_time);
                Ok(Value::new(body, expiry).with_grace(grace))
            }
            Ok((status, headers, _)) => {
                let text = format!("origin returned {}", status_text(status));
                if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
                    let response_time = crate::value::now();
                    let lifetime = freshness::lifetime(&headers, request_time, response_time);
                    let expiry = self.ttl.negative_expiry(lifetime, response_time);
                    Err(GetterError::NotFoundUntil(text, expiry))
                } else {
                    Err(GetterError::Failed(text))
                }
            }
            Err(e) if e.is_busy() => Err(GetterError::Busy(format!("origin request failed: {e}"))),
            Err(e) => Err(GetterError::Failed(format!("origin request failed: {e}"))),
        }
    }
}

/// True when some segment of `key`, split at `/` or `\`, is `.` or `..`:
/// once an origin decodes `%2F` (or `%5C`), such a key climbs out of its
/// placeholder.
fn has_dot_segment(key: &[u8]) -> bool {
    key.split(|&b| b == b'/' || b == b'\\')
        .any(|segment| segment == b"." || segment == b"..")
}

impl Getter for HttpOrigin {
    fn get<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<Value, GetterError>> {
        Box::pin(self.load(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn origin(template: &str) -> Result<HttpOrigin, TemplateError> {
        let template = Template::parse("my group", template)?;
        let http = HttpClient::new(Duration::from_secs(1), 1);
        Ok(HttpOrigin::new(template, http, 4, TtlPolicy::default()))
    }

    #[test]
    fn template_fills_escaped_group_and_key() {
        let o = origin("http://127.0.0.1:9/{group}/v?k={key}&again={key}").unwrap();
        assert_eq!(
            o.template.url(b"a b/c").unwrap().to_string(),
            "http://127.0.0.1:9/my%20group/v?k=a%20b%2Fc&again=a%20b%2Fc"
        );
        assert_eq!(
            o.template.url(&[0xff]).unwrap().to_string(),
            "http://127.0.0.1:9/my%20group/v?k=%FF&again=%FF"
        );
    }

    #[test]
    fn dot_segments_are_found_at_either_slash() {
        for key in [&b"."[..], b"..", b"../x", b"a/./b", b"a\\..", b"..\\secret"] {
            assert!(has_dot_segment(key), "{key:?}");
        }
        for key in [&b"..."[..], b".a", b"a..", b"a.b/c", b"%2e%2e", b""] {
            assert!(!has_dot_segment(key), "{key:?}");
        }
    }

    #[tokio::test]
    async fn keys_with_dot_segments_are_refused_in_the_path_only() {
        let in_path = origin("http://127.0.0.1:9/public/{key}").unwrap();
        assert!(matches!(
            in_path.get(b"../secret.txt").await,
            Err(GetterError::BadKey(_))
        ));
        assert!(matches!(
            in_path.get(b"..").await,
            Err(GetterError::BadKey(_))
        ));
        // In the query, `..` is data: the request is sent (and fails here
        // because nothing listens on port 9).
        let in_query = origin("http://127.0.0.1:9/v?k={key}").unwrap();
        assert!(matches!(
            in_query.get(b"..").await,
            Err(GetterError::Failed(_))
        ));
    }

    #[test]
    fn bad_templates_are_refused() {
        assert!(matches!(
            origin("ftp://x/{key}"),
            Err(TemplateError::NotHttp(_))
        ));
        assert!(matches!(
            origin("http://x/fixed"),
            Err(TemplateError::NoKey(_))
        ));
        assert!(matches!(
            origin("http://x y/{key}"),
            Err(TemplateError::Invalid(_))
        ));
    }
}
