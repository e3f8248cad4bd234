//! Clients for browser and native apps through the admin API (issue 16 item 6): confidential web
//! apps, single-page apps and native apps are created, shown and updated; bad registrations are
//! `400` with the RFC 7591 codes and change nothing; another tenant's admin and underprivileged
//! roles are refused; public clients have no secret and only the user grants; machine
//! clients are unchanged.

use crate::common;
use portcullis_core::client::is_cli_client_id;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use portcullis_core::admin::AdminRole;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{Clock, ManualClock, Timestamp};
use portcullis_server::config::AuditConfig;
use portcullis_server::serve::{Assembled, BackgroundTasks};
use portcullis_service::api_keys::ApiKeyVerifier;
use portcullis_store::{SqliteStore, Store};
use serde_json::{json, Value};
use tower::ServiceExt;

struct App {
    router: Router,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    tasks: Option<BackgroundTasks>,
    verifier: Arc<ApiKeyVerifier>,
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
        let manual = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
        let clock: Arc<dyn Clock> = manual.clone();
        let admins = common::seed(store.as_ref(), clock.now()).await;
        let mut config = common::config(dir.path());
        config.audit = AuditConfig {
            flush_interval_ms: 5,
            ..AuditConfig::default()
        };
        let Assembled {
            router,
            verifier,
            tasks,
            ..
        } = common::assemble(&config, common::ISSUER, store.clone(), manual).await;
        let app = Self {
            router,
            store,
            clock,
            tasks: Some(tasks),
            verifier,
            admins,
            _dir: dir,
        };
        let (s, v) = app
            .call(
                Method::POST,
                "/admin/v1/tenants/acme/resource-servers",
                &app.admins.acme.clone(),
                Some(json!({"audience": "payments-api", "scopes": ["payments:read"]})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        app
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
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
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        self.send(req.body(body).expect("request")).await
    }

    async fn create(&self, body: Value) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/admin/v1/tenants/acme/clients",
            &self.admins.acme,
            Some(body),
        )
        .await
    }

    async fn created(&self, body: Value) -> Value {
        let (s, v) = self.create(body).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }

    async fn update(
        &self,
        token: &str,
        tenant: &str,
        id: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        self.call(
            Method::PATCH,
            &format!("/admin/v1/tenants/{tenant}/clients/{id}"),
            token,
            Some(body),
        )
        .await
    }

    async fn list(&self) -> Vec<Value> {
        let (s, v) = self
            .call(
                Method::GET,
                "/admin/v1/tenants/acme/clients",
                &self.admins.acme,
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK);
        // The tenant's built-in CLI client (created at start-up) aside.
        v["items"]
            .as_array()
            .expect("list")
            .iter()
            .filter(|c| !is_cli_client_id(c["client_id"].as_str().expect("id")))
            .cloned()
            .collect()
    }
}

fn web_app() -> Value {
    json!({
        "name": "Shop",
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": ["https://shop.example.com/callback"],
        "post_logout_redirect_uris": ["https://shop.example.com/"],
        "scopes": ["openid", "profile", "offline_access", "payments:read"],
        "audiences": ["payments-api"],
    })
}

fn spa() -> Value {
    json!({
        "name": "Dashboard",
        "client_type": "public",
        "grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": ["https://app.example.com/callback"],
        "allowed_web_origins": ["https://app.example.com"],
        "scopes": ["openid", "offline_access"],
        "first_party": true,
    })
}

fn native_app() -> Value {
    json!({
        "name": "Mobile",
        "application_type": "native",
        "redirect_uris": ["com.example.mobile:/oauth2redirect", "http://127.0.0.1/callback"],
        "scopes": ["openid"],
    })
}

#[tokio::test]
async fn web_spa_and_native_clients_register_with_what_each_needs() {
    let app = App::new().await;
    let web = app.created(web_app()).await;
    assert_eq!(web["client_type"], "confidential");
    assert_eq!(web["application_type"], "web");
    assert_eq!(web["auth_method"], "client_secret_basic");
    assert!(
        web["client_secret"]
            .as_str()
            .is_some_and(|s| s.starts_with("pcl_cs_live_")),
        "a web app has a secret: {web}"
    );
    assert_eq!(
        web["redirect_uris"],
        json!(["https://shop.example.com/callback"])
    );
    assert_eq!(
        web["post_logout_redirect_uris"],
        json!(["https://shop.example.com/"])
    );
    assert_eq!(web["first_party"], false);

    let spa = app.created(spa()).await;
    assert_eq!(
        (
            &spa["client_type"],
            &spa["application_type"],
            &spa["auth_method"]
        ),
        (&json!("public"), &json!("web"), &json!("none"))
    );
    assert!(spa.get("client_secret").is_none(), "{spa}");
    assert_eq!(
        spa["allowed_web_origins"],
        json!(["https://app.example.com"])
    );
    assert_eq!(spa["first_party"], true);
    assert_eq!(spa["audiences"], json!([]));

    let native = app.created(native_app()).await;
    assert_eq!(
        (
            &native["client_type"],
            &native["application_type"],
            &native["auth_method"]
        ),
        (&json!("public"), &json!("native"), &json!("none"))
    );
    assert_eq!(native["grant_types"], json!(["authorization_code"]));
    assert!(native.get("client_secret").is_none());

    // A machine client is what it always was.
    let machine = app
        .created(
            json!({"name": "sync", "scopes": ["payments:read"], "audiences": ["payments-api"]}),
        )
        .await;
    assert_eq!(machine["client_type"], "confidential");
    assert_eq!(machine["grant_types"], json!(["client_credentials"]));
    assert_eq!(machine["redirect_uris"], json!([]));
    assert!(machine["client_secret"].is_string());

    // Shown and listed with the same members.
    let id = native["client_id"].as_str().expect("id");
    let (s, shown) = app
        .call(
            Method::GET,
            &format!("/admin/v1/tenants/acme/clients/{id}"),
            &app.admins.acme,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(shown["redirect_uris"], native["redirect_uris"]);
    assert_eq!(shown["secrets"], json!([]));
    assert_eq!(app.list().await.len(), 4);
}

#[tokio::test]
async fn bad_registrations_are_400_with_rfc7591_codes_and_create_nothing() {
    let app = App::new().await;
    let with = |base: Value, patch: Value| {
        let mut b = base;
        if let (Value::Object(b), Value::Object(p)) = (&mut b, patch) {
            b.extend(p);
        }
        b
    };
    let redirect = |uris: Value| with(web_app(), json!({"redirect_uris": uris}));
    let native_redirect = |uris: Value| with(native_app(), json!({"redirect_uris": uris}));
    for (body, code, needle) in [
        (
            redirect(json!(["http://shop.example.com/cb"])),
            "invalid_redirect_uri",
            "https",
        ),
        (
            redirect(json!(["https://shop.example.com/cb#x"])),
            "invalid_redirect_uri",
            "fragment",
        ),
        (
            redirect(json!(["https://*.example.com/cb"])),
            "invalid_redirect_uri",
            "wildcard",
        ),
        (
            redirect(json!(["https://u@shop.example.com/cb"])),
            "invalid_redirect_uri",
            "user",
        ),
        (
            redirect(json!(["/callback"])),
            "invalid_redirect_uri",
            "absolute",
        ),
        (
            redirect(json!(["https://shop.example.com/cb?state=x"])),
            "invalid_redirect_uri",
            "state",
        ),
        (
            native_redirect(json!(["http://localhost:8000/cb"])),
            "invalid_redirect_uri",
            "8252",
        ),
        (
            native_redirect(json!(["myapp:/cb"])),
            "invalid_redirect_uri",
            "reverse domain",
        ),
        (
            native_redirect(json!(["http://192.168.1.2/cb"])),
            "invalid_redirect_uri",
            "loopback",
        ),
        (
            with(
                web_app(),
                json!({"post_logout_redirect_uris": ["http://shop.example.com/"]}),
            ),
            "invalid_redirect_uri",
            "post_logout_redirect_uris",
        ),
        (
            with(
                spa(),
                json!({"grant_types": ["authorization_code", "client_credentials"], "audiences": ["payments-api"]}),
            ),
            "invalid_client_metadata",
            "client_credentials",
        ),
        (
            with(spa(), json!({"introspection": true})),
            "invalid_client_metadata",
            "introspect",
        ),
        (
            with(spa(), json!({"auth_method": "client_secret_basic"})),
            "invalid_client_metadata",
            "none",
        ),
        (
            with(
                web_app(),
                json!({"allowed_web_origins": ["https://shop.example.com"]}),
            ),
            "invalid_client_metadata",
            "single-page",
        ),
        (
            with(
                spa(),
                json!({"allowed_web_origins": ["https://app.example.com/"]}),
            ),
            "invalid_client_metadata",
            "origin",
        ),
        (
            with(native_app(), json!({"client_type": "confidential"})),
            "invalid_client_metadata",
            "native",
        ),
        (
            with(spa(), json!({"client_type": "trusted"})),
            "invalid_client_metadata",
            "client_type",
        ),
        (
            with(native_app(), json!({"application_type": "desktop"})),
            "invalid_client_metadata",
            "application_type",
        ),
        (
            with(spa(), json!({"redirect_uris": []})),
            "invalid_client_metadata",
            "redirect URI",
        ),
        (
            json!({"name": "m", "audiences": ["payments-api"], "redirect_uris": ["https://a.example/cb"], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
            "authorization_code",
        ),
        (
            with(spa(), json!({"scopes": ["payments:admin"]})),
            "invalid_client_metadata",
            "defined",
        ),
        (
            with(native_app(), json!({"scopes": ["offline_access"]})),
            "invalid_client_metadata",
            "refresh_token",
        ),
        (
            with(spa(), json!({"grant_types": ["implicit"]})),
            "invalid_request",
            "grant type",
        ),
    ] {
        let (s, v) = app.create(body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        assert_eq!(v["error"], code, "{body}: {v}");
        let d = v["error_description"].as_str().unwrap_or("");
        assert!(
            d.to_lowercase().contains(&needle.to_lowercase()),
            "{body}: {d:?} should mention {needle}"
        );
    }
    assert!(app.list().await.is_empty(), "nothing was created");
}

#[tokio::test]
async fn updates_go_through_the_same_rules_in_the_callers_tenant_only() {
    let mut app = App::new().await;
    let spa = app.created(spa()).await;
    let id = spa["client_id"].as_str().expect("id").to_owned();
    let acme = app.admins.acme.clone();

    let (s, v) = app
        .update(
            &acme,
            "acme",
            &id,
            json!({"redirect_uris": ["https://app.example.com/cb2", "https://app.example.com/cb2"],
                   "first_party": false, "name": "Dash"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["redirect_uris"], json!(["https://app.example.com/cb2"]));
    assert_eq!(v["first_party"], false);
    assert_eq!(v["name"], "Dash");
    assert_eq!(v["allowed_web_origins"], spa["allowed_web_origins"], "kept");
    assert_eq!(v["client_type"], "public");

    // Refused updates change nothing.
    for (body, status, code) in [
        (
            json!({"redirect_uris": ["http://app.example.com/cb"]}),
            400,
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": []}), 400, "invalid_client_metadata"),
        (
            json!({"grant_types": ["client_credentials"], "audiences": ["payments-api"], "scopes": []}),
            400,
            "invalid_client_metadata",
        ),
        (
            json!({"grant_types": ["client_credentials"], "audiences": ["payments-api"]}),
            400,
            "invalid_request",
        ),
        (
            json!({"introspection": true}),
            400,
            "invalid_client_metadata",
        ),
        (
            json!({"client_type": "confidential"}),
            400,
            "invalid_request",
        ),
        (
            json!({"auth_method": "client_secret_basic"}),
            400,
            "invalid_request",
        ),
        (json!({"name": ""}), 400, "invalid_request"),
    ] {
        let (s, e) = app.update(&acme, "acme", &id, body.clone()).await;
        assert_eq!(s.as_u16(), status, "{body}: {e}");
        assert_eq!(e["error"], code, "{body}: {e}");
    }
    let after = app
        .store
        .get_client(&id)
        .await
        .expect("get")
        .expect("client");
    assert_eq!(after.redirect_uris, vec!["https://app.example.com/cb2"]);
    assert_eq!(after.name, "Dash");

    // Another tenant's admin does not find it, even through its own tenant path.
    let globex = app.admins.globex.clone();
    let (s, _) = app
        .update(&globex, "globex", &id, json!({"name": "x"}))
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = app.update(&globex, "acme", &id, json!({"name": "x"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // Underprivileged roles of the right tenant.
    for role in [
        AdminRole::Auditor,
        AdminRole::ApiKeyManager,
        AdminRole::Service,
    ] {
        let (record, credential) = portcullis_http::admin::tokens::mint_with_role(
            &TenantId::parse("acme").expect("tenant"),
            role,
            format!("acme-{}", role.as_str()),
            "test".into(),
            app.clock.now(),
        );
        app.store
            .insert_admin_credential(&record)
            .await
            .expect("token");
        let token = credential.expose().to_owned();
        let (s, _) = app.update(&token, "acme", &id, json!({"name": "x"})).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{role:?} may not update");
        let (s, _) = app
            .call(
                Method::POST,
                "/admin/v1/tenants/acme/clients",
                &token,
                Some(spa_body()),
            )
            .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{role:?} may not create");
    }
    // A global admin may.
    let global = app.admins.global.clone();
    let (s, v) = app
        .update(&global, "acme", &id, json!({"name": "Global"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");

    // A disabled client is not changed any more.
    let (s, _) = app
        .call(
            Method::POST,
            &format!("/admin/v1/tenants/acme/clients/{id}/disable"),
            &acme,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = app
        .update(&acme, "acme", &id, json!({"name": "again"}))
        .await;
    assert_eq!((s, &v["error"]), (StatusCode::CONFLICT, &json!("conflict")));

    if let Some(tasks) = app.tasks.take() {
        tasks.shutdown(&app.verifier).await;
    }
    let updates: Vec<_> = common::audit_events(app.store.as_ref(), "acme")
        .await
        .into_iter()
        .filter(|e| e.action == "oauth_client.update")
        .collect();
    assert_eq!(updates.len(), 2, "one event per accepted update");
    assert!(updates
        .iter()
        .all(|e| e.target.as_deref() == Some(id.as_str())));
}

fn spa_body() -> Value {
    spa()
}

#[tokio::test]
async fn a_machine_client_can_become_a_web_app_and_keeps_its_secret() {
    let app = App::new().await;
    let m = app
        .created(
            json!({"name": "portal", "scopes": ["payments:read"], "audiences": ["payments-api"]}),
        )
        .await;
    let id = m["client_id"].as_str().expect("id");
    let acme = app.admins.acme.clone();
    let (s, v) = app
        .update(
            &acme,
            "acme",
            id,
            json!({"grant_types": ["client_credentials", "authorization_code"],
                   "redirect_uris": ["https://portal.example.com/cb"],
                   "scopes": ["payments:read", "openid"]}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["auth_method"], "client_secret_basic");
    assert_eq!(
        v["grant_types"],
        json!(["client_credentials", "authorization_code"])
    );
    // Its secret still works at the token endpoint.
    let secret = m["client_secret"].as_str().expect("secret");
    let (s, v) = app
        .send(token_request(
            id,
            Some(secret),
            "grant_type=client_credentials",
        ))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
}

fn token_request(id: &str, secret: Option<&str>, body: &str) -> Request<Body> {
    use base64::Engine;
    let mut b = Request::builder()
        .method(Method::POST)
        .uri("/oauth2/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    let body = match secret {
        Some(secret) => {
            b = b.header(
                header::AUTHORIZATION,
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
                ),
            );
            body.to_owned()
        }
        None => format!("{body}&client_id={id}"),
    };
    b.body(Body::from(body)).expect("request")
}

#[tokio::test]
async fn public_clients_have_no_secret_and_only_the_user_grants() {
    let app = App::new().await;
    let spa = app.created(spa()).await;
    let id = spa["client_id"].as_str().expect("id");
    let (s, v) = app
        .call(
            Method::POST,
            &format!("/admin/v1/tenants/acme/clients/{id}/rotate-secret"),
            &app.admins.acme,
            Some(json!({})),
        )
        .await;
    assert_eq!(
        (s, &v["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_request"))
    );
    assert!(app
        .store
        .list_client_secrets(id)
        .await
        .expect("secrets")
        .is_empty());
    // The grants it is registered for are served: with its client_id alone it is
    // authenticated, and a request missing its code or refresh token is invalid_request.
    for grant in ["authorization_code", "refresh_token"] {
        let (s, v) = app
            .send(token_request(id, None, &format!("grant_type={grant}")))
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{grant}: {v}");
        assert_eq!(v["error"], "invalid_request", "{grant}");
    }
    // With no credential at all it is not authenticated for client credentials either.
    let (s, v) = app
        .send(token_request(id, None, "grant_type=client_credentials"))
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(v["error"], "invalid_client");
}

#[tokio::test]
async fn back_channel_logout_uris_follow_the_outbound_rules() {
    let app = App::new().await;
    let acme = app.admins.acme.clone();
    let mut body = web_app();
    body["backchannel_logout_uri"] = json!("https://shop.example.com/bcl?from=portcullis");
    body["backchannel_logout_session_required"] = json!(true);
    let web = app.created(body).await;
    assert_eq!(
        web["backchannel_logout_uri"],
        "https://shop.example.com/bcl?from=portcullis"
    );
    assert_eq!(web["backchannel_logout_session_required"], true);
    let id = web["client_id"].as_str().expect("id").to_owned();

    // Plain HTTP (the test setting allows only loopback), private and link-local addresses,
    // credentials, a fragment; a machine client; sid required without a URI.
    for (extra, why) in [
        (
            json!({"backchannel_logout_uri": "http://shop.example.com/bcl"}),
            "http",
        ),
        (
            json!({"backchannel_logout_uri": "https://10.1.2.3/bcl"}),
            "private",
        ),
        (
            json!({"backchannel_logout_uri": "https://169.254.169.254/x"}),
            "link-local",
        ),
        (
            json!({"backchannel_logout_uri": "https://[::1]/bcl"}),
            "loopback",
        ),
        (
            json!({"backchannel_logout_uri": "https://u:p@shop.example.com/bcl"}),
            "credentials",
        ),
        (
            json!({"backchannel_logout_uri": "https://shop.example.com/bcl#f"}),
            "fragment",
        ),
        (
            json!({"backchannel_logout_session_required": true}),
            "no uri",
        ),
    ] {
        let mut body = web_app();
        for (k, v) in extra.as_object().expect("object") {
            body[k] = v.clone();
        }
        let (s, v) = app.create(body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{why}: {v}");
        assert_eq!(v["error"], "invalid_client_metadata", "{why}: {v}");
    }
    let (s, v) = app
        .create(json!({"name": "m2m", "audiences": ["payments-api"],
                       "backchannel_logout_uri": "https://m2m.example.com/bcl"}))
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");

    // PATCH: a refused URI changes nothing; "" removes it and the sid requirement.
    let (s, _) = app
        .update(
            &acme,
            "acme",
            &id,
            json!({"backchannel_logout_uri": "http://shop.example.com/bcl"}),
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, v) = app
        .update(&acme, "acme", &id, json!({"backchannel_logout_uri": ""}))
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v.get("backchannel_logout_uri").is_none(), "{v}");
    assert_eq!(v["backchannel_logout_session_required"], false);
    let (s, v) = app
        .update(
            &acme,
            "acme",
            &id,
            json!({"backchannel_logout_uri": "https://shop.example.com/bcl2"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["backchannel_logout_uri"], "https://shop.example.com/bcl2");
}
