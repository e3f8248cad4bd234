//! The token side of browser sign-in over HTTP (issue 16 items 7 and 8), through
//! `serve::assemble`: a session and a code come from `state.sign_in` directly (the /authorize
//! pages are built elsewhere), then the `authorization_code` and `refresh_token` grants, ID
//! tokens (checked with portcullis-jose and, independently, the `jsonwebtoken` crate), user
//! access tokens, userinfo, discovery and CORS are exercised as a browser or native app would,
//! including every bad input of the issue that concerns codes, PKCE and refresh tokens, and a
//! family revocation reaching a verifier.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use base64::Engine;
use http_body_util::BodyExt;
use portcullis_core::audit::Actor;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{Clock, ManualClock, Timestamp};
use portcullis_core::user::{Email, UserId, UserProfile, UserStatus, Username};
use portcullis_server::config::AuditConfig;
use portcullis_server::serve::{Assembled, BackgroundTasks};
use portcullis_service::audit::RequestOrigin;
use portcullis_service::sign_in::{CodeRequest, NewSession, StartedSession};
use portcullis_service::state::AppState;
use portcullis_store::{SqliteStore, Store, UserRecord};
use serde_json::{json, Value};
use tower::ServiceExt;

const REDIRECT: &str = "https://app.example.com/callback";
const ORIGIN: &str = "https://app.example.com";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-this-is-long-enough";

struct App {
    router: Router,
    store: Arc<dyn Store>,
    state: AppState,
    clock: Arc<ManualClock>,
    tasks: Option<BackgroundTasks>,
    verifier: Arc<portcullis_service::api_keys::ApiKeyVerifier>,
    admins: common::Admins,
    user: UserId,
    _dir: tempfile::TempDir,
}

/// What one client is, as the tests use it.
#[derive(Clone)]
struct Client {
    id: String,
    secret: Option<String>,
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
            verifier,
            ..
        } = common::assemble(&config, common::ISSUER, store.clone(), clock.clone()).await;
        let user = UserId::generate(clock.now(), &mut rand::rngs::OsRng);
        let now = clock.now();
        store
            .create_user(&UserRecord {
                id: user.clone(),
                tenant: TenantId::parse("acme").expect("tenant"),
                username: Username::parse("ada").expect("username"),
                email: Some(Email::parse("ada@example.com").expect("email")),
                email_verified: true,
                status: UserStatus::Active,
                profile: serde_json::from_value::<UserProfile>(
                    json!({"name": "Ada Lovelace", "locale": "en"}),
                )
                .expect("profile"),
                password_hash: None,
                password_changed_at: None,
                created_at: now,
                updated_at: now,
                last_login_at: None,
            })
            .await
            .expect("user");
        let app = Self {
            router,
            store,
            state,
            clock,
            tasks: Some(tasks),
            verifier,
            admins,
            user,
            _dir: dir,
        };
        let (s, v) = app
            .admin(
                Method::POST,
                "/admin/v1/tenants/acme/resource-servers",
                json!({"audience": "orders-api", "scopes": ["orders:read", "orders:write"]}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        app
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
        let resp = self.router.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        (status, headers, v)
    }

    async fn admin(&self, method: Method, path: &str, body: Value) -> (StatusCode, Value) {
        let (s, _, v) = self
            .send(
                Request::builder()
                    .method(method)
                    .uri(path)
                    .header(
                        header::AUTHORIZATION,
                        format!("Bearer {}", self.admins.acme),
                    )
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body.to_string()))
                    .expect("request"),
            )
            .await;
        (s, v)
    }

    /// A public single-page app with refresh tokens and this test's web origin.
    async fn spa(&self) -> Client {
        self.client(json!({
            "name": "Dashboard", "client_type": "public",
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": [REDIRECT], "allowed_web_origins": [ORIGIN],
            "scopes": ["openid", "profile", "email", "offline_access", "orders:read"],
            "audiences": ["orders-api"],
        }))
        .await
    }

    async fn client(&self, body: Value) -> Client {
        let (s, v) = self
            .admin(Method::POST, "/admin/v1/tenants/acme/clients", body)
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        Client {
            id: v["client_id"].as_str().expect("id").to_owned(),
            secret: v["client_secret"].as_str().map(str::to_owned),
        }
    }

    async fn session(&self) -> StartedSession {
        self.state
            .sign_in
            .create_session(
                NewSession {
                    tenant: TenantId::parse("acme").expect("tenant"),
                    user_id: self.user.clone(),
                    amr: vec!["pwd".into()],
                    acr: None,
                },
                None,
                Actor::anonymous(),
                &RequestOrigin::default(),
            )
            .await
            .expect("session")
    }

    /// A code for `client` under `session`, as the authorization endpoint issues one.
    async fn code(&self, client: &Client, session: &StartedSession, scope: &str) -> String {
        self.state
            .sign_in
            .issue_code(CodeRequest {
                client_id: &portcullis_core::client::ClientId::parse(&client.id)
                    .expect("client id"),
                redirect_uri: REDIRECT,
                code_challenge: &portcullis_core::auth_code::s256_challenge(VERIFIER),
                nonce: Some("n-0S6_WzA2Mj"),
                scope: scope.split(' ').map(str::to_owned).collect(),
                dpop_jkt: None,
                session: &session.record,
            })
            .await
            .expect("code")
            .expose()
            .to_owned()
    }

    async fn token(&self, client: &Client, body: &str) -> (StatusCode, Value) {
        let (s, _, v) = self.send(token_request(client, body, None)).await;
        (s, v)
    }

    async fn redeem(&self, client: &Client, code: &str) -> (StatusCode, Value) {
        self.token(
            client,
            &format!(
                "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
                enc(REDIRECT)
            ),
        )
        .await
    }

    /// Sets the signed-in user's status in storage (it exists: the assertion says so).
    async fn set_user_status(&self, status: UserStatus) {
        let tenant = TenantId::parse("acme").expect("tenant");
        assert!(self
            .store
            .set_user_status(&tenant, &self.user, status, self.clock.now())
            .await
            .expect("status"));
    }

    /// A new session's code for `openid offline_access orders:read`, redeemed by `client`: the
    /// token response, with the first refresh token of a new family.
    async fn offline_grant(&self, client: &Client) -> Value {
        let session = self.session().await;
        let code = self
            .code(client, &session, "openid offline_access orders:read")
            .await;
        let (st, v) = self.redeem(client, &code).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        v
    }

    async fn refresh(&self, client: &Client, token: &str) -> (StatusCode, Value) {
        self.token(
            client,
            &format!("grant_type=refresh_token&refresh_token={token}"),
        )
        .await
    }

    async fn userinfo(&self, token: &str) -> (StatusCode, axum::http::HeaderMap, Value) {
        self.send(
            Request::builder()
                .uri("/oauth2/userinfo")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await
    }

    async fn jwks(&self) -> Value {
        let (_, _, v) = self
            .send(
                Request::builder()
                    .uri("/oauth2/jwks")
                    .body(Body::empty())
                    .expect("request"),
            )
            .await;
        v
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn token_request(client: &Client, body: &str, origin: Option<&str>) -> Request<Body> {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri("/oauth2/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(o) = origin {
        b = b.header(header::ORIGIN, o);
    }
    let body = match &client.secret {
        Some(secret) => {
            b = b.header(
                header::AUTHORIZATION,
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("{}:{secret}", client.id))
                ),
            );
            body.to_owned()
        }
        None => format!("{body}&client_id={}", client.id),
    };
    b.body(Body::from(body)).expect("request")
}

/// The unverified claims of a JWT (the tests check signatures separately).
fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("b64");
    serde_json::from_slice(&bytes).expect("json")
}

fn header_of(jwt: &str) -> Value {
    let h = jwt.split('.').next().expect("header");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(h)
        .expect("b64");
    serde_json::from_slice(&bytes).expect("json")
}

fn s(v: &Value, k: &str) -> String {
    v[k].as_str()
        .unwrap_or_else(|| panic!("{k} in {v}"))
        .to_owned()
}

#[tokio::test]
async fn a_code_redeems_once_for_tokens_an_independent_library_accepts() {
    let app = App::new().await;
    let spa = app.spa().await;
    let session = app.session().await;
    let code = app
        .code(
            &spa,
            &session,
            "openid profile email offline_access orders:read",
        )
        .await;
    let (st, v) = app.redeem(&spa, &code).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(
        v["scope"],
        "email offline_access openid orders:read profile"
    );
    let refresh = s(&v, "refresh_token");
    assert!(refresh.starts_with("pcl_rt_"), "{refresh}");
    // The access token: RFC 9068 for a user.
    let at = claims(&s(&v, "access_token"));
    assert_eq!(at["sub"], app.user.as_str());
    assert_eq!(at["client_id"], spa.id.as_str());
    assert_eq!(at["aud"], "orders-api");
    assert_eq!(at["tenant"], "acme");
    assert_eq!(at["sid"], session.record.id.as_str());
    assert_eq!(at["auth_time"], session.record.auth_time.as_secs());
    assert_eq!(at["amr"], json!(["pwd"]));
    assert!(s(&at, "family_id").starts_with("rtf_"));
    assert_eq!(header_of(&s(&v, "access_token"))["typ"], "at+jwt");
    // The ID token, checked by jose's relying-party rules against the published keys...
    let id_token = s(&v, "id_token");
    let jwks = app.jwks().await;
    let keys = portcullis_jose::parse_jwk_set(&jwks, &portcullis_jose::Alg::SIGNING).expect("jwks");
    let verified = portcullis_jose::profile::id_token::verify(
        &id_token,
        8192,
        &portcullis_jose::Alg::SIGNING,
        &keys,
        &portcullis_jose::profile::id_token::Rules {
            issuer: common::ISSUER,
            client_id: &spa.id,
            nonce: Some("n-0S6_WzA2Mj"),
            leeway_s: 30,
            max_lifetime_s: 3600,
        },
        app.clock.now(),
    )
    .expect("id token");
    assert_eq!(verified.sub, app.user.as_str());
    let id = claims(&id_token);
    for (k, want) in [
        ("iss", json!(common::ISSUER)),
        ("aud", json!(spa.id)),
        ("azp", json!(spa.id)),
        ("nonce", json!("n-0S6_WzA2Mj")),
        ("sid", json!(session.record.id.as_str())),
        ("amr", json!(["pwd"])),
        ("auth_time", json!(session.record.auth_time.as_secs())),
    ] {
        assert_eq!(id[k], want, "{k}");
    }
    assert_eq!(header_of(&id_token)["typ"], "JWT");
    // ...and by an independent JWT library (signature with the JWKS key, iss, aud, exp).
    let kid = s(&header_of(&id_token), "kid");
    let jwk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("key of the kid");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).expect("jwk");
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[spa.id.as_str()]);
    validation.set_issuer(&[common::ISSUER]);
    // The manual clock is in the future of the wall clock: check exp against it ourselves.
    validation.validate_exp = false;
    let data = jsonwebtoken::decode::<Value>(&id_token, &key, &validation).expect("independent");
    assert!(data.claims["exp"].as_i64() > Some(app.clock.now().as_secs()));

    // Userinfo answers by scope.
    let (st, _, info) = app.userinfo(&s(&v, "access_token")).await;
    assert_eq!(st, StatusCode::OK, "{info}");
    assert_eq!(info["sub"], app.user.as_str());
    assert_eq!(info["name"], "Ada Lovelace");
    assert_eq!(info["preferred_username"], "ada");
    assert_eq!(info["email"], "ada@example.com");
    assert_eq!(info["email_verified"], true);

    // The code again: a replay. Refused, and what the first redemption issued is revoked.
    let (st, again) = app.redeem(&spa, &code).await;
    assert_eq!(
        (st, &again["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_grant")),
        "{again}"
    );
    assert!(again.get("access_token").is_none());
    let (st, h, _) = app.userinfo(&s(&v, "access_token")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert!(h[header::WWW_AUTHENTICATE]
        .to_str()
        .expect("ascii")
        .contains("error=\"invalid_token\""));
    let (st, gone) = app.refresh(&spa, &refresh).await;
    assert_eq!(
        (st, &gone["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_grant"))
    );
}

/// A client registered with `id_token_signed_response_alg = RS256` gets ID tokens signed by
/// the RS256 companion key, published in JWKS and checked by an independent library; its access
/// token is still signed by the installation's key. Other clients keep the default algorithm,
/// and an algorithm the server cannot sign with is refused at registration.
#[tokio::test]
async fn a_client_registered_for_rs256_gets_rs256_id_tokens() {
    let app = App::new().await;
    let body = |alg: &str| {
        json!({
            "name": "Legacy RP", "client_type": "public",
            "grant_types": ["authorization_code"], "redirect_uris": [REDIRECT],
            "scopes": ["openid", "profile"], "id_token_signed_response_alg": alg,
        })
    };
    let (st, v) = app
        .admin(
            Method::POST,
            "/admin/v1/tenants/acme/clients",
            body("HS256"),
        )
        .await;
    assert_eq!(
        (st, &v["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_client_metadata")),
        "{v}"
    );
    assert!(
        v["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("ES256, RS256")),
        "{v}"
    );
    let rp = app.client(body("RS256")).await;
    let (_, shown) = app
        .admin(
            Method::GET,
            &format!("/admin/v1/tenants/acme/clients/{}", rp.id),
            Value::Null,
        )
        .await;
    assert_eq!(shown["id_token_signed_response_alg"], "RS256", "{shown}");
    let session = app.session().await;
    let code = app.code(&rp, &session, "openid profile").await;
    let (st, v) = app.redeem(&rp, &code).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let id_token = s(&v, "id_token");
    assert_eq!(header_of(&id_token)["alg"], "RS256");
    assert_eq!(header_of(&s(&v, "access_token"))["alg"], "ES256");
    let kid = s(&header_of(&id_token), "kid");
    let jwks = app.jwks().await;
    let jwk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("the companion key is published");
    assert_eq!(jwk["kty"], "RSA");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).expect("jwk");
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("key");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[rp.id.as_str()]);
    validation.set_issuer(&[common::ISSUER]);
    validation.validate_exp = false;
    let data = jsonwebtoken::decode::<Value>(&id_token, &key, &validation).expect("independent");
    assert_eq!(data.claims["sub"], app.user.as_str());
    assert_eq!(data.claims["nonce"], "n-0S6_WzA2Mj");

    // Back to the installation's algorithm: `""` clears the registration.
    let (st, v) = app
        .admin(
            Method::PATCH,
            &format!("/admin/v1/tenants/acme/clients/{}", rp.id),
            json!({"id_token_signed_response_alg": ""}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert!(v.get("id_token_signed_response_alg").is_none(), "{v}");
    let code = app.code(&rp, &session, "openid").await;
    let (st, v) = app.redeem(&rp, &code).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(header_of(&s(&v, "id_token"))["alg"], "ES256");
}

/// `client` POSTs `body` to an OAuth endpoint other than the token endpoint, authenticated as
/// at the token endpoint.
async fn client_post(app: &App, client: &Client, path: &str, body: &str) -> (StatusCode, Value) {
    let mut req = token_request(client, body, None);
    *req.uri_mut() = path.parse().expect("uri");
    let (st, _, v) = app.send(req).await;
    (st, v)
}

/// RFC 7662 and RFC 7009 for refresh tokens: the owning client introspects its refresh token
/// (with or without the hint), any other client learns `active: false` and may not revoke it;
/// the owner's revocation ends the whole family with a `family` revocation entry, so the
/// family's access token and every one of its refresh tokens stop working.
#[tokio::test]
async fn refresh_tokens_introspect_for_their_client_only_and_revocation_ends_the_family() {
    let app = App::new().await;
    let web = |name: &str| {
        json!({
            "name": name, "client_type": "confidential",
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": [REDIRECT], "introspection": true,
            "scopes": ["openid", "offline_access", "orders:read"], "audiences": ["orders-api"],
        })
    };
    let owner = app.client(web("Web")).await;
    let other = app.client(web("Other web")).await;
    let session = app.session().await;
    let code = app
        .code(&owner, &session, "openid offline_access orders:read")
        .await;
    let (st, v) = app.redeem(&owner, &code).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let refresh = s(&v, "refresh_token");
    let access = s(&v, "access_token");
    let introspect = |client: &Client, extra: &str| {
        let body = format!("token={}{extra}", enc(&refresh));
        let client = client.clone();
        let app = &app;
        async move { client_post(app, &client, "/oauth2/introspect", &body).await }
    };

    for hint in [
        "",
        "&token_type_hint=refresh_token",
        "&token_type_hint=access_token",
    ] {
        let (st, i) = introspect(&owner, hint).await;
        assert_eq!(st, StatusCode::OK, "{i}");
        assert_eq!(i["active"], true, "{hint}: {i}");
        assert_eq!(i["token_type"], "refresh_token");
        assert_eq!(i["client_id"], owner.id.as_str());
        assert_eq!(i["sub"], app.user.as_str());
        assert_eq!(i["scope"], "offline_access openid orders:read");
        assert!(i["exp"].as_i64() > Some(app.clock.now().as_secs()), "{i}");
    }
    // Another client of the same tenant: nothing at all about it.
    let (st, i) = introspect(&other, "").await;
    assert_eq!((st, i), (StatusCode::OK, json!({"active": false})));
    // ...and it may not revoke it: refused, and the family lives on.
    let (st, e) = client_post(
        &app,
        &other,
        "/oauth2/revoke",
        &format!("token={}", enc(&refresh)),
    )
    .await;
    assert_eq!(
        (st, &e["error"]),
        (StatusCode::BAD_REQUEST, &json!("unauthorized_client")),
        "{e}"
    );
    assert_eq!(introspect(&owner, "").await.1["active"], true);

    // The owner revokes it: the family ends, with its entry in the revocation log.
    let head = app.store.revocation_head().await.expect("head");
    let (st, _) = client_post(
        &app,
        &owner,
        "/oauth2/revoke",
        &format!("token={}&token_type_hint=refresh_token", enc(&refresh)),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
    let family = s(&claims(&access), "family_id");
    let entries = app.store.revocations_after(head, 100).await.expect("log");
    assert!(
        entries
            .iter()
            .any(|e| e.kind == portcullis_store::RevocationKind::Family && e.subject == family),
        "{entries:?}"
    );
    assert_eq!(
        introspect(&owner, "").await,
        (StatusCode::OK, json!({"active": false}))
    );
    let (st, gone) = app.refresh(&owner, &refresh).await;
    assert_eq!(
        (st, &gone["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_grant"))
    );
    let (st, _, _) = app.userinfo(&access).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "the family's access token");
    // Revoking it again is nothing to do, and still 200 (RFC 7009 section 2.2).
    let (st, _) = client_post(
        &app,
        &owner,
        "/oauth2/revoke",
        &format!("token={}", enc(&refresh)),
    )
    .await;
    assert_eq!(st, StatusCode::OK);
}

#[tokio::test]
async fn codes_are_bound_to_client_redirect_uri_and_verifier() {
    let app = App::new().await;
    let spa = app.spa().await;
    let other = app
        .client(json!({
            "name": "Other", "client_type": "public",
            "redirect_uris": [REDIRECT], "scopes": ["openid"],
        }))
        .await;
    let session = app.session().await;
    let code = app.code(&spa, &session, "openid").await;
    let redirect = enc(REDIRECT);
    let refused = [
        // Another client, with everything else right.
        (
            other.clone(),
            format!(
                "grant_type=authorization_code&code={code}&redirect_uri={redirect}&code_verifier={VERIFIER}"
            ),
        ),
        // Another redirect URI (an added path, a prefix).
        (
            spa.clone(),
            format!(
                "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
                enc("https://app.example.com/callback/x")
            ),
        ),
        (
            spa.clone(),
            format!(
                "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
                enc("https://app.example.com/")
            ),
        ),
        // PKCE: missing, wrong, malformed (too short).
        (
            spa.clone(),
            format!("grant_type=authorization_code&code={code}&redirect_uri={redirect}"),
        ),
        (
            spa.clone(),
            format!(
                "grant_type=authorization_code&code={code}&redirect_uri={redirect}&code_verifier={}",
                VERIFIER.replace('d', "e")
            ),
        ),
        (
            spa.clone(),
            format!(
                "grant_type=authorization_code&code={code}&redirect_uri={redirect}&code_verifier=short"
            ),
        ),
        // Not a code at all.
        (
            spa.clone(),
            format!(
                "grant_type=authorization_code&code=nonsense&redirect_uri={redirect}&code_verifier={VERIFIER}"
            ),
        ),
    ];
    for (client, body) in &refused {
        let (st, v) = app.token(client, body).await;
        assert_eq!(
            (st, &v["error"]),
            (StatusCode::BAD_REQUEST, &json!("invalid_grant")),
            "{body}: {v}"
        );
        assert!(v.get("access_token").is_none());
    }
    // None of those used the code up: the right client with the right verifier still redeems.
    let (st, v) = app.redeem(&spa, &code).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // No offline_access asked: no refresh token; a missing code is invalid_request.
    assert!(v.get("refresh_token").is_none());
    let (st, v) = app
        .token(
            &spa,
            &format!("grant_type=authorization_code&redirect_uri={redirect}"),
        )
        .await;
    assert_eq!(
        (st, &v["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_request"))
    );
    // An expired code.
    let late = app.code(&spa, &session, "openid").await;
    app.advance(61);
    let (st, v) = app.redeem(&spa, &late).await;
    assert_eq!(
        (st, &v["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_grant"))
    );
    // A code of a revoked session.
    let session = app.session().await;
    let code = app.code(&spa, &session, "openid").await;
    app.state
        .sign_in
        .revoke_session(
            &session.record.tenant,
            session.record.id.as_str(),
            "test",
            Actor::system(),
            &RequestOrigin::default(),
        )
        .await
        .expect("revoke");
    let (st, v) = app.redeem(&spa, &code).await;
    assert_eq!(
        (st, &v["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_grant"))
    );
    // The audit log says why, the client never does.
    let mut app = app;
    if let Some(tasks) = app.tasks.take() {
        tasks.shutdown(&app.verifier).await;
    }
    let reasons: Vec<String> = common::audit_events(app.store.as_ref(), "acme")
        .await
        .into_iter()
        .filter(|e| e.action.as_str() == "oauth.token.issue")
        .filter_map(|e| e.reason.map(|r| r.as_str().to_owned()))
        .collect();
    for want in [
        "code_wrong_client",
        "code_wrong_redirect_uri",
        "pkce_mismatch",
        "pkce_verifier_malformed",
        "code_malformed",
        "code_expired",
        "session_ended",
    ] {
        assert!(reasons.iter().any(|r| r == want), "{want} in {reasons:?}");
    }
}

#[tokio::test]
async fn a_refresh_or_code_for_a_user_who_is_not_active_is_refused_and_rotates_nothing() {
    let app = App::new().await;
    let spa = app.spa().await;
    let r0 = s(&app.offline_grant(&spa).await, "refresh_token");
    let session = app.session().await;
    for status in [UserStatus::Disabled, UserStatus::Invited] {
        // A code issued while the user was active: its redemption is refused too.
        let code = app.code(&spa, &session, "openid orders:read").await;
        app.set_user_status(status).await;
        let (st, v) = app.refresh(&spa, &r0).await;
        assert_eq!(
            (st, &v["error"]),
            (StatusCode::BAD_REQUEST, &json!("invalid_grant")),
            "{status:?}: {v}"
        );
        let (st, v) = app.redeem(&spa, &code).await;
        assert_eq!(
            (st, &v["error"]),
            (StatusCode::BAD_REQUEST, &json!("invalid_grant")),
            "code for a {status:?} user: {v}"
        );
        app.set_user_status(UserStatus::Active).await;
    }
    // Active again: the same token still works, so the refusals rotated nothing.
    let (st, v) = app.refresh(&spa, &r0).await;
    assert_eq!(st, StatusCode::OK, "{v}");
}

#[tokio::test]
async fn refresh_tokens_rotate_share_a_grace_successor_and_reuse_revokes_the_family() {
    let app = App::new().await;
    let spa = app.spa().await;
    let first = app.offline_grant(&spa).await;
    let r0 = s(&first, "refresh_token");
    let family = s(&claims(&s(&first, "access_token")), "family_id");
    let verifier = embedded_verifier(&app, "orders-api").await;
    assert!(verifier_accepts(&app, &verifier, &s(&first, "access_token")).await);

    // Rotation: a new refresh token, an access token of the same family, an ID token.
    let (st, second) = app.refresh(&spa, &r0).await;
    assert_eq!(st, StatusCode::OK, "{second}");
    let r1 = s(&second, "refresh_token");
    assert_ne!(r1, r0);
    assert_eq!(
        claims(&s(&second, "access_token"))["family_id"],
        family.as_str()
    );
    assert_eq!(claims(&s(&second, "id_token"))["sub"], app.user.as_str());
    // Two tabs: the rotated token within the grace window gets the same successor.
    let (st, tab) = app.refresh(&spa, &r0).await;
    assert_eq!(st, StatusCode::OK, "{tab}");
    assert_eq!(s(&tab, "refresh_token"), r1);

    // Scope may narrow, never widen; a refused request rotates nothing.
    let (st, v) = app
        .token(
            &spa,
            &format!("grant_type=refresh_token&refresh_token={r1}&scope=orders:read+profile"),
        )
        .await;
    assert_eq!(
        (st, &v["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_scope")),
        "{v}"
    );
    let (st, narrow) = app
        .token(
            &spa,
            &format!("grant_type=refresh_token&refresh_token={r1}&scope=orders:read"),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{narrow}");
    assert_eq!(narrow["scope"], "orders:read");
    assert!(narrow.get("id_token").is_none());
    let r2 = s(&narrow, "refresh_token");

    // Another client presenting the token: refused, nothing changes.
    let thief = app
        .client(json!({
            "name": "Thief", "client_type": "public",
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": [REDIRECT], "scopes": ["openid", "offline_access"],
        }))
        .await;
    let (st, v) = app.refresh(&thief, &r2).await;
    assert_eq!(
        (st, &v["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_grant"))
    );
    // Garbage and a checksum-broken token: refused before any lookup. (The last character is
    // replaced by another one: a fixed replacement equals it one time in 64.)
    let other = if r2.ends_with('x') { 'y' } else { 'x' };
    for bad in ["nonsense", &format!("{}{other}", &r2[..r2.len() - 1])] {
        let (st, v) = app.refresh(&spa, bad).await;
        assert_eq!(
            (st, &v["error"]),
            (StatusCode::BAD_REQUEST, &json!("invalid_grant")),
            "{bad}"
        );
    }

    // After the grace window, a rotated token is a reuse: the whole family is revoked, and
    // with it every access token minted from it, at verifiers too.
    let access = s(&narrow, "access_token");
    assert!(verifier_accepts(&app, &verifier, &access).await);
    app.advance(11);
    let (st, v) = app.refresh(&spa, &r0).await;
    assert_eq!(
        (st, &v["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_grant"))
    );
    let (st, v) = app.refresh(&spa, &r2).await;
    assert_eq!(
        (st, &v["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_grant")),
        "{v}"
    );
    assert!(!verifier_accepts(&app, &verifier, &access).await);
    assert!(!verifier_accepts(&app, &verifier, &s(&first, "access_token")).await);
    let (st, _, _) = app.userinfo(&s(&second, "access_token")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn grants_a_client_is_not_registered_for_are_unauthorized_client() {
    let app = App::new().await;
    let only_code = app
        .client(json!({
            "name": "No refresh", "client_type": "public",
            "redirect_uris": [REDIRECT], "scopes": ["openid"],
        }))
        .await;
    let (st, v) = app
        .token(&only_code, "grant_type=refresh_token&refresh_token=x")
        .await;
    assert_eq!(
        (st, &v["error"]),
        (StatusCode::BAD_REQUEST, &json!("unauthorized_client")),
        "{v}"
    );
    let machine = app
        .client(json!({"name": "Machine", "audiences": ["orders-api"], "scopes": ["orders:read"]}))
        .await;
    let (st, v) = app
        .token(
            &machine,
            "grant_type=authorization_code&code=x&redirect_uri=y",
        )
        .await;
    assert_eq!(
        (st, &v["error"]),
        (StatusCode::BAD_REQUEST, &json!("unauthorized_client")),
        "{v}"
    );
    // A confidential app must authenticate: its client_id alone is not enough.
    let web = app
        .client(json!({
            "name": "Web", "grant_types": ["authorization_code"],
            "redirect_uris": [REDIRECT], "scopes": ["openid"],
        }))
        .await;
    let session = app.session().await;
    let code = app.code(&web, &session, "openid").await;
    let bare = Client {
        id: web.id.clone(),
        secret: None,
    };
    let (st, v) = app.redeem(&bare, &code).await;
    assert_eq!(
        (st, &v["error"]),
        (StatusCode::UNAUTHORIZED, &json!("invalid_client")),
        "{v}"
    );
    let (st, v) = app.redeem(&web, &code).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    // Unknown grant types stay unsupported.
    let (st, v) = app.token(&web, "grant_type=password").await;
    assert_eq!(
        (st, &v["error"]),
        (StatusCode::BAD_REQUEST, &json!("unsupported_grant_type"))
    );
}

#[tokio::test]
async fn userinfo_refuses_per_rfc_6750() {
    let app = App::new().await;
    let spa = app.spa().await;
    let session = app.session().await;
    let code = app.code(&spa, &session, "openid orders:read").await;
    let (_, v) = app.redeem(&spa, &code).await;
    let token = s(&v, "access_token");
    // openid only: sub alone, no profile or email claims.
    let (st, _, info) = app.userinfo(&token).await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(info.as_object().map(|o| o.len()), Some(1), "{info}");
    // POST works too.
    let (st, _, _) = app
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/oauth2/userinfo")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    // No token: 401 with a bare challenge.
    let (st, h, _) = app
        .send(
            Request::builder()
                .uri("/oauth2/userinfo")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    assert_eq!(h[header::WWW_AUTHENTICATE], "Bearer realm=\"portcullis\"");
    // A forged token.
    let (st, _, v) = app.userinfo("eyJhbGciOiJub25lIn0.e30.").await;
    assert_eq!(
        (st, &v["error"]),
        (StatusCode::UNAUTHORIZED, &json!("invalid_token"))
    );
    // A token without openid: 403 insufficient_scope.
    let code = app.code(&spa, &session, "orders:read").await;
    let (_, v) = app.redeem(&spa, &code).await;
    let (st, h, v) = app.userinfo(&s(&v, "access_token")).await;
    assert_eq!(
        (st, &v["error"]),
        (StatusCode::FORBIDDEN, &json!("insufficient_scope"))
    );
    assert!(h[header::WWW_AUTHENTICATE]
        .to_str()
        .expect("ascii")
        .contains("scope=\"openid\""));
    // A client-credentials token is no user's.
    let machine = app
        .client(json!({"name": "Machine", "audiences": ["orders-api"], "scopes": ["orders:read"]}))
        .await;
    let (_, v) = app.token(&machine, "grant_type=client_credentials").await;
    let (st, _, _) = app.userinfo(&s(&v, "access_token")).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
    // A disabled user.
    let tenant = TenantId::parse("acme").expect("tenant");
    app.set_user_status(UserStatus::Disabled).await;
    let (st, _, v) = app.userinfo(&token).await;
    assert_eq!(
        (st, &v["error"]),
        (StatusCode::UNAUTHORIZED, &json!("invalid_token"))
    );
    // A revoked session (user active again).
    app.set_user_status(UserStatus::Active).await;
    let (st, _, _) = app.userinfo(&token).await;
    assert_eq!(st, StatusCode::OK);
    app.state
        .sign_in
        .revoke_session(
            &tenant,
            session.record.id.as_str(),
            "test",
            Actor::system(),
            &RequestOrigin::default(),
        )
        .await
        .expect("revoke");
    let (st, _, _) = app.userinfo(&token).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn cors_answers_only_registered_origins() {
    let app = App::new().await;
    let spa = app.spa().await;
    let preflight = |path: &str, origin: &str| {
        Request::builder()
            .method(Method::OPTIONS)
            .uri(path)
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "authorization")
            .body(Body::empty())
            .expect("request")
    };
    for path in ["/oauth2/token", "/oauth2/userinfo"] {
        let (st, h, _) = app.send(preflight(path, ORIGIN)).await;
        assert_eq!(st, StatusCode::NO_CONTENT);
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], ORIGIN, "{path}");
        assert!(h.get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
        assert_eq!(h[header::VARY], "origin");
        for other in [
            "https://evil.example.com",
            "https://app.example.com.evil.example",
            "https://app.example.co",
            "http://app.example.com",
            "https://app_example.com",
        ] {
            let (_, h, _) = app.send(preflight(path, other)).await;
            assert!(
                h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(),
                "{other}"
            );
        }
    }
    let session = app.session().await;
    let code = app.code(&spa, &session, "openid").await;
    let body = format!(
        "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
        enc(REDIRECT)
    );
    let (st, h, v) = app.send(token_request(&spa, &body, Some(ORIGIN))).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], ORIGIN);
    // The registered origin of one client is not another client's.
    let other = app
        .client(json!({
            "name": "Other", "client_type": "public",
            "redirect_uris": [REDIRECT], "scopes": ["openid"],
        }))
        .await;
    let (_, h, _) = app
        .send(token_request(
            &other,
            "grant_type=authorization_code",
            Some(ORIGIN),
        ))
        .await;
    assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    let (_, h, _) = app
        .send(token_request(
            &spa,
            "grant_type=authorization_code",
            Some("https://evil.example"),
        ))
        .await;
    assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
    // Userinfo from the app's origin.
    let (st, h, _) = app
        .send(
            Request::builder()
                .uri("/oauth2/userinfo")
                .header(header::ORIGIN, ORIGIN)
                .header(
                    header::AUTHORIZATION,
                    format!("Bearer {}", s(&v, "access_token")),
                )
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], ORIGIN);

    // Preflights read a cached set of every registered origin; the test's clock never moves,
    // so only the invalidation on a client update can make the change seen: at once.
    let moved = "https://new.example.com";
    let (st, v) = app
        .admin(
            Method::PATCH,
            &format!("/admin/v1/tenants/acme/clients/{}", spa.id),
            json!({"allowed_web_origins": [moved]}),
        )
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (_, h, _) = app.send(preflight("/oauth2/token", ORIGIN)).await;
    assert!(
        h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none(),
        "the removed origin is refused at once"
    );
    let (_, h, _) = app.send(preflight("/oauth2/token", moved)).await;
    assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], moved);
}

#[tokio::test]
async fn discovery_serves_the_openid_configuration() {
    let app = App::new().await;
    let get = |path: &str| {
        Request::builder()
            .uri(path)
            .body(Body::empty())
            .expect("request")
    };
    let (st, _, oidc) = app.send(get("/.well-known/openid-configuration")).await;
    assert_eq!(st, StatusCode::OK);
    let (_, _, oauth) = app
        .send(get("/.well-known/oauth-authorization-server"))
        .await;
    assert_eq!(oidc, oauth);
    assert_eq!(oidc["issuer"], common::ISSUER);
    // The installation's algorithm, and RS256 as OpenID Connect requires (the companion key).
    assert_eq!(
        oidc["id_token_signing_alg_values_supported"],
        json!(["ES256", "RS256"])
    );
    assert_eq!(
        oidc["grant_types_supported"],
        json!([
            "authorization_code",
            "refresh_token",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:token-exchange",
            "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "urn:ietf:params:oauth:grant-type:device_code"
        ])
    );
    assert_eq!(oidc["subject_types_supported"], json!(["public"]));
}

/// Never called: the verifier has static keys.
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

/// A verify-library verifier of `audience` as a gateway embeds it, over this app's keys.
async fn embedded_verifier(app: &App, audience: &str) -> portcullis_verify::Verifier {
    let jwks = app.jwks().await;
    let clock: Arc<dyn Clock> = app.clock.clone();
    let verifier = portcullis_verify::Verifier::with_parts(
        portcullis_verify::VerifierConfig::new(
            portcullis_verify::IssuerConfig::new(
                common::ISSUER,
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

/// [`embedded_verifier`] with these DPoP settings.
async fn embedded_verifier_with(
    app: &App,
    audience: &str,
    dpop: portcullis_verify::DpopConfig,
) -> portcullis_verify::Verifier {
    let jwks = app.jwks().await;
    let clock: Arc<dyn Clock> = app.clock.clone();
    let mut cfg = portcullis_verify::VerifierConfig::new(
        portcullis_verify::IssuerConfig::new(
            common::ISSUER,
            portcullis_verify::KeySource::Static(jwks.to_string()),
        ),
        audience,
        portcullis_verify::RevocationSource::Embedded {
            staleness_bound: Duration::from_secs(3600),
        },
    );
    cfg.dpop = dpop;
    let verifier =
        portcullis_verify::Verifier::with_parts(cfg, clock, Arc::new(NoFetch)).expect("verifier");
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

/// An independent relying party, the `openidconnect` crate: discovery (and the JWKS it names),
/// code redemption with PKCE, and the ID token's validation (signature, issuer, audience,
/// nonce), over the assembled router.
#[tokio::test]
async fn the_openidconnect_crate_redeems_a_code_and_accepts_the_id_token() {
    use openidconnect::core::{CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata};
    use openidconnect::{
        AuthorizationCode, ClientId, IssuerUrl, Nonce, OAuth2TokenResponse, PkceCodeVerifier,
        RedirectUrl, TokenResponse,
    };

    let app = App::new().await;
    let spa = app.spa().await;
    let session = app.session().await;
    let code = app
        .code(&spa, &session, "openid email offline_access")
        .await;
    let router = app.router.clone();
    // The relying party's HTTP: every request goes to the router, whatever the host.
    let http = move |req: openidconnect::HttpRequest| {
        let router = router.clone();
        async move {
            let (parts, body) = req.into_parts();
            let uri = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            let mut b = Request::builder().method(parts.method).uri(uri);
            for (k, v) in &parts.headers {
                b = b.header(k, v);
            }
            let resp = router
                .oneshot(b.body(Body::from(body)).map_err(std::io::Error::other)?)
                .await
                .map_err(std::io::Error::other)?;
            let (parts, body) = resp.into_parts();
            let bytes = body
                .collect()
                .await
                .map_err(std::io::Error::other)?
                .to_bytes();
            Ok::<_, std::io::Error>(openidconnect::HttpResponse::from_parts(
                parts,
                bytes.to_vec(),
            ))
        }
    };
    let metadata = CoreProviderMetadata::discover_async(
        IssuerUrl::new(common::ISSUER.into()).expect("issuer"),
        &http,
    )
    .await
    .expect("discovery");
    let client = CoreClient::from_provider_metadata(metadata, ClientId::new(spa.id.clone()), None)
        .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).expect("redirect"));
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .expect("token endpoint")
        .set_pkce_verifier(PkceCodeVerifier::new(VERIFIER.into()))
        .request_async(&http)
        .await
        .expect("code redemption");
    assert!(tokens.refresh_token().is_some());
    let now = app.clock.now().as_secs();
    let verifier = client
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256])
        // The test's clock, not the wall clock.
        .set_time_fn(move || chrono::DateTime::from_timestamp(now, 0).expect("time"));
    let id_token = tokens.id_token().expect("id token");
    let claims = id_token
        .claims(&verifier, &Nonce::new("n-0S6_WzA2Mj".into()))
        .expect("the relying party accepts the ID token");
    assert_eq!(claims.subject().as_str(), app.user.as_str());
    // A wrong nonce is refused by the library too.
    assert!(id_token
        .claims(&verifier, &Nonce::new("another".into()))
        .is_err());
}

// DPoP (RFC 9449) end to end: the token endpoint binds, the refresh family of a public client
// is bound, and the verify library enforces the binding at the resource.

mod dpop {
    use super::*;
    use portcullis_jose::profile::dpop_proof::{ath, ProofClaims, ProofSigner};
    use portcullis_jose::{Alg, SigningKeyPair};

    const TOKEN_URI: &str = "http://127.0.0.1:8080/oauth2/token";
    const API_URI: &str = "https://api.example/orders/7";

    fn key(alg: Alg) -> ProofSigner {
        ProofSigner::new(SigningKeyPair::generate(alg).expect("key").1).expect("signer")
    }

    /// A fresh proof for the token endpoint at the app's time.
    fn proof(app: &App, k: &ProofSigner, jti: &str) -> String {
        k.sign(&ProofClaims {
            jti,
            htm: "POST",
            htu: TOKEN_URI,
            iat: app.clock.now().as_secs(),
            ath: None,
            nonce: None,
        })
        .expect("proof")
    }

    async fn token_with(
        app: &App,
        client: &Client,
        body: &str,
        proof: Option<&str>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = token_request(client, body, None);
        if let Some(p) = proof {
            req.headers_mut()
                .insert("dpop", p.parse().expect("header value"));
        }
        app.send(req).await
    }

    fn redeem_body(code: &str) -> String {
        format!(
            "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
            enc(REDIRECT)
        )
    }

    #[tokio::test]
    async fn a_public_clients_tokens_are_bound_to_its_dpop_key_and_refresh_needs_that_key() {
        let app = App::new().await;
        let spa = app.spa().await;
        let session = app.session().await;
        let code = app
            .code(&spa, &session, "openid offline_access orders:read")
            .await;
        let k = key(Alg::ES256);
        let (st, _, first) = token_with(
            &app,
            &spa,
            &redeem_body(&code),
            Some(&proof(&app, &k, "p-1")),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{first}");
        assert_eq!(first["token_type"], "DPoP");
        let at = s(&first, "access_token");
        assert_eq!(claims(&at)["cnf"]["jkt"], k.jkt().as_str());
        let r0 = s(&first, "refresh_token");

        // Refresh without a proof, or with another key: invalid_grant, nothing rotates.
        let (st, _, v) = token_with(
            &app,
            &spa,
            &format!("grant_type=refresh_token&refresh_token={r0}"),
            None,
        )
        .await;
        assert_eq!(
            (st, v["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant"))
        );
        let other = key(Alg::EdDSA);
        let (st, _, v) = token_with(
            &app,
            &spa,
            &format!("grant_type=refresh_token&refresh_token={r0}"),
            Some(&proof(&app, &other, "p-2")),
        )
        .await;
        assert_eq!(
            (st, v["error"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_grant"))
        );
        // With the key: rotates, and the new access token is bound again.
        let (st, _, v) = token_with(
            &app,
            &spa,
            &format!("grant_type=refresh_token&refresh_token={r0}"),
            Some(&proof(&app, &k, "p-3")),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["token_type"], "DPoP");
        assert_eq!(
            claims(&s(&v, "access_token"))["cnf"]["jkt"],
            k.jkt().as_str()
        );
        assert_ne!(s(&v, "refresh_token"), r0);

        // Without any proof, the same client gets an unbound token and family.
        let code = app
            .code(&spa, &session, "openid offline_access orders:read")
            .await;
        let (st, _, v) = token_with(&app, &spa, &redeem_body(&code), None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["token_type"], "Bearer");
        assert!(claims(&s(&v, "access_token")).get("cnf").is_none());
        let (st, _, v) = token_with(
            &app,
            &spa,
            &format!(
                "grant_type=refresh_token&refresh_token={}",
                s(&v, "refresh_token")
            ),
            None,
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
    }

    #[tokio::test]
    async fn bad_proofs_at_the_token_endpoint_are_invalid_dpop_proof_and_issue_nothing() {
        let app = App::new().await;
        let spa = app.spa().await;
        let session = app.session().await;
        let k = key(Alg::ES256);
        let (_, pair) = SigningKeyPair::generate(Alg::ES256).expect("key");
        let jwk = pair.public_jwk();
        let now = app.clock.now().as_secs();
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let claims_now = json!({"jti": "x-1", "htm": "POST", "htu": TOKEN_URI, "iat": now});
        let unsigned = |h: Value| format!("{}.{}.c2ln", b64(&h), b64(&claims_now));
        let mut private = jwk.clone();
        private["d"] = json!("AAAA");
        let at = |iat: i64, htm: &'static str, htu: &'static str, jti: &'static str| {
            k.sign(&ProofClaims {
                jti,
                htm,
                htu,
                iat,
                ath: None,
                nonce: None,
            })
            .expect("proof")
        };
        let replayed = at(now, "POST", TOKEN_URI, "used-once");
        let cases: Vec<(&str, String)> = vec![
            (
                "alg none",
                format!(
                    "{}.{}.",
                    b64(&json!({"typ": "dpop+jwt", "alg": "none", "jwk": jwk})),
                    b64(&claims_now)
                ),
            ),
            (
                "HS256",
                unsigned(json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": jwk})),
            ),
            (
                "private jwk",
                unsigned(json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private})),
            ),
            ("htm of another request", at(now, "GET", TOKEN_URI, "x-2")),
            (
                "htu of another request",
                at(
                    now,
                    "POST",
                    "http://127.0.0.1:8080/oauth2/introspect",
                    "x-3",
                ),
            ),
            ("iat far past", at(now - 3_600, "POST", TOKEN_URI, "x-4")),
            ("iat far future", at(now + 3_600, "POST", TOKEN_URI, "x-5")),
            ("not a jwt", "garbage".to_owned()),
        ];
        // A good proof once, then replayed.
        let code = app.code(&spa, &session, "openid orders:read").await;
        let (st, _, v) = token_with(&app, &spa, &redeem_body(&code), Some(&replayed)).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let mut all = cases;
        all.push(("replayed jti", replayed));
        for (what, p) in all {
            let code = app.code(&spa, &session, "openid orders:read").await;
            let (st, h, v) = token_with(&app, &spa, &redeem_body(&code), Some(&p)).await;
            assert_eq!(st, StatusCode::BAD_REQUEST, "{what}: {v}");
            assert_eq!(v["error"], "invalid_dpop_proof", "{what}");
            assert_eq!(h[header::CACHE_CONTROL], "no-store");
            // The code was not spent: a good proof still redeems it.
            let (st, _, v) = token_with(
                &app,
                &spa,
                &redeem_body(&code),
                Some(&proof(&app, &k, &format!("ok-{what}"))),
            )
            .await;
            assert_eq!(st, StatusCode::OK, "{what}: {v}");
        }
    }

    /// A client registered with `dpop_bound_access_tokens` (`--require-dpop`) gets nothing
    /// without a valid proof, whatever the grant; with one, bound tokens. Turning it off
    /// through the admin API admits bearer tokens again.
    #[tokio::test]
    async fn a_client_that_requires_dpop_gets_no_token_without_a_proof_whatever_the_grant() {
        let app = App::new().await;
        let spa = app
            .client(json!({
                "name": "Bound", "client_type": "public",
                "grant_types": ["authorization_code", "refresh_token"],
                "redirect_uris": [REDIRECT], "allowed_web_origins": [ORIGIN],
                "scopes": ["openid", "offline_access", "orders:read"],
                "audiences": ["orders-api"], "dpop_bound_access_tokens": true,
            }))
            .await;
        let machine = app
            .client(json!({"name": "Machine", "audiences": ["orders-api"],
                           "scopes": ["orders:read"], "dpop_bound_access_tokens": true}))
            .await;
        let (st, shown) = app
            .admin(
                Method::GET,
                &format!("/admin/v1/tenants/acme/clients/{}", machine.id),
                Value::Null,
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{shown}");
        assert_eq!(shown["dpop_bound_access_tokens"], true);
        let session = app.session().await;
        let k = key(Alg::ES256);
        let refused = |st: StatusCode, h: &axum::http::HeaderMap, v: &Value, what: &str| {
            assert_eq!(
                (st, v["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_dpop_proof")),
                "{what}: {v}"
            );
            assert!(v.get("access_token").is_none(), "{what}");
            assert_eq!(h[header::CACHE_CONTROL], "no-store");
        };

        // The code grant: no proof, then an invalid one; the code is not spent by either.
        let code = app
            .code(&spa, &session, "openid offline_access orders:read")
            .await;
        let (st, h, v) = token_with(&app, &spa, &redeem_body(&code), None).await;
        refused(st, &h, &v, "code without a proof");
        let stale = k
            .sign(&ProofClaims {
                jti: "old",
                htm: "POST",
                htu: TOKEN_URI,
                iat: app.clock.now().as_secs() - 3_600,
                ath: None,
                nonce: None,
            })
            .expect("proof");
        let (st, h, v) = token_with(&app, &spa, &redeem_body(&code), Some(&stale)).await;
        refused(st, &h, &v, "code with a stale proof");
        let (st, _, v) = token_with(
            &app,
            &spa,
            &redeem_body(&code),
            Some(&proof(&app, &k, "rq-1")),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["token_type"], "DPoP");
        let r0 = s(&v, "refresh_token");

        // Refresh: no proof is invalid_dpop_proof (checked before the grant), the family is
        // untouched and rotates with the key.
        let refresh = format!("grant_type=refresh_token&refresh_token={r0}");
        let (st, h, v) = token_with(&app, &spa, &refresh, None).await;
        refused(st, &h, &v, "refresh without a proof");
        let (st, _, v) = token_with(&app, &spa, &refresh, Some(&proof(&app, &k, "rq-2"))).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["token_type"], "DPoP");

        // Client credentials: the same rule.
        let (st, h, v) = token_with(&app, &machine, "grant_type=client_credentials", None).await;
        refused(st, &h, &v, "client credentials without a proof");
        let (st, _, v) = token_with(
            &app,
            &machine,
            "grant_type=client_credentials",
            Some(&proof(&app, &k, "rq-3")),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["token_type"], "DPoP");
        assert_eq!(
            claims(&s(&v, "access_token"))["cnf"]["jkt"],
            k.jkt().as_str()
        );

        // Not required any more: a bearer token again.
        let (st, v) = app
            .admin(
                Method::PATCH,
                &format!("/admin/v1/tenants/acme/clients/{}", machine.id),
                json!({"dpop_bound_access_tokens": false}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["dpop_bound_access_tokens"], false);
        let (st, _, v) = token_with(&app, &machine, "grant_type=client_credentials", None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["token_type"], "Bearer");
    }

    /// A code bound with `dpop_jkt` (RFC 9449 section 10) redeems only with a proof of that
    /// key, and a refused attempt does not spend it.
    #[tokio::test]
    async fn a_code_bound_with_dpop_jkt_redeems_only_with_a_proof_of_that_key() {
        let app = App::new().await;
        let spa = app.spa().await;
        let session = app.session().await;
        let k = key(Alg::ES256);
        let code = app
            .state
            .sign_in
            .issue_code(CodeRequest {
                client_id: &portcullis_core::client::ClientId::parse(&spa.id).expect("client id"),
                redirect_uri: REDIRECT,
                code_challenge: &portcullis_core::auth_code::s256_challenge(VERIFIER),
                nonce: None,
                scope: vec!["openid".into(), "orders:read".into()],
                dpop_jkt: Some(k.jkt().as_str()),
                session: &session.record,
            })
            .await
            .expect("code")
            .expose()
            .to_owned();
        let other = key(Alg::ES256);
        for (what, p) in [
            ("no proof", None),
            ("another key", Some(proof(&app, &other, "jk-1"))),
        ] {
            let (st, _, v) = token_with(&app, &spa, &redeem_body(&code), p.as_deref()).await;
            assert_eq!(
                (st, v["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("invalid_grant")),
                "{what}: {v}"
            );
        }
        let (st, _, v) = token_with(
            &app,
            &spa,
            &redeem_body(&code),
            Some(&proof(&app, &k, "jk-2")),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(
            claims(&s(&v, "access_token"))["cnf"]["jkt"],
            k.jkt().as_str()
        );
    }

    /// The proof a client sends to the API with its access token.
    fn resource_proof(k: &ProofSigner, token: &str, jti: &str, now: i64) -> String {
        k.sign(&ProofClaims {
            jti,
            htm: "GET",
            htu: API_URI,
            iat: now,
            ath: Some(ath(token)),
            nonce: None,
        })
        .expect("proof")
    }

    #[tokio::test]
    async fn the_verify_library_enforces_the_binding_and_every_proof_rule() {
        use portcullis_verify::{DpopRequest, Reason};
        let app = App::new().await;
        let spa = app.spa().await;
        let session = app.session().await;
        let code = app.code(&spa, &session, "openid orders:read").await;
        let k = key(Alg::EdDSA);
        let (st, _, v) = token_with(
            &app,
            &spa,
            &redeem_body(&code),
            Some(&proof(&app, &k, "t-1")),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let bound = s(&v, "access_token");
        let code = app.code(&spa, &session, "openid orders:read").await;
        let (_, _, v) = token_with(&app, &spa, &redeem_body(&code), None).await;
        let bearer = s(&v, "access_token");
        let verifier = embedded_verifier(&app, "orders-api").await;
        assert!(verifier_accepts(&app, &verifier, &bearer).await);
        let now = app.clock.now().as_secs();
        let check =
            |token: &str, proof: Option<String>, method: &'static str, uri: &'static str| {
                let verifier = verifier.clone();
                let token = token.to_owned();
                async move {
                    verifier
                        .verify_dpop_access_token(
                            &token,
                            &DpopRequest {
                                method,
                                uri,
                                proof: proof.as_deref(),
                            },
                            "orders-api",
                        )
                        .await
                        .map(|p| p.confirmation.clone())
                        .map_err(|d| d.reason)
                }
            };
        // The right key, ath, method and URI: accepted, with the confirmation for the app.
        let good = resource_proof(&k, &bound, "r-1", now);
        let cnf = check(&bound, Some(good.clone()), "GET", API_URI)
            .await
            .expect("accepted");
        assert_eq!(cnf.and_then(|c| c.jkt).as_ref(), Some(k.jkt()));
        // Replayed proof.
        assert_eq!(
            check(&bound, Some(good), "GET", API_URI).await,
            Err(Reason::DpopReplayed)
        );
        // The bound token as Bearer.
        assert_eq!(
            verifier
                .verify_access_token(&bound)
                .await
                .map(|_| ())
                .map_err(|d| d.reason),
            Err(Reason::Binding(
                portcullis_verify::BindingError::DpopBoundAsBearer
            ))
        );
        // No proof; a proof by another key; ath of another token; another method or URI.
        assert_eq!(
            check(&bound, None, "GET", API_URI).await,
            Err(Reason::DpopProofMissing)
        );
        let other = key(Alg::ES256);
        assert_eq!(
            check(
                &bound,
                Some(resource_proof(&other, &bound, "r-2", now)),
                "GET",
                API_URI
            )
            .await,
            Err(Reason::Binding(
                portcullis_verify::BindingError::DpopKeyMismatch
            ))
        );
        // Each a proof of the bound key that names another request: the access token of
        // `ath`, the proof's age, the method, the URI.
        for (ath_of, jti, iat, method, uri) in [
            (&bearer, "r-3", now, "GET", API_URI),
            (&bound, "r-4", now, "DELETE", API_URI),
            (&bound, "r-5", now, "GET", "https://api.example/orders/8"),
            (&bound, "r-6", now - 3_600, "GET", API_URI),
        ] {
            let proof = resource_proof(&k, ath_of, jti, iat);
            assert!(
                matches!(
                    check(&bound, Some(proof), method, uri).await,
                    Err(Reason::DpopProof(_))
                ),
                "{jti}"
            );
        }
    }

    /// The embedded gateway's DPoP nonces, with `gateway.dpop_require_nonce` and no
    /// `dpop_nonce_secret_file`: the nonce key is derived from the KEK, so a nonce node A hands
    /// out is accepted by node B holding the same KEK file, and refused by a node of another
    /// installation (another KEK); a configured secret file replaces the derived key.
    #[tokio::test]
    async fn embedded_gateways_with_the_same_kek_accept_each_others_nonces() {
        use portcullis_server::config::GatewayEmbedConfig;
        use portcullis_service::kek::{Kek, Keyring};
        use portcullis_verify::{DpopRequest, Reason};
        let app = App::new().await;
        let spa = app.spa().await;
        let session = app.session().await;
        let code = app.code(&spa, &session, "openid orders:read").await;
        let k = key(Alg::ES256);
        let (st, _, v) = token_with(
            &app,
            &spa,
            &redeem_body(&code),
            Some(&proof(&app, &k, "t-1")),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        let bound = s(&v, "access_token");
        let embed = GatewayEmbedConfig {
            dpop_require_nonce: true,
            ..GatewayEmbedConfig::default()
        };
        let node = |kek: [u8; 32], embed: GatewayEmbedConfig| {
            let app = &app;
            async move {
                let dpop = portcullis_server::gateway::dpop_config(
                    &embed,
                    &Keyring::new(Kek::from_bytes(kek)),
                )
                .expect("dpop config");
                assert!(dpop.require_nonce);
                embedded_verifier_with(app, "orders-api", dpop).await
            }
        };
        let a = node([1; 32], embed.clone()).await;
        let b = node([1; 32], embed.clone()).await;
        let other = node([2; 32], embed.clone()).await;
        let now = app.clock.now().as_secs();
        let check =
            |verifier: &portcullis_verify::Verifier, jti: &'static str, nonce: Option<String>| {
                let verifier = verifier.clone();
                let proof = k
                    .sign(&ProofClaims {
                        jti,
                        htm: "GET",
                        htu: API_URI,
                        iat: now,
                        ath: Some(ath(&bound)),
                        nonce: nonce.as_deref(),
                    })
                    .expect("proof");
                let token = bound.clone();
                async move {
                    verifier
                        .verify_dpop_access_token(
                            &token,
                            &DpopRequest {
                                method: "GET",
                                uri: API_URI,
                                proof: Some(&proof),
                            },
                            "orders-api",
                        )
                        .await
                        .map(|_| ())
                        .map_err(|d| d.reason)
                }
            };
        // Without a nonce: refused (the answer carries A's nonce).
        assert_eq!(check(&a, "n-1", None).await, Err(Reason::DpopNonce));
        let nonce = a.dpop_nonce();
        // A's nonce at B (same KEK): accepted; at the other installation: refused.
        assert_eq!(check(&b, "n-2", Some(nonce.clone())).await, Ok(()));
        assert_eq!(
            check(&other, "n-3", Some(nonce.clone())).await,
            Err(Reason::DpopNonce)
        );
        assert_eq!(check(&a, "n-4", Some(nonce.clone())).await, Ok(()));
        // A secret file replaces the derived key: such a node refuses the KEK-derived nonce
        // even with the same KEK, and two nodes given the file agree.
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("nonce");
        std::fs::write(&file, [b'x'; 40]).expect("write");
        let with_file = GatewayEmbedConfig {
            dpop_nonce_secret_file: Some(file.clone()),
            ..embed.clone()
        };
        let f1 = node([1; 32], with_file.clone()).await;
        let f2 = node([2; 32], with_file).await;
        assert_eq!(check(&f1, "n-5", Some(nonce)).await, Err(Reason::DpopNonce));
        assert_eq!(check(&f2, "n-6", Some(f1.dpop_nonce())).await, Ok(()));
        // A file that is too short is refused at start, not used.
        std::fs::write(&file, b"short").expect("write");
        let short = GatewayEmbedConfig {
            dpop_nonce_secret_file: Some(file),
            ..embed
        };
        assert!(portcullis_server::gateway::dpop_config(
            &short,
            &Keyring::new(Kek::from_bytes([1; 32]))
        )
        .is_err());
    }

    /// Runs `dpop_proof.mjs` (oauth4webapi) with `args`; `None` when node or the library is not
    /// installed (then CI fails, elsewhere the check is skipped with a notice).
    fn oauth4webapi(now: i64, args: &[&str]) -> Option<Value> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/tests/discovery");
        if !dir.join("node_modules/oauth4webapi").is_dir() {
            assert!(
                std::env::var("CI").is_err(),
                "oauth4webapi must be installed in CI (npm ci in crates/cli/tests/discovery)"
            );
            eprintln!(
                "notice: oauth4webapi is not installed; skipping the independent DPoP client"
            );
            return None;
        }
        let out = std::process::Command::new("node")
            .arg(dir.join("dpop_proof.mjs"))
            .arg(now.to_string())
            .args(args)
            .output()
            .ok()?;
        assert!(
            out.status.success(),
            "oauth4webapi failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Some(serde_json::from_slice(&out.stdout).expect("json"))
    }

    #[tokio::test]
    async fn proofs_made_by_oauth4webapi_are_accepted_at_the_token_endpoint_and_the_resource() {
        let app = App::new().await;
        let spa = app.spa().await;
        let session = app.session().await;
        let code = app.code(&spa, &session, "openid orders:read").await;
        let now = app.clock.now().as_secs();
        let Some(made) = oauth4webapi(now, &["new", TOKEN_URI, "POST"]) else {
            return;
        };
        let (st, _, v) = token_with(&app, &spa, &redeem_body(&code), made["proof"].as_str()).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["token_type"], "DPoP");
        let token = s(&v, "access_token");
        assert_eq!(claims(&token)["cnf"]["jkt"], made["jkt"]);

        let verifier = embedded_verifier(&app, "orders-api").await;
        let key = made["key"].to_string();
        let at_api = oauth4webapi(now, &["with", &key, API_URI, "GET", &token]).expect("proof");
        let principal = verifier
            .verify_dpop_access_token(
                &token,
                &portcullis_verify::DpopRequest {
                    method: "GET",
                    uri: API_URI,
                    proof: at_api["proof"].as_str(),
                },
                "orders-api",
            )
            .await
            .expect("accepted");
        assert_eq!(
            principal
                .confirmation
                .as_ref()
                .and_then(|c| c.jkt.as_ref())
                .map(|j| j.as_str()),
            made["jkt"].as_str()
        );
        // The same library's proof for another token (ath) is refused.
        let other = oauth4webapi(now, &["with", &key, API_URI, "GET", "another.token.value"])
            .expect("proof");
        assert!(verifier
            .verify_dpop_access_token(
                &token,
                &portcullis_verify::DpopRequest {
                    method: "GET",
                    uri: API_URI,
                    proof: other["proof"].as_str(),
                },
                "orders-api",
            )
            .await
            .is_err());
    }
}

/// RFC 8705 for a web app that authenticates with its certificate (`tls_client_auth`): the
/// code redeems over a connection with the certificate (here the listener's request extension)
/// for an access token bound to it, and its refresh tokens refresh only with that same
/// certificate: another one from the same CA with the same SAN authenticates the client, but
/// the refresh is `invalid_grant` and rotates nothing; no certificate at all does not
/// authenticate.
#[tokio::test]
async fn an_mtls_clients_refresh_tokens_are_bound_to_its_certificate() {
    use portcullis_core::confirmation::ClientCertificate;
    let app = App::new().await;
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(p, rcgen::KeyPair::generate().expect("key"))
        .expect("ca");
    let leaf = || {
        let mut p = rcgen::CertificateParams::new(vec!["web.acme.test".to_owned()]).expect("p");
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        p.signed_by(&rcgen::KeyPair::generate().expect("key"), &ca)
            .expect("sign")
            .der()
            .to_vec()
    };
    let (mine, twin) = (leaf(), leaf());
    let (st, v) = app
        .admin(
            Method::POST,
            "/admin/v1/tenants/acme/ca-sets",
            json!({"name": "web", "pem": ca.pem()}),
        )
        .await;
    assert_eq!(st, StatusCode::CREATED, "{v}");
    let web = app
        .client(json!({
            "name": "Web", "auth_method": "tls_client_auth",
            "tls_client_auth_san_dns": "web.acme.test",
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": [REDIRECT],
            "scopes": ["openid", "offline_access", "orders:read"],
            "audiences": ["orders-api"],
        }))
        .await;
    assert!(web.secret.is_none());
    // A certificate authenticates it: no secret may be minted for it by a rotation either.
    let (st, v) = app
        .admin(
            Method::POST,
            &format!("/admin/v1/tenants/acme/clients/{}/rotate-secret", web.id),
            json!({}),
        )
        .await;
    assert_eq!(
        (st, &v["error"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_request")),
        "{v}"
    );
    assert!(app
        .store
        .list_client_secrets(&web.id)
        .await
        .expect("secrets")
        .is_empty());
    let with_cert = |body: String, der: Option<&Vec<u8>>| {
        let mut req = token_request(&web, &body, None);
        if let Some(der) = der {
            req.extensions_mut()
                .insert(ClientCertificate::from_der(der.clone()));
        }
        req
    };
    let session = app.session().await;
    let code = app
        .code(&web, &session, "openid offline_access orders:read")
        .await;
    let (st, _, v) = app
        .send(with_cert(
            format!(
                "grant_type=authorization_code&code={code}&redirect_uri={}&code_verifier={VERIFIER}",
                enc(REDIRECT)
            ),
            Some(&mine),
        ))
        .await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let x5t = ClientCertificate::from_der(mine.clone())
        .thumbprint()
        .as_str()
        .to_owned();
    assert_eq!(
        claims(&s(&v, "access_token"))["cnf"]["x5t#S256"],
        x5t.as_str()
    );
    let refresh = s(&v, "refresh_token");
    let body = format!("grant_type=refresh_token&refresh_token={refresh}");
    let (st, _, v) = app.send(with_cert(body.clone(), Some(&twin))).await;
    assert_eq!(st, StatusCode::BAD_REQUEST, "{v}");
    assert_eq!(v["error"], "invalid_grant");
    let (st, _, v) = app.send(with_cert(body.clone(), None)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "{v}");
    // Nothing rotated: the same refresh token still works with the right certificate.
    let (st, _, v) = app.send(with_cert(body, Some(&mine))).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    assert_eq!(
        claims(&s(&v, "access_token"))["cnf"]["x5t#S256"],
        x5t.as_str()
    );
}

/// The token endpoint reads a tenant's CA sets once into cached trust anchors; a CA set created
/// or removed through the admin API takes effect on the very next request (the manual clock
/// never lets the cached anchors expire here, so only the invalidation can make it so): a
/// certificate of a removed CA is refused, one of a newly added CA authenticates.
#[tokio::test]
async fn a_ca_set_change_takes_effect_at_once_and_a_removed_ca_refuses() {
    use portcullis_core::confirmation::ClientCertificate;
    let app = App::new().await;
    let ca = || {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        rcgen::CertifiedIssuer::self_signed(p, rcgen::KeyPair::generate().expect("key"))
            .expect("ca")
    };
    let leaf = |ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>| {
        let mut p = rcgen::CertificateParams::new(vec!["svc.acme.test".to_owned()]).expect("p");
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        p.signed_by(&rcgen::KeyPair::generate().expect("key"), ca)
            .expect("sign")
            .der()
            .to_vec()
    };
    let (first, second) = (ca(), ca());
    let (of_first, of_second) = (leaf(&first), leaf(&second));
    let add = |name: &'static str, pem: String| {
        let app = &app;
        async move {
            let (st, v) = app
                .admin(
                    Method::POST,
                    "/admin/v1/tenants/acme/ca-sets",
                    json!({"name": name, "pem": pem}),
                )
                .await;
            assert_eq!(st, StatusCode::CREATED, "{v}");
            s(&v, "id")
        }
    };
    let first_id = add("first", first.pem()).await;
    let svc = app
        .client(json!({
            "name": "Svc", "auth_method": "tls_client_auth",
            "tls_client_auth_san_dns": "svc.acme.test",
            "grant_types": ["client_credentials"],
            "scopes": ["orders:read"], "audiences": ["orders-api"],
        }))
        .await;
    let grant = |der: &Vec<u8>| {
        let mut req = token_request(&svc, "grant_type=client_credentials", None);
        req.extensions_mut()
            .insert(ClientCertificate::from_der(der.clone()));
        req
    };
    let (st, _, v) = app.send(grant(&of_first)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
    let (st, _, v) = app.send(grant(&of_second)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "not yet trusted: {v}");
    assert_eq!(v["error"], "invalid_client");

    // A second CA added: its certificates authenticate at once, the first CA's still do.
    add("second", second.pem()).await;
    let (st, _, v) = app.send(grant(&of_second)).await;
    assert_eq!(st, StatusCode::OK, "added CA: {v}");
    let (st, _, v) = app.send(grant(&of_first)).await;
    assert_eq!(st, StatusCode::OK, "{v}");

    // The first CA removed: its certificates are refused on the next request.
    let (st, v) = app
        .admin(
            Method::DELETE,
            &format!("/admin/v1/tenants/acme/ca-sets/{first_id}"),
            Value::Null,
        )
        .await;
    assert_eq!(st, StatusCode::NO_CONTENT, "{v}");
    let (st, _, v) = app.send(grant(&of_first)).await;
    assert_eq!(st, StatusCode::UNAUTHORIZED, "removed CA: {v}");
    assert_eq!(v["error"], "invalid_client");
    let (st, _, v) = app.send(grant(&of_second)).await;
    assert_eq!(st, StatusCode::OK, "{v}");
}
