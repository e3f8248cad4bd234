//! Workload identity end to end, in process (issue 17): a local test issuer on 127.0.0.1 serves
//! discovery and a JWKS and mints tokens with GitHub Actions' documented claim sets; a tenant
//! trusts it through the admin API (key source: discovery) and exchanges its tokens at the
//! tenant's token endpoint by RFC 8693 token exchange and the RFC 7523 JWT-bearer grant. The
//! issued token is checked by an independent JOSE library (`jsonwebtoken`) against the
//! published JWKS. Every bad input answers `invalid_grant` (or the standard code of a request
//! beyond the rule) and the audit log names the rule and the failed check.

use crate::common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use http_body_util::BodyExt;
use portcullis_core::time::{ManualClock, Timestamp};
use portcullis_jose::sign::{public_jwk_for_jwks, Signer, SigningKeyPair};
use portcullis_jose::Alg;
use portcullis_server::serve::{Assembled, BackgroundTasks};
use portcullis_service::api_keys::ApiKeyVerifier;
use portcullis_store::{SqliteStore, Store};
use serde_json::{json, Value};
use tower::ServiceExt;

pub(crate) const NOW: i64 = 1_800_000_000;
pub(crate) const AUD: &str = "https://portcullis.example";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const JWT_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The local test issuer: discovery and JWKS on a loopback port, and its signing key.
pub(crate) struct TestIssuer {
    pub(crate) url: String,
    pub(crate) signer: Signer,
    der: Vec<u8>,
    jwk: Value,
    _server: tokio::task::JoinHandle<()>,
}

impl TestIssuer {
    pub(crate) async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (der, pair) = SigningKeyPair::generate(Alg::ES256).expect("key");
        let (jwk, kid) = public_jwk_for_jwks(&pair);
        let discovery = json!({"issuer": url, "jwks_uri": format!("{url}/jwks"),
            "id_token_signing_alg_values_supported": ["ES256"]});
        let jwks = json!({"keys": [jwk.clone()]});
        let app = Router::new()
            .route(
                "/.well-known/openid-configuration",
                axum::routing::get(move || async move { axum::Json(discovery) }),
            )
            .route(
                "/jwks",
                axum::routing::get(move || async move { axum::Json(jwks) }),
            );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self {
            url,
            signer: Signer::new(pair, Some("JWT"), Some(&kid)),
            der: der.expose().clone(),
            jwk,
            _server: server,
        }
    }

    pub(crate) fn mint(&self, claims: &Value) -> String {
        self.signer.sign(claims).expect("sign")
    }

    /// A token with a hand-made header (`jku` or `jwk`), signed with the issuer's own key by
    /// an independent JOSE library.
    fn mint_with_key_header(&self, jku: bool, claims: &Value) -> String {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(self.kid());
        if jku {
            header.jku = Some("https://evil.example/keys".into());
        } else {
            let jwk = json!({"kty": "EC", "crv": "P-256", "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"});
            header.jwk = Some(serde_json::from_value(jwk).expect("jwk"));
        }
        let key = jsonwebtoken::EncodingKey::from_ec_der(&self.der);
        jsonwebtoken::encode(&header, claims, &key).expect("sign")
    }

    pub(crate) fn kid(&self) -> String {
        self.signer.kid().expect("kid").to_owned()
    }

    /// The issuer's public key as its JWKS publishes it (what an operator uploads).
    fn public_jwk(&self) -> Value {
        self.jwk.clone()
    }

    /// GitHub Actions' claims of a push to main of acme/deploy (docs.github.com, "About
    /// security hardening with OpenID Connect", example subject claims and token).
    pub(crate) fn github_push_main(&self, jti: &str) -> Value {
        json!({"iss": self.url, "aud": AUD, "jti": jti,
            "sub": "repo:acme/deploy:ref:refs/heads/main",
            "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 300,
            "ref": "refs/heads/main", "ref_type": "branch", "ref_protected": "true",
            "sha": "d3adb33f", "repository": "acme/deploy", "repository_id": "2002",
            "repository_owner": "acme", "repository_owner_id": "1001",
            "repository_visibility": "private", "actor": "octocat", "actor_id": "42",
            "event_name": "push", "workflow": "deploy", "run_id": "7", "run_number": "3",
            "run_attempt": "1", "runner_environment": "github-hosted",
            "workflow_ref": "acme/deploy/.github/workflows/deploy.yml@refs/heads/main",
            "job_workflow_ref": "acme/deploy/.github/workflows/deploy.yml@refs/heads/main"})
    }
}

pub(crate) struct App {
    router: Router,
    pub(crate) store: Arc<dyn Store>,
    tasks: Option<BackgroundTasks>,
    verifier: Arc<ApiKeyVerifier>,
    pub(crate) admin: String,
    /// An admin of the tenant `globex`, for cross-tenant checks.
    pub(crate) globex_admin: String,
    _dir: tempfile::TempDir,
}

impl App {
    pub(crate) async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("db"))
                .await
                .expect("store"),
        );
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(NOW)));
        let admins = common::seed(store.as_ref(), Timestamp::from_secs(NOW)).await;
        let mut config = common::config(dir.path());
        config.federation.insecure_allow_http_loopback = true;
        let Assembled {
            router,
            verifier,
            tasks,
            ..
        } = common::assemble(&config, common::ISSUER, store.clone(), clock).await;
        Self {
            router,
            store,
            tasks: Some(tasks),
            verifier,
            admin: admins.acme,
            globex_admin: admins.globex,
            _dir: dir,
        }
    }

    pub(crate) async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    pub(crate) async fn admin_post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("/admin/v1/tenants/acme{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.admin))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        self.send(req).await
    }

    pub(crate) async fn token(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        self.token_with(path, form, None).await
    }

    pub(crate) async fn token_with(
        &self,
        path: &str,
        form: &[(&str, &str)],
        authorization: Option<&str>,
    ) -> (StatusCode, Value) {
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(a) = authorization {
            req = req.header(header::AUTHORIZATION, a);
        }
        self.send(req.body(Body::from(body)).expect("request"))
            .await
    }

    pub(crate) async fn get_admin(&self, path: &str) -> Value {
        let req = Request::builder()
            .uri(format!("/admin/v1/tenants/acme{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.admin))
            .body(Body::empty())
            .expect("request");
        self.send(req).await.1
    }

    pub(crate) async fn get(&self, path: &str) -> Value {
        let req = Request::builder()
            .uri(path)
            .body(Body::empty())
            .expect("req");
        self.send(req).await.1
    }

    /// Flushes the audit log and returns acme's token-issue events, oldest first.
    async fn issue_events(&mut self) -> Vec<(String, String, String)> {
        self.events("oauth.token.issue").await
    }

    /// Flushes the audit log and returns acme's `action` events (actor, outcome, reason),
    /// oldest first.
    pub(crate) async fn events(&mut self, action: &str) -> Vec<(String, String, String)> {
        if let Some(tasks) = self.tasks.take() {
            tasks.shutdown(&self.verifier).await;
        }
        common::audit_events(self.store.as_ref(), "acme")
            .await
            .into_iter()
            .filter(|e| e.action.as_str() == action)
            .map(|e| {
                (
                    e.actor.as_str().to_owned(),
                    e.outcome.as_str().to_owned(),
                    e.reason.map(|r| r.as_str().to_owned()).unwrap_or_default(),
                )
            })
            .collect()
    }
}

pub(crate) fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// acme trusts the test issuer (GitHub Actions preset, keys by discovery) with one rule: pushes
/// to main of repository 2002 owned by 1001 may deploy.
pub(crate) async fn trusting(issuer: &TestIssuer) -> App {
    let app = App::new().await;
    let (status, body) = app
        .admin_post(
            "/resource-servers",
            json!({"audience": "deploy-api", "scopes": ["deploy", "read"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .admin_post(
            "/federation/issuers",
            json!({"preset": "github_actions", "issuer": issuer.url,
                   "key_source": {"kind": "discovery"}, "algorithms": ["ES256"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app
        .admin_post(
            "/federation/rules",
            json!({"id": "deploy-main", "issuer": issuer.url, "audience": AUD,
                   "conditions": [{"claim": "repository_owner_id", "equals": "1001"},
                                  {"claim": "repository_id", "equals": "2002"},
                                  {"claim": "ref", "equals": "refs/heads/main"},
                                  {"claim": "event_name", "equals": "push"}],
                   "audiences": ["deploy-api"], "scopes": ["deploy"],
                   "max_lifetime_secs": 600}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app
}

const TENANT_TOKEN: &str = "/oauth2/tenants/acme/token";

fn exchange_form(token: &str) -> Vec<(&str, &str)> {
    vec![
        ("grant_type", EXCHANGE),
        ("subject_token", token),
        ("subject_token_type", JWT_TYPE),
    ]
}

/// Checks `token` with `jsonwebtoken` against the server's published JWKS; returns its claims.
pub(crate) async fn independently_verified(app: &App, token: &str) -> Value {
    let jwks = app.get("/oauth2/jwks").await;
    let header = jsonwebtoken::decode_header(token).expect("header");
    let kid = header.kid.expect("kid");
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["kid"] == kid.as_str()))
        .expect("published key");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).expect("jwk");
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&["deploy-api"]);
    validation.set_issuer(&[common::ISSUER]);
    // The manual clock is in the future of the wall clock the library reads.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("independently verified")
        .claims
}

#[tokio::test]
async fn a_github_push_to_main_is_exchanged_once_for_a_workload_token() {
    let issuer = TestIssuer::start().await;
    let mut app = trusting(&issuer).await;
    let meta = app.get("/.well-known/oauth-authorization-server").await;
    for g in [EXCHANGE, JWT_BEARER] {
        assert!(
            meta["grant_types_supported"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == g)),
            "{g} in discovery"
        );
    }
    let token = issuer.mint(&issuer.github_push_main("run-7-1"));
    let (status, body) = app.token(TENANT_TOKEN, &exchange_form(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(body["scope"], "deploy");
    // Bound to the subject token's remaining 300 s, under the rule's 600 s.
    assert_eq!(body["expires_in"], 300);
    assert!(body.get("refresh_token").is_none(), "{body}");
    let access = body["access_token"].as_str().expect("access token");
    let claims = independently_verified(&app, access).await;
    assert_eq!(claims["sub"], "workload:deploy-main");
    assert_eq!(claims["client_id"], "workload:deploy-main");
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["aud"], "deploy-api");
    assert_eq!(
        claims["workload"],
        json!({"iss": issuer.url, "sub": "repo:acme/deploy:ref:refs/heads/main",
               "rule": "deploy-main"})
    );
    let header = access.split('.').next().expect("header");
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .expect("b64"),
    )
    .expect("json");
    assert_eq!(header["typ"], "at+jwt");

    // The same token again: replayed.
    let (status, body) = app.token(TENANT_TOKEN, &exchange_form(&token)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    // The JWT-bearer grant, another job's token, a narrower scope.
    let token = issuer.mint(&issuer.github_push_main("run-8-1"));
    let (status, body) = app
        .token(
            TENANT_TOKEN,
            &[
                ("grant_type", JWT_BEARER),
                ("assertion", &token),
                ("scope", "deploy"),
                ("resource", "deploy-api"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("issued_token_type").is_none());

    let events = app.issue_events().await;
    let ok: Vec<_> = events.iter().filter(|e| e.1 == "success").collect();
    assert_eq!(ok.len(), 2, "{events:?}");
    assert_eq!(ok[0].0, "workload:deploy-main");
    assert!(
        ok[0].2.starts_with("external_identity:") && ok[0].2.contains("repo:acme/deploy"),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.1 == "denied" && e.2 == "subject_token_replayed"),
        "{events:?}"
    );
}

#[tokio::test]
async fn bad_subject_tokens_get_invalid_grant_and_the_audit_log_says_why() {
    let issuer = TestIssuer::start().await;
    let mut app = trusting(&issuer).await;
    let with = |jti: &str, changes: Value| {
        let mut c = issuer.github_push_main(jti);
        for (k, v) in changes.as_object().expect("object") {
            if v.is_null() {
                c.as_object_mut().expect("object").remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let (stranger_der, stranger) = SigningKeyPair::generate(Alg::ES256).expect("key");
    let _ = stranger_der;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let payload = b64(&issuer.github_push_main("none-1"));
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "untrusted issuer",
            issuer.mint(&with(
                "c1",
                json!({"iss": "https://token.actions.githubusercontent.com"}),
            )),
            "untrusted_issuer",
        ),
        (
            "wrong audience",
            issuer.mint(&with("c2", json!({"aud": "https://elsewhere.example"}))),
            "subject_token_audience_mismatch",
        ),
        (
            "expired",
            issuer.mint(&with("c3", json!({"exp": NOW - 120}))),
            "subject_token_token_expired",
        ),
        (
            "not yet valid",
            issuer.mint(&with("c4", json!({"nbf": NOW + 600}))),
            "subject_token_token_not_yet_valid",
        ),
        (
            "lifetime over the cap",
            issuer.mint(&with("c5", json!({"exp": NOW + 86_400}))),
            "subject_token_token_lifetime_too_long",
        ),
        (
            "alg none",
            format!("{}.{payload}.", b64(&json!({"alg": "none"}))),
            "alg_none",
        ),
        (
            "HS256 with the issuer's public key",
            format!(
                "{}.{payload}.{}",
                b64(&json!({"alg": "HS256", "kid": issuer.kid()})),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 32])
            ),
            "alg_not_allowed",
        ),
        (
            "a key not in the issuer's JWKS",
            Signer::new(stranger, Some("JWT"), Some(&issuer.kid()))
                .sign(&with("c6", json!({})))
                .expect("sign"),
            "subject_token_signature_invalid",
        ),
        (
            "jku header",
            issuer.mint_with_key_header(true, &with("c7", json!({}))),
            "key_in_header",
        ),
        (
            "jwk header",
            issuer.mint_with_key_header(false, &with("c8", json!({}))),
            "key_in_header",
        ),
        (
            "claim the rule names missing",
            issuer.mint(&with("c9", json!({"event_name": null}))),
            "no_rule_matched",
        ),
        (
            "look-alike owner with another owner id",
            issuer.mint(&with(
                "c10",
                json!({"repository_owner_id": "666", "repository_id": "6660"}),
            )),
            "no_rule_matched",
        ),
        (
            "fork pull request against the main-branch rule",
            issuer.mint(&with(
                "c11",
                json!({"sub": "repo:acme/deploy:pull_request", "event_name": "pull_request",
                       "ref": "refs/pull/12/merge", "head_ref": "patch-1",
                       "base_ref": "main"}),
            )),
            "no_rule_matched",
        ),
    ];
    for (what, token, _) in &cases {
        let (status, body) = app.token(TENANT_TOKEN, &exchange_form(token)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{what}: {body}");
        // The caller never learns which check failed.
        assert_eq!(
            body["error_description"], "the token is not accepted by this tenant's trust rules",
            "{what}"
        );
    }

    // Beyond the rule: scope, audience. The token is not burnt by such a request.
    let token = issuer.mint(&issuer.github_push_main("beyond"));
    let mut form = exchange_form(&token);
    form.push(("scope", "deploy read"));
    let (status, body) = app.token(TENANT_TOKEN, &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
    let mut form = exchange_form(&token);
    form.push(("audience", "billing-api"));
    let (status, body) = app.token(TENANT_TOKEN, &form).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target"))
    );
    let (status, body) = app.token(TENANT_TOKEN, &exchange_form(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The request itself: the installation's endpoint, client credentials at the tenant's,
    // unknown tenant, missing or unsupported token types, an actor token.
    let fresh = issuer.mint(&issuer.github_push_main("request"));
    let (status, body) = app.token("/oauth2/token", &exchange_form(&fresh)).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (status, body) = app
        .token_with(TENANT_TOKEN, &exchange_form(&fresh), Some("Basic YTpi"))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (status, body) = app
        .token("/oauth2/tenants/nobody/token", &exchange_form(&fresh))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    for form in [
        vec![("grant_type", EXCHANGE), ("subject_token", fresh.as_str())],
        vec![
            ("grant_type", EXCHANGE),
            ("subject_token", fresh.as_str()),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:saml2",
            ),
        ],
        vec![
            ("grant_type", EXCHANGE),
            ("subject_token", fresh.as_str()),
            ("subject_token_type", JWT_TYPE),
            ("actor_token", fresh.as_str()),
            ("actor_token_type", JWT_TYPE),
        ],
        vec![("grant_type", EXCHANGE), ("subject_token_type", JWT_TYPE)],
        vec![("grant_type", JWT_BEARER)],
        vec![("grant_type", "client_credentials")],
    ] {
        let (status, body) = app.token(TENANT_TOKEN, &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{form:?}: {body}");
        assert_eq!(body["error"], "invalid_request", "{form:?}: {body}");
    }
    // None of these spent the token.
    let (status, body) = app.token(TENANT_TOKEN, &exchange_form(&fresh)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The audit log has each reason (the rule misses name the failed condition).
    let events = app.issue_events().await;
    for (what, _, reason) in &cases {
        assert!(
            events
                .iter()
                .any(|e| e.1 == "denied" && e.2.starts_with(reason)),
            "{what}: {reason} not in {events:?}"
        );
    }
}

/// The admin dry run: every check with its result; the token is not spent; a refused token
/// shows which rule condition failed.
#[tokio::test]
async fn the_admin_dry_run_prints_every_check_and_spends_nothing() {
    let issuer = TestIssuer::start().await;
    let app = trusting(&issuer).await;
    let token = issuer.mint(&issuer.github_push_main("dry-1"));
    let (status, v) = app
        .admin_post(
            "/federation/test",
            json!({"token": token, "scope": "deploy"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["admitted"], true, "{v}");
    assert_eq!(v["rule"], "deploy-main");
    assert_eq!(v["audience"], "deploy-api");
    let checks: Vec<&str> = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["check"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        checks,
        [
            "structure",
            "issuer",
            "keys",
            "signature_and_claims",
            "workload",
            "rule",
            "selection",
            "grant",
            "jti"
        ]
    );
    assert!(v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .all(|c| c["ok"] == true));
    // Not spent by the dry run.
    let (status, body) = app.token(TENANT_TOKEN, &exchange_form(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let mut fork = issuer.github_push_main("dry-2");
    fork["event_name"] = json!("pull_request");
    fork["ref"] = json!("refs/pull/12/merge");
    fork["sub"] = json!("repo:acme/deploy:pull_request");
    let (status, v) = app
        .admin_post("/federation/test", json!({"token": issuer.mint(&fork)}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["admitted"], false);
    let failed: Vec<&Value> = v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(failed[0]["check"], "rule", "{v}");
    assert!(
        failed[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("condition 2 (ref equals): not matched")),
        "{v}"
    );
    assert_eq!(failed[1]["check"], "selection", "{v}");
    // Bad input: a 4xx, nothing else.
    let (status, _) = app
        .admin_post(
            "/federation/test",
            json!({"token": "x", "rule": "Not A Rule"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Revocation by rule and by issuer goes through the revocation log as `subject` entries for
/// the rules' workload subjects: the one revocation rule every verifier applies.
#[tokio::test]
async fn tokens_are_revoked_by_rule_or_issuer_through_the_revocation_log() {
    let issuer = TestIssuer::start().await;
    let app = trusting(&issuer).await;
    let (status, v) = app
        .admin_post("/federation/rules/deploy-main/revoke-tokens", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["rules"], json!(["deploy-main"]));
    let q = format!(
        "/federation/issuers/revoke-tokens?issuer={}",
        urlencode(&issuer.url)
    );
    let (status, v) = app.admin_post(&q, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["rules"], json!(["deploy-main"]));
    let log = app.store.revocations_after(0, 100).await.expect("log");
    let marks: Vec<_> = log
        .iter()
        .filter(|e| e.subject == "workload:deploy-main")
        .collect();
    assert_eq!(marks.len(), 2, "{log:?}");
    assert!(marks
        .iter()
        .all(|e| e.kind == portcullis_core::revocation::RevocationKind::Subject));
    let (status, _) = app
        .admin_post("/federation/rules/nope/revoke-tokens", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Trusts `issuer` under `preset` with `key_source`, with one rule.
async fn trust_more(app: &App, issuer: &str, preset: &str, key_source: Value, rule: Value) {
    let (status, body) = app
        .admin_post(
            "/federation/issuers",
            json!({"preset": preset, "issuer": issuer, "key_source": key_source,
                   "algorithms": ["ES256"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = app.admin_post("/federation/rules", rule).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

/// Each platform's documented claim set, end to end: a GitHub tag push, an environment job and
/// a reusable workflow (each under the rule it names), a Kubernetes pod token with a bound
/// service account (uploaded JWKS) and a SPIFFE JWT-SVID (trust bundle). Every one is admitted
/// by its own rule only, and the issued token names it.
#[tokio::test]
async fn each_platforms_documented_claim_set_is_exchanged_under_its_rule() {
    let github = TestIssuer::start().await;
    let app = trusting(&github).await;
    let gh_rule = |id: &str, extra: Value| {
        let mut conditions = vec![
            json!({"claim": "repository_owner_id", "equals": "1001"}),
            json!({"claim": "repository_id", "equals": "2002"}),
        ];
        conditions.extend(extra.as_array().cloned().unwrap_or_default());
        json!({"id": id, "issuer": github.url, "audience": AUD, "conditions": conditions,
               "audiences": ["deploy-api"], "scopes": ["deploy"]})
    };
    for (id, extra) in [
        (
            "release-tag",
            json!([{"claim": "ref", "glob": "refs/tags/v*"},
                   {"claim": "event_name", "equals": "push"}]),
        ),
        (
            "deploy-prod",
            json!([{"claim": "environment", "equals": "prod"}]),
        ),
        (
            "shared-deploy",
            json!([{"claim": "ref", "equals": "refs/heads/main"},
                   {"claim": "job_workflow_ref",
                    "equals": "acme/workflows/.github/workflows/deploy.yml@refs/heads/main"}]),
        ),
    ] {
        let (status, body) = app
            .admin_post("/federation/rules", gh_rule(id, extra))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert!(body.get("warnings").is_none(), "{id}: {body}");
    }
    let mut tag = github.github_push_main("tag-1");
    tag["sub"] = json!("repo:acme/deploy:ref:refs/tags/v1.2.0");
    tag["ref"] = json!("refs/tags/v1.2.0");
    tag["ref_type"] = json!("tag");
    let mut env = github.github_push_main("env-1");
    env["sub"] = json!("repo:acme/deploy:environment:prod");
    env["environment"] = json!("prod");
    let mut reusable = github.github_push_main("reusable-1");
    reusable["workflow_ref"] = json!("acme/deploy/.github/workflows/ci.yml@refs/heads/main");
    reusable["job_workflow_ref"] =
        json!("acme/workflows/.github/workflows/deploy.yml@refs/heads/main");

    // A cluster (keys uploaded) and a SPIFFE trust domain (bundle), each its own issuer.
    let cluster = TestIssuer::start().await;
    let jwk = cluster.public_jwk();
    trust_more(
        &app,
        &cluster.url,
        "kubernetes",
        json!({"kind": "jwks", "keys": {"keys": [jwk]}}),
        json!({"id": "payments-pod", "issuer": cluster.url, "audience": AUD,
               "conditions": [{"claim": "namespace", "equals": "payments"},
                              {"claim": "service_account", "equals": "deployer"}],
               "audiences": ["deploy-api"], "scopes": ["deploy"]}),
    )
    .await;
    let spire = TestIssuer::start().await;
    let mut svid_key = spire.public_jwk();
    svid_key["use"] = json!("jwt-svid");
    trust_more(
        &app,
        &spire.url,
        "spiffe_jwt_svid",
        json!({"kind": "spiffe_bundle", "keys": {"spiffe_sequence": 1, "keys": [svid_key]}}),
        json!({"id": "payments-svid", "issuer": spire.url, "audience": AUD,
               "conditions": [{"claim": "trust_domain", "equals": "prod.example.org"},
                              {"claim": "spiffe_path", "equals": "/ns/payments/sa/deployer"}],
               "audiences": ["deploy-api"], "scopes": ["deploy"]}),
    )
    .await;
    // Kubernetes' projected service-account token (a bound token: pod and service account,
    // audience, an hour's life).
    let pod = cluster.mint(&json!({"iss": cluster.url, "aud": [AUD], "jti": "pod-1",
        "sub": "system:serviceaccount:payments:deployer",
        "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 3590,
        "kubernetes.io": {"namespace": "payments",
            "serviceaccount": {"name": "deployer", "uid": "7a3c1f0e-sa"},
            "pod": {"name": "deployer-5d9f", "uid": "c2b8-pod"},
            "node": {"name": "node-1", "uid": "n-1"}}}));
    // A JWT-SVID as SPIRE mints it (SPIFFE JWT-SVID standard: sub, aud, exp; iat; SPIRE's iss
    // when configured; no jti).
    let svid = spire.mint(&json!({"iss": spire.url, "aud": [AUD],
        "sub": "spiffe://prod.example.org/ns/payments/sa/deployer",
        "iat": NOW - 5, "exp": NOW + 300}));
    let svid_again = svid.clone();

    for (token, rule) in [
        (github.mint(&tag), "release-tag"),
        (github.mint(&env), "deploy-prod"),
        (github.mint(&reusable), "shared-deploy"),
        (pod, "payments-pod"),
        (svid, "payments-svid"),
    ] {
        let mut form = exchange_form(&token);
        form.push(("rule", rule));
        let (status, body) = app.token(TENANT_TOKEN, &form).await;
        assert_eq!(status, StatusCode::OK, "{rule}: {body}");
        let claims =
            independently_verified(&app, body["access_token"].as_str().expect("token")).await;
        assert_eq!(claims["workload"]["rule"], rule);
        assert_eq!(claims["sub"], format!("workload:{rule}"));
    }
    // Without a jti the SVID itself is spent: the same one again is a replay.
    let mut form = exchange_form(&svid_again);
    form.push(("rule", "payments-svid"));
    let (status, body) = app.token(TENANT_TOKEN, &form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    // A rule admits only its own kind of job: the main-branch push is no tag, no environment
    // job and no reusable workflow.
    for (i, rule) in ["release-tag", "deploy-prod", "shared-deploy"]
        .iter()
        .enumerate()
    {
        let token = github.mint(&github.github_push_main(&format!("main-{i}")));
        let mut form = exchange_form(&token);
        form.push(("rule", rule));
        let (status, body) = app.token(TENANT_TOKEN, &form).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{rule}: {body}");
        assert_eq!(body["error"], "invalid_grant");
    }
}

/// The lint warnings come back with a rule that is saved anyway: one on a repository alone
/// matches pull requests (forks' included); a ref glob over every branch; a rule on the
/// calling workflow only.
#[tokio::test]
async fn rules_that_match_pull_requests_any_branch_or_only_the_caller_are_saved_with_warnings() {
    let issuer = TestIssuer::start().await;
    let app = trusting(&issuer).await;
    let pins = || {
        vec![
            json!({"claim": "repository_owner_id", "equals": "1001"}),
            json!({"claim": "repository_id", "equals": "2002"}),
        ]
    };
    let codes = |body: &Value| -> Vec<String> {
        body["warnings"]
            .as_array()
            .map(|w| {
                w.iter()
                    .map(|w| w["code"].as_str().expect("code").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut any_branch = pins();
    any_branch.push(json!({"claim": "ref", "glob": "refs/heads/*"}));
    let mut caller_only = pins();
    caller_only.push(json!({"claim": "environment", "equals": "prod"}));
    caller_only.push(json!({"claim": "workflow_ref",
                            "equals": "acme/deploy/.github/workflows/ci.yml@refs/heads/main"}));
    for (id, conditions, expected) in [
        ("repo-only", pins(), vec!["matches_pull_requests"]),
        ("any-branch", any_branch, vec!["any_branch"]),
        ("caller-only", caller_only, vec!["only_calling_workflow"]),
    ] {
        let rule = json!({"id": id, "issuer": issuer.url, "audience": AUD,
                          "conditions": conditions, "audiences": ["deploy-api"]});
        let (status, body) = app.admin_post("/federation/rules", rule).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(codes(&body), expected, "{id}");
        let shown = app.get_admin(&format!("/federation/rules/{id}")).await;
        assert_eq!(codes(&shown), expected, "{id} shown");
    }
    let listed = app.get_admin("/federation/rules").await;
    let listed: Vec<(String, Vec<String>)> = listed
        .as_array()
        .expect("list")
        .iter()
        .map(|r| (r["id"].as_str().expect("id").to_owned(), codes(r)))
        .collect();
    assert!(
        listed.contains(&("deploy-main".into(), vec![])),
        "the careful rule has none: {listed:?}"
    );
    assert!(listed.contains(&("repo-only".into(), vec!["matches_pull_requests".into()])));
}

/// A trust rule removed or added through the admin API applies to this node's very next
/// exchange: the cached issuer facts are invalidated before the call answers (the manual clock
/// does not move here, so the cache's TTL cannot be what makes the change visible).
#[tokio::test]
async fn a_rule_removed_or_added_through_the_admin_api_applies_to_the_next_exchange() {
    let issuer = TestIssuer::start().await;
    let app = trusting(&issuer).await;
    let exchange = |jti: &'static str| {
        let token = issuer.mint(&issuer.github_push_main(jti));
        let app = &app;
        async move { app.token(TENANT_TOKEN, &exchange_form(&token)).await }
    };
    let (status, body) = exchange("cache-1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let req = Request::builder()
        .method(Method::DELETE)
        .uri("/admin/v1/tenants/acme/federation/rules/deploy-main")
        .header(header::AUTHORIZATION, format!("Bearer {}", app.admin))
        .body(Body::empty())
        .expect("request");
    let (status, body) = app.send(req).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = exchange("cache-2").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    let (status, body) = app
        .admin_post(
            "/federation/rules",
            json!({"id": "deploy-main", "issuer": issuer.url, "audience": AUD,
                   "conditions": [{"claim": "repository_owner_id", "equals": "1001"},
                                  {"claim": "repository_id", "equals": "2002"},
                                  {"claim": "ref", "equals": "refs/heads/main"},
                                  {"claim": "event_name", "equals": "push"}],
                   "audiences": ["deploy-api"], "scopes": ["deploy"],
                   "max_lifetime_secs": 600}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = exchange("cache-3").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
