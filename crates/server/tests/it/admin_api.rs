//! Admin API behaviour, in process: authentication, tenant isolation and role permissions on
//! every route, service credentials on the feed and API key verification, credential creation
//! that never escalates, and bad input that must answer 4xx and change nothing.

use crate::common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use portcullis_core::admin::AdminRole;
use portcullis_core::audit::AuditEvent;
use portcullis_core::credential::{Credential, CredentialKind, Environment};
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{Clock, ManualClock, Timestamp};
use portcullis_http::admin::{self, Scope};
use portcullis_server::config::AuditConfig;
use portcullis_server::serve::{Assembled, BackgroundTasks, Hooks};
use portcullis_service::api_keys::ApiKeyVerifier;
use portcullis_store::{AuditQuery, NewTenant, SqliteStore, Store};
use serde_json::{json, Value};
use tower::ServiceExt;

struct TestApp {
    router: Router,
    store: Arc<dyn Store>,
    /// The live signing state (`/readyz` reads it).
    oauth: Arc<portcullis_service::oauth::OAuthState>,
    /// A signer for the key active at start.
    signer: Arc<portcullis_service::keys::jwt::Signer>,
    clock: Arc<dyn Clock>,
    /// The node's background tasks; stopping them drains the audit log.
    tasks: Option<BackgroundTasks>,
    verifier: Arc<ApiKeyVerifier>,
    global: String,
    acme: String,
    globex: String,
    _dir: tempfile::TempDir,
}

impl TestApp {
    async fn new() -> Self {
        Self::build(true).await
    }

    /// With `signer_at_start` false the OAuth endpoints start without a signer while the key
    /// snapshot taken at start still holds an active key.
    async fn build(signer_at_start: bool) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("db"))
                .await
                .expect("store"),
        );
        let manual = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
        let clock: Arc<dyn Clock> = manual.clone();
        for t in ["acme", "globex"] {
            store
                .create_tenant(
                    &NewTenant {
                        id: tid(t),
                        display_name: t.into(),
                    },
                    clock.now(),
                )
                .await
                .expect("tenant");
        }
        let mut tokens = Vec::new();
        for t in ["system", "acme", "globex"] {
            let (record, credential) =
                admin::tokens::mint(&tid(t), format!("{t}-admin"), "test".into(), clock.now());
            store.insert_admin_credential(&record).await.expect("token");
            tokens.push(credential.expose().to_owned());
        }
        let mut config = common::config(dir.path());
        config.audit = AuditConfig {
            batch_size: 64,
            flush_interval_ms: 5,
            queue_capacity: 10_000,
            ..AuditConfig::default()
        };
        config.http.max_body_bytes = 16 * 1024;
        let Assembled {
            state,
            router,
            verifier,
            tasks,
            ..
        } = common::assemble_with(
            &config,
            common::ISSUER,
            store.clone(),
            Hooks {
                signer_at_start,
                ..Hooks::new(manual)
            },
        )
        .await;
        let signer = Arc::new(
            portcullis_service::keys::jwt::Signer::new(state.keys.active().expect("an active key"))
                .expect("signer"),
        );
        Self {
            router,
            store,
            oauth: state.oauth.clone(),
            signer,
            clock,
            tasks: Some(tasks),
            verifier,
            global: tokens[0].clone(),
            acme: tokens[1].clone(),
            globex: tokens[2].clone(),
            _dir: dir,
        }
    }

    /// A credential of `role` in `tenant`, stored directly (as if a global admin had made it).
    async fn token(&self, role: AdminRole, tenant: &str) -> String {
        let (record, credential) = admin::tokens::mint_with_role(
            &tid(tenant),
            role,
            format!("{tenant}-{}", role.as_str()),
            "test".into(),
            self.clock.now(),
        );
        self.store
            .insert_admin_credential(&record)
            .await
            .expect("token");
        credential.expose().to_owned()
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).expect("request")).await
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, value)
    }

    /// Flushes the audit queue and returns the tenant's events, newest first.
    async fn audit(&mut self, tenant: &str) -> Vec<AuditEvent> {
        if let Some(tasks) = self.tasks.take() {
            tasks.shutdown(&self.verifier).await;
        }
        self.store
            .query_audit_events(&AuditQuery {
                tenant: tid(tenant),
                since: None,
                until: None,
                action: None,
                page: portcullis_store::PageRequest::first(1_000),
            })
            .await
            .expect("audit")
            .items
    }
}

fn tid(s: &str) -> TenantId {
    TenantId::parse(s).expect("valid")
}

fn concrete(path: &str, tenant: &str) -> String {
    format!(
        "{}{}",
        admin::PREFIX,
        path.replace("{tenant}", tenant)
            .replace("{id}", "AAAAAAAAAAAA")
    )
}

#[tokio::test]
async fn every_admin_route_requires_a_credential() {
    let app = TestApp::new().await;
    for (spec, _) in admin::routes() {
        let (status, headers, body) = app
            .call(
                spec.method.clone(),
                &concrete(spec.path, "acme"),
                None,
                None,
            )
            .await;
        assert_eq!(
            status,
            StatusCode::UNAUTHORIZED,
            "{} {}",
            spec.method,
            spec.path
        );
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"portcullis\"",
            "no error attribute when no credential was sent"
        );
        assert_eq!(body, json!({"error": "unauthorized"}));
    }
}

/// The admin API's answer to a request without a credential is the gateway's and the verify
/// library's (`crates/gateway/tests/proxy.rs`, `docs/verify.md`): 401, one
/// `WWW-Authenticate: Bearer realm="..."` challenge without `error` (RFC 6750 section 3.1),
/// `{"error":"unauthorized"}`, `Cache-Control: no-store`. A credential in another scheme is no
/// credential here, as there.
#[tokio::test]
async fn a_missing_credential_gets_the_answer_the_gateway_gives() {
    let app = TestApp::new().await;
    for authorization in [None, Some("Basic YWRtaW46aHVudGVyMg=="), Some("Token abc")] {
        let mut req = Request::builder().uri("/admin/v1/tenants");
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        let resp = app
            .router
            .clone()
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("response");
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{authorization:?}");
        let h = resp.headers();
        let challenges: Vec<_> = h.get_all(header::WWW_AUTHENTICATE).iter().collect();
        assert_eq!(
            challenges,
            ["Bearer realm=\"portcullis\""],
            "{authorization:?}"
        );
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert_eq!(h[header::CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
            .await
            .expect("body");
        assert_eq!(
            &body[..],
            br#"{"error":"unauthorized"}"#,
            "{authorization:?}"
        );
    }
}

/// Walks the route registry: a route added without the right check fails here.
#[tokio::test]
async fn tenant_admin_cannot_reach_another_tenant_or_global_routes_on_any_route() {
    let app = TestApp::new().await;
    let routes = admin::routes();
    assert!(routes.len() >= 10, "registry unexpectedly small");
    let authorized = |s: StatusCode| s != StatusCode::FORBIDDEN && s != StatusCode::UNAUTHORIZED;
    for (spec, _) in routes {
        let label = format!("{} {}", spec.method, spec.path);
        // (tenant in the path, token) -> answer
        let ask = |tenant: &'static str, token: &str| {
            let (method, path, token) = (
                spec.method.clone(),
                concrete(spec.path, tenant),
                token.to_owned(),
            );
            let app = &app;
            async move { app.call(method, &path, Some(&token), None).await }
        };
        match spec.scope {
            Scope::Tenant => {
                let (status, _, body) = ask("globex", &app.acme).await;
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{label}: other tenant reachable"
                );
                assert_eq!(body, json!({"error": "insufficient_scope"}), "{label}");
                let (status, _, _) = ask("system", &app.acme).await;
                assert_eq!(
                    status,
                    StatusCode::FORBIDDEN,
                    "{label}: system tenant reachable"
                );
                // The check is not "deny everything": the own tenant is authorized.
                let (status, _, _) = ask("acme", &app.acme).await;
                assert!(
                    authorized(status),
                    "{label}: own tenant refused with {status}"
                );
            }
            Scope::Global => {
                for tenant in ["acme", "globex"] {
                    let (status, _, _) = ask(tenant, &app.acme).await;
                    assert_eq!(
                        status,
                        StatusCode::FORBIDDEN,
                        "{label}: tenant admin reached a global route"
                    );
                }
            }
        }
        let (status, _, _) = ask("globex", &app.global).await;
        assert!(
            authorized(status),
            "{label}: global admin refused with {status}"
        );
    }
}

#[tokio::test]
async fn denied_cross_tenant_access_changes_nothing_and_is_audited() {
    let mut app = TestApp::new().await;
    let (status, _, _) = app
        .call(
            Method::POST,
            "/admin/v1/tenants/globex/admin-tokens",
            Some(&app.acme),
            Some(json!({"name": "sneaky"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app
        .call(
            Method::POST,
            "/admin/v1/tenants/globex/disable",
            Some(&app.acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.store
            .list_admin_credentials(&tid("globex"), &portcullis_store::PageRequest::first(1_000))
            .await
            .expect("list")
            .items
            .len(),
        1
    );
    let globex = app
        .store
        .get_tenant(&tid("globex"))
        .await
        .expect("get")
        .expect("some");
    assert_eq!(globex.status, portcullis_core::tenant::TenantStatus::Active);
    let events = app.audit("acme").await;
    let denials: Vec<_> = events
        .iter()
        .filter(|e| e.action == "admin.authorize")
        .map(|e| e.reason.clone().map(String::from).unwrap_or_default())
        .collect();
    assert!(
        denials.contains(&"tenant_mismatch".to_owned()),
        "{denials:?}"
    );
    assert!(
        denials.contains(&"global_admin_required".to_owned()),
        "{denials:?}"
    );
}

/// A credential with a valid checksum whose id is `id` but whose secret is different.
fn forge_with_id(id: &str) -> String {
    let secret = "Z".repeat(22);
    let unchecked = format!("pcl_adm_live_{id}{secret}");
    let crc = crc32fast::hash(unchecked.as_bytes());
    format!(
        "{unchecked}{}",
        portcullis_core::base62::encode_fixed(u64::from(crc), 6)
    )
}

#[tokio::test]
async fn bad_credentials_all_get_the_same_answer_and_distinct_audit_reasons() {
    let mut app = TestApp::new().await;
    let acme_id = Credential::parse(&app.acme).expect("valid").id().to_owned();
    let other_kind = Credential::generate(
        CredentialKind::ApiKey,
        Environment::live(),
        &mut rand::thread_rng(),
    );
    let unknown = Credential::generate(
        CredentialKind::AdminToken,
        Environment::live(),
        &mut rand::thread_rng(),
    );
    let mut typo = app.acme.clone().into_bytes();
    let i = typo.len() - 10;
    typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).expect("ascii");

    // Revoke a globex token, disable globex's tenant for another: both must stop working.
    let (record, revoked) = admin::tokens::mint(
        &tid("globex"),
        "to-revoke".into(),
        "t".into(),
        Timestamp::from_secs(1),
    );
    app.store
        .insert_admin_credential(&record)
        .await
        .expect("insert");
    app.store
        .revoke_admin_credential(&tid("globex"), &record.id, Timestamp::from_secs(2))
        .await
        .expect("revoke");

    let cases: Vec<(String, &str)> = vec![
        ("not-a-token".into(), "credential_bad_prefix"),
        (typo, "credential_checksum_mismatch"),
        (other_kind.expose().into(), "credential_wrong_kind"),
        (unknown.expose().into(), "credential_unknown"),
        (forge_with_id(&acme_id), "credential_digest_mismatch"),
        (revoked.expose().to_owned(), "credential_revoked"),
        ("x".repeat(5_000), "credential_too_long"),
    ];
    for (token, _) in &cases {
        let (status, headers, body) = app
            .call(Method::GET, "/admin/v1/tenants", Some(token), None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body,
            json!({"error": "invalid_token"}),
            "no hint which check failed"
        );
        assert_eq!(
            headers[header::WWW_AUTHENTICATE],
            "Bearer realm=\"portcullis\", error=\"invalid_token\""
        );
    }
    // Basic instead of Bearer.
    let req = Request::builder()
        .uri("/admin/v1/tenants")
        .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
        .body(Body::empty())
        .expect("request");
    assert_eq!(app.send(req).await.0, StatusCode::UNAUTHORIZED);

    // Disabling a tenant stops its admins.
    let (status, _, _) = app
        .call(
            Method::GET,
            "/admin/v1/tenants/globex",
            Some(&app.globex),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = app
        .call(
            Method::POST,
            "/admin/v1/tenants/globex/disable",
            Some(&app.global),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = app
        .call(
            Method::GET,
            "/admin/v1/tenants/globex",
            Some(&app.globex),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let mut reasons: Vec<String> = app
        .audit("system")
        .await
        .into_iter()
        .chain(app.audit("acme").await)
        .chain(app.audit("globex").await)
        .filter(|e| e.action == "admin.authenticate")
        .filter_map(|e| e.reason.map(String::from))
        .collect();
    reasons.sort();
    for (_, want) in &cases {
        assert!(
            reasons.iter().any(|r| r == want),
            "missing audit reason {want}: {reasons:?}"
        );
    }
    assert!(reasons.iter().any(|r| r == "authorization_not_bearer"));
    assert!(reasons.iter().any(|r| r == "tenant_disabled"));
    // No secret reaches the audit log.
    let all = format!("{:?}", app.audit("acme").await);
    assert!(!all.contains(&app.acme));
}

#[tokio::test]
async fn tenant_creation_validates_input_and_changes_nothing_on_error() {
    let mut app = TestApp::new().await;
    let g = Some(app.global.as_str());
    let bad_bodies = [
        json!({"id": "Acme Corp"}),
        json!({"id": "system"}),
        json!({"id": "a"}),
        json!({"id": "new-one", "display_name": ""}),
        json!({"id": "new-one", "display_name": "x\u{7}y"}),
        json!({"id": "new-one", "extra": true}),
        json!({"id": 12}),
        json!([]),
    ];
    for body in bad_bodies {
        let (status, _, resp) = app
            .call(Method::POST, "/admin/v1/tenants", g, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(resp["error"], "invalid_request", "{body}");
    }
    // Not JSON, and JSON without its content type.
    for (ctype, payload) in [
        ("application/json", "{not json"),
        ("text/plain", "{\"id\":\"x\"}"),
    ] {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/admin/v1/tenants")
            .header(header::AUTHORIZATION, format!("Bearer {}", app.global))
            .header(header::CONTENT_TYPE, ctype)
            .body(Body::from(payload))
            .expect("request");
        let (status, _, resp) = app.send(req).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{ctype}");
        assert_eq!(resp["error"], "invalid_request");
    }
    // Oversized body.
    let huge = json!({"id": "big", "display_name": "x".repeat(100_000)});
    let (status, _, _) = app
        .call(Method::POST, "/admin/v1/tenants", g, Some(huge))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let ids: Vec<String> = app
        .store
        .list_tenants(
            &portcullis_store::PageRequest::first(1_000),
            portcullis_store::ArchivedFilter::Include,
        )
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|t| t.item.id.to_string())
        .collect();
    assert_eq!(ids, ["system", "acme", "globex"], "nothing was created");

    // Duplicate.
    let (status, _, resp) = app
        .call(
            Method::POST,
            "/admin/v1/tenants",
            g,
            Some(json!({"id": "acme"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(resp["error"], "conflict");
    // The good path.
    let (status, _, resp) = app
        .call(
            Method::POST,
            "/admin/v1/tenants",
            g,
            Some(json!({"id": "initech", "display_name": "Initech"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(resp["id"], "initech");
    assert_eq!(resp["status"], "active");
    // Its built-in client of `portcullis login` came with it, and that is audited as the
    // system's doing.
    let cli = app
        .store
        .get_client("portcullis-cli-initech")
        .await
        .expect("read")
        .expect("the tenant's CLI client");
    assert_eq!(cli.tenant.as_str(), "initech");
    let events = app.audit("initech").await;
    assert!(
        events.iter().any(|e| {
            e.action == portcullis_core::audit::Action::OAuthClientCreate
                && e.target.as_deref() == Some("portcullis-cli-initech")
        }),
        "{events:?}"
    );
}

#[tokio::test]
async fn system_tenant_cannot_be_disabled_and_unknown_tenants_are_not_found() {
    let app = TestApp::new().await;
    let g = Some(app.global.as_str());
    let (status, _, _) = app
        .call(Method::POST, "/admin/v1/tenants/system/disable", g, None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    for (method, path) in [
        (Method::GET, "/admin/v1/tenants/nobody"),
        (Method::POST, "/admin/v1/tenants/nobody/disable"),
        (
            Method::DELETE,
            "/admin/v1/tenants/acme/admin-tokens/AAAAAAAAAAAA",
        ),
        (Method::GET, "/admin/v1/no-such-route"),
    ] {
        let (status, _, _) = app.call(method.clone(), path, g, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
    }
    for path in ["/admin/v1/tenants/NOT_A_SLUG", "/admin/v1/tenants/a%2Fb"] {
        let (status, _, _) = app.call(Method::GET, path, g, None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
    }
}

#[tokio::test]
async fn admin_tokens_are_shown_once_listed_without_secrets_and_revocable() {
    let app = TestApp::new().await;
    let (status, _, created) = app
        .call(
            Method::POST,
            "/admin/v1/tenants/acme/admin-tokens",
            Some(&app.acme),
            Some(json!({"name": "ci"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["role"], "tenant_admin");
    let token = created["token"].as_str().expect("token shown").to_owned();
    let id = created["id"].as_str().expect("id").to_owned();

    let (status, _, list) = app
        .call(
            Method::GET,
            "/admin/v1/tenants/acme/admin-tokens",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the new token works");
    let text = list.to_string();
    assert!(
        !text.contains(&token) && !text.contains(&app.acme),
        "secrets listed"
    );
    assert!(list["items"]
        .as_array()
        .expect("array")
        .iter()
        .all(|t| t.get("token").is_none()));

    // A token under the system tenant is a global admin, and only global admins can make one.
    let (status, _, made) = app
        .call(
            Method::POST,
            "/admin/v1/tenants/system/admin-tokens",
            Some(&app.global),
            Some(json!({"name": "ops"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(made["role"], "global_admin");

    let path = format!("/admin/v1/tenants/acme/admin-tokens/{id}");
    let (status, _, _) = app.call(Method::DELETE, &path, Some(&app.acme), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app.call(Method::DELETE, &path, Some(&app.acme), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "second revoke finds nothing");
    let (status, _, _) = app
        .call(Method::GET, "/admin/v1/tenants/acme", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked token refused");
}

#[tokio::test]
async fn audit_events_are_readable_per_tenant_with_time_filters() {
    let mut app = TestApp::new().await;
    let g = Some(app.global.as_str());
    app.call(Method::POST, "/admin/v1/tenants/acme/disable", g, None)
        .await;
    app.call(Method::POST, "/admin/v1/tenants/acme/enable", g, None)
        .await;
    // Flush the sink, then read through the API with a fresh writer-less app state.
    let events = app.audit("acme").await;
    let actions: Vec<_> = events.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["tenant.enable", "tenant.disable"]);
    assert!(
        events.iter().all(|e| e.request_id.is_some()),
        "request id recorded"
    );

    let (status, _, list) = app
        .call(
            Method::GET,
            "/admin/v1/tenants/acme/audit-events?since=1h&limit=10",
            Some(&app.acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().expect("array").len(), 2);
    let (status, _, list) = app
        .call(
            Method::GET,
            "/admin/v1/tenants/acme/audit-events?action=tenant.disable",
            Some(&app.acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().expect("array").len(), 1);
    let (status, _, list) = app
        .call(
            Method::GET,
            "/admin/v1/tenants/acme/audit-events?since=2100-01-01T00:00:00Z",
            Some(&app.acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!({"items": [], "next_cursor": null}));
    for bad in [
        "since=yesterday-ish",
        "limit=-1",
        "limit=0",
        "limit=1001",
        "limit=99999999999",
        "unknown=1",
        "cursor=",
        "cursor=not-a-cursor",
    ] {
        let (status, _, _) = app
            .call(
                Method::GET,
                &format!("/admin/v1/tenants/acme/audit-events?{bad}"),
                Some(&app.acme),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    }
}

#[tokio::test]
async fn health_readiness_and_request_ids() {
    let app = TestApp::new().await;
    let (status, headers, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ready");
    assert!(headers.contains_key("x-request-id"));
    let req = Request::builder()
        .uri("/healthz")
        .header("x-request-id", "client-chosen")
        .body(Body::empty())
        .expect("request");
    let (status, headers, _) = app.send(req).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(
        headers["x-request-id"], "client-chosen",
        "request ids are the server's own"
    );
}

/// Readiness follows the live signer the token endpoint signs with, not the keys loaded at
/// start: a node whose signer is gone cannot issue tokens and is not ready, and becomes ready
/// when one is installed (as rotation does).
#[tokio::test]
async fn readiness_follows_the_live_signer() {
    let app = TestApp::build(false).await;
    let (status, _, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["signing_keys"], false);
    assert_eq!(body["database"], true);
    app.oauth.set_signer(app.signer.clone());
    let (status, _, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["signing_keys"], true);
}

#[tokio::test]
async fn readiness_fails_when_the_database_is_gone() {
    let app = TestApp::new().await;
    app.store.close().await;
    let (status, _, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["database"], false);
}

/// Invariant 1: an internal error denies. With storage gone, a valid global admin gets a bare
/// `server_error` on every admin route, never a success and never a cause in the body.
#[tokio::test]
async fn a_storage_failure_denies_every_admin_route() {
    let app = TestApp::new().await;
    app.store.close().await;
    for (spec, _) in admin::routes() {
        let (status, _, body) = app
            .call(
                spec.method.clone(),
                &concrete(spec.path, "acme"),
                Some(&app.global),
                Some(json!({})),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{} {}",
            spec.method,
            spec.path
        );
        assert_eq!(
            body,
            json!({"error": "server_error"}),
            "{} {}",
            spec.method,
            spec.path
        );
    }
}

/// Whether `role`, held by a credential of `home`, may use route `spec` on the `{tenant}` `path`,
/// written from the roles' descriptions rather than from core's table, so the two check each
/// other.
fn role_may(role: AdminRole, home: &str, spec: &admin::RouteSpec, path: &str) -> bool {
    let installation_wide = home == "system";
    let reaches = match spec.scope {
        Scope::Global => installation_wide,
        Scope::Tenant => installation_wide || path == home,
    };
    let read = spec.method == Method::GET;
    let may = match role {
        AdminRole::GlobalAdmin => true,
        AdminRole::TenantAdmin => spec.scope == Scope::Tenant,
        AdminRole::Auditor => read,
        AdminRole::ApiKeyManager => {
            spec.path.starts_with("/tenants/{tenant}/api-keys")
                || (read && spec.path == "/tenants/{tenant}/api-key-policy")
                || (read && spec.path == "/tenants/{tenant}")
                || (read && spec.path == "/tenants/{tenant}/branding")
                || (read && spec.path == "/tenants/{tenant}/ca-sets")
                || (read && spec.path == "/tenants/{tenant}/oauth-policy")
                // The lifetime policy it works within (its API key half is the policy above).
                || (read && spec.path == "/tenants/{tenant}/lifetime-policy")
        }
        AdminRole::Service => false,
    };
    reaches && may
}

/// Walks the route registry for every role: each route answers 403 exactly where the role (and
/// the tenant its credential belongs to) does not allow it.
#[tokio::test]
async fn every_role_reaches_exactly_the_routes_its_permissions_allow() {
    let app = TestApp::new().await;
    let mut principals = vec![
        (AdminRole::GlobalAdmin, "system", app.global.clone()),
        (AdminRole::TenantAdmin, "acme", app.acme.clone()),
    ];
    for (role, home) in [
        (AdminRole::Auditor, "acme"),
        (AdminRole::ApiKeyManager, "acme"),
        (AdminRole::Service, "acme"),
        (AdminRole::Auditor, "system"),
        (AdminRole::Service, "system"),
    ] {
        principals.push((role, home, app.token(role, home).await));
    }
    let routes = admin::routes();
    let mut allowed_somewhere = std::collections::HashSet::new();
    for (role, home, token) in &principals {
        // A global admin is asked about globex only: acting on acme would disable the tenant
        // the other credentials belong to.
        let paths: &[&str] = if *home == "system" {
            &["globex"]
        } else {
            &["acme", "globex", "system"]
        };
        for (spec, _) in &routes {
            for path in paths {
                let label = format!(
                    "{} of {home}: {} {} on {path}",
                    role.as_str(),
                    spec.method,
                    spec.path
                );
                let (status, _, body) = app
                    .call(
                        spec.method.clone(),
                        &concrete(spec.path, path),
                        Some(token),
                        None,
                    )
                    .await;
                assert_ne!(status, StatusCode::UNAUTHORIZED, "{label}");
                if role_may(*role, home, spec, path) {
                    assert_ne!(status, StatusCode::FORBIDDEN, "{label}: refused");
                    allowed_somewhere.insert(role.as_str());
                } else {
                    assert_eq!(status, StatusCode::FORBIDDEN, "{label}: allowed");
                    assert_eq!(body, json!({"error": "insufficient_scope"}), "{label}");
                }
            }
        }
    }
    // Not "deny everything": every role but service reaches some admin route.
    for role in ["global_admin", "tenant_admin", "auditor", "api_key_manager"] {
        assert!(allowed_somewhere.contains(role), "{role} reached nothing");
    }
    assert!(!allowed_somewhere.contains("service"));
}

#[tokio::test]
async fn an_auditor_reads_audit_events_and_credentials_without_secrets_and_writes_nothing() {
    let app = TestApp::new().await;
    let auditor = app.token(AdminRole::Auditor, "acme").await;
    let a = Some(auditor.as_str());
    // Something to read.
    app.call(
        Method::POST,
        "/admin/v1/tenants/acme/clients",
        Some(&app.acme),
        Some(json!({"name": "web", "grant_types": ["client_credentials"]})),
    )
    .await;
    let (status, _, events) = app
        .call(Method::GET, "/admin/v1/tenants/acme/audit-events", a, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    assert!(events["items"].is_array(), "{events}");
    let (status, _, tokens) = app
        .call(Method::GET, "/admin/v1/tenants/acme/admin-tokens", a, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = tokens.to_string();
    assert!(
        !text.contains(&auditor) && !text.contains(&app.acme),
        "secrets listed"
    );
    assert!(text.contains("\"auditor\""), "roles listed: {text}");
    for (method, path) in [
        (Method::POST, "/admin/v1/tenants/acme/admin-tokens"),
        (Method::POST, "/admin/v1/tenants/acme/api-keys"),
        (Method::POST, "/admin/v1/tenants/acme/clients"),
    ] {
        let (status, _, _) = app
            .call(
                method,
                path,
                a,
                Some(json!({"name": "x", "role": "auditor"})),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    // Machines' endpoints are not the auditor's either.
    let (status, _, _) = app.call(Method::GET, "/v1/revocations", a, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = app
        .call(
            Method::POST,
            "/v1/api-keys/verify",
            a,
            Some(json!({"key": "pcl_key_live_x"})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// Creates an API key in `tenant` with the global admin and returns (id, key).
async fn api_key(app: &TestApp, tenant: &str) -> (String, String) {
    let (status, _, v) = app
        .call(
            Method::POST,
            &format!("/admin/v1/tenants/{tenant}/api-keys"),
            Some(&app.global),
            Some(json!({"name": "orders", "owner": "partner", "scopes": ["orders:read"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{v}");
    (
        v["id"].as_str().expect("id").to_owned(),
        v["key"].as_str().expect("key").to_owned(),
    )
}

#[tokio::test]
async fn a_service_credential_reads_the_feed_and_verifies_keys_of_its_tenant_only() {
    let app = TestApp::new().await;
    let acme_service = app.token(AdminRole::Service, "acme").await;
    let system_service = app.token(AdminRole::Service, "system").await;
    let (acme_id, acme_key) = api_key(&app, "acme").await;
    let (globex_id, globex_key) = api_key(&app, "globex").await;

    let verify = |token: &str, body: Value| {
        let (app, token) = (&app, token.to_owned());
        async move {
            app.call(
                Method::POST,
                "/v1/api-keys/verify",
                Some(&token),
                Some(body),
            )
            .await
        }
    };
    let (status, _, v) = verify(&acme_service, json!({"key": acme_key})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(
        (v["valid"].clone(), v["active"].clone(), v["key_id"].clone()),
        (json!(true), json!(true), json!(acme_id))
    );
    let (status, _, _) = verify(
        &acme_service,
        json!({"key": globex_key, "tenant": "globex"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another tenant's keys");
    // Asked about its own tenant, the answer about another tenant's key is a refused key.
    let (status, _, v) = verify(&acme_service, json!({"key": globex_key})).await;
    assert_eq!(
        (status, v),
        (StatusCode::OK, json!({"valid": false})),
        "an acme service verifies acme keys only"
    );
    // A system-tenant service credential serves every tenant.
    let (status, _, v) = verify(&system_service, json!({"key": globex_key})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["tenant"], "globex");

    for (tenant, id) in [("acme", &acme_id), ("globex", &globex_id)] {
        let (status, _, _) = app
            .call(
                Method::POST,
                &format!("/admin/v1/tenants/{tenant}/api-keys/{id}/revoke"),
                Some(&app.global),
                None,
            )
            .await;
        assert!(status.is_success(), "{status}");
    }
    let feed_tenants = |token: String| {
        let app = &app;
        async move {
            let (status, _, v) = app
                .call(Method::GET, "/v1/revocations?after=0", Some(&token), None)
                .await;
            assert_eq!(status, StatusCode::OK, "{v}");
            let mut tenants: Vec<String> = v["entries"]
                .as_array()
                .expect("entries")
                .iter()
                .filter(|e| e["kind"] != "signing_key")
                .map(|e| e["tenant"].as_str().expect("tenant").to_owned())
                .collect();
            tenants.sort();
            tenants.dedup();
            tenants
        }
    };
    assert_eq!(feed_tenants(acme_service.clone()).await, ["acme"]);
    assert_eq!(
        feed_tenants(system_service.clone()).await,
        ["acme", "globex"]
    );
}

#[tokio::test]
async fn a_service_credential_is_refused_on_every_admin_action_and_changes_nothing() {
    let mut app = TestApp::new().await;
    for home in ["acme", "system"] {
        let service = app.token(AdminRole::Service, home).await;
        let s = Some(service.as_str());
        let tenant = if home == "system" { "acme" } else { home };
        let tries = [
            (
                Method::POST,
                "/admin/v1/tenants".to_owned(),
                json!({"id": "initech", "display_name": "Initech"}),
            ),
            (
                Method::GET,
                format!("/admin/v1/tenants/{tenant}/clients"),
                Value::Null,
            ),
            (
                Method::GET,
                format!("/admin/v1/tenants/{tenant}/audit-events"),
                Value::Null,
            ),
            (
                Method::POST,
                format!("/admin/v1/tenants/{home}/admin-tokens"),
                json!({"name": "more", "role": "service"}),
            ),
        ];
        for (method, path, body) in tries {
            let body = (!body.is_null()).then_some(body);
            let (status, _, v) = app.call(method.clone(), &path, s, body).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{home}: {method} {path}");
            assert_eq!(v, json!({"error": "insufficient_scope"}));
        }
    }
    assert!(app
        .store
        .get_tenant(&tid("initech"))
        .await
        .expect("get")
        .is_none());
    for tenant in ["acme", "system"] {
        let roles: Vec<_> = app
            .store
            .list_admin_credentials(&tid(tenant), &portcullis_store::PageRequest::first(1_000))
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|c| c.role)
            .collect();
        assert_eq!(
            roles.iter().filter(|r| **r == AdminRole::Service).count(),
            1,
            "{tenant}: only the test's own service credential"
        );
    }
    let denials: Vec<_> = app
        .audit("acme")
        .await
        .into_iter()
        .filter(|e| e.action == "admin.authorize")
        .filter_map(|e| e.reason.map(String::from))
        .collect();
    assert!(
        denials.contains(&"role_lacks_permission".to_owned()),
        "{denials:?}"
    );
}

#[tokio::test]
async fn admin_token_roles_are_chosen_within_the_creators_own_powers() {
    let app = TestApp::new().await;
    let create = |token: String, tenant: &'static str, body: Value| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                &format!("/admin/v1/tenants/{tenant}/admin-tokens"),
                Some(&token),
                Some(body),
            )
            .await
        }
    };
    let count = |tenant: &'static str| {
        let app = &app;
        async move {
            app.store
                .list_admin_credentials(&tid(tenant), &portcullis_store::PageRequest::first(1_000))
                .await
                .expect("list")
                .items
                .len()
        }
    };

    // A tenant admin creates every role up to its own, in its own tenant; each works.
    for role in ["tenant_admin", "auditor", "api_key_manager", "service"] {
        let (status, _, made) = create(
            app.acme.clone(),
            "acme",
            json!({"name": role, "role": role}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{role}: {made}");
        assert_eq!(made["role"], role);
        assert_eq!(made["tenant"], "acme");
    }
    let (_, _, made) = create(
        app.acme.clone(),
        "acme",
        json!({"name": "svc", "role": "service"}),
    )
    .await;
    let service = made["token"].as_str().expect("token").to_owned();
    let (status, _, _) = app
        .call(Method::GET, "/v1/revocations", Some(&service), None)
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the new service credential reads the feed"
    );
    let (status, _, _) = app
        .call(Method::GET, "/admin/v1/tenants/acme", Some(&service), None)
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "and nothing of the admin API"
    );

    let before = (
        count("acme").await,
        count("globex").await,
        count("system").await,
    );
    // Refusals: escalation, other tenants, the system tenant, and roles that create nothing.
    let mut refusals = vec![
        (app.acme.clone(), "acme", "global_admin"),
        (app.acme.clone(), "globex", "tenant_admin"),
        (app.acme.clone(), "globex", "service"),
        (app.acme.clone(), "system", "service"),
        (app.acme.clone(), "system", "global_admin"),
    ];
    for weak in [
        AdminRole::ApiKeyManager,
        AdminRole::Auditor,
        AdminRole::Service,
    ] {
        let token = app.token(weak, "acme").await;
        for role in ["tenant_admin", "auditor", "api_key_manager", "service"] {
            refusals.push((token.clone(), "acme", role));
        }
    }
    for weak in [AdminRole::Auditor, AdminRole::Service] {
        let token = app.token(weak, "system").await;
        for (tenant, role) in [
            ("system", "global_admin"),
            ("system", "service"),
            ("acme", "tenant_admin"),
        ] {
            refusals.push((token.clone(), tenant, role));
        }
    }
    let before = (before.0 + 3, before.1, before.2 + 2);
    for (token, tenant, role) in refusals {
        let (status, _, v) = create(token, tenant, json!({"name": "x", "role": role})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role} in {tenant}: {v}");
        assert_eq!(v, json!({"error": "insufficient_scope"}));
    }
    assert_eq!(
        (
            count("acme").await,
            count("globex").await,
            count("system").await
        ),
        before,
        "nothing created on refusal"
    );

    // Only a global admin creates system-tenant credentials, and only roles that exist there.
    for role in ["global_admin", "auditor", "service"] {
        let (status, _, made) = create(
            app.global.clone(),
            "system",
            json!({"name": role, "role": role}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{role}: {made}");
        assert_eq!(made["role"], role);
    }
    let before = (count("acme").await, count("system").await);
    for (tenant, role) in [
        ("system", "tenant_admin"),
        ("system", "api_key_manager"),
        ("acme", "global_admin"),
    ] {
        let (status, _, v) = create(
            app.global.clone(),
            tenant,
            json!({"name": "x", "role": role}),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{role} in {tenant}: {v}");
        assert_eq!(v["error"], "invalid_request");
    }
    // Unknown roles are bad input, whoever asks.
    for role in [
        json!("root"),
        json!(""),
        json!("Service"),
        json!(7),
        json!(null),
    ] {
        let (status, _, v) =
            create(app.acme.clone(), "acme", json!({"name": "x", "role": role})).await;
        if role.is_null() {
            assert_eq!(status, StatusCode::CREATED, "null is the default role");
            assert_eq!(v["role"], "tenant_admin");
            continue;
        }
        assert_eq!(status, StatusCode::BAD_REQUEST, "{role}: {v}");
        assert_eq!(v["error"], "invalid_request");
    }
    assert_eq!(
        (count("acme").await, count("system").await),
        (before.0 + 1, before.1),
        "nothing created on bad input"
    );
}

/// The checked-in `docs/openapi.json` is the document the code generates, byte for byte: a
/// change to a handler's shape that is not written back fails here.
#[test]
fn the_checked_in_openapi_document_is_the_generated_one() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json");
    let generated = portcullis_http::openapi::document_json();
    if std::env::var_os("PORTCULLIS_BLESS").is_some() {
        std::fs::write(&path, &generated).expect("write docs/openapi.json");
        return;
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == generated,
        "docs/openapi.json differs from the document the code generates; regenerate it with \
         `PORTCULLIS_BLESS=1 cargo test -p portcullis-server --test it admin_api::the_checked_in_openapi` and \
         commit the result"
    );
}

/// Every route of the admin registry is in the document with its method, and the document lists
/// no admin operation the registry lacks.
#[test]
fn the_openapi_document_covers_exactly_the_admin_route_registry() {
    let doc = serde_json::to_value(portcullis_http::openapi::document()).expect("json");
    let mut documented = std::collections::BTreeSet::new();
    let mut operation_ids = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if let Some(id) = item.get(method).and_then(|op| op["operationId"].as_str()) {
                assert!(
                    operation_ids.insert(id.to_owned()),
                    "operationId {id} is not unique"
                );
            }
            if item.get(method).is_some() && path.starts_with(admin::PREFIX) {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let registered: std::collections::BTreeSet<_> = admin::routes()
        .into_iter()
        .map(|(spec, _)| {
            (
                spec.method.to_string(),
                format!("{}{}", admin::PREFIX, spec.path),
            )
        })
        .collect();
    let missing: Vec<_> = registered.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&registered).collect();
    assert!(
        missing.is_empty(),
        "admin routes missing from the OpenAPI document: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "documented admin operations no route serves: {extra:?}"
    );
    // Admin operations need the bearer scheme; the document says so once, at the top.
    assert_eq!(doc["security"][0]["admin_token"], json!([]));
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["openapi"], "3.1.0");
}

/// `serve` answers `GET /v1/openapi.json` without a credential, with the generated document.
#[tokio::test]
async fn the_openapi_document_is_served_without_a_credential() {
    let app = TestApp::new().await;
    let req = Request::builder()
        .uri(portcullis_http::openapi::PATH)
        .body(Body::empty())
        .expect("request");
    let resp = app.router.clone().oneshot(req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "application/json");
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    assert_eq!(
        std::str::from_utf8(&bytes).expect("utf-8"),
        portcullis_http::openapi::document_json()
    );
}

/// Reads a list page by page (`limit` rows each) through the API, following `next_cursor`.
async fn pages(app: &TestApp, path: &str, token: &str, limit: u32) -> Vec<Value> {
    let mut rows = Vec::new();
    let mut cursor: Option<String> = None;
    let sep = if path.contains('?') { '&' } else { '?' };
    for _ in 0..1_000 {
        let mut uri = format!("{path}{sep}limit={limit}");
        if let Some(c) = &cursor {
            uri.push_str(&format!("&cursor={c}"));
        }
        let (status, _, v) = app.call(Method::GET, &uri, Some(token), None).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {v}");
        let items = v["items"].as_array().expect("items");
        assert!(items.len() <= limit as usize, "{uri}");
        rows.extend(items.iter().cloned());
        match v["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return rows,
        }
    }
    panic!("{path}: the cursors never end");
}

/// Every admin list pages with one shape (`items`, `next_cursor`): read one row at a time it
/// gives exactly the rows of one big page, in the same order. Rows created at the same instant
/// (this app's clock stands still) are ordered by id, so no row repeats or goes missing.
#[tokio::test]
async fn every_admin_list_pages_through_all_its_rows_with_cursors() {
    let mut app = TestApp::new().await;
    let acme = app.acme.clone();
    let a = Some(acme.as_str());
    for aud in ["api-one", "api-two"] {
        let (s, _, v) = app
            .call(
                Method::POST,
                "/admin/v1/tenants/acme/resource-servers",
                a,
                Some(json!({"audience": aud, "scopes": ["x:read"]})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    for (path, body) in [
        ("clients", json!({"name": "c1", "audiences": ["api-one"]})),
        ("clients", json!({"name": "c2", "audiences": ["api-two"]})),
        ("clients", json!({"name": "c3", "audiences": ["api-two"]})),
        ("api-keys", json!({"name": "k1", "owner": "o"})),
        ("api-keys", json!({"name": "k2", "owner": "o"})),
        ("api-keys", json!({"name": "k3", "owner": "p"})),
        ("admin-tokens", json!({"name": "more", "role": "auditor"})),
    ] {
        let (s, _, v) = app
            .call(
                Method::POST,
                &format!("/admin/v1/tenants/acme/{path}"),
                a,
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{path}: {v}");
    }
    for (name, password) in [
        ("ann", None),
        ("bea", Some("velvet orbit lantern quiz 42")),
        ("cid", None),
    ] {
        let (s, v) = app
            .create_user(
                &acme,
                "acme",
                json!({"username": name, "password": password, "send_invite": false}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{name}: {v}");
    }
    // Flushes the audit log and stops it, so the audit list does not grow while it is read.
    assert!(app.audit("acme").await.len() >= 9);
    let lists = [
        ("/admin/v1/tenants", app.global.as_str(), 3),
        ("/admin/v1/signing-keys", app.global.as_str(), 1),
        ("/admin/v1/tenants/acme/clients", app.acme.as_str(), 3),
        (
            "/admin/v1/tenants/acme/resource-servers",
            app.acme.as_str(),
            2,
        ),
        ("/admin/v1/tenants/acme/api-keys", app.acme.as_str(), 3),
        (
            "/admin/v1/tenants/acme/api-keys?owner=o",
            app.acme.as_str(),
            2,
        ),
        ("/admin/v1/tenants/acme/admin-tokens", app.acme.as_str(), 2),
        ("/admin/v1/tenants/acme/audit-events", app.acme.as_str(), 9),
        ("/admin/v1/tenants/acme/users", app.acme.as_str(), 3),
        (
            "/admin/v1/tenants/acme/users?status=invited",
            app.acme.as_str(),
            2,
        ),
        ("/admin/v1/tenants/acme/users?q=B", app.acme.as_str(), 1),
    ];
    for (path, token, at_least) in lists {
        let whole = pages(&app, path, token, 1_000).await;
        assert!(whole.len() >= at_least, "{path}: {}", whole.len());
        let one_by_one = pages(&app, path, token, 1).await;
        assert_eq!(one_by_one, whole, "{path}");
        let by_two = pages(&app, path, token, 2).await;
        assert_eq!(by_two, whole, "{path}");
    }
}

/// A cursor is only good for the list that issued it, unchanged: edited, truncated, from
/// another list or another tenant, it is a 400 `invalid_request` (never a 500, never another
/// tenant's rows); so are limits outside 1..=1000.
#[tokio::test]
async fn bad_cursors_and_limits_are_invalid_requests() {
    let app = TestApp::new().await;
    for name in ["a", "b"] {
        for tenant in ["acme", "globex"] {
            let (s, _, _) = app
                .call(
                    Method::POST,
                    &format!("/admin/v1/tenants/{tenant}/api-keys"),
                    Some(&app.global),
                    Some(json!({"name": name, "owner": "o"})),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED);
        }
    }
    let (_, _, v) = app
        .call(
            Method::GET,
            "/admin/v1/tenants/acme/api-keys?limit=1",
            Some(&app.global),
            None,
        )
        .await;
    let cursor = v["next_cursor"].as_str().expect("a second page").to_owned();
    let mut edited = cursor.clone().into_bytes();
    let i = edited.len() / 2;
    edited[i] = if edited[i] == b'A' { b'B' } else { b'A' };
    let edited = String::from_utf8(edited).expect("ascii");
    let bad = [
        format!("/admin/v1/tenants/acme/api-keys?cursor={edited}"),
        format!(
            "/admin/v1/tenants/acme/api-keys?cursor={}",
            &cursor[..cursor.len() - 3]
        ),
        format!("/admin/v1/tenants/acme/api-keys?cursor={cursor}x"),
        // Another tenant's list, another list of the same tenant.
        format!("/admin/v1/tenants/globex/api-keys?cursor={cursor}"),
        format!("/admin/v1/tenants/acme/clients?cursor={cursor}"),
        format!("/admin/v1/tenants/acme/audit-events?cursor={cursor}"),
        format!("/admin/v1/tenants/acme/users?cursor={cursor}"),
        format!("/admin/v1/tenants?cursor={cursor}"),
        format!("/admin/v1/tenants/acme/api-keys?cursor={}", "A".repeat(600)),
        "/admin/v1/tenants/acme/api-keys?cursor=%00%FF".to_owned(),
        "/admin/v1/tenants/acme/api-keys?limit=0".to_owned(),
        "/admin/v1/tenants/acme/api-keys?limit=1001".to_owned(),
        "/admin/v1/tenants/acme/api-keys?limit=18446744073709551616".to_owned(),
        "/admin/v1/tenants/acme/api-keys?limit=two".to_owned(),
        "/admin/v1/tenants/acme/api-keys?limit=1&limit=2".to_owned(),
        "/admin/v1/signing-keys?limit=0".to_owned(),
        "/admin/v1/tenants/acme/users?limit=0".to_owned(),
        "/admin/v1/tenants/acme/users?limit=1001".to_owned(),
        "/admin/v1/tenants/acme/users?status=invited&limit=1&limit=2".to_owned(),
        "/admin/v1/tenants/acme/clients?include_archived=maybe".to_owned(),
    ];
    for uri in bad {
        let (status, _, body) = app.call(Method::GET, &uri, Some(&app.global), None).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
        assert_eq!(body["error"], "invalid_request", "{uri}");
    }
    // The untouched cursor works, and the page it gives is acme's.
    let (status, _, v) = app
        .call(
            Method::GET,
            &format!("/admin/v1/tenants/acme/api-keys?limit=1&cursor={cursor}"),
            Some(&app.global),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["tenant"], "acme", "{v}");
    assert_eq!(v["next_cursor"], Value::Null);
    // A tenant admin cannot read another tenant's list with a cursor either.
    let (status, _, _) = app
        .call(
            Method::GET,
            &format!("/admin/v1/tenants/acme/api-keys?cursor={cursor}"),
            Some(&app.globex),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

// ---------------------------------------------------------------------------------------------
// Users (issue 16 items 1 and 2)

impl TestApp {
    fn outbox(&self) -> Vec<String> {
        let dir = self._dir.path().join("outbox");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| d.map(|e| e.expect("entry").path()).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .map(|f| quoted_printable_decoded(&std::fs::read_to_string(f).expect("read mail")))
            .collect()
    }

    /// Waits (bounded) until the outbox holds `n` messages; the reset trigger mails from a
    /// background task.
    async fn outbox_with(&self, n: usize) -> Vec<String> {
        for _ in 0..200 {
            let mails = self.outbox();
            if mails.len() >= n {
                return mails;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        self.outbox()
    }

    async fn create_user(&self, token: &str, tenant: &str, body: Value) -> (StatusCode, Value) {
        let (status, _, body) = self
            .call(
                Method::POST,
                &format!("/admin/v1/tenants/{tenant}/users"),
                Some(token),
                Some(body),
            )
            .await;
        (status, body)
    }
}

/// A mail as its reader sees it: quoted-printable soft breaks removed and `=XX` decoded.
fn quoted_printable_decoded(raw: &str) -> String {
    let joined = raw.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() && joined.is_char_boundary(i + 3) {
            if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The one-time token in a mailed link (quoted-printable may wrap long lines; the token is
/// short enough not to be split, but undo soft breaks anyway).
fn token_in(mail: &str) -> portcullis_core::user::OneTimeToken {
    let text = mail;
    let at = text.find("token=pcl_ut_").expect("a link with a token") + "token=".len();
    let token: String = text[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    portcullis_core::user::OneTimeToken::parse(&token).expect("a well-formed token")
}

const STRONG: &str = "velvet orbit lantern quiz 42";

#[tokio::test]
async fn users_are_created_shown_updated_disabled_enabled_and_deleted() {
    let mut app = TestApp::new().await;
    let (status, alice) = app
        .create_user(
            &app.acme,
            "acme",
            json!({"username": "Alice", "email": "Alice@Example.com", "password": STRONG,
                   "profile": {"name": "Alice A", "locale": "en"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{alice}");
    assert_eq!(alice["status"], "active");
    assert_eq!(alice["has_password"], true);
    assert_eq!(alice["profile"]["name"], "Alice A");
    assert!(alice.get("password_hash").is_none() && !alice.to_string().contains("argon2"));
    let id = alice["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("usr_") && id.len() == 30, "{id}");
    let stored = app
        .store
        .get_user(
            &tid("acme"),
            &portcullis_core::user::UserId::parse(&id).expect("id"),
        )
        .await
        .expect("get")
        .expect("stored");
    assert!(stored
        .password_hash
        .as_deref()
        .is_some_and(|h| h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$")));

    let path = format!("/admin/v1/tenants/acme/users/{id}");
    let (status, _, shown) = app.call(Method::GET, &path, Some(&app.acme), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["username"], "Alice");

    let (status, _, updated) = app
        .call(
            Method::PATCH,
            &path,
            Some(&app.acme),
            Some(json!({"email": "alice@new.example", "profile": {"given_name": "Alice"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["email"], "alice@new.example");
    assert_eq!(updated["email_verified"], false);
    assert_eq!(updated["profile"], json!({"given_name": "Alice"}));

    let (status, _, disabled) = app
        .call(
            Method::POST,
            &format!("{path}/disable"),
            Some(&app.acme),
            None,
        )
        .await;
    assert_eq!(
        (status, &disabled["status"]),
        (StatusCode::OK, &json!("disabled"))
    );
    let (status, _, enabled) = app
        .call(
            Method::POST,
            &format!("{path}/enable"),
            Some(&app.acme),
            None,
        )
        .await;
    assert_eq!(
        (status, &enabled["status"]),
        (StatusCode::OK, &json!("active"))
    );

    let (status, _, _) = app.call(Method::DELETE, &path, Some(&app.acme), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app.call(Method::GET, &path, Some(&app.acme), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = app.call(Method::DELETE, &path, Some(&app.acme), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let actions: Vec<String> = app
        .audit("acme")
        .await
        .iter()
        .filter(|e| e.target.as_deref() == Some(id.as_str()))
        .map(|e| e.action.as_str().to_owned())
        .collect();
    for want in [
        "user.create",
        "user.update",
        "user.disable",
        "user.enable",
        "user.delete",
    ] {
        assert!(actions.iter().any(|a| a == want), "{want} in {actions:?}");
    }
}

#[tokio::test]
async fn bad_user_input_is_a_4xx_and_changes_nothing() {
    let app = TestApp::new().await;
    let (status, _) = app
        .create_user(
            &app.acme,
            "acme",
            json!({"username": "bob", "email": "b@example.com", "password": STRONG}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let cases = [
        (
            json!({"username": "BOB", "email": "other@example.com", "send_invite": false}),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            json!({"username": "robert", "email": "B@EXAMPLE.COM", "send_invite": false}),
            StatusCode::CONFLICT,
            "conflict",
        ),
        (
            json!({"username": "carol", "email": "not-an-email"}),
            StatusCode::BAD_REQUEST,
            "email",
        ),
        (
            json!({"username": "has space"}),
            StatusCode::BAD_REQUEST,
            "username",
        ),
        (
            json!({"username": "carol", "password": "short1!"}),
            StatusCode::BAD_REQUEST,
            "password_too_short",
        ),
        (
            json!({"username": "carol", "password": "password1234"}),
            StatusCode::BAD_REQUEST,
            "password_too_weak",
        ),
        (
            json!({"username": "carolina", "password": "carolina-velvet-orbit-42"}),
            StatusCode::BAD_REQUEST,
            "password_contains_username",
        ),
        (
            json!({"username": "carol"}),
            StatusCode::BAD_REQUEST,
            "invitation needs an email",
        ),
        (
            json!({"username": "carol", "profile": {"picture": "javascript:alert(1)"}, "send_invite": false}),
            StatusCode::BAD_REQUEST,
            "picture",
        ),
        (
            json!({"username": "carol", "role": "admin"}),
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
    ];
    for (body, want, says) in cases {
        let (status, answer) = app.create_user(&app.acme, "acme", body.clone()).await;
        assert_eq!(status, want, "{body} -> {answer}");
        assert!(answer.to_string().contains(says), "{body} -> {answer}");
    }
    let (status, _, page) = app
        .call(
            Method::GET,
            "/admin/v1/tenants/acme/users",
            Some(&app.acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        page["items"].as_array().expect("items").len(),
        1,
        "nothing created"
    );
    // The same username in another tenant is fine.
    let (status, _) = app
        .create_user(
            &app.globex,
            "globex",
            json!({"username": "bob", "email": "b@example.com", "send_invite": false}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    // Updating to a taken name is a conflict.
    let (_, carol) = app
        .create_user(
            &app.acme,
            "acme",
            json!({"username": "carol", "send_invite": false}),
        )
        .await;
    let (status, _, _) = app
        .call(
            Method::PATCH,
            &format!(
                "/admin/v1/tenants/acme/users/{}",
                carol["id"].as_str().expect("id")
            ),
            Some(&app.acme),
            Some(json!({"username": "Bob"})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    for bad_id in ["nope", "usr_", "usr_01aaaaaaaaaaaaaaaaaaaaaaaa"] {
        let (status, _, _) = app
            .call(
                Method::GET,
                &format!("/admin/v1/tenants/acme/users/{bad_id}"),
                Some(&app.acme),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad_id}");
    }
}

#[tokio::test]
async fn a_tenant_admin_cannot_see_or_touch_another_tenants_users_and_weak_roles_are_refused() {
    let app = TestApp::new().await;
    let (_, bob) = app
        .create_user(
            &app.globex,
            "globex",
            json!({"username": "bob", "send_invite": false}),
        )
        .await;
    let bob_id = bob["id"].as_str().expect("id").to_owned();
    // Through the other tenant's path: forbidden.
    let (status, _, _) = app
        .call(
            Method::GET,
            &format!("/admin/v1/tenants/globex/users/{bob_id}"),
            Some(&app.acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // Through its own path with the other tenant's user id: not found, and nothing changes.
    for (method, suffix) in [
        (Method::GET, ""),
        (Method::DELETE, ""),
        (Method::POST, "/disable"),
        (Method::POST, "/invite"),
    ] {
        let (status, _, _) = app
            .call(
                method.clone(),
                &format!("/admin/v1/tenants/acme/users/{bob_id}{suffix}"),
                Some(&app.acme),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {suffix}");
    }
    let (status, _, shown) = app
        .call(
            Method::GET,
            &format!("/admin/v1/tenants/globex/users/{bob_id}"),
            Some(&app.globex),
            None,
        )
        .await;
    assert_eq!(
        (status, &shown["status"]),
        (StatusCode::OK, &json!("invited"))
    );

    // An auditor reads but does not write; an API key manager and a service do neither.
    let auditor = app.token(AdminRole::Auditor, "globex").await;
    let (status, _, _) = app
        .call(
            Method::GET,
            "/admin/v1/tenants/globex/users",
            Some(&auditor),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .create_user(
            &auditor,
            "globex",
            json!({"username": "eve", "send_invite": false}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    for role in [AdminRole::ApiKeyManager, AdminRole::Service] {
        let t = app.token(role, "globex").await;
        let (status, _, _) = app
            .call(
                Method::GET,
                "/admin/v1/tenants/globex/users",
                Some(&t),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role:?}");
    }
}

/// The users list pages like every admin list (`items`, `next_cursor`, a cursor bound to this
/// tenant's users list, limits 1..=1000) with its own filters beside the paging.
#[tokio::test]
async fn listing_users_pages_by_the_shared_cursor_with_filters_and_refuses_bad_cursors() {
    let app = TestApp::new().await;
    for tenant in ["acme", "globex"] {
        let token = if tenant == "acme" {
            &app.acme
        } else {
            &app.globex
        };
        for i in 0..5 {
            let (status, _) = app
                .create_user(
                    token,
                    tenant,
                    json!({"username": format!("user{i}"), "email": format!("u{i}@example.com"), "send_invite": false}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED);
        }
    }
    let list = |query: String| {
        let app = &app;
        async move {
            app.call(
                Method::GET,
                &format!("/admin/v1/tenants/acme/users{query}"),
                Some(&app.acme),
                None,
            )
            .await
        }
    };
    let items = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .map(|u| u["id"].as_str().expect("id").to_owned())
            .collect()
    };
    // The manual clock stands still: same creation time, so the id orders the page.
    let (status, _, whole) = list(String::new()).await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    assert_eq!(whole["next_cursor"], Value::Null, "{whole}");
    let all = items(&whole);
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, all, "five users, each once, by (created_at, id)");
    assert_eq!(all.len(), 5);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut last_cursor = String::new();
    loop {
        let q = match &cursor {
            Some(c) => format!("?limit=2&cursor={c}"),
            None => "?limit=2".into(),
        };
        let (status, _, page) = list(q).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(
            page.get("users").is_none(),
            "one shape for every list: {page}"
        );
        seen.extend(items(&page));
        match page["next_cursor"].as_str() {
            Some(c) => {
                last_cursor = c.to_owned();
                cursor = Some(c.to_owned());
            }
            None => break,
        }
    }
    assert_eq!(seen, all);

    let (_, _, one) = list("?q=USER3".into()).await;
    assert_eq!(items(&one).len(), 1);
    let (_, _, by_mail) = list("?q=u4%40".into()).await;
    assert_eq!(items(&by_mail).len(), 1);
    let (_, _, invited) = list("?status=invited".into()).await;
    assert_eq!(items(&invited).len(), 5);
    let (_, _, active) = list("?status=active".into()).await;
    assert_eq!(items(&active).len(), 0);
    // Filters and paging together.
    let (status, _, first) = list("?status=invited&q=user&limit=3".into()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(items(&first), all[..3]);
    let c = first["next_cursor"].as_str().expect("a second page");
    let (_, _, rest) = list(format!("?status=invited&q=user&limit=3&cursor={c}")).await;
    assert_eq!(items(&rest), all[3..]);

    // The users-only cursor of before (`u1:<id>` in base64) is gone: like any foreign cursor,
    // it is refused; so are a huge limit and a cursor from another list.
    let (_, _, tenants) = app
        .call(
            Method::GET,
            "/admin/v1/tenants?limit=1",
            Some(&app.global),
            None,
        )
        .await;
    let other_list = tenants["next_cursor"]
        .as_str()
        .expect("two tenants")
        .to_owned();
    let bad = [
        "?cursor=garbage!".to_owned(),
        "?cursor=dTE6bm90LWFuLWlk".to_owned(),
        "?cursor=dTE6dXNyXzAxYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh".to_owned(),
        format!("?cursor={last_cursor}x"),
        "?limit=0".to_owned(),
        "?limit=-1".to_owned(),
        "?limit=100000".to_owned(),
        "?status=sleeping".to_owned(),
        "?unknown=1".to_owned(),
        format!("?cursor={other_list}"),
    ];
    for bad in bad {
        let (status, _, body) = list(bad.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"], "invalid_request", "{bad}");
    }
    // Acme's cursor on globex's list (as the global admin, who may read both) is refused too.
    let (status, _, body) = app
        .call(
            Method::GET,
            &format!("/admin/v1/tenants/globex/users?cursor={last_cursor}"),
            Some(&app.global),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_request");
}

#[tokio::test]
async fn invitations_mail_a_single_use_link_that_never_appears_in_answers_or_audit() {
    let mut app = TestApp::new().await;
    let (status, created) = app
        .create_user(
            &app.acme,
            "acme",
            json!({"username": "dora", "email": "dora@example.com"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "invited");
    assert!(created["invite_expires_at"].is_string());
    assert!(!created.to_string().contains("pcl_ut_"));
    let mails = app.outbox_with(1).await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("To: dora@example.com"), "{}", mails[0]);
    assert!(
        mails[0].contains("/account/acme/invite?token="),
        "{}",
        mails[0]
    );
    let first = token_in(&mails[0]);

    // Sending again replaces the link: the first stops working.
    let id = created["id"].as_str().expect("id").to_owned();
    let (status, _, sent) = app
        .call(
            Method::POST,
            &format!("/admin/v1/tenants/acme/users/{id}/invite"),
            Some(&app.acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{sent}");
    assert!(!sent.to_string().contains("pcl_ut_"));
    let mails = app.outbox_with(2).await;
    let second = token_in(&mails[1]);
    let now = app.clock.now();
    use portcullis_core::user::TokenPurpose;
    assert!(app
        .store
        .consume_user_token(&first.digest(), TokenPurpose::Invite, now)
        .await
        .expect("consume")
        .is_none());
    // Not for another purpose, then once, then never again.
    assert!(app
        .store
        .consume_user_token(&second.digest(), TokenPurpose::PasswordReset, now)
        .await
        .expect("consume")
        .is_none());
    assert!(app
        .store
        .consume_user_token(&second.digest(), TokenPurpose::Invite, now)
        .await
        .expect("consume")
        .is_some());
    assert!(app
        .store
        .consume_user_token(&second.digest(), TokenPurpose::Invite, now)
        .await
        .expect("consume")
        .is_none());

    // A third link, consumed after its week: expired.
    app.call(
        Method::POST,
        &format!("/admin/v1/tenants/acme/users/{id}/invite"),
        Some(&app.acme),
        None,
    )
    .await;
    let third = token_in(&app.outbox_with(3).await[2]);
    let late = now.saturating_add(std::time::Duration::from_secs(7 * 24 * 3600 + 1));
    assert!(app
        .store
        .consume_user_token(&third.digest(), TokenPurpose::Invite, late)
        .await
        .expect("consume")
        .is_none());

    // An active user is not invited; a user without email cannot be.
    let (_, active) = app
        .create_user(
            &app.acme,
            "acme",
            json!({"username": "erin", "email": "erin@example.com", "password": STRONG}),
        )
        .await;
    let (status, _, _) = app
        .call(
            Method::POST,
            &format!(
                "/admin/v1/tenants/acme/users/{}/invite",
                active["id"].as_str().expect("id")
            ),
            Some(&app.acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let events = app.audit("acme").await;
    assert!(events.iter().any(|e| e.action == "user.invite"));
    let all = serde_json::to_string(&events).expect("json");
    assert!(!all.contains("pcl_ut_"), "no link in the audit log");
}

#[tokio::test]
async fn the_reset_trigger_answers_the_same_with_or_without_an_account() {
    let mut app = TestApp::new().await;
    app.create_user(
        &app.acme,
        "acme",
        json!({"username": "fay", "email": "fay@example.com", "password": STRONG}),
    )
    .await;
    let reset = |email: &'static str| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                "/admin/v1/tenants/acme/users/reset-password",
                Some(&app.acme),
                Some(json!({"email": email})),
            )
            .await
        }
    };
    let (s1, h1, b1) = reset("FAY@example.com").await;
    let (s2, h2, b2) = reset("nobody@example.com").await;
    assert_eq!(
        (s1, &b1),
        (StatusCode::ACCEPTED, &json!({"status": "accepted"}))
    );
    assert_eq!((s1, &b1), (s2, &b2));
    assert_eq!(
        h1.get(header::CONTENT_LENGTH),
        h2.get(header::CONTENT_LENGTH)
    );
    let mails = app.outbox_with(1).await;
    // Give a wrongly sent second mail the chance to appear before counting.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mails_after = app.outbox();
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails_after.len(),
        1,
        "no mail for an address without an account"
    );
    assert!(mails[0].contains("To: fay@example.com"));
    assert!(mails[0].contains("/account/acme/reset?token="));
    let token = token_in(&mails[0]);
    assert!(app
        .store
        .consume_user_token(
            &token.digest(),
            portcullis_core::user::TokenPurpose::PasswordReset,
            app.clock.now()
        )
        .await
        .expect("consume")
        .is_some());
    // A malformed address is refused for everyone alike.
    let (status, _, _) = reset("not an address").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let events = app.audit("acme").await;
    let resets: Vec<_> = events
        .iter()
        .filter(|e| e.action == "user.password_reset_request")
        .collect();
    assert_eq!(resets.len(), 2);
}

/// Disabling or deleting a user ends its sign-in state: each of its sessions is revoked with a
/// `session` entry in the revocation log (so verifiers refuse tokens carrying that `sid`), and
/// another user's session is left alone.
#[tokio::test]
async fn disabling_or_deleting_a_user_revokes_its_sessions_through_the_log() {
    use portcullis_core::revocation::RevocationKind;
    use portcullis_store::SessionRecord;
    let app = TestApp::new().await;
    let mut ids = Vec::new();
    for name in ["gil", "hal", "ivy"] {
        let (status, user) = app
            .create_user(
                &app.acme,
                "acme",
                json!({"username": name, "password": STRONG}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        ids.push(user["id"].as_str().expect("id").to_owned());
    }
    let now = app.clock.now();
    let later = now.saturating_add(std::time::Duration::from_secs(3600));
    for (i, user) in ids.iter().enumerate() {
        app.store
            .insert_session(&SessionRecord {
                digest: vec![i as u8; 32],
                id: portcullis_core::session::SessionId::parse(&format!("ses_{i:026}"))
                    .expect("sid"),
                tenant: tid("acme"),
                user_id: portcullis_core::user::UserId::parse(user).expect("user id"),
                auth_time: now,
                amr: vec!["pwd".into()],
                acr: None,
                created_at: now,
                last_seen_at: now,
                idle_expires_at: later,
                absolute_expires_at: later,
                revoked_at: None,
            })
            .await
            .expect("session");
    }
    let (status, _, _) = app
        .call(
            Method::POST,
            &format!("/admin/v1/tenants/acme/users/{}/disable", ids[0]),
            Some(&app.acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("/admin/v1/tenants/acme/users/{}", ids[1]),
            Some(&app.acme),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let log = app.store.revocations_after(0, 1_000).await.expect("log");
    for (i, revoked) in [(0, true), (1, true), (2, false)] {
        let sid = format!("ses_{i:026}");
        let session = app
            .store
            .get_session_by_id(&tid("acme"), &sid)
            .await
            .expect("get")
            .expect("kept");
        assert_eq!(session.revoked_at.is_some(), revoked, "{sid}");
        let logged = log
            .iter()
            .any(|e| e.kind == RevocationKind::Session && e.subject == sid);
        assert_eq!(logged, revoked, "{sid} in the revocation log");
    }
}

/// Workload identity (issue 17): trusted issuers and trust rules through the admin API. Every
/// refusal is a 4xx that changes nothing; a rule on github.com that pins no immutable id is
/// refused at save.
#[tokio::test]
async fn federation_issuers_and_rules_are_checked_when_saved() {
    let mut app = TestApp::new().await;
    let base = "/admin/v1/tenants/acme/federation";
    let call = |method: Method, path: String, body: Option<Value>| {
        let app = &app;
        async move { app.call(method, &path, Some(&app.acme), body).await }
    };
    let (status, _, _) = call(
        Method::POST,
        "/admin/v1/tenants/acme/resource-servers".into(),
        Some(json!({"audience": "deploy-api", "scopes": ["deploy", "read"]})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);

    // Issuers: bad presets, algorithms, key sources and private keys are refused.
    for bad in [
        json!({"preset": "github", "key_source": {"kind": "discovery"}}),
        json!({"preset": "generic_oidc", "key_source": {"kind": "discovery"}}),
        json!({"preset": "github_actions", "key_source": {"kind": "discovery"}, "algorithms": ["HS256"]}),
        json!({"preset": "github_actions", "key_source": {"kind": "discovery"}, "algorithms": ["none"]}),
        json!({"preset": "kubernetes", "issuer": "http://kube.internal", "key_source": {"kind": "discovery"}}),
        json!({"preset": "kubernetes", "issuer": "https://kube.internal", "key_source": {"kind": "jwks_uri", "uri": "http://kube.internal/jwks"}}),
        json!({"preset": "kubernetes", "issuer": "https://kube.internal", "key_source": {"kind": "jwks", "keys": {"keys": []}}}),
        json!({"preset": "kubernetes", "issuer": "https://kube.internal", "key_source": {"kind": "jwks", "keys": {"keys": [{"kty": "EC", "crv": "P-256", "x": "x", "y": "y", "d": "d"}]}}}),
        json!({"preset": "kubernetes", "issuer": "https://kube.internal", "key_source": {"kind": "discovery", "uri": "https://x"}}),
    ] {
        let (status, _, body) =
            call(Method::POST, format!("{base}/issuers"), Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
        assert_eq!(body["error"], "invalid_request", "{bad}");
    }
    let (_, _, list) = call(Method::GET, format!("{base}/issuers"), None).await;
    assert_eq!(list, json!([]));

    // GitHub Actions defaults to github.com's issuer.
    let (status, _, gh) = call(
        Method::POST,
        format!("{base}/issuers"),
        Some(json!({"preset": "github_actions", "key_source": {"kind": "discovery"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{gh}");
    assert_eq!(gh["issuer"], "https://token.actions.githubusercontent.com");
    assert_eq!(gh["max_token_age_secs"], 3600);
    let (status, _, _) = call(
        Method::POST,
        format!("{base}/issuers"),
        Some(json!({"preset": "github_actions", "key_source": {"kind": "discovery"}})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let rule = |conditions: Value| {
        json!({"id": "deploy-main", "issuer": "https://token.actions.githubusercontent.com",
               "audience": "https://portcullis.example", "conditions": conditions,
               "audiences": ["deploy-api"], "scopes": ["deploy"]})
    };
    // The shared-issuer rule: names alone are refused.
    let (status, _, body) = call(
        Method::POST,
        format!("{base}/rules"),
        Some(rule(
            json!([{"claim": "repository", "equals": "acme/deploy"},
                          {"claim": "ref", "equals": "refs/heads/main"}]),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("repository_owner_id")),
        "{body}"
    );
    // Other refusals: unknown issuer, audience, scope, malformed condition, bad id.
    let pinned = json!([{"claim": "repository_id", "equals": "2002"},
                        {"claim": "ref", "equals": "refs/heads/main"}]);
    for (change, value) in [
        ("issuer", json!("https://gitlab.com")),
        ("audiences", json!(["billing"])),
        ("scopes", json!(["admin"])),
        ("conditions", json!([{"claim": "ref", "glob": "**"}])),
        ("conditions", json!([{"claim": "ref", "exists": false}])),
        ("conditions", json!([])),
        ("id", json!("Deploy Main")),
        ("max_lifetime_secs", json!(999_999)),
    ] {
        let mut body = rule(pinned.clone());
        body[change] = value;
        let (status, _, answer) = call(Method::POST, format!("{base}/rules"), Some(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{change}: {answer}");
    }
    let (_, _, list) = call(Method::GET, format!("{base}/rules"), None).await;
    assert_eq!(list, json!([]));

    let (status, _, created) = call(
        Method::POST,
        format!("{base}/rules"),
        Some(rule(pinned.clone())),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["conditions"], pinned);
    assert_eq!(created["max_lifetime_secs"], 900);
    assert_eq!(created["bound_to_subject_lifetime"], true);
    let (status, _, shown) = call(Method::GET, format!("{base}/rules/deploy-main"), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown, created);
    let (status, _, _) = call(Method::POST, format!("{base}/rules"), Some(rule(pinned))).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Another tenant sees none of it.
    let (status, _, _) = app
        .call(
            Method::GET,
            "/admin/v1/tenants/globex/federation/rules/deploy-main",
            Some(&app.global),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An issuer with rules stays; removing the rule first lets it go.
    let issuer_q =
        format!("{base}/issuers?issuer=https%3A%2F%2Ftoken.actions.githubusercontent.com");
    let (status, _, _) = call(Method::DELETE, issuer_q.clone(), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _, _) = call(Method::DELETE, format!("{base}/rules/deploy-main"), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = call(Method::DELETE, format!("{base}/rules/deploy-main"), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = call(Method::DELETE, issuer_q.clone(), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = call(Method::DELETE, issuer_q, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let actions: Vec<String> = app
        .audit("acme")
        .await
        .iter()
        .map(|e| e.action.as_str().to_owned())
        .collect();
    for a in [
        "federation.issuer.create",
        "federation.rule.create",
        "federation.rule.delete",
        "federation.issuer.delete",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a}: {actions:?}");
    }
}

/// A tenant's CA sets (RFC 8705): checked before anything is stored (not PEM, not a
/// certificate, not a CA, no name, a name taken: 400 or 409), listed per tenant, deleted only in
/// their own tenant; mTLS client registrations need exactly one certificate fact
/// (`tls_client_auth`) or keys (`self_signed_tls_client_auth`).
#[tokio::test]
async fn ca_sets_and_mtls_registrations_are_checked_before_anything_is_stored() {
    let mut app = TestApp::new().await;
    let ca = {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        rcgen::CertifiedIssuer::self_signed(p, rcgen::KeyPair::generate().expect("key"))
            .expect("ca")
    };
    let leaf = rcgen::CertificateParams::new(vec!["svc.acme.test".to_owned()])
        .expect("params")
        .self_signed(&rcgen::KeyPair::generate().expect("key"))
        .expect("leaf");
    let path = "/admin/v1/tenants/acme/ca-sets";
    for (body, code) in [
        (
            json!({"name": "clients", "pem": "hello"}),
            "invalid_request",
        ),
        (
            json!({"name": "clients", "pem": leaf.pem()}),
            "invalid_request",
        ),
        (
            json!({"name": "clients", "pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"}),
            "invalid_request",
        ),
        (json!({"name": " ", "pem": ca.pem()}), "invalid_request"),
        (json!({"pem": ca.pem()}), "invalid_request"),
    ] {
        let (status, _, v) = app
            .call(Method::POST, path, Some(&app.acme), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"], code, "{body}: {v}");
    }
    assert_eq!(
        app.store.list_ca_sets(&tid("acme")).await.expect("list"),
        vec![],
        "nothing stored"
    );
    let body = json!({"name": "clients", "pem": ca.pem()});
    let (status, _, created) = app
        .call(Method::POST, path, Some(&app.acme), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["certificates"], 1);
    let id = created["id"].as_str().expect("id").to_owned();
    let (status, _, v) = app
        .call(Method::POST, path, Some(&app.acme), Some(body))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{v}");
    let (_, _, listed) = app.call(Method::GET, path, Some(&app.acme), None).await;
    assert_eq!(listed["items"][0]["id"], id.as_str());
    let (_, _, other) = app
        .call(
            Method::GET,
            "/admin/v1/tenants/globex/ca-sets",
            Some(&app.globex),
            None,
        )
        .await;
    assert_eq!(other["items"], json!([]));
    // Another tenant's set id is not found there.
    let (status, _, _) = app
        .call(
            Method::DELETE,
            &format!("/admin/v1/tenants/globex/ca-sets/{id}"),
            Some(&app.globex),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Client registrations.
    let clients = "/admin/v1/tenants/acme/clients";
    app.call(
        Method::POST,
        "/admin/v1/tenants/acme/resource-servers",
        Some(&app.acme),
        Some(json!({"audience": "payments-api", "scopes": []})),
    )
    .await;
    let base = json!({"name": "payments", "audiences": ["payments-api"],
        "grant_types": ["client_credentials"]});
    let with = |extra: Value| {
        let mut b = base.clone();
        for (k, v) in extra.as_object().expect("object") {
            b[k] = v.clone();
        }
        b
    };
    for bad in [
        json!({"auth_method": "tls_client_auth"}),
        json!({"auth_method": "tls_client_auth", "tls_client_auth_san_dns": "a.test",
            "tls_client_auth_san_uri": "spiffe://a/b"}),
        json!({"auth_method": "tls_client_auth", "tls_client_auth_san_ip": "not-an-ip"}),
        json!({"auth_method": "client_secret_basic", "tls_client_auth_san_dns": "a.test"}),
        json!({"auth_method": "self_signed_tls_client_auth"}),
        json!({"auth_method": "tls_client_auth", "tls_client_auth_san_dns": "a.test",
            "jwks": {"keys": []}}),
    ] {
        let (status, _, v) = app
            .call(
                Method::POST,
                clients,
                Some(&app.acme),
                Some(with(bad.clone())),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {v}");
    }
    let (status, _, c) = app
        .call(
            Method::POST,
            clients,
            Some(&app.acme),
            Some(with(json!({"auth_method": "tls_client_auth",
                "tls_client_auth_subject_dn": "cn = payments, o=Acme"}))),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{c}");
    assert_eq!(c["tls_client_auth_subject_dn"], "CN=payments,O=Acme");
    assert_eq!(c["tls_client_certificate_bound_access_tokens"], true);
    assert!(c.get("client_secret").is_none(), "{c}");
    let id = c["client_id"].as_str().expect("id");
    // An update replaces the fact with exactly one other.
    let (status, _, u) = app
        .call(
            Method::PATCH,
            &format!("{clients}/{id}"),
            Some(&app.acme),
            Some(json!({"tls_client_auth_san_ip": "10.1.2.3"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{u}");
    assert_eq!(u["tls_client_auth_san_ip"], "10.1.2.3");
    assert!(u.get("tls_client_auth_subject_dn").is_none(), "{u}");
    let events = app.audit("acme").await;
    assert!(events
        .iter()
        .any(|e| e.action == portcullis_core::audit::Action::TenantCaSetCreate));
}
