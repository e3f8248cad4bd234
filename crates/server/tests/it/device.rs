//! Device sign-in (RFC 8628, issue 18 item 7) over real HTTP: a node assembled by
//! `serve::assemble` on a loopback port (which creates the built-in `portcullis-cli` client),
//! a device that polls the token endpoint, and a reqwest client that keeps cookies as a browser
//! does and posts the `/device` forms. Covers the whole flow, every poll answer (pending,
//! slow_down with the interval tracked on the server, expired, denied, reused), wrong and
//! guessed user codes, CSRF, and the admin roles of users: a CLI token acts with exactly its
//! user's role, a user without one gets 403, and another client's user token is no admin
//! credential.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::secret::Secret;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{Clock as _, ManualClock, Timestamp};
use portcullis_core::user::{Email, UserId, UserProfile, UserStatus, Username};
use portcullis_server::serve::Assembled;
use portcullis_service::state::AppState;
use portcullis_store::{SqliteStore, Store, UserRecord};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};

const PASSWORD: &str = "correct horse battery staple";
const CLI: &str = "portcullis-cli";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

struct Node {
    base: String,
    state: AppState,
    store: Arc<dyn Store>,
    admins: common::Admins,
    clock: Arc<ManualClock>,
    http: reqwest::Client,
    _tasks: portcullis_server::serve::BackgroundTasks,
    _dir: tempfile::TempDir,
}

/// A started device authorization.
struct Started {
    device_code: String,
    user_code: String,
    body: Value,
}

impl Node {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("db"))
                .await
                .expect("store"),
        );
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
        let admins = common::seed(store.as_ref(), Timestamp::from_secs(1_800_000_000)).await;
        let mut config = common::config(dir.path());
        config.audit = portcullis_server::config::AuditConfig {
            flush_interval_ms: 5,
            ..Default::default()
        };
        // Loopback is a trusted proxy, so each browser can be a different source.
        config.http.trusted_proxies =
            serde_json::from_value(json!(["127.0.0.1/32"])).expect("proxies");
        let Assembled {
            state,
            router,
            tasks,
            ..
        } = common::assemble(&config, common::ISSUER, store.clone(), clock.clone()).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        Self {
            base: format!("http://{addr}"),
            state,
            store,
            admins,
            clock,
            http: reqwest::Client::new(),
            _tasks: tasks,
            _dir: dir,
        }
    }

    /// An active user of `tenant` with [`PASSWORD`]; its id.
    async fn user(&self, tenant: &str, name: &str) -> String {
        let mut u = UserRecord {
            id: UserId::generate(Timestamp::from_secs(1_800_000_000), &mut rand::rngs::OsRng),
            tenant: TenantId::parse(tenant).expect("tenant"),
            username: Username::parse(name).expect("username"),
            email: Some(Email::parse(&format!("{name}@example.com")).expect("email")),
            email_verified: true,
            status: UserStatus::Active,
            profile: UserProfile::default(),
            password_hash: None,
            password_changed_at: None,
            created_at: Timestamp::from_secs(1_800_000_000),
            updated_at: Timestamp::from_secs(1_800_000_000),
            last_login_at: None,
        };
        let hash = self
            .state
            .users
            .new_password_hash(&u, &Secret::new(PASSWORD.to_owned()))
            .await
            .expect("hash");
        u.password_hash = Some(hash.as_str().to_owned());
        self.store.create_user(&u).await.expect("user");
        u.id.as_str().to_owned()
    }

    /// A browser: keeps cookies, does not follow redirects, comes from `source`.
    fn browser(&self, source: &str) -> reqwest::Client {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_str(source).expect("header"),
        );
        reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .default_headers(h)
            .build()
            .expect("client")
    }

    async fn form(&self, path: &str, body: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(body).expect("form"))
            .send()
            .await
            .expect("post");
        let s = r.status().as_u16();
        let text = r.text().await.expect("body");
        (s, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn start_device(&self, client_id: &str) -> Started {
        let (s, body) = self
            .form("/oauth2/device_authorization", &[("client_id", client_id)])
            .await;
        assert_eq!(s, 200, "{body}");
        Started {
            device_code: body["device_code"]
                .as_str()
                .expect("device_code")
                .to_owned(),
            user_code: body["user_code"].as_str().expect("user_code").to_owned(),
            body,
        }
    }

    async fn poll(&self, device_code: &str) -> (u16, Value) {
        self.poll_as(CLI, device_code).await
    }

    /// The device's poll at the token endpoint as the public client `client_id`.
    async fn poll_as(&self, client_id: &str, device_code: &str) -> (u16, Value) {
        self.form(
            "/oauth2/token",
            &[
                ("grant_type", DEVICE_GRANT),
                ("device_code", device_code),
                ("client_id", client_id),
            ],
        )
        .await
    }

    async fn admin(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self
            .http
            .request(method, format!("{}/admin/v1{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("admin call");
        let s = r.status().as_u16();
        let text = r.text().await.expect("body");
        (s, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Grants `role` to `user` of `tenant` as the global admin.
    async fn grant(&self, tenant: &str, user: &str, role: &str) {
        let (s, v) = self
            .admin(
                reqwest::Method::PUT,
                &format!("/tenants/{tenant}/users/{user}/admin-role"),
                &self.admins.global,
                Some(json!({ "role": role })),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        assert_eq!(v["role"], role);
    }
}

/// The hidden fields of the page's form (name, value), HTML entities of values decoded.
fn form_fields(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for part in html.split("<input type=\"hidden\" name=\"").skip(1) {
        let Some((name, rest)) = part.split_once('"') else {
            continue;
        };
        let Some(value) = rest
            .strip_prefix(" value=\"")
            .and_then(|r| r.split_once('"'))
            .map(|(v, _)| v)
        else {
            continue;
        };
        out.push((
            name.to_owned(),
            value.replace("&#43;", "+").replace("&#61;", "="),
        ));
    }
    out
}

async fn post_page(b: &reqwest::Client, url: String, fields: &[(String, String)]) -> (u16, String) {
    let r = b
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(fields).expect("form"))
        .send()
        .await
        .expect("post");
    let s = r.status().as_u16();
    (s, r.text().await.expect("body"))
}

fn with(mut fields: Vec<(String, String)>, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    for (k, v) in extra {
        fields.retain(|(n, _)| n != k);
        fields.push(((*k).to_owned(), (*v).to_owned()));
    }
    fields
}

/// Opens `/device`, enters `code`, signs in as `login` if asked, and answers the confirmation
/// with `decision`. Returns the final page.
async fn approve_in_browser(
    node: &Node,
    b: &reqwest::Client,
    code: &str,
    login: &str,
    decision: &str,
) -> (u16, String) {
    let r = b
        .get(format!("{}/device", node.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let page = r.text().await.expect("page");
    let fields = with(form_fields(&page), &[("user_code", code)]);
    let (s, mut page) = post_page(b, format!("{}/device", node.base), &fields).await;
    assert_eq!(s, 200, "{page}");
    if page.contains("name=\"password\"") {
        let fields = with(
            form_fields(&page),
            &[("login", login), ("password", PASSWORD)],
        );
        let (s, p) = post_page(b, format!("{}/device/sign-in", node.base), &fields).await;
        assert_eq!(s, 200, "{p}");
        page = p;
    }
    assert!(page.contains("/device/decide"), "the confirmation: {page}");
    // The built-in CLI client's tokens act at the admin API: the page says so, and only then.
    assert_eq!(
        page.contains("act with your administrator role"),
        page.contains("<strong>Portcullis CLI</strong>"),
        "the admin warning goes with the built-in CLI client: {page}"
    );
    let fields = with(form_fields(&page), &[("decision", decision)]);
    post_page(b, format!("{}/device/decide", node.base), &fields).await
}

#[tokio::test]
async fn device_sign_in_end_to_end_with_polling_rotation_and_the_users_role() {
    let node = Node::start().await;
    let alice = node.user("system", "alice").await;
    node.grant("system", &alice, "auditor").await;

    let d = node.start_device(CLI).await;
    // RFC 8628 section 3.2's answer.
    assert_eq!(
        d.body["verification_uri"],
        format!("{}/device", common::ISSUER)
    );
    assert_eq!(
        d.body["verification_uri_complete"],
        format!("{}/device?user_code={}", common::ISSUER, d.user_code)
    );
    assert_eq!(d.body["expires_in"], 600);
    assert_eq!(d.body["interval"], 5);
    let code = d.user_code.as_bytes();
    assert_eq!(code.len(), 9);
    assert_eq!(code[4], b'-');
    assert!(d
        .user_code
        .bytes()
        .filter(|b| *b != b'-')
        .all(|b| b"BCDFGHJKLMNPQRSTVWXZ".contains(&b)));

    // Not yet approved.
    let (s, e) = node.poll(&d.device_code).await;
    assert_eq!(
        (s, &e["error"]),
        (400, &json!("authorization_pending")),
        "{e}"
    );
    // Polled again at once: slow down, and the interval grows on the server.
    let (s, e) = node.poll(&d.device_code).await;
    assert_eq!((s, &e["error"]), (400, &json!("slow_down")), "{e}");
    node.clock.advance(Duration::from_secs(6));
    let (_, e) = node.poll(&d.device_code).await;
    assert_eq!(e["error"], "slow_down", "5 s is no longer enough: {e}");
    node.clock.advance(Duration::from_secs(16));
    let (_, e) = node.poll(&d.device_code).await;
    assert_eq!(e["error"], "authorization_pending", "{e}");

    // The person approves in a browser (the complete URI's code, typed in lower case).
    let b = node.browser("203.0.113.20");
    let (s, page) =
        approve_in_browser(&node, &b, &d.user_code.to_lowercase(), "alice", "allow").await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("Device connected"), "{page}");

    node.clock.advance(Duration::from_secs(30));
    let (s, t) = node.poll(&d.device_code).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["token_type"], "Bearer");
    let access = t["access_token"].as_str().expect("access").to_owned();
    let refresh = t["refresh_token"].as_str().expect("refresh").to_owned();

    // Single use: the device code is spent.
    node.clock.advance(Duration::from_secs(30));
    let (s, e) = node.poll(&d.device_code).await;
    assert_eq!((s, &e["error"]), (400, &json!("invalid_grant")), "{e}");

    // An auditor reads, and may not write.
    let (s, v) = node
        .admin(reqwest::Method::GET, "/tenants/acme/users", &access, None)
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = node
        .admin(
            reqwest::Method::POST,
            "/tenants",
            &access,
            Some(json!({"id": "newco", "display_name": "NewCo"})),
        )
        .await;
    assert_eq!(s, 403, "{v}");

    // The role is read on every request: removed, the same token may do nothing.
    let (s, _) = node
        .admin(
            reqwest::Method::DELETE,
            &format!("/tenants/system/users/{alice}/admin-role"),
            &node.admins.global,
            None,
        )
        .await;
    assert_eq!(s, 204);
    let (s, v) = node
        .admin(reqwest::Method::GET, "/tenants/acme/users", &access, None)
        .await;
    assert_eq!(s, 403, "{v}");
    node.grant("system", &alice, "global_admin").await;

    // Refresh rotates; the new access token works.
    let (s, r) = node
        .form(
            "/oauth2/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", CLI),
            ],
        )
        .await;
    assert_eq!(s, 200, "{r}");
    let access2 = r["access_token"].as_str().expect("access").to_owned();
    let refresh2 = r["refresh_token"].as_str().expect("refresh").to_owned();
    assert_ne!(refresh2, refresh);
    let (s, v) = node
        .admin(
            reqwest::Method::POST,
            "/tenants",
            &access2,
            Some(json!({"id": "newco", "display_name": "NewCo"})),
        )
        .await;
    assert_eq!(s, 201, "{v}");

    // Logout: the public client revokes its refresh token by client_id alone; the family's
    // access tokens and refresh tokens stop working.
    let (s, v) = node
        .form(
            "/oauth2/revoke",
            &[
                ("token", &refresh2),
                ("token_type_hint", "refresh_token"),
                ("client_id", CLI),
            ],
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let (s, v) = node
        .admin(reqwest::Method::GET, "/tenants/acme/users", &access2, None)
        .await;
    assert_eq!(s, 401, "{v}");
    let (s, e) = node
        .form(
            "/oauth2/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh2),
                ("client_id", CLI),
            ],
        )
        .await;
    assert_eq!((s, &e["error"]), (400, &json!("invalid_grant")), "{e}");
}

#[tokio::test]
async fn denied_and_expired_requests_answer_as_rfc_8628_says() {
    let node = Node::start().await;
    node.user("system", "bob").await;

    let denied = node.start_device(CLI).await;
    let b = node.browser("203.0.113.30");
    let (s, page) = approve_in_browser(&node, &b, &denied.user_code, "bob", "deny").await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("Request denied"), "{page}");
    let (s, e) = node.poll(&denied.device_code).await;
    assert_eq!((s, &e["error"]), (400, &json!("access_denied")), "{e}");

    let late = node.start_device(CLI).await;
    node.clock.advance(Duration::from_secs(601));
    let (s, e) = node.poll(&late.device_code).await;
    assert_eq!((s, &e["error"]), (400, &json!("expired_token")), "{e}");
    // The page no longer knows the code either.
    let r = b
        .get(format!("{}/device", node.base))
        .send()
        .await
        .expect("get");
    let page = r.text().await.expect("page");
    let fields = with(form_fields(&page), &[("user_code", &late.user_code)]);
    let (s, page) = post_page(&b, format!("{}/device", node.base), &fields).await;
    assert_eq!(s, 400, "{page}");
    assert!(page.contains("This code is not valid"), "{page}");
}

#[tokio::test]
async fn wrong_user_codes_are_refused_then_throttled_and_forms_need_their_csrf_token() {
    let node = Node::start().await;
    node.user("system", "carol").await;
    let d = node.start_device(CLI).await;
    let b = node.browser("203.0.113.40");
    let page = b
        .get(format!("{}/device?user_code={}", node.base, d.user_code))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("page");
    // The complete URI fills the code in.
    assert!(page.contains(&d.user_code), "{page}");
    let fields = form_fields(&page);
    // Without the CSRF token: refused, nothing looked up.
    let no_csrf: Vec<(String, String)> = vec![("user_code".into(), d.user_code.clone())];
    let (s, _) = post_page(&b, format!("{}/device", node.base), &no_csrf).await;
    assert_eq!(s, 403);
    // Malformed and unknown codes get the same answer.
    for wrong in ["BCDF-GHJ", "AAAA-AAAA", "BBBB-BBBB"] {
        let (s, page) = post_page(
            &b,
            format!("{}/device", node.base),
            &with(fields.clone(), &[("user_code", wrong)]),
        )
        .await;
        assert_eq!(s, 400, "{wrong}: {page}");
        assert!(page.contains("This code is not valid"), "{page}");
    }
    // Guessing on: the source is refused before any lookup, even with the right code.
    let mut throttled = false;
    for _ in 0..30 {
        let (s, _) = post_page(
            &b,
            format!("{}/device", node.base),
            &with(fields.clone(), &[("user_code", "CCCC-CCCC")]),
        )
        .await;
        if s == 429 {
            throttled = true;
            break;
        }
    }
    assert!(throttled, "wrong codes are throttled");
    let (s, _) = post_page(
        &b,
        format!("{}/device", node.base),
        &with(fields.clone(), &[("user_code", &d.user_code)]),
    )
    .await;
    assert_eq!(s, 429);
    // Another source is not held back by this one's failures (invariant 10).
    let other = node.browser("203.0.113.41");
    let (s, page) = approve_in_browser(&node, &other, &d.user_code, "carol", "allow").await;
    assert_eq!(s, 200, "{page}");
}

#[tokio::test]
async fn users_without_a_role_and_other_clients_tokens_are_refused_at_the_admin_api() {
    let node = Node::start().await;
    node.user("system", "dave").await;
    let d = node.start_device(CLI).await;
    let b = node.browser("203.0.113.50");
    approve_in_browser(&node, &b, &d.user_code, "dave", "allow").await;
    node.clock.advance(Duration::from_secs(10));
    let (s, t) = node.poll(&d.device_code).await;
    assert_eq!(s, 200, "{t}");
    let access = t["access_token"].as_str().expect("access");
    // Authenticated, but no role: 403 on every admin route.
    let (s, v) = node
        .admin(reqwest::Method::GET, "/tenants/acme/users", access, None)
        .await;
    assert_eq!(s, 403, "{v}");
    // A tampered token is no credential.
    let (s, _) = node
        .admin(
            reqwest::Method::GET,
            "/tenants/acme/users",
            &format!("{access}x"),
            None,
        )
        .await;
    assert_eq!(s, 401);

    // Another public client registered for the device grant gets user tokens too, but they are
    // no admin credential even for a user with a role.
    let (s, c) = node
        .admin(
            reqwest::Method::POST,
            "/tenants/system/clients",
            &node.admins.global,
            Some(json!({
                "name": "TV app",
                "client_type": "public",
                "application_type": "native",
                "grant_types": ["urn:ietf:params:oauth:grant-type:device_code"],
                "scopes": ["openid"],
            })),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let tv = c["client_id"].as_str().expect("client_id").to_owned();
    let erin = node.user("system", "erin").await;
    node.grant("system", &erin, "global_admin").await;
    let d = node.start_device(&tv).await;
    let b = node.browser("203.0.113.51");
    let (s, page) = approve_in_browser(&node, &b, &d.user_code, "erin", "allow").await;
    assert_eq!(s, 200, "{page}");
    node.clock.advance(Duration::from_secs(10));
    let (s, t) = node.poll_as(&tv, &d.device_code).await;
    assert_eq!(s, 200, "{t}");
    let (s, _) = node
        .admin(
            reqwest::Method::GET,
            "/tenants/acme/users",
            t["access_token"].as_str().expect("access"),
            None,
        )
        .await;
    assert_eq!(s, 401);
    // A device code is bound to its client.
    let d = node.start_device(&tv).await;
    let (s, e) = node.poll(&d.device_code).await;
    assert_eq!((s, &e["error"]), (400, &json!("invalid_grant")), "{e}");

    // Erin's own CLI token works while she is active, and stops the moment she is not: the
    // user's status is read on every request (set in the store here, so no revocation entry
    // is what refuses it).
    let d = node.start_device(CLI).await;
    let b = node.browser("203.0.113.52");
    approve_in_browser(&node, &b, &d.user_code, "erin", "allow").await;
    node.clock.advance(Duration::from_secs(10));
    let (s, t) = node.poll(&d.device_code).await;
    assert_eq!(s, 200, "{t}");
    let access = t["access_token"].as_str().expect("access");
    let (s, v) = node
        .admin(reqwest::Method::GET, "/tenants/acme/users", access, None)
        .await;
    assert_eq!(s, 200, "{v}");
    let system = TenantId::parse("system").expect("tenant");
    let erin_id = UserId::parse(&erin).expect("user id");
    let disabled = node
        .store
        .set_user_status(&system, &erin_id, UserStatus::Disabled, node.clock.now())
        .await
        .expect("status");
    assert!(disabled);
    let (s, _) = node
        .admin(reqwest::Method::GET, "/tenants/acme/users", access, None)
        .await;
    assert_eq!(s, 401, "a disabled user's CLI token is no admin credential");
}

#[tokio::test]
async fn granting_roles_follows_the_rules_of_admin_credentials() {
    let node = Node::start().await;
    let frank = node.user("acme", "frank").await;
    let sys = node.user("system", "grace").await;
    let put = |tenant: &str, user: &str, token: &str, role: &str| {
        let path = format!("/tenants/{tenant}/users/{user}/admin-role");
        let token = token.to_owned();
        let role = role.to_owned();
        let node = &node;
        async move {
            node.admin(
                reqwest::Method::PUT,
                &path,
                &token,
                Some(json!({ "role": role })),
            )
            .await
        }
    };
    // A tenant admin grants roles of its tenant no stronger than its own.
    assert_eq!(
        put("acme", &frank, &node.admins.acme, "auditor").await.0,
        200
    );
    assert_eq!(
        put("acme", &frank, &node.admins.acme, "global_admin")
            .await
            .0,
        403
    );
    assert_eq!(
        put("system", &sys, &node.admins.acme, "auditor").await.0,
        403
    );
    // Roles that cannot exist in a tenant, and unknown ones.
    assert_eq!(
        put("acme", &frank, &node.admins.global, "global_admin")
            .await
            .0,
        400
    );
    assert_eq!(
        put("system", &sys, &node.admins.global, "tenant_admin")
            .await
            .0,
        400
    );
    assert_eq!(
        put("acme", &frank, &node.admins.global, "root").await.0,
        400
    );
    // Unknown users and users of another tenant are not found.
    assert_eq!(
        put("acme", &sys, &node.admins.global, "auditor").await.0,
        404
    );
    let (s, v) = node
        .admin(
            reqwest::Method::GET,
            &format!("/tenants/acme/users/{frank}/admin-role"),
            &node.admins.acme,
            None,
        )
        .await;
    assert_eq!((s, &v["role"]), (200, &json!("auditor")), "{v}");
    // The grant is audited (the audit writer flushes in the background: poll).
    let mut audited = false;
    for _ in 0..500 {
        let events = common::audit_events(node.store.as_ref(), "acme").await;
        if events.iter().any(|e| {
            e.action.as_str() == "user.role_grant" && e.target.as_deref() == Some(frank.as_str())
        }) {
            audited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(audited, "user.role_grant is audited");
}

#[tokio::test]
async fn a_weaker_admin_may_not_remove_or_grant_over_a_stronger_role() {
    let node = Node::start().await;
    let frank = node.user("acme", "frank").await;
    let path = format!("/tenants/acme/users/{frank}/admin-role");
    // A role stronger than anything an acme admin may grant, as rows stored before the import
    // checked roles could hold.
    node.store
        .put_user_admin_role(&portcullis_store::UserAdminRole {
            tenant: TenantId::parse("acme").expect("tenant"),
            user_id: portcullis_core::user::UserId::parse(&frank).expect("user id"),
            role: portcullis_core::admin::AdminRole::GlobalAdmin,
            granted_at: node.clock.now(),
            granted_by: "admin:import".into(),
        })
        .await
        .expect("role");
    // Neither removed nor replaced by the acme admin (demoting is as strong as granting).
    let (s, v) = node
        .admin(reqwest::Method::DELETE, &path, &node.admins.acme, None)
        .await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = node
        .admin(
            reqwest::Method::PUT,
            &path,
            &node.admins.acme,
            Some(json!({ "role": "auditor" })),
        )
        .await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = node
        .admin(reqwest::Method::GET, &path, &node.admins.global, None)
        .await;
    assert_eq!(
        (s, &v["role"]),
        (200, &json!("global_admin")),
        "unchanged: {v}"
    );
    // A global admin may remove it.
    let (s, _) = node
        .admin(reqwest::Method::DELETE, &path, &node.admins.global, None)
        .await;
    assert_eq!(s, 204);
    // A role the acme admin could grant, it may replace and remove.
    node.grant("acme", &frank, "api_key_manager").await;
    let (s, v) = node
        .admin(
            reqwest::Method::PUT,
            &path,
            &node.admins.acme,
            Some(json!({ "role": "auditor" })),
        )
        .await;
    assert_eq!((s, &v["role"]), (200, &json!("auditor")), "{v}");
    let (s, _) = node
        .admin(reqwest::Method::DELETE, &path, &node.admins.acme, None)
        .await;
    assert_eq!(s, 204);
}

#[tokio::test]
async fn a_cli_token_bound_to_a_dpop_key_is_no_admin_credential() {
    use portcullis_jose::profile::dpop_proof::{ProofClaims, ProofSigner};
    let node = Node::start().await;
    let gina = node.user("system", "gina").await;
    node.grant("system", &gina, "global_admin").await;
    let d = node.start_device(CLI).await;
    let b = node.browser("203.0.113.53");
    approve_in_browser(&node, &b, &d.user_code, "gina", "allow").await;
    node.clock.advance(Duration::from_secs(10));
    // The CLI client is public: it may ask for a DPoP-bound token, but the admin API takes no
    // proofs, so such a token must not act there, even as a bearer token.
    let key = ProofSigner::new(
        portcullis_jose::SigningKeyPair::generate(portcullis_jose::Alg::ES256)
            .expect("key")
            .1,
    )
    .expect("signer");
    let htu = format!("{}/oauth2/token", common::ISSUER);
    let proof = key
        .sign(&ProofClaims {
            jti: "cli-proof-1",
            htm: "POST",
            htu: &htu,
            iat: node.clock.now().as_secs(),
            ath: None,
            nonce: None,
        })
        .expect("proof");
    let r = node
        .http
        .post(format!("{}/oauth2/token", node.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("dpop", proof)
        .body(
            serde_urlencoded::to_string([
                ("grant_type", DEVICE_GRANT),
                ("device_code", d.device_code.as_str()),
                ("client_id", CLI),
            ])
            .expect("form"),
        )
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
    let t: Value = r.json().await.expect("json");
    assert_eq!(t["token_type"], "DPoP", "{t}");
    let (s, _) = node
        .admin(
            reqwest::Method::GET,
            "/tenants/acme/users",
            t["access_token"].as_str().expect("access"),
            None,
        )
        .await;
    assert_eq!(s, 401, "a key-bound CLI token is refused");
}

#[tokio::test]
async fn discovery_lists_the_device_endpoint_and_grant() {
    let node = Node::start().await;
    let v: Value = node
        .http
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            node.base
        ))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(
        v["device_authorization_endpoint"],
        format!("{}/oauth2/device_authorization", common::ISSUER)
    );
    assert!(v["grant_types_supported"]
        .as_array()
        .is_some_and(|a| a.iter().any(|g| g == DEVICE_GRANT)));
    // A client not registered for the grant may not start one.
    let (s, c) = node
        .admin(
            reqwest::Method::POST,
            "/tenants/acme/clients",
            &node.admins.acme,
            Some(json!({
                "name": "Web app",
                "client_type": "public",
                "grant_types": ["authorization_code"],
                "redirect_uris": ["https://app.example.com/cb"],
                "scopes": ["openid"],
            })),
        )
        .await;
    assert_eq!(s, 201, "{c}");
    let (s, e) = node
        .form(
            "/oauth2/device_authorization",
            &[("client_id", c["client_id"].as_str().expect("id"))],
        )
        .await;
    assert_eq!(
        (s, &e["error"]),
        (400, &json!("unauthorized_client")),
        "{e}"
    );
    let (s, e) = node
        .form(
            "/oauth2/device_authorization",
            &[("client_id", CLI), ("scope", "openid")],
        )
        .await;
    assert_eq!((s, &e["error"]), (400, &json!("invalid_scope")), "{e}");
}

/// The device pages read forms as every other page does (`pages::Fields`): a field given twice
/// is ambiguous, so the form is refused (400, `invalid_request`) and nothing changes, not taken
/// by its first value; so is a form with too many fields.
#[tokio::test]
async fn device_forms_with_a_repeated_field_are_refused_and_change_nothing() {
    let node = Node::start().await;
    node.user("system", "dave").await;
    let d = node.start_device(CLI).await;
    let b = node.browser("203.0.113.50");
    let refused = |s: u16, page: &str| {
        assert_eq!(s, 400, "{page}");
        assert!(page.contains("invalid_request"), "{page}");
    };

    // The query of the complete URI.
    let r = b
        .get(format!(
            "{}/device?user_code={}&user_code=BBBB-BBBB",
            node.base, d.user_code
        ))
        .send()
        .await
        .expect("get");
    let s = r.status().as_u16();
    refused(s, &r.text().await.expect("page"));

    let page = b
        .get(format!("{}/device", node.base))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("page");
    let code_form = with(form_fields(&page), &[("user_code", &d.user_code)]);
    let mut twice = code_form.clone();
    twice.push(("user_code".into(), "BBBB-BBBB".into()));
    let (s, page) = post_page(&b, format!("{}/device", node.base), &twice).await;
    refused(s, &page);
    let mut long = code_form.clone();
    long.extend((0..16).map(|n| (format!("x{n}"), String::new())));
    let (s, page) = post_page(&b, format!("{}/device", node.base), &long).await;
    refused(s, &page);

    // The sign-in form, with the password given twice.
    let (s, page) = post_page(&b, format!("{}/device", node.base), &code_form).await;
    assert_eq!(s, 200, "{page}");
    let sign_in = with(
        form_fields(&page),
        &[("login", "dave"), ("password", PASSWORD)],
    );
    let mut twice = sign_in.clone();
    twice.push(("password".into(), "another".into()));
    let (s, p) = post_page(&b, format!("{}/device/sign-in", node.base), &twice).await;
    refused(s, &p);
    let (s, page) = post_page(&b, format!("{}/device/sign-in", node.base), &sign_in).await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("/device/decide"), "the confirmation: {page}");

    // The decision given both ways: refused, and the device is still waiting.
    let mut both = with(form_fields(&page), &[("decision", "allow")]);
    both.push(("decision".into(), "deny".into()));
    let (s, p) = post_page(&b, format!("{}/device/decide", node.base), &both).await;
    refused(s, &p);
    let (s, e) = node.poll(&d.device_code).await;
    assert_eq!(
        (s, &e["error"]),
        (400, &json!("authorization_pending")),
        "{e}"
    );
    let decided = with(form_fields(&page), &[("decision", "allow")]);
    let (s, p) = post_page(&b, format!("{}/device/decide", node.base), &decided).await;
    assert_eq!(s, 200, "{p}");
    node.clock.advance(Duration::from_secs(10));
    let (s, e) = node.poll(&d.device_code).await;
    assert_eq!(s, 200, "{e}");
}

/// The admin API takes a CLI token only from the built-in client of the token's own tenant.
/// Every tenant's person signs in with their tenant's client (`portcullis-cli-acme` here) and
/// acts there alone; a client of acme whose id merely has the built-in form of another tenant
/// (a row no admin route can make; an edit past the API or an import could) is no way in.
#[tokio::test]
async fn a_cli_token_counts_only_from_its_own_tenants_built_in_client() {
    let node = Node::start().await;
    let alice = node.user("acme", "alice").await;
    node.grant("acme", &alice, "tenant_admin").await;
    let token_of = |client_id: &'static str, peer: &'static str| {
        let node = &node;
        async move {
            let d = node.start_device(client_id).await;
            let b = node.browser(peer);
            let (s, page) = approve_in_browser(node, &b, &d.user_code, "alice", "allow").await;
            assert_eq!(s, 200, "{page}");
            node.clock.advance(Duration::from_secs(10));
            let (s, t) = node.poll_as(client_id, &d.device_code).await;
            assert_eq!(s, 200, "{t}");
            t["access_token"].as_str().expect("access").to_owned()
        }
    };
    let own = token_of("portcullis-cli-acme", "203.0.113.60").await;
    let (s, v) = node
        .admin(reqwest::Method::GET, "/tenants/acme/users", &own, None)
        .await;
    assert_eq!(s, 200, "acme's admin in acme: {v}");
    let (s, _) = node
        .admin(reqwest::Method::GET, "/tenants/globex/users", &own, None)
        .await;
    assert_eq!(s, 403, "and nowhere else");

    let mut look_alike = node
        .store
        .get_client("portcullis-cli-acme")
        .await
        .expect("read")
        .expect("acme's built-in client");
    look_alike.id = "portcullis-cli-initech".into();
    node.store
        .create_client(&look_alike, None)
        .await
        .expect("a client row written past the admin API");
    let other = token_of("portcullis-cli-initech", "203.0.113.61").await;
    let (s, _) = node
        .admin(reqwest::Method::GET, "/tenants/acme/users", &other, None)
        .await;
    assert_eq!(
        s, 401,
        "a token of a client that is not its tenant's own CLI client is no admin credential"
    );
}
