//! TLS, with rustls and its `ring` provider: the client configurations for
//! https origins and peers, the server configuration of each listener, and
//! certificate rotation.
//!
//! A listener's certificate is held by a [`ReloadingCert`], which every new
//! handshake asks for the current key; [`watch_reloads`] re-reads the files
//! when their modification time or size changes (checked every second) and
//! on SIGHUP. Connections already open keep the session they negotiated, so
//! rotation drops nothing. A pair that cannot be loaded (half written, key
//! not matching the certificate) is logged and the old one kept.

use std::fs;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use std::time::{Duration, SystemTime};

use rustls::crypto::ring::default_provider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::signal::unix::{signal, SignalKind};
pub(crate) use tokio_rustls::TlsAcceptor;

/// How often certificate files are checked for changes.
const RELOAD_POLL: Duration = Duration::from_secs(1);

/// A certificate, key or CA file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TlsError {
    #[error("{flag} {path}: {error}")]
    File {
        flag: &'static str,
        path: String,
        error: String,
    },
    #[error("{flag} {path}: no PEM {what} in the file")]
    Empty {
        flag: &'static str,
        path: String,
        what: &'static str,
    },
    #[error("{0}")]
    Config(String),
}

/// A file named by a flag, so errors can say which flag was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FlagPath {
    pub flag: &'static str,
    pub path: PathBuf,
}

impl FlagPath {
    pub(crate) fn new(flag: &'static str, path: PathBuf) -> FlagPath {
        FlagPath { flag, path }
    }

    fn error(&self, error: impl std::fmt::Display) -> TlsError {
        TlsError::File {
            flag: self.flag,
            path: self.path.display().to_string(),
            error: error.to_string(),
        }
    }

    fn certs(&self) -> Result<Vec<CertificateDer<'static>>, TlsError> {
        let certs = CertificateDer::pem_file_iter(&self.path)
            .map_err(|e| self.error(e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))?;
        if certs.is_empty() {
            return Err(TlsError::Empty {
                flag: self.flag,
                path: self.path.display().to_string(),
                what: "certificates",
            });
        }
        Ok(certs)
    }

    fn key(&self) -> Result<PrivateKeyDer<'static>, TlsError> {
        PrivateKeyDer::from_pem_file(&self.path).map_err(|e| self.error(e))
    }

    fn stamp(&self) -> Option<(SystemTime, u64)> {
        let meta = fs::metadata(&self.path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    }
}

/// A certificate chain and its private key (`--tls-cert`/`--tls-key`,
/// `--peer-client-cert`/`--peer-client-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub cert: FlagPath,
    pub key: FlagPath,
}

impl Identity {
    fn load(&self) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        Ok((self.cert.certs()?, self.key.key()?))
    }

    fn certified_key(&self) -> Result<CertifiedKey, TlsError> {
        let (certs, key) = self.load()?;
        let certified = CertifiedKey::from_der(certs, key, &default_provider()).map_err(|e| {
            self.key
                .error(format!("does not fit {}: {e}", self.cert.flag))
        })?;
        Ok(certified)
    }
}

/// Trust anchors: the PEM bundle `ca`, or the system's roots without one.
fn roots(ca: Option<&FlagPath>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(ca) => {
            for cert in ca.certs()? {
                roots.add(cert).map_err(|e| ca.error(e))?;
            }
        }
        None => {
            // Unreadable system certificates only mean fewer roots; with
            // none, https requests fail with an unknown-issuer error.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    Ok(roots)
}

/// The client side of https origins (`identity` = None) and peers.
pub(crate) fn client_config(
    ca: Option<&FlagPath>,
    identity: Option<&Identity>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(Arc::new(default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(ca)?);
    // No ALPN here: hyper-rustls sets the protocols it speaks.
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let (certs, key) = identity.load()?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| identity.key.error(e))?
        }
    };
    Ok(Arc::new(config))
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
