//! How a listener serves a node: its connection and body limits, its TLS,
//! and which APIs it answers. [`ServeOptions`]' defaults are the binary's
//! flags' defaults, which `serve` uses; the binary builds its listeners'
//! options from its flags through the same type.

use std::sync::Arc;
use std::time::Duration;

use crate::http::routes::body::DEFAULT_BODY_READ_TIMEOUT;
use crate::http::routes::Apis;
#[cfg(feature = "binary")]
use crate::tls::listener::{ClientAuth, ServerTls};
use crate::tls::TlsAcceptor;
use crate::units::limits;

/// How long a client may take to send a request's headers, unless the
/// options say otherwise (`--header-read-timeout`).
const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How [`serve_with`](crate::serve_with) serves a node, built from
/// [`ServeOptions::new`] (the defaults [`serve`](crate::serve) uses, which
/// are the `groupcached` command's) by chaining the options to change.
/// Each number is taken into the range the command's flag allows.
///
/// ```
/// use std::time::Duration;
///
/// let options = groupcached::ServeOptions::new()
///     .max_connections(10_000)
///     .header_read_timeout(Duration::from_secs(5))
///     .body_read_timeout(Duration::from_secs(30));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ServeOptions {
    /// Most connections open at once; `None`: half the open-file limit.
    pub(crate) max_connections: Option<usize>,
    pub(crate) header_read_timeout: Duration,
    pub(crate) body_read_timeout: Duration,
    pub(crate) tls: Option<ListenerTls>,
    pub(crate) apis: Apis,
}

/// A listener's TLS, as its connections use it.
#[derive(Clone)]
pub(crate) struct ListenerTls {
    pub(crate) acceptor: TlsAcceptor,
    /// A connection without a client certificate is refused the peer API
    /// (`--peer-client-ca` on a shared listener, where certificates are
    /// optional for users).
    pub(crate) peers_need_cert: bool,
}

impl ServeOptions {
    /// The defaults: plain HTTP, the user and peer APIs, at most half the
    /// process's open-file limit in connections (more wait in the kernel's
    /// backlog), 10 s for a request's headers and 10 s for its body.
    pub fn new() -> ServeOptions {
        ServeOptions {
            max_connections: None,
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: DEFAULT_BODY_READ_TIMEOUT,
            tls: None,
            apis: Apis::All,
        }
    }

    /// Most client connections open at once (`--max-connections`: 1 to
    /// 10,000,000); more wait to be accepted.
    pub fn max_connections(mut self, max: usize) -> ServeOptions {
        let (low, high) = limits::MAX_CONNECTIONS;
        let (low, high) = (as_count(low), as_count(high));
        self.max_connections = Some(max.clamp(low, high));
        self
    }

    /// How long a client may take to send a request's headers
    /// (`--header-read-timeout`: 100 ms to 10 min); then the connection is
    /// closed.
    pub fn header_read_timeout(mut self, timeout: Duration) -> ServeOptions {
        let (low, high) = limits::HEADER_READ_TIMEOUT;
        self.header_read_timeout = timeout.clamp(low, high);
        self
    }

    /// How long a client may take to send a write's body once its headers
    /// are in (`--body-read-timeout`: 100 ms to 10 min); then the request
    /// is answered 408 and the connection closed.
    pub fn body_read_timeout(mut self, timeout: Duration) -> ServeOptions {
        let (low, high) = limits::BODY_READ_TIMEOUT;
        self.body_read_timeout = timeout.clamp(low, high);
        self
    }

    /// Serves HTTPS with `config`: each connection's handshake runs on its
    /// own task, within 10 s. The server speaks HTTP/1.1 only, so leave the
    /// config's `alpn_protocols` empty or `http/1.1`. Every connection the
    /// config lets in may use the peer API: to keep it to peers, require
    /// client certificates in the config, or serve users and peers on
    /// separate listeners.
    ///
    /// ```
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::sync::Arc;
    ///
    /// let issued = rcgen::generate_simple_self_signed(["localhost".to_string()])?;
    /// let key = rustls::pki_types::PrivateKeyDer::try_from(issued.signing_key.serialize_der())?;
    /// let provider = Arc::new(rustls::crypto::ring::default_provider());
    /// let config = rustls::ServerConfig::builder_with_provider(provider)
    ///     .with_safe_default_protocol_versions()?
    ///     .with_no_client_auth()
    ///     .with_single_cert(vec![issued.cert.der().clone()], key)?;
    /// let options = groupcached::ServeOptions::new().tls(Arc::new(config));
    /// # Ok(())
    /// # }
    /// ```
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> ServeOptions {
        self.tls = Some(ListenerTls {
            acceptor: TlsAcceptor::from(config),
            peers_need_cert: false,
        });
        self
    }

    #[cfg(feature = "binary")]
    /// The binary's TLS for a listener (`--tls-cert` and friends), whose
    /// client-certificate rule also decides who may use the peer API.
    pub(crate) fn server_tls(mut self, tls: Option<ServerTls>) -> ServeOptions {
        self.tls = tls.map(|tls| ListenerTls {
            acceptor: tls.acceptor,
            peers_need_cert: tls.client_auth == ClientAuth::Optional,
        });
        self
    }

    /// Which APIs the listener answers (`--peer-listen` splits them).
    #[cfg(feature = "binary")]
    pub(crate) fn apis(mut self, apis: Apis) -> ServeOptions {
        self.apis = apis;
        self
    }
}

/// A count from the flags' ranges as a `usize`, saturating on targets
/// where it does not fit.
fn as_count(count: u64) -> usize {
    usize::try_from(count).unwrap_or(usize::MAX)
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions::new()
    }
}

impl std::fmt::Debug for ServeOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServeOptions")
            .field("max_connections", &self.max_connections)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("tls", &self.tls.is_some())
            .field("apis", &self.apis)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_the_flags_defaults() {
        let options = ServeOptions::default();
        assert_eq!(options.max_connections, None);
        assert_eq!(options.header_read_timeout, Duration::from_secs(10));
        assert_eq!(options.body_read_timeout, Duration::from_secs(10));
        assert!(options.tls.is_none());
        assert_eq!(options.apis, Apis::All);
    }

    #[test]
    fn numbers_are_taken_into_the_flags_ranges() {
        let options = ServeOptions::new()
            .max_connections(0)
            .header_read_timeout(Duration::ZERO)
            .body_read_timeout(Duration::from_secs(86_400));
        assert_eq!(options.max_connections, Some(1));
        assert_eq!(options.header_read_timeout, Duration::from_millis(100));
        assert_eq!(options.body_read_timeout, Duration::from_secs(600));
        let options = ServeOptions::new().max_connections(500);
        assert_eq!(options.max_connections, Some(500));
    }
}
