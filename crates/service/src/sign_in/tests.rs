//! The sign-in operations over a real store (SQLite; the racing refresh also on PostgreSQL when
//! `PORTCULLIS_TEST_DATABASE_URL` is set) with a manual clock.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::audit::{Action, Actor};
use portcullis_core::auth_code::s256_challenge;
use portcullis_core::client::ClientId;
use portcullis_core::credential::{Credential, CredentialKind, Environment};
use portcullis_core::refresh::RefreshPolicy;
use portcullis_core::revocation::RevocationKind;
use portcullis_core::session::{SessionId, SessionPolicy};
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{Clock, ManualClock, Timestamp};
use portcullis_core::user::UserId;
use portcullis_store::{NewTenant, SqliteStore, Store};

use super::*;
use crate::audit::{AuditConfig, RequestOrigin, Subscription};
use crate::kek::{Kek, Keyring};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "https://app.example/cb";
/// The user every test signs in.
const USER: &str = "usr_01aaaaaaaaaaaaaaaaaaaaaaaa";

fn uid(s: &str) -> UserId {
    UserId::parse(s).expect("user id")
}

fn cid(s: &str) -> ClientId {
    ClientId::parse(s).expect("client id")
}

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
    sign_in: SignIn,
    events: Subscription,
    _writer: crate::audit::AuditWriter,
}

fn config() -> SignInConfig {
    SignInConfig {
        session: SessionPolicy {
            idle: Duration::from_secs(600),
            absolute: Duration::from_secs(3600),
        },
        refresh: RefreshPolicy {
            idle: Duration::from_secs(1000),
            absolute: Duration::from_secs(5000),
            grace: Duration::from_secs(10),
        },
        ..SignInConfig::default()
    }
}

async fn fixture_on(dir: tempfile::TempDir, store: Arc<dyn Store>) -> Fixture {
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
    let sign_in = SignIn::new(store.clone(), dyn_clock, sink, config(), &ring);
    Fixture {
        _dir: dir,
        store,
        clock,
        sign_in,
        events,
        _writer: writer,
    }
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("db"))
            .await
            .expect("open"),
    );
    fixture_on(dir, store).await
}

fn tid(s: &str) -> TenantId {
    TenantId::parse(s).expect("tenant")
}

fn origin() -> RequestOrigin {
    RequestOrigin::default()
}

impl Fixture {
    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }

    async fn sign_in(&self, user: &str) -> StartedSession {
        self.sign_in
            .create_session(
                NewSession {
                    tenant: tid("acme"),
                    user_id: uid(user),
                    amr: vec!["pwd".into()],
                    acr: None,
                },
                None,
                Actor::system(),
                &origin(),
            )
            .await
            .expect("session")
    }

    async fn log(&self) -> Vec<(RevocationKind, String)> {
        self.store
            .revocations_after(0, 1000)
            .await
            .expect("log")
            .into_iter()
            .map(|e| (e.kind, e.subject))
            .collect()
    }

    /// The actions audited since the last call.
    fn actions(&mut self) -> Vec<(Action, Option<String>)> {
        std::iter::from_fn(|| self.events.try_recv())
            .map(|e| {
                (
                    e.action.clone(),
                    e.reason.as_ref().map(|r| r.code().to_owned()),
                )
            })
            .collect()
    }

    async fn code_for(&self, session: &StartedSession) -> String {
        let challenge = s256_challenge(VERIFIER);
        self.sign_in
            .issue_code(CodeRequest {
                client_id: &cid("cl_web"),
                redirect_uri: REDIRECT,
                code_challenge: &challenge,
                nonce: Some("n-1"),
                scope: vec!["openid".into(), "offline_access".into()],
                dpop_jkt: None,
                session: &session.record,
            })
            .await
            .expect("code")
            .expose()
            .to_owned()
    }

    async fn family(&self, sid: Option<&str>) -> StartedFamily {
        self.sign_in
            .start_family(NewFamily {
                tenant: tid("acme"),
                client_id: cid("cl_app"),
                user_id: uid(USER),
                sid: sid.map(|s| SessionId::parse(s).expect("sid")),
                scope: vec!["openid".into(), "offline_access".into()],
                auth_time: self.clock.now(),
                acr: None,
                amr: vec!["pwd".into()],
                dpop_jkt: None,
                cert_x5t: None,
            })
            .await
            .expect("family")
    }

    async fn refresh(&self, token: &str, client: &str) -> Result<Refreshed> {
        self.sign_in
            .refresh(token, &tid("acme"), client, &origin())
            .await
    }
}

fn redemption<'a>(code: &'a str, client: &'a str, redirect: &'a str) -> RedemptionRequest<'a> {
    RedemptionRequest {
        code,
        tenant: Box::leak(Box::new(tid("acme"))),
        client_id: client,
        redirect_uri: redirect,
        code_verifier: VERIFIER,
        dpop_jkt: None,
    }
}

fn refused<T: std::fmt::Debug>(r: Result<T>) -> &'static str {
    match r {
        Err(SignInError::Invalid(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_session_resolves_from_its_cookie_until_idle_or_absolute_expiry() {
    let f = fixture().await;
    let s = f.sign_in(USER).await;
    assert!(s.secret.expose().len() >= 43);
    assert!(
        !format!("{s:?}").contains(s.secret.expose()),
        "the secret never prints"
    );
    let stored = f.store.get_session(&s.secret.digest()).await.expect("get");
    assert!(stored.is_some(), "stored by digest");
    let acme = tid("acme");
    f.advance(500);
    let got = f
        .sign_in
        .resolve_session(&acme, s.secret.expose())
        .await
        .expect("resolve")
        .expect("active");
    assert_eq!(got.id, s.sid);
    assert_eq!(
        got.idle_expires_at,
        f.clock.now().saturating_add(Duration::from_secs(600))
    );
    // Kept alive by use past the first idle deadline...
    for _ in 0..6 {
        f.advance(500);
        assert!(f
            .sign_in
            .resolve_session(&acme, s.secret.expose())
            .await
            .expect("r")
            .is_some());
    }
    // ...but never past the absolute one (3600 s after sign-in).
    f.advance(200);
    assert!(f
        .sign_in
        .resolve_session(&acme, s.secret.expose())
        .await
        .expect("r")
        .is_none());
    // Idle expiry.
    let s2 = f.sign_in(USER).await;
    f.advance(600);
    assert!(f
        .sign_in
        .resolve_session(&acme, s2.secret.expose())
        .await
        .expect("r")
        .is_none());
    // Another tenant, garbage, an unknown secret.
    let s3 = f.sign_in(USER).await;
    assert!(f
        .sign_in
        .resolve_session(&tid("globex"), s3.secret.expose())
        .await
        .expect("r")
        .is_none());
    assert!(f
        .sign_in
        .resolve_session(&acme, "not a cookie")
        .await
        .expect("r")
        .is_none());
    let other = portcullis_core::session::SessionSecret::generate(&mut rand::rngs::OsRng);
    assert!(f
        .sign_in
        .resolve_session(&acme, other.expose())
        .await
        .expect("r")
        .is_none());
}

#[tokio::test]
async fn a_busy_session_is_written_at_most_once_a_minute() {
    let f = fixture().await;
    let s = f.sign_in(USER).await;
    let acme = tid("acme");
    let seen = || async {
        f.store
            .get_session(&s.secret.digest())
            .await
            .expect("get")
            .expect("some")
            .last_seen_at
    };
    let start = seen().await;
    f.advance(30);
    assert!(f
        .sign_in
        .resolve_session(&acme, s.secret.expose())
        .await
        .expect("r")
        .is_some());
    assert_eq!(seen().await, start, "no write within the minute");
    f.advance(30);
    assert!(f
        .sign_in
        .resolve_session(&acme, s.secret.expose())
        .await
        .expect("r")
        .is_some());
    assert_eq!(seen().await, f.clock.now());
}

#[tokio::test]
async fn pruning_keeps_codes_as_long_as_a_replay_could_revoke_something() {
    let f = fixture().await;
    let s = f.sign_in(USER).await;
    let code = f.code_for(&s).await;
    let digest = portcullis_core::auth_code::AuthCode::parse(&code)
        .expect("code")
        .digest();
    f.advance(3599);
    assert_eq!(f.sign_in.prune().await.expect("prune"), (0, 0));
    f.advance(1);
    assert_eq!(
        f.sign_in.prune().await.expect("prune"),
        (1, 0),
        "the session's absolute deadline (3600 s) passed; the code expired only 3540 s ago"
    );
    f.advance(59);
    assert_eq!(f.sign_in.prune().await.expect("prune"), (0, 0));
    assert!(f.store.get_code(&digest).await.expect("get").is_some());
    f.advance(1);
    assert_eq!(f.sign_in.prune().await.expect("prune"), (0, 1));
    assert!(f.store.get_code(&digest).await.expect("get").is_none());
}

#[tokio::test]
async fn pruning_removes_device_authorizations_once_they_expire() {
    use portcullis_core::device::DeviceStatus;
    use portcullis_store::DeviceAuthorizationRecord;
    let f = fixture().await;
    let now = f.clock.now();
    let record = DeviceAuthorizationRecord {
        device_digest: vec![7; 32],
        user_code_digest: vec![8; 32],
        tenant: tid("acme"),
        client_id: cid("cl_app"),
        scope: vec![],
        status: DeviceStatus::Pending,
        created_at: now,
        expires_at: now.saturating_add(Duration::from_secs(600)),
        interval_secs: 5,
        last_polled_at: None,
        user_id: None,
        sid: None,
        auth_time: None,
        decided_at: None,
    };
    f.store
        .insert_device_authorization(&record)
        .await
        .expect("insert");
    f.advance(599);
    assert_eq!(f.sign_in.prune().await.expect("prune"), (0, 0));
    assert!(f
        .store
        .get_device_authorization(&record.device_digest)
        .await
        .expect("get")
        .is_some());
    f.advance(1);
    assert_eq!(f.sign_in.prune().await.expect("prune"), (0, 1));
    assert!(f
        .store
        .get_device_authorization(&record.device_digest)
        .await
        .expect("get")
        .is_none());
}

#[tokio::test]
async fn every_sign_in_gets_new_identifiers_and_ends_the_session_it_replaces() {
    let mut f = fixture().await;
    let before = f.sign_in(USER).await;
    let after = f
        .sign_in
        .create_session(
            NewSession {
                tenant: tid("acme"),
                user_id: uid(USER),
                amr: vec!["pwd".into()],
                acr: None,
            },
            Some(before.secret.expose()),
            Actor::system(),
            &origin(),
        )
        .await
        .expect("session");
    assert_ne!(after.secret, before.secret);
    assert_ne!(after.sid, before.sid);
    let acme = tid("acme");
    assert!(
        f.sign_in
            .resolve_session(&acme, before.secret.expose())
            .await
            .expect("r")
            .is_none(),
        "the pre-sign-in cookie is worth nothing after it (fixation)"
    );
    assert!(f
        .sign_in
        .resolve_session(&acme, after.secret.expose())
        .await
        .expect("r")
        .is_some());
    assert_eq!(
        f.log().await,
        [(RevocationKind::Session, before.sid.as_str().to_owned())]
    );
    let actions: Vec<_> = f.actions().into_iter().map(|(a, _)| a).collect();
    assert_eq!(
        actions,
        [
            Action::SessionCreate,
            Action::SessionRevoke,
            Action::SessionCreate
        ]
    );
}

#[tokio::test]
async fn revoking_a_session_writes_a_session_entry_and_ends_its_families() {
    let mut f = fixture().await;
    let s = f.sign_in(USER).await;
    let other = f.sign_in(USER).await;
    let fam = f.family(Some(s.sid.as_str())).await;
    let acme = tid("acme");
    f.actions();
    assert!(f
        .sign_in
        .revoke_session(
            &acme,
            s.sid.as_str(),
            "sign_out",
            Actor::system(),
            &origin()
        )
        .await
        .expect("revoke"));
    assert_eq!(
        f.log().await,
        [
            (RevocationKind::Session, s.sid.as_str().to_owned()),
            (RevocationKind::Family, fam.family.id.to_string()),
        ]
    );
    assert_eq!(
        f.actions(),
        [(Action::SessionRevoke, Some("sign_out".to_owned()))]
    );
    assert!(f
        .sign_in
        .resolve_session(&acme, s.secret.expose())
        .await
        .expect("r")
        .is_none());
    assert_eq!(
        refused(f.refresh(fam.token.expose(), "cl_app").await),
        "family_revoked"
    );
    let listed: Vec<_> = f
        .sign_in
        .list_sessions(&acme, USER)
        .await
        .expect("list")
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(listed, std::slice::from_ref(&other.sid));
    assert!(!f
        .sign_in
        .revoke_session(&acme, s.sid.as_str(), "again", Actor::system(), &origin())
        .await
        .expect("revoke"));
    // Signing out everywhere (or deleting the user) ends the rest.
    let ended = f
        .sign_in
        .revoke_user_sessions(&acme, USER, "user_deleted", Actor::system(), &origin())
        .await
        .expect("revoke all");
    assert_eq!(ended, [other.sid.as_str().to_owned()]);
    assert!(f
        .sign_in
        .list_sessions(&acme, USER)
        .await
        .expect("list")
        .is_empty());
}

#[tokio::test]
async fn a_code_is_redeemed_once_and_a_replay_revokes_what_the_first_issued() {
    let mut f = fixture().await;
    let s = f.sign_in(USER).await;
    let code = f.code_for(&s).await;
    let redeemed = f
        .sign_in
        .redeem_code(redemption(&code, "cl_web", REDIRECT), &origin())
        .await
        .expect("redeem");
    assert_eq!(redeemed.record.nonce.as_deref(), Some("n-1"));
    assert_eq!(redeemed.record.sid, s.sid);
    assert_eq!(redeemed.record.user_id.as_str(), USER);
    let fam = f.family(Some(s.sid.as_str())).await;
    let exp = f.clock.now().saturating_add(Duration::from_secs(300));
    f.sign_in
        .code_issued(
            &redeemed,
            vec!["jti-1".into()],
            exp,
            Some(fam.family.id.clone()),
        )
        .await
        .expect("recorded");
    f.actions();
    assert_eq!(
        refused(
            f.sign_in
                .redeem_code(redemption(&code, "cl_web", REDIRECT), &origin())
                .await
        ),
        "code_replayed"
    );
    assert_eq!(
        f.log().await,
        [
            (RevocationKind::Token, "jti-1".to_owned()),
            (RevocationKind::Family, fam.family.id.to_string()),
        ]
    );
    let actions: Vec<_> = f.actions().into_iter().map(|(a, _)| a).collect();
    assert_eq!(
        actions,
        [Action::OAuthRefreshFamilyRevoke, Action::OAuthCodeReplay]
    );
    assert_eq!(
        refused(f.refresh(fam.token.expose(), "cl_app").await),
        "family_revoked"
    );
}

#[tokio::test]
async fn a_replay_while_the_first_redemption_is_still_issuing_revokes_its_tokens_too() {
    let f = fixture().await;
    let s = f.sign_in(USER).await;
    let code = f.code_for(&s).await;
    let redeemed = f
        .sign_in
        .redeem_code(redemption(&code, "cl_web", REDIRECT), &origin())
        .await
        .expect("redeem");
    assert_eq!(
        refused(
            f.sign_in
                .redeem_code(redemption(&code, "cl_web", REDIRECT), &origin())
                .await
        ),
        "code_replayed"
    );
    assert!(f.log().await.is_empty(), "nothing issued yet");
    let exp = f.clock.now().saturating_add(Duration::from_secs(300));
    assert_eq!(
        refused(
            f.sign_in
                .code_issued(&redeemed, vec!["jti-1".into(), "jti-2".into()], exp, None)
                .await
        ),
        "code_replayed"
    );
    assert_eq!(
        f.log().await,
        [
            (RevocationKind::Token, "jti-1".to_owned()),
            (RevocationKind::Token, "jti-2".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_code_refuses_another_client_redirect_uri_verifier_or_tenant_and_stays_usable() {
    let f = fixture().await;
    let s = f.sign_in(USER).await;
    let code = f.code_for(&s).await;
    let unknown = "A".repeat(43);
    let cases = [
        (redemption(&code, "cl_other", REDIRECT), "code_wrong_client"),
        (
            redemption(&code, "cl_web", "https://app.example/cb/extra"),
            "code_wrong_redirect_uri",
        ),
        (
            RedemptionRequest {
                code_verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX",
                ..redemption(&code, "cl_web", REDIRECT)
            },
            "pkce_mismatch",
        ),
        (
            RedemptionRequest {
                tenant: Box::leak(Box::new(tid("globex"))),
                ..redemption(&code, "cl_web", REDIRECT)
            },
            "code_wrong_tenant",
        ),
        (redemption("garbage", "cl_web", REDIRECT), "code_malformed"),
        (redemption(&unknown, "cl_web", REDIRECT), "code_unknown"),
    ];
    for (r, want) in cases {
        assert_eq!(refused(f.sign_in.redeem_code(r, &origin()).await), want);
    }
    assert!(f.log().await.is_empty(), "refusals change nothing");
    f.sign_in
        .redeem_code(redemption(&code, "cl_web", REDIRECT), &origin())
        .await
        .expect("the rightful client still redeems it");
}

#[tokio::test]
async fn an_expired_code_is_refused() {
    let f = fixture().await;
    let s = f.sign_in(USER).await;
    let code = f.code_for(&s).await;
    f.advance(60);
    assert_eq!(
        refused(
            f.sign_in
                .redeem_code(redemption(&code, "cl_web", REDIRECT), &origin())
                .await
        ),
        "code_expired"
    );
}

#[tokio::test]
async fn refresh_rotates_and_a_replay_after_the_grace_window_revokes_the_family() {
    let mut f = fixture().await;
    let fam = f.family(None).await;
    assert!(fam.token.expose().starts_with("pcl_rt_live_"));
    let t1 = f
        .refresh(fam.token.expose(), "cl_app")
        .await
        .expect("refresh");
    assert!(t1.rotated);
    assert_ne!(t1.token.expose(), fam.token.expose());
    f.advance(5);
    let t2 = f
        .refresh(t1.token.expose(), "cl_app")
        .await
        .expect("refresh");
    f.advance(11);
    f.actions();
    assert_eq!(
        refused(f.refresh(fam.token.expose(), "cl_app").await),
        "reused_after_rotation"
    );
    assert_eq!(
        f.log().await,
        [(RevocationKind::Family, fam.family.id.to_string())]
    );
    assert_eq!(
        f.actions(),
        [
            (
                Action::OAuthRefreshReuse,
                Some("reused_after_rotation".to_owned())
            ),
            (
                Action::OAuthRefreshFamilyRevoke,
                Some("refresh_reuse".to_owned())
            ),
        ]
    );
    // The thief's and the owner's latest tokens alike are dead.
    assert_eq!(
        refused(f.refresh(t2.token.expose(), "cl_app").await),
        "family_revoked"
    );
}

#[tokio::test]
async fn within_the_grace_window_a_replay_gets_the_same_successor() {
    let mut f = fixture().await;
    let fam = f.family(None).await;
    let t1 = f
        .refresh(fam.token.expose(), "cl_app")
        .await
        .expect("refresh");
    f.advance(9);
    f.actions();
    let again = f
        .refresh(fam.token.expose(), "cl_app")
        .await
        .expect("grace");
    assert!(!again.rotated);
    assert_eq!(again.token.expose(), t1.token.expose());
    assert_eq!(
        f.actions(),
        [(Action::OAuthRefreshRotate, Some("within_grace".to_owned()))]
    );
    assert!(f.log().await.is_empty());
    f.refresh(t1.token.expose(), "cl_app")
        .await
        .expect("the successor works");
}

/// The token endpoint reads a presented token once and rotates from that read: reads taken
/// before another rotation committed (two tabs, two nodes) still yield one successor, the same
/// one within the grace window, and a family revocation after it.
#[tokio::test]
async fn rotations_from_reads_taken_before_another_rotation_never_rotate_twice() {
    async fn rotate(sign_in: &SignIn, read: PresentedRefresh) -> Result<Refreshed> {
        sign_in
            .refresh_presented(read, &tid("acme"), "cl_app", &origin())
            .await
    }
    let mut f = fixture().await;
    let fam = f.family(None).await;
    let mut reads = Vec::new();
    for _ in 0..3 {
        reads.push(
            f.sign_in
                .read_refresh_token(fam.token.expose())
                .await
                .expect("read"),
        );
    }
    let late = reads.pop().expect("read");
    let second = reads.pop().expect("read");
    let first = reads.pop().expect("read");
    let a = rotate(&f.sign_in, first).await.expect("rotates");
    assert!(a.rotated);
    let b = rotate(&f.sign_in, second)
        .await
        .expect("the grace window's successor");
    assert!(!b.rotated);
    assert_eq!(a.token.expose(), b.token.expose());
    f.advance(11);
    f.actions();
    assert_eq!(
        refused(rotate(&f.sign_in, late).await),
        "reused_after_rotation"
    );
    assert_eq!(
        f.log().await,
        [(RevocationKind::Family, fam.family.id.to_string())]
    );
    let malformed = f
        .sign_in
        .read_refresh_token("pcl_rt_live_not-a-token")
        .await
        .expect("read");
    assert_eq!(
        refused(rotate(&f.sign_in, malformed).await),
        "refresh_malformed"
    );
}

#[tokio::test]
async fn refresh_by_another_client_is_refused_and_changes_nothing() {
    let f = fixture().await;
    let fam = f.family(None).await;
    assert_eq!(
        refused(f.refresh(fam.token.expose(), "cl_thief").await),
        "wrong_client"
    );
    assert_eq!(
        refused(
            f.sign_in
                .refresh(fam.token.expose(), &tid("globex"), "cl_app", &origin())
                .await
        ),
        "refresh_unknown"
    );
    assert!(f.log().await.is_empty());
    f.refresh(fam.token.expose(), "cl_app")
        .await
        .expect("still the owner's");
}

#[tokio::test]
async fn refresh_after_the_family_was_revoked_or_expired_is_refused() {
    let f = fixture().await;
    let fam = f.family(None).await;
    assert!(f
        .sign_in
        .revoke_family(&tid("acme"), fam.family.id.as_str(), "admin", &origin())
        .await
        .expect("revoke"));
    assert_eq!(
        refused(f.refresh(fam.token.expose(), "cl_app").await),
        "family_revoked"
    );
    // Idle: 1000 s without a refresh.
    let idle = f.family(None).await;
    f.advance(1000);
    assert_eq!(
        refused(f.refresh(idle.token.expose(), "cl_app").await),
        "family_idle_expired"
    );
    // Absolute: 5000 s however active.
    let busy = f.family(None).await;
    let mut token = busy.token;
    for _ in 0..5 {
        f.advance(999);
        token = f
            .refresh(token.expose(), "cl_app")
            .await
            .expect("refresh")
            .token;
    }
    f.advance(5);
    assert_eq!(
        refused(f.refresh(token.expose(), "cl_app").await),
        "family_absolute_expired"
    );
}

#[tokio::test]
async fn malformed_or_foreign_credentials_are_refused_before_any_lookup() {
    let f = fixture().await;
    let key = Credential::generate(
        CredentialKind::ApiKey,
        Environment::live(),
        &mut rand::rngs::OsRng,
    );
    let test_env = Credential::generate(
        CredentialKind::RefreshToken,
        Environment::parse("test").expect("env"),
        &mut rand::rngs::OsRng,
    );
    for bad in ["", "pcl_rt_live_nope", key.expose(), test_env.expose()] {
        assert_eq!(
            refused(f.refresh(bad, "cl_app").await),
            "refresh_malformed",
            "{bad}"
        );
    }
    let fam = f.family(None).await;
    let mut tampered = fam.token.expose().to_owned();
    tampered.pop();
    tampered.push(if fam.token.expose().ends_with('A') {
        'B'
    } else {
        'A'
    });
    assert_eq!(
        refused(f.refresh(&tampered, "cl_app").await),
        "refresh_malformed",
        "checksum"
    );
    let unknown = Credential::generate(
        CredentialKind::RefreshToken,
        Environment::live(),
        &mut rand::rngs::OsRng,
    );
    assert_eq!(
        refused(f.refresh(unknown.expose(), "cl_app").await),
        "refresh_unknown"
    );
}

async fn racing_refreshes_yield_one_successor(f: Fixture) {
    let fam = f.family(None).await;
    let sign_in = Arc::new(f.sign_in.clone());
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let s = sign_in.clone();
            let token = fam.token.expose().to_owned();
            tokio::spawn(async move {
                s.refresh(
                    &token,
                    &TenantId::parse("acme").expect("t"),
                    "cl_app",
                    &RequestOrigin::default(),
                )
                .await
            })
        })
        .collect();
    let mut tokens = Vec::new();
    let mut rotated = 0;
    for t in tasks {
        let r = t.await.expect("join").expect("every tab gets a token");
        rotated += usize::from(r.rotated);
        tokens.push(r.token.expose().to_owned());
    }
    assert_eq!(rotated, 1, "one rotation");
    assert!(
        tokens.iter().all(|t| *t == tokens[0]),
        "one successor for all"
    );
    let first = f
        .store
        .get_refresh_token(&fam.token.digest())
        .await
        .expect("get")
        .expect("some")
        .token;
    let succ = Credential::parse(&tokens[0]).expect("parse");
    assert_eq!(first.successor_digest, Some(succ.digest().to_vec()));
    assert!(f.log().await.is_empty(), "no family was revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_tabs_racing_a_refresh_on_sqlite_get_one_successor() {
    racing_refreshes_yield_one_successor(fixture().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_racing_a_refresh_on_postgres_get_one_successor() {
    const PG_ENV: &str = "PORTCULLIS_TEST_DATABASE_URL";
    let Ok(url) = std::env::var(PG_ENV) else {
        assert!(
            std::env::var("CI").is_err(),
            "{PG_ENV} must be set in CI: the PostgreSQL case may not be skipped"
        );
        eprintln!("notice: {PG_ENV} is unset; skipping the PostgreSQL refresh race");
        return;
    };
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let pg = portcullis_store::PgStore::connect_in_schema(&url, &schema)
        .await
        .expect("PostgreSQL named by PORTCULLIS_TEST_DATABASE_URL must be reachable");
    let pool = pg.pool().clone();
    let dir = tempfile::tempdir().expect("tempdir");
    racing_refreshes_yield_one_successor(fixture_on(dir, Arc::new(pg)).await).await;
    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await;
}
