//! The HTTP API key backend against a stub of Portcullis's `POST /v1/api-keys/verify` on
//! 127.0.0.1: a valid answer (`valid: true`, or no `valid` from an older server, with its rate
//! limit), a refusal (200 `{"valid": false}`), a 429 carrying `Retry-After`, the verifier's own
//! credential refused (401/403: unavailable, never a rejected key), and answers it must not
//! trust (a rate limit the server could never have stored) or cannot read, which deny as
//! "unavailable" rather than admit a key with fewer restrictions.

use crate::common;

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use common::*;
use portcullis_core::api_key::RateLimit;
use portcullis_core::credential::{Credential, CredentialKind, Environment};
use portcullis_verify::api_key::HttpApiKeys;
use portcullis_verify::{
    ApiKeyBackend, ApiKeyConfig, ApiKeyFailure, ApiKeyQuery, ApiKeySource, IssuerConfig, KeySource,
    Reason, RevocationSource, Verifier, VerifierConfig,
};
use serde_json::{json, Value};

/// What the stub answers: status, extra headers, JSON body.
type Answer = Arc<Mutex<(StatusCode, Vec<(&'static str, &'static str)>, Value)>>;

/// Starts a stub answering every verify call with `answer`; returns its base URL.
async fn stub(answer: Answer) -> String {
    let app = axum::Router::new().route(
        "/v1/api-keys/verify",
        axum::routing::post(move || {
            let answer = answer.clone();
            async move {
                let (status, headers, body) = answer.lock().expect("lock").clone();
                let mut resp = (status, axum::Json(body)).into_response();
                for (k, v) in headers {
                    resp.headers_mut().insert(k, v.parse().expect("header"));
                }
                resp
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    format!("http://{addr}")
}

/// Today's answer for a valid key, `valid: true` included.
fn valid(rate_limit: Value) -> Value {
    let mut v = older_valid(rate_limit);
    v["valid"] = true.into();
    v
}

/// A valid key as a server older than the `valid` field answers it.
fn older_valid(rate_limit: Value) -> Value {
    json!({
        "active": true, "key_id": "abc", "tenant": "acme", "environment": "live",
        "name": "n", "owner": "partner-co", "scopes": ["orders:read"], "audiences": null,
        "rate_limit": rate_limit, "expires_at": null,
    })
}

#[tokio::test]
async fn answers_are_read_strictly_and_doubtful_ones_deny() {
    let answer = Arc::new(Mutex::new((StatusCode::OK, vec![], valid(json!(null)))));
    let base = stub(answer.clone()).await;
    let keys = HttpApiKeys::new(&base, "admin-token", false).expect("loopback http is allowed");
    let env = Environment::live();
    let q = ApiKeyQuery {
        key: "pcl_key_live_not-checked-by-the-stub",
        tenant: None,
        environment: &env,
        client_ip: None,
        audience: None,
    };
    let set = |status, headers, body| *answer.lock().expect("lock") = (status, headers, body);

    let id = keys.verify(&q).await.expect("valid");
    assert_eq!((id.key_id.as_str(), id.rate_limit), ("abc", None));
    set(
        StatusCode::OK,
        vec![],
        valid(json!({"requests": 10, "window_secs": 60})),
    );
    assert_eq!(
        keys.verify(&q).await.expect("valid").rate_limit,
        Some(RateLimit {
            requests: 10,
            window_secs: 60
        })
    );
    // A server older than the `valid` field: the same answer without it.
    set(StatusCode::OK, vec![], older_valid(json!(null)));
    assert_eq!(keys.verify(&q).await.expect("valid").key_id, "abc");
    // The refusal, whatever the reason: 200 with only `valid: false`.
    set(StatusCode::OK, vec![], json!({"valid": false}));
    assert_eq!(keys.verify(&q).await, Err(ApiKeyFailure::Rejected));
    // 401/403 are about the verifier's own credential, never the key: unavailable, fail closed.
    for (status, code) in [
        (StatusCode::UNAUTHORIZED, "invalid_token"),
        (StatusCode::FORBIDDEN, "insufficient_scope"),
    ] {
        set(status, vec![], json!({"error": code}));
        match keys.verify(&q).await {
            Err(ApiKeyFailure::Unavailable(m)) => {
                assert!(m.contains("own credential was refused"), "{status}: {m}")
            }
            other => panic!("{status}: {other:?}"),
        }
    }
    set(
        StatusCode::TOO_MANY_REQUESTS,
        vec![("retry-after", "42")],
        json!({"error": "rate_limited"}),
    );
    assert_eq!(
        keys.verify(&q).await,
        Err(ApiKeyFailure::RateLimited {
            retry_after_secs: 42
        })
    );
    // A limit the server could never have stored would mean "no limit" here: deny.
    for bad in [
        json!({"requests": 0, "window_secs": 60}),
        json!({"requests": 10, "window_secs": 0}),
        json!({"requests": 10, "window_secs": 86_401}),
        json!({"requests": 10}),
    ] {
        set(StatusCode::OK, vec![], valid(bad.clone()));
        assert!(
            matches!(keys.verify(&q).await, Err(ApiKeyFailure::Unavailable(_))),
            "{bad}"
        );
    }
    // Anything else is the backend failing, never a key accepted.
    set(StatusCode::INTERNAL_SERVER_ERROR, vec![], json!({}));
    assert!(matches!(
        keys.verify(&q).await,
        Err(ApiKeyFailure::Unavailable(_))
    ));
    for unreadable in [
        json!({"active": true}),
        json!({"valid": true}),
        json!({"valid": "false"}),
        json!({"valid": null, "active": true}),
        json!(["valid", false]),
    ] {
        set(StatusCode::OK, vec![], unreadable.clone());
        assert!(
            matches!(keys.verify(&q).await, Err(ApiKeyFailure::Unavailable(_))),
            "{unreadable}"
        );
    }
}

/// Through the verifier: a refused key is `ApiKeyRejected`, but the verifier's own credential
/// refused (401/403) is `ApiKeysUnavailable`, so an operator sees an outage, not bad keys.
#[tokio::test]
async fn the_verifiers_own_credential_refused_is_unavailable_not_a_rejected_key() {
    let key = Credential::generate(
        CredentialKind::ApiKey,
        Environment::live(),
        &mut rand::thread_rng(),
    );
    let mut good = valid(json!(null));
    good["key_id"] = key.id().into();
    let answer = Arc::new(Mutex::new((StatusCode::OK, vec![], good.clone())));
    let base = stub(answer.clone()).await;
    let ec = EcKey::new("k1", 1);
    let mut cfg = VerifierConfig::new(
        IssuerConfig::new(ISSUER, KeySource::Static(jwks_of(&[ec.jwk()]))),
        AUDIENCE,
        RevocationSource::Embedded {
            staleness_bound: std::time::Duration::from_secs(30),
        },
    );
    let http = HttpApiKeys::new(&base, "service-credential", false).expect("loopback http");
    // No answer is cached, so each call below reaches the stub.
    let mut api_keys = ApiKeyConfig::new(ApiKeySource::Backend(Arc::new(http)), "live");
    api_keys.cache_ttl = std::time::Duration::ZERO;
    cfg.api_keys = Some(api_keys);
    let verifier =
        Verifier::with_parts(cfg, clock(), Arc::new(FakeFetch::default())).expect("verifier");
    verifier.revocations().touch(0);
    let set = |status, body| *answer.lock().expect("lock") = (status, vec![], body);
    let check = || async {
        verifier
            .verify_api_key(key.expose(), None, None)
            .await
            .map(|p| p.credential_id.clone())
            .map_err(|d| d.reason)
    };

    assert_eq!(check().await, Ok(key.id().to_owned()));
    set(StatusCode::UNAUTHORIZED, json!({"error": "invalid_token"}));
    assert_eq!(check().await, Err(Reason::ApiKeysUnavailable));
    set(
        StatusCode::FORBIDDEN,
        json!({"error": "insufficient_scope"}),
    );
    assert_eq!(check().await, Err(Reason::ApiKeysUnavailable));
    set(StatusCode::OK, json!({"valid": false}));
    assert_eq!(check().await, Err(Reason::ApiKeyRejected));
    set(StatusCode::OK, good);
    assert_eq!(check().await, Ok(key.id().to_owned()));
}
