//! Conformance cases for back-channel logout state (which clients a session issued tokens to,
//! the delivery queue), each run against SQLite and PostgreSQL like the rest of the suite.

use std::sync::Arc;

use portcullis_core::client::{ApplicationType, ClientType};

use super::{at, sesid, tenants, tid, uid, with_postgres, with_sqlite};
use portcullis_store::export::{self, TransferStore as _};
use portcullis_store::*;

conformance!(
    ending_a_session_queues_one_delivery_per_client_with_a_uri,
    a_claim_is_a_lease_and_retries_and_deletes_are_by_id,
    session_clients_go_with_pruned_sessions_and_block_an_import,
);

fn client(id: &str, tenant: &str, uri: Option<&str>) -> OAuthClient {
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
        created_at: at(1),
        updated_at: at(1),
        last_used_at: None,
        client_type: ClientType::Public,
        application_type: ApplicationType::Web,
        redirect_uris: vec!["https://app.example/cb".into()],
        post_logout_redirect_uris: vec![],
        allowed_web_origins: vec![],
        first_party: false,
        backchannel_logout_uri: uri.map(Into::into),
        backchannel_logout_session_required: false,
        require_pushed_requests: false,
        require_dpop: false,
        id_token_signed_response_alg: None,
        tls_subject: None,
        certificate_bound_tokens: false,
    }
}

fn session(digest: u8, sid: &str, user: &str) -> SessionRecord {
    SessionRecord {
        digest: vec![digest; 32],
        id: sesid(sid),
        tenant: tid("acme"),
        user_id: uid(user),
        auth_time: at(100),
        amr: vec!["pwd".into()],
        acr: None,
        created_at: at(100),
        last_seen_at: at(100),
        idle_expires_at: at(1_000),
        absolute_expires_at: at(10_000),
        revoked_at: None,
    }
}

async fn setup(s: &Arc<dyn Store>) {
    tenants(s, &["acme", "globex"]).await;
    for c in [
        client("cl_a", "acme", Some("https://a.example/bcl")),
        client("cl_b", "acme", Some("https://b.example/bcl")),
        client("cl_none", "acme", None),
    ] {
        s.create_client(&c, None).await.expect("client");
    }
    s.insert_session(&session(
        1,
        "ses_00000000000000000000000001",
        "usr_00000000000000000000000001",
    ))
    .await
    .expect("session");
    s.insert_session(&session(
        2,
        "ses_00000000000000000000000002",
        "usr_00000000000000000000000002",
    ))
    .await
    .expect("session");
    for (sid, c) in [
        ("ses_00000000000000000000000001", "cl_a"),
        ("ses_00000000000000000000000001", "cl_b"),
        ("ses_00000000000000000000000001", "cl_none"),
        ("ses_00000000000000000000000001", "cl_a"),
        ("ses_00000000000000000000000002", "cl_a"),
    ] {
        s.record_session_client(&tid("acme"), sid, c, at(200))
            .await
            .expect("record");
    }
}

async fn ending_a_session_queues_one_delivery_per_client_with_a_uri(s: Arc<dyn Store>) {
    setup(&s).await;
    assert!(matches!(
        s.record_session_client(
            &tid("nope"),
            "ses_0000000000000000000000000x",
            "cl_a",
            at(1)
        )
        .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        s.session_clients(&tid("acme"), "ses_00000000000000000000000001")
            .await
            .expect("list"),
        ["cl_a", "cl_b", "cl_none"]
    );
    assert!(s
        .session_clients(&tid("globex"), "ses_00000000000000000000000001")
        .await
        .expect("list")
        .is_empty());
    // Another tenant's sid names nothing here.
    assert_eq!(
        s.enqueue_backchannel_logouts(
            &tid("globex"),
            &["ses_00000000000000000000000001".into()],
            at(300)
        )
        .await
        .expect("enqueue"),
        0
    );
    assert_eq!(
        s.enqueue_backchannel_logouts(
            &tid("acme"),
            &["ses_00000000000000000000000001".into()],
            at(300)
        )
        .await
        .expect("enqueue"),
        2
    );
    // Queuing again changes nothing.
    assert_eq!(
        s.enqueue_backchannel_logouts(
            &tid("acme"),
            &["ses_00000000000000000000000001".into()],
            at(400)
        )
        .await
        .expect("enqueue"),
        0
    );
    let claimed = s
        .claim_backchannel_deliveries(at(300), at(10_300), 10)
        .await
        .expect("claim");
    let got: Vec<_> = claimed
        .iter()
        .map(|d| {
            (
                d.client_id.as_str(),
                d.sid.as_str(),
                d.user_id.as_str(),
                d.attempts,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "cl_a",
                "ses_00000000000000000000000001",
                "usr_00000000000000000000000001",
                1
            ),
            (
                "cl_b",
                "ses_00000000000000000000000001",
                "usr_00000000000000000000000001",
                1
            )
        ]
    );
    assert!(claimed.iter().all(|d| d.next_attempt_at == at(10_300)
        && d.created_at == at(300)
        && d.tenant == tid("acme")));
}

async fn a_claim_is_a_lease_and_retries_and_deletes_are_by_id(s: Arc<dyn Store>) {
    setup(&s).await;
    s.enqueue_backchannel_logouts(
        &tid("acme"),
        &[
            "ses_00000000000000000000000001".into(),
            "ses_00000000000000000000000002".into(),
        ],
        at(300),
    )
    .await
    .expect("enqueue");
    // Not due yet.
    assert!(s
        .claim_backchannel_deliveries(at(299), at(1_000), 10)
        .await
        .expect("claim")
        .is_empty());
    let first = s
        .claim_backchannel_deliveries(at(300), at(1_000), 2)
        .await
        .expect("claim");
    assert_eq!(first.len(), 2, "the limit holds");
    // Racing claimers: each delivery goes to exactly one.
    let (x, y) = tokio::join!(
        s.claim_backchannel_deliveries(at(300), at(1_000), 10),
        s.claim_backchannel_deliveries(at(300), at(1_000), 10)
    );
    let (x, y) = (x.expect("claim"), y.expect("claim"));
    assert_eq!(x.len() + y.len(), 1, "{x:?} {y:?}");
    // Leased: nothing due until the lease ends, then all three again.
    assert!(s
        .claim_backchannel_deliveries(at(999), at(2_000), 10)
        .await
        .expect("claim")
        .is_empty());
    let again = s
        .claim_backchannel_deliveries(at(1_000), at(2_000), 10)
        .await
        .expect("claim");
    assert_eq!(again.len(), 3);
    assert!(again.iter().all(|d| d.attempts == 2));
    let one = &again[0];
    assert!(s
        .retry_backchannel_delivery(&one.id, at(5_000), "bad_status")
        .await
        .expect("retry"));
    assert!(!s
        .retry_backchannel_delivery("nope", at(5_000), "bad_status")
        .await
        .expect("retry"));
    for d in &again[1..] {
        assert!(s.delete_backchannel_delivery(&d.id).await.expect("delete"));
        assert!(!s.delete_backchannel_delivery(&d.id).await.expect("delete"));
    }
    let later = s
        .claim_backchannel_deliveries(at(5_000), at(6_000), 10)
        .await
        .expect("claim");
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].id, one.id);
    assert_eq!(later[0].attempts, 3);
    assert_eq!(later[0].last_error.as_deref(), Some("bad_status"));
}

async fn session_clients_go_with_pruned_sessions_and_block_an_import(s: Arc<dyn Store>) {
    setup(&s).await;
    s.enqueue_backchannel_logouts(
        &tid("acme"),
        &["ses_00000000000000000000000002".into()],
        at(300),
    )
    .await
    .expect("enqueue");
    // Neither table is exported, and either one makes the database no import target.
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
    assert!(target
        .session_clients(&tid("acme"), "ses_00000000000000000000000001")
        .await
        .expect("list")
        .is_empty());
    // The client's registration travels.
    let a = target.get_client("cl_a").await.expect("get").expect("cl_a");
    assert_eq!(
        a.backchannel_logout_uri.as_deref(),
        Some("https://a.example/bcl")
    );
    let blockers = s.import_blockers().await.expect("blockers");
    for table in ["session_clients", "backchannel_deliveries"] {
        assert!(blockers.contains(&table), "{table}: {blockers:?}");
    }
    assert_eq!(s.prune_session_clients().await.expect("prune"), 0);
    assert_eq!(
        s.prune_sessions(at(10_000)).await.expect("prune sessions"),
        2
    );
    assert_eq!(s.prune_session_clients().await.expect("prune"), 4);
    assert!(s
        .session_clients(&tid("acme"), "ses_00000000000000000000000001")
        .await
        .expect("list")
        .is_empty());
}
