//! TLS on the main listener: rustls on the aws-lc-rs provider, TLS 1.2 and 1.3, ALPN
//! `http/1.1` (the server loop speaks HTTP/1.1 only).
//!
//! The certificate and key come from PEM files through a [`CertStore`], a
//! `ResolvesServerCert` holding the current pair behind a lock: [`Tls::reload`] re-reads the
//! files and swaps the pair, so new handshakes get the new certificate while connections
//! already open keep the session they negotiated. A pair that does not load (unreadable,
//! not PEM, key not matching the certificate) is refused and the old pair stays.
//!
//! With `client_ca_file`, every handshake asks for a client certificate, accepts a connection
//! without one, and refuses a handshake whose certificate does not chain to one of those CAs
//! (webpki rules: validity period, key usage, name constraints). Routes then decide whether a
//! verified certificate is required. The connection's verified certificate is summarised by
//! [`fingerprint`] (SHA-256 of the end-entity certificate, base64url: RFC 8705's `x5t#S256`).
//!
//! This module must never put private key bytes in an error, a log or Debug output, and never
//! accept a client certificate that was not verified by rustls.

use std::path::Path;
use std::sync::{Arc, RwLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ConfigError, TlsSection};

/// The server certificate in force, swapped whole on reload.
pub struct CertStore {
    current: RwLock<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("certificate_sha256", &self.fingerprint())
            .finish_non_exhaustive()
    }
}

impl CertStore {
    fn get(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, key: CertifiedKey) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(key);
    }

    /// The served end-entity certificate's [`fingerprint`].
    pub fn fingerprint(&self) -> Option<String> {
        self.get().cert.first().map(|c| fingerprint(c))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

/// SHA-256 of a DER certificate, base64url without padding (RFC 8705 `x5t#S256`).
pub fn fingerprint(cert: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, cert))
}

/// The listener's TLS state: the rustls configuration (fixed at start) and its certificate
/// store (reloadable).
#[derive(Debug)]
pub struct Tls {
    section: TlsSection,
    provider: Arc<CryptoProvider>,
    certs: Arc<CertStore>,
    config: Arc<ServerConfig>,
}

impl Tls {
    pub fn new(section: &TlsSection) -> Result<Self, ConfigError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs = Arc::new(CertStore {
            current: RwLock::new(Arc::new(load_pair(section, &provider)?)),
        });
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ConfigError(format!("tls: {e}")))?;
        let builder = match &section.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let roots = load_roots(path)?;
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| ConfigError(format!("tls.client_ca_file: {e}")))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(certs.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            section: section.clone(),
            provider,
            certs,
            config: Arc::new(config),
        })
    }

    /// A listener that asks every client for a certificate, accepts a connection without one,
    /// and accepts any well-formed certificate whose key signed the handshake, leaving the
    /// question of trust to the application: `serve` validates a client's chain against its
    /// tenant's CA set, or its key against its registered JWKS (RFC 8705 section 2), and binds
    /// tokens to the certificate's thumbprint, for which possession of the key is what counts.
    /// A listener built this way must never treat a certificate as trusted by itself.
    pub fn with_deferred_client_certificates(section: &TlsSection) -> Result<Self, ConfigError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certs = Arc::new(CertStore {
            current: RwLock::new(Arc::new(load_pair(section, &provider)?)),
        });
        let verifier = Arc::new(DeferredClientCertVerifier {
            provider: provider.clone(),
        });
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| ConfigError(format!("tls: {e}")))?
            .with_client_cert_verifier(verifier)
            .with_cert_resolver(certs.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            section: section.clone(),
            provider,
            certs,
            config: Arc::new(config),
        })
    }

    /// An acceptor offering only these ALPN protocols (for a server loop that speaks fewer
    /// than the gateway's); it shares the certificate store, so reloads reach it too.
    pub fn acceptor_with_alpn(&self, alpn: &[&[u8]]) -> tokio_rustls::TlsAcceptor {
        let mut config = (*self.config).clone();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.clone())
    }

    pub fn certs(&self) -> &CertStore {
        &self.certs
    }

    /// Re-reads the certificate and key files; on failure the served pair stays.
    pub fn reload(&self) -> Result<(), ConfigError> {
        let pair = load_pair(&self.section, &self.provider)?;
        self.certs.set(pair);
        Ok(())
    }
}

fn load_pair(section: &TlsSection, provider: &CryptoProvider) -> Result<CertifiedKey, ConfigError> {
    let chain = load_certs(&section.cert_file, "tls.cert_file")?;
    let key = PrivateKeyDer::from_pem_file(&section.key_file).map_err(|e| {
        // The PEM parser's other errors quote input lines; for a key file say only what failed.
        let why = match e {
            rustls_pki_types::pem::Error::Io(io) => io.to_string(),
            rustls_pki_types::pem::Error::NoItemsFound => "no private key found".to_owned(),
            _ => "not a PEM private key".to_owned(),
        };
        ConfigError(format!(
            "tls.key_file {}: {why}",
            section.key_file.display()
        ))
    })?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        ConfigError(format!(
            "tls: the key in {} does not fit the certificate in {}: {e}",
            section.key_file.display(),
            section.cert_file.display()
        ))
    })
}

fn load_certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let bad = |e: String| ConfigError(format!("{what} {}: {e}", path.display()));
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate found".into()));
    }
    Ok(certs)
}

fn load_roots(path: &Path) -> Result<RootCertStore, ConfigError> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(path, "tls.client_ca_file")? {
        roots
            .add(c)
            .map_err(|e| ConfigError(format!("tls.client_ca_file {}: {e}", path.display())))?;
    }
    Ok(roots)
}

/// Checks that the client holds the key of the certificate it sent (the handshake signature),
/// and that the certificate parses, but not who issued it: see
/// [`Tls::with_deferred_client_certificates`].
#[derive(Debug)]
struct DeferredClientCertVerifier {
    provider: Arc<CryptoProvider>,
}

impl rustls::server::danger::ClientCertVerifier for DeferredClientCertVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        rustls::server::ParsedCertificate::try_from(end_entity)?;
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
