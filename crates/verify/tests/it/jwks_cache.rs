//! The JWKS cache against a counting fake fetcher, on tokio's paused clock: TTL from cache
//! headers (clamped), single-flight rate-limited refetch on unknown kid, rotation pick-up,
//! bounded serving of stale keys during an outage, discovery, and never fetching a token's URL.

use crate::common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use portcullis_verify::{
    IssuerConfig, JwksTiming, KeySource, Reason, RevocationSource, Verifier, VerifierConfig,
};
use serde_json::json;

const JWKS_URL: &str = "https://auth.test.example/jwks";

fn timing() -> JwksTiming {
    JwksTiming {
        default_ttl: Duration::from_secs(300),
        min_ttl: Duration::from_secs(30),
        max_ttl: Duration::from_secs(3600),
        refetch_interval: Duration::from_secs(10),
        max_stale: Duration::from_secs(600),
    }
}

fn verifier(source: KeySource, fetch: Arc<FakeFetch>) -> Verifier {
    let mut cfg = VerifierConfig::new(
        IssuerConfig::new(ISSUER, source),
        AUDIENCE,
        RevocationSource::InsecureNone,
    );
    cfg.jwks = timing();
    // Each request must reach the key cache: no verified-token cache here.
    cfg.token_cache_capacity = 0;
    let clock = clock();
    Verifier::with_parts(cfg, clock, fetch).expect("verifier")
}

fn token(key: &EcKey) -> String {
    es256_token(key, &header(&key.kid, "ES256"), &claims())
}

async fn reason(v: &Verifier, t: &str) -> Result<(), Reason> {
    v.verify_access_token(t)
        .await
        .map(|_| ())
        .map_err(|d| d.reason)
}

#[tokio::test(start_paused = true)]
async fn keys_live_for_max_age_clamped_to_the_configured_bounds() {
    let k = EcKey::new("k1", 1);
    let fetch = Arc::new(FakeFetch::default());
    fetch.serve(
        JWKS_URL,
        jwks_of(&[k.jwk()]),
        Some(Duration::from_secs(120)),
    );
    let v = verifier(KeySource::JwksUrl(JWKS_URL.into()), fetch.clone());
    let t = token(&k);
    assert_eq!(reason(&v, &t).await, Ok(()));
    assert_eq!(reason(&v, &t).await, Ok(()));
    assert_eq!(fetch.calls(), 1);
    tokio::time::advance(Duration::from_secs(119)).await;
    assert_eq!(reason(&v, &t).await, Ok(()));
    assert_eq!(fetch.calls(), 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(reason(&v, &t).await, Ok(()));
    assert_eq!(fetch.calls(), 2, "refetched after max-age");

    // max-age below the minimum is raised to it.
    fetch.serve(JWKS_URL, jwks_of(&[k.jwk()]), Some(Duration::from_secs(1)));
    tokio::time::advance(Duration::from_secs(121)).await;
    assert_eq!(reason(&v, &t).await, Ok(()));
    assert_eq!(fetch.calls(), 3);
    tokio::time::advance(Duration::from_secs(29)).await;
    assert_eq!(reason(&v, &t).await, Ok(()));
    assert_eq!(fetch.calls(), 3, "min_ttl applies");
}

#[tokio::test(start_paused = true)]
async fn a_flood_of_forged_kids_causes_at_most_one_fetch_per_interval() {
    let k = EcKey::new("k1", 1);
    let fetch = Arc::new(FakeFetch::default());
    fetch.serve(JWKS_URL, jwks_of(&[k.jwk()]), None);
    *fetch.delay.lock().expect("lock") = Some(Duration::from_millis(50));
    let v = verifier(KeySource::JwksUrl(JWKS_URL.into()), fetch.clone());
    assert_eq!(reason(&v, &token(&k)).await, Ok(()));
    assert_eq!(fetch.calls(), 1);

    // Past the refetch interval, so the flood is allowed exactly one fetch.
    tokio::time::advance(Duration::from_secs(11)).await;
    let forged = token(&EcKey::new("forged", 2));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let v = v.clone();
        let t = forged.clone();
        tasks.push(tokio::spawn(async move { reason(&v, &t).await }));
    }
    for t in tasks {
        assert_eq!(t.await.expect("task"), Err(Reason::UnknownKid));
    }
    assert_eq!(fetch.calls(), 2, "one fetch for the whole flood");
    // Still limited a little later...
    tokio::time::advance(Duration::from_secs(5)).await;
    assert_eq!(reason(&v, &forged).await, Err(Reason::UnknownKid));
    assert_eq!(fetch.calls(), 2);
    // ...and allowed one more once the interval has passed.
    tokio::time::advance(Duration::from_secs(6)).await;
    assert_eq!(reason(&v, &forged).await, Err(Reason::UnknownKid));
    assert_eq!(fetch.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_rotated_key_is_picked_up_on_first_sight() {
    let old = EcKey::new("k1", 1);
    let new = EcKey::new("k2", 2);
    let fetch = Arc::new(FakeFetch::default());
    fetch.serve(
        JWKS_URL,
        jwks_of(&[old.jwk()]),
        Some(Duration::from_secs(3600)),
    );
    let v = verifier(KeySource::JwksUrl(JWKS_URL.into()), fetch.clone());
    assert_eq!(reason(&v, &token(&old)).await, Ok(()));
    tokio::time::advance(Duration::from_secs(11)).await;
    fetch.serve(
        JWKS_URL,
        jwks_of(&[old.jwk(), new.jwk()]),
        Some(Duration::from_secs(3600)),
    );
    assert_eq!(reason(&v, &token(&new)).await, Ok(()));
    assert_eq!(fetch.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn last_good_keys_serve_for_max_stale_then_fail_closed() {
    let k = EcKey::new("k1", 1);
    let fetch = Arc::new(FakeFetch::default());
    fetch.serve(JWKS_URL, jwks_of(&[k.jwk()]), Some(Duration::from_secs(60)));
    let v = verifier(KeySource::JwksUrl(JWKS_URL.into()), fetch.clone());
    let t = token(&k);
    assert_eq!(reason(&v, &t).await, Ok(()));
    fetch.failing.store(true, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(61 + 500)).await;
    assert_eq!(reason(&v, &t).await, Ok(()), "within max_stale");
    tokio::time::advance(Duration::from_secs(100)).await;
    assert_eq!(reason(&v, &t).await, Err(Reason::KeysUnavailable));
    // Recovery.
    fetch.failing.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(reason(&v, &t).await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_issuer_with_no_keys_yet_fails_closed() {
    let k = EcKey::new("k1", 1);
    let fetch = Arc::new(FakeFetch::default());
    fetch.failing.store(true, Ordering::SeqCst);
    let v = verifier(KeySource::JwksUrl(JWKS_URL.into()), fetch.clone());
    assert_eq!(reason(&v, &token(&k)).await, Err(Reason::KeysUnavailable));
}

#[tokio::test(start_paused = true)]
async fn discovery_is_followed_only_for_the_configured_issuer() {
    let k = EcKey::new("k1", 1);
    let disc = "https://auth.test.example/.well-known/openid-configuration";
    let fetch = Arc::new(FakeFetch::default());
    fetch.serve(
        disc,
        json!({"issuer": ISSUER, "jwks_uri": JWKS_URL}).to_string(),
        None,
    );
    fetch.serve(JWKS_URL, jwks_of(&[k.jwk()]), None);
    let v = verifier(KeySource::Discovery(disc.into()), fetch.clone());
    assert_eq!(reason(&v, &token(&k)).await, Ok(()));
    assert_eq!(
        *fetch.urls.lock().expect("lock"),
        vec![disc.to_owned(), JWKS_URL.to_owned()]
    );

    let fetch = Arc::new(FakeFetch::default());
    fetch.serve(
        disc,
        json!({"issuer": "https://evil.example", "jwks_uri": JWKS_URL}).to_string(),
        None,
    );
    fetch.serve(JWKS_URL, jwks_of(&[k.jwk()]), None);
    let v = verifier(KeySource::Discovery(disc.into()), fetch.clone());
    assert_eq!(reason(&v, &token(&k)).await, Err(Reason::KeysUnavailable));
}

#[tokio::test(start_paused = true)]
async fn urls_in_token_headers_are_never_fetched() {
    let k = EcKey::new("k1", 1);
    let fetch = Arc::new(FakeFetch::default());
    fetch.serve(JWKS_URL, jwks_of(&[k.jwk()]), None);
    let v = verifier(KeySource::JwksUrl(JWKS_URL.into()), fetch.clone());
    let evil = EcKey::new("evil", 3);
    let mut h = header("evil", "ES256");
    h["jku"] = json!("https://evil.example/jwks");
    h["x5u"] = json!("https://evil.example/x5u");
    let t = es256_token(&evil, &h, &claims());
    assert_eq!(reason(&v, &t).await, Err(Reason::UnknownKid));
    let urls = fetch.urls.lock().expect("lock").clone();
    assert!(urls.iter().all(|u| u == JWKS_URL), "{urls:?}");
}

#[tokio::test(start_paused = true)]
async fn an_unknown_issuer_causes_no_fetch() {
    let fetch = Arc::new(FakeFetch::default());
    let v = verifier(KeySource::JwksUrl(JWKS_URL.into()), fetch.clone());
    let k = EcKey::new("k1", 1);
    let mut c = claims();
    c["iss"] = json!("https://other.example");
    let t = es256_token(&k, &header("k1", "ES256"), &c);
    assert_eq!(reason(&v, &t).await, Err(Reason::UnknownIssuer));
    assert_eq!(fetch.calls(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_revoked_kid_is_dropped_and_never_fetched_back() {
    let stolen = EcKey::new("k1", 1);
    let other = EcKey::new("k2", 2);
    let fetch = Arc::new(FakeFetch::default());
    // The issuer (or a stale cache in front of it) still lists the revoked key.
    fetch.serve(JWKS_URL, jwks_of(&[stolen.jwk(), other.jwk()]), None);
    let mut cfg = VerifierConfig::new(
        IssuerConfig::new(ISSUER, KeySource::JwksUrl(JWKS_URL.into())),
        AUDIENCE,
        RevocationSource::Embedded {
            staleness_bound: Duration::from_secs(3600),
        },
    );
    cfg.jwks = timing();
    cfg.token_cache_capacity = 0;
    let v = Verifier::with_parts(cfg, clock(), fetch.clone()).expect("verifier");
    v.revocations().touch(0);
    assert_eq!(reason(&v, &token(&stolen)).await, Ok(()));
    let calls = fetch.calls();
    v.revocations()
        .apply(&portcullis_core::revocation::RevocationRecord {
            seq: 1,
            tenant: portcullis_core::tenant::TenantId::system(),
            kind: portcullis_core::revocation::RevocationKind::SigningKey,
            subject: "k1".into(),
            revoked_before: None,
            expires_at: None,
            created_at: portcullis_core::time::Timestamp::from_secs(NOW_S),
        });
    // Dropped from the held set at once. The issuer activated a replacement at once, so the
    // first unknown kid after the revocation fetches without waiting out refetch_interval: the
    // replacement's tokens work right away, the stolen kid is filtered out of what comes back.
    let replacement = EcKey::new("k3", 3);
    fetch.serve(
        JWKS_URL,
        jwks_of(&[stolen.jwk(), other.jwk(), replacement.jwk()]),
        None,
    );
    assert_eq!(reason(&v, &token(&replacement)).await, Ok(()));
    assert_eq!(fetch.calls(), calls + 1);
    assert_eq!(reason(&v, &token(&stolen)).await, Err(Reason::UnknownKid));
    assert_eq!(
        fetch.calls(),
        calls + 1,
        "only once per revocation: forged kids are rate-limited again"
    );
    // Once refetching is allowed again, the unknown kid is fetched for, and filtered out.
    tokio::time::advance(Duration::from_secs(11)).await;
    assert_eq!(reason(&v, &token(&stolen)).await, Err(Reason::UnknownKid));
    assert_eq!(fetch.calls(), calls + 2);
    tokio::time::advance(Duration::from_secs(301)).await;
    assert_eq!(reason(&v, &token(&other)).await, Ok(()), "refetched");
    assert_eq!(
        reason(&v, &token(&stolen)).await,
        Err(Reason::UnknownKid),
        "a refetched set that still lists the kid does not bring it back"
    );
}
