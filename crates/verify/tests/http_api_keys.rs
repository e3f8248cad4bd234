//! The HTTP API key backend against a stub of Portcullis's `POST /v1/api-keys/verify` on
//! 127.0.0.1: a valid answer (with its rate limit), a refusal, a 429 carrying `Retry-After`,
//! and answers it must not trust (a rate limit the server could never have stored) or cannot
//! read, which deny as "unavailable" rather than admit a key with fewer restrictions.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use portcullis_core::api_key::RateLimit;
use portcullis_core::credential::Environment;
use portcullis_verify::api_key::HttpApiKeys;
use portcullis_verify::{ApiKeyBackend, ApiKeyFailure, ApiKeyQuery};
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

fn valid(rate_limit: Value) -> Value {
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
    set(
        StatusCode::UNAUTHORIZED,
        vec![],
        json!({"error": "invalid_token"}),
    );
    assert_eq!(keys.verify(&q).await, Err(ApiKeyFailure::Rejected));
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
    set(StatusCode::OK, vec![], json!({"active": true}));
    assert!(matches!(
        keys.verify(&q).await,
        Err(ApiKeyFailure::Unavailable(_))
    ));
}
