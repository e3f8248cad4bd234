//! In-process tests of the token service: the whole router driven with `oneshot`, a manual
//! clock, and a SQLite store in a temporary directory.

use crate::common;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use portcullis_core::forwarded::{ForwardedHeader, TrustedProxies};
use portcullis_core::signing::SigningAlgorithm;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{Clock, ManualClock, Timestamp};
use portcullis_server::bootstrap::BOOTSTRAP_FILE;
use portcullis_server::config::{AuditConfig, HttpConfig, OAuthConfig};
use portcullis_server::serve::{Assembled, BackgroundTasks};
use portcullis_service::api_keys::ApiKeyVerifier;
use portcullis_service::oauth::OAuthState;
use portcullis_service::state::AppState;
use portcullis_store::{AuditQuery, SqliteStore, Store};
use serde_json::{json, Value};
use tower::ServiceExt;

const ISSUER: &str = "https://auth.test";

struct App {
    router: Router,
    state: AppState,
    clock: Arc<ManualClock>,
    store: Arc<dyn Store>,
    admin: String,
    /// The node's background tasks; stopping them drains the audit log.
    tasks: Option<BackgroundTasks>,
    verifier: Arc<ApiKeyVerifier>,
    _dir: tempfile::TempDir,
}

struct Client {
    id: String,
    secret: String,
}

impl App {
    async fn new() -> Self {
        Self::with(OAuthConfig::default()).await
    }

    async fn with(oauth: OAuthConfig) -> Self {
        Self::build(oauth, Duration::ZERO).await
    }

    async fn build(oauth: OAuthConfig, rotation_interval: Duration) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("db"))
                .await
                .expect("store"),
        );
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
        let mut config = common::config(dir.path());
        config.oauth = oauth;
        config.signing.prepublish_secs = 600;
        config.signing.rotation_interval_secs = rotation_interval.as_secs();
        config.audit = AuditConfig {
            batch_size: 100,
            // Short: shutdown waits for a filling batch's interval before it stops.
            flush_interval_ms: 20,
            queue_capacity: 10_000,
            // Small, so a test can make a subscriber lag with a few requests.
            subscriber_capacity: 16,
            ..Default::default()
        };
        let Assembled {
            state,
            router,
            verifier,
            tasks,
            ..
        } = common::assemble(&config, ISSUER, store.clone(), clock.clone()).await;
        let admin = std::fs::read_to_string(dir.path().join(BOOTSTRAP_FILE))
            .expect("token")
            .trim()
            .to_owned();
        Self {
            router,
            state,
            clock,
            store,
            admin,
            tasks: Some(tasks),
            verifier,
            _dir: dir,
        }
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        send_via(&self.router, req).await
    }

    /// Another token-service node over the same database, clock, keys and audit sink, with
    /// OAuth caches of its own: what a second process sharing PostgreSQL would be. (The OAuth
    /// surface of the assembled state with another OAuth state; a full second assembly would
    /// bring its own audit writer, which this node's audit checks do not drain.)
    fn other_node(&self, oauth: &OAuthConfig) -> Router {
        let mut state = self.state.clone();
        state.oauth =
            Arc::new(OAuthState::new(ISSUER.into(), oauth, &self.state.keys).expect("oauth"));
        portcullis_http::app::router(state, 64 * 1024)
    }

    async fn admin_call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut b = Request::builder()
            .method(method)
            .uri(format!("/admin/v1{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.admin));
        let body = match body {
            Some(v) => {
                b = b.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        let (s, _, v) = self.send(b.body(body).expect("request")).await;
        (s, v)
    }

    async fn tenant_with_api(&self, tenant: &str) {
        let (s, v) = self
            .admin_call(Method::POST, "/tenants", Some(json!({"id": tenant})))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        for (aud, scopes) in [
            ("payments-api", json!(["payments:read", "payments:write"])),
            ("ledger-api", json!(["ledger:read"])),
        ] {
            let (s, v) = self
                .admin_call(
                    Method::POST,
                    &format!("/tenants/{tenant}/resource-servers"),
                    Some(json!({"audience": aud, "scopes": scopes})),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
        }
    }

    async fn client(&self, tenant: &str, extra: Value) -> Client {
        let mut body = json!({
            "name": "billing-sync",
            "scopes": ["payments:read", "ledger:read"],
            "audiences": ["payments-api", "ledger-api"],
        });
        if let (Value::Object(b), Value::Object(e)) = (&mut body, extra) {
            b.extend(e);
        }
        let (s, v) = self
            .admin_call(
                Method::POST,
                &format!("/tenants/{tenant}/clients"),
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        Client {
            id: v["client_id"].as_str().expect("id").to_owned(),
            secret: v["client_secret"].as_str().expect("secret").to_owned(),
        }
    }

    async fn form(
        &self,
        path: &str,
        basic: Option<(&str, &str)>,
        body: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        self.form_via(&self.router, path, basic, body).await
    }

    async fn form_via(
        &self,
        router: &Router,
        path: &str,
        basic: Option<(&str, &str)>,
        body: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        self.form_at(router, None, &[], path, basic, body).await
    }

    /// A form POST as `serve` hands it to the router: from the socket peer `peer` (when given),
    /// with these extra headers.
    async fn form_at(
        &self,
        router: &Router,
        peer: Option<&str>,
        headers: &[(&str, &str)],
        path: &str,
        basic: Option<(&str, &str)>,
        body: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some((id, secret)) = basic {
            b = b.header(
                header::AUTHORIZATION,
                format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
            );
        }
        for (name, value) in headers {
            b = b.header(*name, *value);
        }
        let mut req = b.body(Body::from(body.to_owned())).expect("request");
        if let Some(peer) = peer {
            let ip: IpAddr = peer.parse().expect("peer address");
            req.extensions_mut()
                .insert(ConnectInfo(SocketAddr::new(ip, 40_000)));
        }
        send_via(router, req).await
    }

    /// A client-credentials request from the socket peer `peer`.
    async fn token_from(
        &self,
        peer: &str,
        id: &str,
        secret: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        self.form_at(
            &self.router,
            Some(peer),
            &[],
            "/oauth2/token",
            Some((id, secret)),
            "grant_type=client_credentials",
        )
        .await
    }

    async fn token(&self, c: &Client, body: &str) -> (StatusCode, axum::http::HeaderMap, Value) {
        self.form("/oauth2/token", Some((&c.id, &c.secret)), body)
            .await
    }

    async fn access_token(&self, c: &Client) -> String {
        let (s, _, v) = self.token(c, "grant_type=client_credentials").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["access_token"].as_str().expect("token").to_owned()
    }

    async fn introspect(&self, caller: &Client, token: &str) -> Value {
        let (s, _, v) = self
            .form(
                "/oauth2/introspect",
                Some((&caller.id, &caller.secret)),
                &format!("token={token}"),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// Flushes the audit sink and returns the tenant's events.
    async fn events(&mut self, tenant: &str) -> Vec<portcullis_core::audit::AuditEvent> {
        if let Some(tasks) = self.tasks.take() {
            tasks.shutdown(&self.verifier).await;
        }
        self.store
            .query_audit_events(&AuditQuery {
                tenant: TenantId::parse(tenant).expect("tenant"),
                since: None,
                until: None,
                action: None,
                page: portcullis_store::PageRequest::first(1_000),
            })
            .await
            .expect("events")
            .items
    }
}

async fn send_via(
    router: &Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Value) {
    let resp = router.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, headers, v)
}

fn claims_of(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut next = || {
        serde_json::from_slice::<Value>(
            &URL_SAFE_NO_PAD
                .decode(parts.next().expect("part"))
                .expect("b64"),
        )
        .expect("json")
    };
    let header = next();
    (header, next())
}

/// An audit subscriber that never reads costs issuance nothing: every grant succeeds, the
/// subscriber keeps the newest events in order and counts the rest, and storage has them all.
#[tokio::test]
async fn a_lagging_audit_subscriber_does_not_block_issuance() {
    let mut app = App::new().await;
    app.tenant_with_api("acme").await;
    let c = app.client("acme", json!({})).await;
    use portcullis_core::audit::Action;
    let mut slow = app.state.audit.subscribe();
    for _ in 0..40 {
        app.access_token(&c).await;
    }
    let mut kept = Vec::new();
    while let Some(e) = slow.try_recv() {
        kept.push(e);
    }
    assert_eq!(kept.len(), 16, "the subscriber keeps its capacity's worth");
    assert!(slow.missed() >= 24, "missed {}", slow.missed());
    assert_eq!(app.state.audit.subscriber_lag(), slow.missed());
    let kept_acme: Vec<_> = kept
        .iter()
        .filter(|e| e.tenant.as_str() == "acme")
        .map(|e| e.id.clone())
        .collect();
    assert!(kept.iter().any(|e| e.action == Action::OAuthTokenIssue));
    let stored = app.events("acme").await;
    // Storage lists newest first, in the order written: the subscriber's events are the
    // newest ones, in the same order.
    let newest: Vec<_> = stored
        .iter()
        .take(kept_acme.len())
        .rev()
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(kept_acme, newest);
    assert_eq!(
        stored
            .iter()
            .filter(|e| e.action == "oauth.token.issue")
            .count(),
        40,
        "storage lost nothing"
    );
}

#[tokio::test]
async fn client_credentials_issues_an_rfc9068_token() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let c = app.client("acme", json!({})).await;
    assert!(c.secret.starts_with("pcl_cs_live_"));
    let (s, h, v) = app.token(&c, "grant_type=client_credentials").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 600);
    assert_eq!(
        v["scope"], "payments:read",
        "default audience's allowed scopes"
    );
    let (header, claims) = claims_of(v["access_token"].as_str().expect("token"));
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert!(header["kid"].is_string());
    assert_eq!(claims["iss"], ISSUER);
    assert_eq!(claims["sub"], c.id.as_str());
    assert_eq!(claims["client_id"], c.id.as_str());
    assert_eq!(claims["aud"], "payments-api");
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["iat"], 1_800_000_000);
    assert_eq!(claims["nbf"], 1_800_000_000);
    assert_eq!(claims["exp"], 1_800_000_600);
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 32));

    // RFC 8707 resource (or audience) picks another allowed audience, scope narrows.
    let (s, _, v) = app
        .token(
            &c,
            "grant_type=client_credentials&resource=ledger-api&scope=ledger%3Aread",
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (_, claims) = claims_of(v["access_token"].as_str().expect("token"));
    assert_eq!(claims["aud"], "ledger-api");
    assert_eq!(claims["scope"], "ledger:read");
    let (s, _, v) = app
        .token(&c, "grant_type=client_credentials&audience=ledger-api")
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // client_secret_post for a client registered with it.
    let p = app
        .client("acme", json!({"auth_method": "client_secret_post"}))
        .await;
    let (s, _, v) = app
        .form(
            "/oauth2/token",
            None,
            &format!(
                "grant_type=client_credentials&client_id={}&client_secret={}",
                p.id, p.secret
            ),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn bad_requests_get_exact_rfc6749_errors() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    app.tenant_with_api("globex").await;
    let c = app.client("acme", json!({})).await;
    let cases: &[(&str, StatusCode, &str)] = &[
        ("", StatusCode::BAD_REQUEST, "invalid_request"),
        (
            "scope=payments%3Aread",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "grant_type=password",
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
        ),
        (
            "grant_type=client_credentials&grant_type=client_credentials",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "grant_type=client_credentials&scope=a&scope=b",
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
        (
            "grant_type=client_credentials&scope=payments%3Awrite",
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            "grant_type=client_credentials&scope=ledger%3Aread",
            StatusCode::BAD_REQUEST,
            "invalid_scope",
        ),
        (
            "grant_type=client_credentials&resource=billing-api",
            StatusCode::BAD_REQUEST,
            "invalid_target",
        ),
        (
            "grant_type=client_credentials&resource=payments-api&resource=ledger-api",
            StatusCode::BAD_REQUEST,
            "invalid_target",
        ),
        (
            "grant_type=client_credentials&audience=ledger-api&resource=payments-api",
            StatusCode::BAD_REQUEST,
            "invalid_target",
        ),
        (
            &*format!("grant_type=client_credentials&client_secret={}", "x"),
            StatusCode::BAD_REQUEST,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        let (s, h, v) = app.token(&c, body).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (*status, Some(*code)),
            "{body}: {v}"
        );
        assert_eq!(h[header::CACHE_CONTROL], "no-store", "{body}");
        assert!(v.get("access_token").is_none());
    }

    // JSON instead of a form.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/oauth2/token")
        .header(header::CONTENT_TYPE, "application/json")
        .header(
            header::AUTHORIZATION,
            format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", c.id, c.secret))
            ),
        )
        .body(Body::from(r#"{"grant_type":"client_credentials"}"#))
        .expect("request");
    let (s, _, v) = app.send(req).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );

    // Oversized body.
    let big = format!(
        "grant_type=client_credentials&pad={}",
        "a".repeat(64 * 1024)
    );
    let (s, _, v) = app.token(&c, &big).await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE, "{v}");
    assert_eq!(v["error"], "invalid_request");

    // GET is not a token request.
    let req = Request::builder()
        .uri("/oauth2/token?grant_type=client_credentials")
        .body(Body::empty())
        .expect("request");
    let (s, h, v) = app.send(req).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{v}");
    assert_eq!(h[header::ALLOW], "POST");
}

/// Every text field of every audit event of these tenants: none may hold a secret, or anything
/// shaped like one.
async fn assert_audit_holds_no_secret(app: &mut App, tenants: &[&str], secrets: &[&str]) -> usize {
    let mut events = Vec::new();
    for t in tenants {
        events.extend(app.events(t).await);
    }
    let mut redacted = 0;
    for e in &events {
        let fields = [
            Some(e.actor.as_str()),
            Some(e.action.as_str()),
            e.credential_id.as_deref(),
            e.client_ip.as_deref(),
            e.user_agent.as_deref(),
            e.reason.as_deref(),
            e.request_id.as_deref(),
            e.target.as_deref(),
        ];
        for f in fields.into_iter().flatten() {
            for s in secrets {
                // The prefix and id are not secret; the rest is.
                assert!(!f.contains(&s[s.len() - 28..]), "secret in {e:?}");
            }
            assert_eq!(
                portcullis_core::credential::redact_secrets(f),
                f,
                "secret-shaped text in {e:?}"
            );
            if f.ends_with(portcullis_core::credential::REDACTED_SUFFIX) {
                redacted += 1;
            }
        }
    }
    redacted
}

#[tokio::test]
async fn secrets_sent_in_place_of_ids_never_reach_the_audit_log() {
    let mut app = App::with(OAuthConfig {
        max_failures_per_client_id_and_source: 1_000,
        max_failures_per_source: 1_000,
        ..OAuthConfig::default()
    })
    .await;
    app.tenant_with_api("acme").await;
    let c = app.client("acme", json!({})).await;
    let rs_id = resource_server_id(&app, "acme", "payments-api").await;
    let rs = resource_server_credential(&app, "acme", &rs_id, 0).await;
    let token = app.access_token(&c).await;
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    for (path, body) in [
        ("/oauth2/token", "grant_type=client_credentials".to_owned()),
        ("/oauth2/introspect", format!("token={token}")),
        ("/oauth2/revoke", "token=not-a-token".to_owned()),
    ] {
        for who in [&c, &rs] {
            // Id and secret swapped, in the Basic header and in the body; a secret as both.
            let (s, _, v) = app.form(path, Some((&who.secret, &who.id)), &body).await;
            assert_eq!(v["error"], "invalid_client", "{path}: {s} {v}");
            let (s, _, v) = app
                .form(path, Some((&who.secret, &who.secret)), &body)
                .await;
            assert_eq!(v["error"], "invalid_client", "{path}: {s} {v}");
            let post = format!(
                "{body}&client_id={}&client_secret={}",
                enc(&who.secret),
                enc(&who.id)
            );
            let (s, _, v) = app.form(path, None, &post).await;
            assert_eq!(v["error"], "invalid_client", "{path}: {s} {v}");
        }
    }
    let admin = app.admin.clone();
    let (s, _, v) = app
        .form(
            "/oauth2/token",
            Some((&admin, "x")),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(v["error"], "invalid_client", "{s} {v}");
    let redacted = assert_audit_holds_no_secret(
        &mut app,
        &["acme", "system"],
        &[&c.secret, &rs.secret, &admin],
    )
    .await;
    assert!(
        redacted >= 19,
        "the swapped secrets were audited, redacted: {redacted}"
    );
}

#[tokio::test]
async fn two_authorization_headers_are_an_invalid_request() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let c = app.client("acme", json!({})).await;
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", c.id, c.secret))
    );
    for path in ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"] {
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::AUTHORIZATION, basic.clone())
            .header(header::AUTHORIZATION, "Basic Zm9vOmJhcg==")
            .body(Body::from("grant_type=client_credentials&token=x"))
            .expect("request");
        let (s, _, v) = app.send(req).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_request")),
            "{path}: {v}"
        );
    }
}

/// The 429 of the failure throttle (pinned): the same whoever the caller claimed to be.
fn throttled() -> Value {
    json!({"error": "invalid_client",
           "error_description": "too many failed client authentications: retry after the Retry-After delay"})
}

/// A form POST answered as raw bytes: "indistinguishable" means byte for byte.
async fn form_bytes(app: &App, path: &str, basic: Option<(&str, &str)>, body: &str) -> Vec<u8> {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some((id, secret)) = basic {
        b = b.header(
            header::AUTHORIZATION,
            format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
        );
    }
    let resp = app
        .router
        .clone()
        .oneshot(b.body(Body::from(body.to_owned())).expect("request"))
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path} {body}");
    axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body")
        .to_vec()
}

/// The one answer to every failure decided against stored state (pinned: integrators read it).
const NOT_AUTHENTICATED: &str = "client authentication failed: check the client_id, the client \
     secret or signing key, and that the client is registered for the authentication method used";

#[tokio::test]
async fn client_authentication_failures_are_indistinguishable() {
    let app = App::with(OAuthConfig {
        max_failures_per_client_id_and_source: 1_000,
        max_failures_per_source: 1_000,
        ..OAuthConfig::default()
    })
    .await;
    app.tenant_with_api("acme").await;
    let c = app.client("acme", json!({})).await;
    let other = app.client("acme", json!({})).await;
    let post_client = app
        .client("acme", json!({"auth_method": "client_secret_post"}))
        .await;
    let wrong = Client {
        id: c.id.clone(),
        secret: other.secret.clone(),
    };
    let unknown = Client {
        id: "cl_doesnotexist0000000000".into(),
        secret: c.secret.clone(),
    };
    let wrong_method = Client {
        id: post_client.id.clone(),
        secret: post_client.secret.clone(),
    };
    // A disabled client with its correct secret.
    let disabled = app.client("acme", json!({})).await;
    let (s, v) = app
        .admin_call(
            Method::POST,
            &format!("/tenants/acme/clients/{}/disable", disabled.id),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    for path in ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"] {
        let body = "grant_type=client_credentials&token=x";
        let mut answers = Vec::new();
        for (what, who) in [
            ("wrong secret", &wrong),
            ("unknown client", &unknown),
            ("method not registered", &wrong_method),
            ("disabled client", &disabled),
        ] {
            let bytes = form_bytes(&app, path, Some((&who.id, &who.secret)), body).await;
            answers.push((what, bytes));
        }
        let expected = json!({"error": "invalid_client", "error_description": NOT_AUTHENTICATED});
        assert_eq!(
            serde_json::from_slice::<Value>(&answers[0].1).expect("json"),
            expected,
            "{path}"
        );
        for (what, bytes) in &answers {
            assert_eq!(bytes, &answers[0].1, "{path}: {what} vs {}", answers[0].0);
        }
        let (_, h, _) = app.form(path, Some((&wrong.id, &wrong.secret)), body).await;
        assert!(h[header::WWW_AUTHENTICATE]
            .to_str()
            .expect("ascii")
            .starts_with("Basic realm="));
        // The same in the body, for a client_secret_post client and an unknown one.
        let post = |id: &str, secret: &str| format!("{body}&client_id={id}&client_secret={secret}");
        let a = form_bytes(&app, path, None, &post(&post_client.id, &c.secret)).await;
        let b = form_bytes(&app, path, None, &post(&unknown.id, &c.secret)).await;
        let m = form_bytes(&app, path, None, &post(&c.id, &c.secret)).await;
        assert_eq!(a, b, "{path}: post, wrong secret vs unknown client");
        assert_eq!(a, m, "{path}: post, wrong secret vs method not registered");
        // A secret not shaped like ours says so, whether or not the client exists.
        let known = form_bytes(&app, path, Some((&c.id, "hunter2")), body).await;
        let unknown = form_bytes(&app, path, Some((&unknown.id, "hunter2")), body).await;
        assert_eq!(known, unknown, "{path}: malformed secret");
        assert_eq!(
            serde_json::from_slice::<Value>(&known).expect("json")["error_description"],
            "client_secret is malformed: secrets issued here start with pcl_cs_ and end in a \
             checksum"
        );
    }
    // No credentials at all.
    let (s, _, v) = app
        .form("/oauth2/token", None, "grant_type=client_credentials")
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
}

/// Every description a caller can meet at the OAuth endpoints, pinned: integrators and their
/// support scripts match on them, so a change must be deliberate.
#[tokio::test]
async fn every_refusal_description_is_stable() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let c = app.client("acme", json!({})).await;
    let basic = Some((c.id.as_str(), c.secret.as_str()));
    let cc = "grant_type=client_credentials";
    type Case<'a> = (
        &'a str,
        Option<(&'a str, &'a str)>,
        String,
        u16,
        &'a str,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        ("/oauth2/token", basic, "".into(), 400, "invalid_request", "grant_type is required"),
        (
            "/oauth2/token",
            basic,
            "grant_type=password".into(),
            400,
            "unsupported_grant_type",
            "grant_type must be authorization_code, refresh_token, client_credentials, \
             urn:ietf:params:oauth:grant-type:token-exchange, \
             urn:ietf:params:oauth:grant-type:jwt-bearer or \
             urn:ietf:params:oauth:grant-type:device_code",
        ),
        (
            "/oauth2/token",
            basic,
            format!("{cc}&scope=a&scope=b"),
            400,
            "invalid_request",
            "a parameter was sent more than once",
        ),
        (
            "/oauth2/token",
            basic,
            format!("{cc}&client_secret=x"),
            400,
            "invalid_request",
            "use one client authentication method",
        ),
        (
            "/oauth2/token",
            None,
            format!("{cc}&client_assertion=x.y.z"),
            400,
            "invalid_request",
            "client_assertion_type must be urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        ),
        (
            "/oauth2/token",
            None,
            format!(
                "{cc}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
            ),
            400,
            "invalid_request",
            "client_assertion is required",
        ),
        (
            "/oauth2/token",
            None,
            cc.into(),
            401,
            "invalid_client",
            "client authentication is required: HTTP Basic, client_id and client_secret in the \
             body, or a client_assertion",
        ),
        (
            "/oauth2/token",
            None,
            format!("{cc}&client_id={}", c.id),
            401,
            "invalid_client",
            "client_id was sent without a client_secret or a client_assertion",
        ),
        (
            "/oauth2/introspect",
            None,
            "token=x&client_id=rs_x&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion=a.b.c".into(),
            401,
            "invalid_client",
            "a resource server authenticates with its secret (client_secret_basic or \
             client_secret_post)",
        ),
        (
            "/oauth2/token",
            basic,
            format!("{cc}&scope=payments%3Awrite"),
            400,
            "invalid_scope",
            "the scope asked for is not granted to this client for this resource",
        ),
        (
            "/oauth2/token",
            basic,
            format!("{cc}&resource=billing-api"),
            400,
            "invalid_target",
            "resource or audience must name one API this client may reach",
        ),
        ("/oauth2/revoke", basic, "".into(), 400, "invalid_request", "token is required"),
        (
            "/oauth2/introspect",
            basic,
            "token=x".into(),
            403,
            "unauthorized_client",
            "this client may not introspect tokens",
        ),
    ];
    for (path, basic, body, status, code, description) in cases {
        let (s, _, v) = app.form(path, basic, &body).await;
        assert_eq!(
            (s.as_u16(), &v),
            (
                status,
                &json!({"error": code, "error_description": description})
            ),
            "{path} {body}"
        );
    }
    // The Authorization header in another scheme.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/oauth2/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .header(header::AUTHORIZATION, "Bearer abc")
        .body(Body::from(cc))
        .expect("request");
    let (s, _, v) = app.send(req).await;
    assert_eq!(
        (s, v),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "invalid_client", "error_description": "the Authorization header must \
                be HTTP Basic with the form-encoded client_id and client_secret"})
        )
    );
    // A JSON body, and a GET.
    let req = Request::builder()
        .method(Method::POST)
        .uri("/oauth2/token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{}"))
        .expect("request");
    let (_, _, v) = app.send(req).await;
    assert_eq!(
        v["error_description"],
        "the body must be application/x-www-form-urlencoded"
    );
    let req = Request::builder()
        .uri("/oauth2/token")
        .body(Body::empty())
        .expect("request");
    let (_, _, v) = app.send(req).await;
    assert_eq!(
        v["error_description"],
        "use POST with an application/x-www-form-urlencoded body"
    );
    // Revoking another client's token.
    let other = app.client("acme", json!({})).await;
    let token = app.access_token(&other).await;
    let (s, _, v) = app
        .form("/oauth2/revoke", basic, &format!("token={token}"))
        .await;
    assert_eq!(
        (s, v),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "unauthorized_client",
                   "error_description": "the token was issued to another client"})
        )
    );
}

#[tokio::test]
async fn another_tenants_audience_is_not_a_target() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let (s, _) = app
        .admin_call(Method::POST, "/tenants", Some(json!({"id": "globex"})))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = app
        .admin_call(
            Method::POST,
            "/tenants/globex/resource-servers",
            Some(json!({"audience": "globex-api", "scopes": ["g:read"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    // A client cannot be allowed another tenant's audience or undefined scopes.
    let (s, v) = app
        .admin_call(
            Method::POST,
            "/tenants/acme/clients",
            Some(json!({"name": "x", "audiences": ["globex-api"]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (s, v) = app
        .admin_call(
            Method::POST,
            "/tenants/acme/clients",
            Some(json!({"name": "x", "audiences": ["payments-api"], "scopes": ["g:read"]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let c = app.client("acme", json!({})).await;
    let (s, _, v) = app
        .token(&c, "grant_type=client_credentials&resource=globex-api")
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target"))
    );
    // Another tenant's admin view does not find the client.
    let (s, _) = app
        .admin_call(
            Method::GET,
            &format!("/tenants/globex/clients/{}", c.id),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn rotated_secret_overlaps_then_the_old_one_stops_working() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let old = app.client("acme", json!({})).await;
    let (s, v) = app
        .admin_call(
            Method::POST,
            &format!("/tenants/acme/clients/{}/rotate-secret", old.id),
            Some(json!({"overlap_secs": 3600})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let new = Client {
        id: old.id.clone(),
        secret: v["client_secret"].as_str().expect("secret").to_owned(),
    };
    assert_ne!(new.secret, old.secret);
    app.access_token(&old).await;
    app.access_token(&new).await;
    app.clock.advance(Duration::from_secs(3600));
    let (s, _, v) = app.token(&old, "grant_type=client_credentials").await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    app.access_token(&new).await;

    // The admin view shows prefixes and dates, never a secret, and records last use.
    let (s, v) = app
        .admin_call(
            Method::GET,
            &format!("/tenants/acme/clients/{}", old.id),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let text = v.to_string();
    assert!(!text.contains(&old.secret) && !text.contains(&new.secret));
    assert_eq!(v["secrets"].as_array().expect("secrets").len(), 2);
}

#[tokio::test]
async fn introspection_reports_only_current_tokens_of_the_callers_tenant() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    app.tenant_with_api("globex").await;
    let rs = app.client("acme", json!({"introspection": true})).await;
    let c = app.client("acme", json!({})).await;
    let other_rs = app.client("globex", json!({"introspection": true})).await;
    let token = app.access_token(&c).await;

    let v = app.introspect(&rs, &token).await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["client_id"], c.id.as_str());
    assert_eq!(v["tenant"], "acme");
    assert_eq!(v["scope"], "payments:read");

    for inactive in [
        app.introspect(&other_rs, &token).await,
        app.introspect(&rs, "not-a-token").await,
        app.introspect(&rs, &format!("{token}x")).await,
    ] {
        assert_eq!(inactive, json!({"active": false}));
    }
    // A client without the permission may not introspect.
    let (s, _, v) = app
        .form(
            "/oauth2/introspect",
            Some((&c.id, &c.secret)),
            &format!("token={token}"),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    // Unauthenticated callers get invalid_client.
    let (s, _, _) = app
        .form("/oauth2/introspect", None, &format!("token={token}"))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // While the tenant is disabled its clients cannot authenticate, introspectors included.
    let (s, _) = app
        .admin_call(Method::POST, "/tenants/acme/disable", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, v) = app
        .form(
            "/oauth2/introspect",
            Some((&rs.id, &rs.secret)),
            &format!("token={token}"),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (s, _) = app
        .admin_call(Method::POST, "/tenants/acme/enable", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    // Disabling the tenant revoked its tokens issued until then, as disabling a client does:
    // enabling it again does not bring them back. Tokens issued after it are current.
    assert_eq!(app.introspect(&rs, &token).await, json!({"active": false}));
    app.clock.advance(Duration::from_secs(1));
    let fresh = app.access_token(&c).await;
    assert_eq!(app.introspect(&rs, &fresh).await["active"], true);

    // Expired.
    app.clock.advance(Duration::from_secs(600 + 31));
    assert_eq!(app.introspect(&rs, &fresh).await, json!({"active": false}));
}

#[tokio::test]
async fn a_client_revokes_its_own_tokens_into_the_log() {
    let mut app = App::new().await;
    app.tenant_with_api("acme").await;
    let rs = app.client("acme", json!({"introspection": true})).await;
    let c = app.client("acme", json!({})).await;
    let thief = app.client("acme", json!({})).await;
    let token = app.access_token(&c).await;

    // Another client cannot revoke it.
    let (s, _, v) = app
        .form(
            "/oauth2/revoke",
            Some((&thief.id, &thief.secret)),
            &format!("token={token}"),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );
    assert_eq!(app.introspect(&rs, &token).await["active"], true);

    // Unknown tokens answer 200 and change nothing.
    let (s, _, _) = app
        .form("/oauth2/revoke", Some((&c.id, &c.secret)), "token=garbage")
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(app
        .store
        .revocations_after(0, 10)
        .await
        .expect("log")
        .is_empty());

    let (s, h, _) = app
        .form(
            "/oauth2/revoke",
            Some((&c.id, &c.secret)),
            &format!("token={token}&token_type_hint=access_token"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    assert_eq!(app.introspect(&rs, &token).await, json!({"active": false}));
    let log = app.store.revocations_after(0, 10).await.expect("log");
    assert_eq!(log.len(), 1);
    let (_, claims) = claims_of(&token);
    assert_eq!(log[0].subject, claims["jti"].as_str().expect("jti"));
    assert_eq!(log[0].kind, portcullis_store::RevocationKind::Token);

    // Disabling a client revokes what it already holds and stops new issuance.
    let fresh = app.access_token(&thief).await;
    let (s, _) = app
        .admin_call(
            Method::POST,
            &format!("/tenants/acme/clients/{}/disable", thief.id),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(app.introspect(&rs, &fresh).await, json!({"active": false}));
    let (s, _, _) = app.token(&thief, "grant_type=client_credentials").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let events = app.events("acme").await;
    let has = |action: &str, outcome| {
        events
            .iter()
            .any(|e| e.action == action && e.outcome == outcome)
    };
    use portcullis_core::audit::Outcome;
    assert!(has("oauth.token.issue", Outcome::Success));
    assert!(has("oauth.token.revoke", Outcome::Success));
    assert!(has("oauth.token.revoke", Outcome::Denied));
    assert!(has("oauth.client_auth", Outcome::Failure));
    assert!(has("oauth_client.disable", Outcome::Success));
    for e in &events {
        let text = serde_json::to_string(e).expect("json");
        assert!(!text.contains(&c.secret) && !text.contains(&token));
    }
}

/// A disabled client enabled again gets new tokens; what it held before the disable stays
/// revoked (the disable's `client` entry in the revocation log stays). Only its own tenant's
/// path reaches it, and enabling an active client changes nothing.
#[tokio::test]
async fn an_enabled_client_gets_new_tokens_and_its_tokens_from_before_the_disable_stay_revoked() {
    let mut app = App::new().await;
    app.tenant_with_api("acme").await;
    app.tenant_with_api("globex").await;
    let rs = app.client("acme", json!({"introspection": true})).await;
    let c = app.client("acme", json!({})).await;
    let held = app.access_token(&c).await;
    let path = format!("/tenants/acme/clients/{}", c.id);
    let (s, v) = app
        .admin_call(Method::POST, &format!("{path}/disable"), None)
        .await;
    assert_eq!((s, &v["status"]), (StatusCode::OK, &json!("disabled")));
    let (s, _, _) = app.token(&c, "grant_type=client_credentials").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // Through another tenant's path: not found, and the client stays disabled.
    let (s, _) = app
        .admin_call(
            Method::POST,
            &format!("/tenants/globex/clients/{}/enable", c.id),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, _) = app.token(&c, "grant_type=client_credentials").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "still disabled");

    app.clock.advance(Duration::from_secs(1));
    let (s, v) = app
        .admin_call(Method::POST, &format!("{path}/enable"), None)
        .await;
    assert_eq!((s, &v["status"]), (StatusCode::OK, &json!("active")), "{v}");
    let fresh = app.access_token(&c).await;
    assert_eq!(app.introspect(&rs, &fresh).await["active"], true);
    assert_eq!(
        app.introspect(&rs, &held).await,
        json!({"active": false}),
        "revoked by the disable, for good"
    );
    // Again: nothing to change, not an error.
    let (s, v) = app
        .admin_call(Method::POST, &format!("{path}/enable"), None)
        .await;
    assert_eq!((s, &v["status"]), (StatusCode::OK, &json!("active")));
    // An unknown client.
    let (s, _) = app
        .admin_call(Method::POST, "/tenants/acme/clients/cl_nobody/enable", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let events = app.events("acme").await;
    assert_eq!(
        events
            .iter()
            .filter(
                |e| e.action == "oauth_client.enable" && e.target.as_deref() == Some(c.id.as_str())
            )
            .count(),
        2
    );
}

/// A source that keeps failing for a client is refused for it, before any credential check,
/// with a standard code outside and the reason in the audit log only.
#[tokio::test]
async fn a_throttled_answer_is_429_invalid_client_with_retry_after() {
    let mut app = App::with(OAuthConfig {
        max_failures_per_client_id_and_source: 3,
        throttle_window_secs: 60,
        ..OAuthConfig::default()
    })
    .await;
    app.tenant_with_api("acme").await;
    let c = app.client("acme", json!({})).await;
    let wrong = app.client("acme", json!({})).await.secret;
    for _ in 0..3 {
        let (s, _, _) = app.token_from("203.0.113.66", &c.id, &wrong).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }
    // From the address that has been failing, even the right secret waits.
    let (s, h, v) = app.token_from("203.0.113.66", &c.id, &c.secret).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    assert_eq!(v, throttled());
    assert_eq!(h[header::RETRY_AFTER], "60");
    assert_eq!(h[header::CACHE_CONTROL], "no-store");
    // Revocation shares the same attempt and throttle.
    let (s, h, v) = app
        .form_at(
            &app.router,
            Some("203.0.113.66"),
            &[],
            "/oauth2/revoke",
            Some((&c.id, &c.secret)),
            "token=x",
        )
        .await;
    assert_eq!(
        (s, &v, &h[header::RETRY_AFTER]),
        (
            StatusCode::TOO_MANY_REQUESTS,
            &throttled(),
            &"60".parse().expect("hv")
        )
    );
    app.clock.advance(Duration::from_secs(45));
    let (s, h, _) = app.token_from("203.0.113.66", &c.id, &c.secret).await;
    assert_eq!(
        (s, &h[header::RETRY_AFTER]),
        (StatusCode::TOO_MANY_REQUESTS, &"15".parse().expect("hv"))
    );
    app.clock.advance(Duration::from_secs(15));
    let (s, _, v) = app.token_from("203.0.113.66", &c.id, &c.secret).await;
    assert_eq!(s, StatusCode::OK, "{v}");

    let events = app.events("system").await;
    let throttled: Vec<_> = events
        .iter()
        .filter(|e| e.action == "oauth.client_auth.throttled")
        .collect();
    assert_eq!(throttled.len(), 3, "{events:?}");
    for e in throttled {
        assert_eq!(e.reason.as_deref(), Some("throttled"));
        assert_eq!(e.client_ip.as_deref(), Some("203.0.113.66"));
        assert_eq!(e.credential_id.as_deref(), Some(c.id.as_str()));
    }
}

/// Invariant 10: failures naming a client from one address never refuse its correct secret
/// from an address that has not been failing.
#[tokio::test]
async fn failures_naming_a_client_do_not_lock_it_out_from_another_address() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let c = app.client("acme", json!({})).await;
    let other = app.client("acme", json!({})).await;
    let attacker = "203.0.113.66";
    let mut statuses = Vec::new();
    for _ in 0..100 {
        statuses.push(app.token_from(attacker, &c.id, &other.secret).await.0);
    }
    // The default: ten failures per client id and address, then that address waits.
    assert!(
        statuses[..10]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert!(
        statuses[10..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let (s, _, v) = app.token_from("198.51.100.7", &c.id, &c.secret).await;
    assert_eq!(s, StatusCode::OK, "the real client was locked out: {v}");
    // A client with no address at all (in process) is another source too.
    app.access_token(&c).await;
    // The failing address is refused for this client, not for every client (it is far from
    // its own limit).
    assert_eq!(
        app.token_from(attacker, &c.id, &c.secret).await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        app.token_from(attacker, &other.id, &other.secret).await.0,
        StatusCode::OK
    );
}

/// Invariant 10 at introspection: failures naming a resource server's `rs_...` id never refuse
/// its correct secret from an address that has not been failing.
#[tokio::test]
async fn failures_naming_a_resource_server_do_not_lock_it_out_of_introspection() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let payments = resource_server_id(&app, "acme", "payments-api").await;
    let ledger = resource_server_id(&app, "acme", "ledger-api").await;
    let rs = resource_server_credential(&app, "acme", &payments, 3600).await;
    let wrong = resource_server_credential(&app, "acme", &ledger, 3600)
        .await
        .secret;
    let c = app.client("acme", json!({})).await;
    let token = app.access_token(&c).await;
    let introspect = |peer: &'static str, secret: String| {
        let (app, id, token) = (&app, rs.id.clone(), token.clone());
        async move {
            app.form_at(
                &app.router,
                Some(peer),
                &[],
                "/oauth2/introspect",
                Some((&id, &secret)),
                &format!("token={token}"),
            )
            .await
        }
    };
    let mut statuses = Vec::new();
    for _ in 0..60 {
        statuses.push(introspect("203.0.113.66", wrong.clone()).await.0);
    }
    assert!(
        statuses[..10]
            .iter()
            .all(|s| *s == StatusCode::UNAUTHORIZED),
        "{statuses:?}"
    );
    assert!(
        statuses[10..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let (s, _, v) = introspect("198.51.100.7", rs.secret.clone()).await;
    assert_eq!(s, StatusCode::OK, "the resource server was locked out: {v}");
    assert_eq!(v["active"], true, "{v}");
    let (s, _, v) = introspect("203.0.113.66", rs.secret.clone()).await;
    assert_eq!((s, v), (StatusCode::TOO_MANY_REQUESTS, throttled()));
}

/// A source that has failed `max_failures_per_source` times, whatever ids it named, is refused
/// for every id (the correct secret of a client it never named included) until the window ends;
/// other sources are not.
#[tokio::test]
async fn a_failing_address_is_refused_for_every_client_id() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let c = app.client("acme", json!({})).await;
    let attacker = "2001:db8:66:1::1";
    for i in 0..50 {
        // Addresses of one IPv6 /64 are one source.
        let peer = format!("2001:db8:66:1::{i:x}");
        let (s, _, _) = app
            .token_from(&peer, &format!("cl_madeup{i:04}"), &c.secret)
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "failure {i}");
    }
    let (s, h, v) = app.token_from(attacker, &c.id, &c.secret).await;
    assert_eq!((s, &v), (StatusCode::TOO_MANY_REQUESTS, &throttled()));
    assert_eq!(h[header::RETRY_AFTER], "60");
    let (s, _, _) = app
        .form_at(
            &app.router,
            Some(attacker),
            &[],
            "/oauth2/introspect",
            Some((&c.id, &c.secret)),
            "token=x",
        )
        .await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        app.token_from("2001:db8:66:2::1", &c.id, &c.secret).await.0,
        StatusCode::OK
    );
    app.clock.advance(Duration::from_secs(60));
    assert_eq!(
        app.token_from(attacker, &c.id, &c.secret).await.0,
        StatusCode::OK
    );
}

/// A router whose `serve` sits behind proxies in 10.0.0.0/8 writing `header`.
fn behind_proxies(app: &App, header: ForwardedHeader) -> Router {
    portcullis_http::app::router_for(
        app.state.clone(),
        &HttpConfig {
            trusted_proxies: TrustedProxies::parse(["10.0.0.0/8"]).expect("proxies"),
            forwarded_header: header,
            ..HttpConfig::default()
        },
    )
}

/// Invariant 11: the audit log records the forwarded client address only when the request came
/// from a trusted proxy, never an entry the client wrote itself, and never garbage: where the
/// trusted proxy's header names no address, no address is recorded (not the proxy's own; these
/// cases recorded the peer before serve and the gateway shared one rule).
#[tokio::test]
async fn forwarded_addresses_are_believed_only_from_trusted_proxies() {
    let mut app = App::new().await;
    let xff = behind_proxies(&app, ForwardedHeader::XForwardedFor);
    let fwd = behind_proxies(&app, ForwardedHeader::Forwarded);
    // (router, socket peer, headers, the address the audit log must show)
    type Case<'a> = (
        &'a Router,
        &'a str,
        Vec<(&'a str, &'a str)>,
        Option<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            &xff,
            "10.0.0.5",
            vec![("x-forwarded-for", "203.0.113.9")],
            Some("203.0.113.9"),
        ),
        // The client's own entry on the left is ignored.
        (
            &xff,
            "10.0.0.5",
            vec![("x-forwarded-for", "192.0.2.1, 203.0.113.10")],
            Some("203.0.113.10"),
        ),
        (
            &xff,
            "10.0.0.5",
            vec![
                ("x-forwarded-for", "192.0.2.1"),
                ("x-forwarded-for", "203.0.113.10"),
            ],
            Some("203.0.113.10"),
        ),
        // Through two trusted proxies.
        (
            &xff,
            "10.0.0.5",
            vec![("x-forwarded-for", "203.0.113.11, 10.0.0.6")],
            Some("203.0.113.11"),
        ),
        // A peer that is not a trusted proxy: its header is ignored.
        (
            &xff,
            "198.51.100.7",
            vec![("x-forwarded-for", "203.0.113.12")],
            Some("198.51.100.7"),
        ),
        // Garbage where the rule reads: unknown, not the proxy.
        (
            &xff,
            "10.0.0.5",
            vec![("x-forwarded-for", "203.0.113.13, not-an-ip")],
            None,
        ),
        (&xff, "10.0.0.5", vec![("x-forwarded-for", "")], None),
        // Only the configured header counts: the proxy named nobody.
        (
            &xff,
            "10.0.0.5",
            vec![("forwarded", "for=203.0.113.14")],
            None,
        ),
        (
            &fwd,
            "10.0.0.5",
            vec![
                ("forwarded", "for=192.0.2.1, for=203.0.113.15;proto=https"),
                ("x-forwarded-for", "192.0.2.2"),
            ],
            Some("203.0.113.15"),
        ),
        (&fwd, "10.0.0.5", vec![("forwarded", "for=unknown")], None),
        // A quoted `,` separates nothing; the client's open quote swallows nothing.
        (
            &fwd,
            "10.0.0.5",
            vec![(
                "forwarded",
                "for=\"192.0.2.3\", for=203.0.113.17;host=\"a,b\", for=10.0.0.6",
            )],
            Some("203.0.113.17"),
        ),
        (
            &fwd,
            "10.0.0.5",
            vec![(
                "forwarded",
                "for=192.0.2.4;x=\", for=\"[2001:db8::18]:4711\"",
            )],
            Some("2001:db8::18"),
        ),
        // Without trusted proxies (the default) nobody's header is read.
        (
            &app.router,
            "10.0.0.5",
            vec![("x-forwarded-for", "203.0.113.16")],
            Some("10.0.0.5"),
        ),
    ];
    let mut wants = Vec::new();
    for (i, (router, peer, headers, want)) in cases.iter().enumerate() {
        let id = format!("cl_case{i:02}");
        let (s, _, _) = app
            .form_at(
                router,
                Some(peer),
                headers,
                "/oauth2/token",
                Some((&id, "x")),
                "grant_type=client_credentials",
            )
            .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "case {i}");
        wants.push((id, want.map(str::to_owned), format!("{peer} {headers:?}")));
    }
    drop(cases);
    let events = app.events("system").await;
    for (id, want, case) in wants {
        let e = events
            .iter()
            .find(|e| e.credential_id.as_deref() == Some(id.as_str()))
            .expect("audited");
        assert_eq!(e.client_ip.as_deref(), want.as_deref(), "{case}");
    }
}

/// Behind a trusted proxy the throttle counts the forwarded client, so one client's failures
/// do not slow every client behind the proxy, and a client cannot escape its count by writing
/// its own forwarding entries.
#[tokio::test]
async fn the_throttle_counts_the_forwarded_client_behind_a_trusted_proxy() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let c = app.client("acme", json!({})).await;
    let router = behind_proxies(&app, ForwardedHeader::XForwardedFor);
    let token = |peer: &'static str, xff: String, id: String, secret: String| {
        let (app, router) = (&app, &router);
        async move {
            app.form_at(
                router,
                Some(peer),
                &[("x-forwarded-for", &xff)],
                "/oauth2/token",
                Some((&id, &secret)),
                "grant_type=client_credentials",
            )
            .await
            .0
        }
    };
    for i in 0..50 {
        // A fresh spoofed entry each time: it must not make a fresh source.
        let s = token(
            "10.0.0.5",
            format!("192.0.2.{i}, 203.0.113.66"),
            format!("cl_madeup{i:04}"),
            "x".into(),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "failure {i}");
    }
    assert_eq!(
        token(
            "10.0.0.5",
            "192.0.2.200, 203.0.113.66".into(),
            c.id.clone(),
            c.secret.clone()
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Another client behind the same proxy is not slowed.
    assert_eq!(
        token(
            "10.0.0.5",
            "203.0.113.77".into(),
            c.id.clone(),
            c.secret.clone()
        )
        .await,
        StatusCode::OK
    );
    // A peer that is not a trusted proxy cannot rotate its address with the header.
    for i in 0..50 {
        let s = token(
            "198.51.100.5",
            format!("203.0.113.{i}"),
            format!("cl_other{i:04}"),
            "x".into(),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "failure {i}");
    }
    assert_eq!(
        token(
            "198.51.100.5",
            "203.0.113.99".into(),
            c.id.clone(),
            c.secret.clone()
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Behind a trusted proxy whose header names no usable address the client is unknown, and the
/// throttle still counts it: every such request is one shared "unknown" source (as in-process
/// callers are), never a fresh source per garbage entry, and never the proxy's own address, so
/// clients the proxy does name are not slowed by it.
#[tokio::test]
async fn the_throttle_counts_unknown_clients_behind_a_trusted_proxy_as_one_source() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let c = app.client("acme", json!({})).await;
    let router = behind_proxies(&app, ForwardedHeader::XForwardedFor);
    let token = |xff: String, id: String, secret: String| {
        let (app, router) = (&app, &router);
        async move {
            app.form_at(
                router,
                Some("10.0.0.5"),
                &[("x-forwarded-for", &xff)],
                "/oauth2/token",
                Some((&id, &secret)),
                "grant_type=client_credentials",
            )
            .await
            .0
        }
    };
    for i in 0..50 {
        // A fresh garbage entry each time: it must not make a fresh source.
        let s = token(
            format!("203.0.113.9, junk{i}"),
            format!("cl_unknown{i:04}"),
            "x".into(),
        )
        .await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "failure {i}");
    }
    assert_eq!(
        token("unknown".into(), c.id.clone(), c.secret.clone()).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    // A client the proxy names is its own source, and the proxy's address was never counted.
    assert_eq!(
        token("203.0.113.78".into(), c.id.clone(), c.secret.clone()).await,
        StatusCode::OK
    );
    assert_eq!(
        token("10.0.0.9".into(), c.id.clone(), c.secret.clone()).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn discovery_and_jwks_publish_only_public_keys() {
    let app = App::new().await;
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let (s, h, v) = app
            .send(
                Request::builder()
                    .uri(path)
                    .body(Body::empty())
                    .expect("req"),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        assert!(h[header::CACHE_CONTROL]
            .to_str()
            .expect("ascii")
            .contains("max-age"));
        assert_eq!(v["issuer"], ISSUER);
        assert_eq!(v["token_endpoint"], format!("{ISSUER}/oauth2/token"));
        assert_eq!(v["jwks_uri"], format!("{ISSUER}/oauth2/jwks"));
        assert_eq!(
            v["grant_types_supported"],
            json!([
                "authorization_code",
                "refresh_token",
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:token-exchange",
                "urn:ietf:params:oauth:grant-type:jwt-bearer",
                "urn:ietf:params:oauth:grant-type:device_code"
            ])
        );
        // RFC 8414 section 2: every endpoint listing a JWT method names its algorithms.
        for endpoint in [
            "token_endpoint",
            "introspection_endpoint",
            "revocation_endpoint",
        ] {
            let methods = v[format!("{endpoint}_auth_methods_supported")]
                .as_array()
                .expect("methods");
            if methods.contains(&json!("private_key_jwt")) {
                let algs = v[format!("{endpoint}_auth_signing_alg_values_supported")]
                    .as_array()
                    .unwrap_or_else(|| panic!("{endpoint}: no signing algorithms listed"));
                assert!(algs.contains(&json!("ES256")), "{endpoint}");
                assert!(!algs.contains(&json!("none")), "{endpoint}");
            }
        }
    }
    let (s, h, v) = app
        .send(
            Request::builder()
                .uri("/oauth2/jwks")
                .body(Body::empty())
                .expect("req"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CACHE_CONTROL], "public, max-age=300");
    let keys = v["keys"].as_array().expect("keys");
    // The active ES256 key and its RS256 companion for ID tokens.
    // (Both are made at the same millisecond: the JWKS order between them is not fixed.)
    let mut algs: Vec<&str> = keys.iter().filter_map(|k| k["alg"].as_str()).collect();
    algs.sort_unstable();
    assert_eq!(algs, ["ES256", "RS256"]);
    for k in keys {
        for member in ["kid", "alg", "use", "kty"] {
            assert!(k.get(member).is_some(), "{member} missing");
        }
        assert!(k.get("d").is_none());
    }
}

mod private_key_jwt {
    use super::*;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    struct KeyClient {
        id: String,
        key: EncodingKey,
        kid: String,
        public_jwk: Value,
    }

    async fn key_client(app: &App) -> KeyClient {
        let (pkcs8, jwk) =
            portcullis_service::keys::generate(SigningAlgorithm::ES256).expect("key");
        let (s, v) = app
            .admin_call(
                Method::POST,
                "/tenants/acme/clients",
                Some(json!({
                    "name": "signer",
                    "scopes": ["payments:read"],
                    "audiences": ["payments-api"],
                    "auth_method": "private_key_jwt",
                    "jwks": {"keys": [jwk.clone()]},
                })),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        assert!(
            v.get("client_secret").is_none(),
            "key clients get no secret"
        );
        KeyClient {
            id: v["client_id"].as_str().expect("id").to_owned(),
            key: EncodingKey::from_ec_der(pkcs8.expose()),
            kid: jwk["kid"].as_str().expect("kid").to_owned(),
            public_jwk: jwk,
        }
    }

    fn claims(app: &App, c: &KeyClient, aud: &str, lifetime: i64, jti: &str) -> Value {
        let now = app.clock.now().as_secs();
        json!({"iss": c.id, "sub": c.id, "aud": aud, "iat": now, "exp": now + lifetime, "jti": jti})
    }

    fn sign(c: &KeyClient, claims: &Value) -> String {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(c.kid.clone());
        jsonwebtoken::encode(&h, claims, &c.key).expect("sign")
    }

    async fn present(app: &App, assertion: &str) -> (StatusCode, Value) {
        let body = format!(
            "grant_type=client_credentials&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={assertion}"
        );
        let (s, _, v) = app.form("/oauth2/token", None, &body).await;
        (s, v)
    }

    async fn setup() -> (App, KeyClient) {
        let app = App::with(OAuthConfig {
            max_failures_per_client_id_and_source: 1_000,
            max_failures_per_source: 1_000,
            ..OAuthConfig::default()
        })
        .await;
        app.tenant_with_api("acme").await;
        let c = key_client(&app).await;
        (app, c)
    }

    #[tokio::test]
    async fn a_signed_assertion_authenticates_once() {
        let (app, c) = setup().await;
        for aud in [ISSUER.to_owned(), format!("{ISSUER}/oauth2/token")] {
            let a = sign(&c, &claims(&app, &c, &aud, 60, &format!("j-{aud}")));
            let (s, v) = present(&app, &a).await;
            assert_eq!(s, StatusCode::OK, "{aud}: {v}");
            // Replaying the same assertion is refused.
            let (s, v) = present(&app, &a).await;
            assert_eq!(
                (s, v["error"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("invalid_client"))
            );
        }
    }

    #[tokio::test]
    async fn bad_assertions_are_invalid_client() {
        let (app, c) = setup().await;
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let good = claims(&app, &c, ISSUER, 60, "j-1");
        let now = app.clock.now().as_secs();
        let mut expired = claims(&app, &c, ISSUER, 60, "j-2");
        expired["iat"] = json!(now - 120);
        expired["exp"] = json!(now - 60);
        let alg_none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT", "kid": c.kid})),
            b64(&good)
        );
        // HS256 keyed with the client's public key (as JSON and as raw x coordinate).
        let mut hs = Vec::new();
        for secret in [
            c.public_jwk.to_string().into_bytes(),
            URL_SAFE_NO_PAD
                .decode(c.public_jwk["x"].as_str().expect("x"))
                .expect("x"),
        ] {
            let mut h = Header::new(Algorithm::HS256);
            h.kid = Some(c.kid.clone());
            hs.push(
                jsonwebtoken::encode(&h, &good, &EncodingKey::from_secret(&secret)).expect("hs256"),
            );
        }
        let mut other_issuer = claims(&app, &c, ISSUER, 60, "j-3");
        other_issuer["iss"] = json!("cl_someone_else");
        // A key that is not registered, named by a header `jwk` the server must ignore.
        let (stranger_der, stranger_jwk) =
            portcullis_service::keys::generate(SigningAlgorithm::ES256).expect("key");
        let mut stranger_header = Header::new(Algorithm::ES256);
        stranger_header.kid = Some(c.kid.clone());
        stranger_header.jwk = serde_json::from_value(stranger_jwk).ok();
        let stranger = jsonwebtoken::encode(
            &stranger_header,
            &claims(&app, &c, ISSUER, 60, "j-4"),
            &EncodingKey::from_ec_der(stranger_der.expose()),
        )
        .expect("sign");
        // Audience injection: this server and another party in one `aud`.
        let mut two_audiences = claims(&app, &c, ISSUER, 60, "j-7");
        two_audiences["aud"] = json!([ISSUER, "https://other.example/token"]);
        let mut both_ours = claims(&app, &c, ISSUER, 60, "j-8");
        both_ours["aud"] = json!([ISSUER, format!("{ISSUER}/oauth2/token")]);
        let cases = vec![
            ("aud with another party", sign(&c, &two_audiences)),
            ("aud list of two", sign(&c, &both_ours)),
            (
                "wrong aud",
                sign(
                    &c,
                    &claims(&app, &c, "https://evil.example/token", 60, "j-5"),
                ),
            ),
            ("expired", sign(&c, &expired)),
            (
                "exp too far",
                sign(&c, &claims(&app, &c, ISSUER, 3_600, "j-6")),
            ),
            ("alg none", alg_none),
            ("hs256 with public jwk", hs[0].clone()),
            ("hs256 with public x", hs[1].clone()),
            ("iss mismatch", sign(&c, &other_issuer)),
            ("unregistered key", stranger),
            ("garbage", "not.a.jwt".into()),
        ];
        for (name, a) in cases {
            let (s, v) = present(&app, &a).await;
            assert_eq!(
                (s, v["error"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("invalid_client")),
                "{name}: {v}"
            );
        }
        // A good assertion still works afterwards: nothing above was recorded as used.
        let (s, v) = present(&app, &sign(&c, &good)).await;
        assert_eq!(s, StatusCode::OK, "{v}");
    }

    /// A fault in the assertion itself says what is wrong, and says it the same way whether or
    /// not the client exists; a fault found against the client's keys is the one answer an
    /// unknown client gets.
    #[tokio::test]
    async fn assertion_faults_say_what_is_wrong_without_telling_who_exists() {
        let (app, c) = setup().await;
        let unknown = KeyClient {
            id: "cl_doesnotexist0000000000".into(),
            ..key_client(&app).await
        };
        let now = app.clock.now().as_secs();
        let described = |claims: &Value| -> Vec<(String, String)> {
            [&c, &unknown]
                .into_iter()
                .map(|k| {
                    let mut claims = claims.clone();
                    claims["iss"] = json!(k.id);
                    claims["sub"] = json!(k.id);
                    (k.id.clone(), sign(k, &claims))
                })
                .collect()
        };
        let mut too_long = claims(&app, &c, ISSUER, 301, "j-long");
        too_long["iat"] = json!(now);
        let mut expired = claims(&app, &c, ISSUER, 60, "j-old");
        expired["iat"] = json!(now - 120);
        expired["exp"] = json!(now - 60);
        let mut future = claims(&app, &c, ISSUER, 60, "j-future");
        future["nbf"] = json!(now + 120);
        let mut no_jti = claims(&app, &c, ISSUER, 60, "j-none");
        no_jti.as_object_mut().expect("object").remove("jti");
        let cases = [
            (too_long, "assertion lifetime exceeds 300 s"),
            (expired, "client_assertion has expired"),
            (
                future,
                "client_assertion is not valid yet (iat or nbf is in the future)",
            ),
            (
                claims(&app, &c, "https://evil.example/token", 60, "j-aud"),
                "client_assertion aud must be one value: this server's issuer or its token \
                 endpoint",
            ),
            (
                no_jti,
                "client_assertion must carry iss, sub, aud, exp and jti claims",
            ),
        ];
        for (claims, description) in cases {
            for (id, a) in described(&claims) {
                let (s, v) = present(&app, &a).await;
                assert_eq!(s, StatusCode::UNAUTHORIZED, "{id}: {v}");
                assert_eq!(
                    v,
                    json!({"error": "invalid_client", "error_description": description}),
                    "{id}"
                );
            }
        }
        // iss not the client, and a header the server does not take.
        let mut other = claims(&app, &c, ISSUER, 60, "j-iss");
        other["iss"] = json!("cl_someone_else");
        let (_, v) = present(&app, &sign(&c, &other)).await;
        assert_eq!(
            v["error_description"],
            "client_assertion iss and sub must both be the client_id"
        );
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(c.kid.clone());
        let hs = jsonwebtoken::encode(
            &h,
            &claims(&app, &c, ISSUER, 60, "j-hs"),
            &EncodingKey::from_secret(b"k"),
        )
        .expect("hs256");
        let (_, v) = present(&app, &hs).await;
        assert_eq!(
            v["error_description"],
            "client_assertion must be signed with ES256, ES384, RS256, PS256 or EdDSA"
        );
        for garbage in ["not.a.jwt", "x"] {
            let (_, v) = present(&app, garbage).await;
            assert_eq!(
                v["error_description"], "client_assertion is not a signed JWT with a known alg",
                "{garbage}"
            );
        }
        let body = format!(
            "grant_type=client_credentials&client_id={}&client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer&client_assertion={}.x.y",
            c.id,
            "a".repeat(8_200)
        );
        let (_, _, v) = app.form("/oauth2/token", None, &body).await;
        assert_eq!(
            v["error_description"],
            "client_assertion is longer than 8192 bytes"
        );

        // Signed by a key the client did not register, for a known client; a well-formed
        // assertion for an unknown one; a replay: one answer.
        let stranger = KeyClient {
            id: c.id.clone(),
            ..key_client(&app).await
        };
        let good = sign(&c, &claims(&app, &c, ISSUER, 60, "j-once"));
        let (s, v) = present(&app, &good).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let mut answers = Vec::new();
        for a in [
            sign(&stranger, &claims(&app, &c, ISSUER, 60, "j-stranger")),
            sign(&unknown, &claims(&app, &unknown, ISSUER, 60, "j-unknown")),
            good,
        ] {
            let (s, v) = present(&app, &a).await;
            assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
            answers.push(v.to_string());
        }
        assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
        assert_eq!(
            serde_json::from_str::<Value>(&answers[0]).expect("json"),
            json!({"error": "invalid_client", "error_description": NOT_AUTHENTICATED})
        );
    }

    #[tokio::test]
    async fn registration_refuses_private_or_missing_keys() {
        let (app, c) = setup().await;
        let mut private = c.public_jwk.clone();
        private["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
        for body in [
            json!({"name": "x", "audiences": ["payments-api"], "auth_method": "private_key_jwt"}),
            json!({"name": "x", "audiences": ["payments-api"], "auth_method": "private_key_jwt",
                   "jwks": {"keys": [private]}}),
            json!({"name": "x", "audiences": ["payments-api"], "jwks": {"keys": [c.public_jwk]}}),
        ] {
            let (s, v) = app
                .admin_call(Method::POST, "/tenants/acme/clients", Some(body))
                .await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        }
    }

    /// `private_key_jwt` with a registered `jwks_uri`, against a JWKS endpoint on 127.0.0.1
    /// that the test controls.
    mod jwks_uri {
        use super::*;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Mutex as StdMutex;

        /// What the key server answers: status and body.
        type Answer = Arc<StdMutex<(u16, String)>>;

        struct KeyServer {
            url: String,
            hits: Arc<AtomicUsize>,
            answer: Answer,
        }

        impl KeyServer {
            async fn start() -> Self {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
                let hits = Arc::new(AtomicUsize::new(0));
                let answer: Answer = Arc::new(StdMutex::new((404, String::new())));
                let (h, a) = (hits.clone(), answer.clone());
                let app = Router::new().route(
                    "/jwks.json",
                    axum::routing::get(move || {
                        let (h, a) = (h.clone(), a.clone());
                        async move {
                            h.fetch_add(1, Ordering::SeqCst);
                            let (code, body) = a.lock().expect("answer").clone();
                            (
                                StatusCode::from_u16(code).expect("status"),
                                [(header::CONTENT_TYPE, "application/json")],
                                body,
                            )
                        }
                    }),
                );
                tokio::spawn(async move {
                    let _ = axum::serve(listener, app).await;
                });
                Self { url, hits, answer }
            }

            fn serve(&self, code: u16, body: String) {
                *self.answer.lock().expect("answer") = (code, body);
            }

            fn serve_keys(&self, keys: &[&Value]) {
                self.serve(200, json!({ "keys": keys }).to_string());
            }

            fn hits(&self) -> usize {
                self.hits.load(Ordering::SeqCst)
            }
        }

        fn config() -> OAuthConfig {
            OAuthConfig {
                insecure_allow_http_jwks_uri: true,
                // The key servers of these tests listen on 127.0.0.1.
                insecure_allow_private_jwks_uri: true,
                jwks_uri_cache_ttl_secs: 300,
                jwks_uri_min_refetch_secs: 30,
                jwks_uri_timeout_ms: 500,
                jwks_uri_max_bytes: 4_096,
                max_failures_per_client_id_and_source: 1_000,
                max_failures_per_source: 1_000,
                ..OAuthConfig::default()
            }
        }

        /// A fresh ES256 key: (signing key, public JWK with kid).
        fn new_key() -> (EncodingKey, Value) {
            let (pkcs8, jwk) =
                portcullis_service::keys::generate(SigningAlgorithm::ES256).expect("key");
            (EncodingKey::from_ec_der(pkcs8.expose()), jwk)
        }

        async fn register(app: &App, uri: &str) -> (StatusCode, Value) {
            app.admin_call(
                Method::POST,
                "/tenants/acme/clients",
                Some(json!({
                    "name": "remote-signer",
                    "scopes": ["payments:read"],
                    "audiences": ["payments-api"],
                    "auth_method": "private_key_jwt",
                    "jwks_uri": uri,
                })),
            )
            .await
        }

        async fn uri_client(app: &App, server: &KeyServer) -> String {
            let (s, v) = register(app, &server.url).await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            assert_eq!(v["jwks_uri"], server.url.as_str());
            assert_eq!(server.hits(), 0, "registration fetches nothing");
            v["client_id"].as_str().expect("id").to_owned()
        }

        /// Presents an assertion signed by `key` under `kid`; returns the status.
        async fn present_with(
            app: &App,
            id: &str,
            key: &EncodingKey,
            kid: &str,
            jti: &str,
        ) -> StatusCode {
            let now = app.clock.now().as_secs();
            let claims = json!({"iss": id, "sub": id, "aud": ISSUER, "iat": now,
                "exp": now + 60, "jti": jti});
            let mut h = Header::new(Algorithm::ES256);
            h.kid = Some(kid.to_owned());
            let a = jsonwebtoken::encode(&h, &claims, key).expect("sign");
            present(app, &a).await.0
        }

        fn kid(jwk: &Value) -> &str {
            jwk["kid"].as_str().expect("kid")
        }

        #[tokio::test]
        async fn keys_are_fetched_once_per_ttl_and_refetched_for_a_new_kid_at_most_once_per_interval(
        ) {
            let mut app = App::with(config()).await;
            app.tenant_with_api("acme").await;
            let server = KeyServer::start().await;
            let (k1, j1) = new_key();
            let (k2, j2) = new_key();
            server.serve_keys(&[&j1]);
            let id = uri_client(&app, &server).await;

            assert_eq!(
                present_with(&app, &id, &k1, kid(&j1), "a1").await,
                StatusCode::OK
            );
            assert_eq!(
                present_with(&app, &id, &k1, kid(&j1), "a2").await,
                StatusCode::OK
            );
            assert_eq!(server.hits(), 1, "cached");

            // The client rotates to k2. Its kid is unknown, but the last fetch was just now.
            server.serve_keys(&[&j2]);
            assert_eq!(
                present_with(&app, &id, &k2, kid(&j2), "a3").await,
                StatusCode::UNAUTHORIZED
            );
            assert_eq!(server.hits(), 1, "no refetch within the interval");
            app.clock.advance(Duration::from_secs(30));
            assert_eq!(
                present_with(&app, &id, &k2, kid(&j2), "a4").await,
                StatusCode::OK
            );
            assert_eq!(server.hits(), 2, "one refetch for the unknown kid");
            // k1 left the document: refused, and made-up kids do not cause fetches.
            assert_eq!(
                present_with(&app, &id, &k1, kid(&j1), "a5").await,
                StatusCode::UNAUTHORIZED
            );
            for i in 0..5 {
                let s =
                    present_with(&app, &id, &k2, &format!("made-up-{i}"), &format!("b{i}")).await;
                assert_eq!(s, StatusCode::UNAUTHORIZED);
            }
            assert_eq!(server.hits(), 2);

            // After the TTL the document is fetched again; a key removed by then stops working.
            let (k3, j3) = new_key();
            server.serve_keys(&[&j3]);
            app.clock.advance(Duration::from_secs(300));
            assert_eq!(
                present_with(&app, &id, &k2, kid(&j2), "a6").await,
                StatusCode::UNAUTHORIZED
            );
            assert_eq!(server.hits(), 3);
            assert_eq!(
                present_with(&app, &id, &k3, kid(&j3), "a7").await,
                StatusCode::OK
            );

            let events = app.events("acme").await;
            assert!(events
                .iter()
                .any(|e| e.credential_id.as_deref() == Some(id.as_str())
                    && e.reason.as_deref() == Some("assertion_unknown_key")));
        }

        #[tokio::test]
        async fn fetch_failures_are_invalid_client_audited_and_never_cached_as_keys() {
            let mut app = App::with(config()).await;
            app.tenant_with_api("acme").await;
            let (key, jwk) = new_key();
            let mut private = jwk.clone();
            private["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
            // A document over the 4 KiB limit, valid JSON otherwise.
            let padding = "x".repeat(5_000);
            let oversized = json!({"keys": [jwk.clone()], "padding": padding}).to_string();
            let cases: Vec<(&str, u16, String)> = vec![
                ("jwks_uri_too_large", 200, oversized),
                ("jwks_uri_invalid", 200, "not json".into()),
                (
                    "jwks_uri_invalid",
                    200,
                    json!({"keys": [private]}).to_string(),
                ),
                ("jwks_uri_bad_status", 500, String::new()),
            ];
            let mut n = 0;
            for (reason, code, body) in cases {
                let server = KeyServer::start().await;
                server.serve(code, body);
                let id = uri_client(&app, &server).await;
                n += 1;
                let s = present_with(&app, &id, &key, kid(&jwk), &format!("f{n}")).await;
                assert_eq!(s, StatusCode::UNAUTHORIZED, "{reason}");
                assert_eq!(server.hits(), 1, "{reason}");
                // Fixed at the source, but a failure is remembered for the refetch interval.
                server.serve_keys(&[&jwk]);
                n += 1;
                let s = present_with(&app, &id, &key, kid(&jwk), &format!("f{n}")).await;
                assert_eq!(s, StatusCode::UNAUTHORIZED, "{reason}: retried too soon");
                assert_eq!(server.hits(), 1, "{reason}");
            }

            // Nothing listens: connection refused.
            let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let refused_uri = format!("http://{}/jwks.json", closed.local_addr().expect("addr"));
            drop(closed);
            // Accepts the connection and never answers: the timeout ends it.
            let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let silent_uri = format!("http://{}/jwks.json", silent.local_addr().expect("addr"));
            let _held = tokio::spawn(async move {
                let mut open = Vec::new();
                while let Ok((sock, _)) = silent.accept().await {
                    open.push(sock);
                }
            });
            for uri in [refused_uri, silent_uri] {
                let (s, v) = register(&app, &uri).await;
                assert_eq!(s, StatusCode::CREATED, "{v}");
                let id = v["client_id"].as_str().expect("id").to_owned();
                n += 1;
                let s = present_with(&app, &id, &key, kid(&jwk), &format!("f{n}")).await;
                assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}");
            }

            // After the interval the fixed document works.
            app.clock.advance(Duration::from_secs(30));
            let server = KeyServer::start().await;
            server.serve(500, String::new());
            let id = uri_client(&app, &server).await;
            assert_eq!(
                present_with(&app, &id, &key, kid(&jwk), "g1").await,
                StatusCode::UNAUTHORIZED
            );
            server.serve_keys(&[&jwk]);
            app.clock.advance(Duration::from_secs(30));
            assert_eq!(
                present_with(&app, &id, &key, kid(&jwk), "g2").await,
                StatusCode::OK
            );

            let events = app.events("acme").await;
            for reason in [
                "jwks_uri_too_large",
                "jwks_uri_invalid",
                "jwks_uri_bad_status",
                "jwks_uri_unreachable",
            ] {
                assert!(
                    events
                        .iter()
                        .any(|e| e.action == "oauth.client_auth"
                            && e.reason.as_deref() == Some(reason)),
                    "{reason} not audited"
                );
            }
        }

        /// A client whose JWKS URI points at an internal address is refused at fetch time
        /// unless private addresses are allowed: a literal address, and a name that resolves
        /// only to loopback. The key server is never reached.
        #[tokio::test]
        async fn a_jwks_uri_on_a_private_address_is_never_fetched_by_default() {
            let mut app = App::with(OAuthConfig {
                insecure_allow_private_jwks_uri: false,
                ..config()
            })
            .await;
            app.tenant_with_api("acme").await;
            let server = KeyServer::start().await;
            let (key, jwk) = new_key();
            server.serve_keys(&[&jwk]);
            let port = server.url.rsplit(':').next().expect("port").to_owned();
            let by_name = server.url.replace("127.0.0.1", "localhost");
            // A bracketed IPv6 literal is judged before connecting too (nothing listens there,
            // so a missed check would show as `jwks_uri_unreachable` instead).
            let v6 = server.url.replace("127.0.0.1", "[::1]");
            let mut refused = Vec::new();
            for (uri, reason) in [
                (server.url.clone(), "jwks_uri_address_not_allowed"),
                (v6, "jwks_uri_address_not_allowed"),
                (by_name, "jwks_uri_unreachable"),
            ] {
                let (s, v) = register(&app, &uri).await;
                assert_eq!(s, StatusCode::CREATED, "{v}");
                let id = v["client_id"].as_str().expect("id").to_owned();
                let s = present_with(&app, &id, &key, kid(&jwk), &format!("p-{reason}")).await;
                assert_eq!(s, StatusCode::UNAUTHORIZED, "{uri}");
                refused.push((id, reason));
            }
            // Audited with the precise reason (the events are read once, after a flush).
            let events = app.events("acme").await;
            for (id, reason) in refused {
                assert!(
                    events
                        .iter()
                        .any(|e| e.credential_id.as_deref() == Some(id.as_str())
                            && e.reason.as_deref() == Some(reason)),
                    "{reason} not audited"
                );
            }
            assert_eq!(server.hits(), 0, "nothing internal was read (port {port})");
        }

        #[tokio::test]
        async fn registration_requires_https_unless_insecure_http_is_allowed() {
            let app = App::new().await;
            app.tenant_with_api("acme").await;
            let (_, jwk) = new_key();
            for (body, why) in [
                (json!({"jwks_uri": "http://127.0.0.1:9/jwks.json"}), "http"),
                (
                    json!({"jwks_uri": "https://u:p@keys.example/jwks.json"}),
                    "credentials",
                ),
                (json!({"jwks_uri": "keys.example/jwks.json"}), "relative"),
                (
                    json!({"jwks_uri": "https://keys.example/jwks.json", "jwks": {"keys": [jwk]}}),
                    "both",
                ),
            ] {
                let mut b = json!({"name": "x", "audiences": ["payments-api"],
                    "auth_method": "private_key_jwt"});
                if let (Value::Object(b), Value::Object(e)) = (&mut b, body) {
                    b.extend(e);
                }
                let (s, v) = app
                    .admin_call(Method::POST, "/tenants/acme/clients", Some(b))
                    .await;
                assert_eq!(s, StatusCode::BAD_REQUEST, "{why}: {v}");
            }
            let (s, v) = app
                .admin_call(
                    Method::POST,
                    "/tenants/acme/clients",
                    Some(json!({"name": "x", "audiences": ["payments-api"],
                        "jwks_uri": "https://keys.example/jwks.json"})),
                )
                .await;
            assert_eq!(
                s,
                StatusCode::BAD_REQUEST,
                "secret clients have no jwks_uri: {v}"
            );
            let (s, v) = app
                .admin_call(
                    Method::POST,
                    "/tenants/acme/clients",
                    Some(json!({"name": "x", "audiences": ["payments-api"],
                        "auth_method": "private_key_jwt",
                        "jwks_uri": "https://keys.example/jwks.json"})),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            assert_eq!(v["jwks_uri"], "https://keys.example/jwks.json");
        }

        /// Signs `claims` with an RSA PKCS#8 key under `alg` (RS256 or PS256), with aws-lc-rs
        /// directly: neither the product's signer (RS256 only) nor its verifier is involved.
        fn rsa_assertion(pkcs8: &[u8], alg: &str, kid: &str, claims: &Value) -> String {
            use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA256, RSA_PSS_SHA256};
            let key = RsaKeyPair::from_pkcs8(pkcs8).expect("rsa");
            let input = format!(
                "{}.{}",
                URL_SAFE_NO_PAD.encode(json!({"alg": alg, "kid": kid}).to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string())
            );
            let padding: &'static dyn aws_lc_rs::signature::RsaEncoding = if alg == "PS256" {
                &RSA_PSS_SHA256
            } else {
                &RSA_PKCS1_SHA256
            };
            let mut sig = vec![0u8; key.public_modulus_len()];
            key.sign(
                padding,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .expect("sign");
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
        }

        /// Third-party JWKS (and many registered ones) carry RSA keys without `alg`. Such a key
        /// signs RS256 and PS256 assertions, inline and behind a `jwks_uri` alike, as it did
        /// before verification moved to jose; HS256 keyed with it, `none`, and an EC signature
        /// naming it are refused, with their reasons audited.
        #[tokio::test]
        async fn an_rsa_key_without_alg_verifies_rs256_and_ps256_and_nothing_else() {
            let mut app = App::with(config()).await;
            app.tenant_with_api("acme").await;
            let (pkcs8, mut jwk) =
                portcullis_service::keys::generate(SigningAlgorithm::RS256).expect("key");
            let map = jwk.as_object_mut().expect("object");
            map.remove("alg");
            map.remove("use");
            let kid = jwk["kid"].as_str().expect("kid").to_owned();
            let (s, v) = app
                .admin_call(
                    Method::POST,
                    "/tenants/acme/clients",
                    Some(json!({
                        "name": "rsa-signer",
                        "scopes": ["payments:read"],
                        "audiences": ["payments-api"],
                        "auth_method": "private_key_jwt",
                        "jwks": {"keys": [jwk.clone()]},
                    })),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
            let inline = v["client_id"].as_str().expect("id").to_owned();
            let server = KeyServer::start().await;
            server.serve_keys(&[&jwk]);
            let remote = uri_client(&app, &server).await;

            let now = app.clock.now().as_secs();
            let claims = |id: &str, jti: &str| {
                json!({"iss": id, "sub": id, "aud": ISSUER, "iat": now, "exp": now + 60,
                    "jti": jti})
            };
            for id in [&inline, &remote] {
                for alg in ["RS256", "PS256"] {
                    let a = rsa_assertion(pkcs8.expose(), alg, &kid, &claims(id, alg));
                    let (s, v) = present(&app, &a).await;
                    assert_eq!(s, StatusCode::OK, "{id} {alg}: {v}");
                }
                // HS256 keyed with the public modulus or the whole JWK.
                for secret in [
                    URL_SAFE_NO_PAD
                        .decode(jwk["n"].as_str().expect("n"))
                        .expect("n"),
                    jwk.to_string().into_bytes(),
                ] {
                    let mut h = Header::new(Algorithm::HS256);
                    h.kid = Some(kid.clone());
                    let a = jsonwebtoken::encode(
                        &h,
                        &claims(id, "hs"),
                        &EncodingKey::from_secret(&secret),
                    )
                    .expect("hs256");
                    assert_eq!(present(&app, &a).await.0, StatusCode::UNAUTHORIZED, "{id}");
                }
                let none = format!(
                    "{}.{}.",
                    URL_SAFE_NO_PAD.encode(json!({"alg": "none", "kid": kid}).to_string()),
                    URL_SAFE_NO_PAD.encode(claims(id, "none").to_string())
                );
                assert_eq!(present(&app, &none).await.0, StatusCode::UNAUTHORIZED);
                let (ec_key, _) = new_key();
                assert_eq!(
                    present_with(&app, id, &ec_key, &kid, "ec").await,
                    StatusCode::UNAUTHORIZED,
                    "{id}: ES256 naming the RSA key"
                );
            }
            assert_eq!(server.hits(), 1, "every assertion used the one fetch");
            let events = app.events("acme").await;
            for reason in [
                "assertion_alg_not_allowed",
                "assertion_alg_does_not_match_key",
            ] {
                for id in [&inline, &remote] {
                    assert!(
                        events.iter().any(|e| e.credential_id.as_deref() == Some(id)
                            && e.reason.as_deref() == Some(reason)),
                        "{id}: {reason} not audited"
                    );
                }
            }
        }

        /// A client row whose stored JWKS no longer parses (written before a rule tightened,
        /// here a 512-bit RSA key the old check let through) refuses the client: `invalid_client`
        /// with the reason audited, never a server error.
        #[tokio::test]
        async fn a_stored_jwks_that_no_longer_parses_is_invalid_client() {
            let mut app = App::with(config()).await;
            app.tenant_with_api("acme").await;
            let id = "cl_storedbroken".to_owned();
            let now = app.clock.now();
            let short = json!({"keys": [{"kty": "RSA", "kid": "old", "e": "AQAB",
                "n": URL_SAFE_NO_PAD.encode([0xc5u8; 64])}]});
            app.store
                .create_client(
                    &portcullis_store::OAuthClient {
                        id: id.clone(),
                        tenant: TenantId::parse("acme").expect("tenant"),
                        name: "legacy".into(),
                        environment: "live".into(),
                        auth_method: "private_key_jwt".into(),
                        grant_types: vec!["client_credentials".into()],
                        scopes: vec!["payments:read".into()],
                        audiences: vec!["payments-api".into()],
                        access_token_ttl_secs: 600,
                        can_introspect: false,
                        jwks: Some(short.to_string()),
                        jwks_uri: None,
                        status: portcullis_store::ClientStatus::Active,
                        created_at: now,
                        updated_at: now,
                        last_used_at: None,
                        client_type: portcullis_store::ClientType::Confidential,
                        application_type: portcullis_store::ApplicationType::Web,
                        redirect_uris: vec![],
                        post_logout_redirect_uris: vec![],
                        allowed_web_origins: vec![],
                        first_party: false,
                        backchannel_logout_uri: None,
                        backchannel_logout_session_required: false,
                        require_pushed_requests: false,
                        require_dpop: false,
                        id_token_signed_response_alg: None,
                        tls_subject: None,
                        certificate_bound_tokens: false,
                    },
                    None,
                )
                .await
                .expect("stored");
            let (key, jwk) = new_key();
            let (s, v) = {
                let n = now.as_secs();
                let claims = json!({"iss": id, "sub": id, "aud": ISSUER, "iat": n,
                    "exp": n + 60, "jti": "b1"});
                let mut h = Header::new(Algorithm::ES256);
                h.kid = Some(kid(&jwk).to_owned());
                present(
                    &app,
                    &jsonwebtoken::encode(&h, &claims, &key).expect("sign"),
                )
                .await
            };
            assert_eq!(
                (s, v["error"].as_str()),
                (StatusCode::UNAUTHORIZED, Some("invalid_client")),
                "{v}"
            );
            let events = app.events("acme").await;
            assert!(
                events
                    .iter()
                    .any(|e| e.credential_id.as_deref() == Some(id.as_str())
                        && e.reason.as_deref() == Some("client_jwks_invalid")),
                "reason not audited"
            );
        }
    }
}

mod key_rotation {
    use super::*;

    /// The published kids of the installation's algorithm (ES256 in these tests).
    async fn jwks_kids(app: &App) -> Vec<String> {
        lane_kids(app, false).await
    }

    /// The published kids of the RS256 companion lane.
    async fn rs256_kids(app: &App) -> Vec<String> {
        lane_kids(app, true).await
    }

    async fn lane_kids(app: &App, rs256: bool) -> Vec<String> {
        let (s, _, v) = app
            .send(
                Request::builder()
                    .uri("/oauth2/jwks")
                    .body(Body::empty())
                    .expect("req"),
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        v["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .filter(|k| (k["alg"] == "RS256") == rs256)
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    fn kid_of(token: &str) -> String {
        claims_of(token).0["kid"].as_str().expect("kid").to_owned()
    }

    async fn tick(app: &App) {
        portcullis_service::rotation::tick(&app.state.oauth_service())
            .await
            .expect("tick");
    }

    #[tokio::test]
    async fn rotation_prepublishes_switches_and_keeps_old_keys_until_their_tokens_expire() {
        let app = App::new().await;
        app.tenant_with_api("acme").await;
        let rs = app.client("acme", json!({"introspection": true})).await;
        let c = app.client("acme", json!({})).await;
        let old_kid = kid_of(&app.access_token(&c).await);

        let (s, v) = app
            .admin_call(Method::POST, "/signing-keys/rotate", None)
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{v}");
        assert_eq!(v["state"], "pending");
        let new_kid = v["kid"].as_str().expect("kid").to_owned();
        let (_, again) = app
            .admin_call(Method::POST, "/signing-keys/rotate", None)
            .await;
        assert_eq!(again["kid"], new_kid.as_str(), "one rotation at a time");
        assert_eq!(
            jwks_kids(&app).await,
            sorted(vec![old_kid.clone(), new_kid.clone()])
        );
        // The RS256 companion rotates with it: its successor is published beside it.
        let companions = rs256_kids(&app).await;
        assert_eq!(companions.len(), 2, "{companions:?}");

        // Before the pre-publication window ends the old key still signs.
        app.clock.advance(Duration::from_secs(599));
        tick(&app).await;
        let last_old = app.access_token(&c).await;
        assert_eq!(kid_of(&last_old), old_kid);

        app.clock.advance(Duration::from_secs(1));
        tick(&app).await;
        let first_new = app.access_token(&c).await;
        assert_eq!(kid_of(&first_new), new_kid);
        assert_eq!(
            jwks_kids(&app).await,
            sorted(vec![old_kid.clone(), new_kid.clone()])
        );
        assert_eq!(app.introspect(&rs, &last_old).await["active"], true);

        // The retired key leaves JWKS once the longest token it could have signed expired.
        app.clock.advance(Duration::from_secs(3600 + 30 - 1));
        tick(&app).await;
        assert_eq!(
            jwks_kids(&app).await,
            sorted(vec![old_kid.clone(), new_kid.clone()])
        );
        app.clock.advance(Duration::from_secs(1));
        assert_eq!(jwks_kids(&app).await, vec![new_kid.clone()]);
        assert_eq!(
            rs256_kids(&app).await.len(),
            1,
            "the old companion left too"
        );
    }

    #[tokio::test]
    async fn scheduled_rotation_starts_when_the_active_key_is_old_enough() {
        let mut app = App::build(OAuthConfig::default(), Duration::from_secs(86_400)).await;
        tick(&app).await;
        assert_eq!(jwks_kids(&app).await.len(), 1, "not due yet");
        app.clock.advance(Duration::from_secs(86_400));
        tick(&app).await;
        assert_eq!(jwks_kids(&app).await.len(), 2, "pending key published");
        assert_eq!(rs256_kids(&app).await.len(), 2, "and the companion's");
        let pending_before = jwks_kids(&app).await;
        tick(&app).await;
        assert_eq!(
            jwks_kids(&app).await,
            pending_before,
            "one pending key at a time"
        );
        let events = app.events("system").await;
        assert!(events
            .iter()
            .any(|e| e.action == "signing_key.rotate" && e.reason.as_deref() == Some("scheduled")));
    }

    #[tokio::test]
    async fn revoking_the_signing_key_re_signs_its_audit_checkpoints_with_the_new_key() {
        let app = App::new().await;
        app.tenant_with_api("acme").await;
        let c = app.client("acme", json!({})).await;
        let kid = kid_of(&app.access_token(&c).await);
        // Some chained events, and a checkpoint over them signed by the key about to go.
        let mut head = 0;
        for _ in 0..500 {
            head = app.store.audit_chain_head().await.expect("head").0;
            if head > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(head > 0, "the audit writer chained the set-up's events");
        let cp = portcullis_service::audit_chain::checkpoint(
            app.store.as_ref(),
            app.clock.as_ref(),
            &app.state.oauth,
        )
        .await
        .expect("checkpoint")
        .expect("a new checkpoint");
        assert_eq!(cp.kid.as_deref(), Some(kid.as_str()));
        let (s, v) = app
            .admin_call(Method::POST, &format!("/signing-keys/{kid}/revoke"), None)
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        // Re-signed beside the request: the checkpoint anchors again, under the new key.
        let mut report = Value::Null;
        for _ in 0..500 {
            let (s, r) = app.admin_call(Method::GET, "/audit/verify", None).await;
            assert_eq!(s, StatusCode::OK, "{r}");
            report = r;
            if report["signed_checkpoints"] == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(report["ok"], true, "{report}");
        assert_eq!(
            (
                &report["signed_checkpoints"],
                &report["revoked_key_checkpoints"]
            ),
            (&json!(1), &json!(0)),
            "{report}"
        );
        let stored = app.store.audit_checkpoints().await.expect("checkpoints");
        let new_kid = stored[0].kid.clone().expect("kid");
        assert_ne!(new_kid, kid);
        assert_eq!(kid_of(&app.access_token(&c).await), new_kid);
    }

    #[tokio::test]
    async fn revoking_the_signing_key_unpublishes_it_and_switches_at_once() {
        let mut app = App::new().await;
        app.tenant_with_api("acme").await;
        let rs = app.client("acme", json!({"introspection": true})).await;
        let c = app.client("acme", json!({})).await;
        let token = app.access_token(&c).await;
        let kid = kid_of(&token);
        let (s, v) = app
            .admin_call(Method::POST, &format!("/signing-keys/{kid}/revoke"), None)
            .await;
        assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
        let kids = jwks_kids(&app).await;
        assert_eq!(kids.len(), 1);
        assert!(!kids.contains(&kid));
        assert_eq!(app.introspect(&rs, &token).await, json!({"active": false}));
        let next = app.access_token(&c).await;
        assert_eq!(kid_of(&next), kids[0]);
        assert_eq!(app.introspect(&rs, &next).await["active"], true);
        let (s, _) = app
            .admin_call(Method::POST, &format!("/signing-keys/{kid}/revoke"), None)
            .await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let log = app.store.revocations_after(0, 10).await.expect("log");
        assert_eq!(log[0].kind, portcullis_store::RevocationKind::SigningKey);
        assert_eq!(log[0].subject, kid);
        let events = app.events("system").await;
        assert!(events.iter().any(|e| e.action == "signing_key.revoke"));
    }
}

/// The id of `tenant`'s resource server for `audience`.
async fn resource_server_id(app: &App, tenant: &str, audience: &str) -> String {
    let (s, v) = app
        .admin_call(
            Method::GET,
            &format!("/tenants/{tenant}/resource-servers"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["items"]
        .as_array()
        .expect("list")
        .iter()
        .find(|r| r["audience"] == audience)
        .and_then(|r| r["id"].as_str())
        .expect("resource server")
        .to_owned()
}

/// Issues an introspection credential for a resource server (rotating any older one).
async fn resource_server_credential(app: &App, tenant: &str, id: &str, overlap: u64) -> Client {
    let (s, v) = app
        .admin_call(
            Method::POST,
            &format!("/tenants/{tenant}/resource-servers/{id}/rotate-secret"),
            Some(json!({"overlap_secs": overlap})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    assert_eq!(v["client_id"], id);
    Client {
        id: id.to_owned(),
        secret: v["client_secret"].as_str().expect("secret").to_owned(),
    }
}

#[tokio::test]
async fn a_resource_server_introspects_only_tokens_for_its_own_audience() {
    let mut app = App::new().await;
    app.tenant_with_api("acme").await;
    app.tenant_with_api("globex").await;
    let payments = resource_server_id(&app, "acme", "payments-api").await;
    let ledger = resource_server_id(&app, "acme", "ledger-api").await;
    let globex_payments = resource_server_id(&app, "globex", "payments-api").await;
    let rs = resource_server_credential(&app, "acme", &payments, 3600).await;
    let ledger_rs = resource_server_credential(&app, "acme", &ledger, 3600).await;
    let other_rs = resource_server_credential(&app, "globex", &globex_payments, 3600).await;
    let c = app.client("acme", json!({})).await;
    let for_payments = app.access_token(&c).await;
    let (s, _, v) = app
        .token(&c, "grant_type=client_credentials&audience=ledger-api")
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let for_ledger = v["access_token"].as_str().expect("token").to_owned();

    let v = app.introspect(&rs, &for_payments).await;
    assert_eq!(v["active"], true, "{v}");
    assert_eq!(v["aud"], "payments-api");
    assert_eq!(v["client_id"], c.id.as_str());
    assert_eq!(
        app.introspect(&ledger_rs, &for_ledger).await["active"],
        true
    );
    // Another audience in the same tenant, and the same audience name in another tenant.
    assert_eq!(
        app.introspect(&rs, &for_ledger).await,
        json!({"active": false})
    );
    assert_eq!(
        app.introspect(&ledger_rs, &for_payments).await,
        json!({"active": false})
    );
    assert_eq!(
        app.introspect(&other_rs, &for_payments).await,
        json!({"active": false})
    );

    // Refusals: wrong secret, another resource server's secret, an unknown id, no secret.
    let refused = |(s, _, v): (StatusCode, axum::http::HeaderMap, Value)| {
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client")),
            "{v}"
        );
    };
    let body = format!("token={for_payments}");
    for (id, secret) in [
        (rs.id.as_str(), c.secret.as_str()),
        (rs.id.as_str(), ledger_rs.secret.as_str()),
        ("rs_nosuchresourceserver", rs.secret.as_str()),
    ] {
        refused(
            app.form("/oauth2/introspect", Some((id, secret)), &body)
                .await,
        );
    }
    refused(
        app.form(
            "/oauth2/introspect",
            None,
            &format!("client_id={}&{body}", rs.id),
        )
        .await,
    );
    // A resource-server credential is not a client: no tokens, no revocations.
    refused(
        app.form(
            "/oauth2/token",
            Some((&rs.id, &rs.secret)),
            "grant_type=client_credentials",
        )
        .await,
    );
    refused(
        app.form("/oauth2/revoke", Some((&rs.id, &rs.secret)), &body)
            .await,
    );

    // Rotation without overlap retires the old secret on the next request; a suspended tenant's
    // resource servers cannot introspect.
    let rotated = resource_server_credential(&app, "acme", &payments, 0).await;
    refused(
        app.form("/oauth2/introspect", Some((&rs.id, &rs.secret)), &body)
            .await,
    );
    assert_eq!(
        app.introspect(&rotated, &for_payments).await["active"],
        true
    );
    let (s, _) = app
        .admin_call(Method::POST, "/tenants/acme/disable", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    refused(
        app.form(
            "/oauth2/introspect",
            Some((&rotated.id, &rotated.secret)),
            &body,
        )
        .await,
    );

    // The admin view lists the credential's prefix and dates, never the secret.
    let (s, v) = app
        .admin_call(
            Method::GET,
            &format!("/tenants/acme/resource-servers/{payments}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["secrets"].as_array().expect("secrets").len(), 2);
    assert!(!v.to_string().contains(&rotated.secret));

    let events = app.events("acme").await;
    assert!(events.iter().any(|e| e.action == "oauth.client_auth"
        && e.credential_id.as_deref() == Some(payments.as_str())
        && e.reason.as_deref() == Some("client_secret_mismatch")));
    assert!(events
        .iter()
        .any(|e| e.action == "resource_server.rotate_secret"));
    for e in &events {
        let text = serde_json::to_string(e).expect("json");
        assert!(!text.contains(&rs.secret) && !text.contains(&rotated.secret));
    }
}

/// `token_type_hint` (RFC 7009 section 2.1, RFC 7662 section 2.1) says where to look first,
/// never where to stop; unknown values are ignored (RFC 7009 section 2.2).
#[tokio::test]
async fn token_type_hint_is_only_a_hint() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let rs = app.client("acme", json!({"introspection": true})).await;
    let c = app.client("acme", json!({})).await;
    let token = app.access_token(&c).await;
    for hint in ["access_token", "refresh_token", "bogus", "ACCESS_TOKEN"] {
        let (s, _, v) = app
            .form(
                "/oauth2/introspect",
                Some((&rs.id, &rs.secret)),
                &format!("token={token}&token_type_hint={hint}"),
            )
            .await;
        assert_eq!(
            (s, &v["active"]),
            (StatusCode::OK, &json!(true)),
            "{hint}: {v}"
        );
    }
    let (s, _, v) = app
        .form(
            "/oauth2/introspect",
            Some((&rs.id, &rs.secret)),
            &format!("token={token}&token_type_hint=access_token&token_type_hint=access_token"),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    // A wrong hint still finds and revokes the access token; so does an unknown one.
    for hint in ["refresh_token", "no_such_type"] {
        let token = app.access_token(&c).await;
        let (s, _, _) = app
            .form(
                "/oauth2/revoke",
                Some((&c.id, &c.secret)),
                &format!("token={token}&token_type_hint={hint}"),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{hint}");
        assert_eq!(
            app.introspect(&rs, &token).await,
            json!({"active": false}),
            "{hint}"
        );
    }
}

/// The token service caches clients, secrets, tenants and resource servers (`oauth.cache_ttl_ms`).
/// Writes made through this node must show on the very next request: the clock never moves in
/// this test, so a cached entry that was not invalidated would be served for ever.
#[tokio::test]
async fn writes_through_this_node_take_effect_on_the_next_request() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let c = app.client("acme", json!({})).await;
    let refused = |(s, _, v): (StatusCode, axum::http::HeaderMap, Value)| {
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client")),
            "{v}"
        );
    };
    app.access_token(&c).await;

    // Rotation without overlap: the old secret stops at once, the new one works at once.
    let (s, v) = app
        .admin_call(
            Method::POST,
            &format!("/tenants/acme/clients/{}/rotate-secret", c.id),
            Some(json!({"overlap_secs": 0})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    refused(app.token(&c, "grant_type=client_credentials").await);
    let c = Client {
        id: c.id.clone(),
        secret: v["client_secret"].as_str().expect("secret").to_owned(),
    };
    app.access_token(&c).await;

    // Tenant suspension and its end.
    let (s, _) = app
        .admin_call(Method::POST, "/tenants/acme/disable", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    refused(app.token(&c, "grant_type=client_credentials").await);
    let (s, _) = app
        .admin_call(Method::POST, "/tenants/acme/enable", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    app.access_token(&c).await;

    // A resource server created after a client asked for its audience and was refused.
    let (s, v) = app
        .admin_call(
            Method::POST,
            "/tenants/acme/resource-servers",
            Some(json!({"audience": "orders-api", "scopes": ["orders:read"]})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let o = app
        .client(
            "acme",
            json!({"scopes": ["orders:read"], "audiences": ["orders-api"]}),
        )
        .await;
    let (s, _, v) = app.token(&o, "grant_type=client_credentials").await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // Disabling the client.
    let (s, _) = app
        .admin_call(
            Method::POST,
            &format!("/tenants/acme/clients/{}/disable", c.id),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    refused(app.token(&c, "grant_type=client_credentials").await);
}

/// A change made on another node sharing the database is seen here once the cached facts are
/// older than `oauth.cache_ttl_ms`, and not later. (That it is not seen before then is the
/// documented staleness, asserted so the test notices if the cache stops being used.)
#[tokio::test]
async fn a_change_on_another_node_is_seen_within_the_cache_ttl() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    app.tenant_with_api("globex").await;
    let ttl = Duration::from_millis(OAuthConfig::default().cache_ttl_ms);
    assert!(ttl <= Duration::from_secs(1), "documented default bound");
    let here = app.other_node(&OAuthConfig::default());
    let c = app.client("acme", json!({})).await;
    let g = app.client("globex", json!({})).await;
    let grant = |c: &Client| {
        let c = Client {
            id: c.id.clone(),
            secret: c.secret.clone(),
        };
        let app = &app;
        let here = &here;
        async move {
            app.form_via(
                here,
                "/oauth2/token",
                Some((&c.id, &c.secret)),
                "grant_type=client_credentials",
            )
            .await
            .0
        }
    };
    assert_eq!(grant(&c).await, StatusCode::OK);
    assert_eq!(grant(&g).await, StatusCode::OK);

    // Through the admin API of the other node: disable acme's client, suspend globex.
    let (s, _) = app
        .admin_call(
            Method::POST,
            &format!("/tenants/acme/clients/{}/disable", c.id),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .admin_call(Method::POST, "/tenants/globex/disable", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    app.clock.advance(ttl - Duration::from_millis(1));
    assert_eq!(grant(&c).await, StatusCode::OK, "still within the bound");
    assert_eq!(grant(&g).await, StatusCode::OK, "still within the bound");
    app.clock.advance(Duration::from_millis(1));
    assert_eq!(grant(&c).await, StatusCode::UNAUTHORIZED);
    assert_eq!(grant(&g).await, StatusCode::UNAUTHORIZED);

    // With the cache off, the other node's writes show at once.
    let uncached = app.other_node(&OAuthConfig {
        cache_ttl_ms: 0,
        ..OAuthConfig::default()
    });
    let d = app.client("acme", json!({})).await;
    let body = "grant_type=client_credentials";
    let basic = Some((d.id.as_str(), d.secret.as_str()));
    let (s, _, _) = app.form_via(&uncached, "/oauth2/token", basic, body).await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = app
        .admin_call(
            Method::POST,
            &format!("/tenants/acme/clients/{}/disable", d.id),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _, _) = app.form_via(&uncached, "/oauth2/token", basic, body).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}

/// Made-up client ids are cached apart from real clients: a flood of them cannot push a real
/// client out of a small cache, every one is still a throttled, audited failure, and a cached
/// client with a wrong secret is refused (facts are cached, never a successful answer).
#[tokio::test]
async fn unknown_ids_cannot_evict_clients_and_failures_are_never_cached() {
    let mut app = App::with(OAuthConfig {
        max_failures_per_client_id_and_source: 1_000,
        max_failures_per_source: 1_000,
        ..OAuthConfig::default()
    })
    .await;
    app.tenant_with_api("acme").await;
    let small = OAuthConfig {
        cache_capacity: 4,
        max_failures_per_client_id_and_source: 1_000,
        max_failures_per_source: 1_000,
        ..OAuthConfig::default()
    };
    let here = app.other_node(&small);
    let c = app.client("acme", json!({})).await;
    let token = |id: &str, secret: &str| {
        let (id, secret) = (id.to_owned(), secret.to_owned());
        let (app, here) = (&app, &here);
        async move {
            app.form_via(
                here,
                "/oauth2/token",
                Some((&id, &secret)),
                "grant_type=client_credentials",
            )
            .await
            .0
        }
    };
    assert_eq!(token(&c.id, &c.secret).await, StatusCode::OK);
    for i in 0..200 {
        let s = token(&format!("cl_madeup{i:04}"), &c.secret).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        // The real client stays warm between made-up ids, as a busy client would.
        if i % 50 == 0 {
            assert_eq!(token(&c.id, &c.secret).await, StatusCode::OK);
        }
    }
    // Disable the client behind this node's back: only a cached copy can still say active.
    let tenant = TenantId::parse("acme").expect("tenant");
    assert!(app
        .store
        .set_client_status(
            &tenant,
            &c.id,
            portcullis_store::ClientStatus::Disabled,
            app.clock.now(),
        )
        .await
        .expect("disable"));
    assert_eq!(
        token(&c.id, &c.secret).await,
        StatusCode::OK,
        "evicted by made-up ids"
    );
    let wrong = app.client("acme", json!({})).await.secret;
    assert_eq!(token(&c.id, &wrong).await, StatusCode::UNAUTHORIZED);

    let events = app.events("acme").await;
    assert!(events.iter().any(|e| e.action == "oauth.client_auth"
        && e.reason.as_deref() == Some("client_secret_mismatch")));
    let system = app.events("system").await;
    let unknown = system
        .iter()
        .filter(|e| e.reason.as_deref() == Some("client_unknown"))
        .count();
    assert_eq!(unknown, 200, "every made-up id is an audited failure");
}

/// Invariant 1: an internal error denies. With storage gone, a client with the right secret gets
/// a bare server error and no token.
#[tokio::test]
async fn a_storage_failure_issues_no_token() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let c = app.client("acme", json!({})).await;
    app.store.close().await;
    let (s, _, v) = app.token(&c, "grant_type=client_credentials").await;
    assert!(s.is_server_error(), "{s} {v}");
    assert!(v.get("access_token").is_none(), "{v}");
}

/// Introspection keeps the signing keys for the cache's lifetime, yet a key made active on
/// another node (the emergency replacement after a revoke signs at once) is found at once: an
/// unknown kid reads the keys again before the token is refused.
#[tokio::test]
async fn introspection_finds_a_key_activated_on_another_node_at_once() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let rs = app.client("acme", json!({"introspection": true})).await;
    let c = app.client("acme", json!({})).await;
    let there = app.other_node(&OAuthConfig::default());
    let introspect_there = |token: String| {
        let (app, there, rs) = (&app, &there, &rs);
        async move {
            let (s, _, v) = app
                .form_via(
                    there,
                    "/oauth2/introspect",
                    Some((&rs.id, &rs.secret)),
                    &format!("token={token}"),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            v
        }
    };
    let old = app.access_token(&c).await;
    // The other node reads and caches the key list.
    assert_eq!(introspect_there(old.clone()).await["active"], true);
    let kid = old
        .split('.')
        .next()
        .and_then(|h| {
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, h).ok()
        })
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|h| h["kid"].as_str().map(str::to_owned))
        .expect("kid");
    let (s, v) = app
        .admin_call(Method::POST, &format!("/signing-keys/{kid}/revoke"), None)
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT, "{v}");
    // This node signs with the replacement at once; the other node, clock unmoved (its cached
    // list still fresh), accepts the new token and refuses the old one.
    let new = app.access_token(&c).await;
    assert_eq!(introspect_there(new).await["active"], true);
    assert_eq!(introspect_there(old).await, json!({"active": false}));
}

/// Both secret rotations (a client's, a resource server's) cap the overlap at 30 days: more is
/// 400 `invalid_request` and issues nothing; exactly 30 days is accepted.
#[tokio::test]
async fn secret_rotations_refuse_an_overlap_past_30_days() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let c = app.client("acme", json!({})).await;
    let rs = resource_server_id(&app, "acme", "payments-api").await;
    let thirty_days = 30 * 24 * 3600;
    for path in [
        format!("/tenants/acme/clients/{}/rotate-secret", c.id),
        format!("/tenants/acme/resource-servers/{rs}/rotate-secret"),
    ] {
        let (s, v) = app
            .admin_call(
                Method::POST,
                &path,
                Some(json!({"overlap_secs": thirty_days + 1})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{path}: {v}");
        assert_eq!(v["error"], "invalid_request");
        let (s, v) = app
            .admin_call(
                Method::POST,
                &path,
                Some(json!({"overlap_secs": thirty_days})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{path}: {v}");
    }
    // The refused rotation issued nothing: the client's original secret is still its only one
    // besides the accepted rotation's.
    let (s, v) = app
        .admin_call(
            Method::GET,
            &format!("/tenants/acme/clients/{}", c.id),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["secrets"].as_array().expect("secrets").len(), 2, "{v}");
}

/// Never called: the verifier below has static keys.
#[derive(Debug)]
struct NoFetch;

#[async_trait::async_trait]
impl portcullis_verify::fetch::Fetch for NoFetch {
    async fn get(
        &self,
        _url: &str,
    ) -> Result<portcullis_verify::fetch::Fetched, portcullis_verify::fetch::FetchError> {
        Err(portcullis_verify::fetch::FetchError::BadUrl)
    }
}

/// A verify-library verifier of `audience` as a gateway embeds it: this app's issuer and keys,
/// revocations applied from the log by [`verifier_accepts`].
async fn embedded_verifier(app: &App, audience: &str) -> portcullis_verify::Verifier {
    let (_, _, jwks) = app
        .send(
            Request::builder()
                .uri("/oauth2/jwks")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    let clock: Arc<dyn Clock> = app.clock.clone();
    let verifier = portcullis_verify::Verifier::with_parts(
        portcullis_verify::VerifierConfig::new(
            portcullis_verify::IssuerConfig::new(
                ISSUER,
                portcullis_verify::KeySource::Static(jwks.to_string()),
            ),
            audience,
            portcullis_verify::RevocationSource::Embedded {
                staleness_bound: Duration::from_secs(3600),
            },
        ),
        clock,
        Arc::new(NoFetch),
    )
    .expect("verifier");
    verifier.revocations().touch(0);
    verifier
}

/// Whether the verifier accepts `token` once it has followed the revocation log to its head.
async fn verifier_accepts(app: &App, verifier: &portcullis_verify::Verifier, token: &str) -> bool {
    let head = app.store.revocation_head().await.expect("head");
    for e in app
        .store
        .revocations_after(verifier.revocations().position(), 1_000)
        .await
        .expect("log")
    {
        verifier.revocations().apply(&e.into_record());
    }
    verifier.revocations().touch(head);
    verifier.verify_access_token(token).await.is_ok()
}

/// One revocation rule: for every kind that can revoke an access token, introspection and the
/// verify library (which the gateways are built on) agree, before and after the entry.
#[tokio::test]
async fn introspection_and_verifiers_agree_on_every_revocation_kind() {
    use portcullis_core::revocation::RevocationKind;
    use portcullis_store::NewRevocation;
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let introspector = app.client("acme", json!({"introspection": true})).await;
    let c = app.client("acme", json!({})).await;
    let verifier = embedded_verifier(&app, "payments-api").await;
    // Both answers for one token: (introspection active, verifier accepts).
    let answers = |token: String| {
        let (app, verifier, introspector) = (&app, &verifier, &introspector);
        async move {
            let accepted = verifier_accepts(app, verifier, &token).await;
            let active = app.introspect(introspector, &token).await["active"] == true;
            (active, accepted)
        }
    };
    let kid = |token: &str| claims_of(token).0["kid"].as_str().expect("kid").to_owned();
    let now = || app.clock.now();
    for kind in [
        RevocationKind::Token,
        RevocationKind::Client,
        RevocationKind::Subject,
        RevocationKind::Tenant,
        RevocationKind::SigningKey,
    ] {
        app.clock.advance(Duration::from_secs(2));
        let token = app.access_token(&c).await;
        assert_eq!(
            answers(token.clone()).await,
            (true, true),
            "{kind:?} before"
        );
        let (_, claims) = claims_of(&token);
        let subject = match kind {
            RevocationKind::Token => claims["jti"].as_str().expect("jti").to_owned(),
            RevocationKind::Client => c.id.clone(),
            RevocationKind::Subject => claims["sub"].as_str().expect("sub").to_owned(),
            RevocationKind::Tenant => "acme".to_owned(),
            _ => kid(&token),
        };
        let tenant = if kind == RevocationKind::SigningKey {
            "system"
        } else {
            "acme"
        };
        app.store
            .append_revocation(
                &NewRevocation {
                    tenant: TenantId::parse(tenant).expect("tenant"),
                    kind,
                    subject,
                    revoked_before: (kind != RevocationKind::Token).then(now),
                    expires_at: None,
                    reason: None,
                },
                now(),
            )
            .await
            .expect("append");
        assert_eq!(answers(token).await, (false, false), "{kind:?} after");
        if kind != RevocationKind::SigningKey {
            // Marks dated "revoked before" spare what is issued later.
            app.clock.advance(Duration::from_secs(2));
            let later = app.access_token(&c).await;
            assert_eq!(answers(later).await, (true, true), "{kind:?} issued later");
        }
    }
}

/// RFC 6749 section 5.2: the Basic challenge answers a client that used Basic (or sent nothing),
/// never one that authenticated in the body.
#[tokio::test]
async fn the_basic_challenge_goes_only_to_basic_clients() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let c = app.client("acme", json!({})).await;
    let challenge = |h: &axum::http::HeaderMap| h.get(header::WWW_AUTHENTICATE).cloned();
    let (s, h, _) = app
        .form(
            "/oauth2/token",
            Some((&c.id, "pcl_cs_live_wrong")),
            "grant_type=client_credentials",
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert!(challenge(&h).is_some_and(|v| v.as_bytes().starts_with(b"Basic ")));
    let (s, h, _) = app
        .form("/oauth2/token", None, "grant_type=client_credentials")
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "no credentials at all");
    assert!(challenge(&h).is_some());
    for path in ["/oauth2/token", "/oauth2/introspect", "/oauth2/revoke"] {
        let (s, h, v) = app
            .form(
                path,
                None,
                &format!(
                    "grant_type=client_credentials&token=x&client_id={}&client_secret=wrong",
                    c.id
                ),
            )
            .await;
        assert_eq!(
            (s, v["error"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_client"))
        );
        assert!(
            challenge(&h).is_none(),
            "{path}: client_secret_post is not told to use Basic"
        );
    }
}

/// Introspection refuses a token that lives longer than the hard maximum (what a stolen key
/// would mint, or a token issued before the maximum was lowered): the same cap every verifier
/// applies.
#[tokio::test]
async fn introspection_refuses_a_token_longer_than_the_hard_maximum() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let introspector = app.client("acme", json!({"introspection": true})).await;
    let c = app.client("acme", json!({})).await;
    let token = app.access_token(&c).await;
    assert_eq!(app.introspect(&introspector, &token).await["active"], true);
    // A node whose hard maximum is below the token's 600 s lifetime.
    let strict = app.other_node(&OAuthConfig {
        default_access_token_ttl_secs: 300,
        max_access_token_ttl_secs: 300,
        ..OAuthConfig::default()
    });
    let (s, _, v) = app
        .form_via(
            &strict,
            "/oauth2/introspect",
            Some((&introspector.id, &introspector.secret)),
            &format!("token={token}"),
        )
        .await;
    assert_eq!((s, v), (StatusCode::OK, json!({"active": false})));
}

/// Archiving a client, in one step: its secret stops at once, every token issued to it before
/// is refused by introspection and by the verify library (the `client` log entry, one rule), it
/// leaves the client list, and it can never be changed or brought back.
#[tokio::test]
async fn an_archived_client_is_refused_everywhere_for_good() {
    let mut app = App::new().await;
    app.tenant_with_api("acme").await;
    app.tenant_with_api("globex").await;
    let introspector = app.client("acme", json!({"introspection": true})).await;
    // Created later, so listed after the introspector (lists are oldest first).
    app.clock.advance(Duration::from_secs(1));
    let c = app.client("acme", json!({})).await;
    let verifier = embedded_verifier(&app, "payments-api").await;
    let token = app.access_token(&c).await;
    assert!(verifier_accepts(&app, &verifier, &token).await);
    assert_eq!(app.introspect(&introspector, &token).await["active"], true);
    let archive = format!("/tenants/acme/clients/{}/archive", c.id);
    // Another tenant's administrator, and a path naming another tenant, reach nothing.
    let (s, _) = app
        .admin_call(
            Method::POST,
            &format!("/tenants/globex/clients/{}/archive", c.id),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(
        verifier_accepts(&app, &verifier, &token).await,
        "nothing changed"
    );

    app.clock.advance(Duration::from_secs(1));
    let (s, v) = app.admin_call(Method::POST, &archive, None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "disabled");
    assert!(v["archived_at"].is_string(), "{v}");
    assert_eq!(
        app.introspect(&introspector, &token).await,
        json!({"active": false})
    );
    assert!(!verifier_accepts(&app, &verifier, &token).await);
    let (s, _, v) = app.token(&c, "grant_type=client_credentials").await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );

    // Twice, or any later change: 409, nothing changes.
    let (s, v) = app.admin_call(Method::POST, &archive, None).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::CONFLICT, Some("conflict"))
    );
    for (path, body) in [
        (format!("/tenants/acme/clients/{}/disable", c.id), None),
        (format!("/tenants/acme/clients/{}/enable", c.id), None),
        (
            format!("/tenants/acme/clients/{}/rotate-secret", c.id),
            Some(json!({"overlap_secs": 0})),
        ),
    ] {
        let (s, v) = app.admin_call(Method::POST, &path, body).await;
        assert_eq!(s, StatusCode::CONFLICT, "{path}: {v}");
    }
    // Nor can its registration be changed (an update must not bring back what archiving ended).
    let (s, v) = app
        .admin_call(
            Method::PATCH,
            &format!("/tenants/acme/clients/{}", c.id),
            Some(json!({"name": "revived"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    let (s, _, _) = app.token(&c, "grant_type=client_credentials").await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "still refused");

    // Out of the default list, in the list that asks for archived clients (the tenant's
    // built-in CLI client aside).
    let listed = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|c| c["client_id"].as_str().expect("id").to_owned())
            .filter(|id| !portcullis_core::client::is_cli_client_id(id))
            .collect()
    };
    let (_, v) = app
        .admin_call(Method::GET, "/tenants/acme/clients", None)
        .await;
    assert_eq!(listed(&v), std::slice::from_ref(&introspector.id));
    let (_, v) = app
        .admin_call(
            Method::GET,
            "/tenants/acme/clients?include_archived=true",
            None,
        )
        .await;
    assert_eq!(listed(&v), [introspector.id.clone(), c.id.clone()]);
    let (s, v) = app
        .admin_call(
            Method::GET,
            &format!("/tenants/acme/clients/{}", c.id),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(v["archived_at"].is_string());
    assert!(v["secrets"][0]["expires_at"].is_string(), "{v}");

    let events = app.events("acme").await;
    let archived: Vec<_> = events
        .iter()
        .filter(|e| e.action == portcullis_core::audit::Action::OAuthClientArchive)
        .collect();
    assert_eq!(archived.len(), 1, "one event for one archive");
    assert_eq!(archived[0].target.as_deref(), Some(c.id.as_str()));
}

/// Archiving a tenant, in one step: tokens issued before are refused by introspection and by the
/// verify library (the `tenant` log entry), its clients and admin credentials stop, and it is
/// never enabled again.
#[tokio::test]
async fn an_archived_tenant_refuses_its_tokens_clients_and_admins_for_good() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    app.tenant_with_api("globex").await;
    let introspector = app.client("acme", json!({"introspection": true})).await;
    let c = app.client("acme", json!({})).await;
    let verifier = embedded_verifier(&app, "payments-api").await;
    let token = app.access_token(&c).await;
    assert!(verifier_accepts(&app, &verifier, &token).await);
    let (s, v) = app
        .admin_call(
            Method::POST,
            "/tenants/acme/admin-tokens",
            Some(json!({"name": "ops"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let acme_admin = v["token"].as_str().expect("token").to_owned();

    // A tenant administrator may not archive its own tenant; the system tenant is never archived.
    let (s, _, _) = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/admin/v1/tenants/acme/archive")
                .header(header::AUTHORIZATION, format!("Bearer {acme_admin}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = app
        .admin_call(Method::POST, "/tenants/system/archive", None)
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (s, _) = app
        .admin_call(Method::POST, "/tenants/nobody/archive", None)
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);

    app.clock.advance(Duration::from_secs(1));
    let (s, v) = app
        .admin_call(Method::POST, "/tenants/acme/archive", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "disabled");
    assert!(v["archived_at"].is_string());
    assert!(!verifier_accepts(&app, &verifier, &token).await);
    // The tenant's own introspector is refused, and so is the token.
    let (s, _, v) = app
        .form(
            "/oauth2/introspect",
            Some((&introspector.id, &introspector.secret)),
            &format!("token={token}"),
        )
        .await;
    assert!(s != StatusCode::OK || v["active"] == false, "{s} {v}");
    let (s, _, _) = app.token(&c, "grant_type=client_credentials").await;
    assert_ne!(s, StatusCode::OK, "its clients get no token");
    let (s, _, _) = app
        .send(
            Request::builder()
                .uri("/admin/v1/tenants/acme/clients")
                .header(header::AUTHORIZATION, format!("Bearer {acme_admin}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "its admin credentials stop");

    for verb in ["archive", "enable", "disable"] {
        let (s, v) = app
            .admin_call(Method::POST, &format!("/tenants/acme/{verb}"), None)
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{verb}: {v}");
    }
    let (s, _) = app
        .admin_call(Method::POST, "/tenants", Some(json!({"id": "acme"})))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "its id is never reused");
    let (_, v) = app.admin_call(Method::GET, "/tenants", None).await;
    let ids: Vec<_> = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|t| t["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids, ["system", "globex"]);
    let (_, v) = app
        .admin_call(Method::GET, "/tenants?include_archived=true", None)
        .await;
    assert_eq!(v["items"].as_array().expect("items").len(), 3);
}

/// Archiving a resource server: no token is issued for its audience any more, its own
/// introspection secret stops at once, and its audience is never given to another resource
/// server. Tokens issued for it before are inactive at introspection (the audience is gone), but
/// no log entry names an audience: a verifier that still accepts the audience accepts them until
/// they expire, as documented.
#[tokio::test]
async fn an_archived_resource_server_gets_no_more_tokens_and_cannot_introspect() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let payments = resource_server_id(&app, "acme", "payments-api").await;
    let rs = resource_server_credential(&app, "acme", &payments, 3600).await;
    let c = app.client("acme", json!({})).await;
    let before = app.access_token(&c).await;
    assert_eq!(app.introspect(&rs, &before).await["active"], true);
    let introspector = app.client("acme", json!({"introspection": true})).await;
    assert_eq!(app.introspect(&introspector, &before).await["active"], true);
    let verifier = embedded_verifier(&app, "payments-api").await;

    let (s, v) = app
        .admin_call(
            Method::POST,
            &format!("/tenants/acme/resource-servers/{payments}/archive"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["archived_at"].is_string());
    let (s, _, v) = app
        .token(&c, "grant_type=client_credentials&resource=payments-api")
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target"))
    );
    let (s, _, v) = app
        .token(&c, "grant_type=client_credentials&resource=ledger-api")
        .await;
    assert_eq!(s, StatusCode::OK, "other audiences still work: {v}");
    let (s, _, v) = app
        .form(
            "/oauth2/introspect",
            Some((&rs.id, &rs.secret)),
            &format!("token={before}"),
        )
        .await;
    assert_eq!(
        (s, v["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    // A client allowed to introspect learns the token is no longer current...
    assert_eq!(
        app.introspect(&introspector, &before).await,
        json!({"active": false})
    );
    // ...but, the documented limit, a verifier that still accepts the audience accepts the token
    // until it expires.
    assert!(verifier_accepts(&app, &verifier, &before).await);

    let (s, _) = app
        .admin_call(
            Method::POST,
            &format!("/tenants/acme/resource-servers/{payments}/archive"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = app
        .admin_call(
            Method::POST,
            &format!("/tenants/acme/resource-servers/{payments}/rotate-secret"),
            Some(json!({})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = app
        .admin_call(
            Method::POST,
            "/tenants/acme/resource-servers",
            Some(json!({"audience": "payments-api"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "the audience stays reserved");
    let (s, v) = app
        .admin_call(
            Method::POST,
            "/tenants/acme/clients",
            Some(json!({"name": "new", "audiences": ["payments-api"]})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "no new client for it: {v}");
    let (_, v) = app
        .admin_call(Method::GET, "/tenants/acme/resource-servers", None)
        .await;
    assert_eq!(v["items"].as_array().expect("items").len(), 1);
}

/// Checks `v` against the document's schema `name`: every required member is there, and (for a
/// closed shape) every member present is documented.
fn conforms(doc: &Value, name: &str, v: &Value, closed: bool) {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    for required in schema["required"].as_array().into_iter().flatten() {
        let key = required.as_str().expect("name");
        assert!(v.get(key).is_some(), "{name}: {key} missing in {v}");
    }
    if closed {
        for key in v.as_object().expect("object").keys() {
            assert!(
                schema["properties"].get(key).is_some(),
                "{name}: {key} is not documented ({v})"
            );
        }
    }
}

/// The OAuth endpoints and API key verification are in the OpenAPI document with the shapes
/// and status codes they really answer with (they are not admin routes: the admin API fuzzer
/// leaves them out, so this test is what keeps their description honest).
#[tokio::test]
async fn the_public_routes_answer_as_the_openapi_document_says() {
    let app = App::new().await;
    app.tenant_with_api("acme").await;
    let c = app.client("acme", json!({"introspection": true})).await;
    let doc = serde_json::to_value(portcullis_http::openapi::document()).expect("doc");
    let documented = |path: &str, method: &str, status: StatusCode| {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        assert!(
            op["responses"].get(status.as_str()).is_some(),
            "{method} {path}: {status} is not documented"
        );
    };

    let (s, _, v) = app.token(&c, "grant_type=client_credentials").await;
    documented("/oauth2/token", "post", s);
    conforms(&doc, "TokenResponse", &v, true);
    let token = v["access_token"].as_str().expect("token").to_owned();
    let (s, _, v) = app
        .form(
            "/oauth2/token",
            Some((&c.id, "wrong")),
            "grant_type=client_credentials",
        )
        .await;
    documented("/oauth2/token", "post", s);
    conforms(&doc, "OAuthErrorBody", &v, true);
    let (s, _, v) = app.token(&c, "grant_type=password").await;
    documented("/oauth2/token", "post", s);
    conforms(&doc, "OAuthErrorBody", &v, true);

    for t in [token.as_str(), "not-a-token"] {
        let (s, _, v) = app
            .form(
                "/oauth2/introspect",
                Some((&c.id, &c.secret)),
                &format!("token={t}"),
            )
            .await;
        documented("/oauth2/introspect", "post", s);
        conforms(&doc, "IntrospectionResponse", &v, true);
    }
    let (s, _, _) = app
        .form(
            "/oauth2/revoke",
            Some((&c.id, &c.secret)),
            &format!("token={token}"),
        )
        .await;
    documented("/oauth2/revoke", "post", s);
    // Pushed authorization requests: the answers of a client that is not an app (the pushed
    // request itself is exercised in sign_in_pages).
    for creds in [(c.id.as_str(), "wrong"), (c.id.as_str(), c.secret.as_str())] {
        let (s, _, v) = app
            .form("/oauth2/par", Some(creds), "response_type=code")
            .await;
        documented("/oauth2/par", "post", s);
        conforms(&doc, "OAuthErrorBody", &v, true);
    }

    for (path, schema, closed) in [
        ("/oauth2/jwks", "Jwks", true),
        (
            "/.well-known/oauth-authorization-server",
            "AuthorizationServerMetadata",
            false,
        ),
    ] {
        let (s, _, v) = app
            .send(
                Request::builder()
                    .uri(path)
                    .body(Body::empty())
                    .expect("req"),
            )
            .await;
        documented(path, "get", s);
        conforms(&doc, schema, &v, closed);
    }

    let verify = |token: Option<String>, body: Value| {
        let mut b = Request::builder()
            .method(Method::POST)
            .uri("/v1/api-keys/verify")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        b.body(Body::from(body.to_string())).expect("req")
    };
    let (s, _, v) = app
        .send(verify(
            Some(app.admin.clone()),
            json!({"key": "pcl_key_live_nonsense", "tenant": "acme"}),
        ))
        .await;
    documented("/v1/api-keys/verify", "post", s);
    conforms(&doc, "VerifyApiKeyResponse", &v, true);
    assert_eq!(v, json!({"valid": false}));
    let (s, _, v) = app
        .send(verify(None, json!({"key": "pcl_key_live_nonsense"})))
        .await;
    documented("/v1/api-keys/verify", "post", s);
    conforms(&doc, "ErrorBody", &v, true);
    let (s, _, v) = app
        .send(verify(Some(app.admin.clone()), json!({"nokey": 1})))
        .await;
    documented("/v1/api-keys/verify", "post", s);
    conforms(&doc, "ErrorBody", &v, true);

    // Every path outside the admin API that the document lists is one of these.
    let public: Vec<&String> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .filter(|p| !p.starts_with(portcullis_http::admin::PREFIX))
        .collect();
    assert_eq!(
        public,
        [
            "/.well-known/oauth-authorization-server",
            "/oauth2/device_authorization",
            "/oauth2/introspect",
            "/oauth2/jwks",
            "/oauth2/par",
            "/oauth2/revoke",
            "/oauth2/token",
            "/v1/api-keys/verify"
        ]
    );
}
