//! TLS on the main listener (`[tls] cert` and `key`): the legacy SDK speaks only HTTPS to its realtime host, so
//! Callbox must be able to terminate TLS itself when no proxy stands in front of it.
//!
//! - rustls with the aws-lc-rs provider; TLS 1.2 and 1.3; ALPN `http/1.1` only (the accept loop speaks HTTP/1.1,
//!   WebSocket upgrades included).
//! - The certificate chain and key are read and checked against each other at start-up ([`ServerTls::load`]): a
//!   missing file, a file without PEM, or a key that is not the certificate's stops `callbox serve` before it
//!   binds, never at the first connection.
//! - [`ServerTls::reload`] (on SIGHUP, [`reload_on_hangup`]) reads both files again and swaps the pair in for new
//!   handshakes; when the new files are bad, the pair in use stays and a warning says why. Connections already
//!   open keep the certificate they were handshaken with.
//! - Handshakes run in the accept loop under the header timeout ([`crate::listener`]).

use crate::config::TlsConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use tokio_rustls::TlsAcceptor;

/// Why TLS could not be set up; each message is one line naming the file or key at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(String);

/// The certificate and key in force, swapped whole by [`ServerTls::reload`].
#[derive(Debug)]
struct CurrentCertificate(RwLock<Arc<CertifiedKey>>);

impl CurrentCertificate {
    fn get(&self) -> Arc<CertifiedKey> {
        // A poisoned lock still holds a whole pair: writers only ever replace the Arc.
        Arc::clone(&self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn set(&self, key: Arc<CertifiedKey>) {
        *self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = key;
    }
}

impl ResolvesServerCert for CurrentCertificate {
    // One certificate for every server name: the operator's certificate must cover the names clients use
    // (`listen`'s host name and `legacy.realtime_host`).
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// TLS for the main listener: the acceptor handed to the accept loop and the files it reloads from.
#[derive(Debug)]
pub struct ServerTls {
    cert_path: PathBuf,
    key_path: PathBuf,
    provider: Arc<CryptoProvider>,
    current: Arc<CurrentCertificate>,
    server: Arc<ServerConfig>,
}

impl ServerTls {
    /// TLS as configured: `None` when neither `tls.cert` nor `tls.key` is set; an error when only one is, or when
    /// the files cannot be read, hold no PEM certificate or key, or do not belong together.
    pub fn load(config: &TlsConfig) -> Result<Option<Self>, TlsError> {
        let (cert_path, key_path) = match (&config.cert, &config.key) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (cert.clone(), key.clone()),
            (Some(_), None) => {
                return Err(TlsError(
                    "tls.cert is set but tls.key is not: TLS needs both (--tls-cert and --tls-key, or \
                     CALLBOX_TLS__CERT and CALLBOX_TLS__KEY)"
                        .into(),
                ))
            }
            (None, Some(_)) => {
                return Err(TlsError(
                    "tls.key is set but tls.cert is not: TLS needs both (--tls-cert and --tls-key, or \
                     CALLBOX_TLS__CERT and CALLBOX_TLS__KEY)"
                        .into(),
                ))
            }
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let current = Arc::new(CurrentCertificate(RwLock::new(read_pair(&cert_path, &key_path, &provider)?)));
        let mut server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|error| TlsError(format!("TLS set-up: {error}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&current) as Arc<dyn ResolvesServerCert>);
        // HTTP/1.1 only: the accept loop has no HTTP/2. A client that offers ALPN without it is refused in the
        // handshake rather than left guessing.
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some(Self { cert_path, key_path, provider, current, server: Arc::new(server) }))
    }

    /// The acceptor for the accept loop (cheap to clone; it always serves the pair in force).
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.server))
    }

    /// Reads the certificate and key files again and serves them from the next handshake on. When they are bad,
    /// the pair in force stays and the error says why.
    pub fn reload(&self) -> Result<(), TlsError> {
        let pair = read_pair(&self.cert_path, &self.key_path, &self.provider)?;
        self.current.set(pair);
        Ok(())
    }

    /// The end-entity certificate in force (DER), for tests and logs.
    pub fn certificate(&self) -> Option<CertificateDer<'static>> {
        self.current.get().cert.first().cloned()
    }
}

/// Reads and checks one certificate chain and its key.
fn read_pair(cert_path: &Path, key_path: &Path, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let read = |what: &str, path: &Path| {
        std::fs::read(path).map_err(|error| TlsError(format!("cannot read the TLS {what} {}: {error}", path.display())))
    };
    let cert_pem = read("certificate", cert_path)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| TlsError(format!("the TLS certificate {} is not valid PEM: {error}", cert_path.display())))?;
    if chain.is_empty() {
        return Err(TlsError(format!(
            "the TLS certificate {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            cert_path.display()
        )));
    }
    let key_pem = read("key", key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| {
        TlsError(format!(
            "the TLS key {} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {error}",
            key_path.display()
        ))
    })?;
    let pair = CertifiedKey::from_der(chain, key, provider).map_err(|error| {
        TlsError(format!(
            "the TLS certificate {} and key {} cannot be used together: {error}",
            cert_path.display(),
            key_path.display()
        ))
    })?;
    Ok(Arc::new(pair))
}

/// Reloads `tls` on every SIGHUP until the process ends (see [`ServerTls::reload`]). Installing the handler
/// replaces SIGHUP's default (ending the process), so it is installed only when TLS is on; call it before the
/// server announces itself, so that a SIGHUP sent right after the `listening` line is a reload.
#[cfg(unix)]
pub fn reload_on_hangup(tls: Arc<ServerTls>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let mut hangups = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!(
                    cert = %tls.cert_path.display(),
                    key = %tls.key_path.display(),
                    "SIGHUP: reloaded the TLS certificate and key"
                ),
                Err(error) => tracing::warn!(%error, "SIGHUP: kept the TLS certificate in use"),
            }
        }
    }))
}
