//! Credential lifecycle through the real router (issue 19, item 4): tenants' lifetime policies
//! (who may set them, bad values, enforcement at API key and client secret creation and
//! rotation, `enforce` in report and disable modes) and the hygiene report (findings, tenant
//! scoping, keys only for those who may read them).
//!
//! Audit assertions stop the background tasks first (draining the audit writer), so they never
//! depend on timing.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use portcullis_core::admin::AdminRole;
use portcullis_core::audit::Action;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{Clock, ManualClock, Timestamp};
use portcullis_server::config::AuditConfig;
use portcullis_server::serve::{Assembled, BackgroundTasks};
use portcullis_service::state::{rfc3339, AppState};
use portcullis_store::{SqliteStore, Store};
use serde_json::{json, Value};
use tower::ServiceExt;

const DAY: u64 = 86_400;

struct App {
    router: Router,
    state: AppState,
    clock: Arc<ManualClock>,
    tasks: Option<BackgroundTasks>,
    admins: common::Admins,
    _dir: tempfile::TempDir,
}

impl App {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("db"))
                .await
                .expect("store"),
        );
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
        let admins = common::seed(store.as_ref(), clock.now()).await;
        let mut config = common::config(dir.path());
        config.audit = AuditConfig {
            flush_interval_ms: 5,
            ..AuditConfig::default()
        };
        let Assembled {
            router,
            state,
            tasks,
            ..
        } = common::assemble(&config, common::ISSUER, store, clock.clone()).await;
        Self {
            router,
            state,
            clock,
            tasks: Some(tasks),
            admins,
            _dir: dir,
        }
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
            .uri(format!("/admin/v1{path}"))
            .header("authorization", format!("Bearer {token}"));
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let resp = self
            .router
            .clone()
            .oneshot(req.body(body).expect("request"))
            .await
            .expect("infallible");
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

    async fn set_policy(&self, tenant: &str, body: Value) -> Value {
        let (s, v) = self
            .call(
                Method::PUT,
                &format!("/tenants/{tenant}/lifetime-policy"),
                &self.admins.global,
                Some(body),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    async fn role_token(&self, tenant: &str, role: AdminRole) -> String {
        let (record, credential) = portcullis_http::admin::tokens::mint_with_role(
            &TenantId::parse(tenant).expect("tenant"),
            role,
            format!("{tenant}-{}", role.as_str()),
            "test".into(),
            self.clock.now(),
        );
        self.state
            .store
            .insert_admin_credential(&record)
            .await
            .expect("token");
        credential.expose().to_owned()
    }

    async fn clients(&self) -> Vec<Value> {
        let (s, v) = self
            .call(
                Method::GET,
                "/tenants/acme/clients",
                &self.admins.acme,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        // The tenant's built-in CLI client (created at start-up) aside.
        v["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|c| {
                !portcullis_core::client::is_cli_client_id(c["client_id"].as_str().expect("id"))
            })
            .cloned()
            .collect()
    }

    async fn enforce(&self) -> Value {
        let (s, v) = self
            .call(
                Method::POST,
                "/tenants/acme/lifetime-policy/enforce",
                &self.admins.global,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v
    }

    /// Stops the background tasks, which drains the audit writer.
    async fn drain(&mut self) {
        if let Some(tasks) = self.tasks.take() {
            tasks.shutdown(&self.state.api_keys.verifier).await;
        }
    }
}

fn web_client() -> Value {
    json!({"name": "portal", "redirect_uris": ["https://app.example.com/cb"]})
}

#[tokio::test]
async fn lifetime_policies_are_set_by_global_admins_and_refuse_bad_values() {
    let mut app = App::new().await;
    let body = json!({"client_secret_max_age": "90d", "existing": "report"});
    // The tenant's own admin cannot loosen (or set) its limits; another tenant's neither.
    for token in [&app.admins.acme, &app.admins.globex] {
        let (s, _) = app
            .call(
                Method::PUT,
                "/tenants/acme/lifetime-policy",
                token,
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
    let auditor = app.role_token("acme", AdminRole::Auditor).await;
    let (s, _) = app
        .call(
            Method::POST,
            "/tenants/acme/lifetime-policy/enforce",
            &auditor,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "an auditor enforces nothing");
    // Another tenant's admin cannot read it either; an unknown tenant is not found.
    let (s, _) = app
        .call(
            Method::GET,
            "/tenants/acme/lifetime-policy",
            &app.admins.globex,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = app
        .call(
            Method::PUT,
            "/tenants/nope/lifetime-policy",
            &app.admins.global,
            Some(body.clone()),
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    for bad in [
        json!({"client_secret_max_age": "soon"}),
        json!({"client_secret_max_age": "0s"}),
        json!({"existing": "delete"}),
        json!({"api_key_max_lifetime": "-1d"}),
        json!({"client_secret_expiry_required": "yes"}),
        json!({"unknown": true}),
    ] {
        let (s, v) = app
            .call(
                Method::PUT,
                "/tenants/acme/lifetime-policy",
                &app.admins.global,
                Some(bad.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert_eq!(v["error"], "invalid_request");
    }
    // Nothing was stored by the refusals.
    assert_eq!(
        app.state
            .store
            .get_lifetime_policy(&TenantId::parse("acme").expect("tenant"))
            .await
            .expect("get"),
        None
    );
    let v = app.set_policy("acme", body).await;
    assert_eq!(v["client_secret_max_age"], "90d");
    let (s, v) = app
        .call(
            Method::GET,
            "/tenants/acme/lifetime-policy",
            &app.admins.acme,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["existing"], "report");
    assert_eq!(v["client_secret_expiry_required"], false);
    // The API key half is the API key policy (default: expiry required, at most a year).
    assert_eq!(v["api_key_expiry_required"], true);
    assert_eq!(v["api_key_max_lifetime"], "365d");
    app.drain().await;
    let events = common::audit_events(app.state.store.as_ref(), "acme").await;
    assert!(events
        .iter()
        .any(|e| e.action == Action::TenantLifetimePolicyUpdate));
}

#[tokio::test]
async fn client_secrets_are_created_and_rotated_within_the_policy() {
    let app = App::new().await;
    app.set_policy(
        "acme",
        json!({"client_secret_max_age": "90d", "client_secret_expiry_required": true}),
    )
    .await;
    let mut too_long = web_client();
    too_long["secret_expires_in_secs"] = json!(91 * DAY);
    let (s, v) = app
        .call(
            Method::POST,
            "/tenants/acme/clients",
            &app.admins.acme,
            Some(too_long),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "invalid_request");
    assert!(
        v["error_description"]
            .as_str()
            .expect("description")
            .contains("client_secret_max_age"),
        "{v}"
    );
    assert!(app.clients().await.is_empty(), "nothing was created");
    // Without a lifetime the secret gets the maximum.
    let (s, v) = app
        .call(
            Method::POST,
            "/tenants/acme/clients",
            &app.admins.acme,
            Some(web_client()),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["client_id"].as_str().expect("id").to_owned();
    let (_, shown) = app
        .call(
            Method::GET,
            &format!("/tenants/acme/clients/{id}"),
            &app.admins.acme,
            None,
        )
        .await;
    let expected = rfc3339(
        app.clock
            .now()
            .saturating_add(Duration::from_secs(90 * DAY)),
    );
    assert_eq!(shown["secrets"][0]["expires_at"], expected.as_str());
    // Rotation is held to the same policy.
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/tenants/acme/clients/{id}/rotate-secret"),
            &app.admins.acme,
            Some(json!({"secret_expires_in_secs": 200 * DAY})),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    let (_, unchanged) = app
        .call(
            Method::GET,
            &format!("/tenants/acme/clients/{id}"),
            &app.admins.acme,
            None,
        )
        .await;
    assert_eq!(unchanged["secrets"].as_array().expect("secrets").len(), 1);
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/tenants/acme/clients/{id}/rotate-secret"),
            &app.admins.acme,
            Some(json!({"secret_expires_in_secs": 30 * DAY})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    // Required expiry without a maximum: a secret must be given a lifetime.
    app.set_policy("acme", json!({"client_secret_expiry_required": true}))
        .await;
    let (s, v) = app
        .call(
            Method::POST,
            "/tenants/acme/clients",
            &app.admins.acme,
            Some(web_client()),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error_description"]
        .as_str()
        .expect("description")
        .contains("client_secret_expiry_required"));
    // globex has no policy: a secret without expiry is fine there.
    let (s, v) = app
        .call(
            Method::POST,
            "/tenants/globex/clients",
            &app.admins.globex,
            Some(web_client()),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

#[tokio::test]
async fn api_key_limits_set_through_the_lifetime_policy_refuse_long_keys() {
    let app = App::new().await;
    let v = app
        .set_policy(
            "acme",
            json!({"api_key_max_lifetime": "30d", "api_key_expiry_required": true}),
        )
        .await;
    assert_eq!(v["api_key_max_lifetime"], "30d");
    for expires_in in ["60d", "never"] {
        let (s, v) = app
            .call(
                Method::POST,
                "/tenants/acme/api-keys",
                &app.admins.acme,
                Some(json!({"name": "k", "owner": "o", "expires_in": expires_in})),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{expires_in}: {v}");
    }
    // The default lifetime was lowered with the maximum.
    let (s, v) = app
        .call(
            Method::POST,
            "/tenants/acme/api-keys",
            &app.admins.acme,
            Some(json!({"name": "k", "owner": "o"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let expected = rfc3339(
        app.clock
            .now()
            .saturating_add(Duration::from_secs(30 * DAY)),
    );
    assert_eq!(v["expires_at"], expected.as_str());
}

#[tokio::test]
async fn enforce_reports_then_disables_non_compliant_api_keys() {
    let mut app = App::new().await;
    // Keys that never expire are allowed at first...
    app.set_policy(
        "acme",
        json!({"api_key_max_lifetime": "none", "api_key_expiry_required": false}),
    )
    .await;
    let forever = app.create_key("acme", &app.admins.acme, "never").await;
    let fine = app.create_key("acme", &app.admins.acme, "10d").await;
    // ...then required, existing ones reported.
    app.set_policy(
        "acme",
        json!({"api_key_expiry_required": true, "existing": "report"}),
    )
    .await;
    let v = app.enforce().await;
    assert_eq!(v["existing"], "report");
    let ids: Vec<&str> = v["non_compliant"]
        .as_array()
        .expect("list")
        .iter()
        .map(|n| n["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, vec![forever.as_str()]);
    assert_eq!(v["non_compliant"][0]["violation"], "no_expiry");
    assert_eq!(v["disabled"], json!([]));
    // The hygiene report shows the violation in report mode.
    let (s, report) = app
        .call(
            Method::GET,
            "/tenants/acme/hygiene-report",
            &app.admins.acme,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert!(report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .any(|f| f["finding"] == "policy_violation" && f["subject"] == forever.as_str()));
    app.set_policy(
        "acme",
        json!({"api_key_expiry_required": true, "existing": "disable"}),
    )
    .await;
    let v = app.enforce().await;
    assert_eq!(v["disabled"], json!([forever.clone()]));
    assert_eq!(
        app.key_status("acme", &app.admins.acme, &forever).await,
        "disabled"
    );
    assert_eq!(
        app.key_status("acme", &app.admins.acme, &fine).await,
        "active"
    );
    // A second run disables nothing more.
    assert_eq!(app.enforce().await["disabled"], json!([]));
    app.drain().await;
    let events = common::audit_events(app.state.store.as_ref(), "acme").await;
    let disables: Vec<_> = events
        .iter()
        .filter(|e| e.action == Action::ApiKeyDisable)
        .collect();
    assert_eq!(disables.len(), 1);
    assert_eq!(disables[0].target.as_deref(), Some(forever.as_str()));
    assert!(disables[0]
        .reason
        .as_ref()
        .is_some_and(|r| r.to_string().contains("lifetime_policy")));
}

impl App {
    async fn create_key(&self, tenant: &str, token: &str, expires_in: &str) -> String {
        let (s, v) = self
            .call(
                Method::POST,
                &format!("/tenants/{tenant}/api-keys"),
                token,
                Some(json!({"name": format!("k-{expires_in}"), "owner": "o",
                            "expires_in": expires_in})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v["id"].as_str().expect("id").to_owned()
    }

    async fn key_status(&self, tenant: &str, token: &str, id: &str) -> String {
        let (s, key) = self
            .call(
                Method::GET,
                &format!("/tenants/{tenant}/api-keys/{id}"),
                token,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{key}");
        key["status"].as_str().expect("status").to_owned()
    }
}

/// Mode `disable` needs no `enforce` call: the sweep every node runs applies it, to the
/// tenants in that mode only, as the system.
#[tokio::test]
async fn the_sweep_disables_non_compliant_keys_of_tenants_in_disable_mode_only() {
    use portcullis_service::lifetime_enforcement::{spawn_sweeper, Enforcer};
    let mut app = App::new().await;
    let allow_forever = json!({"api_key_max_lifetime": "none", "api_key_expiry_required": false});
    app.set_policy("acme", allow_forever.clone()).await;
    app.set_policy("globex", allow_forever).await;
    let acme_forever = app.create_key("acme", &app.admins.acme, "never").await;
    let acme_fine = app.create_key("acme", &app.admins.acme, "10d").await;
    let globex_forever = app.create_key("globex", &app.admins.globex, "never").await;
    app.set_policy(
        "acme",
        json!({"api_key_expiry_required": true, "existing": "disable"}),
    )
    .await;
    app.set_policy(
        "globex",
        json!({"api_key_expiry_required": true, "existing": "report"}),
    )
    .await;

    let enforcer = Enforcer {
        store: app.state.store.clone(),
        audit: app.state.audit.clone(),
        verifier: app.state.api_keys.verifier.clone(),
        clock: app.state.clock.clone(),
    };
    let sweeper = spawn_sweeper(enforcer.clone(), Duration::from_millis(20));
    // Waits for the sweep's effect (bounded), it asserts no duration.
    for _ in 0..500 {
        if app
            .key_status("acme", &app.admins.acme, &acme_forever)
            .await
            == "disabled"
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sweeper.abort();
    assert_eq!(
        app.key_status("acme", &app.admins.acme, &acme_forever)
            .await,
        "disabled"
    );
    assert_eq!(
        app.key_status("acme", &app.admins.acme, &acme_fine).await,
        "active"
    );
    assert_eq!(
        app.key_status("globex", &app.admins.globex, &globex_forever)
            .await,
        "active",
        "report mode disables nothing"
    );
    assert_eq!(enforcer.sweep().await.expect("sweep"), 0, "nothing left");

    app.drain().await;
    let events = common::audit_events(app.state.store.as_ref(), "acme").await;
    let disables: Vec<_> = events
        .iter()
        .filter(|e| e.action == Action::ApiKeyDisable)
        .collect();
    assert_eq!(disables.len(), 1, "{disables:?}");
    assert_eq!(disables[0].target.as_deref(), Some(acme_forever.as_str()));
    assert_eq!(disables[0].actor.as_str(), "system");
    assert!(disables[0]
        .reason
        .as_ref()
        .is_some_and(|r| r.to_string().contains("lifetime_policy")));
    let globex = common::audit_events(app.state.store.as_ref(), "globex").await;
    assert!(!globex.iter().any(|e| e.action == Action::ApiKeyDisable));
}

#[tokio::test]
async fn the_hygiene_report_finds_idle_credentials_and_is_tenant_scoped() {
    let app = App::new().await;
    let (s, v) = app
        .call(
            Method::POST,
            "/tenants/acme/api-keys",
            &app.admins.acme,
            Some(json!({"name": "idle", "owner": "o", "expires_in": "300d"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let idle = v["id"].as_str().expect("id").to_owned();
    app.clock.advance(Duration::from_secs(100 * DAY));
    let (s, fresh) = app
        .call(
            Method::POST,
            "/tenants/acme/api-keys",
            &app.admins.acme,
            Some(json!({"name": "fresh", "owner": "o"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let fresh = fresh["id"].as_str().expect("id").to_owned();
    let auditor = app.role_token("acme", AdminRole::Auditor).await;
    let (s, v) = app
        .call(Method::GET, "/tenants/acme/hygiene-report", &auditor, None)
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let findings = v["findings"].as_array().expect("findings");
    let of = |subject: &str| -> Vec<String> {
        findings
            .iter()
            .filter(|f| f["subject"] == subject)
            .map(|f| f["finding"].as_str().expect("finding").to_owned())
            .collect()
    };
    assert_eq!(of(&idle), vec!["never_used"]);
    assert_eq!(of(&fresh), Vec::<String>::new());
    // Admin credentials never expire: every one is reported so, and listed by age.
    assert!(findings
        .iter()
        .any(|f| f["subject_kind"] == "admin_credential" && f["finding"] == "no_expiry"));
    assert!(!v["inventory"].as_array().expect("inventory").is_empty());
    assert!(
        !v["inventory"]
            .as_array()
            .expect("inventory")
            .iter()
            .any(|i| i["subject_kind"] == "signing_key"),
        "a tenant's reader does not see the installation's keys"
    );
    assert!(!v["notes"].as_array().expect("notes").is_empty());
    // A global admin sees the signing keys and the KEK too.
    let (s, v) = app
        .call(
            Method::GET,
            "/tenants/acme/hygiene-report?unused_days=30",
            &app.admins.global,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let inventory = v["inventory"].as_array().expect("inventory");
    assert!(inventory.iter().any(|i| i["subject_kind"] == "signing_key"));
    assert!(inventory.iter().any(|i| i["subject_kind"] == "kek"));
    // Another tenant's admin, an API key manager without audit rights, and bad windows.
    let (s, _) = app
        .call(
            Method::GET,
            "/tenants/acme/hygiene-report",
            &app.admins.globex,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let manager = app.role_token("acme", AdminRole::ApiKeyManager).await;
    let (s, _) = app
        .call(Method::GET, "/tenants/acme/hygiene-report", &manager, None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    for q in [
        "unused_days=0",
        "unused_days=99999",
        "unused_days=x",
        "nope=1",
    ] {
        let (s, v) = app
            .call(
                Method::GET,
                &format!("/tenants/acme/hygiene-report?{q}"),
                &app.admins.acme,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}: {v}");
    }
}

impl App {
    /// A request outside the admin API: a form with Basic credentials, or JSON with a bearer.
    async fn post_outside(
        &self,
        path: &str,
        auth: &str,
        content_type: &str,
        body: String,
    ) -> Value {
        self.post_outside_from(None, path, auth, content_type, body)
            .await
    }

    /// [`Self::post_outside`] from the socket peer `peer`, as `serve` hands requests over.
    async fn post_outside_from(
        &self,
        peer: Option<&str>,
        path: &str,
        auth: &str,
        content_type: &str,
        body: String,
    ) -> Value {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("authorization", auth)
            .header("content-type", content_type)
            .body(Body::from(body))
            .expect("request");
        if let Some(peer) = peer {
            let ip: std::net::IpAddr = peer.parse().expect("peer");
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(std::net::SocketAddr::new(
                    ip, 40_000,
                )));
        }
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("json body")
    }

    async fn created(&self, path: &str, body: Value) -> Value {
        let (s, v) = self
            .call(Method::POST, path, &self.admins.acme, Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }

    /// The findings of `acme`'s report about `subject`, by kind, with their details.
    async fn findings_about(&self, subject: &str) -> Vec<(String, String)> {
        let (s, v) = self
            .call(
                Method::GET,
                "/tenants/acme/hygiene-report",
                &self.admins.acme,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .filter(|f| f["subject"] == subject)
            .map(|f| {
                (
                    f["finding"].as_str().expect("finding").to_owned(),
                    f["detail"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// Waits for `subject`'s findings to include `kind` (use records are written off the
    /// request path) and returns its detail.
    async fn await_finding(&self, subject: &str, kind: &str) -> String {
        for _ in 0..500 {
            if let Some((_, detail)) = self
                .findings_about(subject)
                .await
                .into_iter()
                .find(|(k, _)| k == kind)
            {
                return detail;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no {kind} finding for {subject}");
    }
}

#[tokio::test]
async fn the_hygiene_report_names_scopes_no_use_needed_and_keys_used_from_several_networks() {
    use base64::Engine;
    let app = App::new().await;
    app.created(
        "/tenants/acme/resource-servers",
        json!({"audience": "orders-api", "scopes": ["orders:read", "orders:write"]}),
    )
    .await;
    let both = json!(["orders:read", "orders:write"]);
    let client = app
        .created(
            "/tenants/acme/clients",
            json!({"name": "sync", "scopes": both, "audiences": ["orders-api"]}),
        )
        .await;
    let (id, secret) = (
        client["client_id"].as_str().expect("id"),
        client["client_secret"].as_str().expect("secret"),
    );
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    );
    // The client only ever asks for orders:read.
    let token = app
        .post_outside(
            "/oauth2/token",
            &basic,
            "application/x-www-form-urlencoded",
            "grant_type=client_credentials&scope=orders%3Aread".into(),
        )
        .await;
    assert_eq!(token["scope"], "orders:read");
    let secret_id = app
        .call(
            Method::GET,
            &format!("/tenants/acme/clients/{id}"),
            &app.admins.acme,
            None,
        )
        .await
        .1["secrets"][0]["id"]
        .as_str()
        .expect("secret id")
        .to_owned();
    let detail = app.await_finding(&secret_id, "broad_scopes").await;
    assert!(detail.contains("orders:write"), "{detail}");
    assert!(!detail.contains("orders:read"), "{detail}");

    // Three keys holding both scopes: verified naming orders:read, verified naming nothing
    // (its caller checks scopes itself), and both ways.
    let mut keys = Vec::new();
    for name in ["named", "unnamed", "mixed", "sprayed"] {
        let v = app
            .created(
                "/tenants/acme/api-keys",
                json!({"name": name, "owner": "o", "scopes": both}),
            )
            .await;
        keys.push((
            v["id"].as_str().expect("id").to_owned(),
            v["key"].as_str().expect("key").to_owned(),
        ));
    }
    let bearer = format!("Bearer {}", app.admins.acme);
    let verify = |key: &str, scopes: Value, client_ip: &str| {
        let body = json!({"key": key, "scopes": scopes, "client_ip": client_ip}).to_string();
        let bearer = bearer.clone();
        let app = &app;
        async move {
            let v = app
                .post_outside("/v1/api-keys/verify", &bearer, "application/json", body)
                .await;
            assert_eq!(v["valid"], true, "{v}");
        }
    };
    // The first key from two networks; the others from one (two addresses of one /24).
    verify(&keys[0].1, json!(["orders:read"]), "198.51.100.7").await;
    verify(&keys[0].1, json!(["orders:read"]), "203.0.113.9").await;
    verify(&keys[1].1, json!([]), "198.51.100.7").await;
    verify(&keys[2].1, json!(["orders:read"]), "198.51.100.7").await;
    verify(&keys[2].1, json!([]), "198.51.100.200").await;
    // A service verifying without `client_ip` is not where the key was used: its own address
    // (the socket peer) is never recorded as the key's network.
    let v = app
        .post_outside_from(
            Some("192.0.2.50"),
            "/v1/api-keys/verify",
            &bearer,
            "application/json",
            json!({"key": keys[1].1, "scopes": []}).to_string(),
        )
        .await;
    assert_eq!(v["valid"], true, "{v}");
    // A key presented from many networks adds a bounded number of rows.
    for n in 1..=6 {
        verify(&keys[3].1, json!([]), &format!("10.0.{n}.1")).await;
    }
    app.state
        .api_keys
        .verifier
        .flush_usage()
        .await
        .expect("flush");
    let detail = app.await_finding(&keys[0].0, "broad_scopes").await;
    assert_eq!(detail, "unused in the window: orders:write");
    let detail = app.await_finding(&keys[0].0, "many_networks").await;
    assert!(
        detail.contains("198.51.100.0/24") && detail.contains("203.0.113.0/24"),
        "{detail}"
    );
    // The flush wrote the scope and network rows itself, one at a time.
    let acme = TenantId::parse("acme").expect("tenant");
    let rows = app
        .state
        .store
        .admission_matches(&acme)
        .await
        .expect("rows");
    let rows_of = |kind: &str, key: &str| {
        rows.iter()
            .filter(|r| r.kind == kind && r.subject.split(' ').next() == Some(key))
            .count()
    };
    assert_eq!(rows_of("api_key_unscoped", &keys[1].0), 1);
    assert_eq!(rows_of("api_key_unscoped", &keys[2].0), 1);
    assert_eq!(
        rows_of("api_key_network", &keys[1].0),
        1,
        "the verifying service's own address is not a network of the key"
    );
    assert_eq!(rows_of("api_key_network", &keys[2].0), 1, "one /24");
    assert_eq!(
        rows_of("api_key_network", &keys[3].0),
        4,
        "at most NETWORK_ROWS_PER_HOUR new networks per key and hour"
    );
    for (id, _) in &keys[1..3] {
        assert!(
            !app.findings_about(id)
                .await
                .iter()
                .any(|(k, _)| k == "broad_scopes"),
            "a key verified without naming scopes has unknown scope use: {id}"
        );
        assert!(
            !app.findings_about(id)
                .await
                .iter()
                .any(|(k, _)| k == "many_networks"),
            "one network: {id}"
        );
    }

    // Outside the window the uses no longer count: no finding is made from nothing.
    app.clock.advance(Duration::from_secs(100 * DAY));
    assert!(!app
        .findings_about(&keys[0].0)
        .await
        .iter()
        .any(|(k, _)| k == "broad_scopes" || k == "many_networks"));
}
