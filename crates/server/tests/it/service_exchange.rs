//! Token exchange between services (issue 17, item 6), in process: a service holding one of
//! our access tokens authenticates as its client at `/oauth2/token` and exchanges the token
//! (`subject_token_type` access_token) for one for another API. The subject stays the subject,
//! scopes never grow, each hop nests the earlier actors in `act`, `may_act` is honoured, and a
//! revoked or expired subject token is refused, and so is every token exchanged from a token
//! revoked since; each refusal is audited with its reason.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use http_body_util::BodyExt;
use portcullis_core::oauth::AccessTokenClaims;
use portcullis_core::time::{ManualClock, Timestamp};
use portcullis_server::serve::{Assembled, BackgroundTasks};
use portcullis_service::api_keys::ApiKeyVerifier;
use portcullis_service::state::AppState;
use portcullis_store::{SqliteStore, Store};
use serde_json::{json, Value};
use tower::ServiceExt;

const NOW: i64 = 1_800_000_000;
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

struct App {
    router: Router,
    state: AppState,
    clock: Arc<ManualClock>,
    store: Arc<dyn Store>,
    tasks: Option<BackgroundTasks>,
    verifier: Arc<ApiKeyVerifier>,
    admin: String,
    _dir: tempfile::TempDir,
}

struct Client {
    id: String,
    secret: String,
}

impl App {
    /// acme with three APIs that share the `payments:*` scope names (scopes carry across an
    /// exchange only when the target API defines them too), and the clients of a chain:
    /// `web` calls orders-api; `orders` calls ledger-api for it; `ledger` calls audit-api.
    async fn new() -> (Self, [Client; 3]) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("db"))
                .await
                .expect("store"),
        );
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(NOW)));
        let admins = common::seed(store.as_ref(), Timestamp::from_secs(NOW)).await;
        let config = common::config(dir.path());
        let Assembled {
            state,
            router,
            verifier,
            tasks,
            ..
        } = common::assemble(&config, common::ISSUER, store.clone(), clock.clone()).await;
        let app = Self {
            router,
            state,
            clock,
            store,
            tasks: Some(tasks),
            verifier,
            admin: admins.acme,
            _dir: dir,
        };
        for (aud, scopes) in [
            ("orders-api", json!(["payments:read", "payments:write"])),
            ("ledger-api", json!(["payments:read", "payments:write"])),
            ("audit-api", json!(["payments:read"])),
        ] {
            let (s, v) = app
                .admin_post(
                    "/resource-servers",
                    json!({"audience": aud, "scopes": scopes}),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED, "{v}");
        }
        let web = app
            .client(
                "web",
                json!(["payments:read", "payments:write"]),
                json!(["orders-api"]),
            )
            .await;
        let orders = app
            .client(
                "orders",
                json!(["payments:read", "payments:write"]),
                json!(["ledger-api"]),
            )
            .await;
        let ledger = app
            .client("ledger", json!(["payments:read"]), json!(["audit-api"]))
            .await;
        (app, [web, orders, ledger])
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

    async fn admin_post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("/admin/v1/tenants/acme{path}"))
            .header(header::AUTHORIZATION, format!("Bearer {}", self.admin))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request");
        self.send(req).await
    }

    async fn client(&self, name: &str, scopes: Value, audiences: Value) -> Client {
        let (s, v) = self
            .admin_post(
                "/clients",
                json!({"name": name, "scopes": scopes, "audiences": audiences}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        Client {
            id: v["client_id"].as_str().expect("id").to_owned(),
            secret: v["client_secret"].as_str().expect("secret").to_owned(),
        }
    }

    async fn form(&self, path: &str, c: &Client, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let body = form
            .iter()
            .map(|(k, v)| format!("{k}={}", urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let basic = STANDARD.encode(format!("{}:{}", c.id, c.secret));
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::AUTHORIZATION, format!("Basic {basic}"))
            .body(Body::from(body))
            .expect("request");
        self.send(req).await
    }

    /// A client-credentials token of `c` (its first audience).
    async fn token(&self, c: &Client) -> String {
        let (s, v) = self
            .form("/oauth2/token", c, &[("grant_type", "client_credentials")])
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["access_token"].as_str().expect("token").to_owned()
    }

    /// `actor` exchanges `subject` with these extra parameters.
    async fn exchange(
        &self,
        actor: &Client,
        subject: &str,
        extra: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut form = vec![
            ("grant_type", EXCHANGE),
            ("subject_token", subject),
            ("subject_token_type", ACCESS_TOKEN),
        ];
        form.extend_from_slice(extra);
        self.form("/oauth2/token", actor, &form).await
    }

    /// `claims` signed by the server's own active key (what a token minted with `may_act`
    /// would be).
    fn sign(&self, claims: &AccessTokenClaims) -> String {
        self.state
            .oauth
            .signer()
            .expect("signer")
            .sign(claims)
            .expect("sign")
    }

    /// The reasons of acme's refused token requests, oldest first (flushes the audit log).
    async fn denied_reasons(&mut self) -> Vec<String> {
        self.issue_events()
            .await
            .into_iter()
            .filter(|(_, o, _)| o == "denied")
            .map(|(_, _, r)| r)
            .collect()
    }

    /// Flushes the audit log and returns acme's token-issue events: (actor, outcome, reason).
    async fn issue_events(&mut self) -> Vec<(String, String, String)> {
        if let Some(tasks) = self.tasks.take() {
            tasks.shutdown(&self.verifier).await;
        }
        common::audit_events(self.store.as_ref(), "acme")
            .await
            .into_iter()
            .filter(|e| e.action.as_str() == "oauth.token.issue")
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

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("b64")).expect("json")
}

#[tokio::test]
async fn a_service_exchanges_a_token_for_another_api_and_each_hop_nests_the_actors() {
    let (mut app, [web, orders, ledger]) = App::new().await;
    let subject = app.token(&web).await;
    let first = claims_of(&subject);
    assert_eq!(first["scope"], "payments:read payments:write");

    // Hop 1: orders acts for web's token at ledger-api, narrowing the scope.
    let (s, v) = app
        .exchange(
            &orders,
            &subject,
            &[("audience", "ledger-api"), ("scope", "payments:read")],
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["issued_token_type"], ACCESS_TOKEN);
    assert_eq!(v["token_type"], "Bearer");
    assert!(v.get("refresh_token").is_none());
    let hop1 = v["access_token"].as_str().expect("token").to_owned();
    let c = claims_of(&hop1);
    assert_eq!(c["sub"], web.id.as_str(), "the subject stays the subject");
    assert_eq!(c["client_id"], orders.id.as_str());
    assert_eq!(c["aud"], "ledger-api");
    assert_eq!(c["scope"], "payments:read");
    assert_eq!(c["act"], json!({"sub": orders.id}));
    assert!(c["exp"].as_i64() <= first["exp"].as_i64());

    // Without a scope, the grant is what the subject had that the target and actor allow.
    let (s, v) = app.exchange(&orders, &subject, &[]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        claims_of(v["access_token"].as_str().expect("t"))["scope"],
        "payments:read payments:write"
    );

    // Hop 2: ledger acts for the exchanged token at audit-api (so it is current where the
    // server checks tokens); the earlier actor nests.
    let (s, v) = app.exchange(&ledger, &hop1, &[]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let c = claims_of(v["access_token"].as_str().expect("token"));
    assert_eq!(c["sub"], web.id.as_str());
    assert_eq!(c["aud"], "audit-api");
    assert_eq!(c["scope"], "payments:read");
    assert_eq!(
        c["act"],
        json!({"sub": ledger.id, "act": {"sub": orders.id}})
    );

    let events = app.issue_events().await;
    let exchanged: Vec<_> = events
        .iter()
        .filter(|(_, o, r)| o == "success" && r.starts_with("token_exchange"))
        .collect();
    assert_eq!(exchanged.len(), 3, "{events:?}");
    assert_eq!(
        exchanged[2].2,
        format!(
            "token_exchange:for {} by {} < {}",
            web.id, ledger.id, orders.id
        )
    );
}

#[tokio::test]
async fn revoking_a_token_revokes_every_token_exchanged_from_it() {
    let (mut app, [web, orders, ledger]) = App::new().await;
    let subject = app.token(&web).await;
    let (s, v) = app.exchange(&orders, &subject, &[]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let hop1 = v["access_token"].as_str().expect("token").to_owned();
    let (s, v) = app.exchange(&ledger, &hop1, &[]).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let hop2 = v["access_token"].as_str().expect("token").to_owned();
    // Each token names the chain it came from, oldest first.
    let root_jti = claims_of(&subject)["jti"].clone();
    let hop1_jti = claims_of(&hop1)["jti"].clone();
    assert_eq!(claims_of(&hop1)["exchanged_from"], json!([root_jti]));
    assert_eq!(
        claims_of(&hop2)["exchanged_from"],
        json!([root_jti, hop1_jti])
    );
    // An unrelated token of the same client is not in the chain.
    let sibling = app.token(&web).await;

    // web revokes its own token (RFC 7009): what orders and ledger hold for it dies with it.
    let (s, _) = app
        .form("/oauth2/revoke", &web, &[("token", &subject)])
        .await;
    assert_eq!(s, StatusCode::OK);
    for (actor, token) in [(&ledger, &hop1), (&ledger, &hop2)] {
        let (s, v) = app.exchange(actor, token, &[]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["error"], "invalid_grant");
    }
    let (s, v) = app.exchange(&orders, &sibling, &[]).await;
    assert_eq!(s, StatusCode::OK, "a sibling token is untouched: {v}");

    let reasons = app.denied_reasons().await;
    assert_eq!(
        reasons,
        ["exchanged_from_revoked", "exchanged_from_revoked"],
        "the audit log says why"
    );
}

#[tokio::test]
async fn bad_exchanges_get_the_standard_error_and_the_audit_log_says_why() {
    let (mut app, [web, orders, ledger]) = App::new().await;
    let subject = app.token(&web).await;
    let refused = |v: &Value, code: &str| assert_eq!(v["error"], code, "{v}");

    // More scopes than the subject token had (ledger-api defines it; the subject lacks it).
    let narrow = {
        let (s, v) = app
            .form(
                "/oauth2/token",
                &web,
                &[
                    ("grant_type", "client_credentials"),
                    ("scope", "payments:read"),
                ],
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["access_token"].as_str().expect("t").to_owned()
    };
    let (s, v) = app
        .exchange(
            &orders,
            &narrow,
            &[("scope", "payments:read payments:write")],
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    refused(&v, "invalid_scope");

    // An audience the actor may not reach (web's own API, or one that does not exist).
    for aud in ["orders-api", "nowhere-api"] {
        let (s, v) = app.exchange(&orders, &subject, &[("audience", aud)]).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{aud}");
        refused(&v, "invalid_target");
    }

    // may_act names another client: only that client may act.
    let mut claims: AccessTokenClaims =
        serde_json::from_value(claims_of(&subject)).expect("claims");
    claims.jti = "may-act-1".into();
    claims.may_act = Some(serde_json::from_value(json!({"sub": ledger.id})).expect("may_act"));
    let only_ledger = app.sign(&claims);
    let (s, v) = app.exchange(&orders, &only_ledger, &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    refused(&v, "invalid_grant");
    claims.may_act = Some(serde_json::from_value(json!({"sub": orders.id})).expect("may_act"));
    let for_orders = app.sign(&claims);
    let (s, v) = app.exchange(&orders, &for_orders, &[]).await;
    assert_eq!(s, StatusCode::OK, "may_act naming the actor: {v}");

    // Garbage, another server's token, an actor token, an unknown requested type.
    let (s, v) = app.exchange(&orders, "not-a-token", &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    refused(&v, "invalid_grant");
    let (_, v) = app
        .exchange(
            &orders,
            &subject,
            &[
                ("actor_token", &subject),
                ("actor_token_type", ACCESS_TOKEN),
            ],
        )
        .await;
    refused(&v, "invalid_request");
    let (_, v) = app
        .exchange(
            &orders,
            &subject,
            &[(
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:refresh_token",
            )],
        )
        .await;
    refused(&v, "invalid_request");
    // The actor must authenticate: a wrong secret is invalid_client.
    let thief = Client {
        id: orders.id.clone(),
        secret: web.secret.clone(),
    };
    let (s, v) = app.exchange(&thief, &subject, &[]).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    refused(&v, "invalid_client");
    // At a tenant's workload endpoint an access token is not an external token.
    let (_, v) = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/oauth2/tenants/acme/token")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(format!(
                    "grant_type={}&subject_token={subject}&subject_token_type={}",
                    urlencode(EXCHANGE),
                    urlencode(ACCESS_TOKEN)
                )))
                .expect("request"),
        )
        .await;
    refused(&v, "invalid_request");

    // A revoked subject token (the client revokes it, RFC 7009) is refused.
    let (s, _) = app
        .form("/oauth2/revoke", &web, &[("token", &subject)])
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = app.exchange(&orders, &subject, &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    refused(&v, "invalid_grant");

    // An expired one too.
    let fresh = app.token(&web).await;
    app.clock.advance(Duration::from_secs(3600));
    let (s, v) = app.exchange(&orders, &fresh, &[]).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    refused(&v, "invalid_grant");

    let reasons = app.denied_reasons().await;
    for expected in [
        "invalid_scope",
        "invalid_target",
        "may_act_names_another",
        "token_malformed",
        "token_revoked",
        "token_not_current",
    ] {
        assert!(
            reasons.iter().any(|r| r == expected),
            "{expected} in {reasons:?}"
        );
    }
}
