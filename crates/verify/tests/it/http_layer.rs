//! The tower layer and axum extractor end to end through a router, and API keys through the
//! verifier with a counting in-process backend: RFC 6750 answers for every denial class,
//! credential placement rules, tenant binding from the path, and API-key cache invalidation by
//! revocation records.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use axum::Router;
use common::*;
use portcullis_core::api_key::RateLimit;
use portcullis_core::credential::{Credential, CredentialKind as CoreKind, Environment};
use portcullis_core::revocation::{RevocationKind, RevocationRecord};
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{ManualClock, Timestamp};
use portcullis_verify::{
    ApiKeyBackend, ApiKeyConfig, ApiKeyFailure, ApiKeyIdentity, ApiKeyQuery, ApiKeySource,
    IssuerConfig, KeySource, Policy, Principal, RevocationSource, Verifier, VerifierConfig,
};
use serde_json::{json, Value};
use tower::ServiceExt;

#[derive(Debug, Default)]
struct Backend {
    calls: AtomicUsize,
    /// key text -> identity; absent keys are rejected.
    keys: Mutex<Vec<(String, ApiKeyIdentity)>>,
    unavailable: std::sync::atomic::AtomicBool,
    /// The audience and environment of the last query.
    last_query: Mutex<Option<(Option<String>, String)>>,
}

#[async_trait]
impl ApiKeyBackend for Backend {
    async fn verify(&self, q: &ApiKeyQuery<'_>) -> Result<ApiKeyIdentity, ApiKeyFailure> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.last_query.lock().expect("lock") = Some((
            q.audience.map(str::to_owned),
            q.environment.as_str().to_owned(),
        ));
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(ApiKeyFailure::Unavailable("down".into()));
        }
        let keys = self.keys.lock().expect("lock");
        keys.iter()
            .find(|(k, _)| k == q.key)
            .map(|(_, id)| id.clone())
            .ok_or(ApiKeyFailure::Rejected)
    }
}

fn api_key(env: &str) -> Credential {
    Credential::generate(
        CoreKind::ApiKey,
        Environment::parse(env).expect("env"),
        &mut rand::thread_rng(),
    )
}

struct App {
    router: Router,
    verifier: Verifier,
    backend: Arc<Backend>,
    ec: EcKey,
    key: Credential,
    /// A key of the same tenant allowed 2 requests a minute.
    limited: Credential,
    clock: Arc<ManualClock>,
}

fn app() -> App {
    let ec = EcKey::new("k1", 1);
    let backend = Arc::new(Backend::default());
    let key = api_key("live");
    backend.keys.lock().expect("lock").push((
        key.expose().to_owned(),
        ApiKeyIdentity {
            key_id: key.id().to_owned(),
            tenant: TenantId::parse("acme").expect("t"),
            environment: "live".into(),
            owner: "partner-co".into(),
            scopes: vec!["payments:read".into()],
            expires_at: None,
            rate_limit: None,
        },
    ));
    let limited = api_key("live");
    backend.keys.lock().expect("lock").push((
        limited.expose().to_owned(),
        ApiKeyIdentity {
            key_id: limited.id().to_owned(),
            tenant: TenantId::parse("acme").expect("t"),
            environment: "live".into(),
            owner: "partner-co".into(),
            scopes: vec!["payments:read".into()],
            expires_at: None,
            rate_limit: Some(RateLimit {
                requests: 2,
                window_secs: 60,
            }),
        },
    ));
    let clock = clock();
    let mut cfg = VerifierConfig::new(
        IssuerConfig::new(ISSUER, KeySource::Static(jwks_of(&[ec.jwk()]))),
        AUDIENCE,
        RevocationSource::Embedded {
            staleness_bound: std::time::Duration::from_secs(30),
        },
    );
    cfg.realm = "payments".into();
    cfg.api_keys = Some(ApiKeyConfig::new(
        ApiKeySource::Backend(backend.clone()),
        "live",
    ));
    let verifier =
        Verifier::with_parts(cfg, clock.clone(), Arc::new(FakeFetch::default())).expect("verifier");
    verifier.revocations().touch(0);
    let whoami = |p: Principal| async move {
        axum::Json(json!({
            "subject": p.subject, "tenant": p.tenant, "kind": p.kind.as_str(),
            "credential_id": p.credential_id, "scopes": p.scopes,
        }))
    };
    let router = Router::new()
        .route(
            "/t/{tenant}/payments",
            get(whoami).route_layer(
                verifier.require(
                    Policy::access_token()
                        .also_api_keys()
                        .all_scopes(["payments:read"])
                        .tenant_from_path("tenant"),
                ),
            ),
        )
        .route(
            "/admin",
            get(whoami).route_layer(
                verifier.require(Policy::access_token().all_scopes(["payments:admin"])),
            ),
        )
        .route("/forgot-the-layer", get(whoami));
    App {
        router,
        verifier,
        backend,
        ec,
        key,
        limited,
        clock,
    }
}

async fn send(
    app: &App,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Option<String>, Value) {
    let mut req = Request::builder().uri(path);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .router
        .clone()
        .oneshot(req.body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let status = resp.status();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, challenge, body)
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[tokio::test]
async fn rfc6750_answers_for_each_denial_class() {
    let app = app();
    let good = es256_token(&app.ec, &header("k1", "ES256"), &claims());

    let (s, c, b) = send(&app, "/t/acme/payments", &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        c.as_deref(),
        Some(r#"Bearer realm="payments""#),
        "no error attribute without a credential"
    );
    assert_eq!(b, json!({"error": "unauthorized"}));

    let (s, c, b) = send(
        &app,
        "/t/acme/payments",
        &[("authorization", "Bearer not.a.token")],
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        c.as_deref(),
        Some(r#"Bearer realm="payments", error="invalid_token""#)
    );
    assert_eq!(b, json!({"error": "invalid_token"}));

    let (s, c, _) = send(
        &app,
        "/t/globex/payments",
        &[("authorization", &bearer(&good))],
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "right token, wrong tenant");
    assert_eq!(
        c.as_deref(),
        Some(r#"Bearer realm="payments", error="insufficient_scope""#)
    );

    let (s, _, b) = send(&app, "/admin", &[("authorization", &bearer(&good))]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(b, json!({"error": "insufficient_scope"}));

    let (s, _, b) = send(
        &app,
        "/t/acme/payments",
        &[("authorization", &bearer(&good))],
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(b["subject"], "cl_billing");
    assert_eq!(b["kind"], "access_token");
    assert_eq!(b["credential_id"], "jti-1");
}

#[tokio::test]
async fn credential_placement_rules() {
    let app = app();
    let good = es256_token(&app.ec, &header("k1", "ES256"), &claims());
    let key = app.key.expose().to_owned();
    type Headers<'a> = Vec<(&'a str, String)>;
    let cases: Vec<(String, Headers, StatusCode)> = vec![
        (
            format!("/t/acme/payments?access_token={good}"),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/t/acme/payments?k={key}"),
            vec![],
            StatusCode::BAD_REQUEST,
        ),
        (
            "/t/acme/payments".into(),
            vec![("authorization", bearer(&good)), ("x-api-key", key.clone())],
            StatusCode::BAD_REQUEST,
        ),
        (
            "/t/acme/payments".into(),
            vec![
                ("authorization", bearer(&good)),
                ("authorization", bearer(&good)),
            ],
            StatusCode::BAD_REQUEST,
        ),
        (
            "/t/acme/payments".into(),
            vec![("authorization", "Basic Zm9vOmJhcg==".into())],
            StatusCode::UNAUTHORIZED,
        ),
        (
            "/t/acme/payments".into(),
            vec![("authorization", "Bearer ".into())],
            StatusCode::UNAUTHORIZED,
        ),
        // The tenant in the path must be a tenant id at all.
        (
            "/t/NOT%20A%20TENANT/payments".into(),
            vec![("authorization", bearer(&good))],
            StatusCode::FORBIDDEN,
        ),
    ];
    for (path, headers, want) in cases {
        let h: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (s, _, _) = send(&app, &path, &h).await;
        assert_eq!(
            s,
            want,
            "{path} {:?}",
            headers.iter().map(|h| h.0).collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn the_extractor_without_the_layer_fails_closed() {
    let app = app();
    let good = es256_token(&app.ec, &header("k1", "ES256"), &claims());
    let (s, _, _) = send(
        &app,
        "/forgot-the-layer",
        &[("authorization", &bearer(&good))],
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn api_keys_in_either_header_with_checks_before_the_backend() {
    let app = app();
    let key = app.key.expose().to_owned();
    for h in [("x-api-key", key.clone()), ("authorization", bearer(&key))] {
        let (s, _, b) = send(&app, "/t/acme/payments", &[(h.0, &h.1)]).await;
        assert_eq!(s, StatusCode::OK, "{}", h.0);
        assert_eq!(b["kind"], "api_key");
        assert_eq!(b["subject"], "partner-co");
    }
    assert_eq!(
        app.backend.calls.load(Ordering::SeqCst),
        1,
        "second use was cached"
    );

    // Garbage, a bad checksum and the other environment never reach the backend.
    let mut typo = key.clone().into_bytes();
    let i = typo.len() - 8;
    typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("utf8");
    let test_env = api_key("test");
    for bad in [typo.as_str(), "pcl_key_live_short", test_env.expose()] {
        let (s, c, _) = send(&app, "/t/acme/payments", &[("x-api-key", bad)]).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(
            c.as_deref(),
            Some(r#"Bearer realm="payments", error="invalid_token""#)
        );
    }
    assert_eq!(app.backend.calls.load(Ordering::SeqCst), 1);

    // Another tenant's route.
    let (s, _, _) = send(&app, "/t/globex/payments", &[("x-api-key", &key)]).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // A route that takes tokens only.
    let (s, _, _) = send(&app, "/admin", &[("x-api-key", &key)]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // An unknown but well-formed key is refused by the backend and never cached as good.
    let unknown = api_key("live");
    for _ in 0..2 {
        let (s, _, _) = send(&app, "/t/acme/payments", &[("x-api-key", unknown.expose())]).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
}

fn record(seq: i64, kind: RevocationKind, subject: &str) -> RevocationRecord {
    RevocationRecord {
        seq,
        tenant: TenantId::parse("acme").expect("t"),
        kind,
        subject: subject.into(),
        revoked_before: None,
        expires_at: None,
        created_at: Timestamp::from_secs(NOW_S),
    }
}

#[tokio::test]
async fn revocation_records_reach_cached_api_keys() {
    let app = app();
    let key = app.key.expose().to_owned();
    let ok = |s: StatusCode| s == StatusCode::OK;
    assert!(ok(send(&app, "/t/acme/payments", &[("x-api-key", &key)])
        .await
        .0));
    assert_eq!(app.backend.calls.load(Ordering::SeqCst), 1);

    // A change drops the cached answer: the next request asks the backend again.
    app.verifier
        .revocations()
        .apply(&record(1, RevocationKind::ApiKeyChanged, app.key.id()));
    assert!(ok(send(&app, "/t/acme/payments", &[("x-api-key", &key)])
        .await
        .0));
    assert_eq!(app.backend.calls.load(Ordering::SeqCst), 2);

    // A revocation refuses at once, cached or not, without asking anyone.
    app.verifier
        .revocations()
        .apply(&record(2, RevocationKind::ApiKey, app.key.id()));
    let (s, _, _) = send(&app, "/t/acme/payments", &[("x-api-key", &key)]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(app.backend.calls.load(Ordering::SeqCst), 2);
}

/// A `tenant` record (the tenant was disabled) refuses the tenant's tokens issued until then,
/// even cached, and drops cached API key answers for it so the backend is asked again (and, the
/// tenant being disabled, refuses).
#[tokio::test]
async fn a_tenant_record_revokes_its_tokens_and_drops_its_cached_keys() {
    let app = app();
    let key = app.key.expose().to_owned();
    let token = bearer(&es256_token(&app.ec, &header("k1", "ES256"), &claims()));
    for _ in 0..2 {
        assert_eq!(
            send(&app, "/t/acme/payments", &[("authorization", &token)])
                .await
                .0,
            StatusCode::OK
        );
        assert_eq!(
            send(&app, "/t/acme/payments", &[("x-api-key", &key)])
                .await
                .0,
            StatusCode::OK
        );
    }
    assert_eq!(app.backend.calls.load(Ordering::SeqCst), 1, "cached");
    let mut r = record(1, RevocationKind::Tenant, "acme");
    r.revoked_before = Some(Timestamp::from_secs(NOW_S));
    app.verifier.revocations().apply(&r);
    let (s, c, _) = send(&app, "/t/acme/payments", &[("authorization", &token)]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        c.as_deref(),
        Some(r#"Bearer realm="payments", error="invalid_token""#)
    );
    // The backend (which here still knows the key) is asked again.
    assert_eq!(
        send(&app, "/t/acme/payments", &[("x-api-key", &key)])
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(app.backend.calls.load(Ordering::SeqCst), 2, "asked again");
    // Another tenant's record changes nothing for acme.
    let mut other = record(2, RevocationKind::Tenant, "globex");
    other.tenant = TenantId::parse("globex").expect("t");
    app.verifier.revocations().apply(&other);
    assert_eq!(
        send(&app, "/t/acme/payments", &[("x-api-key", &key)])
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(app.backend.calls.load(Ordering::SeqCst), 2, "still cached");
}

#[tokio::test]
async fn an_unavailable_backend_denies() {
    let app = app();
    app.backend.unavailable.store(true, Ordering::SeqCst);
    let (s, _, _) = send(&app, "/t/acme/payments", &[("x-api-key", app.key.expose())]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn an_api_key_over_its_own_rate_limit_gets_429_until_its_bucket_refills() {
    let app = app();
    let limited = app.limited.expose().to_owned();
    let get = |key: &str| {
        let req = Request::builder()
            .uri("/t/acme/payments")
            .header("x-api-key", key)
            .body(Body::empty())
            .expect("request");
        app.router.clone().oneshot(req)
    };
    // A burst of two, the first from the backend and the second from the cache: both count.
    for _ in 0..2 {
        assert_eq!(
            get(&limited).await.expect("response").status(),
            StatusCode::OK
        );
    }
    assert_eq!(app.backend.calls.load(Ordering::SeqCst), 1);
    let resp = get(&limited).await.expect("response");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        resp.headers()["retry-after"],
        "30",
        "2 per minute: one every 30 s"
    );
    assert!(
        resp.headers().get("www-authenticate").is_none(),
        "the key is good: no challenge"
    );
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    assert_eq!(
        serde_json::from_slice::<Value>(&body).expect("json"),
        json!({"error": "rate_limited"})
    );
    // Other keys of the same tenant are not affected.
    let other = app.key.expose().to_owned();
    assert_eq!(
        get(&other).await.expect("response").status(),
        StatusCode::OK
    );
    // 30 s later one token is back, and only one.
    app.clock.advance(std::time::Duration::from_secs(30));
    assert_eq!(
        get(&limited).await.expect("response").status(),
        StatusCode::OK
    );
    assert_eq!(
        get(&limited).await.expect("response").status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn a_backend_that_counts_the_key_over_its_limit_is_answered_429() {
    #[derive(Debug)]
    struct Limited;
    #[async_trait]
    impl ApiKeyBackend for Limited {
        async fn verify(&self, _: &ApiKeyQuery<'_>) -> Result<ApiKeyIdentity, ApiKeyFailure> {
            Err(ApiKeyFailure::RateLimited {
                retry_after_secs: 7,
            })
        }
    }
    let mut cfg = VerifierConfig::new(
        IssuerConfig::new(
            ISSUER,
            KeySource::Static(jwks_of(&[EcKey::new("k1", 1).jwk()])),
        ),
        AUDIENCE,
        RevocationSource::Embedded {
            staleness_bound: std::time::Duration::from_secs(30),
        },
    );
    cfg.api_keys = Some(ApiKeyConfig::new(
        ApiKeySource::Backend(Arc::new(Limited)),
        "live",
    ));
    let verifier =
        Verifier::with_parts(cfg, clock(), Arc::new(FakeFetch::default())).expect("verifier");
    verifier.revocations().touch(0);
    let router = Router::new().route(
        "/r",
        get(|| async { "ok" })
            .route_layer(verifier.require(Policy::access_token().api_keys_only())),
    );
    let req = Request::builder()
        .uri("/r")
        .header("x-api-key", api_key("live").expose())
        .body(Body::empty())
        .expect("request");
    let resp = router.oneshot(req).await.expect("response");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(resp.headers()["retry-after"], "7");
}

/// A route may name its own API key environment and audience: keys of the verifier's
/// environment are then refused before any lookup, and the backend is asked about the route's
/// audience.
#[tokio::test]
async fn a_route_names_its_own_api_key_environment_and_audience() {
    let app = app();
    let sandbox = api_key("test");
    app.backend.keys.lock().expect("lock").push((
        sandbox.expose().to_owned(),
        ApiKeyIdentity {
            key_id: sandbox.id().to_owned(),
            tenant: TenantId::parse("acme").expect("t"),
            environment: "test".into(),
            owner: "partner-co".into(),
            scopes: vec![],
            expires_at: None,
            rate_limit: None,
        },
    ));
    let route = Policy::access_token()
        .api_keys_only()
        .api_key_environment(Environment::parse("test").expect("env"))
        .audience("sandbox-api");
    let facts = portcullis_verify::RequestFacts {
        resource_tenant: None,
        client_ip: None,
    };
    let check = |key: String, policy: Policy| {
        let verifier = &app.verifier;
        async move {
            verifier
                .check(portcullis_verify::Presented::ApiKey(&key), &policy, facts)
                .await
                .map(|p| p.credential_id.clone())
                .map_err(|d| d.reason)
        }
    };
    assert_eq!(
        check(sandbox.expose().to_owned(), route.clone()).await,
        Ok(sandbox.id().to_owned())
    );
    assert_eq!(
        *app.backend.last_query.lock().expect("lock"),
        Some((Some("sandbox-api".to_owned()), "test".to_owned()))
    );
    let calls = app.backend.calls.load(Ordering::SeqCst);
    assert_eq!(
        check(app.key.expose().to_owned(), route).await,
        Err(portcullis_verify::Reason::ApiKeyWrongEnvironment),
        "a live key on the test route"
    );
    assert_eq!(
        check(
            sandbox.expose().to_owned(),
            Policy::access_token().api_keys_only()
        )
        .await,
        Err(portcullis_verify::Reason::ApiKeyWrongEnvironment),
        "a test key on a route of the verifier's environment"
    );
    assert_eq!(
        app.backend.calls.load(Ordering::SeqCst),
        calls,
        "refused without a lookup"
    );
}

/// With `cache_ttl` zero (an in-process backend that caches itself), every request reaches the
/// backend, and the key's own rate limit is still counted.
#[tokio::test]
async fn a_zero_cache_ttl_asks_the_backend_every_time_and_still_counts_the_limit() {
    let backend = Arc::new(Backend::default());
    let key = api_key("live");
    backend.keys.lock().expect("lock").push((
        key.expose().to_owned(),
        ApiKeyIdentity {
            key_id: key.id().to_owned(),
            tenant: TenantId::parse("acme").expect("t"),
            environment: "live".into(),
            owner: "partner-co".into(),
            scopes: vec![],
            expires_at: None,
            rate_limit: Some(RateLimit {
                requests: 2,
                window_secs: 60,
            }),
        },
    ));
    let mut cfg = VerifierConfig::new(
        IssuerConfig::new(
            ISSUER,
            KeySource::Static(jwks_of(&[EcKey::new("k1", 1).jwk()])),
        ),
        AUDIENCE,
        RevocationSource::Embedded {
            staleness_bound: std::time::Duration::from_secs(30),
        },
    );
    let mut keys = ApiKeyConfig::new(ApiKeySource::Backend(backend.clone()), "live");
    keys.cache_ttl = std::time::Duration::ZERO;
    cfg.api_keys = Some(keys);
    let verifier =
        Verifier::with_parts(cfg, clock(), Arc::new(FakeFetch::default())).expect("verifier");
    verifier.revocations().touch(0);
    let check = || verifier.verify_api_key(key.expose(), None, None);
    check().await.expect("first");
    check().await.expect("second");
    assert_eq!(backend.calls.load(Ordering::SeqCst), 2, "no cache");
    assert_eq!(
        check().await.map(|_| ()).map_err(|d| d.reason),
        Err(portcullis_verify::Reason::ApiKeyRateLimited {
            retry_after_secs: 30
        })
    );
}
