//! The revocation feed client against a fake SSE server on 127.0.0.1: records apply in order,
//! a dropped connection resumes from `Last-Event-ID` with nothing lost or repeated, a server
//! that stops answering makes verification fail closed after the staleness bound, and
//! `insecure_allow_stale` keeps serving.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use common::*;
use portcullis_core::revocation::{RevocationKind, RevocationRecord, RevokedBy};
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_verify::{
    FeedConfig, IssuerConfig, KeySource, Reason, RevocationSource, Verifier, VerifierConfig,
};
use serde_json::json;
use tokio::sync::watch;

const FEED_TOKEN: &str = "feed-token";

#[derive(Clone)]
struct Fake {
    log: Arc<Mutex<Vec<RevocationRecord>>>,
    head: watch::Sender<i64>,
    /// `Last-Event-ID` of every connection, in order.
    resumed_from: Arc<Mutex<Vec<i64>>>,
    /// Close each connection after sending this many records (0 = never).
    drop_after: Arc<Mutex<usize>>,
    /// Answer 503 to new connections.
    down: Arc<Mutex<bool>>,
    /// Open streams stop sending anything (a hung server).
    frozen: Arc<Mutex<bool>>,
    /// Bumped to end every open stream (a server restart).
    epoch: Arc<Mutex<u64>>,
    /// Streams currently open.
    open: Arc<std::sync::atomic::AtomicUsize>,
    /// The `Portcullis-Feed-Version` the server names (none: a server from before versions).
    version: Arc<Mutex<Option<&'static str>>>,
}

impl Fake {
    fn new() -> Self {
        Self {
            log: Arc::default(),
            head: watch::channel(0).0,
            resumed_from: Arc::default(),
            drop_after: Arc::default(),
            down: Arc::default(),
            frozen: Arc::default(),
            epoch: Arc::default(),
            open: Arc::default(),
            version: Arc::default(),
        }
    }

    fn revoke(&self, kind: RevocationKind, tenant: &str, subject: &str) {
        let mut log = self.log.lock().expect("lock");
        let seq = log.len() as i64 + 1;
        log.push(RevocationRecord {
            seq,
            tenant: TenantId::parse(tenant).expect("tenant"),
            kind,
            subject: subject.into(),
            revoked_before: None,
            expires_at: None,
            created_at: Timestamp::from_secs(NOW_S),
        });
        drop(log);
        self.head.send_replace(seq);
    }
}

async fn stream(State(fake): State<Fake>, headers: HeaderMap) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {FEED_TOKEN}"))
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    if *fake.down.lock().expect("lock") {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let from: i64 = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    fake.resumed_from.lock().expect("lock").push(from);
    // Like the real server: a resume point past the end of the log is refused.
    if from > fake.log.lock().expect("lock").len() as i64 {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(64);
    let drop_after = *fake.drop_after.lock().expect("lock");
    let epoch = *fake.epoch.lock().expect("lock");
    fake.open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    tokio::spawn(async move {
        struct Open(Arc<std::sync::atomic::AtomicUsize>);
        impl Drop for Open {
            fn drop(&mut self) {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let _open = Open(fake.open.clone());
        let mut pos = from;
        let mut sent = 0usize;
        let mut head = fake.head.subscribe();
        loop {
            if *fake.epoch.lock().expect("lock") != epoch {
                return;
            }
            if *fake.frozen.lock().expect("lock") {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if tx.is_closed() {
                    return;
                }
                continue;
            }
            let pending: Vec<RevocationRecord> = fake
                .log
                .lock()
                .expect("lock")
                .iter()
                .filter(|r| r.seq > pos)
                .cloned()
                .collect();
            for r in pending {
                // A newer server's record: a kind and a field this verifier has never seen.
                let data = serde_json::to_string(&r).expect("json").replace(
                    "\"kind\":\"unknown\"",
                    "\"kind\":\"grant\",\"grant\":\"g-1\"",
                );
                let ev = format!("id: {}\nevent: revocation\ndata: {data}\n\n", r.seq);
                if tx.send(Ok(ev)).await.is_err() {
                    return;
                }
                pos = r.seq;
                sent += 1;
                if drop_after > 0 && sent >= drop_after {
                    return; // the connection ends mid-log
                }
            }
            let hb = format!(
                "event: heartbeat\ndata: {}\n\n",
                json!({"position": pos, "time": 0})
            );
            if tx.send(Ok(hb)).await.is_err() {
                return;
            }
            let _ = tokio::time::timeout(Duration::from_millis(200), head.changed()).await;
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut response = ([("content-type", "text/event-stream")], body).into_response();
    if let Some(v) = *fake.version.lock().expect("lock") {
        response.headers_mut().insert(
            "portcullis-feed-version",
            axum::http::HeaderValue::from_static(v),
        );
    }
    response
}

async fn start(fake: Fake) -> String {
    let app = axum::Router::new()
        .route("/v1/revocations/stream", get(stream))
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

fn verifier(base: &str, stale_after: Duration, allow_stale: bool) -> (Verifier, EcKey) {
    let k = EcKey::new("k1", 1);
    let mut feed = FeedConfig::new(base, FEED_TOKEN);
    feed.staleness_bound = stale_after;
    feed.insecure_allow_stale = allow_stale;
    feed.idle_timeout = Duration::from_secs(2);
    let cfg = VerifierConfig::new(
        IssuerConfig::new(ISSUER, KeySource::Static(jwks_of(&[k.jwk()]))),
        AUDIENCE,
        RevocationSource::Feed(feed),
    );
    // The real clock: the feed's contact times and the staleness check must agree with it.
    (Verifier::new(cfg).expect("verifier"), k)
}

/// The claims of a token this test minted (unverified: for building a variant).
fn claims_of(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64");
    serde_json::from_slice(&bytes).expect("json")
}

fn token_for(k: &EcKey, jti: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    let mut c = claims();
    c["jti"] = json!(jti);
    c["iat"] = json!(now);
    c["nbf"] = json!(now);
    c["exp"] = json!(now + 600);
    es256_token(k, &header("k1", "ES256"), &c)
}

/// Polls until `f` holds, for at most 10 s (a deadline against hanging, not a timing claim).
async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    for _ in 0..200 {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn reason(v: &Verifier, t: &str) -> Result<(), Reason> {
    v.verify_access_token(t)
        .await
        .map(|_| ())
        .map_err(|d| d.reason)
}

#[tokio::test]
async fn records_arrive_and_apply_to_tokens() {
    let fake = Fake::new();
    fake.revoke(RevocationKind::Token, "acme", "jti-old");
    let base = start(fake.clone()).await;
    let (v, k) = verifier(&base, Duration::from_secs(30), false);
    assert!(eventually(|| v.revocations().position() == 1).await);
    assert_eq!(
        reason(&v, &token_for(&k, "jti-old")).await,
        Err(Reason::Revoked(RevokedBy::Token))
    );
    let live = token_for(&k, "jti-live");
    assert_eq!(reason(&v, &live).await, Ok(()));
    fake.revoke(RevocationKind::Token, "acme", "jti-live");
    let mut refused = false;
    for _ in 0..200 {
        if reason(&v, &live).await == Err(Reason::Revoked(RevokedBy::Token)) {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        refused,
        "a revocation pushed while connected reaches the verifier"
    );
}

#[tokio::test]
async fn a_revoked_token_reaches_every_token_exchanged_from_it() {
    let fake = Fake::new();
    let base = start(fake.clone()).await;
    let (v, k) = verifier(&base, Duration::from_secs(30), false);
    let exchanged = |jti: &str, from: &[&str]| {
        let t = token_for(&k, jti);
        let mut c = claims_of(&t);
        c["exchanged_from"] = json!(from);
        es256_token(&k, &header("k1", "ES256"), &c)
    };
    let hop1 = exchanged("jti-hop1", &["jti-root"]);
    let hop2 = exchanged("jti-hop2", &["jti-root", "jti-hop1"]);
    let other = exchanged("jti-other", &["jti-elsewhere"]);
    assert!(
        eventually(|| v.revocations().lag().is_some()).await,
        "feed connected"
    );
    assert_eq!(
        reason(&v, &hop2).await,
        Ok(()),
        "cached before the revocation"
    );
    fake.revoke(RevocationKind::Token, "acme", "jti-root");
    assert!(eventually(|| v.revocations().position() == 1).await);
    for t in [&hop1, &hop2] {
        assert_eq!(
            reason(&v, t).await,
            Err(Reason::Revoked(RevokedBy::ExchangedFrom))
        );
    }
    assert_eq!(reason(&v, &other).await, Ok(()));
    // Another chain is refused once its own origin is revoked.
    fake.revoke(RevocationKind::Token, "acme", "jti-elsewhere");
    assert!(eventually(|| v.revocations().position() == 2).await);
    assert_eq!(
        reason(&v, &other).await,
        Err(Reason::Revoked(RevokedBy::ExchangedFrom))
    );
}

#[tokio::test]
async fn reconnects_resume_from_the_last_event_without_loss_or_repeats() {
    let fake = Fake::new();
    *fake.drop_after.lock().expect("lock") = 3;
    for i in 1..=10 {
        fake.revoke(RevocationKind::Token, "acme", &format!("j{i}"));
    }
    let base = start(fake.clone()).await;
    let (v, k) = verifier(&base, Duration::from_secs(30), false);
    assert!(
        eventually(|| v.revocations().position() == 10).await,
        "position {}",
        v.revocations().position()
    );
    let resumed = fake.resumed_from.lock().expect("lock").clone();
    assert_eq!(&resumed[..4], &[0, 3, 6, 9], "{resumed:?}");
    for i in 1..=10 {
        assert_eq!(
            reason(&v, &token_for(&k, &format!("j{i}"))).await,
            Err(Reason::Revoked(RevokedBy::Token)),
            "j{i}"
        );
    }
}

#[tokio::test]
async fn a_feed_down_past_the_bound_fails_closed_and_recovers() {
    let fake = Fake::new();
    let base = start(fake.clone()).await;
    let (v, k) = verifier(&base, Duration::from_millis(1500), false);
    let t = token_for(&k, "j1");
    assert!(
        eventually(|| v.revocations().position() == 0 && v.revocations().lag().is_some()).await
    );
    assert_eq!(reason(&v, &t).await, Ok(()));
    // The server stops sending (existing streams go idle; new connections get 503).
    *fake.down.lock().expect("lock") = true;
    *fake.frozen.lock().expect("lock") = true;
    let mut stale = false;
    for _ in 0..200 {
        if reason(&v, &t).await == Err(Reason::RevocationFeedStale) {
            stale = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stale, "verification fails closed once the feed is stale");
    *fake.down.lock().expect("lock") = false;
    *fake.frozen.lock().expect("lock") = false;
    let mut back = false;
    for _ in 0..200 {
        if reason(&v, &t).await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "recovers once the feed is back");
}

#[tokio::test]
async fn insecure_allow_stale_keeps_serving() {
    let fake = Fake::new();
    *fake.down.lock().expect("lock") = true;
    let base = start(fake.clone()).await;
    let (v, k) = verifier(&base, Duration::from_millis(100), true);
    assert_eq!(reason(&v, &token_for(&k, "j1")).await, Ok(()));
}

#[tokio::test]
async fn a_wrong_feed_token_never_counts_as_contact() {
    let fake = Fake::new();
    let base = start(fake.clone()).await;
    let k = EcKey::new("k1", 1);
    let mut feed = FeedConfig::new(&base, "wrong");
    feed.staleness_bound = Duration::from_secs(30);
    let cfg = VerifierConfig::new(
        IssuerConfig::new(ISSUER, KeySource::Static(jwks_of(&[k.jwk()]))),
        AUDIENCE,
        RevocationSource::Feed(feed),
    );
    let v = Verifier::new(cfg).expect("verifier");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        reason(&v, &token_for(&k, "j1")).await,
        Err(Reason::RevocationFeedStale)
    );
}

#[tokio::test]
async fn a_server_whose_log_went_backwards_is_replayed_from_the_start() {
    let fake = Fake::new();
    for i in 1..=5 {
        fake.revoke(RevocationKind::Token, "acme", &format!("old{i}"));
    }
    let base = start(fake.clone()).await;
    let (v, k) = verifier(&base, Duration::from_secs(30), false);
    assert!(eventually(|| v.revocations().position() == 5).await);
    // The database is restored from a backup with only two entries, one of them new.
    {
        let mut log = fake.log.lock().expect("lock");
        log.truncate(1);
        log.push(RevocationRecord {
            seq: 2,
            tenant: TenantId::parse("acme").expect("t"),
            kind: RevocationKind::Token,
            subject: "restored".into(),
            revoked_before: None,
            expires_at: None,
            created_at: Timestamp::from_secs(NOW_S),
        });
    }
    *fake.epoch.lock().expect("lock") += 1; // the old stream dies with the old server
    assert!(
        eventually(|| fake.resumed_from.lock().expect("lock").contains(&0)
            && fake.resumed_from.lock().expect("lock").len() >= 3)
        .await,
        "{:?}",
        fake.resumed_from.lock().expect("lock")
    );
    let restored = token_for(&k, "restored");
    let mut refused = false;
    for _ in 0..200 {
        if reason(&v, &restored).await == Err(Reason::Revoked(RevokedBy::Token)) {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused, "entries of the restored log apply");
    assert_eq!(
        reason(&v, &token_for(&k, "old1")).await,
        Err(Reason::Revoked(RevokedBy::Token))
    );
    assert_eq!(
        reason(&v, &token_for(&k, "old3")).await,
        Ok(()),
        "state not in the restored log is dropped"
    );
}

#[tokio::test]
async fn dropping_the_verifier_closes_its_feed_connection() {
    let fake = Fake::new();
    let base = start(fake.clone()).await;
    let (v, _k) = verifier(&base, Duration::from_secs(30), false);
    let open = |n| {
        let fake = fake.clone();
        move || fake.open.load(std::sync::atomic::Ordering::SeqCst) == n
    };
    assert!(
        eventually(open(1)).await,
        "one stream while the verifier lives"
    );
    drop(v);
    assert!(eventually(open(0)).await, "no stream once it is gone");
}

fn token_with_sid(k: &EcKey, jti: &str, sid: &str) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_secs() as i64;
    let mut c = claims();
    c["jti"] = json!(jti);
    c["sid"] = json!(sid);
    c["iat"] = json!(now);
    c["nbf"] = json!(now);
    c["exp"] = json!(now + 600);
    es256_token(k, &header("k1", "ES256"), &c)
}

#[tokio::test]
async fn a_revoked_session_refuses_every_token_carrying_its_sid_and_no_other() {
    let fake = Fake::new();
    fake.revoke(RevocationKind::Session, "acme", "ses-gone");
    let base = start(fake.clone()).await;
    let (v, k) = verifier(&base, Duration::from_secs(30), false);
    assert!(eventually(|| v.revocations().position() == 1).await);
    assert_eq!(
        reason(&v, &token_with_sid(&k, "j1", "ses-gone")).await,
        Err(Reason::Revoked(RevokedBy::Session))
    );
    assert_eq!(
        reason(&v, &token_with_sid(&k, "j2", "ses-live")).await,
        Ok(())
    );
    assert_eq!(
        reason(&v, &token_for(&k, "j3")).await,
        Ok(()),
        "a token without a sid"
    );
    // A cached verification is refused too once its session is revoked.
    let cached = token_with_sid(&k, "j4", "ses-later");
    assert_eq!(reason(&v, &cached).await, Ok(()));
    fake.revoke(RevocationKind::Session, "acme", "ses-later");
    assert!(eventually(|| v.revocations().position() == 2).await);
    assert_eq!(
        reason(&v, &cached).await,
        Err(Reason::Revoked(RevokedBy::Session))
    );
}

#[tokio::test]
async fn a_newer_kind_naming_a_tokens_sid_is_read_conservatively() {
    // A record of a kind this verifier does not know, naming a session id: the conservative
    // rule covers the sid like every other identifier of the token.
    let fake = Fake::new();
    fake.revoke(RevocationKind::Unknown, "acme", "ses-x");
    let base = start(fake.clone()).await;
    let (v, k) = verifier(&base, Duration::from_secs(30), false);
    assert!(eventually(|| v.revocations().position() == 1).await);
    assert_eq!(
        reason(&v, &token_with_sid(&k, "j1", "ses-x")).await,
        Err(Reason::Revoked(RevokedBy::UnknownKind))
    );
    assert_eq!(reason(&v, &token_with_sid(&k, "j2", "ses-y")).await, Ok(()));
}

#[tokio::test]
async fn an_older_verifier_keeps_following_past_a_newer_kind_and_refuses_what_it_names() {
    let fake = Fake::new();
    *fake.version.lock().expect("lock") = Some("1");
    // A kind this verifier does not know names a token's jti; then a known record follows.
    fake.revoke(RevocationKind::Unknown, "acme", "jti-newer");
    fake.revoke(RevocationKind::Token, "acme", "jti-known");
    let base = start(fake.clone()).await;
    let (v, k) = verifier(&base, Duration::from_secs(30), false);
    assert!(
        eventually(|| v.revocations().position() == 2).await,
        "still following: position {}",
        v.revocations().position()
    );
    assert_eq!(
        reason(&v, &token_for(&k, "jti-newer")).await,
        Err(Reason::Revoked(RevokedBy::UnknownKind))
    );
    assert_eq!(
        reason(&v, &token_for(&k, "jti-known")).await,
        Err(Reason::Revoked(RevokedBy::Token))
    );
    assert_eq!(reason(&v, &token_for(&k, "jti-other")).await, Ok(()));
    assert_eq!(
        fake.resumed_from.lock().expect("lock").len(),
        1,
        "one connection: nothing was refused"
    );
}

#[tokio::test]
async fn a_feed_of_another_protocol_version_is_refused_and_verification_fails_closed() {
    let fake = Fake::new();
    *fake.version.lock().expect("lock") = Some("2");
    fake.revoke(RevocationKind::Token, "acme", "jti-old");
    let base = start(fake.clone()).await;
    let (v, k) = verifier(&base, Duration::from_secs(30), false);
    assert!(
        eventually(|| fake.resumed_from.lock().expect("lock").len() >= 2).await,
        "keeps retrying"
    );
    assert_eq!(v.revocations().position(), 0, "nothing applied");
    assert_eq!(
        reason(&v, &token_for(&k, "jti-live")).await,
        Err(Reason::RevocationFeedStale)
    );
}
