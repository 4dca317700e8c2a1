//! A listener's TLS, for the binary's `--tls-cert` and friends: the
//! server configuration with its client-certificate rule, and certificate
//! rotation. A listener's certificate is held by a [`ReloadingCert`],
//! which every new handshake asks for the current key; [`watch_reloads`]
//! re-reads the files when their modification time or size changes
//! (checked every second) and on SIGHUP. Connections already open keep
//! the session they negotiated, so rotation drops nothing. A pair that
//! cannot be loaded (half written, key not matching the certificate) is
//! logged and the old one kept.

use std::fs;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use rustls::crypto::ring::default_provider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::signal::unix::{signal, SignalKind};

use super::{roots, FlagPath, Identity, TlsAcceptor, TlsError};

/// How often certificate files are checked for changes.
const RELOAD_POLL: Duration = Duration::from_secs(1);

impl FlagPath {
    fn stamp(&self) -> Option<(SystemTime, u64)> {
        let meta = fs::metadata(&self.path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }
}

impl Identity {
    fn certified_key(&self) -> Result<CertifiedKey, TlsError> {
        let (certs, key) = self.load()?;
        let certified = CertifiedKey::from_der(certs, key, &default_provider()).map_err(|e| {
            self.key
                .error(format!("does not fit {}: {e}", self.cert.flag))
        })?;
        Ok(certified)
    }
}

/// How a listener treats client certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// None are asked for.
    Off,
    /// Verified when offered; the handshake succeeds without one (the
    /// server then refuses the peer API on that connection).
    Optional,
    /// The handshake fails without a valid one.
    Required,
}

/// A listener's TLS: its acceptor and the certificate it serves.
#[derive(Clone)]
pub(crate) struct ServerTls {
    pub acceptor: TlsAcceptor,
    pub cert: Arc<ReloadingCert>,
    pub client_auth: ClientAuth,
}

impl ServerTls {
    /// Serves `identity`, verifying client certificates against
    /// `client_ca` as `client_auth` says.
    pub(crate) fn new(
        identity: &Identity,
        client_ca: Option<&FlagPath>,
        client_auth: ClientAuth,
    ) -> Result<ServerTls, TlsError> {
        let cert = Arc::new(ReloadingCert::load(identity.clone())?);
        let provider = Arc::new(default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match (client_auth, client_ca) {
            (ClientAuth::Off, _) | (_, None) => builder.with_no_client_auth(),
            (_, Some(ca)) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots(Some(ca))?),
                    provider,
                );
                let verifier = if client_auth == ClientAuth::Optional {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                builder.with_client_cert_verifier(verifier.build().map_err(|e| ca.error(e))?)
            }
        };
        let mut config = builder.with_cert_resolver(cert.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            cert,
            client_auth,
        })
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert", &self.cert.identity.cert.path)
            .field("client_auth", &self.client_auth)
            .finish()
    }
}

/// The certificate a listener serves, swapped when its files change.
#[derive(Debug)]
pub(crate) struct ReloadingCert {
    identity: Identity,
    current: ArcSwap<CertifiedKey>,
    /// The files' (mtime, size) when last read.
    stamps: Mutex<[Option<(SystemTime, u64)>; 2]>,
}

impl ReloadingCert {
    fn load(identity: Identity) -> Result<ReloadingCert, TlsError> {
        let stamps = [identity.cert.stamp(), identity.key.stamp()];
        let current = identity.certified_key()?;
        Ok(ReloadingCert {
            identity,
            current: ArcSwap::from_pointee(current),
            stamps: Mutex::new(stamps),
        })
    }

    /// Re-reads the files if `force` or if either changed since last read.
    pub(crate) fn reload(&self, force: bool) {
        let stamps = [self.identity.cert.stamp(), self.identity.key.stamp()];
        {
            let mut seen = self.stamps.lock();
            if !force && *seen == stamps {
                return;
            }
            *seen = stamps;
        }
        match self.identity.certified_key() {
            Ok(key) => {
                self.current.store(Arc::new(key));
                tracing::info!(cert = %self.identity.cert.path.display(), "certificate reloaded");
            }
            Err(e) => tracing::warn!(error = %e, "certificate not reloaded; serving the old one"),
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

/// Reloads `certs` when their files change and on SIGHUP, forever.
pub(crate) async fn watch_reloads(certs: Vec<Arc<ReloadingCert>>) {
    if certs.is_empty() {
        return;
    }
    let mut hangup = signal(SignalKind::hangup()).ok();
    let mut tick = tokio::time::interval(RELOAD_POLL);
    loop {
        let force = tokio::select! {
            _ = tick.tick() => false,
            Some(()) = async { hangup.as_mut()?.recv().await } => {
                tracing::info!("SIGHUP: reloading certificates");
                true
            }
        };
        for cert in &certs {
            cert.reload(force);
        }
    }
}
