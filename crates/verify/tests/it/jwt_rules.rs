//! The JWT rules, table-driven: every token here is minted by independent code (p256,
//! ed25519-compact, jwt-compact, hmac), valid except for the one thing each case breaks.

use crate::common;

use std::sync::Arc;

use common::*;
use hmac::Mac;
use portcullis_core::revocation::{RevocationKind, RevocationRecord, RevokedBy};
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_verify::{
    Alg, IssuerConfig, KeySource, Policy, Presented, Reason, RequestFacts, RevocationSource,
    Verifier, VerifierConfig,
};
use serde_json::{json, Value};

struct Fixture {
    ec: EcKey,
    ec2: EcKey,
    ed: EdKey,
    verifier: Verifier,
    clock: Arc<portcullis_core::time::ManualClock>,
}

fn fixture() -> Fixture {
    let ec = EcKey::new("ec-1", 7);
    let ec2 = EcKey::new("ec-2", 9);
    let ed = EdKey::new("ed-1", 3);
    let clock = clock();
    let verifier = static_verifier(jwks_of(&[ec.jwk(), ec2.jwk(), ed.jwk()]), clock.clone());
    Fixture {
        ec,
        ec2,
        ed,
        verifier,
        clock,
    }
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    v[key] = value;
    v
}

fn without(mut v: Value, key: &str) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove(key);
    }
    v
}

async fn verdict(f: &Fixture, token: &str) -> Result<(), Reason> {
    f.verifier
        .verify_access_token(token)
        .await
        .map(|_| ())
        .map_err(|d| d.reason)
}

#[tokio::test]
async fn a_valid_token_is_accepted_with_its_principal() {
    let f = fixture();
    let t = es256_token(&f.ec, &header("ec-1", "ES256"), &claims());
    let p = f.verifier.verify_access_token(&t).await.expect("valid");
    assert_eq!(p.subject, "cl_billing");
    assert_eq!(p.client_id.as_deref(), Some("cl_billing"));
    assert_eq!(p.tenant, Some(TenantId::parse("acme").expect("t")));
    assert_eq!(p.scopes, vec!["payments:read", "payments:write"]);
    assert_eq!(p.credential_id, "jti-1");
    assert_eq!(p.issuer.as_deref(), Some(ISSUER));
    // EdDSA and an audience array containing ours are fine too.
    let t = jws(
        &header("ed-1", "EdDSA").to_string(),
        &with(claims(), "aud", json!(["other", AUDIENCE])).to_string(),
        |i| f.ed.sign(i),
    );
    assert_eq!(verdict(&f, &t).await, Ok(()));
}

#[tokio::test]
async fn every_rule_refuses_its_violation() {
    let f = fixture();
    let ok_h = header("ec-1", "ES256");
    let ok_c = claims();
    let es = |h: &Value, c: &Value| es256_token(&f.ec, h, c);
    let hs256_with_public_key = {
        let input = format!(
            "{}.{}",
            b64(header("ec-1", "HS256").to_string()),
            b64(ok_c.to_string())
        );
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(&f.ec.public_sec1()).expect("hmac");
        mac.update(input.as_bytes());
        format!("{input}.{}", b64(mac.finalize().into_bytes()))
    };
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "at+jwt", "kid": "ec-1"}).to_string()),
        b64(ok_c.to_string())
    );
    let attacker = EcKey::new("ec-1", 42);
    let mut flipped = es(&ok_h, &ok_c).into_bytes();
    let n = flipped.len();
    flipped[n - 5] = if flipped[n - 5] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("utf8");
    let s = NOW_S;

    let cases: Vec<(&str, String, Reason)> = vec![
        ("alg none", unsigned, Reason::AlgNone),
        (
            "HS256 keyed with the public key",
            hs256_with_public_key,
            Reason::AlgNotAllowed,
        ),
        (
            "EdDSA header on the ES256 key",
            jws(
                &header("ec-1", "EdDSA").to_string(),
                &ok_c.to_string(),
                |i| f.ed.sign(i),
            ),
            Reason::AlgKeyMismatch,
        ),
        (
            "ES256 header on the EdDSA key",
            es(&header("ed-1", "ES256"), &ok_c),
            Reason::AlgKeyMismatch,
        ),
        (
            "ES384 not allowed for this issuer",
            es(&header("ec-1", "ES384"), &ok_c),
            Reason::AlgNotAllowed,
        ),
        (
            "embedded jwk with the attacker's key is ignored",
            jws(
                &with(ok_h.clone(), "jwk", attacker.jwk()).to_string(),
                &ok_c.to_string(),
                |i| attacker.sign(i),
            ),
            Reason::BadSignature,
        ),
        (
            "jku and x5u are ignored",
            jws(
                &with(
                    with(
                        header("evil", "ES256"),
                        "jku",
                        json!("https://evil.example/jwks"),
                    ),
                    "x5u",
                    json!("https://evil.example/cert"),
                )
                .to_string(),
                &ok_c.to_string(),
                |i| attacker.sign(i),
            ),
            Reason::UnknownKid,
        ),
        (
            "x5c is ignored",
            jws(
                &with(ok_h.clone(), "x5c", json!(["MIIB"])).to_string(),
                &ok_c.to_string(),
                |i| attacker.sign(i),
            ),
            Reason::BadSignature,
        ),
        (
            "crit",
            es(&with(ok_h.clone(), "crit", json!(["exp"])), &ok_c),
            Reason::UnsupportedCrit,
        ),
        (
            "typ missing",
            es(&without(ok_h.clone(), "typ"), &ok_c),
            Reason::WrongTyp,
        ),
        (
            "typ JWT",
            es(&with(ok_h.clone(), "typ", json!("JWT")), &ok_c),
            Reason::WrongTyp,
        ),
        (
            "kid unknown",
            es(&header("nope", "ES256"), &ok_c),
            Reason::UnknownKid,
        ),
        (
            "kid missing among several keys",
            es(&without(ok_h.clone(), "kid"), &ok_c),
            Reason::MissingKid,
        ),
        (
            "issuer unknown",
            es(
                &ok_h,
                &with(ok_c.clone(), "iss", json!("https://evil.example")),
            ),
            Reason::UnknownIssuer,
        ),
        (
            "issuer with a trailing slash",
            es(
                &ok_h,
                &with(ok_c.clone(), "iss", json!(format!("{ISSUER}/"))),
            ),
            Reason::UnknownIssuer,
        ),
        (
            "issuer missing",
            es(&ok_h, &without(ok_c.clone(), "iss")),
            Reason::MissingClaim("iss"),
        ),
        (
            "audience other",
            es(&ok_h, &with(ok_c.clone(), "aud", json!("other-api"))),
            Reason::AudienceMismatch,
        ),
        (
            "audience list without ours",
            es(&ok_h, &with(ok_c.clone(), "aud", json!(["a", "b"]))),
            Reason::AudienceMismatch,
        ),
        (
            "audience missing",
            es(&ok_h, &without(ok_c.clone(), "aud")),
            Reason::MissingClaim("aud"),
        ),
        (
            "audience a number",
            es(&ok_h, &with(ok_c.clone(), "aud", json!(5))),
            Reason::MalformedClaims,
        ),
        (
            "exp missing",
            es(&ok_h, &without(ok_c.clone(), "exp")),
            Reason::MissingClaim("exp"),
        ),
        (
            "exp past leeway",
            es(&ok_h, &with(ok_c.clone(), "exp", json!(s - 31))),
            Reason::Expired,
        ),
        (
            "exp a string",
            es(&ok_h, &with(ok_c.clone(), "exp", json!("9999999999"))),
            Reason::MalformedClaims,
        ),
        (
            "exp fractional",
            es(&ok_h, &with(ok_c.clone(), "exp", json!(1.5e10))),
            Reason::MalformedClaims,
        ),
        (
            "nbf in the future",
            es(&ok_h, &with(ok_c.clone(), "nbf", json!(s + 31))),
            Reason::NotYetValid,
        ),
        (
            "iat in the future",
            es(&ok_h, &with(ok_c.clone(), "iat", json!(s + 31))),
            Reason::IssuedInFuture,
        ),
        (
            "iat missing",
            es(&ok_h, &without(ok_c.clone(), "iat")),
            Reason::MissingClaim("iat"),
        ),
        (
            "sub missing",
            es(&ok_h, &without(ok_c.clone(), "sub")),
            Reason::MissingClaim("sub"),
        ),
        (
            "jti missing",
            es(&ok_h, &without(ok_c.clone(), "jti")),
            Reason::MissingClaim("jti"),
        ),
        (
            "client_id missing",
            es(&ok_h, &without(ok_c.clone(), "client_id")),
            Reason::MissingClaim("client_id"),
        ),
        (
            "tenant not a tenant id",
            es(&ok_h, &with(ok_c.clone(), "tenant", json!("ACME corp"))),
            Reason::InvalidTenantClaim,
        ),
        (
            "tenant not a string",
            es(&ok_h, &with(ok_c.clone(), "tenant", json!(["acme"]))),
            Reason::InvalidTenantClaim,
        ),
        (
            "scope not a string",
            es(&ok_h, &with(ok_c.clone(), "scope", json!(["a"]))),
            Reason::MalformedClaims,
        ),
        (
            "roles not an array",
            es(&ok_h, &with(ok_c.clone(), "roles", json!("admin"))),
            Reason::MalformedClaims,
        ),
        (
            "repeated claim",
            jws(
                &ok_h.to_string(),
                &ok_c.to_string().replacen('{', "{\"sub\":\"admin\",", 1),
                |i| f.ec.sign(i),
            ),
            Reason::DuplicateMember,
        ),
        (
            "padded base64url",
            {
                let t = es(&ok_h, &ok_c);
                let (rest, sig) = t.rsplit_once('.').expect("dots");
                format!("{rest}.{sig}==")
            },
            Reason::BadBase64,
        ),
        ("flipped signature byte", flipped, Reason::BadSignature),
        (
            "signed by another key under the same kid",
            es256_token(&attacker, &ok_h, &ok_c),
            Reason::BadSignature,
        ),
        (
            "signed by the other issuer key",
            es256_token(&f.ec2, &ok_h, &ok_c),
            Reason::BadSignature,
        ),
        (
            "oversized",
            es(&ok_h, &with(ok_c.clone(), "pad", json!("x".repeat(9000)))),
            Reason::TooLarge,
        ),
        ("not a JWS", "not-a-token".into(), Reason::Malformed),
    ];
    let mut failures = Vec::new();
    for (name, token, want) in &cases {
        let got = verdict(&f, token).await;
        if got != Err(*want) {
            failures.push(format!("{name}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // And the leeway is a tolerance, not a rule violation.
    for (name, c) in [
        (
            "exp within leeway",
            with(ok_c.clone(), "exp", json!(s - 29)),
        ),
        (
            "nbf within leeway",
            with(ok_c.clone(), "nbf", json!(s + 29)),
        ),
        (
            "iat within leeway",
            with(ok_c.clone(), "iat", json!(s + 29)),
        ),
        ("no nbf", without(ok_c.clone(), "nbf")),
    ] {
        assert_eq!(verdict(&f, &es(&ok_h, &c)).await, Ok(()), "{name}");
    }
}

#[tokio::test]
async fn tokens_from_an_independent_jose_library_are_accepted() {
    use jwt_compact::{AlgorithmExt, Claims, Header};
    #[derive(serde::Serialize)]
    struct Custom {
        iss: &'static str,
        sub: &'static str,
        aud: &'static str,
        jti: &'static str,
        client_id: &'static str,
        scope: &'static str,
        tenant: &'static str,
    }
    let signing = p256::ecdsa::SigningKey::from_slice(&[5u8; 32]).expect("key");
    let es256 = jwt_compact::alg::Es256;
    let verifying: p256::ecdsa::VerifyingKey = *signing.verifying_key();
    let point = verifying.to_encoded_point(false);
    let jwk = json!({"kty":"EC","crv":"P-256","kid":"jc-1","x":b64(point.x().expect("x")),"y":b64(point.y().expect("y"))});
    let clock = clock();
    let v = static_verifier(jwks_of(&[jwk]), clock);
    let mut claims = Claims::new(Custom {
        iss: ISSUER,
        sub: "svc",
        aud: AUDIENCE,
        jti: "j-77",
        client_id: "svc",
        scope: "payments:read",
        tenant: "acme",
    });
    let at = |s: i64| chrono::DateTime::from_timestamp(s, 0).expect("time");
    claims.issued_at = Some(at(NOW_S));
    claims.expiration = Some(at(NOW_S + 300));
    let header = Header::empty()
        .with_key_id("jc-1")
        .with_token_type("at+jwt");
    let token = es256.token(&header, &claims, &signing).expect("token");
    let p = v.verify_access_token(&token).await.expect("accepted");
    assert_eq!(p.credential_id, "j-77");
}

#[tokio::test]
async fn wrong_tenant_and_missing_scope_are_403_after_a_good_signature() {
    let f = fixture();
    let t = es256_token(&f.ec, &header("ec-1", "ES256"), &claims());
    let globex = TenantId::parse("globex").expect("t");
    let acme = TenantId::parse("acme").expect("t");
    let bound = Policy::access_token().tenant_from_path("tenant");
    let facts = |t| RequestFacts {
        resource_tenant: t,
        client_ip: None,
    };
    let deny = f
        .verifier
        .check(Presented::AccessToken(&t), &bound, facts(Some(&globex)))
        .await
        .expect_err("wrong tenant");
    assert_eq!(deny.reason, Reason::TenantMismatch);
    assert_eq!(deny.class().status(), 403);
    f.verifier
        .check(Presented::AccessToken(&t), &bound, facts(Some(&acme)))
        .await
        .expect("right tenant");
    let needs_admin = Policy::access_token().all_scopes(["payments:admin"]);
    let deny = f
        .verifier
        .check(Presented::AccessToken(&t), &needs_admin, facts(None))
        .await
        .expect_err("scope");
    assert_eq!(deny.reason, Reason::MissingScope);
    assert_eq!(deny.class().error_code(), Some("insufficient_scope"));
}

/// A route's own audience replaces the verifier's, and a token cached after passing one route
/// is still checked against the next route's audience.
#[tokio::test]
async fn a_route_audience_is_enforced_on_cached_tokens_too() {
    let f = fixture();
    let payments = es256_token(&f.ec, &header("ec-1", "ES256"), &claims());
    let ledger = es256_token(
        &f.ec,
        &header("ec-1", "ES256"),
        &with(
            with(claims(), "aud", json!("ledger-api")),
            "jti",
            json!("jti-2"),
        ),
    );
    let default_route = Policy::access_token();
    let ledger_route = Policy::access_token().audience("ledger-api");
    let facts = RequestFacts {
        resource_tenant: None,
        client_ip: None,
    };
    let check = |token: &str, policy: &Policy| {
        let (verifier, token, policy) = (&f.verifier, token.to_owned(), policy.clone());
        async move {
            verifier
                .check(Presented::AccessToken(&token), &policy, facts)
                .await
                .map(|_| ())
                .map_err(|d| d.reason)
        }
    };
    // Uncached and then cached, each token passes only the route naming its audience.
    for _ in 0..2 {
        assert_eq!(check(&payments, &default_route).await, Ok(()));
        assert_eq!(check(&ledger, &ledger_route).await, Ok(()));
        assert_eq!(
            check(&payments, &ledger_route).await,
            Err(Reason::AudienceMismatch)
        );
        assert_eq!(
            check(&ledger, &default_route).await,
            Err(Reason::AudienceMismatch)
        );
    }
    assert_eq!(f.verifier.cached_tokens(), 2);
    // An empty audience is no audience: the verifier's applies.
    assert_eq!(Policy::access_token().audience(""), Policy::access_token());
}

/// A token bound to a key (`cnf`) passes only with proof of that key, on every request (the
/// second round is served from the cache); one bound by an unknown method is refused outright.
#[tokio::test]
async fn a_bound_token_needs_proof_of_its_key_cached_or_not() {
    use portcullis_verify::{BindingError, Possession, Scheme, Thumbprint};
    let f = fixture();
    let (jkt, other) = (
        Thumbprint::sha256_of(b"dpop key"),
        Thumbprint::sha256_of(b"another key"),
    );
    let x5t = Thumbprint::sha256_of(b"certificate der");
    let bound = es256_token(
        &f.ec,
        &header("ec-1", "ES256"),
        &with(claims(), "cnf", json!({"jkt": jkt.as_str()})),
    );
    let cert_bound = es256_token(
        &f.ec,
        &header("ec-1", "ES256"),
        &with(
            with(claims(), "cnf", json!({"x5t#S256": x5t.as_str()})),
            "jti",
            json!("jti-2"),
        ),
    );
    let v = &f.verifier;
    let with_key = |key| Possession {
        scheme: Scheme::Dpop,
        dpop_key: key,
        client_certificate: None,
    };
    for _ in 0..2 {
        let p = v
            .verify_access_token_with(&bound, AUDIENCE, &with_key(Some(&jkt)))
            .await
            .expect("proved");
        assert_eq!(
            p.confirmation.as_ref().and_then(|c| c.jkt.as_ref()),
            Some(&jkt)
        );
        let reason = |r: Result<_, portcullis_verify::Denial>| r.map(|_| ()).map_err(|d| d.reason);
        assert_eq!(
            reason(v.verify_access_token(&bound).await),
            Err(Reason::Binding(BindingError::DpopBoundAsBearer))
        );
        assert_eq!(
            reason(
                v.verify_access_token_with(&bound, AUDIENCE, &with_key(Some(&other)))
                    .await
            ),
            Err(Reason::Binding(BindingError::DpopKeyMismatch))
        );
        assert_eq!(
            reason(v.verify_access_token(&cert_bound).await),
            Err(Reason::Binding(BindingError::CertificateMissing))
        );
        let with_cert = Possession {
            client_certificate: Some(&x5t),
            ..Possession::BEARER
        };
        assert_eq!(
            reason(
                v.verify_access_token_with(&cert_bound, AUDIENCE, &with_cert)
                    .await
            ),
            Ok(())
        );
        let denial = v.verify_access_token(&bound).await.expect_err("bearer");
        assert_eq!(denial.class().error_code(), Some("invalid_token"));
    }
    let unknown = es256_token(
        &f.ec,
        &header("ec-1", "ES256"),
        &with(
            with(claims(), "cnf", json!({"jwk": {"kty": "EC"}})),
            "jti",
            json!("jti-3"),
        ),
    );
    assert_eq!(
        verdict(&f, &unknown).await,
        Err(Reason::UnsupportedConfirmation)
    );
}

fn record(seq: i64, tenant: &str, kind: RevocationKind, subject: &str) -> RevocationRecord {
    RevocationRecord {
        seq,
        tenant: TenantId::parse(tenant).expect("t"),
        kind,
        subject: subject.into(),
        revoked_before: None,
        expires_at: None,
        created_at: Timestamp::from_secs(NOW_S),
    }
}

#[tokio::test]
async fn revocation_applies_to_cached_tokens() {
    let f = fixture();
    let t = es256_token(&f.ec, &header("ec-1", "ES256"), &claims());
    f.verifier.verify_access_token(&t).await.expect("valid");
    assert_eq!(f.verifier.cached_tokens(), 1);
    f.verifier.verify_access_token(&t).await.expect("cached");
    f.verifier
        .revocations()
        .apply(&record(1, "acme", RevocationKind::Token, "jti-1"));
    assert_eq!(
        verdict(&f, &t).await,
        Err(Reason::Revoked(RevokedBy::Token))
    );
    // Same jti in another tenant is a different token.
    let other = es256_token(
        &f.ec,
        &header("ec-1", "ES256"),
        &with(claims(), "tenant", json!("globex")),
    );
    assert_eq!(verdict(&f, &other).await, Ok(()));
}

#[tokio::test]
async fn client_subject_and_signing_key_revocations() {
    let f = fixture();
    let t = es256_token(&f.ec, &header("ec-1", "ES256"), &claims());
    let later = es256_token(
        &f.ec,
        &header("ec-1", "ES256"),
        &with(
            with(claims(), "iat", json!(NOW_S + 10)),
            "jti",
            json!("jti-2"),
        ),
    );
    let mut client = record(1, "acme", RevocationKind::Client, "cl_billing");
    client.revoked_before = Some(Timestamp::from_secs(NOW_S + 5));
    f.verifier.revocations().apply(&client);
    assert_eq!(
        verdict(&f, &t).await,
        Err(Reason::Revoked(RevokedBy::Client))
    );
    f.clock.set(Timestamp::from_secs(NOW_S + 10));
    f.verifier.revocations().touch(1);
    assert_eq!(verdict(&f, &later).await, Ok(()), "issued after the mark");
    f.verifier
        .revocations()
        .apply(&record(2, "system", RevocationKind::SigningKey, "ec-1"));
    // The key itself is forgotten with the token cached under it: its kid is unknown now.
    assert_eq!(verdict(&f, &later).await, Err(Reason::UnknownKid));
    // Another client acting for the same subject: only the subject mark covers it.
    let by_ed = jws(
        &header("ed-1", "EdDSA").to_string(),
        &with(claims(), "client_id", json!("cl_other")).to_string(),
        |i| f.ed.sign(i),
    );
    let mut subject = record(3, "acme", RevocationKind::Subject, "cl_billing");
    subject.revoked_before = None;
    f.verifier.revocations().apply(&subject);
    assert_eq!(
        verdict(&f, &by_ed).await,
        Err(Reason::Revoked(RevokedBy::Subject))
    );
}

#[tokio::test]
async fn a_revoked_signing_key_refuses_tokens_dated_after_it_and_empties_the_token_cache() {
    let f = fixture();
    let minted = |iat: i64, jti: &str| {
        es256_token(
            &f.ec,
            &header("ec-1", "ES256"),
            &with(
                with(with(claims(), "iat", json!(iat)), "exp", json!(iat + 600)),
                "jti",
                json!(jti),
            ),
        )
    };
    let before = minted(NOW_S, "jti-before");
    let by_ec2 = es256_token(&f.ec2, &header("ec-2", "ES256"), &claims());
    verdict(&f, &before).await.expect("valid before");
    verdict(&f, &by_ec2).await.expect("valid before");
    assert_eq!(f.verifier.cached_tokens(), 2);
    // What the server wrote before this rule: a bounded mark that lapses after an hour.
    let mut r = record(1, "system", RevocationKind::SigningKey, "ec-1");
    r.revoked_before = Some(Timestamp::from_secs(NOW_S));
    r.expires_at = Some(Timestamp::from_secs(NOW_S + 3600));
    f.verifier.revocations().apply(&r);
    assert_eq!(
        f.verifier.cached_tokens(),
        1,
        "the revoked key's cached token is dropped, the other key's stays"
    );
    assert_eq!(verdict(&f, &before).await, Err(Reason::UnknownKid));
    // The thief mints with the stolen key after the revocation, and later still.
    f.clock.set(Timestamp::from_secs(NOW_S + 60));
    f.verifier.revocations().touch(1);
    let after = minted(NOW_S + 60, "jti-after");
    assert_eq!(verdict(&f, &after).await, Err(Reason::UnknownKid));
    f.clock.set(Timestamp::from_secs(NOW_S + 7200));
    f.verifier.revocations().touch(1);
    let much_later = minted(NOW_S + 7200, "jti-later");
    assert_eq!(
        verdict(&f, &much_later).await,
        Err(Reason::UnknownKid),
        "the key stays forgotten after the record's expiry"
    );
    assert_eq!(
        f.verifier
            .revocations()
            .token_revoked(&portcullis_core::revocation::TokenIdentity {
                tenant: &TenantId::parse("acme").expect("t"),
                jti: "jti-later",
                client_id: Some("cl_billing"),
                subject: "cl_billing",
                kid: "ec-1",
                family: None,
                sid: None,
                exchanged_from: &[],
                issued_at: Timestamp::from_secs(NOW_S + 7200),
            }),
        Some(RevokedBy::SigningKey),
        "and the mark itself is never pruned"
    );
    let fresh_ec2 = es256_token(
        &f.ec2,
        &header("ec-2", "ES256"),
        &with(
            with(
                with(claims(), "iat", json!(NOW_S + 7200)),
                "exp",
                json!(NOW_S + 7800),
            ),
            "jti",
            json!("jti-ec2"),
        ),
    );
    assert_eq!(
        verdict(&f, &fresh_ec2).await,
        Ok(()),
        "other keys unaffected"
    );
}

#[tokio::test]
async fn a_token_living_longer_than_the_maximum_lifetime_is_refused() {
    let f = fixture();
    let lasting = |secs: i64| {
        es256_token(
            &f.ec,
            &header("ec-1", "ES256"),
            &with(
                with(claims(), "exp", json!(NOW_S + secs)),
                "jti",
                json!(format!("jti-{secs}")),
            ),
        )
    };
    assert_eq!(verdict(&f, &lasting(3600)).await, Ok(()), "the default cap");
    assert_eq!(
        verdict(&f, &lasting(3601)).await,
        Err(Reason::LifetimeTooLong)
    );
    assert_eq!(
        verdict(&f, &lasting(30 * 24 * 3600)).await,
        Err(Reason::LifetimeTooLong),
        "a month-long token minted with a stolen key"
    );
    // The cap is configurable.
    let mut cfg = VerifierConfig::new(
        IssuerConfig::new(ISSUER, KeySource::Static(jwks_of(&[f.ec.jwk()]))),
        AUDIENCE,
        RevocationSource::InsecureNone,
    );
    cfg.max_token_lifetime = std::time::Duration::from_secs(300);
    let strict = Verifier::with_parts(cfg.clone(), f.clock.clone(), Arc::new(FakeFetch::default()))
        .expect("verifier");
    assert_eq!(
        strict
            .verify_access_token(&lasting(600))
            .await
            .map(|_| ())
            .map_err(|d| d.reason),
        Err(Reason::LifetimeTooLong)
    );
    cfg.max_token_lifetime = std::time::Duration::ZERO;
    assert!(Verifier::with_parts(cfg, f.clock.clone(), Arc::new(FakeFetch::default())).is_err());
}

#[tokio::test]
async fn a_stale_feed_fails_closed() {
    let f = fixture();
    let t = es256_token(
        &f.ec,
        &header("ec-1", "ES256"),
        &with(claims(), "exp", json!(NOW_S + 3600)),
    );
    assert_eq!(verdict(&f, &t).await, Ok(()));
    f.clock.set(Timestamp::from_secs(NOW_S + 31));
    assert_eq!(verdict(&f, &t).await, Err(Reason::RevocationFeedStale));
    f.verifier.revocations().touch(0);
    assert_eq!(verdict(&f, &t).await, Ok(()));

    // Before the first catch-up nothing is accepted either.
    let ec = EcKey::new("ec-1", 7);
    let cfg = VerifierConfig::new(
        IssuerConfig::new(ISSUER, KeySource::Static(jwks_of(&[ec.jwk()]))),
        AUDIENCE,
        RevocationSource::Embedded {
            staleness_bound: std::time::Duration::from_secs(30),
        },
    );
    let fresh =
        Verifier::with_parts(cfg, clock(), Arc::new(FakeFetch::default())).expect("verifier");
    let deny = fresh
        .verify_access_token(&t)
        .await
        .expect_err("not caught up");
    assert_eq!(deny.reason, Reason::RevocationFeedStale);
}

#[tokio::test]
async fn configuration_refuses_weak_settings() {
    let ec = EcKey::new("ec-1", 7);
    let mut cfg = VerifierConfig::new(
        IssuerConfig::new(ISSUER, KeySource::Static(jwks_of(&[ec.jwk()]))),
        AUDIENCE,
        RevocationSource::InsecureNone,
    );
    cfg.leeway = std::time::Duration::from_secs(61);
    assert!(Verifier::with_parts(cfg.clone(), clock(), Arc::new(FakeFetch::default())).is_err());
    cfg.leeway = std::time::Duration::from_secs(60);
    cfg.issuers[0].algorithms = vec![];
    assert!(Verifier::with_parts(cfg.clone(), clock(), Arc::new(FakeFetch::default())).is_err());
    cfg.issuers[0].algorithms = vec![Alg::ES256];
    cfg.issuers[0].keys = KeySource::Static("{\"keys\":[]}".into());
    assert!(Verifier::with_parts(cfg, clock(), Arc::new(FakeFetch::default())).is_err());
}

#[tokio::test]
async fn an_issuer_allowing_es384_still_pins_the_key_algorithm() {
    let ec = EcKey::new("ec-1", 7);
    let cfg = VerifierConfig::new(
        IssuerConfig::new(ISSUER, KeySource::Static(jwks_of(&[ec.jwk()])))
            .algorithms([Alg::ES256, Alg::ES384]),
        AUDIENCE,
        RevocationSource::InsecureNone,
    );
    let v = Verifier::with_parts(cfg, clock(), Arc::new(FakeFetch::default())).expect("v");
    let t = es256_token(&ec, &header("ec-1", "ES384"), &claims());
    assert_eq!(
        v.verify_access_token(&t)
            .await
            .map(|_| ())
            .map_err(|d| d.reason),
        Err(Reason::AlgKeyMismatch)
    );
}
