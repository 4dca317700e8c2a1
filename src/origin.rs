//! Origins: where a group loads a value that no cache holds.
//!
//! [`Getter`] is the trait a group calls on a miss (golang's `Getter`); a
//! Rust program embedding groupcached implements it for its own loader (see
//! `examples/embedded.rs`). [`HttpOrigin`] is the getter behind the
//! `--group NAME=URL` flag: it GETs a URL template with `{group}` and `{key}`
//! replaced by their percent-encoded values. Origin 200 is the value, 404 a
//! not-found error, anything else an error carrying the origin's status.
//! A 200's caching headers give the value its expiry (see [`crate::freshness`]).

use std::future::Future;
use std::pin::Pin;
use std::time::SystemTime;

use hyper::{StatusCode, Uri};

use crate::freshness::{self, TtlPolicy};
use crate::http_client::{status_text, HostLimit, HttpClient};
use crate::value::Value;
use crate::wire;

/// A boxed future, so getters can be stored as trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a getter produced no value. The text is what peers and users see.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GetterError {
    /// The origin has no such key (user API: 404).
    #[error("{0}")]
    NotFound(String),
    /// Loading failed (user API: 502).
    #[error("{0}")]
    Failed(String),
}

/// Loads the value for a key that is in no cache, with its expiry.
pub trait Getter: Send + Sync + 'static {
    fn get<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<Value, GetterError>>;
}

/// Any `Fn(key) -> future` is a getter. The future may yield `Bytes` (a
/// value that never expires) or a [`Value`] with an expiry.
impl<F, Fut, V> Getter for F
where
    F: Fn(Vec<u8>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<V, GetterError>> + Send + 'static,
    V: Into<Value>,
{
    fn get<'a>(&'a self, key: &'a [u8]) -> BoxFuture<'a, Result<Value, GetterError>> {
        let loading = self(key.to_vec());
        Box::pin(async move { loading.await.map(Into::into) })
    }
}

/// A bad `--group` origin template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("origin URL must start with http:// or https://: {0}")]
    NotHttp(String),
    #[error("origin URL must contain {{key}}: {0}")]
    NoKey(String),
    #[error("origin URL is not a valid URL: {0}")]
    Invalid(String),
}

/// A getter that loads from an HTTP origin.
pub struct HttpOrigin {
    /// The template with `{group}` already filled in, split at each `{key}`.
    pieces: Vec<String>,
    http: HttpClient,
    limit: HostLimit,
    ttl: TtlPolicy,
}

impl HttpOrigin {
    /// Parses `template` for `group`; at most `max_conns` requests to the
    /// origin run at once, and `ttl` turns its caching headers into expiries.
    pub fn new(
        group: &str,
        template: &str,
        http: HttpClient,
        max_conns: usize,
        ttl: TtlPolicy,
    ) -> Result<HttpOrigin, TemplateError> {
        if !template.starts_with("http://") && !template.starts_with("https://") {
            return Err(TemplateError::NotHttp(template.to_string()));
        }
        if !template.contains("{key}") {
            return Err(TemplateError::NoKey(template.to_string()));
        }
        let filled = template.replace("{group}", &wire::escape(group.as_bytes()));
        let origin = HttpOrigin {
            pieces: filled.split("{key}").map(str::to_string).collect(),
            http,
            limit: HttpClient::host_limit(max_conns),
            ttl,
        };
        origin
            .url(b"probe")
            .map_err(|_| TemplateError::Invalid(template.to_string()))?;
        Ok(origin)
    }

    fn url(&self, key: &[u8]) -> Result<Uri, hyper::http::uri::InvalidUri> {
        self.pieces.join(&wire::escape(key)).parse()
    }

    async fn load(&self, key: &[u8]) -> Result<Value, GetterError> {
        // `new` proved the template parses, and escaped keys add only
        // unreserved characters and `%XX`, so this cannot fail; map it anyway.
        let uri = self
            .url(key)
            .map_err(|e| GetterError::Failed(format!("origin request failed: {e}")))?;
        let request_time = SystemTime::now();
        match self.http.get_with_headers(uri, &self.limit).await {
            Ok((StatusCode::OK, headers, body)) => {
                let response_time = SystemTime::now();
                let lifetime = freshness::lifetime(&headers, request_time, response_time);
                Ok(Value::new(body, self.ttl.expiry(lifetime, response_time)))
            }
            Ok((status, _, _)) => {
                let text = format!("origin returned {}", status_text(status));
                if status == StatusCode::NOT_FOUND {
                    Err(GetterError::NotFound(text))
                } else {
                    Err(GetterError::Failed(text))
                }
            }
            Err(e) => Err(GetterError::Failed(format!("origin request failed: {e}"))),
        }
    }
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
        HttpOrigin::new(
            "my group",
            template,
            HttpClient::new(Duration::from_secs(1), 1),
            4,
            TtlPolicy::default(),
        )
    }

    #[test]
    fn template_fills_escaped_group_and_key() {
        let o = origin("http://127.0.0.1:9/{group}/v?k={key}&again={key}").unwrap();
        assert_eq!(
            o.url(b"a b/c").unwrap().to_string(),
            "http://127.0.0.1:9/my%20group/v?k=a%20b%2Fc&again=a%20b%2Fc"
        );
        assert_eq!(
            o.url(&[0xff]).unwrap().to_string(),
            "http://127.0.0.1:9/my%20group/v?k=%FF&again=%FF"
        );
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
