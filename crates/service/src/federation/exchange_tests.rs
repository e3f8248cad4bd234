use std::sync::Arc;

use portcullis_core::oauth::Audience;
use portcullis_core::tenant::TenantId;
use portcullis_jose::sign::{public_jwk_for_jwks, Signer, SigningKeyPair};
use portcullis_jose::Alg;
use portcullis_store::{
    KeySourceRecord, NewTenant, SqliteStore, Store, TrustRuleRecord, TrustedIssuerRecord,
};
use serde_json::{json, Value};

use super::*;

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://kube.internal";
const AUD: &str = "https://auth.acme.example";

struct Fixture {
    store: Arc<dyn Store>,
    signer: Signer,
    _dir: tempfile::TempDir,
}

fn tid(s: &str) -> TenantId {
    TenantId::parse(s).expect("tenant id")
}

async fn fixture(key_source: Option<KeySourceRecord>) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("db"))
            .await
            .expect("store"),
    );
    let now = Timestamp::from_secs(NOW);
    store
        .create_tenant(
            &NewTenant {
                id: tid("acme"),
                display_name: "acme".into(),
            },
            now,
        )
        .await
        .expect("tenant");
    let (_, pair) = SigningKeyPair::generate(Alg::ES256).expect("key");
    let (jwk, kid) = public_jwk_for_jwks(&pair);
    let key_source =
        key_source.unwrap_or_else(|| KeySourceRecord::Jwks(json!({"keys": [jwk]}).to_string()));
    store
        .create_trusted_issuer(&TrustedIssuerRecord {
            tenant: tid("acme"),
            issuer: ISS.into(),
            preset: "kubernetes".into(),
            key_source,
            algorithms: vec!["ES256".into()],
            max_token_age_s: 86_400,
            created_at: now,
            updated_at: now,
        })
        .await
        .expect("issuer");
    store
        .create_trust_rule(&TrustRuleRecord {
            tenant: tid("acme"),
            id: "payments-api".into(),
            issuer: ISS.into(),
            audience: AUD.into(),
            conditions: json!([{"claim": "namespace", "equals": "payments"},
                               {"claim": "service_account", "equals": "api"}])
            .to_string(),
            audiences: vec!["payments".into()],
            scopes: vec!["read".into(), "write".into()],
            max_lifetime_s: 900,
            max_token_age_s: None,
            bound_to_subject_lifetime: true,
            client_id: None,
            created_at: now,
            updated_at: now,
        })
        .await
        .expect("rule");
    Fixture {
        store,
        signer: Signer::new(pair, Some("JWT"), Some(&kid)),
        _dir: dir,
    }
}

fn pod_claims(jti: &str) -> Value {
    json!({"iss": ISS, "sub": "system:serviceaccount:payments:api", "aud": [AUD],
           "iat": NOW - 60, "nbf": NOW - 60, "exp": NOW + 600, "jti": jti,
           "kubernetes.io": {"namespace": "payments",
                             "serviceaccount": {"name": "api", "uid": "u-1"}}})
}

async fn run(
    f: &Fixture,
    token: &str,
    scope: Option<&str>,
    targets: &[&str],
) -> Result<Admitted, Refused> {
    let tenant = tid("acme");
    let req = Request {
        tenant: &tenant,
        purpose: portcullis_core::federation::rule::Use::Grant,
        assertion_audiences: &[],
        subject_token: token,
        rule: None,
        scope,
        targets,
        now: Timestamp::from_secs(NOW),
        leeway: Duration::from_secs(30),
        tenant_cap: Duration::from_secs(3600),
        keys: None,
        issuers: None,
    };
    evaluate(f.store.as_ref(), &req).await
}

/// [`admit`] through `cache` at `now`.
async fn admit_cached(
    f: &Fixture,
    cache: &TrustedIssuers,
    token: &str,
    now: Timestamp,
) -> Result<Admitted, Refused> {
    let tenant = tid("acme");
    let req = Request {
        tenant: &tenant,
        purpose: Use::Grant,
        assertion_audiences: &[],
        subject_token: token,
        rule: None,
        scope: None,
        targets: &[],
        now,
        leeway: Duration::from_secs(30),
        tenant_cap: Duration::from_secs(3600),
        keys: None,
        issuers: Some(cache),
    };
    admit(f.store.as_ref(), &req).await
}

fn sign(f: &Fixture, claims: &Value) -> String {
    f.signer.sign(claims).expect("sign")
}

#[tokio::test]
async fn a_pod_token_is_admitted_once_within_its_rule() {
    let f = fixture(None).await;
    let token = sign(&f, &pod_claims("j-1"));
    let a = run(&f, &token, Some("read"), &[]).await.expect("admitted");
    assert_eq!(a.rule.id.as_str(), "payments-api");
    assert_eq!(
        a.decision.audience,
        Audience::parse("payments").expect("aud")
    );
    assert_eq!(a.decision.scopes.to_delimited(), "read");
    // Bound to the subject token's remaining 600 s, under the rule's 900 s.
    assert_eq!(a.decision.lifetime, Duration::from_secs(600));
    assert_eq!(a.workload.subject, "system:serviceaccount:payments:api");
    // The same token again: replayed, on any node (the store decides).
    assert_eq!(
        run(&f, &token, Some("read"), &[]).await.map(|_| ()),
        Err(Refused::Grant("subject_token_replayed".into()))
    );
}

#[tokio::test]
async fn a_request_beyond_the_rule_is_refused_without_burning_the_token() {
    let f = fixture(None).await;
    let token = sign(&f, &pod_claims("j-2"));
    assert_eq!(
        run(&f, &token, Some("admin"), &[]).await.map(|_| ()),
        Err(Refused::Request(GrantError::InvalidScope))
    );
    assert_eq!(
        run(&f, &token, None, &["billing"]).await.map(|_| ()),
        Err(Refused::Request(GrantError::InvalidTarget))
    );
    assert!(run(&f, &token, None, &[]).await.is_ok());
}

#[tokio::test]
async fn bad_subject_tokens_are_refused_with_an_audit_reason() {
    let f = fixture(None).await;
    let with = |k: &str, v: Value| {
        let mut c = pod_claims(&format!("j-{k}"));
        c[k] = v;
        c
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            with("iss", json!("https://other.internal")),
            "untrusted_issuer",
        ),
        (
            with("aud", json!(["https://elsewhere"])),
            "subject_token_audience_mismatch",
        ),
        (with("exp", json!(NOW - 60)), "subject_token_token_expired"),
        (
            with("nbf", json!(NOW + 120)),
            "subject_token_token_not_yet_valid",
        ),
        (
            with("exp", json!(NOW - 60 + 2 * 86_400)),
            "subject_token_token_lifetime_too_long",
        ),
        (
            with("sub", json!("system:serviceaccount:billing:api")),
            "subject_conflicts_with_claim:namespace",
        ),
    ];
    for (claims, reason) in cases {
        assert_eq!(
            run(&f, &sign(&f, &claims), None, &[]).await.map(|_| ()),
            Err(Refused::Grant(reason.into())),
            "{reason}"
        );
    }
    // Another service account: no rule matches; the reason names the condition.
    let mut other = pod_claims("j-sa");
    other["sub"] = json!("system:serviceaccount:payments:admin");
    other["kubernetes.io"]["serviceaccount"]["name"] = json!("admin");
    match run(&f, &sign(&f, &other), None, &[]).await {
        Err(Refused::Grant(r)) => assert!(r.contains("condition 1 (service_account"), "{r}"),
        other => panic!("{other:?}"),
    }
    // Without a jti (a SPIRE JWT-SVID) the token is spent once by the digest of its signed
    // part: the same token again is a replay, and so is the same header and payload signed
    // again (another ECDSA signature over the same bytes); other claims are another token.
    let mut no_jti = pod_claims("x");
    no_jti.as_object_mut().expect("object").remove("jti");
    let first = sign(&f, &no_jti);
    let resigned = sign(&f, &no_jti);
    assert_ne!(first, resigned, "ES256 signatures differ");
    let admitted = run(&f, &first, None, &[]).await.expect("admitted once");
    assert!(
        matches!(admitted.single_use, SingleUse::Digest(_)),
        "{:?}",
        admitted.single_use
    );
    // An issuer's jti equal to that digest spends nothing of it (another namespace), and the
    // digest's record does not spend such a token either.
    let SingleUse::Digest(digest) = &admitted.single_use else {
        unreachable!("checked above")
    };
    let look_alike = sign(&f, &pod_claims(digest));
    assert!(run(&f, &look_alike, None, &[]).await.is_ok());
    for again in [&first, &resigned] {
        assert_eq!(
            run(&f, again, None, &[]).await.map(|_| ()),
            Err(Refused::Grant("subject_token_replayed".into()))
        );
    }
    no_jti["iat"] = json!(no_jti["iat"].as_i64().expect("iat") - 1);
    assert!(run(&f, &sign(&f, &no_jti), None, &[]).await.is_ok());
    // Signed by a key the issuer does not have.
    let (_, stranger) = SigningKeyPair::generate(Alg::ES256).expect("key");
    let kid = f.signer.kid().expect("kid").to_owned();
    let forged = Signer::new(stranger, Some("JWT"), Some(&kid))
        .sign(&pod_claims("j-forged"))
        .expect("sign");
    assert_eq!(
        run(&f, &forged, None, &[]).await.map(|_| ()),
        Err(Refused::Grant("subject_token_signature_invalid".into()))
    );
    assert!(matches!(
        run(&f, "not.a.token", None, &[]).await,
        Err(Refused::Grant(_))
    ));
}

#[tokio::test]
async fn a_remote_key_source_is_not_used_yet() {
    let f = fixture(Some(KeySourceRecord::Discovery)).await;
    assert_eq!(
        run(&f, &sign(&f, &pod_claims("j-d")), None, &[])
            .await
            .map(|_| ()),
        Err(Refused::Grant("key_source_unavailable".into()))
    );
}

#[tokio::test]
async fn the_issuer_cache_serves_until_a_local_change_or_its_ttl_and_never_a_stranger() {
    let f = fixture(None).await;
    let acme = tid("acme");
    let cache = TrustedIssuers::new(16, Duration::from_secs(1));
    let t0 = Timestamp::from_secs(NOW);
    let ms = |n: i64| Timestamp::from_millis(t0.as_millis() + n);
    let token = |jti: &str| sign(&f, &pod_claims(jti));
    assert!(admit_cached(&f, &cache, &token("c-1"), t0).await.is_ok());
    // The rule removed behind this node's back (another node's admin call): the cached rule
    // still admits within the TTL, and not a moment longer.
    let rule = f
        .store
        .get_trust_rule(&acme, "payments-api")
        .await
        .expect("read")
        .expect("rule");
    assert!(f
        .store
        .delete_trust_rule(&acme, "payments-api")
        .await
        .expect("delete"));
    assert!(admit_cached(&f, &cache, &token("c-2"), ms(999))
        .await
        .is_ok());
    assert_eq!(
        admit_cached(&f, &cache, &token("c-3"), ms(1_000))
            .await
            .map(|_| ()),
        Err(Refused::Grant("no_trust_rule_on_issuer".into()))
    );
    // Put back, the cache (refilled without it) still refuses until this node is told.
    f.store.create_trust_rule(&rule).await.expect("recreate");
    assert!(admit_cached(&f, &cache, &token("c-4"), ms(1_001))
        .await
        .is_err());
    cache.changed(&acme);
    assert!(admit_cached(&f, &cache, &token("c-5"), ms(1_002))
        .await
        .is_ok());
    // Another tenant's change leaves this one's entry alone; an issuer the tenant does not
    // trust is never cached (a made-up `iss` costs a read, and pushes nothing out).
    cache.changed(&tid("other"));
    f.store
        .delete_trust_rule(&acme, "payments-api")
        .await
        .expect("delete");
    assert!(admit_cached(&f, &cache, &token("c-6"), ms(1_003))
        .await
        .is_ok());
    let mut stranger = pod_claims("c-7");
    stranger["iss"] = json!("https://stranger.internal");
    assert_eq!(
        admit_cached(&f, &cache, &sign(&f, &stranger), ms(1_004))
            .await
            .map(|_| ()),
        Err(Refused::Grant("untrusted_issuer".into()))
    );
}

#[tokio::test]
async fn cached_uploaded_keys_that_do_not_parse_still_refuse() {
    let f = fixture(Some(KeySourceRecord::Jwks("{\"keys\": 7}".into()))).await;
    let cache = TrustedIssuers::new(16, Duration::from_secs(60));
    for jti in ["k-1", "k-2"] {
        assert_eq!(
            admit_cached(
                &f,
                &cache,
                &sign(&f, &pod_claims(jti)),
                Timestamp::from_secs(NOW)
            )
            .await
            .map(|_| ()),
            Err(Refused::Grant("trusted_issuer_keys_unreadable".into()))
        );
    }
}
