//! Conformance cases for DPoP (RFC 9449): the proof replay table and a refresh family's bound
//! key, each run against SQLite and PostgreSQL like the rest of the suite.

use std::sync::Arc;

use super::{at, cid, famid, tenants, tid, uid, with_postgres, with_sqlite};
use portcullis_store::*;

conformance!(
    a_proof_id_is_used_once_per_key_until_it_expires,
    racing_uses_of_one_proof_yield_one_winner,
    a_refresh_family_keeps_its_dpop_key,
    dpop_proof_ids_block_an_import,
    a_tenants_oauth_policy_round_trips_and_needs_its_tenant,
);

const K1: &str = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
const K2: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";

async fn a_proof_id_is_used_once_per_key_until_it_expires(s: Arc<dyn Store>) {
    assert!(s
        .record_dpop_jti(K1, "j1", at(10_000), at(1_000))
        .await
        .expect("first"));
    assert!(!s
        .record_dpop_jti(K1, "j1", at(10_000), at(2_000))
        .await
        .expect("replay"));
    // Per key: the same id under another key is another proof.
    assert!(s
        .record_dpop_jti(K2, "j1", at(10_000), at(2_000))
        .await
        .expect("other key"));
    // Refused up to expiry, accepted again only once expired.
    assert!(!s
        .record_dpop_jti(K1, "j1", at(20_000), at(9_999))
        .await
        .expect("late replay"));
    assert!(s
        .record_dpop_jti(K1, "j1", at(20_000), at(10_000))
        .await
        .expect("expired"));
    // Pruning removes what has expired, and only that.
    assert!(s
        .record_dpop_jti(K1, "j2", at(5_000), at(1_000))
        .await
        .expect("j2"));
    assert_eq!(s.prune_dpop_jtis(at(10_001)).await.expect("prune"), 2);
    assert!(!s
        .record_dpop_jti(K1, "j1", at(30_000), at(10_002))
        .await
        .expect("kept"));
}

async fn racing_uses_of_one_proof_yield_one_winner(s: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.record_dpop_jti(K1, "race", at(10_000), at(1_000)).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        if t.await.expect("join").expect("record") {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}

fn family(id: &str, jkt: Option<&str>) -> RefreshFamilyRecord {
    RefreshFamilyRecord {
        id: famid(id),
        tenant: tid("acme"),
        client_id: cid("cl_spa"),
        user_id: uid("usr_00000000000000000000000001"),
        sid: None,
        scope: vec!["openid".into(), "offline_access".into()],
        auth_time: at(100),
        acr: None,
        amr: vec!["pwd".into()],
        created_at: at(100),
        idle_expires_at: at(5_000),
        absolute_expires_at: at(50_000),
        revoked_at: None,
        revoked_reason: None,
        dpop_jkt: jkt.map(Into::into),
        cert_x5t: jkt.map(Into::into),
    }
}

fn first_token(digest: u8, family: &str) -> RefreshTokenRecord {
    RefreshTokenRecord {
        digest: vec![digest; 32],
        family_id: famid(family),
        generation: 0,
        created_at: at(100),
        rotated_at: None,
        successor_digest: None,
    }
}

async fn a_refresh_family_keeps_its_dpop_key(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    for (id, digest, jkt) in [
        ("rtf_00000000000000000000000000000b0d", 1, Some(K1)),
        ("rtf_0000000000000000000000000000f1ee", 2, None),
    ] {
        let f = family(id, jkt);
        s.create_refresh_family(&f, &first_token(digest, id))
            .await
            .expect("family");
        let back = s.get_refresh_family(id).await.expect("get").expect("found");
        assert_eq!(back, f);
        assert_eq!(back.dpop_jkt.as_deref(), jkt);
        assert_eq!(back.cert_x5t.as_deref(), jkt, "the certificate binding too");
    }
}

async fn dpop_proof_ids_block_an_import(s: Arc<dyn Store>) {
    use portcullis_store::export;
    assert!(s
        .record_dpop_jti(K1, "j1", at(50_000), at(1_000))
        .await
        .expect("jti"));
    // Not exported (it lives minutes), but an import into a database holding any is refused.
    let mut file = Vec::new();
    export::write_export(s.as_ref(), &mut file, at(1), 1_000, &mut |_| {})
        .await
        .expect("write");
    let text = String::from_utf8(file).expect("utf-8");
    assert!(!text.contains(K1), "proof ids are not exported");
    let blockers = s.import_blockers().await.expect("blockers");
    assert!(blockers.contains(&"dpop_proof_jtis"), "{blockers:?}");
}

async fn a_tenants_oauth_policy_round_trips_and_needs_its_tenant(s: Arc<dyn Store>) {
    tenants(&s, &["acme", "globex"]).await;
    assert_eq!(s.get_oauth_policy(&tid("acme")).await.expect("get"), None);
    s.put_oauth_policy(&tid("acme"), true, at(1))
        .await
        .expect("put");
    assert_eq!(
        s.get_oauth_policy(&tid("acme")).await.expect("get"),
        Some(OAuthPolicyRecord {
            require_pushed_requests: true,
            updated_at: at(1),
        })
    );
    assert_eq!(
        s.get_oauth_policy(&tid("globex")).await.expect("get"),
        None,
        "per tenant"
    );
    s.put_oauth_policy(&tid("acme"), false, at(2))
        .await
        .expect("replace");
    assert_eq!(
        s.get_oauth_policy(&tid("acme")).await.expect("get"),
        Some(OAuthPolicyRecord {
            require_pushed_requests: false,
            updated_at: at(2),
        })
    );
    let err = s
        .put_oauth_policy(&tid("nobody"), true, at(3))
        .await
        .expect_err("unknown tenant");
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}
