//! TLS, with rustls and its `ring` provider: the certificate, key and CA
//! files the flags name, and the client configurations for https origins
//! and peers; a listener's own TLS and certificate rotation are
//! [`listener`]'s (the binary's alone).

#[cfg(feature = "binary")]
pub(crate) mod listener;

use std::path::PathBuf;
use std::sync::Arc;

use rustls::crypto::ring::default_provider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
pub(crate) use tokio_rustls::TlsAcceptor;

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
    #[cfg(feature = "binary")]
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
}

/// A certificate chain and its private key (`--tls-cert`/`--tls-key`,
/// `--peer-client-cert`/`--peer-client-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub cert: FlagPath,
    pub key: FlagPath,
}

impl Identity {
    pub(crate) fn load(
        &self,
    ) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
        Ok((self.cert.certs()?, self.key.key()?))
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
