//! API keys through the real router, in process (`tower::ServiceExt::oneshot`): admin
//! operations, `POST /v1/api-keys/verify` with every bad input of issue 4, cache invalidation,
//! environment binding, leak reports, and tenant isolation over every admin route.
//!
//! Audit assertions drain the audit writer first (`Harness::audit`), so they never depend on
//! timing.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use hmac::{Hmac, Mac};
use portcullis_core::audit::AuditEvent;
use portcullis_core::credential::{Credential, CredentialKind, Environment};
use portcullis_core::secret::Secret;
use portcullis_core::time::{Clock, ManualClock, Timestamp};
use portcullis_server::config::AuditConfig;
use portcullis_server::serve::{Assembled, BackgroundTasks, Hooks};
use portcullis_service::api_keys::ApiKeys;
use portcullis_service::state::AppState;
use portcullis_store::{SqliteStore, Store};
use serde_json::{json, Value};
use tower::ServiceExt;

struct Harness {
    app: Router,
    state: AppState,
    clock: Arc<ManualClock>,
    /// The node's background tasks; stopping them drains the audit log.
    tasks: Option<BackgroundTasks>,
    global: String,
    acme: String,
    globex: String,
    _dir: tempfile::TempDir,
    /// PostgreSQL pool and schema to drop after the test.
    pg: Option<(sqlx::PgPool, String)>,
}

impl Harness {
    async fn new() -> Self {
        Self::with_leak_key(None).await
    }

    async fn with_leak_key(leak_key: Option<&str>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("db"))
                .await
                .expect("open"),
        );
        Self::with_store(store, dir, leak_key).await
    }

    /// The same harness over PostgreSQL (a fresh schema), following the conformance suite:
    /// skipped with a notice when `PORTCULLIS_TEST_DATABASE_URL` is unset, a failure under CI.
    async fn postgres(name: &str) -> Option<Self> {
        let Ok(url) = std::env::var("PORTCULLIS_TEST_DATABASE_URL") else {
            assert!(
                std::env::var("CI").is_err(),
                "PORTCULLIS_TEST_DATABASE_URL must be set in CI"
            );
            eprintln!("notice: PORTCULLIS_TEST_DATABASE_URL is unset; skipping `{name}`");
            return None;
        };
        let schema = format!("t_{}", uuid_like());
        let store = portcullis_store::PgStore::connect_in_schema(&url, &schema)
            .await
            .expect("PostgreSQL named by PORTCULLIS_TEST_DATABASE_URL must be reachable");
        let pool = store.pool().clone();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut h = Self::with_store(Arc::new(store), dir, None).await;
        h.pg = Some((pool, schema));
        Some(h)
    }

    /// Drops the PostgreSQL schema (best effort: a failed test leaves it for inspection).
    async fn cleanup(mut self) {
        self.stop_tasks().await;
        if let Some((pool, schema)) = self.pg.take() {
            let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&pool)
                .await;
        }
    }

    async fn with_store(
        store: Arc<dyn Store>,
        dir: tempfile::TempDir,
        leak_key: Option<&str>,
    ) -> Self {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
        let common::Admins {
            global,
            acme,
            globex,
        } = common::seed(store.as_ref(), clock.now()).await;
        let mut config = common::config(dir.path());
        config.audit = AuditConfig {
            batch_size: 256,
            flush_interval_ms: 10,
            queue_capacity: 100_000,
            ..AuditConfig::default()
        };
        config.api_keys.leak_report_hmac_key = leak_key.map(|k| Secret::new(k.to_owned()));
        let Assembled {
            state,
            router,
            tasks,
            ..
        } = common::assemble_with(
            &config,
            common::ISSUER,
            store,
            // These tests check the verifier's own cache, storage closed included.
            Hooks {
                follow_revocations: false,
                ..Hooks::new(clock.clone())
            },
        )
        .await;
        Self {
            app: router,
            state,
            clock,
            tasks: Some(tasks),
            global,
            acme,
            globex,
            _dir: dir,
            pg: None,
        }
    }

    /// Stops the background tasks, which drains the audit writer.
    async fn stop_tasks(&mut self) {
        if let Some(tasks) = self.tasks.take() {
            tasks.shutdown(&self.state.api_keys.verifier).await;
        }
    }

    async fn raw(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("json body")
        };
        (status, v)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("authorization", format!("Bearer {token}"));
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        self.raw(req.body(body).expect("request")).await
    }

    async fn create(&self, token: &str, tenant: &str, body: Value) -> (String, String) {
        let (s, v) = self
            .call(
                Method::POST,
                &format!("/admin/v1/tenants/{tenant}/api-keys"),
                token,
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (
            v["id"].as_str().expect("id").to_owned(),
            v["key"].as_str().expect("key").to_owned(),
        )
    }

    async fn acme_key(&self, extra: Value) -> (String, String) {
        let mut body =
            json!({"name": "orders sync", "owner": "partner-a", "scopes": ["orders:read"]});
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        self.create(&self.acme, "acme", body).await
    }

    async fn verify(&self, token: &str, body: Value) -> (StatusCode, Value) {
        let (s, v, _) = self.verify_raw(token, body).await;
        (s, v)
    }

    /// The verify endpoint's answer with its exact body bytes; every answer, whatever its
    /// status, must carry `Cache-Control: no-store`.
    async fn verify_raw(&self, token: &str, body: Value) -> (StatusCode, Value, Vec<u8>) {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/v1/api-keys/verify")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        let resp = self.app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        assert_eq!(
            resp.headers()
                .get("cache-control")
                .and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "verify answer {status} without Cache-Control: no-store"
        );
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body")
            .to_vec();
        let v = serde_json::from_slice(&bytes).expect("json body");
        (status, v, bytes)
    }

    /// What the verify endpoint said about the key asked about.
    async fn verdict(&self, token: &str, body: Value) -> Verdict {
        let (s, v) = self.verify(token, body).await;
        if s == StatusCode::OK && v == refused() {
            Verdict::Refused
        } else if s == StatusCode::OK && v["valid"] == true && v["active"] == true {
            Verdict::Valid
        } else {
            Verdict::Other(s, v)
        }
    }

    async fn post(&self, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(Method::POST, path, token, body).await
    }

    /// Drains the audit writer and returns the tenant's events, oldest first. Ends auditing for
    /// this harness: call it once, after the requests.
    async fn audit(&mut self, tenants: &[&str]) -> Vec<AuditEvent> {
        self.stop_tasks().await;
        let mut all = Vec::new();
        for t in tenants {
            all.extend(common::audit_events(self.state.store.as_ref(), t).await);
        }
        all
    }
}

/// A random lowercase schema suffix.
fn uuid_like() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..24)
        .map(|_| char::from(b'a' + rng.gen_range(0..26u8)))
        .collect()
}

fn invalid_token() -> Value {
    json!({"error": "invalid_token"})
}

/// The verify endpoint's one answer for a key refused for any reason (with status 200).
fn refused() -> Value {
    json!({"valid": false})
}

/// The verify endpoint's answer about a key: valid, refused (200 `{"valid": false}`), or an
/// error about the request or the caller (4xx/5xx), or an unexpected body.
#[derive(Debug, PartialEq)]
enum Verdict {
    Valid,
    Refused,
    Other(StatusCode, Value),
}

#[tokio::test]
async fn create_list_show_update_and_never_show_secrets() {
    let h = Harness::new().await;
    let (id, key) = h
        .acme_key(json!({
            "description": "nightly export",
            "audiences": ["https://orders.example"],
            "ip_allowlist": ["10.0.0.0/8"],
            "rate_limit": {"requests": 100, "window_secs": 60},
            "metadata": {"ticket": "OPS-1"},
        }))
        .await;
    assert!(key.starts_with("pcl_key_live_"), "{key}");
    assert!(Credential::parse(&key).is_ok());
    let (_, test_key) = h
        .acme_key(json!({"environment": "test", "owner": "partner-b"}))
        .await;
    assert!(test_key.starts_with("pcl_key_test_"));

    let (s, list) = h
        .call(
            Method::GET,
            "/admin/v1/tenants/acme/api-keys",
            &h.acme,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let text = list.to_string();
    assert!(
        !text.contains(&key[13..]) && !text.contains(&test_key[13..]),
        "secret listed: {text}"
    );
    assert_eq!(list["items"].as_array().expect("array").len(), 2);
    // Same creation time: the order between the two is by id, so pick the key by id.
    let first = list["items"]
        .as_array()
        .expect("array")
        .iter()
        .find(|k| k["id"] == id.as_str())
        .expect("listed");
    assert_eq!(first["display_prefix"], format!("pcl_key_live_{id}"));
    assert_eq!(first["status"], "active");
    assert_eq!(first["ip_allowlist"], json!(["10.0.0.0/8"]));
    assert_eq!(first["metadata"], json!({"ticket": "OPS-1"}));
    assert!(
        first["expires_at"].is_string(),
        "the default policy sets an expiry"
    );

    for (query, want) in [
        ("?environment=test", 1),
        ("?environment=live&owner=partner-a", 1),
        ("?owner=partner-b", 1),
        ("?owner=nobody", 0),
    ] {
        let (_, v) = h
            .call(
                Method::GET,
                &format!("/admin/v1/tenants/acme/api-keys{query}"),
                &h.acme,
                None,
            )
            .await;
        assert_eq!(v["items"].as_array().expect("array").len(), want, "{query}");
    }
    // Another tenant sees none of them.
    let (_, v) = h
        .call(
            Method::GET,
            "/admin/v1/tenants/globex/api-keys",
            &h.globex,
            None,
        )
        .await;
    assert_eq!(v, json!({"items": [], "next_cursor": null}));
    let (s, _) = h
        .call(
            Method::GET,
            &format!("/admin/v1/tenants/globex/api-keys/{id}"),
            &h.globex,
            None,
        )
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "another tenant's key id is not found"
    );

    let (s, v) = h
        .call(
            Method::PATCH,
            &format!("/admin/v1/tenants/acme/api-keys/{id}"),
            &h.acme,
            Some(json!({"scopes": ["orders:read", "orders:write"], "ip_allowlist": [], "rate_limit": null})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["scopes"], json!(["orders:read", "orders:write"]));
    assert_eq!(v["ip_allowlist"], Value::Null);
    assert_eq!(v["rate_limit"], Value::Null);
    let (s, v) = h
        .call(
            Method::GET,
            &format!("/admin/v1/tenants/acme/api-keys/{id}"),
            &h.acme,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["description"], "nightly export");
    assert!(v.get("key").is_none());

    // The updated scopes take effect for verification at once; the audience restriction stays.
    let (s, _) = h
        .verify(
            &h.acme,
            json!({"key": key, "scopes": ["orders:write"], "audience": "https://orders.example"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    for aud in [json!(null), json!("https://billing.example")] {
        let verdict = h
            .verdict(&h.acme, json!({"key": key, "audience": aud}))
            .await;
        assert_eq!(verdict, Verdict::Refused, "audience {aud}");
    }

    for bad in [
        json!({"name": "x", "owner": "y", "scopes": ["has space"]}),
        json!({"name": "x", "owner": "y", "ip_allowlist": ["10.0.0.0/33"]}),
        json!({"name": "x", "owner": "y", "environment": "PROD"}),
        json!({"name": "x", "owner": "y", "metadata": [1, 2]}),
        json!({"name": "x", "owner": "y", "rate_limit": {"requests": 0, "window_secs": 1}}),
        json!({"name": "", "owner": "y"}),
        json!({"name": "x", "owner": "y", "expires_in": "never"}),
        json!({"name": "x", "owner": "y", "expires_in": "5000d"}),
        json!({"name": "x", "owner": "y", "surprise": true}),
    ] {
        let (s, v) = h
            .post(
                "/admin/v1/tenants/acme/api-keys",
                &h.acme,
                Some(bad.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad} -> {v}");
        assert_eq!(v["error"], "invalid_request");
    }
}

#[tokio::test]
async fn verify_accepts_a_good_key_and_records_last_use_in_batches() {
    let h = Harness::new().await;
    let (id, key) = h.acme_key(json!({})).await;
    let (s, v) = h
        .verify(
            &h.acme,
            json!({"key": key, "scopes": ["orders:read"], "client_ip": "198.51.100.4"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["key_id"], id);
    assert_eq!(v["tenant"], "acme");
    assert_eq!(v["owner"], "partner-a");
    assert_eq!(v["environment"], "live");
    assert!(!v.to_string().contains(&key));

    // No write per request: nothing stored until the batch is flushed.
    let stored = h
        .state
        .store
        .get_api_key(&id)
        .await
        .expect("get")
        .expect("key");
    assert_eq!(stored.last_used_at, None);
    h.clock.advance(Duration::from_secs(3));
    let (s, _) = h
        .verify(&h.global, json!({"key": key, "client_ip": "198.51.100.5"}))
        .await;
    assert_eq!(
        s,
        StatusCode::OK,
        "a global admin may verify any tenant's key"
    );
    let flushed = h
        .state
        .api_keys
        .verifier
        .flush_usage()
        .await
        .expect("flush");
    assert_eq!(flushed, 1, "two uses of one key are one write");
    let stored = h
        .state
        .store
        .get_api_key(&id)
        .await
        .expect("get")
        .expect("key");
    assert_eq!(stored.last_used_at, Some(h.clock.now()));
    assert_eq!(stored.last_used_ip.as_deref(), Some("198.51.100.5"));
    assert_eq!(
        h.state
            .api_keys
            .verifier
            .flush_usage()
            .await
            .expect("flush"),
        0
    );
}

/// Every bad input of issue 4, missing scopes included: the same 200 `{"valid": false}`, byte
/// for byte, and the precise reason only in the audit log. 401/403 stay for the caller's own
/// credential, so a verifier never mistakes its credential being refused for a bad key.
#[tokio::test]
async fn every_bad_input_answers_the_same_and_the_audit_log_says_why() {
    bad_inputs(&mut Harness::new().await).await;
}

#[tokio::test]
async fn every_bad_input_answers_the_same_and_the_audit_log_says_why_on_postgres() {
    if let Some(mut h) = Harness::postgres("bad inputs on postgres").await {
        bad_inputs(&mut h).await;
        h.cleanup().await;
    }
}

async fn bad_inputs(h: &mut Harness) {
    let (_, good) = h.acme_key(json!({})).await;

    let mut typo = good.clone();
    let last = typo.pop().expect("nonempty");
    typo.push(if last == 'A' { 'B' } else { 'A' });

    let unknown = Credential::generate(
        CredentialKind::ApiKey,
        Environment::live(),
        &mut rand::rngs::OsRng,
    )
    .expose()
    .to_owned();

    let (revoked_id, revoked) = h.acme_key(json!({})).await;
    let (s, _) = h
        .post(
            &format!("/admin/v1/tenants/acme/api-keys/{revoked_id}/revoke"),
            &h.acme,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let (disabled_id, disabled) = h.acme_key(json!({})).await;
    let (s, _) = h
        .post(
            &format!("/admin/v1/tenants/acme/api-keys/{disabled_id}/disable"),
            &h.acme,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let (_, short_lived) = h.acme_key(json!({"expires_in": "1h"})).await;

    let (rotated_id, rotated) = h.acme_key(json!({})).await;
    let (s, v) = h
        .post(
            &format!("/admin/v1/tenants/acme/api-keys/{rotated_id}/rotate"),
            &h.acme,
            Some(json!({"overlap": "0"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let replacement = v["new"]["key"].as_str().expect("new key").to_owned();

    let (_, test_env) = h.acme_key(json!({"environment": "test"})).await;
    let (_, globex_key) = h
        .create(&h.globex, "globex", json!({"name": "g", "owner": "o"}))
        .await;
    let (_, fenced) = h.acme_key(json!({"ip_allowlist": ["10.0.0.0/8"]})).await;
    let (_, aimed) = h
        .acme_key(json!({"audiences": ["https://orders.example"]}))
        .await;

    // Past the short-lived key's expiry; every other key lives 90 days.
    h.clock.advance(Duration::from_secs(2 * 3_600));

    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "wrong checksum",
            json!({"key": typo}),
            "credential_checksum_mismatch",
        ),
        ("unknown key", json!({"key": unknown}), "api_key_unknown"),
        ("revoked", json!({"key": revoked}), "api_key_revoked"),
        ("disabled", json!({"key": disabled}), "api_key_disabled"),
        ("expired", json!({"key": short_lived}), "api_key_expired"),
        (
            "rotated past its window",
            json!({"key": rotated}),
            "api_key_rotated",
        ),
        (
            "other environment",
            json!({"key": test_env}),
            "api_key_wrong_environment",
        ),
        (
            "another tenant's key",
            json!({"key": globex_key}),
            "api_key_tenant_mismatch",
        ),
        (
            "IP outside the allowlist",
            json!({"key": fenced, "client_ip": "192.0.2.1"}),
            "api_key_ip_not_allowed",
        ),
        (
            "IP unknown with an allowlist",
            json!({"key": fenced}),
            "api_key_ip_not_allowed",
        ),
        (
            "audience not allowed",
            json!({"key": aimed, "audience": "https://billing.example"}),
            "api_key_audience_not_allowed",
        ),
        (
            "oversized key",
            json!({"key": format!("pcl_key_live_{}", "A".repeat(5_000))}),
            "credential_too_long",
        ),
        (
            "not a key at all",
            json!({"key": "hunter2"}),
            "credential_malformed",
        ),
        (
            "an admin token",
            json!({"key": h.acme}),
            "credential_wrong_kind",
        ),
    ];
    let mut answers = Vec::new();
    for (what, body, _) in &cases {
        let (s, v, bytes) = h.verify_raw(&h.acme, body.clone()).await;
        assert_eq!(s, StatusCode::OK, "{what}: {v}");
        assert_eq!(
            v,
            refused(),
            "{what}: the body must not say which check failed"
        );
        answers.push((*what, bytes));
    }

    // In the URL query string: refused before anything else, even with a valid key and a
    // valid caller, as a mistake in the request (400) that says where the key belongs; the key
    // is never verified and the caller's credential not even looked at.
    let in_url = json!({"error": "invalid_request",
        "error_description": "send the API key in the JSON body, never in the URL: URLs are kept \
            in proxy and access logs"});
    for (query, caller) in [
        (format!("api_key={good}"), Some(h.acme.clone())),
        ("key=anything".to_owned(), Some(h.acme.clone())),
        (
            format!("k={}", good.replace('_', "%5F")),
            Some(h.acme.clone()),
        ),
        (format!("api_key={good}"), None),
        (format!("key={good}"), Some("pcl_adm_live_wrong".to_owned())),
    ] {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(format!("/v1/api-keys/verify?{query}"))
            .header("content-type", "application/json");
        if let Some(caller) = caller {
            req = req.header("authorization", format!("Bearer {caller}"));
        }
        let req = req
            .body(Body::from(json!({"key": good}).to_string()))
            .expect("request");
        let (s, v) = h.raw(req).await;
        assert_eq!((s, &v), (StatusCode::BAD_REQUEST, &in_url), "{query}");
    }

    // Missing scopes is one more reason for the same answer, not a 403 (a 403 is about the
    // caller's own credential).
    let (s, v, bytes) = h
        .verify_raw(&h.acme, json!({"key": good, "scopes": ["orders:delete"]}))
        .await;
    assert_eq!((s, v), (StatusCode::OK, refused()), "missing scope");
    answers.push(("missing scope", bytes));
    // Byte for byte the same answer, whatever the reason.
    for (what, bytes) in &answers {
        assert_eq!(bytes, &answers[0].1, "{what} vs {}", answers[0].0);
    }

    // The controls still pass.
    for body in [
        json!({"key": good}),
        json!({"key": replacement}),
        json!({"key": fenced, "client_ip": "10.20.30.40"}),
        json!({"key": aimed, "audience": "https://orders.example"}),
        json!({"key": test_env, "environment": "test"}),
    ] {
        let (s, v) = h.verify(&h.acme, body.clone()).await;
        assert_eq!(s, StatusCode::OK, "{body} -> {v}");
        assert_eq!(
            (&v["valid"], &v["active"]),
            (&json!(true), &json!(true)),
            "{body} -> {v}"
        );
    }

    let events = h.audit(&["acme", "system"]).await;
    let reasons: Vec<&str> = events
        .iter()
        .filter(|e| e.action == "api_key.verify")
        .filter_map(|e| e.reason.as_deref())
        .collect();
    let mut want: Vec<&str> = cases.iter().map(|c| c.2).collect();
    want.push("api_key_insufficient_scope");
    want.extend(["api_key_in_query_string"; 5]);
    for w in &want {
        assert!(
            reasons.contains(w),
            "audit reason {w} missing from {reasons:?}"
        );
    }
    assert_eq!(
        reasons.len(),
        want.len(),
        "one event per failure: {reasons:?}"
    );
    // Secrets never reach the audit log.
    let dump = format!("{events:?}");
    for secret in [&good, &revoked, &globex_key, &fenced] {
        assert!(!dump.contains(&secret[13..]), "secret in audit log");
    }
    let mismatch = events
        .iter()
        .find(|e| e.reason.as_deref() == Some("api_key_tenant_mismatch"))
        .expect("event");
    assert_eq!(mismatch.tenant.as_str(), "acme");
    assert_eq!(mismatch.target.as_deref(), Some("globex"));
}

/// The caller's own credential refused is 401, never the `{"valid": false}` of a bad key: a
/// verifier must be able to tell the two apart.
#[tokio::test]
async fn a_bad_caller_credential_is_401_not_a_refused_key() {
    let h = Harness::new().await;
    let (_, key) = h.acme_key(json!({})).await;
    let unknown_admin = Credential::generate(
        CredentialKind::AdminToken,
        Environment::live(),
        &mut rand::rngs::OsRng,
    )
    .expose()
    .to_owned();
    for caller in ["", "not-a-credential", unknown_admin.as_str()] {
        let (s, v) = h.verify(caller, json!({"key": key})).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "caller {caller:?}: {v}");
        assert!(v["error"].is_string(), "caller {caller:?}: {v}");
    }
    assert_eq!(
        h.verdict(&h.acme, json!({"key": key})).await,
        Verdict::Valid
    );
}

#[tokio::test]
async fn another_tenants_admin_cannot_verify_for_this_tenant() {
    let h = Harness::new().await;
    let (_, key) = h.acme_key(json!({})).await;
    let (s, v) = h
        .verify(&h.globex, json!({"key": key, "tenant": "acme"}))
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(
        h.verdict(&h.globex, json!({"key": key})).await,
        Verdict::Refused,
        "defaults to the admin's own tenant"
    );
    assert_eq!(
        h.verdict(&h.global, json!({"key": key, "tenant": "globex"}))
            .await,
        Verdict::Refused
    );
    let (s, _) = h
        .call(
            Method::POST,
            "/v1/api-keys/verify",
            &key,
            Some(json!({"key": key})),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "an API key is not an admin credential"
    );
}

#[tokio::test]
async fn revoke_disable_and_rotation_end_take_effect_at_once_despite_the_cache() {
    state_changes(&Harness::new().await).await;
}

#[tokio::test]
async fn revoke_disable_and_rotation_end_take_effect_at_once_on_postgres() {
    if let Some(h) = Harness::postgres("state changes on postgres").await {
        state_changes(&h).await;
        h.cleanup().await;
    }
}

async fn state_changes(h: &Harness) {
    let ok = |s: StatusCode| s == StatusCode::OK;
    let valid = |v: Verdict| v == Verdict::Valid;
    let (id, key) = h.acme_key(json!({})).await;
    assert!(valid(h.verdict(&h.acme, json!({"key": key})).await));
    assert!(
        h.state.api_keys.verifier.cached_len() >= 1,
        "the verification was cached"
    );

    h.post(
        &format!("/admin/v1/tenants/acme/api-keys/{id}/disable"),
        &h.acme,
        None,
    )
    .await;
    assert!(
        !valid(h.verdict(&h.acme, json!({"key": key})).await),
        "disable"
    );
    let (s, v) = h
        .post(
            &format!("/admin/v1/tenants/acme/api-keys/{id}/enable"),
            &h.acme,
            None,
        )
        .await;
    assert!(ok(s), "{v}");
    assert_eq!(v["status"], "active");
    assert!(
        valid(h.verdict(&h.acme, json!({"key": key})).await),
        "enable"
    );

    let (s, v) = h
        .post(
            &format!("/admin/v1/tenants/acme/api-keys/{id}/rotate"),
            &h.acme,
            Some(json!({"overlap": "1h"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let new_key = v["new"]["key"].as_str().expect("key").to_owned();
    let new_id = v["new"]["id"].as_str().expect("id").to_owned();
    assert_eq!(v["old"]["status"], "rotating");
    assert_eq!(v["old"]["replaced_by"], new_id.as_str());
    assert!(v["old"]["rotation_overlap_ends_at"].is_string());
    assert!(v["old"].get("key").is_none());
    // Both work inside the window, and both are listed with their expiry.
    assert!(valid(h.verdict(&h.acme, json!({"key": key})).await));
    assert!(valid(h.verdict(&h.acme, json!({"key": new_key})).await));
    let (_, list) = h
        .call(
            Method::GET,
            "/admin/v1/tenants/acme/api-keys",
            &h.acme,
            None,
        )
        .await;
    assert_eq!(list["items"].as_array().expect("array").len(), 2);
    let (s, _) = h
        .post(
            &format!("/admin/v1/tenants/acme/api-keys/{id}/rotate"),
            &h.acme,
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "a key is rotated once");

    h.clock.advance(Duration::from_secs(3_600));
    assert!(
        !valid(h.verdict(&h.acme, json!({"key": key})).await),
        "window over"
    );
    assert!(valid(h.verdict(&h.acme, json!({"key": new_key})).await));

    h.post(
        &format!("/admin/v1/tenants/acme/api-keys/{new_id}/revoke"),
        &h.acme,
        None,
    )
    .await;
    assert!(
        !valid(h.verdict(&h.acme, json!({"key": new_key})).await),
        "revoke"
    );
    let (s, _) = h
        .post(
            &format!("/admin/v1/tenants/acme/api-keys/{new_id}/enable"),
            &h.acme,
            None,
        )
        .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "a revoked key cannot be re-enabled"
    );
}

#[tokio::test]
async fn environment_binding_refuses_the_other_environment_both_ways() {
    let h = Harness::new().await;
    let (_, live) = h.acme_key(json!({})).await;
    let (_, test) = h.acme_key(json!({"environment": "test"})).await;
    let verdict = |b: Value| async { h.verdict(&h.acme, b).await };
    assert_eq!(verdict(json!({"key": live})).await, Verdict::Valid);
    assert_eq!(verdict(json!({"key": test})).await, Verdict::Refused);
    assert_eq!(
        verdict(json!({"key": test, "environment": "test"})).await,
        Verdict::Valid
    );
    assert_eq!(
        verdict(json!({"key": live, "environment": "test"})).await,
        Verdict::Refused
    );
}

#[tokio::test]
async fn bulk_revoke_by_owner_offboards_a_partner() {
    let mut h = Harness::new().await;
    let (a, ka) = h.acme_key(json!({"owner": "leaver"})).await;
    let (b, kb) = h
        .acme_key(json!({"owner": "leaver", "environment": "test"}))
        .await;
    let (_, kc) = h.acme_key(json!({"owner": "stayer"})).await;
    let (_, kg) = h
        .create(&h.globex, "globex", json!({"name": "g", "owner": "leaver"}))
        .await;
    assert_eq!(h.verdict(&h.acme, json!({"key": ka})).await, Verdict::Valid);
    let (s, v) = h
        .post(
            "/admin/v1/tenants/acme/api-keys/revoke-by-owner",
            &h.acme,
            Some(json!({"owner": "leaver"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let mut want = vec![a.clone(), b.clone()];
    want.sort();
    assert_eq!(v["revoked"], json!(want));
    assert_eq!(
        h.verdict(&h.acme, json!({"key": ka})).await,
        Verdict::Refused
    );
    assert_eq!(
        h.verdict(&h.acme, json!({"key": kb, "environment": "test"}))
            .await,
        Verdict::Refused
    );
    assert_eq!(h.verdict(&h.acme, json!({"key": kc})).await, Verdict::Valid);
    assert_eq!(
        h.verdict(&h.globex, json!({"key": kg})).await,
        Verdict::Valid
    );
    let events = h.audit(&["acme"]).await;
    let revokes: Vec<_> = events
        .iter()
        .filter(|e| e.action == "api_key.revoke")
        .map(|e| (e.target.clone().unwrap_or_default(), e.reason.clone()))
        .collect();
    assert_eq!(revokes.len(), 2, "{revokes:?}");
    assert!(revokes
        .iter()
        .all(|(_, r)| r.as_deref() == Some("owner_offboarded")));
}

fn leak_request(body: &str, signature: Option<String>) -> Request<Body> {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri("/v1/api-keys/leaks")
        .header("content-type", "application/json");
    if let Some(sig) = signature {
        req = req.header("x-portcullis-signature", sig);
    }
    req.body(Body::from(body.to_owned())).expect("request")
}

#[tokio::test]
async fn a_leak_report_revokes_matching_keys_and_reveals_nothing_about_the_rest() {
    let mut h = Harness::new().await;
    let (id, key) = h.acme_key(json!({})).await;
    let (_, other) = h.acme_key(json!({})).await;
    assert_eq!(
        h.verdict(&h.acme, json!({"key": key})).await,
        Verdict::Valid
    );
    let unknown = Credential::generate(
        CredentialKind::ApiKey,
        Environment::live(),
        &mut rand::rngs::OsRng,
    );
    let report = json!([
        {"token": key, "type": "portcullis_api_key", "url": "https://example.com/x", "source": "content"},
        {"token": "not-a-key", "type": "x"},
        {"token": unknown.expose(), "type": "portcullis_api_key"},
    ]);
    let (s1, v1) = h.raw(leak_request(&report.to_string(), None)).await;
    let decoy = json!([{"token": "a"}, {"token": "b"}, {"token": "c"}]);
    let (s2, v2) = h.raw(leak_request(&decoy.to_string(), None)).await;
    assert_eq!(s1, StatusCode::OK);
    assert_eq!(
        (s1, &v1),
        (s2, &v2),
        "the answer does not depend on what matched"
    );

    assert_eq!(
        h.verdict(&h.acme, json!({"key": key})).await,
        Verdict::Refused,
        "revoked at once, cache included"
    );
    assert_eq!(
        h.verdict(&h.acme, json!({"key": other})).await,
        Verdict::Valid
    );
    let stored = h
        .state
        .store
        .get_api_key(&id)
        .await
        .expect("get")
        .expect("key");
    assert_eq!(stored.revoked_reason.as_deref(), Some("leaked"));

    let (s, _) = h.raw(leak_request("{\"not\": \"an array\"}", None)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);

    let events = h.audit(&["acme", "system"]).await;
    let leak = events
        .iter()
        .find(|e| e.action == "api_key.leak_revoked")
        .expect("leak event");
    assert_eq!(leak.target.as_deref(), Some(id.as_str()));
    assert_eq!(leak.reason.as_deref(), Some("leaked:content"));
    assert!(portcullis_core::api_key::ALERT_ACTIONS.contains(&leak.action.as_str()));
    let summaries: Vec<_> = events
        .iter()
        .filter(|e| e.action == "api_key.leak_report")
        .filter_map(|e| e.reason.clone())
        .collect();
    assert_eq!(summaries, ["tokens:3 matched:1", "tokens:3 matched:0"]);
    assert!(!format!("{events:?}").contains("not-a-key"));
}

#[tokio::test]
async fn a_configured_scanner_key_requires_a_valid_signature() {
    let scanner_key = "scanner-shared-secret-0123456789";
    let h = Harness::with_leak_key(Some(scanner_key)).await;
    let (_, key) = h.acme_key(json!({})).await;
    let body = json!([{"token": key}]).to_string();
    let sign = |k: &str, b: &str| {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(k.as_bytes()).expect("key");
        mac.update(b.as_bytes());
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    };
    for bad in [
        None,
        Some(sign("wrong-key-wrong-key", &body)),
        Some("sha256=00".into()),
    ] {
        let (s, v) = h.raw(leak_request(&body, bad)).await;
        assert_eq!((s, v), (StatusCode::UNAUTHORIZED, invalid_token()));
    }
    assert_eq!(
        h.verdict(&h.acme, json!({"key": key})).await,
        Verdict::Valid,
        "unsigned report changed nothing"
    );
    let (s, _) = h
        .raw(leak_request(&body, Some(sign(scanner_key, &body))))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h.verdict(&h.acme, json!({"key": key})).await,
        Verdict::Refused
    );
}

#[tokio::test]
async fn expiry_policy_is_per_tenant_and_set_only_by_global_admins() {
    let h = Harness::new().await;
    let never = json!({"name": "n", "owner": "o", "expires_in": "never"});
    let (s, _) = h
        .post(
            "/admin/v1/tenants/acme/api-keys",
            &h.acme,
            Some(never.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "default policy refuses never");
    let policy = json!({"default_ttl": "30days", "max_ttl": "none", "allow_never": true});
    let (s, _) = h
        .call(
            Method::PUT,
            "/admin/v1/tenants/acme/api-key-policy",
            &h.acme,
            Some(policy.clone()),
        )
        .await;
    assert_eq!(
        s,
        StatusCode::FORBIDDEN,
        "a tenant admin cannot loosen its own policy"
    );
    let (s, v) = h
        .call(
            Method::PUT,
            "/admin/v1/tenants/acme/api-key-policy",
            &h.global,
            Some(policy),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, v) = h
        .call(
            Method::GET,
            "/admin/v1/tenants/acme/api-key-policy",
            &h.acme,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["allow_never"], true);
    let (s, v) = h
        .post(
            "/admin/v1/tenants/acme/api-keys",
            &h.acme,
            Some(never.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["expires_at"], Value::Null);
    let (s, v) = h
        .post(
            "/admin/v1/tenants/acme/api-keys",
            &h.acme,
            Some(json!({"name": "d", "owner": "o"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let expected = h
        .clock
        .now()
        .saturating_add(Duration::from_secs(30 * 86_400));
    assert_eq!(
        v["expires_at"],
        portcullis_service::state::rfc3339(expected)
    );
    // globex keeps the default.
    let (s, _) = h
        .post("/admin/v1/tenants/globex/api-keys", &h.globex, Some(never))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _) = h
        .call(
            Method::PUT,
            "/admin/v1/tenants/acme/api-key-policy",
            &h.global,
            Some(json!({"default_ttl": "never", "max_ttl": "none", "allow_never": false})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "inconsistent policy");
}

/// Walks the route registry: a tenant admin of `acme` gets 403 on every tenant route of
/// `globex` and on every global route, whatever the route does.
#[tokio::test]
/// Every admin route aimed at another tenant's real key is refused and changes nothing (the
/// registry-wide status checks are in admin_api.rs).
async fn cross_tenant_calls_on_every_admin_route_leave_a_real_key_untouched() {
    let h = Harness::new().await;
    let (globex_key_id, _) = h
        .create(&h.globex, "globex", json!({"name": "g", "owner": "o"}))
        .await;
    let mut checked = 0;
    for (spec, _) in portcullis_http::admin::routes() {
        let path = spec
            .path
            .replace("{tenant}", "globex")
            .replace("{id}", &globex_key_id);
        let (s, v) = h
            .call(
                spec.method.clone(),
                &format!("/admin/v1{path}"),
                &h.acme,
                Some(json!({})),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{} {path}: {v}", spec.method);
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} routes");
    // Nothing changed for globex's key.
    let stored = h
        .state
        .store
        .get_api_key(&globex_key_id)
        .await
        .expect("get")
        .expect("key");
    assert!(stored.revoked_at.is_none() && stored.disabled_at.is_none());
    assert!(stored.replaced_by.is_none());
}

#[tokio::test]
async fn disabling_a_tenant_stops_its_keys_at_once_despite_the_cache() {
    let h = Harness::new().await;
    let (_, key) = h.acme_key(json!({})).await;
    assert_eq!(
        h.verdict(&h.global, json!({"key": key})).await,
        Verdict::Valid
    );
    let (s, v) = h
        .post("/admin/v1/tenants/acme/disable", &h.global, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        h.verdict(&h.global, json!({"key": key})).await,
        Verdict::Refused
    );
    let (s, _) = h
        .post("/admin/v1/tenants/acme/enable", &h.global, None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h.verdict(&h.global, json!({"key": key})).await,
        Verdict::Valid
    );
}

/// A route protected by the `ApiKeyAuth` extractor: the key belongs in a header, never in the
/// URL; another tenant's key is refused on this tenant's route.
#[tokio::test]
async fn a_key_protected_route_takes_keys_from_headers_only() {
    let mut h = Harness::new().await;
    let (id, key) = h.acme_key(json!({})).await;
    let (_, globex_key) = h
        .create(&h.globex, "globex", json!({"name": "g", "owner": "o"}))
        .await;
    let get = |uri: String, header: Option<(&'static str, String)>| {
        let mut req = Request::builder().method(Method::GET).uri(uri);
        if let Some((k, v)) = header {
            req = req.header(k, v);
        }
        req.body(Body::empty()).expect("request")
    };
    let route = "/v1/tenants/acme/api-keys/self";
    let (s, v) = h
        .raw(get(route.into(), Some(("x-api-key", key.clone()))))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["key_id"], id.as_str());
    let (s, _) = h
        .raw(get(
            route.into(),
            Some(("authorization", format!("Bearer {key}"))),
        ))
        .await;
    assert_eq!(s, StatusCode::OK);

    let refusals = [
        get(format!("{route}?api_key={key}"), None),
        get(
            format!("{route}?api_key={key}"),
            Some(("x-api-key", key.clone())),
        ),
        get(route.into(), Some(("x-api-key", globex_key.clone()))),
        get(
            route.into(),
            Some(("x-api-key", format!("pcl_key_live_{}", "x".repeat(8_000)))),
        ),
        get(route.into(), None),
    ];
    let last = refusals.len() - 1;
    for (i, req) in refusals.into_iter().enumerate() {
        let resp = h.app.clone().oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "case {i}");
        // The route takes API keys and its challenge says so, as the gateway's do.
        let error = if i == last {
            ""
        } else {
            ", error=\"invalid_token\""
        };
        let challenges: Vec<_> = resp
            .headers()
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().expect("ascii").to_owned())
            .collect();
        assert_eq!(
            challenges,
            [
                format!("Bearer realm=\"portcullis\"{error}"),
                format!("ApiKey realm=\"portcullis\"{error}, header=\"X-API-Key\""),
            ],
            "case {i}"
        );
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .expect("body");
        let v: Value = serde_json::from_slice(&body).expect("json");
        if i == last {
            // No credential: the missing-credential answer of the admin API and the gateway.
            assert_eq!(v, json!({"error": "unauthorized"}), "case {i}");
        } else {
            assert_eq!(v, invalid_token(), "case {i}");
        }
    }
    let events = h.audit(&["acme"]).await;
    let reasons: Vec<_> = events
        .iter()
        .filter(|e| e.action == "api_key.verify")
        .filter_map(|e| e.reason.as_deref())
        .collect();
    assert_eq!(
        reasons,
        [
            "api_key_in_query_string",
            "api_key_in_query_string",
            "api_key_tenant_mismatch",
            "credential_too_long",
        ]
    );
}

/// GitHub secret scanning signs reports with ECDSA P-256 (`Github-Public-Key-Signature`, base64
/// DER over the raw body); with that public key configured, only such reports are accepted.
#[tokio::test]
async fn a_configured_ecdsa_scanner_key_requires_a_valid_ecdsa_signature() {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1_SIGNING};
    use base64::Engine;

    let scanner = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("key");
    let impostor = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("key");
    let spki = scanner
        .public_key()
        .as_der()
        .expect("der")
        .as_ref()
        .to_vec();
    let mut h = Harness::new().await;
    h.state.api_keys = Arc::new(ApiKeys {
        verifier: h.state.api_keys.verifier.clone(),
        leak_report_key: None,
        leak_report_ecdsa_key: Some(spki),
    });
    h.app = portcullis_http::app::router(h.state.clone(), 64 * 1024);

    let (_, key) = h.acme_key(json!({})).await;
    let body = json!([{"token": key, "type": "portcullis_api_key"}]).to_string();
    let sign = |k: &EcdsaKeyPair, b: &str| {
        let sig = k
            .sign(&aws_lc_rs::rand::SystemRandom::new(), b.as_bytes())
            .expect("sign");
        base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
    };
    let with_sig = |sig: Option<String>| {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/v1/api-keys/leaks")
            .header("content-type", "application/json")
            .header("github-public-key-identifier", "test");
        if let Some(sig) = sig {
            req = req.header("github-public-key-signature", sig);
        }
        req.body(Body::from(body.clone())).expect("request")
    };
    for bad in [
        None,
        Some(sign(&impostor, &body)),
        Some(sign(&scanner, "[]")),
        Some("not base64 !".into()),
    ] {
        let (s, v) = h.raw(with_sig(bad)).await;
        assert_eq!((s, v), (StatusCode::UNAUTHORIZED, invalid_token()));
    }
    assert_eq!(
        h.verdict(&h.acme, json!({"key": key})).await,
        Verdict::Valid,
        "badly signed reports changed nothing"
    );
    let (s, _) = h.raw(with_sig(Some(sign(&scanner, &body)))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h.verdict(&h.acme, json!({"key": key})).await,
        Verdict::Refused
    );
}

/// Invariant 1: an internal error denies. With storage gone, a key the verifier has not cached
/// is refused, never let through.
#[tokio::test]
async fn a_storage_failure_denies_an_uncached_key() {
    let h = Harness::new().await;
    let (_, key) = h.acme_key(json!({})).await;
    h.state.store.close().await;
    let req = Request::builder()
        .method(Method::GET)
        .uri("/v1/tenants/acme/api-keys/self")
        .header("x-api-key", key)
        .body(Body::empty())
        .expect("request");
    let (s, v) = h.raw(req).await;
    assert!(s.is_server_error(), "{s} {v}");
    assert_eq!(
        v,
        json!({"error": "server_error"}),
        "no internals in the body"
    );
}

/// The verify library checking keys in process against this server's store (the
/// `ApiKeyBackend` the server implements), with its policy applied on top.
#[tokio::test]
async fn the_verify_library_uses_the_store_backed_verifier_in_process() {
    use portcullis_verify::{Policy, Presented, Reason, RequestFacts};
    let h = Harness::new().await;
    let (id, key) = h.acme_key(json!({"audiences": ["orders-api"]})).await;
    let verifier = library_verifier(&h);
    let acme = portcullis_core::tenant::TenantId::parse("acme").expect("tenant");
    let globex = portcullis_core::tenant::TenantId::parse("globex").expect("tenant");
    let facts = |t| RequestFacts {
        resource_tenant: t,
        client_ip: None,
    };
    let read = Policy::access_token()
        .also_api_keys()
        .all_scopes(["orders:read"])
        .tenant_from_path("tenant");
    let p = verifier
        .check(Presented::ApiKey(&key), &read, facts(Some(&acme)))
        .await
        .expect("accepted");
    assert_eq!(p.credential_id, id);
    assert_eq!(p.scopes, vec!["orders:read"]);
    let write = Policy::access_token()
        .also_api_keys()
        .all_scopes(["orders:write"])
        .tenant_from_path("tenant");
    let deny = verifier
        .check(Presented::ApiKey(&key), &write, facts(Some(&acme)))
        .await
        .expect_err("scope");
    assert_eq!(deny.reason, Reason::MissingScope);
    let deny = verifier
        .check(Presented::ApiKey(&key), &read, facts(Some(&globex)))
        .await
        .expect_err("tenant");
    // Another tenant's key on this tenant's route is 401 invalid_token (issue 4's rule).
    assert_eq!(deny.reason, Reason::ApiKeyRejected);
    // Revoked through the admin API: the store-backed verifier refuses once the cached answer
    // is dropped (the feed's api_key record does that; here it is applied directly).
    let (s, _) = h
        .post(
            &format!("/admin/v1/tenants/acme/api-keys/{id}/revoke"),
            &h.acme,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    verifier
        .revocations()
        .apply(&portcullis_core::revocation::RevocationRecord {
            seq: 1,
            tenant: acme.clone(),
            kind: portcullis_core::revocation::RevocationKind::ApiKeyChanged,
            subject: id.clone(),
            revoked_before: None,
            expires_at: None,
            created_at: Timestamp::from_secs(1),
        });
    let deny = verifier
        .check(Presented::ApiKey(&key), &read, facts(Some(&acme)))
        .await
        .expect_err("revoked");
    assert_eq!(deny.reason, Reason::ApiKeyRejected);
}

/// A key's own rate limit on the verify endpoint: 429 `rate_limited` with `Retry-After` once the
/// burst is spent, other keys unaffected, one audit event per limited stretch (not per refusal).
#[tokio::test]
async fn a_key_over_its_own_rate_limit_is_answered_429_and_audited_once_per_stretch() {
    let mut h = Harness::new().await;
    let (limited_id, limited) = h
        .acme_key(json!({"rate_limit": {"requests": 2, "window_secs": 60}}))
        .await;
    let (_, other) = h.acme_key(json!({})).await;
    let verify = |key: &str| {
        Request::builder()
            .method(Method::POST)
            .uri("/v1/api-keys/verify")
            .header("authorization", format!("Bearer {}", h.acme))
            .header("content-type", "application/json")
            .body(Body::from(json!({"key": key}).to_string()))
            .expect("request")
    };
    for _ in 0..2 {
        assert_eq!(h.raw(verify(&limited)).await.0, StatusCode::OK);
    }
    for _ in 0..3 {
        let resp = h
            .app
            .clone()
            .oneshot(verify(&limited))
            .await
            .expect("response");
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            resp.headers()["retry-after"],
            "30",
            "2 a minute: one every 30 s"
        );
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        assert_eq!(
            serde_json::from_slice::<Value>(&body).expect("json"),
            json!({"error": "rate_limited"})
        );
    }
    assert_eq!(h.raw(verify(&other)).await.0, StatusCode::OK, "per key");
    h.clock.advance(Duration::from_secs(30));
    assert_eq!(h.raw(verify(&limited)).await.0, StatusCode::OK, "refilled");
    assert_eq!(
        h.raw(verify(&limited)).await.0,
        StatusCode::TOO_MANY_REQUESTS,
        "by one token only"
    );
    let events = h.audit(&["acme"]).await;
    let limited_events: Vec<_> = events
        .iter()
        .filter(|e| e.reason.as_deref() == Some("api_key_rate_limited"))
        .collect();
    assert_eq!(limited_events.len(), 2, "one per limited stretch");
    assert!(limited_events
        .iter()
        .all(|e| e.credential_id.as_deref() == Some(limited_id.as_str())));
}

/// The verify library counts a key's limit itself for every request it admits, cached or not,
/// so the in-process backend must not count it again.
#[tokio::test]
async fn the_verify_library_counts_a_keys_limit_once_in_process() {
    use portcullis_verify::{Policy, Presented, Reason, RequestFacts};
    let h = Harness::new().await;
    let (_, key) = h
        .acme_key(json!({"rate_limit": {"requests": 3, "window_secs": 60}}))
        .await;
    let verifier = library_verifier(&h);
    let policy = Policy::access_token().api_keys_only();
    let facts = RequestFacts {
        resource_tenant: None,
        client_ip: None,
    };
    for _ in 0..3 {
        verifier
            .check(Presented::ApiKey(&key), &policy, facts)
            .await
            .expect("within the burst");
    }
    let deny = verifier
        .check(Presented::ApiKey(&key), &policy, facts)
        .await
        .expect_err("over the limit");
    assert_eq!(
        deny.reason,
        Reason::ApiKeyRateLimited {
            retry_after_secs: 20
        }
    );
    // The server's own count for the key was not spent by the library's lookup: its whole
    // burst of 3 is still there.
    for _ in 0..3 {
        let (s, v) = h.verify(&h.acme, json!({"key": key})).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }
}

/// A well-formed key with an unknown id is remembered as unknown for the cache TTL: repeating
/// it does not reach storage (here: storage is gone, and the answer is still a plain 401).
/// Invariant 11 for API key IP allowlists: a route protected by an API key sees the forwarded
/// client address when the request comes from a trusted proxy, and the peer otherwise; an entry
/// the client wrote itself never counts.
#[tokio::test]
async fn an_ip_allowlist_sees_the_forwarded_address_only_from_a_trusted_proxy() {
    use axum::extract::ConnectInfo;
    use portcullis_core::forwarded::TrustedProxies;
    use portcullis_server::config::HttpConfig;

    let h = Harness::new().await;
    let (_, fenced) = h
        .acme_key(json!({"ip_allowlist": ["203.0.113.0/24"]}))
        .await;
    let app = portcullis_http::app::router_for(
        h.state.clone(),
        &HttpConfig {
            trusted_proxies: TrustedProxies::parse(["10.0.0.0/8"]).expect("proxies"),
            ..HttpConfig::default()
        },
    );
    let whoami = |peer: &str, xff: Option<&str>| {
        let mut b = Request::builder()
            .uri("/v1/tenants/acme/api-keys/self")
            .header("x-api-key", &fenced);
        if let Some(xff) = xff {
            b = b.header("x-forwarded-for", xff);
        }
        let mut req = b.body(Body::empty()).expect("request");
        let peer: std::net::SocketAddr = format!("{peer}:40000").parse().expect("peer");
        req.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move { app.oneshot(req).await.expect("infallible").status() }
    };
    for (peer, xff, want) in [
        ("10.0.0.5", Some("203.0.113.7"), StatusCode::OK),
        ("10.0.0.5", Some("192.0.2.1"), StatusCode::UNAUTHORIZED),
        // The client's own entry on the left does not get it in.
        (
            "10.0.0.5",
            Some("203.0.113.7, 192.0.2.1"),
            StatusCode::UNAUTHORIZED,
        ),
        // Nor does a header from a peer that is not a trusted proxy.
        (
            "198.51.100.1",
            Some("203.0.113.7"),
            StatusCode::UNAUTHORIZED,
        ),
        // Garbage from the proxy: no known address, refused.
        (
            "10.0.0.5",
            Some("203.0.113.7, junk"),
            StatusCode::UNAUTHORIZED,
        ),
        ("203.0.113.7", None, StatusCode::OK),
    ] {
        assert_eq!(whoami(peer, xff).await, want, "{peer} {xff:?}");
    }
}

/// Fail closed: behind a trusted proxy whose header names no usable address the client is
/// unknown, and unknown never passes an allowlist, not even one that holds the proxy's own
/// address (before serve and the gateway shared one rule, this answered the proxy's address and
/// let such requests in).
#[tokio::test]
async fn an_unknown_client_address_fails_an_allowlist_even_one_naming_the_proxy() {
    use axum::extract::ConnectInfo;
    use portcullis_core::forwarded::TrustedProxies;
    use portcullis_server::config::HttpConfig;

    let h = Harness::new().await;
    let (_, fenced) = h
        .acme_key(json!({"ip_allowlist": ["10.0.0.0/8", "203.0.113.0/24"]}))
        .await;
    let app = portcullis_http::app::router_for(
        h.state.clone(),
        &HttpConfig {
            trusted_proxies: TrustedProxies::parse(["10.0.0.0/8"]).expect("proxies"),
            ..HttpConfig::default()
        },
    );
    let whoami = |xff: Option<&str>| {
        let mut b = Request::builder()
            .uri("/v1/tenants/acme/api-keys/self")
            .header("x-api-key", &fenced);
        if let Some(xff) = xff {
            b = b.header("x-forwarded-for", xff);
        }
        let mut req = b.body(Body::empty()).expect("request");
        let peer: std::net::SocketAddr = "10.0.0.5:40000".parse().expect("peer");
        req.extensions_mut().insert(ConnectInfo(peer));
        let app = app.clone();
        async move { app.oneshot(req).await.expect("infallible").status() }
    };
    for (xff, want) in [
        (Some("203.0.113.7"), StatusCode::OK),
        // Inside the proxy tier, named by the proxy: allowed.
        (Some("10.0.0.9"), StatusCode::OK),
        (Some("203.0.113.7, junk"), StatusCode::UNAUTHORIZED),
        (Some("203.0.113.7, unknown"), StatusCode::UNAUTHORIZED),
        (Some(""), StatusCode::UNAUTHORIZED),
        // The proxy named nobody.
        (None, StatusCode::UNAUTHORIZED),
    ] {
        assert_eq!(whoami(xff).await, want, "{xff:?}");
    }
}

#[tokio::test]
async fn an_unknown_key_id_is_remembered_and_not_looked_up_again() {
    let h = Harness::new().await;
    let unknown = Credential::generate(
        CredentialKind::ApiKey,
        Environment::live(),
        &mut rand::rngs::OsRng,
    )
    .expose()
    .to_owned();
    let whoami = |key: &str| {
        Request::builder()
            .uri("/v1/tenants/acme/api-keys/self")
            .header("x-api-key", key)
            .body(Body::empty())
            .expect("request")
    };
    assert_eq!(h.raw(whoami(&unknown)).await.0, StatusCode::UNAUTHORIZED);
    h.state.store.close().await;
    assert_eq!(
        h.raw(whoami(&unknown)).await.0,
        StatusCode::UNAUTHORIZED,
        "answered from the remembered miss, not storage"
    );
    // Once the TTL passes the miss is forgotten: storage is asked (and, being gone, denies).
    h.clock.advance(Duration::from_secs(3_601));
    assert!(h.raw(whoami(&unknown)).await.0.is_server_error());
}

/// The verify library checking API keys in process against this harness's store-backed
/// verifier (audience `orders-api`, environment `live`, revocations applied by the test).
fn library_verifier(h: &Harness) -> portcullis_verify::Verifier {
    use portcullis_verify::{
        ApiKeyConfig, ApiKeySource, IssuerConfig, KeySource, RevocationSource, Verifier,
        VerifierConfig,
    };
    let mut cfg = VerifierConfig::new(
        IssuerConfig::new("https://unused.example", KeySource::Static(r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#.into())),
        "orders-api",
        RevocationSource::Embedded {
            staleness_bound: Duration::from_secs(3600),
        },
    );
    cfg.api_keys = Some(ApiKeyConfig::new(
        ApiKeySource::Backend(Arc::new(portcullis_server::api_key_backend::StoreApiKeys(
            h.state.api_keys.verifier.clone(),
        ))),
        "live",
    ));
    let verifier = Verifier::with_parts(
        cfg,
        h.clock.clone(),
        Arc::new(
            portcullis_verify::fetch::HttpFetch::new(Duration::from_secs(1), false).expect("fetch"),
        ),
    )
    .expect("verifier");
    verifier.revocations().touch(0);
    verifier
}

/// Archiving a tenant stops its keys at once and for good: unlike a disabled tenant, an
/// archived one is never enabled again, so its keys never come back.
#[tokio::test]
async fn archiving_a_tenant_stops_its_keys_for_good() {
    let h = Harness::new().await;
    let (_, key) = h.acme_key(json!({})).await;
    assert_eq!(
        h.verdict(&h.global, json!({"key": key})).await,
        Verdict::Valid
    );
    // Its own administrator may not archive it.
    let (s, _) = h
        .post("/admin/v1/tenants/acme/archive", &h.acme, None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(
        h.verdict(&h.global, json!({"key": key})).await,
        Verdict::Valid
    );
    let (s, v) = h
        .post("/admin/v1/tenants/acme/archive", &h.global, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        h.verdict(&h.global, json!({"key": key})).await,
        Verdict::Refused
    );
    for verb in ["enable", "archive"] {
        let (s, _) = h
            .post(&format!("/admin/v1/tenants/acme/{verb}"), &h.global, None)
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{verb}");
    }
    assert_eq!(
        h.verdict(&h.global, json!({"key": key})).await,
        Verdict::Refused
    );
}
