//! Proof of possession (RFC 7800 `cnf`): the key a token is bound to, and the one rule that
//! says whether a request proved it holds that key.
//!
//! Two bindings exist: a DPoP key (RFC 9449, `cnf.jkt`, the RFC 7638 thumbprint of the proof
//! key) and a client certificate (RFC 8705, `cnf.x5t#S256`, the SHA-256 of its DER). The
//! thumbprints are computed where the key or certificate is parsed (the JOSE crate, the TLS
//! listener); this module only compares them. It must never accept a bound token without the
//! matching proof, and never treat an unknown confirmation method as "unbound".

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest as _, Sha256};

/// A base64url (unpadded) SHA-256 thumbprint: always 43 characters of the URL-safe alphabet.
/// Thumbprints are public values (they name a public key), compared as plain strings.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Thumbprint(String);

/// A thumbprint that is not 43 base64url characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a base64url SHA-256 thumbprint")]
pub struct BadThumbprint;

/// The 6-bit value of a base64url character.
const fn base64url_value(b: u8) -> Option<u8> {
    match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

/// Whether `s` is the unpadded base64url form of exactly 32 bytes, as a strict decoder reads
/// it: 43 characters of the alphabet, the last one's two low bits zero (42 characters carry 252
/// bits; the 43rd the last 4 in its high bits). The same answer as decoding with `base64`
/// (`thumbprint_syntax_agrees_with_the_base64_crate`) without decoding: every certificate- or
/// DPoP-bound token is read through here on every uncached validation.
fn is_sha256_base64url(s: &[u8]) -> bool {
    s.len() == 43
        && s.iter().all(|&b| base64url_value(b).is_some())
        && base64url_value(s[42]).is_some_and(|v| v & 0b11 == 0)
}

impl Thumbprint {
    /// Parses a thumbprint as it appears in `cnf` or a `dpop_jkt` parameter.
    pub fn parse(s: &str) -> Result<Self, BadThumbprint> {
        if is_sha256_base64url(s.as_bytes()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(BadThumbprint)
        }
    }

    /// The thumbprint of a SHA-256 digest.
    pub fn from_digest(digest: [u8; 32]) -> Self {
        Self(URL_SAFE_NO_PAD.encode(digest))
    }

    /// The SHA-256 thumbprint of `bytes`: a certificate's DER (`x5t#S256`) or an RFC 7638
    /// canonical JWK (`jkt`).
    pub fn sha256_of(bytes: &[u8]) -> Self {
        Self::from_digest(Sha256::digest(bytes).into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Thumbprint({})", self.0)
    }
}

impl fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Thumbprint {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The deserialized string is kept as it is: no second copy.
        let s = String::deserialize(d)?;
        if is_sha256_base64url(s.as_bytes()) {
            Ok(Self(s))
        } else {
            Err(serde::de::Error::custom(BadThumbprint))
        }
    }
}

/// The `cnf` claim of an access token: the keys it is bound to. Empty means a bearer token.
/// Deserializing refuses any member but these two: a token bound by a method this server does
/// not know must be refused, not treated as a bearer token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Confirmation {
    /// RFC 9449 section 6.1: the thumbprint of the DPoP proof key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<Thumbprint>,
    /// RFC 8705 section 3.1: the thumbprint of the client certificate.
    #[serde(default, rename = "x5t#S256", skip_serializing_if = "Option::is_none")]
    pub x5t_s256: Option<Thumbprint>,
}

/// How the request presented its access token (RFC 6750 `Bearer` or RFC 9449 `DPoP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Bearer,
    Dpop,
}

/// What a request proved it holds, established before the token is judged: the key of a DPoP
/// proof that already verified (signature, `htm`, `htu`, `iat`, `jti`, `ath`), and the
/// thumbprint of the client certificate from the TLS handshake (or a trusted proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Possession<'a> {
    pub scheme: Scheme,
    pub dpop_key: Option<&'a Thumbprint>,
    pub client_certificate: Option<&'a Thumbprint>,
}

impl Possession<'_> {
    /// A bearer token and nothing else: what a request without DPoP or a certificate proves.
    pub const BEARER: Possession<'static> = Possession {
        scheme: Scheme::Bearer,
        dpop_key: None,
        client_certificate: None,
    };
}

/// The client certificate a request came with, put in the request's extensions by the
/// listener that saw it: the TLS handshake (rustls proved the peer holds the certificate's key)
/// or a trusted TLS-terminating proxy's header. Whether its chain is trusted is a separate
/// question, answered by whoever uses it (client authentication validates it against the
/// tenant's CA set); for binding a token only the thumbprint matters.
///
/// The certificates the client sent after its own (intermediate CAs, in the order sent) are
/// kept, untrusted, so a chain can be built from the end-entity certificate through them to a
/// tenant's CA; at most [`MAX_INTERMEDIATES`] are kept.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    der: std::sync::Arc<[u8]>,
    intermediates: std::sync::Arc<[Vec<u8>]>,
    thumbprint: Thumbprint,
}

/// Most intermediate certificates kept from what a client sent after its own: deeper chains
/// than this are not built (their end-entity certificate then does not chain, and fails
/// closed).
pub const MAX_INTERMEDIATES: usize = 4;

impl ClientCertificate {
    /// Wraps an end-entity certificate's DER and computes its `x5t#S256`.
    pub fn from_der(der: impl Into<std::sync::Arc<[u8]>>) -> Self {
        Self::from_chain(der, Vec::new())
    }

    /// An end-entity certificate with the certificates its client sent after it (the TLS
    /// handshake's chain, or a proxy header's further PEM blocks); beyond
    /// [`MAX_INTERMEDIATES`] they are dropped.
    pub fn from_chain(
        der: impl Into<std::sync::Arc<[u8]>>,
        intermediates: impl IntoIterator<Item = Vec<u8>>,
    ) -> Self {
        let der = der.into();
        let thumbprint = Thumbprint::sha256_of(&der);
        Self {
            der,
            intermediates: intermediates.into_iter().take(MAX_INTERMEDIATES).collect(),
            thumbprint,
        }
    }

    /// The end-entity certificate's DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The intermediate certificates the client sent (untrusted: path building input only).
    pub fn intermediates(&self) -> &[Vec<u8>] {
        &self.intermediates
    }

    /// RFC 8705 section 3.1: the SHA-256 of the DER, base64url.
    pub fn thumbprint(&self) -> &Thumbprint {
        &self.thumbprint
    }
}

/// Longest certificate header accepted from a proxy: a certificate of a few kilobytes,
/// URL-encoded, fits many times over.
pub const MAX_CERTIFICATE_HEADER_BYTES: usize = 16 * 1024;

/// A client-certificate header a trusted proxy sent that is not URL-encoded PEM certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BadCertificateHeader {
    #[error("certificate header too large")]
    TooLarge,
    #[error("certificate header is not URL-encoded")]
    NotUrlEncoded,
    #[error("certificate header holds no PEM certificate")]
    NotPem,
}

impl ClientCertificate {
    /// Reads the certificate a TLS-terminating proxy forwarded as URL-encoded PEM (nginx
    /// `$ssl_client_escaped_cert`). The first `CERTIFICATE` block is the end-entity
    /// certificate; further blocks (a proxy that forwards the chain the client sent) are its
    /// intermediates, up to [`MAX_INTERMEDIATES`] (blocks after those are not read). A block
    /// read that does not decode refuses the whole header. Whether the proxy may be believed is
    /// the caller's decision (trusted proxies only); this only parses.
    pub fn from_escaped_pem(value: &[u8]) -> Result<Self, BadCertificateHeader> {
        if value.len() > MAX_CERTIFICATE_HEADER_BYTES {
            return Err(BadCertificateHeader::TooLarge);
        }
        let pem = percent_decode(value).ok_or(BadCertificateHeader::NotUrlEncoded)?;
        let pem = std::str::from_utf8(&pem).map_err(|_| BadCertificateHeader::NotPem)?;
        let mut blocks = Vec::new();
        for der in crate::pem::certificates(pem).take(MAX_INTERMEDIATES + 1) {
            let der = der.map_err(|_| BadCertificateHeader::NotPem)?;
            // A DER certificate is a SEQUENCE; anything else is not worth hashing.
            if der.first() != Some(&0x30) {
                return Err(BadCertificateHeader::NotPem);
            }
            blocks.push(der);
        }
        let mut blocks = blocks.into_iter();
        let end_entity = blocks.next().ok_or(BadCertificateHeader::NotPem)?;
        Ok(Self::from_chain(end_entity, blocks))
    }
}

/// RFC 3986 percent-decoding; `+` stays `+` (it is base64, not a form space).
fn percent_decode(v: &[u8]) -> Option<Vec<u8>> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            let hi = hex(*v.get(i + 1)?)?;
            let lo = hex(*v.get(i + 2)?)?;
            // Both digits are below 16, so the byte fits.
            out.push(u8::try_from(hi * 16 + lo).ok()?);
            i += 3;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    Some(out)
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint.as_str())
            .field("der_bytes", &self.der.len())
            .field("intermediates", &self.intermediates.len())
            .finish()
    }
}

/// Why a bound token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BindingError {
    /// A DPoP-bound token arrived as `Bearer` (RFC 9449 section 7.1).
    #[error("dpop_bound_token_as_bearer")]
    DpopBoundAsBearer,
    /// A DPoP-bound token came without a verified proof.
    #[error("dpop_proof_missing")]
    DpopProofMissing,
    /// The proof was signed by another key than `cnf.jkt`.
    #[error("dpop_key_mismatch")]
    DpopKeyMismatch,
    /// A certificate-bound token came without a client certificate.
    #[error("certificate_missing")]
    CertificateMissing,
    /// The client certificate is not the one in `cnf.x5t#S256`.
    #[error("certificate_mismatch")]
    CertificateMismatch,
}

impl BindingError {
    /// The reason's name, for logs and audit records (never for a response body).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::DpopBoundAsBearer => "dpop_bound_token_as_bearer",
            Self::DpopProofMissing => "dpop_proof_missing",
            Self::DpopKeyMismatch => "dpop_key_mismatch",
            Self::CertificateMissing => "certificate_missing",
            Self::CertificateMismatch => "certificate_mismatch",
        }
    }
}

impl Confirmation {
    /// Whether the token is bound to nothing (a bearer token).
    pub fn is_unbound(&self) -> bool {
        self.jkt.is_none() && self.x5t_s256.is_none()
    }

    /// The one binding rule: every key the token names must have been proved by the request.
    /// An unbound token passes whatever was presented.
    pub fn check(&self, p: &Possession<'_>) -> Result<(), BindingError> {
        if let Some(want) = &self.jkt {
            if p.scheme != Scheme::Dpop {
                return Err(BindingError::DpopBoundAsBearer);
            }
            match p.dpop_key {
                None => return Err(BindingError::DpopProofMissing),
                Some(got) if got != want => return Err(BindingError::DpopKeyMismatch),
                Some(_) => {}
            }
        }
        if let Some(want) = &self.x5t_s256 {
            match p.client_certificate {
                None => return Err(BindingError::CertificateMissing),
                Some(got) if got != want => return Err(BindingError::CertificateMismatch),
                Some(_) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(seed: u8) -> Thumbprint {
        Thumbprint::sha256_of(&[seed])
    }

    #[test]
    fn thumbprints_are_43_base64url_characters_of_32_bytes() {
        let t = tp(1);
        assert_eq!(t.as_str().len(), 43);
        assert_eq!(Thumbprint::parse(t.as_str()), Ok(t.clone()));
        for bad in [
            "",
            "abc",
            &format!("{}=", t.as_str()),
            &t.as_str().replace(|c: char| c.is_ascii_alphabetic(), "+"),
            &"A".repeat(44),
            // 43 characters whose last one carries bits past the 32nd byte.
            &format!("{}B", &"A".repeat(42)),
        ] {
            assert_eq!(Thumbprint::parse(bad), Err(BadThumbprint), "{bad}");
        }
    }

    /// The syntax check without decoding gives the strict decoder's answer: for every last
    /// character after 42 valid ones, for characters outside the alphabet, and for lengths
    /// around 43.
    #[test]
    fn thumbprint_syntax_agrees_with_the_base64_crate() {
        let strict = |s: &str| URL_SAFE_NO_PAD.decode(s).is_ok_and(|b| b.len() == 32);
        let body = tp(9).as_str()[..42].to_owned();
        for last in 0u8..=255 {
            let mut bytes = body.clone().into_bytes();
            bytes.push(last);
            let Ok(s) = String::from_utf8(bytes) else {
                continue;
            };
            assert_eq!(
                Thumbprint::parse(&s).is_ok(),
                strict(&s),
                "last byte {last}"
            );
        }
        for bad in ["+", "/", "=", " ", "é"] {
            let s = format!("{}{bad}{}", &body[..20], &body[21..]);
            assert_eq!(Thumbprint::parse(&s).is_ok(), strict(&s), "{s}");
            assert!(Thumbprint::parse(&s).is_err(), "{s}");
        }
        for len in [0, 41, 42, 44, 45] {
            let s = "A".repeat(len);
            assert!(Thumbprint::parse(&s).is_err() && !strict(&s), "{len}");
        }
        // Through serde too.
        let good = tp(3);
        let back: Thumbprint =
            serde_json::from_value(serde_json::json!(good.as_str())).expect("thumbprint");
        assert_eq!(back, good);
        assert!(
            serde_json::from_value::<Thumbprint>(serde_json::json!(format!("{}B", "A".repeat(42))))
                .is_err()
        );
    }

    #[test]
    fn cnf_reads_both_methods_and_refuses_unknown_ones() {
        let (j, x) = (tp(1), tp(2));
        let c: Confirmation =
            serde_json::from_value(serde_json::json!({"jkt": j.as_str(), "x5t#S256": x.as_str()}))
                .expect("cnf");
        assert_eq!(c.jkt.as_ref(), Some(&j));
        assert_eq!(c.x5t_s256.as_ref(), Some(&x));
        let v = serde_json::to_value(&c).expect("json");
        assert_eq!(v["x5t#S256"], x.as_str());
        for bad in [
            serde_json::json!({"jwk": {"kty": "OKP"}}),
            serde_json::json!({"jkt": "short"}),
            serde_json::json!({"jkt": 7}),
            serde_json::json!("jkt"),
        ] {
            assert!(
                serde_json::from_value::<Confirmation>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        assert_eq!(
            serde_json::to_value(Confirmation::default()).expect("json"),
            serde_json::json!({})
        );
    }

    #[test]
    fn a_bound_token_needs_its_own_key_and_an_unbound_one_needs_nothing() {
        let (j, x, other) = (tp(1), tp(2), tp(3));
        let dpop = Confirmation {
            jkt: Some(j.clone()),
            x5t_s256: None,
        };
        let with = |scheme, dpop_key, client_certificate| Possession {
            scheme,
            dpop_key,
            client_certificate,
        };
        assert_eq!(dpop.check(&with(Scheme::Dpop, Some(&j), None)), Ok(()));
        assert_eq!(
            dpop.check(&Possession::BEARER),
            Err(BindingError::DpopBoundAsBearer)
        );
        assert_eq!(
            dpop.check(&with(Scheme::Bearer, Some(&j), None)),
            Err(BindingError::DpopBoundAsBearer)
        );
        assert_eq!(
            dpop.check(&with(Scheme::Dpop, None, None)),
            Err(BindingError::DpopProofMissing)
        );
        assert_eq!(
            dpop.check(&with(Scheme::Dpop, Some(&other), None)),
            Err(BindingError::DpopKeyMismatch)
        );

        let cert = Confirmation {
            jkt: None,
            x5t_s256: Some(x.clone()),
        };
        assert_eq!(cert.check(&with(Scheme::Bearer, None, Some(&x))), Ok(()));
        assert_eq!(
            cert.check(&Possession::BEARER),
            Err(BindingError::CertificateMissing)
        );
        assert_eq!(
            cert.check(&with(Scheme::Bearer, None, Some(&other))),
            Err(BindingError::CertificateMismatch)
        );

        let both = Confirmation {
            jkt: Some(j.clone()),
            x5t_s256: Some(x.clone()),
        };
        assert_eq!(both.check(&with(Scheme::Dpop, Some(&j), Some(&x))), Ok(()));
        assert_eq!(
            both.check(&with(Scheme::Dpop, Some(&j), None)),
            Err(BindingError::CertificateMissing)
        );

        let c = ClientCertificate::from_der(b"der".to_vec());
        assert_eq!(c.thumbprint(), &Thumbprint::sha256_of(b"der"));
        assert_eq!(c.der(), b"der");
        let unbound = Confirmation::default();
        assert!(unbound.is_unbound());
        assert_eq!(unbound.check(&Possession::BEARER), Ok(()));
        assert_eq!(
            unbound.check(&with(Scheme::Dpop, Some(&j), Some(&x))),
            Ok(())
        );
    }

    fn pem_of(der: &[u8]) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n")
    }

    fn escape(pem: &str) -> String {
        pem.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'-' {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }

    #[test]
    fn a_proxy_certificate_header_is_url_encoded_pem_and_nothing_else() {
        let der = [0x30u8, 0x82, 0x01, 0x0a, 0xff, 0xfe];
        let escaped = escape(&pem_of(&der));
        let c = ClientCertificate::from_escaped_pem(escaped.as_bytes()).expect("nginx form");
        assert_eq!(c.der(), der);
        assert!(c.intermediates().is_empty());
        assert_eq!(c.thumbprint(), &Thumbprint::sha256_of(&der));
        let good = pem_of(&der);
        for (bad, why) in [
            (
                // A good end-entity block followed by one that does not decode.
                escape(&format!(
                    "{good}-----BEGIN CERTIFICATE-----AAAA-----END CERTIFICATE-----"
                ))
                .into_bytes(),
                BadCertificateHeader::NotPem,
            ),
            (
                escape(&format!("{good}-----BEGIN CERTIFICATE-----MIIB")).into_bytes(),
                BadCertificateHeader::NotPem,
            ),
            (b"%zz".to_vec(), BadCertificateHeader::NotUrlEncoded),
            (b"abc%4".to_vec(), BadCertificateHeader::NotUrlEncoded),
            (b"no pem here".to_vec(), BadCertificateHeader::NotPem),
            (
                b"-----BEGIN CERTIFICATE-----%0A!!!%0A-----END CERTIFICATE-----".to_vec(),
                BadCertificateHeader::NotPem,
            ),
            (
                // Decodes, but is not a DER SEQUENCE.
                b"-----BEGIN CERTIFICATE-----AAAA-----END CERTIFICATE-----".to_vec(),
                BadCertificateHeader::NotPem,
            ),
            (
                vec![b'A'; MAX_CERTIFICATE_HEADER_BYTES + 1],
                BadCertificateHeader::TooLarge,
            ),
        ] {
            assert_eq!(
                ClientCertificate::from_escaped_pem(&bad),
                Err(why),
                "{}",
                String::from_utf8_lossy(&bad[..bad.len().min(60)])
            );
        }
    }

    #[test]
    fn further_pem_blocks_are_the_intermediates_in_order_and_bounded() {
        let block = |i: u8| vec![0x30u8, 0x03, 0x02, 0x01, i];
        let chain: String = (0..3).map(|i| pem_of(&block(i))).collect();
        let c = ClientCertificate::from_escaped_pem(escape(&chain).as_bytes()).expect("chain");
        assert_eq!(c.der(), block(0));
        assert_eq!(c.intermediates(), [block(1), block(2)]);
        // The binding is the end-entity certificate's alone.
        assert_eq!(c.thumbprint(), &Thumbprint::sha256_of(&block(0)));
        let long: String = (0..10).map(|i| pem_of(&block(i))).collect();
        let c = ClientCertificate::from_escaped_pem(escape(&long).as_bytes()).expect("long");
        assert_eq!(c.intermediates().len(), MAX_INTERMEDIATES);
        assert_eq!(c.intermediates()[0], block(1));
        let c = ClientCertificate::from_chain(block(0), (1..10).map(block));
        assert_eq!(c.intermediates().len(), MAX_INTERMEDIATES);
    }
}
