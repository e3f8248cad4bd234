//! Back-channel logout end to end over a real store (SQLite) and a local receiver on
//! 127.0.0.1:0: which clients are told, the token they get (checked with jose's logout-token
//! profile against the issuer's JWKS), retries after a failure, giving up, and dropping.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_core::audit::{Action, Actor, Outcome};
use portcullis_core::auth_code::s256_challenge;
use portcullis_core::client::{ApplicationType, ClientId, ClientType};
use portcullis_core::signing::SigningAlgorithm;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{Clock, ManualClock, Timestamp};
use portcullis_core::user::UserId;
use portcullis_jose::profile::logout_token;
use portcullis_jose::Alg;
use portcullis_store::{ClientStatus, NewTenant, OAuthClient, SqliteStore, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::audit::{AuditConfig, Subscription};
use crate::kek::{Kek, Keyring};
use crate::oauth::OAuthConfig;
use crate::sign_in::{
    CodeRequest, NewSession, RedemptionRequest, SignIn, SignInConfig, StartedSession,
};

const ISSUER: &str = "https://auth.test";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "https://app.example/cb";
const USER_1: &str = "usr_01aaaaaaaaaaaaaaaaaaaaaaaa";
const USER_2: &str = "usr_01bbbbbbbbbbbbbbbbbbbbbbbb";

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    content_type: String,
    body: String,
}

/// A minimal HTTP/1.1 receiver: answers each request with the next status of `script` (the
/// last one repeats), recording what it got.
struct Receiver {
    base: String,
    got: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receiver(script: Vec<u16>) -> Receiver {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    let task = tokio::spawn(async move {
        let mut n = 0usize;
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let status = script[n.min(script.len() - 1)];
            n += 1;
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let k = conn.read(&mut chunk).await.expect("read");
                if k == 0 {
                    return;
                }
                buf.extend_from_slice(&chunk[..k]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let head = text[..end].to_owned();
                    let len = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().expect("length"))
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break (head, text[end + 4..end + 4 + len].to_owned());
                    }
                }
            };
            let path = head
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_owned();
            let content_type = head
                .lines()
                .find_map(|l| {
                    let lower = l.to_ascii_lowercase();
                    lower
                        .strip_prefix("content-type:")
                        .map(|v| v.trim().to_owned())
                })
                .unwrap_or_default();
            seen.lock().expect("lock").push(Received {
                path,
                content_type,
                body,
            });
            let answer =
                format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = conn.write_all(answer.as_bytes()).await;
        }
    });
    Receiver { base, got, task }
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    sign_in: SignIn,
    backchannel: Backchannel,
    jwks: portcullis_jose::KeySet,
    events: Subscription,
    _writer: crate::audit::AuditWriter,
}

fn tid(s: &str) -> TenantId {
    TenantId::parse(s).expect("tenant")
}

fn settings() -> LogoutSettings {
    LogoutSettings {
        backchannel_max_attempts: 3,
        backchannel_first_retry_secs: 5,
        backchannel_max_retry_secs: 60,
        backchannel_timeout_ms: 2_000,
        insecure_allow_http_loopback: true,
        ..LogoutSettings::default()
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("db"))
            .await
            .expect("open"),
    );
    for t in ["acme", "globex"] {
        store
            .create_tenant(
                &NewTenant {
                    id: tid(t),
                    display_name: t.into(),
                },
                Timestamp::from_secs(1),
            )
            .await
            .expect("tenant");
    }
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_000_000)));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let (sink, writer) =
        crate::audit::spawn(store.clone(), dyn_clock.clone(), &AuditConfig::default());
    let events = sink.subscribe();
    let ring = Keyring::new(Kek::from_bytes([9; 32]));
    let (keys, _) = crate::keys::load_or_create_active(
        store.as_ref(),
        &ring,
        &dyn_clock,
        SigningAlgorithm::ES256,
    )
    .await
    .expect("keys");
    let jwk = keys.active().expect("active").public_jwk.clone();
    let jwks = portcullis_jose::parse_jwk_set(&serde_json::json!({ "keys": [jwk] }), &Alg::SIGNING)
        .expect("jwks");
    let oauth = Arc::new(
        crate::oauth::OAuthState::new(ISSUER.into(), &OAuthConfig::default(), &keys)
            .expect("oauth"),
    );
    let sign_in = SignIn::new(
        store.clone(),
        dyn_clock.clone(),
        sink.clone(),
        SignInConfig::default(),
        &ring,
    );
    let backchannel = Backchannel::new(
        store.clone(),
        dyn_clock,
        sink,
        oauth,
        settings(),
        sign_in.backchannel_wakeup(),
    )
    .expect("backchannel");
    Fixture {
        _dir: dir,
        store,
        clock,
        sign_in,
        backchannel,
        jwks,
        events,
        _writer: writer,
    }
}

fn app_client(id: &str, tenant: &str, uri: Option<String>) -> OAuthClient {
    OAuthClient {
        id: id.into(),
        tenant: tid(tenant),
        name: id.into(),
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
        redirect_uris: vec![REDIRECT.into()],
        post_logout_redirect_uris: vec![],
        allowed_web_origins: vec![],
        first_party: true,
        backchannel_logout_uri: uri,
        backchannel_logout_session_required: true,
        require_pushed_requests: false,
        require_dpop: false,
        id_token_signed_response_alg: None,
        tls_subject: None,
        certificate_bound_tokens: false,
    }
}

impl Fixture {
    async fn client(&self, id: &str, uri: Option<String>) {
        self.store
            .create_client(&app_client(id, "acme", uri), None)
            .await
            .expect("client");
    }

    async fn session(&self, user: &str) -> StartedSession {
        self.sign_in
            .create_session(
                NewSession {
                    tenant: tid("acme"),
                    user_id: UserId::parse(user).expect("user id"),
                    amr: vec!["pwd".into()],
                    acr: None,
                },
                None,
                Actor::system(),
                &RequestOrigin::default(),
            )
            .await
            .expect("session")
    }

    /// The client gets tokens in the session: a code issued and redeemed.
    async fn redeem(&self, session: &StartedSession, client: &str) {
        let challenge = s256_challenge(VERIFIER);
        let code = self
            .sign_in
            .issue_code(CodeRequest {
                client_id: &ClientId::parse(client).expect("client id"),
                redirect_uri: REDIRECT,
                code_challenge: &challenge,
                nonce: None,
                scope: vec!["openid".into()],
                dpop_jkt: None,
                session: &session.record,
            })
            .await
            .expect("code");
        self.sign_in
            .redeem_code(
                RedemptionRequest {
                    code: code.expose(),
                    tenant: &tid("acme"),
                    client_id: client,
                    redirect_uri: REDIRECT,
                    code_verifier: VERIFIER,
                    dpop_jkt: None,
                },
                &RequestOrigin::default(),
            )
            .await
            .expect("redeem");
    }

    async fn end(&self, session: &StartedSession) {
        assert!(self
            .sign_in
            .revoke_session(
                &tid("acme"),
                session.sid.as_str(),
                "sign_out",
                Actor::system(),
                &RequestOrigin::default(),
            )
            .await
            .expect("revoke"));
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    fn verify(&self, r: &Received, client: &str) -> logout_token::Verified {
        assert_eq!(r.content_type, "application/x-www-form-urlencoded");
        let token = form_urlencoded::parse(r.body.as_bytes())
            .find(|(k, _)| k == "logout_token")
            .map(|(_, v)| v.into_owned())
            .expect("logout_token");
        logout_token::verify(
            &token,
            8192,
            &Alg::SIGNING,
            &self.jwks,
            &logout_token::Rules {
                issuer: ISSUER,
                client_id: client,
                sid_required: true,
                leeway_s: 30,
                max_lifetime_s: 600,
            },
            self.clock.now(),
        )
        .expect("a valid logout token")
    }

    fn backchannel_events(&mut self) -> Vec<(Outcome, Option<String>)> {
        std::iter::from_fn(|| self.events.try_recv())
            .filter(|e| e.action == Action::SessionBackchannelLogout)
            .map(|e| (e.outcome, e.target.clone()))
            .collect()
    }
}

async fn settle(f: &mut Fixture) {
    // The audit bus publishes from the sink at once; nothing to wait for but the task yield.
    tokio::task::yield_now().await;
    let _ = f;
}

#[tokio::test]
async fn each_client_of_the_ended_session_is_told_once_and_no_one_else() {
    let mut f = fixture().await;
    let rx = receiver(vec![200]).await;
    f.client("cl_a", Some(format!("{}/a", rx.base))).await;
    f.client("cl_b", Some(format!("{}/b", rx.base))).await;
    f.client("cl_none", None).await;
    let ours = f.session(USER_1).await;
    let theirs = f.session(USER_2).await;
    for c in ["cl_a", "cl_b", "cl_none"] {
        f.redeem(&ours, c).await;
    }
    // Twice in one session: still one notification.
    f.redeem(&ours, "cl_a").await;
    f.redeem(&theirs, "cl_a").await;
    assert_eq!(
        f.store
            .session_clients(&tid("acme"), ours.sid.as_str())
            .await
            .expect("clients"),
        vec!["cl_a", "cl_b", "cl_none"]
    );

    f.end(&ours).await;
    let report = f.backchannel.run_due().await.expect("pass");
    assert_eq!(report.delivered, 2, "{report:?}");
    let got = rx.got.lock().expect("lock").clone();
    assert_eq!(got.len(), 2);
    for r in &got {
        let client = if r.path == "/a" { "cl_a" } else { "cl_b" };
        let v = f.verify(r, client);
        assert_eq!(v.sid.as_deref(), Some(ours.sid.as_str()));
        assert_eq!(v.sub.as_deref(), Some(USER_1));
    }
    let mut paths: Vec<_> = got.iter().map(|r| r.path.clone()).collect();
    paths.sort();
    assert_eq!(paths, ["/a", "/b"]);
    // A token for cl_a is no token for cl_b.
    let for_a = got.iter().find(|r| r.path == "/a").expect("a");
    let token = form_urlencoded::parse(for_a.body.as_bytes())
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
        .expect("token");
    assert_eq!(
        logout_token::verify(
            &token,
            8192,
            &Alg::SIGNING,
            &f.jwks,
            &logout_token::Rules {
                issuer: ISSUER,
                client_id: "cl_b",
                sid_required: true,
                leeway_s: 30,
                max_lifetime_s: 600,
            },
            f.clock.now(),
        )
        .err(),
        Some(portcullis_jose::JoseError::AudienceMismatch)
    );

    // Sent once: later passes find nothing, even much later.
    f.advance(3600);
    assert_eq!(
        f.backchannel.run_due().await.expect("pass"),
        PassReport::default()
    );
    assert_eq!(rx.got.lock().expect("lock").len(), 2);
    settle(&mut f).await;
    let events = f.backchannel_events();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|(o, _)| *o == Outcome::Success));
}

#[tokio::test]
async fn a_failed_delivery_is_retried_after_the_backoff() {
    let f = fixture().await;
    let rx = receiver(vec![500, 200]).await;
    f.client("cl_a", Some(format!("{}/a", rx.base))).await;
    let s = f.session(USER_1).await;
    f.redeem(&s, "cl_a").await;
    f.end(&s).await;
    let first = f.backchannel.run_due().await.expect("pass");
    assert_eq!(first.retrying, 1, "{first:?}");
    // Not due again before the backoff (5 s) ends.
    f.advance(4);
    assert_eq!(
        f.backchannel.run_due().await.expect("pass"),
        PassReport::default()
    );
    f.advance(2);
    let second = f.backchannel.run_due().await.expect("pass");
    assert_eq!(second.delivered, 1, "{second:?}");
    let got = rx.got.lock().expect("lock").clone();
    assert_eq!(got.len(), 2);
    let (one, two) = (f.verify(&got[0], "cl_a"), f.verify(&got[1], "cl_a"));
    assert_ne!(one.jti, two.jti, "a new token per attempt");
}

#[tokio::test]
async fn a_delivery_is_given_up_after_the_last_attempt_with_an_audit_event() {
    let mut f = fixture().await;
    let rx = receiver(vec![500]).await;
    f.client("cl_a", Some(format!("{}/a", rx.base))).await;
    let s = f.session(USER_1).await;
    f.redeem(&s, "cl_a").await;
    f.end(&s).await;
    let mut reports = Vec::new();
    for _ in 0..3 {
        reports.push(f.backchannel.run_due().await.expect("pass"));
        f.advance(120);
    }
    assert_eq!(reports[0].retrying, 1);
    assert_eq!(reports[1].retrying, 1);
    assert_eq!(reports[2].given_up, 1, "{reports:?}");
    assert_eq!(rx.got.lock().expect("lock").len(), 3);
    f.advance(3600);
    assert_eq!(
        f.backchannel.run_due().await.expect("pass"),
        PassReport::default()
    );
    settle(&mut f).await;
    assert_eq!(
        f.backchannel_events(),
        [(Outcome::Failure, Some("cl_a".to_owned()))]
    );
}

#[tokio::test]
async fn an_unreachable_receiver_and_a_removed_uri_are_handled() {
    let f = fixture().await;
    // A port nobody listens on (bound, then closed).
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    f.client("cl_a", Some(format!("http://{closed}/a"))).await;
    f.client("cl_b", Some("http://127.0.0.1:1/b".into())).await;
    let s = f.session(USER_1).await;
    f.redeem(&s, "cl_a").await;
    f.redeem(&s, "cl_b").await;
    // cl_b removes its URI after the session began.
    let mut b = f.store.get_client("cl_b").await.expect("get").expect("b");
    b.backchannel_logout_uri = None;
    assert!(f
        .store
        .update_client(&b, f.clock.now())
        .await
        .expect("update"));
    f.end(&s).await;
    let r = f.backchannel.run_due().await.expect("pass");
    // Queued only for clients registering a URI when the session ended.
    assert_eq!(r.retrying, 1, "{r:?}");
    assert_eq!(r.dropped + r.delivered + r.given_up, 0, "{r:?}");
}

#[tokio::test]
async fn signing_a_user_out_everywhere_tells_the_clients_of_every_session() {
    let f = fixture().await;
    let rx = receiver(vec![200]).await;
    f.client("cl_a", Some(format!("{}/a", rx.base))).await;
    let one = f.session(USER_1).await;
    let two = f.session(USER_1).await;
    let other = f.session(USER_2).await;
    for s in [&one, &two, &other] {
        f.redeem(s, "cl_a").await;
    }
    let ended = f
        .sign_in
        .revoke_user_sessions(
            &tid("acme"),
            USER_1,
            "user_disabled",
            Actor::system(),
            &RequestOrigin::default(),
        )
        .await
        .expect("revoke");
    assert_eq!(ended.len(), 2);
    assert_eq!(f.backchannel.run_due().await.expect("pass").delivered, 2);
    let mut sids: Vec<_> = rx
        .got
        .lock()
        .expect("lock")
        .iter()
        .map(|r| f.verify(r, "cl_a").sid.expect("sid"))
        .collect();
    sids.sort();
    let mut want = vec![one.sid.as_str().to_owned(), two.sid.as_str().to_owned()];
    want.sort();
    assert_eq!(sids, want);
}
