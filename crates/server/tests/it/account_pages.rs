//! The account pages over HTTP (`serve::assemble`'s router): invitation and reset links, the
//! forgot form, the account page, and the admin session routes, with every failure path: used,
//! expired, unknown and other tenants' links, weak and mismatched passwords, CSRF missing or
//! another browser's, a wrong current password, another user's session.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use portcullis_core::audit::Actor;
use portcullis_core::secret::Secret;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{Clock, ManualClock, Timestamp};
use portcullis_service::audit::RequestOrigin;
use portcullis_service::passwords::{PasswordHashString, Verification};
use portcullis_service::sign_in::NewSession;
use portcullis_service::state::AppState;
use portcullis_store::{ConsentRecord, SqliteStore, Store};
use serde_json::{json, Value};
use tower::ServiceExt;

const STRONG: &str = "velvet orbit lantern quiz 42";
const STRONGER: &str = "copper meadow violin harbor 97";

struct App {
    router: Router,
    state: AppState,
    clock: Arc<ManualClock>,
    acme: String,
    globex: String,
    dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    /// The page's CSRF token (the forms' hidden field).
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf_token\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF field in {}", self.body))
            + "name=\"csrf_token\" value=\"".len();
        self.body[at..].split('"').next().unwrap_or("").to_owned()
    }

    /// The pre-session cookie the page set, as a `Cookie` pair.
    fn pre_cookie(&self) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("pcl-pre="))
            .map(|v| v.split(';').next().unwrap_or("").to_owned())
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
        let config = common::config(dir.path());
        let assembled = common::assemble(&config, common::ISSUER, store, clock.clone()).await;
        Self {
            router: assembled.router,
            state: assembled.state,
            clock,
            acme: admins.acme,
            globex: admins.globex,
            dir,
        }
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        let res = self.router.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.expect("body").to_bytes();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Answer {
        let mut req = Request::get(path);
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Body::empty()).expect("request")).await
    }

    async fn post(&self, path: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> Answer {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        self.send(req.body(Body::from(body)).expect("request"))
            .await
    }

    async fn admin(
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
        let a = self.send(req.body(body).expect("request")).await;
        (
            a.status,
            serde_json::from_str(&a.body).unwrap_or(Value::Null),
        )
    }

    async fn create_user(&self, body: Value) -> String {
        let (status, user) = self
            .admin(
                Method::POST,
                "/admin/v1/tenants/acme/users",
                &self.acme,
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{user}");
        user["id"].as_str().expect("id").to_owned()
    }

    fn outbox(&self) -> Vec<String> {
        let mut files: Vec<_> = std::fs::read_dir(self.dir.path().join("outbox"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .map(|f| {
                std::fs::read_to_string(f)
                    .expect("mail")
                    .replace("=\r\n", "")
                    .replace("=\n", "")
                    .replace("=3D", "=")
                    .replace("=0A", "\n")
            })
            .collect()
    }

    /// The link (path and query) of the `n`th mail (waiting for the background sender).
    async fn link(&self, n: usize) -> String {
        for _ in 0..400 {
            if let Some(mail) = self.outbox().get(n) {
                let at = mail.find("/account/").expect("a link");
                return mail[at..]
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no mail {n}");
    }

    /// A session of `user` as the sign-in page would start it; returns (cookie pair, sid).
    async fn session(&self, user: &str) -> (String, String) {
        let started = self
            .state
            .sign_in
            .create_session(
                NewSession {
                    tenant: TenantId::parse("acme").expect("tenant"),
                    user_id: portcullis_core::user::UserId::parse(user).expect("user id"),
                    amr: vec!["pwd".into()],
                    acr: None,
                },
                None,
                Actor::anonymous(),
                &RequestOrigin::default(),
            )
            .await
            .expect("session");
        (
            format!("pcl-session-acme={}", started.secret.expose()),
            started.sid.as_str().to_owned(),
        )
    }

    async fn active_sids(&self, user: &str) -> Vec<String> {
        let mut sids: Vec<String> = self
            .state
            .sign_in
            .list_sessions(&TenantId::parse("acme").expect("t"), user)
            .await
            .expect("sessions")
            .into_iter()
            .map(|s| s.id.to_string())
            .collect();
        sids.sort();
        sids
    }

    async fn password_is(&self, user: &str, password: &str) -> bool {
        let record = self
            .state
            .store
            .get_user(
                &TenantId::parse("acme").expect("t"),
                &portcullis_core::user::UserId::parse(user).expect("id"),
            )
            .await
            .expect("get")
            .expect("user");
        let stored = record.password_hash.map(PasswordHashString::from_stored);
        matches!(
            self.state
                .users
                .hasher
                .verify(stored.as_ref(), &Secret::new(password.to_owned()))
                .await
                .expect("verify"),
            Verification::Match { .. }
        )
    }
}

/// Opens a link page and returns the cookie and CSRF token its form needs.
async fn open(app: &App, link: &str) -> (String, String) {
    let page = app.get(link, None).await;
    assert_eq!(page.status, StatusCode::OK, "{link}: {:?}", app.outbox());
    (
        page.pre_cookie().expect("a pre-session cookie"),
        page.csrf(),
    )
}

fn token_of(link: &str) -> String {
    link.split("token=").nth(1).expect("token").to_owned()
}

#[tokio::test]
async fn an_invitation_sets_the_first_password_once_and_every_bad_link_gets_one_page() {
    let app = App::new().await;
    let id = app
        .create_user(json!({"username": "dora", "email": "dora@example.com"}))
        .await;
    let link = app.link(0).await;
    assert!(
        link.starts_with("/account/acme/invite?token=pcl_ut_"),
        "{link}"
    );
    let token = token_of(&link);

    let page = app.get(&link, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("dora"), "the page names the account");
    assert!(!page.body.contains(STRONG));
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let (cookie, csrf) = (page.pre_cookie().expect("cookie"), page.csrf());

    // The neutral page, for every way a link can be wrong.
    let neutral = app
        .get("/account/acme/invite?token=pcl_ut_nope", None)
        .await;
    assert_eq!(neutral.status, StatusCode::BAD_REQUEST);
    assert!(
        neutral.body.contains("This link cannot be used"),
        "{}",
        neutral.body
    );
    let unknown = format!("/account/acme/invite?token=pcl_ut_{}", "A".repeat(43));
    for other in [
        unknown.clone(),
        "/account/acme/invite".to_owned(),
        format!("/account/globex/invite?token={token}"),
        format!("/account/acme/reset?token={token}"),
    ] {
        let a = app.get(&other, None).await;
        // The page is branded for the tenant of its path; nothing else differs.
        let body = a.body.replace("globex", "acme");
        assert_eq!(
            (a.status, &body),
            (neutral.status, &neutral.body),
            "{other}"
        );
    }

    // Without the CSRF token, or with another browser's: refused, nothing changes.
    let form = |password: &'static str, confirm: &'static str, csrf: &str| {
        vec![
            ("csrf_token", csrf.to_owned()),
            ("token", token.clone()),
            ("password", password.to_owned()),
            ("confirm", confirm.to_owned()),
        ]
    };
    let post = |cookie: Option<String>, fields: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.post("/account/acme/invite", cookie.as_deref(), &pairs)
                .await
        }
    };
    let no_csrf: Vec<_> = form(STRONG, STRONG, "").into_iter().skip(1).collect();
    assert_eq!(
        post(Some(cookie.clone()), no_csrf).await.status,
        StatusCode::FORBIDDEN
    );
    let (other_cookie, _) = open(&app, "/account/acme/forgot").await;
    assert_eq!(
        post(Some(other_cookie), form(STRONG, STRONG, &csrf))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        post(None, form(STRONG, STRONG, &csrf)).await.status,
        StatusCode::FORBIDDEN
    );

    // A weak password, or two that differ: the form again with the reason; the link still works.
    let weak = post(
        Some(cookie.clone()),
        form("password1234", "password1234", &csrf),
    )
    .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    assert!(weak.body.contains("too easy to guess"), "{}", weak.body);
    let named = post(
        Some(cookie.clone()),
        form("dora-velvet-orbit-9", "dora-velvet-orbit-9", &csrf),
    )
    .await;
    assert!(
        named.body.contains("must not contain your username"),
        "{}",
        named.body
    );
    let differ = post(Some(cookie.clone()), form(STRONG, STRONGER, &csrf)).await;
    assert_eq!(differ.status, StatusCode::BAD_REQUEST);
    assert!(differ.body.contains("not the same"), "{}", differ.body);

    let done = post(Some(cookie.clone()), form(STRONG, STRONG, &csrf)).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(done.body.contains("Your password is saved"));
    assert!(app.password_is(&id, STRONG).await);
    let (_, user) = app
        .admin(
            Method::GET,
            &format!("/admin/v1/tenants/acme/users/{id}"),
            &app.acme,
            None,
        )
        .await;
    assert_eq!(user["status"], "active");
    assert_eq!(user["email_verified"], true, "the mail was read");

    // Used: the neutral page, and posting again changes nothing.
    let again = app.get(&link, None).await;
    assert_eq!((again.status, &again.body), (neutral.status, &neutral.body));
    let replay = post(Some(cookie), form(STRONGER, STRONGER, &csrf)).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert!(app.password_is(&id, STRONG).await);

    // Expired: a new invitation for another user, opened after its week.
    app.create_user(json!({"username": "erin", "email": "erin@example.com"}))
        .await;
    let late = app.link(1).await;
    app.clock.advance(Duration::from_secs(7 * 24 * 3600 + 1));
    let expired = app.get(&late, None).await;
    assert_eq!(
        (expired.status, &expired.body),
        (neutral.status, &neutral.body)
    );
}

#[tokio::test]
async fn a_reset_link_sets_a_new_password_and_ends_every_session() {
    let app = App::new().await;
    let id = app
        .create_user(json!({"username": "fay", "email": "fay@example.com", "password": STRONG}))
        .await;
    let (_, s1) = app.session(&id).await;
    let (_, s2) = app.session(&id).await;
    assert_eq!(app.active_sids(&id).await.len(), 2, "{s1} {s2}");

    // The forgot form: one answer whether or not the address has an account.
    let (cookie, csrf) = open(&app, "/account/acme/forgot").await;
    let ask = |email: &'static str| {
        let (app, cookie, csrf) = (&app, cookie.clone(), csrf.clone());
        async move {
            app.post(
                "/account/acme/forgot",
                Some(&cookie),
                &[("csrf_token", &csrf), ("email", email)],
            )
            .await
        }
    };
    let nobody = ask("nobody@example.com").await;
    let garbage = ask("not an address").await;
    let fay = ask("fay@example.com").await;
    assert_eq!(fay.status, StatusCode::OK);
    assert!(fay.body.contains("Check your email"));
    for other in [&nobody, &garbage] {
        assert_eq!((other.status, &other.body), (fay.status, &fay.body));
    }
    let no_csrf = app
        .post(
            "/account/acme/forgot",
            Some(&cookie),
            &[("email", "fay@example.com")],
        )
        .await;
    assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);

    let link = app.link(0).await;
    assert!(link.starts_with("/account/acme/reset?token="), "{link}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        app.outbox().len(),
        1,
        "one mail, for the address with an account"
    );

    let (cookie, csrf) = open(&app, &link).await;
    let token = token_of(&link);
    let weak = app
        .post(
            "/account/acme/reset",
            Some(&cookie),
            &[
                ("csrf_token", &csrf),
                ("token", &token),
                ("password", "short"),
                ("confirm", "short"),
            ],
        )
        .await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    assert!(weak.body.contains("too short"), "{}", weak.body);
    assert_eq!(
        app.active_sids(&id).await.len(),
        2,
        "a refused password ends nothing"
    );
    let done = app
        .post(
            "/account/acme/reset",
            Some(&cookie),
            &[
                ("csrf_token", &csrf),
                ("token", &token),
                ("password", STRONGER),
                ("confirm", STRONGER),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.body);
    assert!(app.password_is(&id, STRONGER).await);
    assert!(!app.password_is(&id, STRONG).await);
    assert!(
        app.active_sids(&id).await.is_empty(),
        "a reset ends every session"
    );
    let used = app.get(&link, None).await;
    assert_eq!(used.status, StatusCode::BAD_REQUEST);

    // An expired reset link (an hour by default).
    let (cookie, csrf) = open(&app, "/account/acme/forgot").await;
    app.post(
        "/account/acme/forgot",
        Some(&cookie),
        &[("csrf_token", &csrf), ("email", "fay@example.com")],
    )
    .await;
    let second = app.link(1).await;
    app.clock.advance(Duration::from_secs(3601));
    assert_eq!(app.get(&second, None).await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_account_page_changes_the_password_ends_sessions_and_revokes_consents() {
    let app = App::new().await;
    let id = app
        .create_user(json!({"username": "gus", "email": "gus@example.com", "password": STRONG}))
        .await;
    let other = app
        .create_user(json!({"username": "hal", "email": "hal@example.com", "password": STRONG}))
        .await;
    let (cookie, sid) = app.session(&id).await;
    let (_, second) = app.session(&id).await;
    let (other_cookie, other_sid) = app.session(&other).await;

    let anonymous = app.get("/account/acme/", None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let page = app.get("/account/acme/", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("gus") && page.body.contains(&sid) && page.body.contains(&second));
    assert!(
        !page.body.contains(&other_sid),
        "another user's session is not listed"
    );
    let csrf = page.csrf();
    let other_csrf = app.get("/account/acme/", Some(&other_cookie)).await.csrf();

    let change = |current: &'static str, new: &'static str, csrf: String| {
        let (app, cookie) = (&app, cookie.clone());
        async move {
            app.post(
                "/account/acme/password",
                Some(&cookie),
                &[
                    ("csrf_token", &csrf),
                    ("current", current),
                    ("password", new),
                    ("confirm", new),
                ],
            )
            .await
        }
    };
    let wrong = change("not my password at all", STRONGER, csrf.clone()).await;
    assert_eq!(wrong.status, StatusCode::BAD_REQUEST);
    assert!(
        wrong.body.contains("current password is not correct"),
        "{}",
        wrong.body
    );
    let weak = change(STRONG, "password1234", csrf.clone()).await;
    assert_eq!(weak.status, StatusCode::BAD_REQUEST);
    assert!(weak.body.contains("too easy to guess"));
    assert_eq!(
        change(STRONG, STRONGER, String::new()).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        change(STRONG, STRONGER, other_csrf.clone()).await.status,
        StatusCode::FORBIDDEN,
        "another session's CSRF token"
    );
    assert!(app.password_is(&id, STRONG).await, "nothing changed yet");
    assert_eq!(app.active_sids(&id).await.len(), 2);
    let changed = change(STRONG, STRONGER, csrf.clone()).await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    assert!(changed.body.contains("Your password was changed"));
    assert!(app.password_is(&id, STRONGER).await);
    assert_eq!(
        app.active_sids(&id).await,
        vec![sid.clone()],
        "other sessions ended"
    );
    assert_eq!(app.active_sids(&other).await, vec![other_sid.clone()]);

    // Another user's session: not found, and it lives on.
    let end = |target: String, csrf: String| {
        let (app, cookie) = (&app, cookie.clone());
        async move {
            app.post(
                "/account/acme/sessions/end",
                Some(&cookie),
                &[("csrf_token", &csrf), ("sid", &target)],
            )
            .await
        }
    };
    assert_eq!(
        end(other_sid.clone(), csrf.clone()).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.active_sids(&other).await, vec![other_sid.clone()]);
    assert_eq!(
        end(second.clone(), csrf.clone()).await.status,
        StatusCode::NOT_FOUND,
        "already ended"
    );
    let (_, third) = app.session(&id).await;
    assert_eq!(
        end(third.clone(), String::new()).await.status,
        StatusCode::FORBIDDEN
    );
    let ended = end(third.clone(), csrf.clone()).await;
    assert_eq!(ended.status, StatusCode::OK);
    assert!(ended.body.contains("was signed out"));
    assert_eq!(app.active_sids(&id).await, vec![sid.clone()]);

    // Consents: listed, revoked once.
    let tenant = TenantId::parse("acme").expect("t");
    app.state
        .store
        .put_consent(&ConsentRecord {
            tenant: tenant.clone(),
            user_id: portcullis_core::user::UserId::parse(&id).expect("user id"),
            client_id: portcullis_core::client::ClientId::parse("shop-web").expect("client id"),
            scopes: vec!["openid".into(), "profile".into()],
            granted_at: app.clock.now(),
        })
        .await
        .expect("consent");
    let page = app.get("/account/acme/", Some(&cookie)).await;
    assert!(page.body.contains("shop-web") && page.body.contains("openid profile"));
    let revoke = |client: &'static str, csrf: String| {
        let (app, cookie) = (&app, cookie.clone());
        async move {
            app.post(
                "/account/acme/consents/revoke",
                Some(&cookie),
                &[("csrf_token", &csrf), ("client_id", client)],
            )
            .await
        }
    };
    assert_eq!(
        revoke("shop-web", String::new()).await.status,
        StatusCode::FORBIDDEN
    );
    let revoked = revoke("shop-web", csrf.clone()).await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.body.contains("no longer has access"));
    assert!(app
        .state
        .store
        .list_user_consents(&tenant, &id)
        .await
        .expect("list")
        .is_empty());
    assert_eq!(
        revoke("shop-web", csrf.clone()).await.status,
        StatusCode::NOT_FOUND
    );

    // Signing out this browser ends the session and clears the cookie.
    let out = end(sid.clone(), csrf.clone()).await;
    assert_eq!(out.status, StatusCode::OK);
    assert!(out.body.contains("You are signed out"));
    assert!(out.headers[header::SET_COOKIE]
        .to_str()
        .expect("c")
        .contains("Max-Age=0"));
    assert_eq!(
        app.get("/account/acme/", Some(&cookie)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn admins_list_and_end_a_users_sessions() {
    let app = App::new().await;
    let id = app
        .create_user(json!({"username": "ivy", "email": "ivy@example.com", "password": STRONG}))
        .await;
    let other = app
        .create_user(json!({"username": "jan", "email": "jan@example.com", "password": STRONG}))
        .await;
    let (_, sid) = app.session(&id).await;
    let (_, other_sid) = app.session(&other).await;
    let path = format!("/admin/v1/tenants/acme/users/{id}/sessions");
    let (status, list) = app.admin(Method::GET, &path, &app.acme, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["items"].as_array().expect("items").len(), 1);
    assert_eq!(list["items"][0]["sid"], sid.as_str());
    assert_eq!(list["items"][0]["amr"], json!(["pwd"]));
    assert!(list["items"][0].get("digest").is_none());

    let (status, _) = app.admin(Method::GET, &path, &app.globex, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another tenant's admin");
    let (status, _) = app
        .admin(
            Method::GET,
            "/admin/v1/tenants/acme/users/usr_nope/sessions",
            &app.acme,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = app
        .admin(
            Method::DELETE,
            &format!("{path}/{other_sid}"),
            &app.acme,
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another user's session under this user"
    );
    assert_eq!(app.active_sids(&other).await, vec![other_sid]);
    let (status, _) = app
        .admin(Method::DELETE, &format!("{path}/{sid}"), &app.acme, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(app.active_sids(&id).await.is_empty());
    let (status, _) = app
        .admin(Method::DELETE, &format!("{path}/{sid}"), &app.acme, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "already ended");
}

/// The account page's current password is throttled like a sign-in (the same counters): once a
/// source has failed the account's free attempts, further attempts from it are 429 with
/// `Retry-After` without checking the password, even the right one, and nothing changes.
#[tokio::test]
async fn wrong_current_passwords_on_the_account_page_are_throttled_like_sign_ins() {
    let app = App::new().await;
    let id = app
        .create_user(json!({"username": "ivy", "email": "ivy@example.com", "password": STRONG}))
        .await;
    let (cookie, _) = app.session(&id).await;
    let csrf = app.get("/account/acme/", Some(&cookie)).await.csrf();
    let change =
        |current: &'static str| {
            let (app, cookie, csrf) = (&app, cookie.clone(), csrf.clone());
            async move {
                let body = form_urlencoded::Serializer::new(String::new())
                    .extend_pairs([
                        ("csrf_token", csrf.as_str()),
                        ("current", current),
                        ("password", STRONGER),
                        ("confirm", STRONGER),
                    ])
                    .finish();
                let mut req = Request::post("/account/acme/password")
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .header(header::COOKIE, cookie)
                    .body(Body::from(body))
                    .expect("request");
                // One source for every attempt, as a connected client has.
                req.extensions_mut().insert(axum::extract::ConnectInfo(
                    std::net::SocketAddr::from(([198, 51, 100, 77], 40_000)),
                ));
                app.send(req).await
            }
        };
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let a = change("not my password at all").await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(a.headers.contains_key(header::RETRY_AFTER), "429 says when");
        }
        statuses.push(a.status);
    }
    assert_eq!(statuses[0], StatusCode::BAD_REQUEST, "checked at first");
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // The right current password from the failing source is not even checked now.
    let right = change(STRONG).await;
    assert_eq!(right.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(app.password_is(&id, STRONG).await, "nothing changed");
}
