//! The sign-in pages over real HTTP (issue 16 items 3, 4, 5, 10): a node assembled by
//! `serve::assemble` on a loopback port, and reqwest clients that keep cookies as a browser
//! does (no browser). Covers the whole authorize -> sign in -> consent -> redirect flow in both
//! response modes, the bad-input cases of the issue (redirect URIs, PKCE, prompt=none, CSRF,
//! fixation), throttling that never locks the owner out, enumeration, and branding escaping.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_core::secret::Secret;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{ManualClock, Timestamp};
use portcullis_core::user::{Email, UserId, UserProfile, UserStatus, Username};
use portcullis_server::serve::Assembled;
use portcullis_service::state::AppState;
use portcullis_store::{BrandingRecord, SqliteStore, Store, UserRecord};
use reqwest::header::{HeaderMap, HeaderValue};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const PASSWORD: &str = "correct horse battery staple";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-long-enough";
const NOTES_CB: &str = "https://notes.example.com/cb";

struct Node {
    base: String,
    state: AppState,
    store: Arc<dyn Store>,
    notes: String,
    dashboard: String,
    admins: common::Admins,
    clock: Arc<ManualClock>,
    /// Kept running (dropping them stops the audit writer).
    _tasks: portcullis_server::serve::BackgroundTasks,
    _dir: tempfile::TempDir,
}

impl Node {
    async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A node whose configuration `tweak` changes first.
    async fn start_with(tweak: impl FnOnce(&mut portcullis_server::config::Config)) -> Self {
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
        // Loopback is a trusted proxy, so each test client can be a different source.
        config.http.trusted_proxies =
            serde_json::from_value(json!(["127.0.0.1/32"])).expect("proxies");
        tweak(&mut config);
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
        let base = format!("http://{addr}");
        let admin = reqwest::Client::new();
        let admins_acme = admins.acme.clone();
        let mut ids = Vec::new();
        for body in [
            json!({
                "name": "Notes <b>app</b>",
                "client_type": "public",
                "grant_types": ["authorization_code"],
                "redirect_uris": [NOTES_CB],
                "scopes": ["openid", "profile"],
            }),
            json!({
                "name": "Dashboard",
                "client_type": "public",
                "grant_types": ["authorization_code"],
                "redirect_uris": ["https://app.example.com/callback"],
                "scopes": ["openid"],
                "first_party": true,
            }),
        ] {
            let r = admin
                .post(format!("{base}/admin/v1/tenants/acme/clients"))
                .bearer_auth(&admins_acme)
                .json(&body)
                .send()
                .await
                .expect("create client");
            assert_eq!(r.status(), 201);
            let v: Value = r.json().await.expect("json");
            ids.push(v["client_id"].as_str().expect("client_id").to_owned());
        }
        let node = Self {
            base,
            state,
            store,
            notes: ids[0].clone(),
            dashboard: ids[1].clone(),
            admins,
            clock,
            _tasks: tasks,
            _dir: dir,
        };
        node.user("alice", "alice@example.com", UserStatus::Active)
            .await;
        node.user("mallory", "mallory@example.com", UserStatus::Disabled)
            .await;
        node
    }

    async fn user(&self, name: &str, email: &str, status: UserStatus) {
        let mut u = UserRecord {
            id: UserId::generate(Timestamp::from_secs(1_800_000_000), &mut rand::rngs::OsRng),
            tenant: TenantId::parse("acme").expect("tenant"),
            username: Username::parse(name).expect("username"),
            email: Some(Email::parse(email).expect("email")),
            email_verified: true,
            status,
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

    fn authorize_url(&self, client_id: &str, redirect_uri: &str, extra: &[(&str, &str)]) -> String {
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(VERIFIER.as_bytes()));
        let mut pairs = vec![
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("scope", "openid profile"),
            ("state", "st-123"),
            ("nonce", "n-456"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        for (k, v) in extra {
            pairs.retain(|(n, _)| n != k);
            if !v.is_empty() {
                pairs.push((k, v));
            }
        }
        let q = serde_urlencoded::to_string(&pairs).expect("query");
        format!("{}/oauth2/authorize?{q}", self.base)
    }

    fn notes_url(&self, extra: &[(&str, &str)]) -> String {
        self.authorize_url(&self.notes, NOTES_CB, extra)
    }

    /// Redeems a code of the notes client with the PKCE verifier of [`Self::authorize_url`].
    async fn redeem_notes_code(
        &self,
        code: &str,
    ) -> portcullis_service::sign_in::Result<portcullis_service::sign_in::RedeemedCode> {
        self.redeem_notes_code_with(code, None).await
    }

    /// [`Self::redeem_notes_code`] by a token request whose verified DPoP proof has key `jkt`.
    /// Signs alice in from `source` and consents at `url`; the code the browser is sent back
    /// with.
    async fn code_at(&self, url: String, source: &str) -> String {
        let b = self.browser(source);
        let (s, h, consent) = sign_in(self, &b, &url, "alice", PASSWORD).await;
        if s == 303 {
            // Consent given in an earlier flow: straight back with the code.
            let q = query_of(&location(&h));
            return param(&q, "code").expect("code").to_owned();
        }
        assert_eq!(s, 200, "{consent}");
        let (s, h) = allow_consent(&b, &self.base, &consent).await;
        assert_eq!(s, 303);
        let q = query_of(&location(&h));
        param(&q, "code").expect("code").to_owned()
    }

    async fn redeem_notes_code_with(
        &self,
        code: &str,
        jkt: Option<&str>,
    ) -> portcullis_service::sign_in::Result<portcullis_service::sign_in::RedeemedCode> {
        self.state
            .sign_in
            .redeem_code(
                portcullis_service::sign_in::RedemptionRequest {
                    code,
                    tenant: &TenantId::parse("acme").expect("tenant"),
                    client_id: &self.notes,
                    redirect_uri: NOTES_CB,
                    code_verifier: VERIFIER,
                    dpop_jkt: jkt,
                },
                &Default::default(),
            )
            .await
    }
}

/// Posts "allow" on the consent page `consent` (its hidden fields as the form carries them):
/// the status and headers of the answer.
async fn allow_consent(b: &reqwest::Client, base: &str, consent: &str) -> (u16, HeaderMap) {
    let mut fields = form_fields(consent);
    fields.push(("decision".into(), "allow".into()));
    let (s, h, _) =
        text(post_form(b, format!("{base}/oauth2/authorize/consent"), &fields).await).await;
    (s, h)
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
        out.push((name.to_owned(), unescape(value)));
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&#34;", "\"")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
        .replace("&#39;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

async fn post_form(
    b: &reqwest::Client,
    url: String,
    fields: &[(String, String)],
) -> reqwest::Response {
    b.post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(fields).expect("form"))
        .send()
        .await
        .expect("post")
}

async fn text(r: reqwest::Response) -> (u16, HeaderMap, String) {
    let s = r.status().as_u16();
    let h = r.headers().clone();
    (s, h, r.text().await.expect("body"))
}

/// Opens the authorize URL and signs in; returns the answer to the sign-in post.
async fn sign_in(
    node: &Node,
    b: &reqwest::Client,
    url: &str,
    login: &str,
    password: &str,
) -> (u16, HeaderMap, String) {
    let (s, _, page) = text(b.get(url).send().await.expect("get")).await;
    assert_eq!(s, 200, "{page}");
    let mut fields = form_fields(&page);
    fields.push(("login".into(), login.into()));
    fields.push(("password".into(), password.into()));
    text(
        post_form(
            b,
            format!("{}/oauth2/authorize/sign-in", node.base),
            &fields,
        )
        .await,
    )
    .await
}

fn location(h: &HeaderMap) -> String {
    h.get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned()
}

fn query_of(loc: &str) -> Vec<(String, String)> {
    let q = loc.split_once('?').map_or("", |(_, q)| q);
    serde_urlencoded::from_str(q).expect("query")
}

fn param<'a>(q: &'a [(String, String)], name: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn authorize_sign_in_consent_and_redirect_with_code_state_and_iss() {
    let node = Node::start().await;
    let b = node.browser("203.0.113.10");
    let url = node.notes_url(&[]);
    let first = b.get(&url).send().await.expect("get");
    assert_eq!(first.status(), 200);
    let h = first.headers().clone();
    let csp = h["content-security-policy"].to_str().expect("csp");
    for part in [
        "default-src 'none'",
        "frame-ancestors 'none'",
        "form-action 'self' https://notes.example.com",
        "style-src 'sha256-",
    ] {
        assert!(csp.contains(part), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline") && !csp.contains("script-src"));
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["cache-control"], "no-store");
    let cookie = h["set-cookie"].to_str().expect("cookie");
    assert!(
        cookie.starts_with("pcl-pre=")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let page = first.text().await.expect("body");
    assert!(page.contains("<html lang=\"en\">"));
    assert!(page.contains("<label for=\"login\">"), "labelled fields");
    assert!(
        page.contains("Notes &#60;b&#62;app&#60;/b&#62;"),
        "client name escaped"
    );

    let (s, h, consent) = sign_in(&node, &b, &url, "alice", PASSWORD).await;
    assert_eq!(s, 200, "the consent page: {consent}");
    let set = h
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().expect("ascii").to_owned())
        .collect::<Vec<_>>();
    assert!(
        set.iter()
            .any(|c| c.starts_with("pcl-session-acme=") && c.contains("HttpOnly")),
        "{set:?}"
    );
    assert!(consent.contains("<code>profile</code>"));
    let (s, h) = allow_consent(&b, &node.base, &consent).await;
    assert_eq!(s, 303);
    let loc = location(&h);
    assert!(
        loc.starts_with("https://notes.example.com/cb?code="),
        "{loc}"
    );
    let q = query_of(&loc);
    assert_eq!(param(&q, "state"), Some("st-123"));
    assert_eq!(param(&q, "iss"), Some(common::ISSUER));
    let code = param(&q, "code").expect("code");
    let redeemed = node
        .redeem_notes_code(code)
        .await
        .expect("the code redeems with the PKCE verifier");
    assert_eq!(redeemed.record.nonce.as_deref(), Some("n-456"));

    // Signed in and consented: straight back with a code, also with prompt=none.
    for extra in [&[][..], &[("prompt", "none")][..]] {
        let (s, h, _) = text(b.get(node.notes_url(extra)).send().await.expect("get")).await;
        assert_eq!(s, 303);
        assert!(param(&query_of(&location(&h)), "code").is_some());
    }
    // prompt=consent asks again; prompt=login signs in again.
    let (s, _, page) = text(
        b.get(node.notes_url(&[("prompt", "consent")]))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(s, 200);
    assert!(page.contains("name=\"decision\""));
    let (s, _, page) = text(
        b.get(node.notes_url(&[("prompt", "login")]))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(s, 200);
    assert!(page.contains("name=\"password\""));
    // A user who signed in too long ago for max_age=0 signs in again.
    let (_, _, page) = text(
        b.get(node.notes_url(&[("max_age", "0")]))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert!(page.contains("name=\"password\""));
    // Denying consent is access_denied at the client.
    let (_, _, page) = text(
        b.get(node.notes_url(&[("prompt", "consent")]))
            .send()
            .await
            .expect("get"),
    )
    .await;
    let mut fields = form_fields(&page);
    fields.push(("decision".into(), "deny".into()));
    let (s, h, _) = text(
        post_form(
            &b,
            format!("{}/oauth2/authorize/consent", node.base),
            &fields,
        )
        .await,
    )
    .await;
    assert_eq!(s, 303);
    let q = query_of(&location(&h));
    assert_eq!(param(&q, "error"), Some("access_denied"));
    assert_eq!(param(&q, "state"), Some("st-123"));
}

#[tokio::test]
async fn a_first_party_client_skips_consent_and_form_post_answers_a_posting_page() {
    let node = Node::start().await;
    let b = node.browser("203.0.113.11");
    let url = node.authorize_url(
        &node.dashboard,
        "https://app.example.com/callback",
        &[
            ("scope", "openid"),
            ("response_mode", "form_post"),
            ("login_hint", "alice@example.com"),
        ],
    );
    let (_, _, page) = text(b.get(&url).send().await.expect("get")).await;
    assert!(
        page.contains("value=\"alice@example.com\""),
        "login_hint prefills the field"
    );
    let (s, h, html) = sign_in(&node, &b, &url, "alice@example.com", PASSWORD).await;
    assert_eq!(s, 200);
    assert!(
        html.contains("action=\"https://app.example.com/callback\""),
        "{html}"
    );
    assert!(html.contains("name=\"code\""));
    assert!(html.contains("name=\"state\" value=\"st-123\""));
    assert!(html.contains(&format!("name=\"iss\" value=\"{}\"", common::ISSUER)));
    let csp = h["content-security-policy"].to_str().expect("csp");
    assert!(csp.contains("script-src 'sha256-") && csp.contains("frame-ancestors 'none'"));
}

#[tokio::test]
async fn errors_before_the_redirect_uri_is_known_are_pages_and_later_ones_go_back_with_state_and_iss(
) {
    let node = Node::start().await;
    let b = node.browser("203.0.113.12");
    for bad in [
        "https://notes.example.com/cb/extra",
        "https://notes.example.com/cb?x=1",
        "https://notes.example.com/cb#frag",
        "https://user@notes.example.com/cb",
        "https://notes.example.com:8443/cb",
        "http://notes.example.com/cb",
        "https://notes.example.com/c",
        "https://notes.example.com/cbx",
        "https://evil.example.com/cb",
    ] {
        let (s, h, page) = text(
            b.get(node.authorize_url(&node.notes, bad, &[]))
                .send()
                .await
                .expect("get"),
        )
        .await;
        assert_eq!(s, 400, "{bad}");
        assert!(h.get("location").is_none(), "{bad} is never redirected to");
        assert!(page.contains("not registered"), "{bad}: {page}");
    }
    let (s, h, page) = text(
        b.get(node.authorize_url("cl_unknown0000000000000000", NOTES_CB, &[]))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(s, 400);
    assert!(h.get("location").is_none());
    assert!(page.contains("invalid_"), "{page}");
    let (s, _, _) = text(
        b.get(format!("{}/oauth2/authorize", node.base))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(s, 400, "no client_id");

    for (extra, error) in [
        (&[("code_challenge", "")][..], "invalid_request"),
        (&[("code_challenge_method", "plain")][..], "invalid_request"),
        (&[("code_challenge_method", "")][..], "invalid_request"),
        (
            &[("response_type", "token")][..],
            "unsupported_response_type",
        ),
        (&[("scope", "openid admin")][..], "invalid_scope"),
        (&[("prompt", "none")][..], "login_required"),
    ] {
        let (s, h, _) = text(b.get(node.notes_url(extra)).send().await.expect("get")).await;
        assert_eq!(s, 303, "{extra:?}");
        let loc = location(&h);
        assert!(loc.starts_with(NOTES_CB), "{loc}");
        let q = query_of(&loc);
        assert_eq!(param(&q, "error"), Some(error), "{extra:?}");
        assert_eq!(param(&q, "state"), Some("st-123"));
        assert_eq!(param(&q, "iss"), Some(common::ISSUER));
        assert!(param(&q, "code").is_none());
    }
}

#[tokio::test]
async fn prompt_none_needing_consent_is_consent_required() {
    let node = Node::start().await;
    let b = node.browser("203.0.113.13");
    // Signed in through the first-party client, no consent for Notes yet.
    let url = node.authorize_url(
        &node.dashboard,
        "https://app.example.com/callback",
        &[("scope", "openid")],
    );
    let (s, _, _) = sign_in(&node, &b, &url, "alice", PASSWORD).await;
    assert_eq!(s, 303);
    let (s, h, _) = text(
        b.get(node.notes_url(&[("prompt", "none")]))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(s, 303);
    assert_eq!(
        param(&query_of(&location(&h)), "error"),
        Some("consent_required")
    );
}

#[tokio::test]
async fn forms_without_or_with_another_browsers_csrf_token_are_refused_and_change_nothing() {
    let node = Node::start().await;
    let victim = node.browser("203.0.113.14");
    let attacker = node.browser("203.0.113.15");
    let url = node.notes_url(&[]);
    let (_, _, page) = text(attacker.get(&url).send().await.expect("get")).await;
    let attackers_fields = form_fields(&page);
    // The victim's browser has its own pre-session cookie.
    let (_, _, _) = text(victim.get(&url).send().await.expect("get")).await;
    let with_login = |mut f: Vec<(String, String)>| {
        f.push(("login".into(), "alice".into()));
        f.push(("password".into(), PASSWORD.into()));
        f
    };
    let no_token: Vec<_> = attackers_fields
        .iter()
        .filter(|(k, _)| k != "csrf_token")
        .cloned()
        .collect();
    for fields in [with_login(attackers_fields.clone()), with_login(no_token)] {
        let (s, h, page) = text(
            post_form(
                &victim,
                format!("{}/oauth2/authorize/sign-in", node.base),
                &fields,
            )
            .await,
        )
        .await;
        assert_eq!(s, 403, "{page}");
        assert!(h.get("set-cookie").is_none(), "no session started");
        assert!(page.contains("expired"));
    }
    // A browser with no cookie at all.
    let bare = node.browser("203.0.113.16");
    let (s, _, _) = text(
        post_form(
            &bare,
            format!("{}/oauth2/authorize/sign-in", node.base),
            &with_login(attackers_fields.clone()),
        )
        .await,
    )
    .await;
    assert_eq!(s, 403);

    // Consent form: the attacker's own signed-in token does not work in the victim's browser.
    let (_, _, consent) = sign_in(&node, &attacker, &url, "alice", PASSWORD).await;
    let (_, _, _) = sign_in(&node, &victim, &url, "alice", PASSWORD).await;
    let (s, _) = allow_consent(&victim, &node.base, &consent).await;
    assert_eq!(s, 403);
    let tenant = TenantId::parse("acme").expect("tenant");
    let alice = node
        .store
        .find_user_by_username(&tenant, &Username::parse("alice").expect("u"))
        .await
        .expect("read")
        .expect("alice");
    assert!(
        node.store
            .get_consent(&tenant, alice.id.as_str(), &node.notes)
            .await
            .expect("read")
            .is_none(),
        "no consent stored"
    );
}

#[tokio::test]
async fn a_session_cookie_from_before_sign_in_is_useless_after_it() {
    let node = Node::start().await;
    let b = node.browser("203.0.113.17");
    let url = node.authorize_url(
        &node.dashboard,
        "https://app.example.com/callback",
        &[("scope", "openid")],
    );
    let (s, h1, _) = sign_in(&node, &b, &url, "alice", PASSWORD).await;
    assert_eq!(s, 303);
    let session = |h: &HeaderMap| {
        h.get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix("pcl-session-acme="))
            .map(|c| c.split(';').next().unwrap_or("").to_owned())
            .expect("session cookie")
    };
    let before = session(&h1);
    // Signing in again (prompt=login) with that cookie: a new session; the old one is gone.
    let (s, h2, _) = sign_in(
        &node,
        &b,
        &node.authorize_url(
            &node.dashboard,
            "https://app.example.com/callback",
            &[("scope", "openid"), ("prompt", "login")],
        ),
        "alice",
        PASSWORD,
    )
    .await;
    assert_eq!(s, 303);
    let after = session(&h2);
    assert_ne!(before, after);
    let tenant = TenantId::parse("acme").expect("tenant");
    assert!(node
        .state
        .sign_in
        .resolve_session(&tenant, &before)
        .await
        .expect("read")
        .is_none());
    assert!(node
        .state
        .sign_in
        .resolve_session(&tenant, &after)
        .await
        .expect("read")
        .is_some());
    // A browser presenting the old value (a planted cookie) has no session.
    let planted = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let (s, _, page) = text(
        planted
            .get(node.authorize_url(
                &node.dashboard,
                "https://app.example.com/callback",
                &[("scope", "openid")],
            ))
            .header("cookie", format!("pcl-session-acme={before}"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(s, 200);
    assert!(page.contains("name=\"password\""), "asked to sign in");
}

#[tokio::test]
async fn unknown_users_wrong_passwords_and_disabled_users_get_the_same_answer() {
    let node = Node::start().await;
    let b = node.browser("203.0.113.18");
    let url = node.notes_url(&[]);
    let mut answers = Vec::new();
    for (login, password) in [
        ("alice", "not the password at all"),
        ("nobody", "not the password at all"),
        ("mallory", PASSWORD),
        ("nobody@example.com", PASSWORD),
    ] {
        let (s, h, body) = sign_in(&node, &b, &url, login, password).await;
        assert!(h.get("set-cookie").is_none());
        answers.push((
            s,
            body.replace(&format!("value=\"{login}\""), "value=\"X\""),
        ));
    }
    assert_eq!(answers[0].0, 200);
    assert!(answers[0].1.contains("not correct"));
    for a in &answers[1..] {
        assert_eq!(a, &answers[0], "identical status and body");
    }
}

#[tokio::test]
async fn throttling_slows_a_failing_source_but_the_owner_from_a_clean_source_gets_in() {
    let node = Node::start().await;
    let attacker = node.browser("198.51.100.66");
    let url = node.notes_url(&[]);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        let (s, h, _) = sign_in(&node, &attacker, &url, "alice", "guess guess guess").await;
        if s == 429 {
            assert!(h.get("retry-after").is_some());
        }
        statuses.push(s);
    }
    assert_eq!(&statuses[..5], &[200; 5]);
    assert!(statuses[5..].iter().all(|s| *s == 429), "{statuses:?}");
    // Even the right password is not checked from the failing source now.
    let (s, _, _) = sign_in(&node, &attacker, &url, "alice", PASSWORD).await;
    assert_eq!(s, 429);
    // The owner, from a source that has not been failing, signs in.
    let owner = node.browser("203.0.113.99");
    let (s, _, page) = sign_in(&node, &owner, &url, "alice", PASSWORD).await;
    assert_eq!(s, 200);
    assert!(
        page.contains("name=\"decision\""),
        "consent page, so signed in"
    );
}

#[tokio::test]
async fn branding_is_shown_escaped_and_its_colour_and_logo_are_in_the_policy() {
    let node = Node::start().await;
    node.store
        .put_branding(&BrandingRecord {
            tenant: TenantId::parse("acme").expect("tenant"),
            display_name: Some("Acme <script>alert(1)</script> & Co".into()),
            logo_url: Some("https://cdn.acme.example/logo.svg".into()),
            accent_colour: Some("#aa3300".into()),
            updated_at: Timestamp::from_secs(1),
        })
        .await
        .expect("branding");
    let b = node.browser("203.0.113.20");
    let (s, h, page) = text(b.get(node.notes_url(&[])).send().await.expect("get")).await;
    assert_eq!(s, 200);
    assert!(!page.contains("<script>"), "{page}");
    assert!(page.contains("Acme &#60;script&#62;alert(1)&#60;/script&#62; &#38; Co"));
    assert!(page.contains("--accent:#aa3300"));
    assert!(page.contains("src=\"https://cdn.acme.example/logo.svg\""));
    let csp = h["content-security-policy"].to_str().expect("csp");
    assert!(csp.contains("img-src https://cdn.acme.example;"), "{csp}");
}

/// The frame of the pages shown after a form post (a failed sign-in, a refused form, consent) is
/// read only when such a page is shown; each still carries the tenant's branding.
#[tokio::test]
async fn pages_shown_after_a_form_post_carry_the_tenants_branding() {
    let node = Node::start().await;
    node.store
        .put_branding(&BrandingRecord {
            tenant: TenantId::parse("acme").expect("tenant"),
            display_name: Some("Acme Notes Co".into()),
            logo_url: None,
            accent_colour: Some("#aa3300".into()),
            updated_at: Timestamp::from_secs(1),
        })
        .await
        .expect("branding");
    let branded = |page: &str| page.contains("Acme Notes Co") && page.contains("--accent:#aa3300");
    let b = node.browser("203.0.113.21");
    let url = node.notes_url(&[]);

    let (s, _, page) = sign_in(&node, &b, &url, "alice", "not the password").await;
    assert_eq!(s, 200);
    assert!(branded(&page), "failed sign-in page: {page}");

    let (_, _, form) = text(b.get(&url).send().await.expect("get")).await;
    let mut no_token: Vec<_> = form_fields(&form)
        .into_iter()
        .filter(|(k, _)| k != "csrf_token")
        .collect();
    no_token.push(("login".into(), "alice".into()));
    no_token.push(("password".into(), PASSWORD.into()));
    let (s, _, page) = text(
        post_form(
            &b,
            format!("{}/oauth2/authorize/sign-in", node.base),
            &no_token,
        )
        .await,
    )
    .await;
    assert_eq!(s, 403);
    assert!(branded(&page), "refused form: {page}");

    let (s, _, page) = sign_in(&node, &b, &url, "alice", PASSWORD).await;
    assert_eq!(s, 200);
    assert!(page.contains("name=\"decision\""), "consent page: {page}");
    assert!(branded(&page), "consent page: {page}");
}

#[tokio::test]
async fn one_password_over_many_accounts_from_one_source_is_recorded_as_spraying_and_stuffing() {
    let node = Node::start().await;
    let b = node.browser("198.51.100.77");
    let url = node.notes_url(&[]);
    for n in 0..10 {
        let (s, _, _) = sign_in(&node, &b, &url, &format!("user{n}"), "Winter2026!Winter").await;
        assert_eq!(s, 200);
    }
    let mut actions = Vec::new();
    for _ in 0..200 {
        actions = common::audit_events(node.store.as_ref(), "acme")
            .await
            .into_iter()
            .map(|e| e.action.to_string())
            .collect::<Vec<_>>();
        if actions
            .iter()
            .any(|a| a == "user.sign_in.password_spraying")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        actions.iter().filter(|a| *a == "user.sign_in").count(),
        10,
        "{actions:?}"
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "user.sign_in.password_spraying")
            .count(),
        1
    );
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "user.sign_in.credential_stuffing")
            .count(),
        1
    );
    let all = format!(
        "{:?}",
        common::audit_events(node.store.as_ref(), "acme").await
    );
    assert!(
        !all.contains("Winter2026"),
        "the password is never recorded"
    );
}

#[tokio::test]
async fn branding_is_set_through_the_admin_api_and_unsafe_values_are_refused() {
    let node = Node::start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/admin/v1/tenants/acme/branding", node.base);
    let put = |body: Value, token: String| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http
                .put(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("put");
            let s = r.status().as_u16();
            (s, r.json::<Value>().await.expect("json"))
        }
    };
    let (s, v) = put(
        json!({"display_name": "Acme", "logo_url": "https://cdn.acme.example/l.png", "accent_colour": "#AA3300"}),
        node.admins.acme.clone(),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["accent_colour"], "#aa3300");
    for bad in [
        json!({"accent_colour": "red;}body{display:none"}),
        json!({"logo_url": "javascript:alert(1)"}),
        json!({"logo_url": "https://x.example/a.png\" onerror=\"x"}),
        json!({"display_name": "a\nb"}),
        json!({"colour": "#000000"}),
    ] {
        let (s, v) = put(bad.clone(), node.admins.acme.clone()).await;
        assert_eq!(s, 400, "{bad}: {v}");
        assert_eq!(v["error"], "invalid_request");
    }
    let (s, _) = put(json!({"display_name": "Evil"}), node.admins.globex.clone()).await;
    assert_eq!(s, 403, "another tenant's admin");
    let got: Value = http
        .get(&url)
        .bearer_auth(&node.admins.acme)
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(got["display_name"], "Acme", "nothing changed: {got}");
    let (_, _, page) = text(
        node.browser("203.0.113.30")
            .get(node.notes_url(&[]))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert!(page.contains("<p>Acme</p>"));
}

#[tokio::test]
async fn a_sign_in_rehashes_an_outdated_hash_and_records_the_last_login() {
    let node = Node::start().await;
    let tenant = TenantId::parse("acme").expect("tenant");
    let alice = node
        .store
        .find_user_by_username(&tenant, &Username::parse("alice").expect("u"))
        .await
        .expect("read")
        .expect("alice");
    assert!(alice.last_login_at.is_none());
    // A hash made with stronger (so different) parameters than the node's current ones.
    let older = portcullis_service::passwords::PasswordHasher::start(
        portcullis_service::passwords::Argon2Settings {
            iterations: 3,
            workers: 1,
            ..Default::default()
        },
    )
    .expect("hasher");
    let old_hash = older
        .rehash(&Secret::new(PASSWORD.to_owned()))
        .await
        .expect("hash");
    node.store
        .set_user_password(
            &tenant,
            &alice.id,
            old_hash.as_str(),
            Timestamp::from_secs(1_800_000_000),
        )
        .await
        .expect("set");
    let b = node.browser("203.0.113.40");
    let (s, _, page) = sign_in(&node, &b, &node.notes_url(&[]), "alice", PASSWORD).await;
    assert_eq!(s, 200);
    assert!(page.contains("name=\"decision\""), "signed in");
    let after = node
        .store
        .get_user(&tenant, &alice.id)
        .await
        .expect("read")
        .expect("alice");
    let stored = after.password_hash.expect("hash");
    assert_ne!(stored, old_hash.as_str(), "rehashed");
    assert!(
        stored.contains("t=2"),
        "with the current parameters: {stored}"
    );
    assert_eq!(
        after.last_login_at,
        Some(Timestamp::from_secs(1_800_000_000))
    );
}

/// The pushed-request fields of the notes client's authorization request.
fn pushed_fields(node: &Node, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let url = node.notes_url(extra);
    query_of(&url)
}

async fn push(node: &Node, fields: &[(String, String)]) -> (u16, HeaderMap, Value) {
    let r = post_form(
        &reqwest::Client::new(),
        format!("{}/oauth2/par", node.base),
        fields,
    )
    .await;
    let (s, h) = (r.status().as_u16(), r.headers().clone());
    (s, h, r.json().await.unwrap_or(Value::Null))
}

/// A push with `DPoP` headers (one per proof).
async fn push_dpop(node: &Node, extra: &[(&str, &str)], proofs: Vec<String>) -> (u16, Value) {
    let (s, _, v) = push_dpop_headers(node, extra, proofs).await;
    (s, v)
}

/// [`push_dpop`], with the answer's headers.
async fn push_dpop_headers(
    node: &Node,
    extra: &[(&str, &str)],
    proofs: Vec<String>,
) -> (u16, HeaderMap, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{}/oauth2/par", node.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(pushed_fields(node, extra)).expect("form"));
    for p in proofs {
        req = req.header("dpop", p);
    }
    let r = req.send().await.expect("push");
    let (status, headers) = (r.status().as_u16(), r.headers().clone());
    (status, headers, r.json().await.unwrap_or(Value::Null))
}

/// RFC 9126 end to end: a client that must push is refused a direct request; a pushed request
/// is validated at the push, opened by its request_uri for its own client only, carried through
/// sign-in and consent, used up by the code, and refused when reused or expired.
#[tokio::test]
async fn pushed_authorization_requests_are_opened_once_by_their_client_and_can_be_required() {
    let node = Node::start().await;
    let admin = reqwest::Client::new();
    let r = admin
        .patch(format!(
            "{}/admin/v1/tenants/acme/clients/{}",
            node.base, node.notes
        ))
        .bearer_auth(&node.admins.acme)
        .json(&json!({"require_pushed_authorization_requests": true}))
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["require_pushed_authorization_requests"], true);

    // A direct request now goes back with invalid_request (and its state).
    let b = node.browser("203.0.113.40");
    let (s, h, _) = text(b.get(node.notes_url(&[])).send().await.expect("get")).await;
    assert_eq!(s, 303);
    let q = query_of(&location(&h));
    assert_eq!(param(&q, "error"), Some("invalid_request"));
    assert_eq!(param(&q, "state"), Some("st-123"));

    // The push.
    let (s, h, v) = push(&node, &pushed_fields(&node, &[])).await;
    assert_eq!(s, 201, "{v}");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(v["expires_in"], 60);
    let request_uri = v["request_uri"].as_str().expect("request_uri").to_owned();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));

    // Opened by another client: refused with a page, and the request is still good after.
    let open = |client: &str, uri: &str, extra: &str| {
        format!(
            "{}/oauth2/authorize?client_id={client}&request_uri={}{extra}",
            node.base,
            urlencoding(uri)
        )
    };
    let (s, h, page) = text(
        b.get(open(&node.dashboard, &request_uri, ""))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(s, 400, "{page}");
    assert!(h.get("location").is_none(), "never redirected");

    // Opened by its client, with a redirect URI of an attacker beside it: ignored, the pushed
    // request is the request. Sign in and consent carry only client_id and request_uri.
    let url = open(
        &node.notes,
        &request_uri,
        "&redirect_uri=https%3A%2F%2Fevil.example%2Fcb&state=forged",
    );
    let (s, _, page) = text(b.get(&url).send().await.expect("get")).await;
    assert_eq!(s, 200, "{page}");
    let carried: Vec<String> = form_fields(&page).into_iter().map(|(k, _)| k).collect();
    assert!(carried.contains(&"request_uri".to_owned()), "{carried:?}");
    assert!(
        !carried.contains(&"code_challenge".to_owned()),
        "{carried:?}"
    );
    // A reload within the sign-in window still works, past the push's own minute.
    node.clock.advance(std::time::Duration::from_secs(90));
    let (s, _, consent) = sign_in(&node, &b, &url, "alice", PASSWORD).await;
    assert_eq!(s, 200, "{consent}");
    let (s, h) = allow_consent(&b, &node.base, &consent).await;
    assert_eq!(s, 303);
    let loc = location(&h);
    assert!(loc.starts_with(NOTES_CB), "{loc}");
    let q = query_of(&loc);
    assert_eq!(
        param(&q, "state"),
        Some("st-123"),
        "the pushed state, not the forged one"
    );
    let code = param(&q, "code").expect("code");
    node.redeem_notes_code(code)
        .await
        .expect("the code redeems with the pushed PKCE challenge's verifier");

    // Used up: the same request_uri never opens again, even signed in.
    let (s, _, _) = text(
        b.get(open(&node.notes, &request_uri, ""))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(s, 400);

    // Not opened within its minute: expired.
    let (_, _, v) = push(&node, &pushed_fields(&node, &[])).await;
    let late = v["request_uri"].as_str().expect("request_uri").to_owned();
    node.clock.advance(std::time::Duration::from_secs(61));
    let (s, _, _) = text(
        b.get(open(&node.notes, &late, ""))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(s, 400);
    // A request_uri that is not ours, or repeated, is a page too.
    for bad in [
        open(&node.notes, "urn:ietf:params:oauth:request_uri:nope", ""),
        open(
            &node.notes,
            &late,
            &format!("&request_uri={}", urlencoding(&late)),
        ),
    ] {
        let (s, _, _) = text(b.get(&bad).send().await.expect("get")).await;
        assert_eq!(s, 400, "{bad}");
    }
}

/// What a push refuses, each a 400 (or 401) with a standard code, storing nothing.
#[tokio::test]
async fn a_push_is_validated_like_an_authorization_request_and_authenticated_like_a_token_request()
{
    let node = Node::start().await;
    let with = |extra: &[(&str, &str)]| pushed_fields(&node, extra);
    let mut uri_pushed = with(&[]);
    uri_pushed.push((
        "request_uri".into(),
        "urn:ietf:params:oauth:request_uri:x".into(),
    ));
    let mut repeated = with(&[]);
    repeated.push(("scope".into(), "openid".into()));
    let no_client: Vec<(String, String)> = with(&[])
        .into_iter()
        .filter(|(k, _)| k != "client_id")
        .collect();
    for (fields, status, code) in [
        (uri_pushed, 400, "invalid_request"),
        (repeated, 400, "invalid_request"),
        (
            with(&[("redirect_uri", "https://notes.example.com/cb/evil")]),
            400,
            "invalid_request",
        ),
        (
            with(&[("code_challenge_method", "plain")]),
            400,
            "invalid_request",
        ),
        (with(&[("code_challenge", "")]), 400, "invalid_request"),
        (with(&[("scope", "openid admin")]), 400, "invalid_scope"),
        (
            with(&[("response_type", "token")]),
            400,
            "unsupported_response_type",
        ),
        (no_client, 401, "invalid_client"),
        (
            with(&[("client_id", "cl_doesnotexist00000000000")]),
            401,
            "invalid_client",
        ),
    ] {
        let (s, h, v) = push(&node, &fields).await;
        assert_eq!(
            (s, v["error"].as_str()),
            (status, Some(code)),
            "{fields:?}: {v}"
        );
        assert!(v.get("request_uri").is_none());
        assert_eq!(h["cache-control"], "no-store");
    }
    // The answers are the ones the OpenAPI document describes.
    let doc = serde_json::to_value(portcullis_http::openapi::document()).expect("doc");
    let op = &doc["paths"]["/oauth2/par"]["post"]["responses"];
    for status in ["201", "400", "401"] {
        assert!(op.get(status).is_some(), "{status} undocumented");
    }
    let (s, _, v) = push(&node, &with(&[])).await;
    assert_eq!(s, 201);
    let mut members: Vec<&str> = v
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    members.sort_unstable();
    let schema = &doc["components"]["schemas"]["PushedAuthorizationResponse"]["properties"];
    let mut documented: Vec<&str> = schema
        .as_object()
        .expect("schema")
        .keys()
        .map(String::as_str)
        .collect();
    documented.sort_unstable();
    assert_eq!(members, documented);
    let r = reqwest::Client::new()
        .get(format!("{}/oauth2/par", node.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 405);
    // A public client presenting a secret is refused (method mismatch), as at the token endpoint.
    let mut with_secret = with(&[]);
    with_secret.push(("client_secret".into(), "pcl_cs_not_a_real_secret".into()));
    let (s, _, v) = push(&node, &with_secret).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (401, Some("invalid_client")),
        "{v}"
    );
}

fn urlencoding(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).expect("encode")[2..].to_owned()
}

/// Sign-in admission is bounded by the wait an admitted sign-in can expect: with one hashing
/// thread and a bound below one hash's time, sign-ins posted together while a hash runs are
/// answered 503 with `Retry-After` at once (never queued behind it), the page says to try again
/// shortly, and at least one of them is admitted and signs in. No timing is asserted.
#[tokio::test]
async fn sign_ins_beyond_the_expected_wait_get_503_with_retry_after() {
    let node = Node::start_with(|c| {
        c.passwords.workers = 1;
        c.passwords.max_expected_wait_ms = 1;
    })
    .await;
    let url = node.notes_url(&[]);
    // Each from its own source (no throttling), each with its sign-in form already loaded.
    let mut posts = Vec::new();
    for n in 0..6 {
        let b = node.browser(&format!("203.0.113.{}", 120 + n));
        let (s, _, page) = text(b.get(&url).send().await.expect("get")).await;
        assert_eq!(s, 200, "{page}");
        let mut fields = form_fields(&page);
        fields.push(("login".into(), "alice".into()));
        fields.push(("password".into(), PASSWORD.into()));
        posts.push((b, fields));
    }
    let mut set = tokio::task::JoinSet::new();
    for (b, fields) in posts {
        let to = format!("{}/oauth2/authorize/sign-in", node.base);
        set.spawn(async move { text(post_form(&b, to, &fields).await).await });
    }
    let mut answers = Vec::new();
    while let Some(a) = set.join_next().await {
        answers.push(a.expect("joined"));
    }
    let mut busy = 0;
    let mut admitted = 0;
    for (s, h, page) in &answers {
        match *s {
            503 => {
                busy += 1;
                let secs: u64 = h
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .expect("Retry-After in whole seconds");
                assert!(secs >= 1);
                assert!(h.get("set-cookie").is_none(), "no session when refused");
                assert!(page.contains("name=\"password\""), "the form again");
            }
            200 => {
                admitted += 1;
                assert!(page.contains("name=\"decision\""), "signed in: {page}");
            }
            other => panic!("unexpected status {other}: {page}"),
        }
    }
    assert!(busy >= 1, "sign-ins beyond the bound are refused");
    assert!(admitted >= 1, "an idle pool always admits one");
    assert_eq!(
        node.state.users.hasher.in_flight(),
        0,
        "nothing left behind"
    );
}

/// The sign-in page links to the tenant's "forgot password" page, which answers.
#[tokio::test]
async fn the_sign_in_page_links_to_the_forgot_password_page() {
    let node = Node::start().await;
    let b = node.browser("203.0.113.150");
    let (s, _, page) = text(b.get(node.notes_url(&[])).send().await.expect("get")).await;
    assert_eq!(s, 200);
    assert!(page.contains("<a href=\"/account/acme/forgot\">"), "{page}");
    let (s, _, _) = text(
        b.get(format!("{}/account/acme/forgot", node.base))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(s, 200);
}

/// RFC 9449 section 10: `dpop_jkt` at the authorization endpoint, directly or pushed, binds the
/// code to that key; it redeems only with a proof of that key (and a mismatch does not spend it).
/// A malformed `dpop_jkt` goes back as `invalid_request`, or is refused at the push.
#[tokio::test]
async fn dpop_jkt_binds_the_code_to_a_key_directly_and_through_a_push() {
    const JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    const OTHER: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
    let node = Node::start().await;
    let code_at = |url: String, source: &'static str| node.code_at(url, source);
    let invalid = |r: portcullis_service::sign_in::Result<_>| match r {
        Err(portcullis_service::sign_in::SignInError::Invalid(reason)) => reason,
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("redeemed"),
    };

    let direct = code_at(node.notes_url(&[("dpop_jkt", JKT)]), "203.0.113.51").await;
    assert_eq!(
        invalid(node.redeem_notes_code(&direct).await),
        "code_dpop_key_mismatch",
        "no proof"
    );
    assert_eq!(
        invalid(node.redeem_notes_code_with(&direct, Some(OTHER)).await),
        "code_dpop_key_mismatch",
        "a proof of another key"
    );
    node.redeem_notes_code_with(&direct, Some(JKT))
        .await
        .expect("the bound key redeems it, the failures did not spend it");
    // An unbound code redeems with or without a proof.
    let unbound = code_at(node.notes_url(&[]), "203.0.113.52").await;
    node.redeem_notes_code_with(&unbound, Some(OTHER))
        .await
        .expect("unbound");

    // Malformed: back to the client with invalid_request.
    let b = node.browser("203.0.113.53");
    let (s, h, _) = text(
        b.get(node.notes_url(&[("dpop_jkt", "not-a-thumbprint")]))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(s, 303);
    let q = query_of(&location(&h));
    assert_eq!(param(&q, "error"), Some("invalid_request"));
    assert_eq!(param(&q, "state"), Some("st-123"));

    // Pushed: a malformed one is refused at the push; a good one binds the code.
    let (s, _, v) = push(&node, &pushed_fields(&node, &[("dpop_jkt", "short")])).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("invalid_request")),
        "{v}"
    );
    let (s, _, v) = push(&node, &pushed_fields(&node, &[("dpop_jkt", JKT)])).await;
    assert_eq!(s, 201, "{v}");
    let request_uri = v["request_uri"].as_str().expect("request_uri");
    let url = format!(
        "{}/oauth2/authorize?client_id={}&request_uri={}",
        node.base,
        node.notes,
        urlencoding(request_uri)
    );
    let pushed = code_at(url, "203.0.113.54").await;
    assert_eq!(
        invalid(node.redeem_notes_code(&pushed).await),
        "code_dpop_key_mismatch"
    );
    node.redeem_notes_code_with(&pushed, Some(JKT))
        .await
        .expect("bound through the push");
}

/// RFC 9449 section 10.1: a DPoP proof sent with the push binds the code to the proof's key, as
/// `dpop_jkt` would, and with both they must name one key. A proof for another endpoint, a
/// replayed proof or two `DPoP` headers are refused at the push, which then stores nothing.
#[tokio::test]
async fn a_dpop_proof_at_the_push_binds_the_code_to_its_key() {
    use portcullis_jose::profile::dpop_proof::{ProofClaims, ProofSigner};
    use portcullis_jose::{Alg, SigningKeyPair};
    let node = Node::start().await;
    let signer =
        || ProofSigner::new(SigningKeyPair::generate(Alg::ES256).expect("key").1).expect("signer");
    let (key, other) = (signer(), signer());
    let par = format!("{}/oauth2/par", common::ISSUER);
    let token = format!("{}/oauth2/token", common::ISSUER);
    let proof = |k: &ProofSigner, jti: &str, htu: &str| {
        k.sign(&ProofClaims {
            jti,
            htm: "POST",
            htu,
            iat: portcullis_core::time::Clock::now(node.clock.as_ref()).as_secs(),
            ath: None,
            nonce: None,
        })
        .expect("proof")
    };
    let refused = |(s, v): (u16, Value), what: &str| {
        assert_eq!(
            (s, v["error"].as_str()),
            (400, Some("invalid_dpop_proof")),
            "{what}: {v}"
        );
    };

    refused(
        push_dpop(&node, &[], vec![proof(&key, "p0", &token)]).await,
        "a proof for the token endpoint",
    );
    refused(
        push_dpop(
            &node,
            &[],
            vec![proof(&key, "p1", &par), proof(&key, "p2", &par)],
        )
        .await,
        "two proofs",
    );
    let first = proof(&key, "p3", &par);
    let (s, v) = push_dpop(&node, &[], vec![first.clone()]).await;
    assert_eq!(s, 201, "{v}");
    refused(
        push_dpop(&node, &[], vec![first]).await,
        "the same proof again",
    );

    // The pushed request's code redeems only with a proof of the key that signed the push.
    let request_uri = v["request_uri"].as_str().expect("request_uri");
    let url = format!(
        "{}/oauth2/authorize?client_id={}&request_uri={}",
        node.base,
        node.notes,
        urlencoding(request_uri)
    );
    let code = node.code_at(url, "203.0.113.61").await;
    let mismatch = |r: portcullis_service::sign_in::Result<_>| match r {
        Err(portcullis_service::sign_in::SignInError::Invalid(reason)) => {
            assert_eq!(reason, "code_dpop_key_mismatch")
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("redeemed"),
    };
    mismatch(node.redeem_notes_code(&code).await);
    mismatch(
        node.redeem_notes_code_with(&code, Some(other.jkt().as_str()))
            .await,
    );
    node.redeem_notes_code_with(&code, Some(key.jkt().as_str()))
        .await
        .expect("the key of the push redeems it");

    // With `dpop_jkt` too: the same key is fine, another is refused.
    refused(
        push_dpop(
            &node,
            &[("dpop_jkt", other.jkt().as_str())],
            vec![proof(&key, "p4", &par)],
        )
        .await,
        "dpop_jkt of another key",
    );
    let (s, v) = push_dpop(
        &node,
        &[("dpop_jkt", key.jkt().as_str())],
        vec![proof(&key, "p5", &par)],
    )
    .await;
    assert_eq!(s, 201, "{v}");
}

/// With `oauth.dpop_require_nonce`, the push asks for a server nonce as the token endpoint does
/// (RFC 9449 section 8): `use_dpop_nonce` with a `DPoP-Nonce` header, and a proof carrying it
/// is accepted. The refusals are audited.
#[tokio::test]
async fn a_push_with_a_dpop_proof_needs_a_nonce_when_nonces_are_required() {
    use portcullis_jose::profile::dpop_proof::{ProofClaims, ProofSigner};
    use portcullis_jose::{Alg, SigningKeyPair};
    let node = Node::start_with(|c| c.oauth.dpop_require_nonce = true).await;
    let key =
        ProofSigner::new(SigningKeyPair::generate(Alg::ES256).expect("key").1).expect("signer");
    let par = format!("{}/oauth2/par", common::ISSUER);
    let proof = |jti: &str, nonce: Option<&str>| {
        key.sign(&ProofClaims {
            jti,
            htm: "POST",
            htu: &par,
            iat: portcullis_core::time::Clock::now(node.clock.as_ref()).as_secs(),
            ath: None,
            nonce,
        })
        .expect("proof")
    };
    let (s, h, v) = push_dpop_headers(&node, &[], vec![proof("n1", None)]).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (400, Some("use_dpop_nonce")),
        "{v}"
    );
    let nonce = h
        .get("dpop-nonce")
        .and_then(|n| n.to_str().ok())
        .expect("a DPoP-Nonce header")
        .to_owned();
    let (s, v) = push_dpop(&node, &[], vec![proof("n2", Some(&nonce))]).await;
    assert_eq!(s, 201, "{v}");
    let (s, v) = push_dpop(&node, &[], vec![proof("n3", Some("not-a-nonce"))]).await;
    assert_eq!(s, 400, "{v}");

    // The audit writer flushes every 5 ms here; waits (bounded) for the three events.
    let mut pushes = Vec::new();
    for _ in 0..200 {
        pushes = common::audit_events(node.store.as_ref(), "acme")
            .await
            .into_iter()
            .filter(|e| e.action == portcullis_core::audit::Action::OAuthAuthorizationPush)
            .map(|e| e.outcome.as_str().to_owned())
            .collect::<Vec<_>>();
        if pushes.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(pushes, ["denied", "success", "denied"], "each push audited");
}

/// RFC 9126 section 6 per tenant: the tenant's OAuth policy makes every client of the tenant push
/// its requests, whatever the client's own setting; turning it off restores direct requests.
#[tokio::test]
async fn a_tenants_oauth_policy_requires_pushed_requests_of_every_client() {
    let node = Node::start().await;
    let admin = reqwest::Client::new();
    let policy_url = format!("{}/admin/v1/tenants/acme/oauth-policy", node.base);
    let put = |on: bool| {
        admin
            .put(&policy_url)
            .bearer_auth(&node.admins.acme)
            .json(&json!({"require_pushed_authorization_requests": on}))
            .send()
    };
    let r = admin
        .get(&policy_url)
        .bearer_auth(&node.admins.acme)
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["require_pushed_authorization_requests"], false, "{v}");
    assert!(v["updated_at"].is_null(), "never set: {v}");
    // A direct request opens the sign-in page (and the node now holds "not required" in its
    // directory cache, which the PUT below must drop at once).
    let b = node.browser("203.0.113.61");
    let (s, _, page) = text(b.get(node.notes_url(&[])).send().await.expect("get")).await;
    assert_eq!(s, 200, "{page}");

    let r = put(true).await.expect("put");
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["require_pushed_authorization_requests"], true, "{v}");
    // Unknown members are refused, the policy unchanged.
    let r = admin
        .put(&policy_url)
        .bearer_auth(&node.admins.acme)
        .json(&json!({"require_pushed_authorization_requests": false, "other": 1}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 400);

    // The notes client never asked for PAR itself: a direct request now goes back refused.
    let (s, h, _) = text(b.get(node.notes_url(&[])).send().await.expect("get")).await;
    assert_eq!(s, 303);
    let q = query_of(&location(&h));
    assert_eq!(param(&q, "error"), Some("invalid_request"));
    // A pushed one opens.
    let (s, _, v) = push(&node, &pushed_fields(&node, &[])).await;
    assert_eq!(s, 201, "{v}");
    let url = format!(
        "{}/oauth2/authorize?client_id={}&request_uri={}",
        node.base,
        node.notes,
        urlencoding(v["request_uri"].as_str().expect("request_uri"))
    );
    let (s, _, page) = text(b.get(&url).send().await.expect("get")).await;
    assert_eq!(s, 200, "{page}");

    // Off again: direct requests open the sign-in page.
    let r = put(false).await.expect("put");
    assert_eq!(r.status(), 200);
    let (s, _, page) = text(b.get(node.notes_url(&[])).send().await.expect("get")).await;
    assert_eq!(s, 200, "{page}");
}
