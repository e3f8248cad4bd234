//! RFC 9068 JWT access tokens, as the token service issues them (`typ: at+jwt`, claims `iss sub
//! aud exp iat nbf jti client_id scope` and the tenant) and as verifiers check them.
//!
//! Rules, in the order they are checked (the verify library's documented order): `typ` is
//! `at+jwt` (or `application/at+jwt`); `iss` present (the caller picks the issuer's keys and
//! algorithms from it, see [`issuer`]); `exp` required and not past (with leeway); `nbf`, when
//! present, not in the future; `iat` required and not in the future; `exp - iat` at most the
//! longest lifetime; `aud` contains the audience (unless the caller is the issuer itself
//! answering for every audience); `sub`, `jti`, `client_id` required; the tenant claim, when
//! present, a valid tenant id; `sid` (the sign-in session of a user token) and `family_id` (its
//! refresh-token family), when present, strings; `scope` space-delimited; roles an array of strings;
//! `act` and `may_act` (RFC 8693), when present, objects of their shape; `exchanged_from` (the
//! tokens an exchanged token came from), when present, an array of at most
//! [`MAX_ACTORS`](portcullis_core::delegation::MAX_ACTORS) strings.
//!
//! This module must never accept a token of another `typ` (an ID token or an identity JWT is
//! never an access token), and never trust a claim before the caller has verified the signature.

use std::borrow::Cow;

use portcullis_core::confirmation::Confirmation;
use portcullis_core::delegation::MAX_ACTORS;
use portcullis_core::delegation::{ActClaim, MayAct};
use portcullis_core::oauth::{ACCESS_TOKEN_TYP, EXCHANGED_FROM_CLAIM, FAMILY_CLAIM};
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;

use super::{required, required_int, typ_is};
use crate::alg::Alg;
use crate::compact::{self, RawObject, Unverified};
use crate::error::JoseError;
use crate::jwk::{KeySet, VerificationKey};
use crate::sign::{Signer, SigningKeyPair};

/// The `typ` of access tokens (RFC 9068 section 2.1).
pub const TYP: &str = ACCESS_TOKEN_TYP;

/// Whether a `typ` value names the JWT access-token type: `at+jwt` or `application/at+jwt`,
/// compared case-insensitively.
pub fn is_typ(typ: &str) -> bool {
    typ_is(typ, TYP)
}

/// A signer of access tokens: header `{"alg", "kid", "typ": "at+jwt"}`, encoded once.
pub fn signer(key: SigningKeyPair, kid: &str) -> Signer {
    Signer::new(key, Some(TYP), Some(kid))
}

/// Splits and decodes a token and checks its `typ`.
pub fn parse(token: &str, max_len: usize) -> Result<Unverified<'_>, JoseError> {
    let u = compact::parse(token, max_len)?;
    match &u.header.typ {
        Some(t) if is_typ(t) => Ok(u),
        _ => Err(JoseError::WrongTyp),
    }
}

/// The `iss` claim, read before any other rule so the caller can pick the issuer's keys.
pub fn issuer<'a>(c: &RawObject<'a>) -> Result<Cow<'a, str>, JoseError> {
    required(c, "iss")
}

/// The claim rules a caller configures.
#[derive(Debug, Clone, Copy)]
pub struct Rules<'r> {
    /// The resource the token must name in `aud`; `None` only for the issuer itself
    /// (introspection answers for every audience).
    pub audience: Option<&'r str>,
    /// Clock skew tolerated for `exp`, `nbf`, `iat`, in seconds.
    pub leeway_s: i64,
    /// Longest `exp - iat`, in seconds.
    pub max_lifetime_s: i64,
    /// The claim carrying the tenant (Portcullis: `tenant`).
    pub tenant_claim: &'r str,
    /// The claim carrying roles, an array of strings.
    pub roles_claim: &'r str,
}

/// The claims of an access token that passed every claim rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken<'a> {
    pub sub: Cow<'a, str>,
    pub jti: Cow<'a, str>,
    pub client_id: Cow<'a, str>,
    pub aud: Vec<Cow<'a, str>>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: Option<i64>,
    pub tenant: Option<TenantId>,
    /// The sign-in session the token was issued under (user tokens only): what a session
    /// revocation names.
    pub sid: Option<Cow<'a, str>>,
    /// The refresh-token family the token was minted from (user tokens only): what a family
    /// revocation names.
    pub family: Option<Cow<'a, str>>,
    pub scopes: Vec<String>,
    pub roles: Vec<String>,
    /// The keys the token is bound to; empty for a bearer token.
    pub cnf: Confirmation,
    /// `act` (RFC 8693 section 4.1): who acts for the subject, earlier actors nested.
    pub act: Option<ActClaim>,
    /// `may_act` (RFC 8693 section 4.4): who may act for the subject.
    pub may_act: Option<MayAct>,
    /// The `jti`s of the tokens it was exchanged from, oldest first (empty unless it came from
    /// a token exchange): a revocation of any of them revokes it.
    pub exchanged_from: Vec<String>,
}

/// Reads an optional object claim of a known shape (`act`, `may_act`: objects of strings and
/// nested objects); anything else is malformed. Objects are required at every level (serde
/// alone would also read a struct from an array).
fn object_claim<T: serde::de::DeserializeOwned>(
    c: &RawObject<'_>,
    name: &str,
) -> Result<Option<T>, JoseError> {
    fn objects_only(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Object(m) => m.values().all(|v| v.is_string() || objects_only(v)),
            _ => false,
        }
    }
    let Some(raw) = c.get(name) else {
        return Ok(None);
    };
    let v: serde_json::Value =
        serde_json::from_str(raw.get()).map_err(|_| JoseError::MalformedClaims)?;
    if !objects_only(&v) {
        return Err(JoseError::MalformedClaims);
    }
    serde_json::from_value(v)
        .map(Some)
        .map_err(|_| JoseError::MalformedClaims)
}

/// Reads `cnf` (RFC 7800): absent is unbound; anything but an object of known methods with
/// well-formed thumbprints is refused.
fn confirmation(c: &RawObject<'_>) -> Result<Confirmation, JoseError> {
    match c.get("cnf") {
        None => Ok(Confirmation::default()),
        Some(raw) => {
            let cnf: Confirmation =
                serde_json::from_str(raw.get()).map_err(|_| JoseError::UnsupportedConfirmation)?;
            if cnf.is_unbound() {
                // An empty `cnf` binds to nothing and is no bearer token either: refuse it.
                return Err(JoseError::UnsupportedConfirmation);
            }
            Ok(cnf)
        }
    }
}

impl Rules<'_> {
    /// Checks every claim rule of the module docs at `now`. Claims stay borrowed from the
    /// token until the caller keeps them.
    pub fn check<'a>(
        &self,
        c: &RawObject<'a>,
        now: Timestamp,
    ) -> Result<AccessToken<'a>, JoseError> {
        let malformed = |_| JoseError::MalformedClaims;
        let now_s = now.as_secs();
        let leeway = self.leeway_s;
        let exp = required_int(c, "exp")?;
        if now_s >= exp.saturating_add(leeway) {
            return Err(JoseError::Expired);
        }
        let nbf = c.int("nbf").map_err(malformed)?;
        if nbf.is_some_and(|nbf| nbf > now_s.saturating_add(leeway)) {
            return Err(JoseError::NotYetValid);
        }
        let iat = required_int(c, "iat")?;
        if iat > now_s.saturating_add(leeway) {
            return Err(JoseError::IssuedInFuture);
        }
        if exp.saturating_sub(iat) > self.max_lifetime_s {
            return Err(JoseError::LifetimeTooLong);
        }
        let aud = c
            .strings("aud")
            .map_err(malformed)?
            .ok_or(JoseError::MissingClaim("aud"))?;
        if let Some(audience) = self.audience {
            if !aud.iter().any(|a| a == audience) {
                return Err(JoseError::AudienceMismatch);
            }
        }
        let sub = required(c, "sub")?;
        let jti = required(c, "jti")?;
        let client_id = required(c, "client_id")?;
        let tenant = match c.str(self.tenant_claim) {
            Ok(None) => None,
            Ok(Some(t)) => Some(TenantId::parse(&t).map_err(|_| JoseError::InvalidTenantClaim)?),
            Err(_) => return Err(JoseError::InvalidTenantClaim),
        };
        let sid = c.str("sid").map_err(malformed)?;
        let family = c.str(FAMILY_CLAIM).map_err(malformed)?;
        let scopes = c
            .str("scope")
            .map_err(malformed)?
            .map(|s| {
                s.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let roles = c
            .string_array(self.roles_claim)
            .map_err(malformed)?
            .unwrap_or_default();
        let cnf = confirmation(c)?;
        let act = object_claim(c, "act")?;
        let may_act = object_claim(c, "may_act")?;
        let exchanged_from = c
            .string_array(EXCHANGED_FROM_CLAIM)
            .map_err(malformed)?
            .unwrap_or_default();
        if exchanged_from.len() > MAX_ACTORS {
            return Err(JoseError::MalformedClaims);
        }
        Ok(AccessToken {
            sub,
            jti,
            client_id,
            aud,
            exp,
            iat,
            nbf,
            tenant,
            sid,
            family,
            scopes,
            roles,
            cnf,
            act,
            may_act,
            exchanged_from,
        })
    }
}

/// An access token verified against a key set in hand (the token service's own published keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub iss: String,
    pub sub: String,
    pub jti: String,
    pub client_id: String,
    pub aud: Vec<String>,
    pub exp: i64,
    pub iat: i64,
    pub nbf: Option<i64>,
    pub tenant: Option<TenantId>,
    pub sid: Option<String>,
    pub family: Option<String>,
    pub scopes: Vec<String>,
    pub roles: Vec<String>,
    pub cnf: Confirmation,
    pub act: Option<ActClaim>,
    pub may_act: Option<MayAct>,
    pub exchanged_from: Vec<String>,
    /// The `kid` of the key that verified it.
    pub kid: Option<String>,
}

/// Every step at once, for a caller holding its keys: parse, `typ`, `iss` exactly `issuer`, the
/// algorithm in `allowed`, the claim rules, the key named by `kid`, the signature.
pub fn verify(
    token: &str,
    max_len: usize,
    issuer_name: &str,
    allowed: &[Alg],
    keys: &KeySet,
    rules: &Rules<'_>,
    now: Timestamp,
) -> Result<Verified, JoseError> {
    let u = parse(token, max_len)?;
    let c = u.claims()?;
    let iss = issuer(&c)?;
    if iss != issuer_name {
        return Err(JoseError::IssuerMismatch);
    }
    if !allowed.contains(&u.header.alg) {
        return Err(JoseError::AlgNotAllowed);
    }
    let t = rules.check(&c, now)?;
    let key: &VerificationKey = keys
        .find(u.header.kid.as_deref())
        .ok_or(JoseError::UnknownKid)?;
    u.verify_with(key)?;
    Ok(Verified {
        iss: iss.into_owned(),
        sub: t.sub.into_owned(),
        jti: t.jti.into_owned(),
        client_id: t.client_id.into_owned(),
        aud: t.aud.into_iter().map(Cow::into_owned).collect(),
        exp: t.exp,
        iat: t.iat,
        nbf: t.nbf,
        tenant: t.tenant,
        sid: t.sid.map(Cow::into_owned),
        family: t.family.map(Cow::into_owned),
        scopes: t.scopes,
        roles: t.roles,
        cnf: t.cnf,
        act: t.act,
        may_act: t.may_act,
        exchanged_from: t.exchanged_from,
        kid: key.kid.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::public_jwk_for_jwks;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;

    fn rules() -> Rules<'static> {
        Rules {
            audience: Some("payments-api"),
            leeway_s: 30,
            max_lifetime_s: 3600,
            tenant_claim: "tenant",
            roles_claim: "roles",
        }
    }

    fn claims() -> serde_json::Value {
        json!({
            "iss": "https://auth.test", "sub": "cl_a", "aud": "payments-api",
            "exp": NOW + 600, "iat": NOW, "nbf": NOW, "jti": "j", "client_id": "cl_a",
            "scope": "payments:read  payments:write", "tenant": "acme", "roles": ["admin"],
        })
    }

    fn setup(alg: Alg) -> (Signer, KeySet) {
        let (_, pair) = SigningKeyPair::generate(alg).expect("key");
        let (jwk, kid) = public_jwk_for_jwks(&pair);
        let keys = crate::jwk::parse_jwks(json!({"keys": [jwk]}).to_string().as_bytes(), &Alg::ALL)
            .expect("jwks");
        (signer(pair, &kid), keys)
    }

    fn check(signer: &Signer, keys: &KeySet, c: &serde_json::Value) -> Result<Verified, JoseError> {
        let token = signer.sign(c).expect("sign");
        verify(
            &token,
            8192,
            "https://auth.test",
            &Alg::ALL,
            keys,
            &rules(),
            Timestamp::from_secs(NOW),
        )
    }

    #[test]
    fn typ_accepts_both_spellings() {
        for ok in ["at+jwt", "AT+JWT", "application/at+jwt"] {
            assert!(is_typ(ok), "{ok}");
        }
        for bad in ["JWT", "jwt", "at+jwt ", "application/jwt", ""] {
            assert!(!is_typ(bad), "{bad}");
        }
    }

    #[test]
    fn a_minted_token_verifies_for_every_signing_algorithm() {
        for alg in Alg::SIGNING {
            let (signer, keys) = setup(alg);
            let v = check(&signer, &keys, &claims()).expect("verifies");
            assert_eq!(v.sub, "cl_a");
            assert_eq!(v.kid.as_deref(), signer.kid());
            assert_eq!(v.scopes, ["payments:read", "payments:write"]);
            assert_eq!(v.roles, ["admin"]);
            assert_eq!(v.tenant.as_ref().map(|t| t.as_str()), Some("acme"));
            assert_eq!((v.iat, v.nbf, v.exp), (NOW, Some(NOW), NOW + 600));
            assert_eq!(v.sid, None, "a machine token carries no session");
        }
    }

    #[test]
    fn act_and_may_act_are_read_when_shaped_and_refused_when_not() {
        let (signer, keys) = setup(Alg::ES256);
        let v = check(&signer, &keys, &claims()).expect("no actor");
        assert_eq!((v.act, v.may_act), (None, None));
        let mut c = claims();
        c["act"] = json!({"sub": "cl_b", "act": {"sub": "cl_a"}});
        c["may_act"] = json!({"client_id": "cl_c"});
        let v = check(&signer, &keys, &c).expect("actors");
        let act = v.act.expect("act");
        assert_eq!(act.actors(), ["cl_b", "cl_a"]);
        assert_eq!(v.may_act.and_then(|m| m.client_id).as_deref(), Some("cl_c"));
        for (claim, bad) in [
            ("act", json!("cl_b")),
            ("act", json!({"act": {"sub": "cl_a"}})),
            ("act", json!({"sub": 7})),
            ("may_act", json!(["cl_c"])),
            ("may_act", json!({"sub": false})),
            ("act", json!(["cl_b"])),
            ("act", json!({"sub": "cl_b", "act": ["cl_a"]})),
        ] {
            let mut c = claims();
            c[claim] = bad.clone();
            assert_eq!(
                check(&signer, &keys, &c),
                Err(JoseError::MalformedClaims),
                "{claim}: {bad}"
            );
        }
    }

    #[test]
    fn cnf_is_read_when_known_and_refused_when_not() {
        use portcullis_core::confirmation::Thumbprint;
        let (signer, keys) = setup(Alg::EdDSA);
        let v = check(&signer, &keys, &claims()).expect("bearer");
        assert!(v.cnf.is_unbound());

        let jkt = Thumbprint::sha256_of(b"proof key");
        let mut c = claims();
        c["cnf"] = json!({"jkt": jkt.as_str()});
        let v = check(&signer, &keys, &c).expect("bound");
        assert_eq!(v.cnf.jkt.as_ref(), Some(&jkt));
        assert_eq!(v.cnf.x5t_s256, None);

        for bad in [
            json!({}),
            json!({"jwk": {"kty": "EC"}}),
            json!({"jkt": "not-a-thumbprint"}),
            json!({"jkt": jkt.as_str(), "kid": "k"}),
            json!(jkt.as_str()),
            json!(null),
        ] {
            let mut c = claims();
            c["cnf"] = bad.clone();
            assert_eq!(
                check(&signer, &keys, &c),
                Err(JoseError::UnsupportedConfirmation),
                "{bad}"
            );
        }
    }

    #[test]
    fn exchanged_from_is_read_when_a_short_list_of_strings_and_refused_otherwise() {
        let (signer, keys) = setup(Alg::ES256);
        let v = check(&signer, &keys, &claims()).expect("no lineage");
        assert!(v.exchanged_from.is_empty());
        let mut c = claims();
        c[EXCHANGED_FROM_CLAIM] = json!(["j_root", "j_mid"]);
        let v = check(&signer, &keys, &c).expect("lineage");
        assert_eq!(v.exchanged_from, ["j_root", "j_mid"]);
        let too_long: Vec<String> = (0..=MAX_ACTORS).map(|i| format!("j_{i}")).collect();
        for bad in [
            json!("j_root"),
            json!([7]),
            json!({"jti": "j"}),
            json!(too_long),
        ] {
            let mut c = claims();
            c[EXCHANGED_FROM_CLAIM] = bad.clone();
            assert_eq!(
                check(&signer, &keys, &c),
                Err(JoseError::MalformedClaims),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_user_tokens_sid_is_read_for_session_revocation() {
        let (signer, keys) = setup(Alg::EdDSA);
        let mut c = claims();
        c["sid"] = json!("ses_1");
        let v = check(&signer, &keys, &c).expect("verifies");
        assert_eq!(v.sid.as_deref(), Some("ses_1"));
    }

    #[test]
    fn each_claim_rule_refuses_with_its_reason() {
        let (signer, keys) = setup(Alg::EdDSA);
        let with = |k: &str, v: serde_json::Value| {
            let mut c = claims();
            c[k] = v;
            c
        };
        let without = |k: &str| {
            let mut c = claims();
            c.as_object_mut().expect("object").remove(k);
            c
        };
        let cases = vec![
            (
                with("iss", json!("https://other")),
                JoseError::IssuerMismatch,
            ),
            (without("iss"), JoseError::MissingClaim("iss")),
            (with("exp", json!(NOW - 30)), JoseError::Expired),
            (without("exp"), JoseError::MissingClaim("exp")),
            (with("exp", json!("soon")), JoseError::MalformedClaims),
            (with("nbf", json!(NOW + 31)), JoseError::NotYetValid),
            (with("iat", json!(NOW + 31)), JoseError::IssuedInFuture),
            (without("iat"), JoseError::MissingClaim("iat")),
            (with("iat", json!(NOW - 3001)), JoseError::LifetimeTooLong),
            (
                with("aud", json!(["other", "x"])),
                JoseError::AudienceMismatch,
            ),
            (without("aud"), JoseError::MissingClaim("aud")),
            (without("sub"), JoseError::MissingClaim("sub")),
            (without("jti"), JoseError::MissingClaim("jti")),
            (without("client_id"), JoseError::MissingClaim("client_id")),
            (
                with("tenant", json!("Not A Tenant!")),
                JoseError::InvalidTenantClaim,
            ),
            (with("tenant", json!(5)), JoseError::InvalidTenantClaim),
            (with("roles", json!("admin")), JoseError::MalformedClaims),
            (with("sid", json!(7)), JoseError::MalformedClaims),
        ];
        for (c, want) in cases {
            assert_eq!(check(&signer, &keys, &c).err(), Some(want), "{c}");
        }
        // Leeway: 29 s past exp still passes, an absent nbf is fine.
        assert!(check(&signer, &keys, &with("exp", json!(NOW - 29))).is_ok());
        assert!(check(&signer, &keys, &without("nbf")).is_ok());
        assert!(check(&signer, &keys, &with("aud", json!(["x", "payments-api"]))).is_ok());
    }

    #[test]
    fn the_issuer_may_check_without_an_audience() {
        let (signer, keys) = setup(Alg::ES256);
        let mut c = claims();
        c["aud"] = json!("anything");
        let token = signer.sign(&c).expect("sign");
        let any = Rules {
            audience: None,
            ..rules()
        };
        let v = verify(
            &token,
            8192,
            "https://auth.test",
            &Alg::ALL,
            &keys,
            &any,
            Timestamp::from_secs(NOW),
        )
        .expect("no audience rule");
        assert_eq!(v.aud, ["anything"]);
    }

    #[test]
    fn header_rules_refuse_other_kinds_algorithms_and_keys() {
        let (_, pair) = SigningKeyPair::generate(Alg::EdDSA).expect("key");
        let (jwk, kid) = public_jwk_for_jwks(&pair);
        let keys = crate::jwk::parse_jwks(json!({"keys": [jwk]}).to_string().as_bytes(), &Alg::ALL)
            .expect("jwks");
        let at = |s: &Signer| {
            verify(
                &s.sign(&claims()).expect("sign"),
                8192,
                "https://auth.test",
                &[Alg::EdDSA],
                &keys,
                &rules(),
                Timestamp::from_secs(NOW),
            )
        };
        let identity = Signer::new(pair, Some("portcullis-identity+jwt"), Some(&kid));
        assert_eq!(at(&identity).err(), Some(JoseError::WrongTyp));
        let (_, pair) = SigningKeyPair::generate(Alg::EdDSA).expect("key");
        let no_typ = Signer::new(pair, None, Some(&kid));
        assert_eq!(at(&no_typ).err(), Some(JoseError::WrongTyp));
        let (_, pair) = SigningKeyPair::generate(Alg::EdDSA).expect("key");
        let other_key = signer(pair, &kid);
        assert_eq!(at(&other_key).err(), Some(JoseError::BadSignature));
        let (_, pair) = SigningKeyPair::generate(Alg::EdDSA).expect("key");
        let unknown = signer(pair, "nope");
        assert_eq!(at(&unknown).err(), Some(JoseError::UnknownKid));
        let (_, pair) = SigningKeyPair::generate(Alg::ES256).expect("key");
        let es = signer(pair, &kid);
        assert_eq!(at(&es).err(), Some(JoseError::AlgNotAllowed));
        let mismatch = verify(
            &es.sign(&claims()).expect("sign"),
            8192,
            "https://auth.test",
            &Alg::ALL,
            &keys,
            &rules(),
            Timestamp::from_secs(NOW),
        );
        assert_eq!(mismatch.err(), Some(JoseError::AlgKeyMismatch));
        assert_eq!(
            verify(
                &"a".repeat(100),
                99,
                "i",
                &Alg::ALL,
                &keys,
                &rules(),
                Timestamp::from_secs(NOW)
            )
            .err(),
            Some(JoseError::TooLarge)
        );
    }
}
