//! Test certificates, made at test time and never committed: a [`Pki`] is
//! a fresh CA whose key lives only in memory, issuing loopback
//! certificates (`localhost`, `127.0.0.1`; usable by servers and clients)
//! into files under the cargo target's temporary directory.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// A test CA and the directory its files go to.
pub struct Pki {
    pub dir: PathBuf,
    /// The CA certificate, PEM.
    pub ca: PathBuf,
    issuer: CertifiedIssuer<'static, KeyPair>,
    issued: AtomicUsize,
}

/// A certificate and key issued by a [`Pki`], as files.
#[derive(Debug, Clone)]
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The certificate, DER, to compare with what a server presents.
    pub der: Vec<u8>,
}

impl Issued {
    /// `[cert_flag, cert, key_flag, key]` as command-line arguments.
    pub fn args(&self, cert_flag: &str, key_flag: &str) -> Vec<String> {
        vec![
            cert_flag.to_string(),
            self.cert.display().to_string(),
            key_flag.to_string(),
            self.key.display().to_string(),
        ]
    }
}

impl Pki {
    /// A new CA named `name`.
    pub fn new(name: &str) -> Pki {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        Pki::in_dir(name, &format!("pki-{}-{n}-{name}", std::process::id()))
    }

    fn in_dir(name: &str, dir: &str) -> Pki {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("groupcached test CA {name}"));
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, issuer.pem()).unwrap();
        Pki {
            dir,
            ca,
            issuer,
            issued: AtomicUsize::new(0),
        }
    }

    /// The CA every test of this process shares; the default test client
    /// trusts it and presents its [`Pki::shared_client`] certificate.
    pub fn shared() -> &'static Pki {
        static PKI: OnceLock<Pki> = OnceLock::new();
        // One directory per process, so that runs at the same time never
        // share (or overwrite) a CA. A static is never dropped: each process
        // removes those of processes that have exited instead.
        PKI.get_or_init(|| {
            remove_dead_shared_dirs();
            Pki::in_dir("shared", &format!("pki-shared-{}", std::process::id()))
        })
    }

    /// The client certificate of the default test client.
    pub fn shared_client() -> &'static Issued {
        static CLIENT: OnceLock<Issued> = OnceLock::new();
        CLIENT.get_or_init(|| Pki::shared().issue("test-client"))
    }

    /// A new certificate for `localhost` and `127.0.0.1`, written to
    /// `{name}.pem` and `{name}.key`.
    pub fn issue(&self, name: &str) -> Issued {
        let cert = self.dir.join(format!("{name}.pem"));
        let key = self.dir.join(format!("{name}.key"));
        let der = self.write(&cert, &key);
        Issued { cert, key, der }
    }

    /// Writes a new certificate and key over `cert` and `key`, each
    /// replaced at once (written aside, then renamed); the new DER.
    pub fn write(&self, cert: &Path, key: &Path) -> Vec<u8> {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("groupcached test {n}"));
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key_pair = KeyPair::generate().unwrap();
        let issued = params.signed_by(&key_pair, &self.issuer).unwrap();
        let replace = |path: &Path, text: String| {
            let aside = path.with_extension(format!("new{n}"));
            std::fs::write(&aside, text).unwrap();
            std::fs::rename(&aside, path).unwrap();
        };
        replace(key, key_pair.serialize_pem());
        replace(cert, issued.pem());
        issued.der().to_vec()
    }

    /// A rustls client configuration trusting this CA, presenting
    /// `identity` if given.
    pub fn client_config(&self, identity: Option<&Issued>) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match identity {
            None => builder.with_no_client_auth(),
            Some(identity) => {
                let (certs, key) = identity.load();
                builder.with_client_auth_cert(certs, key).unwrap()
            }
        };
        Arc::new(config)
    }

    /// A rustls server configuration serving `identity`.
    pub fn acceptor(&self, identity: &Issued) -> tokio_rustls::TlsAcceptor {
        let (certs, key) = identity.load();
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }
}

/// The crypto the node uses.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl Issued {
    /// The certificate chain and key, read from their files.
    fn load(&self) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
        let certs = CertificateDer::pem_file_iter(&self.cert).unwrap();
        let certs = certs.collect::<Result<_, _>>().unwrap();
        (certs, PrivateKeyDer::from_pem_file(&self.key).unwrap())
    }
}

/// Removes the `pki-shared-{pid}` directories of processes that are gone.
fn remove_dead_shared_dirs() {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let Ok(entries) = std::fs::read_dir(tmp) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let pid = name.to_str().and_then(|n| n.strip_prefix("pki-shared-"));
        if pid
            .is_some_and(|pid| pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists())
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The certificate the TLS server at `addr` presents now (DER), from a
/// fresh handshake trusting `pki`.
pub async fn served_cert(addr: std::net::SocketAddr, pki: &Pki) -> Result<Vec<u8>, String> {
    let connector = tokio_rustls::TlsConnector::from(pki.client_config(None));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let certs = tls
        .get_ref()
        .1
        .peer_certificates()
        .ok_or("no certificate")?;
    Ok(certs[0].to_vec())
}
