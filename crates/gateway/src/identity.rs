//! The signed identity JWT (`X-Portcullis-Identity`): the facts of the identity headers, signed
//! by the gateway with an Ed25519 or P-256 key, so an upstream can check them itself instead of
//! trusting whoever can reach it.
//!
//! Header `{"alg", "typ": "portcullis-identity+jwt", "kid"}`; the `typ` is deliberately not
//! `at+jwt`, so a verifier of access tokens refuses it and it can never be replayed as one.
//! Claims: `iss`, `aud` (the upstream), `iat`, `nbf`, `exp` (at most 5 minutes later), `jti`,
//! `sub`, `client_id`, `tenant`, `scope`, `credential_kind`, `credential_id`, and
//! `cnf.x5t#S256` when the connection presented a verified client certificate. The public key
//! is published as a JWKS whose `kid` is the key's RFC 7638 thumbprint.
//!
//! Signing is a thin JWS compact serialisation over aws-lc-rs with the key pair parsed once at
//! load, for the reason the server's token signer gives (`jsonwebtoken` re-parses the PKCS#8
//! key on every `encode`); its output is checked with `jsonwebtoken` in the tests. This module
//! only signs: it never parses a token, and it must never expose the private key (Debug prints
//! `[redacted]`).

use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_core::secret::Secret;
use portcullis_verify::Principal;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;
use serde::Serialize;
use serde_json::json;

use crate::config::{ConfigError, IdentityJwtSection};

/// The JWT `typ` of identity tokens.
pub const TYP: &str = "portcullis-identity+jwt";
/// Where the public key is published, on the main and admin listeners.
pub const JWKS_PATH: &str = "/_portcullis/identity/jwks.json";
/// The longest lifetime allowed.
pub const MAX_LIFETIME: Duration = Duration::from_secs(300);

enum Pair {
    Ed25519(Ed25519KeyPair),
    P256(EcdsaKeyPair),
}

/// A loaded identity signing key and what it signs with.
pub struct IdentitySigner {
    key: Pair,
    kid: String,
    /// base64url of the protected header and a `.`: the same for every token.
    header_prefix: String,
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

#[derive(Serialize)]
struct Cnf<'a> {
    #[serde(rename = "x5t#S256")]
    x5t_s256: &'a str,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: String,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
    scope: String,
    credential_kind: &'a str,
    credential_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Cnf<'a>>,
}

/// Signing failed: only a failing random source (ECDSA) can cause it.
#[derive(Debug, thiserror::Error)]
#[error("identity JWT signing failed")]
pub struct SignError;

fn b64(b: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

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
        let der = der.secret_pkcs8_der();
        let (key, alg, jwk) = if let Ok(k) = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der) {
            let x = b64(k.public_key().as_ref());
            let jwk = json!({"crv": "Ed25519", "kty": "OKP", "x": x});
            (Pair::Ed25519(k), "EdDSA", jwk)
        } else if let Ok(k) =
            EcdsaKeyPair::from_pkcs8(&aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
        {
            // Uncompressed point: 0x04 || x || y, 32 bytes each.
            let point = k.public_key().as_ref();
            if point.len() != 65 {
                return Err(ConfigError("unexpected P-256 public key encoding".into()));
            }
            let jwk = json!({
                "crv": "P-256", "kty": "EC",
                "x": b64(&point[1..33]), "y": b64(&point[33..65]),
            });
            (Pair::P256(k), "ES256", jwk)
        } else {
            return Err(ConfigError(
                "the key is neither Ed25519 nor P-256 (PKCS#8)".into(),
            ));
        };
        // RFC 7638: SHA-256 of the required members, in lexicographic order and without
        // whitespace (the order written above, which serde_json keeps with or without its
        // preserve_order feature).
        let kid = b64(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            jwk.to_string().as_bytes(),
        ));
        let mut public = jwk;
        if let Some(o) = public.as_object_mut() {
            o.insert("kid".into(), json!(kid));
            o.insert("alg".into(), json!(alg));
            o.insert("use".into(), json!("sig"));
        }
        let jwks = json!({ "keys": [public] }).to_string();
        let header = json!({"alg": alg, "typ": TYP, "kid": kid}).to_string();
        let mut header_prefix = b64(header);
        header_prefix.push('.');
        Ok(Self {
            key,
            kid,
            header_prefix,
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
        let claims = Claims {
            iss: &self.issuer,
            aud: audience,
            iat: now,
            nbf: now,
            exp: now + self.lifetime,
            jti: uuid::Uuid::new_v4().to_string(),
            sub: &p.subject,
            client_id: p.client_id.as_deref(),
            tenant: p.tenant.as_ref().map(|t| t.as_str()),
            scope: p.scopes.join(" "),
            credential_kind: p.kind.as_str(),
            credential_id: &p.credential_id,
            cnf: client_cert_sha256.map(|x5t_s256| Cnf { x5t_s256 }),
        };
        let body = serde_json::to_vec(&claims).map_err(|_| SignError)?;
        let mut out = String::with_capacity(self.header_prefix.len() + body.len() * 2 + 100);
        out.push_str(&self.header_prefix);
        URL_SAFE_NO_PAD.encode_string(&body, &mut out);
        let sig = match &self.key {
            Pair::Ed25519(k) => k.sign(out.as_bytes()).as_ref().to_vec(),
            Pair::P256(k) => k
                .sign(&SystemRandom::new(), out.as_bytes())
                .map_err(|_| SignError)?
                .as_ref()
                .to_vec(),
        };
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(sig, &mut out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
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
