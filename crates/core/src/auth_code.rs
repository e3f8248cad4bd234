//! Authorization codes as rules (RFC 6749 section 4.1, RFC 7636, RFC 9700): what a code is bound
//! to and whether a redemption matches it.
//!
//! A code lives at most [`MAX_CODE_LIFETIME`] (60 s), is redeemed once (storage makes the single
//! use atomic; a second use revokes what the first issued, DESIGN invariant 6), and only by the
//! client it was issued to, with the exact redirect URI of the authorization request and a PKCE
//! verifier whose S256 challenge is the one recorded. The nonce travels with the code into the ID
//! token; it is not something the redeeming client presents.
//!
//! This module must never read the clock, store anything, compare secrets in variable time, or
//! say in a refusal more than the caller may tell the client (`invalid_grant` for all).

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::base62;
use crate::secret::{constant_time_eq, Secret};
use crate::tenant::TenantId;
use crate::time::Timestamp;

/// The longest an authorization code may live (issue 16: at most 60 s).
pub const MAX_CODE_LIFETIME: Duration = Duration::from_secs(60);
/// Characters of a code (base62, ~256 bits).
const CODE_LEN: usize = 43;

/// An authorization code. Debug prints `[redacted]`; storage keeps only [`Self::digest`].
#[derive(Clone, PartialEq, Eq)]
pub struct AuthCode(Secret<String>);

impl std::fmt::Debug for AuthCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuthCode([redacted])")
    }
}

impl AuthCode {
    /// A fresh code. `rng` must be a cryptographically secure generator.
    pub fn generate(rng: &mut dyn RngCore) -> Self {
        Self(Secret::new(base62::random(rng, CODE_LEN)))
    }

    /// Parses an untrusted `code` parameter; anything not shaped like a code never reaches
    /// storage.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == CODE_LEN && base62::is_base62(s)).then(|| Self(Secret::new(s.to_owned())))
    }

    pub fn digest(&self) -> [u8; 32] {
        crate::credential::digest(self.0.expose())
    }

    /// The code, for the redirect to the client only.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// When a code issued at `now` expires: `lifetime`, capped at [`MAX_CODE_LIFETIME`].
pub fn expiry(now: Timestamp, lifetime: Duration) -> Timestamp {
    now.saturating_add(lifetime.min(MAX_CODE_LIFETIME))
}

/// The S256 challenge of a verifier: `BASE64URL(SHA256(verifier))` (RFC 7636 section 4.2).
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `v` is a well-formed PKCE verifier: 43 to 128 characters of
/// `[A-Za-z0-9-._~]` (RFC 7636 section 4.1).
pub fn is_valid_verifier(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// What a code was issued for (the parts a redemption must match).
#[derive(Debug, Clone, Copy)]
pub struct CodeBinding<'a> {
    pub tenant: &'a TenantId,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    /// The S256 challenge of the authorization request.
    pub code_challenge: &'a str,
    pub expires_at: Timestamp,
}

/// What a client presents at the token endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Redemption<'a> {
    /// The tenant of the authenticated client.
    pub tenant: &'a TenantId,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub code_verifier: &'a str,
}

/// Why a redemption is refused (all answer `invalid_grant`; the distinction is for audit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeRefusal {
    Expired,
    WrongTenant,
    WrongClient,
    WrongRedirectUri,
    MalformedVerifier,
    PkceMismatch,
}

impl CodeRefusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "code_expired",
            Self::WrongTenant => "code_wrong_tenant",
            Self::WrongClient => "code_wrong_client",
            Self::WrongRedirectUri => "code_wrong_redirect_uri",
            Self::MalformedVerifier => "pkce_verifier_malformed",
            Self::PkceMismatch => "pkce_mismatch",
        }
    }
}

impl CodeBinding<'_> {
    /// Whether `r` may redeem this code at `now`. Exact string comparison of the redirect URI
    /// (the one the authorization request named, RFC 6749 section 4.1.3); constant-time
    /// comparison of the PKCE challenge.
    pub fn check(&self, r: &Redemption<'_>, now: Timestamp) -> Result<(), CodeRefusal> {
        if now >= self.expires_at {
            return Err(CodeRefusal::Expired);
        }
        if r.tenant != self.tenant {
            return Err(CodeRefusal::WrongTenant);
        }
        if r.client_id != self.client_id {
            return Err(CodeRefusal::WrongClient);
        }
        if r.redirect_uri != self.redirect_uri {
            return Err(CodeRefusal::WrongRedirectUri);
        }
        if !is_valid_verifier(r.code_verifier) {
            return Err(CodeRefusal::MalformedVerifier);
        }
        let computed = s256_challenge(r.code_verifier);
        if !constant_time_eq(computed.as_bytes(), self.code_challenge.as_bytes()) {
            return Err(CodeRefusal::PkceMismatch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::OsRng;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

    #[test]
    fn rfc7636_appendix_b_example() {
        assert_eq!(
            s256_challenge(VERIFIER),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn a_code_is_redeemed_only_by_its_client_redirect_uri_and_verifier_in_time() {
        let acme = TenantId::parse("acme").expect("t");
        let globex = TenantId::parse("globex").expect("t");
        let challenge = s256_challenge(VERIFIER);
        let b = CodeBinding {
            tenant: &acme,
            client_id: "cl_web",
            redirect_uri: "https://app.example/cb",
            code_challenge: &challenge,
            expires_at: Timestamp::from_millis(60_000),
        };
        let ok = Redemption {
            tenant: &acme,
            client_id: "cl_web",
            redirect_uri: "https://app.example/cb",
            code_verifier: VERIFIER,
        };
        let now = Timestamp::from_millis(59_999);
        assert_eq!(b.check(&ok, now), Ok(()));
        assert_eq!(
            b.check(&ok, Timestamp::from_millis(60_000)),
            Err(CodeRefusal::Expired)
        );
        let cases = [
            (
                Redemption {
                    tenant: &globex,
                    ..ok
                },
                CodeRefusal::WrongTenant,
            ),
            (
                Redemption {
                    client_id: "cl_other",
                    ..ok
                },
                CodeRefusal::WrongClient,
            ),
            (
                Redemption {
                    redirect_uri: "https://app.example/cb/",
                    ..ok
                },
                CodeRefusal::WrongRedirectUri,
            ),
            (
                Redemption {
                    redirect_uri: "https://app.example/cb?x=1",
                    ..ok
                },
                CodeRefusal::WrongRedirectUri,
            ),
            (
                Redemption {
                    code_verifier: "short",
                    ..ok
                },
                CodeRefusal::MalformedVerifier,
            ),
            (
                Redemption {
                    code_verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX",
                    ..ok
                },
                CodeRefusal::PkceMismatch,
            ),
            (
                // `plain`: the challenge itself presented as the verifier.
                Redemption {
                    code_verifier: &challenge,
                    ..ok
                },
                CodeRefusal::PkceMismatch,
            ),
        ];
        for (r, want) in cases {
            assert_eq!(b.check(&r, now), Err(want), "{r:?}");
        }
    }

    #[test]
    fn lifetime_is_capped_at_sixty_seconds() {
        let now = Timestamp::from_millis(1_000);
        assert_eq!(
            expiry(now, Duration::from_secs(600)),
            Timestamp::from_millis(61_000)
        );
        assert_eq!(
            expiry(now, Duration::from_secs(30)),
            Timestamp::from_millis(31_000)
        );
    }

    #[test]
    fn codes_parse_only_their_shape_and_never_print() {
        let c = AuthCode::generate(&mut OsRng);
        assert_eq!(AuthCode::parse(c.expose()), Some(c.clone()));
        assert!(!format!("{c:?}").contains(c.expose()));
        assert!(AuthCode::parse("x").is_none());
        assert!(AuthCode::parse(&format!("{}-", &c.expose()[..42])).is_none());
        assert!(is_valid_verifier(VERIFIER));
        assert!(!is_valid_verifier(&"a".repeat(129)));
        assert!(!is_valid_verifier(&format!("{}+", &VERIFIER[..42])));
    }
}
