//! The TLS flags (`--tls-cert`, `--peer-ca`, `--peer-client-ca`, ...)
//! loaded into the client and server configurations the process uses:
//! every file is read and parsed at start, so a bad one is a flag error.

use std::path::PathBuf;
use std::sync::Arc;

use crate::cmd::cli::Args;
use crate::tls::listener::{ClientAuth, ServerTls};
use crate::tls::{FlagPath, Identity, TlsError};

/// A TLS flag that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TlsFlagError {
    #[error(transparent)]
    Files(#[from] TlsError),
    #[error(
        "--peer-client-ca needs a TLS peer API: --tls-cert, or --peer-tls-cert with --peer-listen"
    )]
    ClientCaWithoutTls,
}

/// The TLS flags, loaded: every file was read and parsed at start.
#[derive(Debug, Clone)]
pub(crate) struct TlsSettings {
    /// For https origins.
    pub origin_client: Arc<rustls::ClientConfig>,
    /// For https peers, with the client certificate if one was given.
    pub peer_client: Arc<rustls::ClientConfig>,
    /// The main listener's TLS, if it serves HTTPS.
    pub main: Option<ServerTls>,
    /// The peer listener's TLS, if there is one and it serves HTTPS.
    pub peer: Option<ServerTls>,
}

impl Args {
    /// Loads every TLS file the flags name, so a bad one is a flag error.
    pub(crate) fn tls_settings(&self) -> Result<TlsSettings, TlsFlagError> {
        let path = |flag, path: &Option<PathBuf>| path.clone().map(|p| FlagPath::new(flag, p));
        let identity = |cert: Option<FlagPath>, key: Option<FlagPath>| {
            Some(Identity {
                cert: cert?,
                key: key?,
            })
        };
        let main_identity = identity(
            path("--tls-cert", &self.tls_cert),
            path("--tls-key", &self.tls_key),
        );
        let peer_identity = identity(
            path("--peer-tls-cert", &self.peer_tls_cert),
            path("--peer-tls-key", &self.peer_tls_key),
        )
        .or_else(|| main_identity.clone());
        let client_identity = identity(
            path("--peer-client-cert", &self.peer_client_cert),
            path("--peer-client-key", &self.peer_client_key),
        );
        let client_ca = path("--peer-client-ca", &self.peer_client_ca);
        // With one listener, users need no certificate: the handshake
        // accepts clients without one and the peer API refuses them.
        let (main_auth, peer_auth) = match (&client_ca, self.peer_listen) {
            (None, _) => (ClientAuth::Off, ClientAuth::Off),
            (Some(_), None) => (ClientAuth::Optional, ClientAuth::Off),
            (Some(_), Some(_)) => (ClientAuth::Off, ClientAuth::Required),
        };
        let peer_api_tls = if self.peer_listen.is_some() {
            peer_identity.is_some()
        } else {
            main_identity.is_some()
        };
        if client_ca.is_some() && !peer_api_tls {
            return Err(TlsFlagError::ClientCaWithoutTls);
        }
        let server = |identity: Option<Identity>, auth| {
            identity
                .map(|identity| ServerTls::new(&identity, client_ca.as_ref(), auth))
                .transpose()
        };
        Ok(TlsSettings {
            origin_client: crate::tls::client_config(
                path("--origin-ca", &self.origin_ca).as_ref(),
                None,
            )?,
            peer_client: crate::tls::client_config(
                path("--peer-ca", &self.peer_ca).as_ref(),
                client_identity.as_ref(),
            )?,
            main: server(main_identity, main_auth)?,
            peer: match self.peer_listen {
                Some(_) => server(peer_identity, peer_auth)?,
                None => None,
            },
        })
    }
}
