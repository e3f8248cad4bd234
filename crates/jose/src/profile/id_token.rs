//! OpenID Connect ID tokens (OIDC Core 1.0 section 2), checked as a relying party must
//! (section 3.1.3.7) and minted by the coming browser sign-in.
//!
//! Rules, in order: `typ`, when present, is `JWT` (never `at+jwt` or another kind: an access
//! token is not an ID token); `iss` exactly the expected issuer; `aud` contains the client id;
//! with several audiences `azp` is required, and `azp`, when present, is the client id; the
//! algorithm is one the client accepts and the one pinned to the key; `exp` required and not
//! past; `iat` required, not in the future, and `exp - iat` at most the longest lifetime; when a
//! `nonce` was sent in the authentication request the token carries the same value (compared in
//! constant time); `sub` required.
//!
//! This module must never accept an ID token as proof of anything but the sign-in it answers
//! (it is not an access token: no scope, no resource audience), and never skip the nonce check
//! when the request sent one.

use std::borrow::Cow;

use portcullis_core::secret::constant_time_eq;
use portcullis_core::time::Timestamp;

use super::{required, required_int, typ_is};
use crate::alg::Alg;
use crate::compact::{self, RawObject, Unverified};
use crate::error::JoseError;
use crate::jwk::KeySet;
use crate::sign::{Signer, SigningKeyPair};

/// The `typ` an ID token carries, if any (RFC 7519 section 5.1).
pub const TYP: &str = "JWT";

/// A signer of ID tokens: header `{"alg", "kid", "typ": "JWT"}`, encoded once.
pub fn signer(key: SigningKeyPair, kid: &str) -> Signer {
    Signer::new(key, Some(TYP), Some(kid))
}

/// Splits and decodes a token and checks its `typ` (absent or `JWT`).
pub fn parse(token: &str, max_len: usize) -> Result<Unverified<'_>, JoseError> {
    let u = compact::parse(token, max_len)?;
    match &u.header.typ {
        None => Ok(u),
        Some(t) if typ_is(t, TYP) => Ok(u),
        Some(_) => Err(JoseError::WrongTyp),
    }
}

/// What the relying party expects.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'r> {
    pub issuer: &'r str,
    pub client_id: &'r str,
    /// The `nonce` sent in the authentication request, if one was.
    pub nonce: Option<&'r str>,
    pub leeway_s: i64,
    /// Longest `exp - iat`, in seconds.
    pub max_lifetime_s: i64,
}

/// The claims of an ID token that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdToken<'a> {
    pub iss: Cow<'a, str>,
    pub sub: Cow<'a, str>,
    pub aud: Vec<Cow<'a, str>>,
    pub azp: Option<Cow<'a, str>>,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: Option<i64>,
    pub nonce: Option<Cow<'a, str>>,
}

/// Who issued an ID token and for whom: the claims [`Rules::check_audience`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressed<'a> {
    pub iss: Cow<'a, str>,
    pub aud: Vec<Cow<'a, str>>,
    pub azp: Option<Cow<'a, str>>,
}

impl Rules<'_> {
    /// The issuer and audience rules: run before the key is looked up, so a token for another
    /// client or from another issuer costs no key work.
    pub fn check_audience<'a>(&self, c: &RawObject<'a>) -> Result<Addressed<'a>, JoseError> {
        let iss = required(c, "iss")?;
        if iss != self.issuer {
            return Err(JoseError::IssuerMismatch);
        }
        let aud = c
            .strings("aud")
            .map_err(|_| JoseError::MalformedClaims)?
            .ok_or(JoseError::MissingClaim("aud"))?;
        if !aud.iter().any(|a| a == self.client_id) {
            return Err(JoseError::AudienceMismatch);
        }
        let azp = c.str("azp").map_err(|_| JoseError::MalformedClaims)?;
        match &azp {
            None if aud.len() > 1 => return Err(JoseError::AuthorizedPartyMismatch),
            Some(a) if a != self.client_id => return Err(JoseError::AuthorizedPartyMismatch),
            _ => {}
        }
        Ok(Addressed { iss, aud, azp })
    }

    /// Every claim rule of the module docs at `now`.
    pub fn check<'a>(&self, c: &RawObject<'a>, now: Timestamp) -> Result<IdToken<'a>, JoseError> {
        let Addressed { iss, aud, azp } = self.check_audience(c)?;
        let now_s = now.as_secs();
        let exp = required_int(c, "exp")?;
        if now_s >= exp.saturating_add(self.leeway_s) {
            return Err(JoseError::Expired);
        }
        let iat = required_int(c, "iat")?;
        if iat > now_s.saturating_add(self.leeway_s) {
            return Err(JoseError::IssuedInFuture);
        }
        if exp.saturating_sub(iat) > self.max_lifetime_s {
            return Err(JoseError::LifetimeTooLong);
        }
        let nonce = c.str("nonce").map_err(|_| JoseError::MalformedClaims)?;
        if let Some(sent) = self.nonce {
            let same = nonce
                .as_deref()
                .is_some_and(|got| constant_time_eq(got.as_bytes(), sent.as_bytes()));
            if !same {
                return Err(JoseError::NonceMismatch);
            }
        }
        let auth_time = c.int("auth_time").map_err(|_| JoseError::MalformedClaims)?;
        let sub = required(c, "sub")?;
        Ok(IdToken {
            iss,
            sub,
            aud,
            azp,
            exp,
            iat,
            auth_time,
            nonce,
        })
    }
}

/// The owned claims of a verified ID token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub sub: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: Option<i64>,
    pub kid: Option<String>,
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
    let t = rules.check(&c, now)?;
    let key = keys
        .find(u.header.kid.as_deref())
        .ok_or(JoseError::UnknownKid)?;
    u.verify_with(key)?;
    Ok(Verified {
        sub: t.sub.into_owned(),
        aud: t.aud.into_iter().map(Cow::into_owned).collect(),
        exp: t.exp,
        iat: t.iat,
        auth_time: t.auth_time,
        kid: key.kid.clone(),
    })
}

/// An ID token presented back to us as `id_token_hint` (RP-Initiated Logout 1.0 section 2):
/// its claims once the signature and issuer are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint {
    pub sub: String,
    pub aud: Vec<String>,
    pub azp: Option<String>,
    pub sid: Option<String>,
}

/// Checks an `id_token_hint`: `typ` (absent or `JWT`), an allowed algorithm, the key named by
/// `kid` among the issuer's `keys`, the signature, `iss` exactly `issuer`, and `sub` and `aud`
/// present. Expiry is deliberately not checked: the section allows an expired ID token as a
/// hint, since users sign out long after their ID token expired.
pub fn verify_hint(
    token: &str,
    max_len: usize,
    allowed: &[Alg],
    keys: &KeySet,
    issuer: &str,
) -> Result<Hint, JoseError> {
    let u = parse(token, max_len)?;
    let c = u.claims()?;
    if !allowed.contains(&u.header.alg) {
        return Err(JoseError::AlgNotAllowed);
    }
    if required(&c, "iss")? != issuer {
        return Err(JoseError::IssuerMismatch);
    }
    let key = keys
        .find(u.header.kid.as_deref())
        .ok_or(JoseError::UnknownKid)?;
    u.verify_with(key)?;
    let aud = c
        .strings("aud")
        .map_err(|_| JoseError::MalformedClaims)?
        .ok_or(JoseError::MissingClaim("aud"))?;
    let text = |name| -> Result<Option<String>, JoseError> {
        Ok(c.str(name)
            .map_err(|_| JoseError::MalformedClaims)?
            .map(Cow::into_owned))
    };
    Ok(Hint {
        sub: required(&c, "sub")?.into_owned(),
        aud: aud.into_iter().map(Cow::into_owned).collect(),
        azp: text("azp")?,
        sid: text("sid")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::public_jwk_for_jwks;
    use serde_json::{json, Value};

    const NOW: i64 = 1_800_000_000;

    fn rules(nonce: Option<&str>) -> Rules<'_> {
        Rules {
            issuer: "https://auth.test",
            client_id: "cl_web",
            nonce,
            leeway_s: 30,
            max_lifetime_s: 3600,
        }
    }

    fn claims() -> Value {
        json!({"iss": "https://auth.test", "sub": "user-1", "aud": "cl_web", "exp": NOW + 300,
               "iat": NOW, "nonce": "n-0S6_WzA2Mj", "auth_time": NOW - 5})
    }

    fn setup() -> (Signer, KeySet) {
        let (_, pair) = SigningKeyPair::generate(Alg::ES256).expect("key");
        let (jwk, kid) = public_jwk_for_jwks(&pair);
        let keys = crate::jwk::parse_jwks(json!({"keys": [jwk]}).to_string().as_bytes(), &Alg::ALL)
            .expect("jwks");
        (signer(pair, &kid), keys)
    }

    fn run(
        s: &Signer,
        keys: &KeySet,
        c: &Value,
        nonce: Option<&str>,
    ) -> Result<Verified, JoseError> {
        let t = s.sign(c).expect("sign");
        verify(
            &t,
            8192,
            &[Alg::ES256],
            keys,
            &rules(nonce),
            Timestamp::from_secs(NOW),
        )
    }

    #[test]
    fn a_hint_is_checked_for_signature_and_issuer_but_not_expiry() {
        let (s, keys) = setup();
        let mut expired = claims();
        expired["exp"] = json!(NOW - 86_400);
        expired["sid"] = json!("ses_1");
        let t = s.sign(&expired).expect("sign");
        let h = verify_hint(&t, 8192, &[Alg::ES256], &keys, "https://auth.test").expect("hint");
        assert_eq!(h.sub, "user-1");
        assert_eq!(h.aud, ["cl_web"]);
        assert_eq!(h.sid.as_deref(), Some("ses_1"));
        assert_eq!(
            verify_hint(&t, 8192, &[Alg::ES256], &keys, "https://other.test").err(),
            Some(JoseError::IssuerMismatch)
        );
        let (forger, _) = setup();
        let forged = forger.sign(&expired).expect("sign");
        assert!(verify_hint(&forged, 8192, &[Alg::ES256], &keys, "https://auth.test").is_err());
        let at = Signer::new(
            SigningKeyPair::generate(Alg::ES256).expect("key").1,
            Some("at+jwt"),
            None,
        )
        .sign(&expired)
        .expect("sign");
        assert_eq!(
            verify_hint(&at, 8192, &[Alg::ES256], &keys, "https://auth.test").err(),
            Some(JoseError::WrongTyp)
        );
    }

    #[test]
    fn a_good_id_token_verifies_with_and_without_a_nonce_sent() {
        let (s, keys) = setup();
        let v = run(&s, &keys, &claims(), Some("n-0S6_WzA2Mj")).expect("verifies");
        assert_eq!(v.sub, "user-1");
        assert_eq!(v.auth_time, Some(NOW - 5));
        assert!(run(&s, &keys, &claims(), None).is_ok());
        let mut two = claims();
        two["aud"] = json!(["cl_web", "other"]);
        two["azp"] = json!("cl_web");
        assert!(run(&s, &keys, &two, None).is_ok());
    }

    #[test]
    fn each_rule_of_oidc_core_3_1_3_7_refuses() {
        let (s, keys) = setup();
        let with = |k: &str, v: Value| {
            let mut c = claims();
            c[k] = v;
            c
        };
        let without = |k: &str| {
            let mut c = claims();
            c.as_object_mut().expect("object").remove(k);
            c
        };
        let mut several_no_azp = claims();
        several_no_azp["aud"] = json!(["cl_web", "other"]);
        let mut azp_other = claims();
        azp_other["azp"] = json!("other");
        let nonce = Some("n-0S6_WzA2Mj");
        let cases = vec![
            (
                with("iss", json!("https://evil")),
                JoseError::IssuerMismatch,
            ),
            (with("aud", json!("other")), JoseError::AudienceMismatch),
            (several_no_azp, JoseError::AuthorizedPartyMismatch),
            (azp_other, JoseError::AuthorizedPartyMismatch),
            (with("exp", json!(NOW - 30)), JoseError::Expired),
            (without("exp"), JoseError::MissingClaim("exp")),
            (without("iat"), JoseError::MissingClaim("iat")),
            (with("iat", json!(NOW + 31)), JoseError::IssuedInFuture),
            (with("iat", json!(NOW - 3400)), JoseError::LifetimeTooLong),
            (with("nonce", json!("replayed")), JoseError::NonceMismatch),
            (without("nonce"), JoseError::NonceMismatch),
            (without("sub"), JoseError::MissingClaim("sub")),
        ];
        for (c, want) in cases {
            assert_eq!(run(&s, &keys, &c, nonce).err(), Some(want), "{c}");
        }
    }

    #[test]
    fn other_token_kinds_are_not_id_tokens() {
        let (_, pair) = SigningKeyPair::generate(Alg::ES256).expect("key");
        let (jwk, kid) = public_jwk_for_jwks(&pair);
        let keys = crate::jwk::parse_jwks(json!({"keys": [jwk]}).to_string().as_bytes(), &Alg::ALL)
            .expect("jwks");
        let at = super::super::access_token::signer(pair, &kid);
        assert_eq!(
            run(&at, &keys, &claims(), None).err(),
            Some(JoseError::WrongTyp)
        );
        let (s, keys) = setup();
        let t = s.sign(&claims()).expect("sign");
        assert_eq!(
            verify(
                &t,
                8192,
                &[Alg::EdDSA],
                &keys,
                &rules(None),
                Timestamp::from_secs(NOW)
            )
            .err(),
            Some(JoseError::AlgNotAllowed)
        );
    }
}
