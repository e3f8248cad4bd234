//! RP-initiated logout (issue 16 item 9) through the assembled app: an ID token hint for the
//! browser's session signs it out at once and redirects only to an exactly registered URI with
//! `state`; open-redirect attempts get the signed-out page; forged and foreign hints are refused
//! and change nothing; without a hint the user confirms on a CSRF-protected form; a session
//! ended here is refused by the one revocation rule for tokens carrying its `sid`.

use crate::common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use portcullis_core::audit::Actor;
use portcullis_core::client::{ApplicationType, ClientType};
use portcullis_core::revocation::{RevocationSet, TokenIdentity};
use portcullis_core::signing::SigningAlgorithm;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{Clock, ManualClock, Timestamp};
use portcullis_http::pages::CookiePolicy;
use portcullis_server::serve::{Assembled, BackgroundTasks};
use portcullis_service::audit::RequestOrigin;
use portcullis_service::sign_in::NewSession;
use portcullis_service::state::AppState;
use portcullis_store::{ClientStatus, OAuthClient, RevocationEntry, SqliteStore, Store};
use serde_json::json;
use tower::ServiceExt;

const BYE: &str = "https://app.example/bye";
const OTHER_BYE: &str = "https://other.example/bye";
const USER_1: &str = "usr_01aaaaaaaaaaaaaaaaaaaaaaaa";
const USER_2: &str = "usr_01bbbbbbbbbbbbbbbbbbbbbbbb";

struct App {
    router: Router,
    state: AppState,
    admins: common::Admins,
    clock: Arc<ManualClock>,
    _tasks: BackgroundTasks,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    set_cookie: Vec<String>,
    body: String,
}

fn tid(s: &str) -> TenantId {
    TenantId::parse(s).expect("tenant")
}

fn client(id: &str, bye: &str) -> OAuthClient {
    OAuthClient {
        id: id.into(),
        tenant: tid("acme"),
        name: format!("App {id}"),
        environment: "live".into(),
        auth_method: "none".into(),
        grant_types: vec!["authorization_code".into()],
        scopes: vec!["openid".into()],
        audiences: vec![],
        access_token_ttl_secs: 600,
        can_introspect: false,
        jwks: None,
        jwks_uri: None,
        status: ClientStatus::Active,
        created_at: Timestamp::from_secs(1),
        updated_at: Timestamp::from_secs(1),
        last_used_at: None,
        client_type: ClientType::Public,
        application_type: ApplicationType::Web,
        redirect_uris: vec!["https://app.example/cb".into()],
        post_logout_redirect_uris: vec![bye.into()],
        allowed_web_origins: vec![],
        first_party: true,
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        require_pushed_requests: false,
        require_dpop: false,
        id_token_signed_response_alg: None,
        tls_subject: None,
        certificate_bound_tokens: false,
    }
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
        for c in [client("cl_web", BYE), client("cl_other", OTHER_BYE)] {
            store.create_client(&c, None).await.expect("client");
        }
        let mut config = common::config(dir.path());
        // The delivery task makes its first pass at start and then waits a minute: the tests
        // read the queue themselves, with no pass racing them.
        config.logout.backchannel_poll_interval_ms = 60_000;
        let Assembled {
            router,
            state,
            tasks,
            ..
        } = common::assemble(&config, common::ISSUER, store, clock.clone()).await;
        Self {
            router,
            state,
            admins,
            clock,
            _tasks: tasks,
            _dir: dir,
        }
    }

    /// A signed-in browser: (cookie header, sid).
    async fn session(&self, user: &str) -> (String, String) {
        let s = self
            .state
            .sign_in
            .create_session(
                NewSession {
                    tenant: tid("acme"),
                    user_id: portcullis_core::user::UserId::parse(user).expect("user id"),
                    amr: vec!["pwd".into()],
                    acr: None,
                },
                None,
                Actor::system(),
                &RequestOrigin::default(),
            )
            .await
            .expect("session");
        let name = CookiePolicy::for_issuer(common::ISSUER).session_name(&tid("acme"));
        (
            format!("{name}={}", s.secret.expose()),
            s.sid.as_str().to_owned(),
        )
    }

    async fn active(&self, cookie: &str) -> bool {
        let value = cookie.split_once('=').expect("cookie").1;
        self.state
            .sign_in
            .resolve_session(&tid("acme"), value)
            .await
            .expect("resolve")
            .is_some()
    }

    /// An ID token as the token endpoint would issue it, signed (by an independent JWT library)
    /// with `pkcs8`, or with the server's active key.
    fn id_token(&self, claims: serde_json::Value, pkcs8: Option<&[u8]>) -> String {
        let active = self.state.keys.active().expect("active key");
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(active.kid.clone());
        header.typ = Some("JWT".into());
        let der = pkcs8.unwrap_or(active.private_pkcs8());
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_ec_der(der)).expect("sign")
    }

    fn claims(&self, sub: &str, aud: &str, sid: &str) -> serde_json::Value {
        let now = self.clock.now().as_secs();
        json!({"iss": common::ISSUER, "sub": sub, "aud": aud, "iat": now, "exp": now + 300,
               "sid": sid, "auth_time": now})
    }

    async fn send(
        &self,
        method: Method,
        query: &str,
        cookie: Option<&str>,
        body: Option<String>,
    ) -> Answer {
        let uri = match method {
            Method::GET => format!("/oauth2/logout?{query}"),
            _ => "/oauth2/logout".to_owned(),
        };
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(b)
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
        let location = resp
            .headers()
            .get(header::LOCATION)
            .map(|v| v.to_str().expect("ascii").to_owned());
        let set_cookie = resp
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("ascii").to_owned())
            .collect();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        Answer {
            status,
            location,
            set_cookie,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, pairs: &[(&str, &str)], cookie: Option<&str>) -> Answer {
        let q = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.send(Method::GET, &q, cookie, None).await
    }

    async fn post(&self, pairs: &[(&str, &str)], cookie: Option<&str>) -> Answer {
        let b = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.send(Method::POST, "", cookie, Some(b)).await
    }

    /// Whether the one revocation rule refuses a user access token issued before now under
    /// `sid`, over what the store finds for it.
    async fn token_with_sid_refused(&self, sid: &str, issued_at: Timestamp) -> bool {
        let tenant = tid("acme");
        let identity = TokenIdentity {
            tenant: &tenant,
            jti: "jti-1",
            client_id: Some("cl_web"),
            subject: USER_1,
            kid: "kid-1",
            family: None,
            sid: Some(sid),
            exchanged_from: &[],
            issued_at,
        };
        let candidates: Vec<_> = identity.candidates().collect();
        let records: Vec<_> = self
            .state
            .store
            .revocations_naming(&candidates)
            .await
            .expect("revocations")
            .into_iter()
            .map(RevocationEntry::into_record)
            .collect();
        RevocationSet::from_records(&records)
            .token_revoked(&identity)
            .is_some()
    }
}

fn cleared(a: &Answer) -> bool {
    a.set_cookie
        .iter()
        .any(|c| c.contains("Max-Age=0") || c.to_ascii_lowercase().contains("expires"))
}

#[tokio::test]
async fn a_hint_for_this_session_signs_out_and_redirects_with_state() {
    let app = App::new().await;
    let (cookie, sid) = app.session(USER_1).await;
    let issued = app.clock.now();
    assert!(!app.token_with_sid_refused(&sid, issued).await);
    let hint = app.id_token(app.claims(USER_1, "cl_web", &sid), None);
    app.clock.advance(std::time::Duration::from_secs(1));
    let a = app
        .get(
            &[
                ("id_token_hint", &hint),
                ("post_logout_redirect_uri", BYE),
                ("state", "s t&x"),
            ],
            Some(&cookie),
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(
        a.location.as_deref(),
        Some("https://app.example/bye?state=s+t%26x")
    );
    assert!(cleared(&a), "{:?}", a.set_cookie);
    assert!(!app.active(&cookie).await);
    // The session's tokens are refused by every verifier's rule.
    assert!(app.token_with_sid_refused(&sid, issued).await);
    // Signing out again is harmless: the signed-out state, same redirect.
    let again = app
        .get(
            &[("id_token_hint", &hint), ("post_logout_redirect_uri", BYE)],
            Some(&cookie),
        )
        .await;
    assert_eq!(again.location.as_deref(), Some(BYE));
}

#[tokio::test]
async fn an_expired_hint_is_accepted_and_post_works_too() {
    let app = App::new().await;
    let (cookie, sid) = app.session(USER_1).await;
    let mut claims = app.claims(USER_1, "cl_web", &sid);
    let now = app.clock.now().as_secs();
    claims["iat"] = json!(now - 7_200);
    claims["exp"] = json!(now - 3_600);
    let hint = app.id_token(claims, None);
    let a = app
        .post(
            &[("id_token_hint", &hint), ("client_id", "cl_web")],
            Some(&cookie),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert!(a.location.is_none());
    assert!(!app.active(&cookie).await);
}

#[tokio::test]
async fn open_redirect_attempts_show_the_signed_out_page() {
    let app = App::new().await;
    for bad in [
        "https://evil.example/",
        "https://app.example/bye/",
        "https://app.example/by",
        "https://app.example/bye?next=https://evil.example",
        "https://app.example/byeX",
        "https://app.example.evil.example/bye",
        "http://app.example/bye",
        OTHER_BYE,
    ] {
        let (cookie, sid) = app.session(USER_1).await;
        let hint = app.id_token(app.claims(USER_1, "cl_web", &sid), None);
        let a = app
            .get(
                &[
                    ("id_token_hint", &hint),
                    ("post_logout_redirect_uri", bad),
                    ("state", "x"),
                ],
                Some(&cookie),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{bad}");
        assert!(a.location.is_none(), "{bad}: {:?}", a.location);
        assert!(!a.body.contains("evil"), "{bad}");
        // The user still gets signed out.
        assert!(!app.active(&cookie).await, "{bad}");
    }
    // Another client's URI through client_id: still no redirect.
    let (cookie, _) = app.session(USER_1).await;
    let a = app
        .get(
            &[
                ("client_id", "cl_web"),
                ("post_logout_redirect_uri", OTHER_BYE),
            ],
            None,
        )
        .await;
    assert!(a.location.is_none());
    assert!(app.active(&cookie).await);
}

#[tokio::test]
async fn forged_and_foreign_hints_are_refused_and_change_nothing() {
    let app = App::new().await;
    let (cookie, sid) = app.session(USER_1).await;
    let (other_key, _) = portcullis_service::keys::generate(SigningAlgorithm::ES256).expect("key");
    let forged = app.id_token(app.claims(USER_1, "cl_web", &sid), Some(other_key.expose()));
    let mut foreign_claims = app.claims(USER_1, "cl_web", &sid);
    foreign_claims["iss"] = json!("https://other-issuer.example");
    let foreign = app.id_token(foreign_claims, None);
    let mismatched = app.id_token(app.claims(USER_1, "cl_web", &sid), None);
    for (hint, extra) in [
        (forged.as_str(), None),
        (foreign.as_str(), None),
        ("not.a.token", None),
        (mismatched.as_str(), Some("cl_other")),
    ] {
        let mut pairs = vec![("id_token_hint", hint), ("post_logout_redirect_uri", BYE)];
        if let Some(c) = extra {
            pairs.push(("client_id", c));
        }
        let a = app.get(&pairs, Some(&cookie)).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{hint}");
        assert!(a.location.is_none());
        assert!(app.active(&cookie).await, "{hint}");
    }
    // No client at all: nothing to sign out of.
    assert_eq!(
        app.get(&[], Some(&cookie)).await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        app.get(&[("client_id", "cl_nope")], Some(&cookie))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert!(app.active(&cookie).await);
}

#[tokio::test]
async fn without_a_matching_hint_the_user_confirms_with_a_csrf_token() {
    let app = App::new().await;
    let (cookie, sid) = app.session(USER_1).await;
    let (_, other_sid) = app.session(USER_2).await;
    // A hint for another session asks too.
    let other_hint = app.id_token(app.claims(USER_2, "cl_web", &other_sid), None);
    for pairs in [
        vec![
            ("client_id", "cl_web"),
            ("post_logout_redirect_uri", BYE),
            ("state", "k"),
        ],
        vec![("id_token_hint", other_hint.as_str())],
    ] {
        let a = app.get(&pairs, Some(&cookie)).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.body.contains("name=\"csrf_token\""), "{}", a.body);
        assert!(app.active(&cookie).await);
    }
    let page = app
        .get(
            &[
                ("client_id", "cl_web"),
                ("post_logout_redirect_uri", BYE),
                ("state", "k"),
            ],
            Some(&cookie),
        )
        .await;
    let token = page
        .body
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("csrf token")
        .to_owned();
    // Confirmed without the token, or with another's: refused, nothing changes.
    for bad in ["", "forged"] {
        let a = app
            .post(
                &[
                    ("client_id", "cl_web"),
                    ("confirm", "yes"),
                    ("csrf_token", bad),
                ],
                Some(&cookie),
            )
            .await;
        assert_ne!(a.status, StatusCode::SEE_OTHER);
        assert!(app.active(&cookie).await, "{bad}");
    }
    // A repeated confirmation or token field is refused whole, even with a right pair in it.
    for repeated in [
        [
            ("confirm", "no"),
            ("confirm", "yes"),
            ("csrf_token", token.as_str()),
        ],
        [
            ("confirm", "yes"),
            ("csrf_token", "forged"),
            ("csrf_token", token.as_str()),
        ],
    ] {
        let mut pairs = vec![("client_id", "cl_web")];
        pairs.extend(repeated);
        let a = app.post(&pairs, Some(&cookie)).await;
        assert_eq!(
            a.status,
            StatusCode::BAD_REQUEST,
            "{repeated:?}: {}",
            a.body
        );
        assert!(app.active(&cookie).await, "{repeated:?}");
    }
    let a = app
        .post(
            &[
                ("client_id", "cl_web"),
                ("post_logout_redirect_uri", BYE),
                ("state", "k"),
                ("confirm", "yes"),
                ("csrf_token", &token),
            ],
            Some(&cookie),
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(
        a.location.as_deref(),
        Some("https://app.example/bye?state=k")
    );
    assert!(!app.active(&cookie).await);
    let _ = sid;
}

#[tokio::test]
async fn an_admin_disabling_a_user_queues_back_channel_logouts_for_its_sessions() {
    let app = App::new().await;
    let mut with_uri = client("cl_bcl", BYE);
    with_uri.backchannel_logout_uri = Some("https://app.example/bcl".into());
    app.state
        .store
        .create_client(&with_uri, None)
        .await
        .expect("client");
    let admin = |method: Method, path: String, body: Option<serde_json::Value>| {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, format!("Bearer {}", app.admins.acme));
        let body = match body {
            Some(v) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(v.to_string())
            }
            None => Body::empty(),
        };
        app.router.clone().oneshot(req.body(body).expect("request"))
    };
    let created = admin(
        Method::POST,
        "/admin/v1/tenants/acme/users".into(),
        Some(
            json!({"username": "alice", "password": "velvet orbit lantern quiz 42",
                    "send_invite": false}),
        ),
    )
    .await
    .expect("infallible");
    assert_eq!(created.status(), StatusCode::CREATED);
    let body = created
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let user: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let user_id = user["id"].as_str().expect("id").to_owned();
    let (cookie, sid) = app.session(&user_id).await;
    app.state
        .store
        .record_session_client(&tid("acme"), &sid, "cl_bcl", app.clock.now())
        .await
        .expect("record");
    let disabled = admin(
        Method::POST,
        format!("/admin/v1/tenants/acme/users/{user_id}/disable"),
        None,
    )
    .await
    .expect("infallible");
    assert_eq!(disabled.status(), StatusCode::OK);
    assert!(!app.active(&cookie).await);
    let now = app.clock.now();
    let queued = app
        .state
        .store
        .claim_backchannel_deliveries(
            now,
            now.saturating_add(std::time::Duration::from_secs(60)),
            10,
        )
        .await
        .expect("claim");
    let got: Vec<_> = queued
        .iter()
        .map(|d| (d.client_id.as_str(), d.sid.as_str(), d.user_id.as_str()))
        .collect();
    assert_eq!(got, [("cl_bcl", sid.as_str(), user_id.as_str())]);
}
