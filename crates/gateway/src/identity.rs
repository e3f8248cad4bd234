//! The signed identity JWT (`X-Portcullis-Identity`): the facts of the identity headers, signed
//! by the gateway with an Ed25519 or P-256 key, so an upstream can check them itself instead of
//! trusting whoever can reach it.
//!
//! The token kind (header, claims, `typ: portcullis-identity+jwt`, the five-minute lifetime cap,
//! the JWKS whose `kid` is the key's RFC 7638 thumbprint) is the identity profile of
//! `portcullis-jose` (`profile::identity`), which also signs, with the key pair parsed once and
//! the header encoded once; its output is checked with `jsonwebtoken` in the tests. This module
//! loads the key from configuration and maps a [`Principal`] to the claims. It only signs: it
//! never parses a token, and it must never expose the private key (Debug prints `[redacted]`).

use std::time::Duration;

use portcullis_core::secret::Secret;
use portcullis_jose::profile::identity::{self, Cnf, IdentityClaims};
use portcullis_jose::Signer;
use portcullis_verify::Principal;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;

use crate::config::{ConfigError, IdentityJwtSection};

/// The JWT `typ` of identity tokens.
pub const TYP: &str = identity::TYP;
/// Where the public key is published, on the main and admin listeners.
pub const JWKS_PATH: &str = "/_portcullis/identity/jwks.json";
/// The longest lifetime allowed.
pub const MAX_LIFETIME: Duration = identity::MAX_LIFETIME;

/// A loaded identity signing key and what it signs with.
pub struct IdentitySigner {
    signer: Signer,
    kid: String,
    issuer: String,
    lifetime: u64,
    jwks: String,
}

impl std::fmt::Debug for IdentitySigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentitySigner")
            .field("kid", &self.kid)
            .field("issuer", &self.issuer)
            .field("lifetime", &self.lifetime)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Signing failed: only a failing random source (ECDSA) can cause it.
#[derive(Debug, thiserror::Error)]
#[error("identity JWT signing failed")]
pub struct SignError;

impl IdentitySigner {
    /// Reads and parses `signing_key_file`, checks the lifetime bounds.
    pub fn load(section: &IdentityJwtSection) -> Result<Self, ConfigError> {
        let path = &section.signing_key_file;
        let pem = Secret::new(std::fs::read(path).map_err(|e| {
            ConfigError(format!(
                "identity_jwt.signing_key_file {}: {e}",
                path.display()
            ))
        })?);
        Self::from_pem(pem.expose(), &section.issuer, section.lifetime).map_err(|e| {
            ConfigError(format!(
                "identity_jwt.signing_key_file {}: {}",
                path.display(),
                e.0
            ))
        })
    }

    /// From a PKCS#8 PEM private key (Ed25519 or P-256).
    pub fn from_pem(pem: &[u8], issuer: &str, lifetime: Duration) -> Result<Self, ConfigError> {
        if lifetime < Duration::from_secs(1) || lifetime > MAX_LIFETIME {
            return Err(ConfigError(
                "identity_jwt.lifetime must be between 1s and 5m".into(),
            ));
        }
        if issuer.is_empty() {
            return Err(ConfigError("identity_jwt.issuer is empty".into()));
        }
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem)
            .map_err(|_| ConfigError("not a PKCS#8 PEM private key".into()))?;
        let key = identity::key_from_pkcs8(der.secret_pkcs8_der())
            .map_err(|_| ConfigError("the key is neither Ed25519 nor P-256 (PKCS#8)".into()))?;
        let (signer, jwks) = identity::signer(key)
            .map_err(|e| ConfigError(format!("identity key unusable: {e}")))?;
        Ok(Self {
            kid: signer.kid().unwrap_or_default().to_owned(),
            signer,
            issuer: issuer.to_owned(),
            lifetime: lifetime.as_secs(),
            jwks,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The JWKS document publishing the public key.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// The identity JWT of `p` for `audience`, issued at `now` (Unix seconds).
    pub fn sign(
        &self,
        p: &Principal,
        audience: &str,
        client_cert_sha256: Option<&str>,
        now: u64,
    ) -> Result<String, SignError> {
        let jti = uuid::Uuid::new_v4().to_string();
        let claims = IdentityClaims {
            iss: &self.issuer,
            aud: audience,
            iat: now,
            nbf: now,
            exp: now + self.lifetime,
            jti: &jti,
            sub: &p.subject,
            client_id: p.client_id.as_deref(),
            tenant: p.tenant.as_ref().map(|t| t.as_str()),
            scope: p.scopes.join(" "),
            credential_kind: p.kind.as_str(),
            credential_id: &p.credential_id,
            cnf: client_cert_sha256.map(|x5t_s256| Cnf { x5t_s256 }),
        };
        self.signer.sign(&claims).map_err(|_| SignError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair};
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use base64::Engine;
    use portcullis_verify::CredentialKind;

    fn pem(der: &[u8]) -> String {
        let b = STANDARD.encode(der);
        let lines: Vec<&str> = b
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        )
    }

    fn ed25519() -> String {
        let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key");
        pem(doc.as_ref())
    }

    fn principal() -> Principal {
        let mut p = Principal::new(CredentialKind::AccessToken, "user-1", "jti-1");
        p.client_id = Some("cl_app".into());
        p.scopes = vec!["a".into(), "b".into()];
        p.issuer = Some("https://auth".into());
        p
    }

    fn part(token: &str, i: usize) -> serde_json::Value {
        let p = token.split('.').nth(i).expect("part");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).expect("b64")).expect("json")
    }

    #[test]
    fn debug_never_shows_the_key() {
        let s = IdentitySigner::from_pem(ed25519().as_bytes(), "iss", Duration::from_secs(30))
            .expect("signer");
        let d = format!("{s:?}");
        assert!(d.contains("[redacted]"), "{d}");
        assert!(!d.contains("Ed25519KeyPair"), "{d}");
    }

    #[test]
    fn lifetime_is_bounded() {
        let key = ed25519();
        let make = |secs: u64| {
            IdentitySigner::from_pem(key.as_bytes(), "iss", Duration::from_secs(secs)).is_ok()
        };
        assert!(!make(0));
        assert!(make(1));
        assert!(make(300));
        assert!(!make(301));
    }

    #[test]
    fn header_claims_and_certificate_binding() {
        let s = IdentitySigner::from_pem(ed25519().as_bytes(), "iss", Duration::from_secs(30))
            .expect("signer");
        let t = s
            .sign(&principal(), "app", Some("x5t-value"), 1_000)
            .expect("sign");
        let h = part(&t, 0);
        assert_eq!(h["typ"], TYP);
        assert_eq!(h["alg"], "EdDSA");
        assert_eq!(h["kid"], s.kid());
        let c = part(&t, 1);
        assert_eq!(c["aud"], "app");
        assert_eq!(c["iat"], 1_000);
        assert_eq!(c["exp"], 1_030);
        assert_eq!(c["scope"], "a b");
        assert_eq!(c["cnf"]["x5t#S256"], "x5t-value");
        assert!(c.get("tenant").is_none());
        let t = s.sign(&principal(), "app", None, 1_000).expect("sign");
        assert!(part(&t, 1).get("cnf").is_none());
    }

    #[test]
    fn other_key_types_are_refused() {
        let doc = EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            &SystemRandom::new(),
        )
        .expect("key");
        let e =
            IdentitySigner::from_pem(pem(doc.as_ref()).as_bytes(), "iss", Duration::from_secs(30))
                .expect_err("P-384 refused");
        assert!(e.0.contains("neither"), "{e}");
        assert!(IdentitySigner::from_pem(b"junk", "iss", Duration::from_secs(30)).is_err());
    }
}
