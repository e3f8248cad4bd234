//! Conformance cases for the sign-in state (sessions, authorization codes, refresh-token
//! families, consents), each run against SQLite and PostgreSQL like the rest of the suite.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::revocation::{RevocationSet, RevokedBy, TokenIdentity};

use super::{
    at, cid, famid, sesid, tenants, tid, uid, with_postgres, with_postgres_raw, with_sqlite,
    with_sqlite_raw, Raw,
};
use portcullis_store::export::TransferStore as _;
use portcullis_store::*;

conformance!(
    sessions_round_trip_touch_forward_and_list_per_user,
    session_revocation_logs_the_session_and_its_families_in_one_go,
    revoking_a_users_sessions_revokes_every_session_and_family,
    codes_are_single_use_and_a_replay_sees_what_the_first_issued,
    pushed_requests_open_for_their_client_then_are_used_once,
    racing_redemptions_of_one_code_yield_one_winner,
    expired_and_unknown_codes_and_pruning,
    refresh_rotation_is_single_shot_and_stops_at_a_revoked_family,
    a_refresh_token_is_read_with_its_users_status_in_its_own_tenant,
    a_session_is_read_with_its_users_status_in_its_own_tenant,
    racing_rotations_of_one_token_yield_exactly_one_successor,
    a_rotation_that_fails_halfway_changes_nothing_and_the_next_one_works,
    rotations_cut_short_at_any_point_leave_all_or_nothing_and_the_store_writable,
    consents_upsert_list_and_revoke_with_the_clients_families,
    consents_are_exported_and_sign_in_state_is_not_but_blocks_an_import,
);

conformance_raw!(a_stored_id_that_does_not_parse_is_a_corrupt_row_not_a_panic);

const LIFETIME: Duration = Duration::from_secs(3600);

fn session(digest: u8, sid: &str, tenant: &str, user: &str) -> SessionRecord {
    SessionRecord {
        digest: vec![digest; 32],
        id: sesid(sid),
        tenant: tid(tenant),
        user_id: uid(user),
        auth_time: at(100),
        amr: vec!["pwd".into()],
        acr: Some("1".into()),
        created_at: at(100),
        last_seen_at: at(100),
        idle_expires_at: at(1_000),
        absolute_expires_at: at(10_000),
        revoked_at: None,
    }
}

fn code(digest: u8) -> AuthCodeRecord {
    AuthCodeRecord {
        digest: vec![digest; 32],
        tenant: tid("acme"),
        client_id: cid("cl_web"),
        redirect_uri: "https://app.example/cb".into(),
        code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
        nonce: Some("n-1".into()),
        scope: vec!["openid".into(), "offline_access".into()],
        user_id: uid("usr_00000000000000000000000001"),
        sid: sesid("ses_00000000000000000000000001"),
        auth_time: at(100),
        acr: None,
        amr: vec!["pwd".into()],
        created_at: at(1_000),
        expires_at: at(61_000),
        consumed_at: None,
        issued: None,
        // Bound to a DPoP key (RFC 9449 section 10): it must read back as stored.
        dpop_jkt: Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into()),
    }
}

fn family(id: &str, user: &str, client: &str, sid: Option<&str>) -> RefreshFamilyRecord {
    RefreshFamilyRecord {
        id: famid(id),
        tenant: tid("acme"),
        client_id: cid(client),
        user_id: uid(user),
        sid: sid.map(sesid),
        scope: vec!["openid".into(), "offline_access".into()],
        auth_time: at(100),
        acr: None,
        amr: vec!["pwd".into()],
        created_at: at(100),
        idle_expires_at: at(5_000),
        absolute_expires_at: at(50_000),
        revoked_at: None,
        revoked_reason: None,
        dpop_jkt: None,
        cert_x5t: None,
    }
}

fn token(digest: u8, family: &str, generation: i64, created: i64) -> RefreshTokenRecord {
    RefreshTokenRecord {
        digest: vec![digest; 32],
        family_id: famid(family),
        generation,
        created_at: at(created),
        rotated_at: None,
        successor_digest: None,
    }
}

async fn log(s: &Arc<dyn Store>) -> Vec<RevocationEntry> {
    s.revocations_after(0, 1_000).await.expect("log")
}

/// Whether a token with these identifiers is refused by the one rule in core, over what the
/// store finds for it.
async fn token_refused(
    s: &Arc<dyn Store>,
    sid: Option<&str>,
    family: Option<&str>,
    issued_at: i64,
) -> Option<RevokedBy> {
    let tenant = tid("acme");
    let identity = TokenIdentity {
        tenant: &tenant,
        jti: "jti-x",
        client_id: Some("cl_web"),
        subject: "usr_00000000000000000000000001",
        kid: "k1",
        family,
        sid,
        exchanged_from: &[],
        issued_at: at(issued_at),
    };
    let candidates: Vec<_> = identity.candidates().collect();
    let records: Vec<_> = s
        .revocations_naming(&candidates)
        .await
        .expect("naming")
        .into_iter()
        .map(RevocationEntry::into_record)
        .collect();
    RevocationSet::from_records(&records).token_revoked(&identity)
}

async fn sessions_round_trip_touch_forward_and_list_per_user(s: Arc<dyn Store>) {
    tenants(&s, &["acme", "globex"]).await;
    let a = session(
        1,
        "ses_0000000000000000000000000a",
        "acme",
        "usr_00000000000000000000000001",
    );
    let mut b = session(
        2,
        "ses_0000000000000000000000000b",
        "acme",
        "usr_00000000000000000000000001",
    );
    b.created_at = at(200);
    b.acr = None;
    let c = session(
        3,
        "ses_0000000000000000000000000c",
        "acme",
        "usr_00000000000000000000000002",
    );
    let g = session(
        4,
        "ses_0000000000000000000000000g",
        "globex",
        "usr_00000000000000000000000001",
    );
    for x in [&a, &b, &c, &g] {
        s.insert_session(x).await.expect("insert");
    }
    assert!(matches!(
        s.insert_session(&a).await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        s.insert_session(&session(
            5,
            "ses_0000000000000000000000000z",
            "nope",
            "usr_00000000000000000000000001"
        ))
        .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(s.get_session(&[1; 32]).await.expect("get"), Some(a.clone()));
    assert_eq!(s.get_session(&[9; 32]).await.expect("get"), None);
    assert_eq!(
        s.get_session_by_id(&tid("acme"), "ses_0000000000000000000000000b")
            .await
            .expect("get"),
        Some(b.clone())
    );
    assert_eq!(
        s.get_session_by_id(&tid("globex"), "ses_0000000000000000000000000b")
            .await
            .expect("get"),
        None,
        "another tenant's session"
    );
    assert!(s
        .touch_session(&[1; 32], at(500), at(1_500))
        .await
        .expect("touch"));
    // A node with a slower clock never moves it back.
    assert!(s
        .touch_session(&[1; 32], at(300), at(1_300))
        .await
        .expect("touch"));
    let touched = s.get_session(&[1; 32]).await.expect("get").expect("some");
    assert_eq!(
        (touched.last_seen_at, touched.idle_expires_at),
        (at(500), at(1_500))
    );
    assert!(!s
        .touch_session(&[9; 32], at(500), at(1_500))
        .await
        .expect("touch"));
    let listed: Vec<_> = s
        .list_user_sessions(&tid("acme"), "usr_00000000000000000000000001")
        .await
        .expect("list")
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(
        listed,
        [
            sesid("ses_0000000000000000000000000a"),
            sesid("ses_0000000000000000000000000b")
        ]
    );
    assert_eq!(s.prune_sessions(at(9_999)).await.expect("prune"), 0);
    assert_eq!(s.prune_sessions(at(10_000)).await.expect("prune"), 4);
    assert_eq!(s.get_session(&[1; 32]).await.expect("get"), None);
}

async fn session_revocation_logs_the_session_and_its_families_in_one_go(s: Arc<dyn Store>) {
    tenants(&s, &["acme", "globex"]).await;
    s.insert_session(&session(
        1,
        "ses_00000000000000000000000001",
        "acme",
        "usr_00000000000000000000000001",
    ))
    .await
    .expect("insert");
    s.create_refresh_family(
        &family(
            "rtf_00000000000000000000000000000001",
            "usr_00000000000000000000000001",
            "cl_web",
            Some("ses_00000000000000000000000001"),
        ),
        &token(1, "rtf_00000000000000000000000000000001", 0, 100),
    )
    .await
    .expect("family");
    s.create_refresh_family(
        &family(
            "rtf_00000000000000000000000000000002",
            "usr_00000000000000000000000001",
            "cl_web",
            Some("ses_000000000000000000000other"),
        ),
        &token(2, "rtf_00000000000000000000000000000002", 0, 100),
    )
    .await
    .expect("family");
    assert_eq!(
        s.revoke_session(
            &tid("globex"),
            "ses_00000000000000000000000001",
            "sign_out",
            at(700),
            LIFETIME
        )
        .await
        .expect("revoke"),
        None,
        "another tenant cannot revoke it"
    );
    assert!(log(&s).await.is_empty());
    let entry = s
        .revoke_session(
            &tid("acme"),
            "ses_00000000000000000000000001",
            "sign_out",
            at(700),
            LIFETIME,
        )
        .await
        .expect("revoke")
        .expect("revoked");
    assert_eq!(entry.kind, RevocationKind::Session);
    assert_eq!(entry.subject, "ses_00000000000000000000000001");
    assert_eq!(entry.revoked_before, Some(at(700)));
    assert_eq!(entry.expires_at, Some(at(10_000 + 3_600_000)));
    let logged: Vec<_> = log(&s)
        .await
        .into_iter()
        .map(|e| (e.kind, e.subject))
        .collect();
    assert_eq!(
        logged,
        [
            (
                RevocationKind::Session,
                "ses_00000000000000000000000001".to_owned()
            ),
            (
                RevocationKind::Family,
                "rtf_00000000000000000000000000000001".to_owned()
            ),
        ]
    );
    let rtf1 = s
        .get_refresh_family("rtf_00000000000000000000000000000001")
        .await
        .expect("get")
        .expect("some");
    assert_eq!(rtf1.revoked_at, Some(at(700)));
    assert_eq!(rtf1.revoked_reason.as_deref(), Some("sign_out"));
    let rtf2 = s
        .get_refresh_family("rtf_00000000000000000000000000000002")
        .await
        .expect("get")
        .expect("some");
    assert_eq!(rtf2.revoked_at, None, "another session's family");
    let stored = s.get_session(&[1; 32]).await.expect("get").expect("some");
    assert_eq!(stored.revoked_at, Some(at(700)));
    assert!(!s
        .touch_session(&[1; 32], at(800), at(1_800))
        .await
        .expect("touch"));
    assert!(s
        .list_user_sessions(&tid("acme"), "usr_00000000000000000000000001")
        .await
        .expect("list")
        .is_empty());
    assert_eq!(
        s.revoke_session(
            &tid("acme"),
            "ses_00000000000000000000000001",
            "again",
            at(800),
            LIFETIME
        )
        .await
        .expect("revoke"),
        None,
        "revoked once"
    );
    assert_eq!(log(&s).await.len(), 2);
    // The one rule in core refuses the session's tokens issued until then, not later ones.
    assert_eq!(
        token_refused(&s, Some("ses_00000000000000000000000001"), None, 700).await,
        Some(RevokedBy::Session)
    );
    assert_eq!(
        token_refused(&s, Some("ses_00000000000000000000000001"), None, 701).await,
        None
    );
    assert_eq!(
        token_refused(&s, Some("ses_00000000000000000000000002"), None, 10).await,
        None
    );
    assert_eq!(
        token_refused(&s, None, Some("rtf_00000000000000000000000000000001"), 10).await,
        Some(RevokedBy::Family)
    );
}

async fn revoking_a_users_sessions_revokes_every_session_and_family(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    for (d, sid, user) in [
        (
            1,
            "ses_00000000000000000000000001",
            "usr_00000000000000000000000001",
        ),
        (
            2,
            "ses_00000000000000000000000002",
            "usr_00000000000000000000000001",
        ),
        (
            3,
            "ses_00000000000000000000000003",
            "usr_00000000000000000000000002",
        ),
    ] {
        s.insert_session(&session(d, sid, "acme", user))
            .await
            .expect("insert");
    }
    s.create_refresh_family(
        &family(
            "rtf_00000000000000000000000000000001",
            "usr_00000000000000000000000001",
            "cl_app",
            None,
        ),
        &token(1, "rtf_00000000000000000000000000000001", 0, 100),
    )
    .await
    .expect("family");
    s.create_refresh_family(
        &family(
            "rtf_00000000000000000000000000000002",
            "usr_00000000000000000000000002",
            "cl_app",
            Some("ses_00000000000000000000000003"),
        ),
        &token(2, "rtf_00000000000000000000000000000002", 0, 100),
    )
    .await
    .expect("family");
    let sids = s
        .revoke_user_sessions(
            &tid("acme"),
            "usr_00000000000000000000000001",
            "user_deleted",
            at(900),
            LIFETIME,
        )
        .await
        .expect("revoke");
    assert_eq!(
        sids,
        [
            "ses_00000000000000000000000001",
            "ses_00000000000000000000000002"
        ]
    );
    let logged: Vec<_> = log(&s)
        .await
        .into_iter()
        .map(|e| (e.kind, e.subject, e.reason))
        .collect();
    let reason = Some("user_deleted".to_owned());
    assert_eq!(
        logged,
        [
            (
                RevocationKind::Session,
                "ses_00000000000000000000000001".into(),
                reason.clone()
            ),
            (
                RevocationKind::Session,
                "ses_00000000000000000000000002".into(),
                reason.clone()
            ),
            (
                RevocationKind::Family,
                "rtf_00000000000000000000000000000001".into(),
                reason
            ),
        ]
    );
    assert!(s
        .get_refresh_family("rtf_00000000000000000000000000000002")
        .await
        .expect("get")
        .expect("some")
        .revoked_at
        .is_none());
    assert_eq!(
        s.list_user_sessions(&tid("acme"), "usr_00000000000000000000000002")
            .await
            .expect("list")
            .len(),
        1
    );
    assert!(s
        .revoke_user_sessions(
            &tid("acme"),
            "usr_00000000000000000000000001",
            "again",
            at(901),
            LIFETIME
        )
        .await
        .expect("revoke")
        .is_empty());
    assert_eq!(log(&s).await.len(), 3);
}

async fn codes_are_single_use_and_a_replay_sees_what_the_first_issued(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    let c = code(1);
    s.insert_code(&c).await.expect("insert");
    assert!(matches!(s.insert_code(&c).await, Err(StoreError::Conflict)));
    assert_eq!(s.get_code(&[1; 32]).await.expect("get"), Some(c.clone()));
    let CodeConsumption::Redeemed(first) =
        s.consume_code(&[1; 32], at(2_000)).await.expect("consume")
    else {
        panic!("first redemption");
    };
    assert_eq!(
        first,
        AuthCodeRecord {
            consumed_at: Some(at(2_000)),
            ..c.clone()
        }
    );
    let issued = CodeIssuance {
        jtis: vec!["jti-1".into(), "jti-2".into()],
        tokens_expire_at: at(600_000),
        family_id: Some(famid("rtf_00000000000000000000000000000001")),
    };
    assert!(
        !s.record_code_issuance(&[1; 32], &issued)
            .await
            .expect("record"),
        "no replay yet"
    );
    let CodeConsumption::AlreadyUsed(again) =
        s.consume_code(&[1; 32], at(3_000)).await.expect("consume")
    else {
        panic!("a replay");
    };
    assert_eq!(again.issued, Some(issued.clone()));
    assert_eq!(again.consumed_at, Some(at(2_000)));
    // A replay that arrives before the first redemption recorded its tokens is reported to it.
    let c2 = code(2);
    s.insert_code(&c2).await.expect("insert");
    assert!(matches!(
        s.consume_code(&[2; 32], at(2_000)).await.expect("consume"),
        CodeConsumption::Redeemed(_)
    ));
    let CodeConsumption::AlreadyUsed(early) =
        s.consume_code(&[2; 32], at(2_001)).await.expect("consume")
    else {
        panic!("a replay");
    };
    assert_eq!(early.issued, None);
    assert!(
        s.record_code_issuance(&[2; 32], &issued)
            .await
            .expect("record"),
        "the replay is reported to the redemption still issuing"
    );
    assert!(matches!(
        s.record_code_issuance(&[9; 32], &issued).await,
        Err(StoreError::NotFound)
    ));
}

async fn pushed_requests_open_for_their_client_then_are_used_once(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    let pushed = |d: u8| PushedRequestRecord {
        digest: vec![d; 32],
        tenant: tid("acme"),
        client_id: cid("cl_a"),
        params: r#"[["response_type","code"]]"#.into(),
        created_at: at(1_000),
        expires_at: at(61_000),
        opened_at: None,
        used_at: None,
    };
    s.insert_pushed_request(&pushed(1)).await.expect("insert");
    assert!(matches!(
        s.insert_pushed_request(&pushed(1)).await,
        Err(StoreError::Conflict)
    ));
    // Not opened yet: it cannot be used, and another client cannot open it.
    assert!(!s
        .use_pushed_request(&[1; 32], at(2_000))
        .await
        .expect("use"));
    assert_eq!(
        s.open_pushed_request(&[1; 32], "cl_b", at(2_000), at(600_000))
            .await
            .expect("open"),
        None
    );
    let opened = s
        .open_pushed_request(&[1; 32], "cl_a", at(2_000), at(600_000))
        .await
        .expect("open")
        .expect("opened");
    assert_eq!(
        opened,
        PushedRequestRecord {
            expires_at: at(600_000),
            opened_at: Some(at(2_000)),
            ..pushed(1)
        }
    );
    // Opening again (a reload, a form post) keeps the first opening and its expiry, even past
    // the push's own minute.
    let again = s
        .open_pushed_request(&[1; 32], "cl_a", at(90_000), at(900_000))
        .await
        .expect("open")
        .expect("still open");
    assert_eq!(again, opened);
    assert!(s
        .use_pushed_request(&[1; 32], at(91_000))
        .await
        .expect("use"));
    assert!(!s
        .use_pushed_request(&[1; 32], at(92_000))
        .await
        .expect("use"));
    assert_eq!(
        s.open_pushed_request(&[1; 32], "cl_a", at(93_000), at(900_000))
            .await
            .expect("open"),
        None,
        "a used request never resolves again"
    );
    // Never opened within its minute: expired for good.
    s.insert_pushed_request(&pushed(2)).await.expect("insert");
    assert_eq!(
        s.open_pushed_request(&[2; 32], "cl_a", at(61_000), at(900_000))
            .await
            .expect("open"),
        None
    );
    assert_eq!(
        s.open_pushed_request(&[9; 32], "cl_a", at(2_000), at(900_000))
            .await
            .expect("open"),
        None
    );
    // Racing uses of one opened request: one winner.
    s.insert_pushed_request(&pushed(3)).await.expect("insert");
    s.open_pushed_request(&[3; 32], "cl_a", at(2_000), at(600_000))
        .await
        .expect("open")
        .expect("opened");
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.use_pushed_request(&[3; 32], at(3_000 + i)).await })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.expect("join").expect("use"));
    }
    assert_eq!(winners, 1);
    // Pruning takes what expired: 2 (at 61 s); 1 and 3 live until 600 s.
    assert_eq!(
        s.prune_pushed_requests(at(100_000)).await.expect("prune"),
        1
    );
    assert_eq!(
        s.prune_pushed_requests(at(600_000)).await.expect("prune"),
        2
    );
    assert!(matches!(
        s.insert_pushed_request(&PushedRequestRecord {
            tenant: tid("nobody"),
            ..pushed(4)
        })
        .await,
        Err(StoreError::NotFound)
    ));
}

async fn racing_redemptions_of_one_code_yield_one_winner(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    s.insert_code(&code(1)).await.expect("insert");
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move { s.consume_code(&[1; 32], at(2_000 + i)).await })
        })
        .collect();
    let mut redeemed = 0;
    let mut replays = 0;
    for t in tasks {
        match t.await.expect("join").expect("consume") {
            CodeConsumption::Redeemed(_) => redeemed += 1,
            CodeConsumption::AlreadyUsed(_) => replays += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((redeemed, replays), (1, 7));
}

async fn expired_and_unknown_codes_and_pruning(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    s.insert_code(&code(1)).await.expect("insert");
    assert_eq!(
        s.consume_code(&[1; 32], at(61_000)).await.expect("consume"),
        CodeConsumption::Expired
    );
    assert_eq!(
        s.get_code(&[1; 32])
            .await
            .expect("get")
            .expect("some")
            .consumed_at,
        None,
        "an expired code is not consumed"
    );
    assert_eq!(
        s.consume_code(&[9; 32], at(2_000)).await.expect("consume"),
        CodeConsumption::NotFound
    );
    let mut later = code(2);
    later.expires_at = at(70_000);
    s.insert_code(&later).await.expect("insert");
    assert_eq!(s.prune_codes(at(60_999)).await.expect("prune"), 0);
    assert_eq!(s.prune_codes(at(61_000)).await.expect("prune"), 1);
    assert!(s.get_code(&[1; 32]).await.expect("get").is_none());
    assert!(s.get_code(&[2; 32]).await.expect("get").is_some());
    let mut orphan = code(3);
    orphan.tenant = tid("nope");
    assert!(matches!(
        s.insert_code(&orphan).await,
        Err(StoreError::NotFound)
    ));
}

async fn a_refresh_token_is_read_with_its_users_status_in_its_own_tenant(s: Arc<dyn Store>) {
    use portcullis_core::user::{UserId, UserStatus};
    tenants(&s, &["acme", "globex"]).await;
    const ANN: &str = "usr_01aaaaaaaaaaaaaaaaaaaaaaaa";
    const BOB: &str = "usr_01bbbbbbbbbbbbbbbbbbbbbbbb";
    let status = |n: u8| {
        let s = s.clone();
        async move {
            s.get_refresh_token(&[n; 32])
                .await
                .expect("get")
                .expect("some")
                .user_status
        }
    };
    // acme families (the fixture's tenant) of ann and of bob.
    for (n, user) in [(1u8, ANN), (2, BOB)] {
        let id = format!("rtf_{n:032x}");
        s.create_refresh_family(&family(&id, user, "cl_app", None), &token(n, &id, 0, 100))
            .await
            .expect("family");
    }
    assert_eq!(status(1).await, None, "no such user yet");
    // bob exists, but in globex: not the acme family's user.
    s.create_user(&crate::users::user(BOB, "globex", "bob", None))
        .await
        .expect("globex user");
    assert_eq!(status(2).await, None, "another tenant's user");
    s.create_user(&crate::users::user(ANN, "acme", "ann", None))
        .await
        .expect("acme user");
    assert_eq!(status(1).await, Some(UserStatus::Active));
    let id = UserId::parse(ANN).expect("id");
    assert!(s
        .set_user_status(&tid("acme"), &id, UserStatus::Disabled, at(500))
        .await
        .expect("disable"));
    assert_eq!(status(1).await, Some(UserStatus::Disabled));
}

async fn a_session_is_read_with_its_users_status_in_its_own_tenant(s: Arc<dyn Store>) {
    use portcullis_core::user::{UserId, UserStatus};
    tenants(&s, &["acme", "globex"]).await;
    const ANN: &str = "usr_01aaaaaaaaaaaaaaaaaaaaaaaa";
    const BOB: &str = "usr_01bbbbbbbbbbbbbbbbbbbbbbbb";
    let ann = session(1, "ses_00000000000000000000000ann", "acme", ANN);
    let bob = session(2, "ses_00000000000000000000000bob", "acme", BOB);
    for x in [&ann, &bob] {
        s.insert_session(x).await.expect("insert");
    }
    let read = |sid: &'static str| {
        let s = s.clone();
        async move {
            s.get_session_with_user_status(&tid("acme"), sid)
                .await
                .expect("read")
        }
    };
    assert_eq!(
        read("ses_00000000000000000000000ann").await,
        Some((ann.clone(), None)),
        "no user yet"
    );
    assert_eq!(read("ses_0000000000000000000000none").await, None);
    assert_eq!(
        s.get_session_with_user_status(&tid("globex"), "ses_00000000000000000000000ann")
            .await
            .expect("read"),
        None,
        "another tenant's session id"
    );
    // bob exists in globex only: not the acme session's user.
    s.create_user(&crate::users::user(BOB, "globex", "bob", None))
        .await
        .expect("globex user");
    assert_eq!(
        read("ses_00000000000000000000000bob").await,
        Some((bob, None))
    );
    s.create_user(&crate::users::user(ANN, "acme", "ann", None))
        .await
        .expect("acme user");
    assert_eq!(
        read("ses_00000000000000000000000ann").await,
        Some((ann.clone(), Some(UserStatus::Active)))
    );
    assert!(s
        .set_user_status(
            &tid("acme"),
            &UserId::parse(ANN).expect("id"),
            UserStatus::Disabled,
            at(500)
        )
        .await
        .expect("disable"));
    assert_eq!(
        read("ses_00000000000000000000000ann").await,
        Some((ann, Some(UserStatus::Disabled)))
    );
}

async fn refresh_rotation_is_single_shot_and_stops_at_a_revoked_family(s: Arc<dyn Store>) {
    tenants(&s, &["acme", "globex"]).await;
    let f = family(
        "rtf_00000000000000000000000000000001",
        "usr_00000000000000000000000001",
        "cl_app",
        Some("ses_00000000000000000000000001"),
    );
    s.create_refresh_family(
        &f,
        &token(1, "rtf_00000000000000000000000000000001", 0, 100),
    )
    .await
    .expect("family");
    assert!(matches!(
        s.create_refresh_family(
            &f,
            &token(2, "rtf_00000000000000000000000000000001", 0, 100)
        )
        .await,
        Err(StoreError::Conflict)
    ));
    let read = s
        .get_refresh_token(&[1; 32])
        .await
        .expect("get")
        .expect("some");
    assert_eq!(
        (read.token, read.family),
        (
            token(1, "rtf_00000000000000000000000000000001", 0, 100),
            f.clone()
        )
    );
    assert_eq!(read.user_status, None, "no such user");
    assert!(
        s.get_refresh_token(&[2; 32]).await.expect("get").is_none(),
        "nothing half-made"
    );
    assert_eq!(
        s.rotate_refresh_token(
            &[1; 32],
            &token(2, "rtf_00000000000000000000000000000001", 1, 1_000),
            Some(at(6_000))
        )
        .await
        .expect("rotate"),
        RotateOutcome::Rotated
    );
    assert_eq!(
        s.rotate_refresh_token(
            &[1; 32],
            &token(3, "rtf_00000000000000000000000000000001", 1, 1_001),
            Some(at(6_001))
        )
        .await
        .expect("rotate"),
        RotateOutcome::AlreadyRotated {
            successor_digest: vec![2; 32],
            rotated_at: at(1_000),
        }
    );
    assert!(s.get_refresh_token(&[3; 32]).await.expect("get").is_none());
    let RefreshTokenRead {
        token: spent,
        family: fam,
        ..
    } = s
        .get_refresh_token(&[1; 32])
        .await
        .expect("get")
        .expect("some");
    assert_eq!(spent.rotated_at, Some(at(1_000)));
    assert_eq!(spent.successor_digest, Some(vec![2; 32]));
    assert_eq!(fam.idle_expires_at, at(6_000), "the idle deadline moved");
    let next = s
        .get_refresh_token(&[2; 32])
        .await
        .expect("get")
        .expect("some")
        .token;
    assert_eq!(
        next,
        token(2, "rtf_00000000000000000000000000000001", 1, 1_000)
    );
    // A rotation without a new idle deadline leaves the family row as it is.
    assert_eq!(
        s.rotate_refresh_token(
            &[2; 32],
            &token(5, "rtf_00000000000000000000000000000001", 2, 1_500),
            None
        )
        .await
        .expect("rotate"),
        RotateOutcome::Rotated
    );
    assert_eq!(
        s.get_refresh_token(&[5; 32])
            .await
            .expect("get")
            .expect("the successor")
            .family
            .idle_expires_at,
        at(6_000),
        "kept"
    );
    assert_eq!(
        s.rotate_refresh_token(
            &[9; 32],
            &token(4, "rtf_00000000000000000000000000000001", 2, 1_002),
            Some(at(6_002))
        )
        .await
        .expect("rotate"),
        RotateOutcome::NotFound
    );
    assert_eq!(
        s.revoke_refresh_family(
            &tid("globex"),
            "rtf_00000000000000000000000000000001",
            "reuse",
            at(2_000),
            LIFETIME
        )
        .await
        .expect("revoke"),
        None,
        "another tenant's family"
    );
    let entry = s
        .revoke_refresh_family(
            &tid("acme"),
            "rtf_00000000000000000000000000000001",
            "reuse",
            at(2_000),
            LIFETIME,
        )
        .await
        .expect("revoke")
        .expect("revoked");
    assert_eq!(
        (
            entry.kind,
            entry.subject.as_str(),
            entry.revoked_before,
            entry.expires_at
        ),
        (
            RevocationKind::Family,
            "rtf_00000000000000000000000000000001",
            Some(at(2_000)),
            Some(at(50_000 + 3_600_000))
        )
    );
    assert_eq!(
        s.revoke_refresh_family(
            &tid("acme"),
            "rtf_00000000000000000000000000000001",
            "again",
            at(2_001),
            LIFETIME
        )
        .await
        .expect("revoke"),
        None
    );
    assert_eq!(
        s.rotate_refresh_token(
            &[2; 32],
            &token(4, "rtf_00000000000000000000000000000001", 2, 2_002),
            Some(at(7_000))
        )
        .await
        .expect("rotate"),
        RotateOutcome::FamilyRevoked
    );
    assert!(s.get_refresh_token(&[4; 32]).await.expect("get").is_none());
    let listed = s
        .list_user_refresh_families(&tid("acme"), "usr_00000000000000000000000001")
        .await
        .expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].revoked_reason.as_deref(), Some("reuse"));
}

/// A rotation whose successor cannot be stored (here its digest is taken) fails after the
/// presented token was already marked: the whole transaction goes, and the writer it ran on is
/// left fit for the next write (SQLite runs this transaction in SQL, `BEGIN` to `COMMIT`).
async fn a_rotation_that_fails_halfway_changes_nothing_and_the_next_one_works(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    let fam = "rtf_00000000000000000000000000000001";
    s.create_refresh_family(
        &family(fam, "usr_00000000000000000000000001", "cl_app", None),
        &token(1, fam, 0, 100),
    )
    .await
    .expect("family");
    assert!(matches!(
        s.rotate_refresh_token(&[1; 32], &token(1, fam, 1, 1_000), Some(at(6_000)))
            .await,
        Err(StoreError::Conflict)
    ));
    let read = s
        .get_refresh_token(&[1; 32])
        .await
        .expect("get")
        .expect("some");
    assert_eq!(read.token, token(1, fam, 0, 100), "not marked rotated");
    assert_eq!(
        read.family.idle_expires_at,
        family(fam, "usr_00000000000000000000000001", "cl_app", None).idle_expires_at
    );
    assert_eq!(
        s.rotate_refresh_token(&[1; 32], &token(2, fam, 1, 1_001), Some(at(6_001)))
            .await
            .expect("rotate"),
        RotateOutcome::Rotated
    );
    assert_eq!(
        s.get_refresh_token(&[2; 32])
            .await
            .expect("get")
            .expect("the successor")
            .token,
        token(2, fam, 1, 1_001)
    );
}

/// Polls `fut` once, sleeps `pause` on this thread while the store's own threads keep working,
/// polls it once more, and drops it if it is still pending: a caller cancelled (a client that
/// went away) at a point that depends on `pause`.
async fn cut_short<T>(fut: impl std::future::Future<Output = T>, pause: Duration) -> Option<T> {
    use std::task::Poll;
    let mut fut = std::pin::pin!(fut);
    for _ in 0..2 {
        let polled = std::future::poll_fn(|cx| Poll::Ready(fut.as_mut().poll(cx))).await;
        if let Poll::Ready(v) = polled {
            return Some(v);
        }
        std::thread::sleep(pause);
    }
    None
}

/// A rotation whose caller is dropped part-way (before its statements run, while they run,
/// between the commit and the fsync) leaves all of its writes or none, and leaves no
/// transaction behind: a write on another connection goes through at once (SQLite has one
/// write lock; a transaction left open would hold it), and the next rotation works.
async fn rotations_cut_short_at_any_point_leave_all_or_nothing_and_the_store_writable(
    s: Arc<dyn Store>,
) {
    tenants(&s, &["acme"]).await;
    let fam = "rtf_00000000000000000000000000000001";
    s.create_refresh_family(
        &family(fam, "usr_00000000000000000000000001", "cl_app", None),
        &token(0, fam, 0, 100),
    )
    .await
    .expect("family");
    let (mut current, mut cut) = (0u8, 0);
    for i in 0..40u8 {
        let next = current + 1;
        let successor = token(next, fam, i64::from(next), 1_000 + i64::from(i));
        let pause = Duration::from_micros(u64::from(i % 10) * 40);
        let presented = [current; 32];
        let attempt = s.rotate_refresh_token(&presented, &successor, Some(at(6_000)));
        if let Some(outcome) = cut_short(attempt, pause).await {
            assert_eq!(outcome.expect("rotate"), RotateOutcome::Rotated);
            current = next;
            continue;
        }
        cut += 1;
        // Another connection's write, at once (a transaction left open would make it wait
        // for SQLite's busy timeout and fail).
        let other = tokio::time::timeout(
            Duration::from_secs(3),
            s.create_tenant(
                &NewTenant {
                    id: tid(&format!("cut-{i}")),
                    display_name: "cut".into(),
                },
                at(1),
            ),
        )
        .await;
        assert!(matches!(other, Ok(Ok(_))), "round {i}: {other:?}");
        // The same rotation again: it happened entirely (the successor is the one the cut
        // call stored) or not at all (it happens now, with no half-made successor in its way).
        // Bounded: a transaction left open on a pooled connection (PostgreSQL) would hold the
        // family's row lock, and this would wait for it for ever.
        let again = tokio::time::timeout(
            Duration::from_secs(10),
            s.rotate_refresh_token(&[current; 32], &successor, Some(at(6_000))),
        )
        .await;
        let Ok(again) = again else {
            panic!("round {i}: the rotation waited 10 s for a lock nobody releases");
        };
        match again.expect("rotate") {
            RotateOutcome::Rotated => {}
            RotateOutcome::AlreadyRotated {
                successor_digest, ..
            } => assert_eq!(successor_digest, vec![next; 32], "round {i}"),
            other => panic!("round {i}: {other:?}"),
        }
        current = next;
    }
    assert!(cut > 0, "some rotations were cut short");
    let read = s
        .get_refresh_token(&[current; 32])
        .await
        .expect("get")
        .expect("the last successor");
    assert_eq!(read.token.generation, i64::from(current));
    assert_eq!(read.token.rotated_at, None);
}

async fn racing_rotations_of_one_token_yield_exactly_one_successor(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    s.create_refresh_family(
        &family(
            "rtf_00000000000000000000000000000001",
            "usr_00000000000000000000000001",
            "cl_app",
            None,
        ),
        &token(1, "rtf_00000000000000000000000000000001", 0, 100),
    )
    .await
    .expect("family");
    // Eight nodes race with eight different successors: one wins, all see the winner's.
    let tasks: Vec<_> = (0..8u8)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                let succ = token(
                    10 + i,
                    "rtf_00000000000000000000000000000001",
                    1,
                    1_000 + i64::from(i),
                );
                (
                    i,
                    s.rotate_refresh_token(&[1; 32], &succ, Some(at(6_000)))
                        .await,
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut seen = Vec::new();
    for t in tasks {
        let (i, outcome) = t.await.expect("join");
        match outcome.expect("rotate") {
            RotateOutcome::Rotated => winners.push(10 + i),
            RotateOutcome::AlreadyRotated {
                successor_digest, ..
            } => seen.push(successor_digest),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one successor");
    let winner = vec![winners[0]; 32];
    assert_eq!(seen.len(), 7);
    assert!(
        seen.iter().all(|d| *d == winner),
        "every loser sees the winner"
    );
    for i in 0..8u8 {
        let found = s.get_refresh_token(&[10 + i; 32]).await.expect("get");
        assert_eq!(found.is_some(), 10 + i == winners[0]);
    }
}

async fn consents_upsert_list_and_revoke_with_the_clients_families(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    let consent = |user: &str, client: &str, scopes: &[&str], when| ConsentRecord {
        tenant: tid("acme"),
        user_id: uid(user),
        client_id: cid(client),
        scopes: scopes.iter().map(|x| (*x).to_owned()).collect(),
        granted_at: at(when),
    };
    s.put_consent(&consent(
        "usr_00000000000000000000000001",
        "cl_b",
        &["openid"],
        10,
    ))
    .await
    .expect("put");
    s.put_consent(&consent(
        "usr_00000000000000000000000001",
        "cl_a",
        &["openid", "email"],
        11,
    ))
    .await
    .expect("put");
    s.put_consent(&consent(
        "usr_00000000000000000000000002",
        "cl_a",
        &["openid"],
        12,
    ))
    .await
    .expect("put");
    let widened = consent(
        "usr_00000000000000000000000001",
        "cl_b",
        &["openid", "profile"],
        20,
    );
    s.put_consent(&widened).await.expect("replace");
    assert_eq!(
        s.get_consent(&tid("acme"), "usr_00000000000000000000000001", "cl_b")
            .await
            .expect("get"),
        Some(widened)
    );
    assert_eq!(
        s.list_user_consents(&tid("acme"), "usr_00000000000000000000000001")
            .await
            .expect("list")
            .into_iter()
            .map(|c| c.client_id.to_string())
            .collect::<Vec<_>>(),
        ["cl_a", "cl_b"]
    );
    let mut orphan = consent("usr_00000000000000000000000001", "cl_a", &["openid"], 1);
    orphan.tenant = tid("nope");
    assert!(matches!(
        s.put_consent(&orphan).await,
        Err(StoreError::NotFound)
    ));
    for (id, user, client) in [
        (
            "rtf_00000000000000000000000000000001",
            "usr_00000000000000000000000001",
            "cl_b",
        ),
        (
            "rtf_00000000000000000000000000000002",
            "usr_00000000000000000000000001",
            "cl_a",
        ),
        (
            "rtf_00000000000000000000000000000003",
            "usr_00000000000000000000000002",
            "cl_b",
        ),
    ] {
        let d = id.as_bytes()[id.len() - 1];
        s.create_refresh_family(&family(id, user, client, None), &token(d, id, 0, 100))
            .await
            .expect("family");
    }
    assert!(s
        .revoke_consent(
            &tid("acme"),
            "usr_00000000000000000000000001",
            "cl_b",
            at(500),
            LIFETIME
        )
        .await
        .expect("revoke"));
    assert_eq!(
        s.get_consent(&tid("acme"), "usr_00000000000000000000000001", "cl_b")
            .await
            .expect("get"),
        None
    );
    let logged: Vec<_> = log(&s)
        .await
        .into_iter()
        .map(|e| (e.kind, e.subject))
        .collect();
    assert_eq!(
        logged,
        [(
            RevocationKind::Family,
            "rtf_00000000000000000000000000000001".to_owned()
        )]
    );
    for (id, revoked) in [
        ("rtf_00000000000000000000000000000001", true),
        ("rtf_00000000000000000000000000000002", false),
        ("rtf_00000000000000000000000000000003", false),
    ] {
        let f = s.get_refresh_family(id).await.expect("get").expect("some");
        assert_eq!(f.revoked_at.is_some(), revoked, "{id}");
    }
    assert!(!s
        .revoke_consent(
            &tid("acme"),
            "usr_00000000000000000000000001",
            "cl_b",
            at(501),
            LIFETIME
        )
        .await
        .expect("revoke"));
}

async fn consents_are_exported_and_sign_in_state_is_not_but_blocks_an_import(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    let consent = ConsentRecord {
        tenant: tid("acme"),
        user_id: uid("usr_00000000000000000000000001"),
        client_id: cid("cl_a"),
        scopes: vec!["openid".into(), "email".into()],
        granted_at: at(10),
    };
    s.put_consent(&consent).await.expect("put");
    s.insert_session(&session(
        1,
        "ses_00000000000000000000000001",
        "acme",
        "usr_00000000000000000000000001",
    ))
    .await
    .expect("session");
    s.insert_code(&code(1)).await.expect("code");
    s.create_refresh_family(
        &family(
            "rtf_00000000000000000000000000000001",
            "usr_00000000000000000000000001",
            "cl_a",
            Some("ses_00000000000000000000000001"),
        ),
        &token(1, "rtf_00000000000000000000000000000001", 0, 100),
    )
    .await
    .expect("family");
    let mut records = Vec::new();
    s.export_records(&mut |r| {
        records.push(r);
        Ok(())
    })
    .await
    .expect("export");
    let kinds: Vec<_> = records.iter().map(|r| r.kind()).collect();
    assert!(kinds.contains(&"consent"), "{kinds:?}");
    // Through the file format and into a fresh database of the other kind.
    let mut file = Vec::new();
    export::write_export(s.as_ref(), &mut file, at(1), 1_000, &mut |_| {})
        .await
        .expect("write");
    let dir = tempfile::tempdir().expect("tempdir");
    let target = SqliteStore::open(&dir.path().join("t.db"))
        .await
        .expect("open");
    target
        .import_records(
            &mut export::ExportReader::new(&file[..]).expect("header"),
            &mut |_, _| {},
        )
        .await
        .expect("import");
    assert_eq!(
        target
            .get_consent(&tid("acme"), "usr_00000000000000000000000001", "cl_a")
            .await
            .expect("get"),
        Some(consent)
    );
    assert!(target.get_session(&[1; 32]).await.expect("get").is_none());
    // A database holding sign-in state is not empty.
    let blockers = s.import_blockers().await.expect("blockers");
    for table in [
        "consents",
        "sign_in_sessions",
        "authorization_codes",
        "refresh_families",
        "refresh_tokens",
    ] {
        assert!(blockers.contains(&table), "{table}: {blockers:?}");
    }
}

/// Ids are parsed once, when a row is read: a stored id that is not one (written past the store)
/// is reported as [`StoreError::Corrupt`], for every record that carries a typed id.
async fn a_stored_id_that_does_not_parse_is_a_corrupt_row_not_a_panic(s: Arc<dyn Store>, raw: Raw) {
    tenants(&s, &["acme"]).await;
    let corrupt = |what: &str, r: Result<()>| match r {
        Err(StoreError::Corrupt(_)) => {}
        other => panic!("{what}: expected a corrupt row, got {other:?}"),
    };
    let user = "usr_00000000000000000000000001";
    let (sid_a, sid_b) = (
        "ses_0000000000000000000000000a",
        "ses_0000000000000000000000000b",
    );
    s.insert_session(&session(1, sid_a, "acme", user))
        .await
        .expect("session");
    s.insert_session(&session(2, sid_b, "acme", user))
        .await
        .expect("session");
    raw.exec(&format!(
        "UPDATE sign_in_sessions SET user_id = 'bob' WHERE id = '{sid_a}'"
    ))
    .await;
    raw.exec(&format!(
        "UPDATE sign_in_sessions SET id = 'ses_SHOUTING' WHERE id = '{sid_b}'"
    ))
    .await;
    corrupt("session user", s.get_session(&[1; 32]).await.map(drop));
    corrupt(
        "session user, with its status",
        s.get_session_with_user_status(&tid("acme"), sid_a)
            .await
            .map(drop),
    );
    corrupt("session id", s.get_session(&[2; 32]).await.map(drop));
    corrupt(
        "a user's sessions",
        s.list_user_sessions(&tid("acme"), user).await.map(drop),
    );

    s.insert_code(&code(3)).await.expect("code");
    raw.exec("UPDATE authorization_codes SET client_id = 'cl web' WHERE client_id = 'cl_web'")
        .await;
    corrupt("code client", s.get_code(&[3; 32]).await.map(drop));
    corrupt(
        "code client, redeemed",
        s.consume_code(&[3; 32], at(2_000)).await.map(drop),
    );
    s.insert_code(&code(4)).await.expect("code");
    raw.exec(
        "UPDATE authorization_codes SET issued_jtis = 'jti-1', issued_tokens_expire_at = 9, \
         issued_family_id = 'rtf_1' WHERE client_id = 'cl_web'",
    )
    .await;
    corrupt("code's family", s.get_code(&[4; 32]).await.map(drop));

    let fam = "rtf_00000000000000000000000000000001";
    s.create_refresh_family(
        &family(fam, user, "cl_app", Some(sid_a)),
        &token(5, fam, 0, 100),
    )
    .await
    .expect("family");
    raw.exec(&format!(
        "UPDATE refresh_families SET sid = 'session-1' WHERE id = '{fam}'"
    ))
    .await;
    corrupt("family sid", s.get_refresh_family(fam).await.map(drop));
    corrupt(
        "family sid, by token",
        s.get_refresh_token(&[5; 32]).await.map(drop),
    );
    corrupt(
        "a user's families",
        s.list_user_refresh_families(&tid("acme"), user)
            .await
            .map(drop),
    );

    // Device authorizations: the client always, the deciding user and session once decided.
    let (decided, pending) = (
        super::device::device(7, "acme"),
        super::device::device(8, "acme"),
    );
    s.insert_device_authorization(&decided)
        .await
        .expect("device");
    s.insert_device_authorization(&pending)
        .await
        .expect("device");
    assert!(s
        .decide_device_authorization(
            &decided.user_code_digest,
            &super::device::decision(true, 2_000)
        )
        .await
        .expect("decide"));
    raw.exec("UPDATE device_authorizations SET sid = 'sid_1' WHERE status = 'approved'")
        .await;
    corrupt(
        "device sid",
        s.get_device_authorization(&decided.device_digest)
            .await
            .map(drop),
    );
    raw.exec(
        "UPDATE device_authorizations SET sid = NULL, user_id = 'usr_1' WHERE status = 'approved'",
    )
    .await;
    corrupt(
        "device user",
        s.get_device_authorization(&decided.device_digest)
            .await
            .map(drop),
    );
    raw.exec(
        "UPDATE device_authorizations SET client_id = 'portcullis cli' WHERE status = 'pending'",
    )
    .await;
    corrupt(
        "device client",
        s.find_pending_device_authorization(&pending.user_code_digest, at(2_000))
            .await
            .map(drop),
    );

    // Admin roles held by users, read one by one, listed and exported.
    s.put_user_admin_role(&UserAdminRole {
        tenant: tid("acme"),
        user_id: uid(user),
        role: portcullis_core::admin::AdminRole::Auditor,
        granted_at: at(10),
        granted_by: "admin:adm_1".into(),
    })
    .await
    .expect("user admin role");
    raw.exec(&format!(
        "UPDATE user_admin_roles SET user_id = 'USR_1' WHERE user_id = '{user}'"
    ))
    .await;
    corrupt(
        "user role",
        s.get_user_admin_role(&tid("acme"), "USR_1").await.map(drop),
    );
    corrupt(
        "a tenant's user roles",
        s.list_user_admin_roles(&tid("acme")).await.map(drop),
    );
    corrupt(
        "exported user roles",
        s.export_records(&mut |_| Ok(())).await,
    );

    s.put_consent(&ConsentRecord {
        tenant: tid("acme"),
        user_id: uid(user),
        client_id: cid("cl_a"),
        scopes: vec!["openid".into()],
        granted_at: at(10),
    })
    .await
    .expect("consent");
    raw.exec("UPDATE consents SET client_id = 'cl/a' WHERE client_id = 'cl_a'")
        .await;
    corrupt(
        "consent client",
        s.get_consent(&tid("acme"), user, "cl/a").await.map(drop),
    );
    corrupt(
        "a user's consents",
        s.list_user_consents(&tid("acme"), user).await.map(drop),
    );

    s.insert_pushed_request(&PushedRequestRecord {
        digest: vec![6; 32],
        tenant: tid("acme"),
        client_id: cid("cl_a"),
        params: "[]".into(),
        created_at: at(1_000),
        expires_at: at(61_000),
        opened_at: None,
        used_at: None,
    })
    .await
    .expect("pushed");
    raw.exec("UPDATE pushed_requests SET client_id = '' WHERE client_id = 'cl_a'")
        .await;
    corrupt(
        "pushed request client",
        s.open_pushed_request(&[6; 32], "", at(2_000), at(600_000))
            .await
            .map(drop),
    );
}
