//! Logout tokens (OpenID Connect Back-Channel Logout 1.0, section 2.4): minted by the token
//! service when a session ends and POSTed to each client that got tokens in it; checked here as
//! a relying party must (section 2.6), which the tests and any Rust relying party use.
//!
//! Shape: header `typ: logout+jwt` (section 2.4 recommends explicit typing; we always set it and
//! require it, so neither an ID token nor an access token is ever taken for a logout token);
//! claims `iss`, `aud` (the client id), `iat`, `exp` (short), `jti`, `sub` and/or `sid`, and
//! `events` holding the member [`EVENT`] with a JSON object. A `nonce` is forbidden.
//!
//! This module must never do I/O and never accept a token without the logout event or with a
//! `nonce`.

use std::borrow::Cow;

use portcullis_core::time::Timestamp;
use serde::Serialize;

use super::{required, required_int, typ_is};
use crate::alg::Alg;
use crate::compact::{self, RawObject, Unverified};
use crate::error::JoseError;
use crate::jwk::KeySet;
use crate::sign::{Signer, SigningKeyPair};

/// The `typ` a logout token carries.
pub const TYP: &str = "logout+jwt";
/// The member of `events` that makes a JWT a logout token.
pub const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A signer of logout tokens: header `{"alg", "kid", "typ": "logout+jwt"}`, encoded once.
pub fn signer(key: SigningKeyPair, kid: &str) -> Signer {
    Signer::new(key, Some(TYP), Some(kid))
}

/// The claims of a logout token as minted. Build with [`Claims::new`], which refuses a token
/// naming neither a subject nor a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Claims {
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    events: Events,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Events {
    #[serde(rename = "http://schemas.openid.net/event/backchannel-logout")]
    logout: Empty,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Empty {}

impl Claims {
    /// A logout token for `aud` issued at `iat` (seconds) living `lifetime_s`. `None` when
    /// both `sub` and `sid` are missing (section 2.4 requires at least one).
    pub fn new(
        iss: &str,
        aud: &str,
        iat: i64,
        lifetime_s: i64,
        jti: String,
        sub: Option<String>,
        sid: Option<String>,
    ) -> Option<Self> {
        if sub.is_none() && sid.is_none() {
            return None;
        }
        Some(Self {
            iss: iss.to_owned(),
            aud: aud.to_owned(),
            iat,
            exp: iat.saturating_add(lifetime_s),
            jti,
            sub,
            sid,
            events: Events { logout: Empty {} },
        })
    }
}

/// Splits and decodes a token and checks its `typ` (`logout+jwt`, required).
pub fn parse(token: &str, max_len: usize) -> Result<Unverified<'_>, JoseError> {
    let u = compact::parse(token, max_len)?;
    match &u.header.typ {
        Some(t) if typ_is(t, TYP) => Ok(u),
        _ => Err(JoseError::WrongTyp),
    }
}

/// What the relying party expects.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'r> {
    pub issuer: &'r str,
    pub client_id: &'r str,
    /// The client registered `backchannel_logout_session_required`: `sid` must be present.
    pub sid_required: bool,
    pub leeway_s: i64,
    /// Longest `exp - iat`, in seconds.
    pub max_lifetime_s: i64,
}

/// The owned claims of a verified logout token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub sub: Option<String>,
    pub sid: Option<String>,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
}

impl Rules<'_> {
    /// Every claim rule of section 2.6 at `now`.
    pub fn check(&self, c: &RawObject<'_>, now: Timestamp) -> Result<Verified, JoseError> {
        if required(c, "iss")? != self.issuer {
            return Err(JoseError::IssuerMismatch);
        }
        let aud = c
            .strings("aud")
            .map_err(|_| JoseError::MalformedClaims)?
            .ok_or(JoseError::MissingClaim("aud"))?;
        if !aud.iter().any(|a| a == self.client_id) {
            return Err(JoseError::AudienceMismatch);
        }
        let now_s = now.as_secs();
        let iat = required_int(c, "iat")?;
        if iat > now_s.saturating_add(self.leeway_s) {
            return Err(JoseError::IssuedInFuture);
        }
        let exp = required_int(c, "exp")?;
        if now_s >= exp.saturating_add(self.leeway_s) {
            return Err(JoseError::Expired);
        }
        if exp.saturating_sub(iat) > self.max_lifetime_s {
            return Err(JoseError::LifetimeTooLong);
        }
        let jti = required(c, "jti")?.into_owned();
        let events = c.get("events").ok_or(JoseError::LogoutEvent)?;
        let events: RawObject<'_> =
            RawObject::parse(events.get().as_bytes(), JoseError::LogoutEvent)?;
        let event = events.get(EVENT).ok_or(JoseError::LogoutEvent)?;
        if !event.get().trim_start().starts_with('{') {
            return Err(JoseError::LogoutEvent);
        }
        if c.contains("nonce") {
            return Err(JoseError::NonceForbidden);
        }
        let text = |name| -> Result<Option<String>, JoseError> {
            Ok(c.str(name)
                .map_err(|_| JoseError::MalformedClaims)?
                .map(Cow::into_owned))
        };
        let sub = text("sub")?;
        let sid = text("sid")?;
        if sub.is_none() && sid.is_none() {
            return Err(JoseError::MissingClaim("sub"));
        }
        if self.sid_required && sid.is_none() {
            return Err(JoseError::MissingClaim("sid"));
        }
        Ok(Verified {
            sub,
            sid,
            jti,
            iat,
            exp,
        })
    }
}

/// Every step at once with the issuer's keys in hand.
pub fn verify(
    token: &str,
    max_len: usize,
    allowed: &[Alg],
    keys: &KeySet,
    rules: &Rules<'_>,
    now: Timestamp,
) -> Result<Verified, JoseError> {
    let u = parse(token, max_len)?;
    let c = u.claims()?;
    if !allowed.contains(&u.header.alg) {
        return Err(JoseError::AlgNotAllowed);
    }
    let v = rules.check(&c, now)?;
    let key = keys
        .find(u.header.kid.as_deref())
        .ok_or(JoseError::UnknownKid)?;
    u.verify_with(key)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::public_jwk_for_jwks;
    use serde_json::{json, Value};

    const NOW: i64 = 1_800_000_000;

    fn rules(sid_required: bool) -> Rules<'static> {
        Rules {
            issuer: "https://auth.test",
            client_id: "cl_web",
            sid_required,
            leeway_s: 30,
            max_lifetime_s: 300,
        }
    }

    fn minted() -> Value {
        let c = Claims::new(
            "https://auth.test",
            "cl_web",
            NOW,
            120,
            "jti-1".into(),
            Some("usr_1".into()),
            Some("ses_1".into()),
        )
        .expect("sub and sid");
        serde_json::to_value(c).expect("json")
    }

    fn setup() -> (SigningKeyPair, String, KeySet) {
        let (_, pair) = SigningKeyPair::generate(Alg::ES256).expect("key");
        let (jwk, kid) = public_jwk_for_jwks(&pair);
        let keys = crate::jwk::parse_jwks(json!({"keys": [jwk]}).to_string().as_bytes(), &Alg::ALL)
            .expect("jwks");
        (pair, kid, keys)
    }

    fn run(
        s: &Signer,
        keys: &KeySet,
        c: &Value,
        sid_required: bool,
    ) -> Result<Verified, JoseError> {
        let t = s.sign(c).expect("sign");
        verify(
            &t,
            8192,
            &[Alg::ES256],
            keys,
            &rules(sid_required),
            Timestamp::from_secs(NOW),
        )
    }

    #[test]
    fn a_minted_logout_token_has_the_section_2_4_shape_and_verifies() {
        let (pair, kid, keys) = setup();
        let s = signer(pair, &kid);
        let c = minted();
        assert_eq!(c["events"], json!({EVENT: {}}));
        assert_eq!(c["exp"], json!(NOW + 120));
        assert!(c.get("nonce").is_none());
        let token = s.sign(&c).expect("sign");
        let header = compact::parse(&token, 8192).expect("parse").header;
        assert_eq!(header.typ.as_deref(), Some(TYP));
        let v = run(&s, &keys, &c, true).expect("verifies");
        assert_eq!(v.sid.as_deref(), Some("ses_1"));
        assert_eq!(v.sub.as_deref(), Some("usr_1"));
        assert_eq!(v.jti, "jti-1");
    }

    #[test]
    fn neither_sub_nor_sid_cannot_be_minted() {
        assert!(Claims::new("i", "a", NOW, 60, "j".into(), None, None).is_none());
        assert!(Claims::new("i", "a", NOW, 60, "j".into(), None, Some("s".into())).is_some());
    }

    #[test]
    fn each_rule_of_section_2_6_refuses() {
        let (pair, kid, keys) = setup();
        let s = signer(pair, &kid);
        let with = |k: &str, v: Value| {
            let mut c = minted();
            c[k] = v;
            c
        };
        let without = |k: &str| {
            let mut c = minted();
            c.as_object_mut().expect("object").remove(k);
            c
        };
        let cases = [
            (
                with("iss", json!("https://other.test")),
                JoseError::IssuerMismatch,
            ),
            (with("aud", json!("cl_other")), JoseError::AudienceMismatch),
            (with("exp", json!(NOW - 60)), JoseError::Expired),
            (with("iat", json!(NOW + 600)), JoseError::IssuedInFuture),
            (with("exp", json!(NOW + 3600)), JoseError::LifetimeTooLong),
            (with("nonce", json!("n")), JoseError::NonceForbidden),
            (without("events"), JoseError::LogoutEvent),
            (with("events", json!({"other": {}})), JoseError::LogoutEvent),
            (with("events", json!({EVENT: "x"})), JoseError::LogoutEvent),
            (without("jti"), JoseError::MissingClaim("jti")),
        ];
        for (c, want) in cases {
            assert_eq!(run(&s, &keys, &c, false).err(), Some(want), "{c}");
        }
        let mut neither = without("sid");
        neither.as_object_mut().expect("object").remove("sub");
        assert_eq!(
            run(&s, &keys, &neither, false).err(),
            Some(JoseError::MissingClaim("sub"))
        );
        assert_eq!(
            run(&s, &keys, &without("sid"), true).err(),
            Some(JoseError::MissingClaim("sid"))
        );
        assert!(run(&s, &keys, &without("sid"), false).is_ok());
    }

    #[test]
    fn an_id_token_or_access_token_is_not_a_logout_token_nor_is_a_forgery() {
        let (pair, kid, keys) = setup();
        for typ in [Some("JWT"), Some("at+jwt"), None] {
            let (_, p) = SigningKeyPair::generate(Alg::ES256).expect("key");
            let t = Signer::new(p, typ, Some(&kid))
                .sign(&minted())
                .expect("sign");
            let got = verify(
                &t,
                8192,
                &[Alg::ES256],
                &keys,
                &rules(false),
                Timestamp::from_secs(NOW),
            );
            assert_eq!(got.err(), Some(JoseError::WrongTyp), "{typ:?}");
        }
        // Signed by a key that is not the issuer's, under the issuer's kid.
        let (_, other) = SigningKeyPair::generate(Alg::ES256).expect("key");
        let forged = signer(other, &kid).sign(&minted()).expect("sign");
        let got = verify(
            &forged,
            8192,
            &[Alg::ES256],
            &keys,
            &rules(false),
            Timestamp::from_secs(NOW),
        );
        assert_eq!(got.err(), Some(JoseError::BadSignature));
        let good = signer(pair, &kid).sign(&minted()).expect("sign");
        assert!(verify(
            &good,
            8192,
            &[Alg::ES256],
            &keys,
            &rules(false),
            Timestamp::from_secs(NOW)
        )
        .is_ok());
    }
}
