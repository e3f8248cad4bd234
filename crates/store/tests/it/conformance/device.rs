//! Conformance cases for device sign-in (RFC 8628 device authorizations) and admin roles held
//! by users, each run against SQLite and PostgreSQL like the rest of the suite.

use std::sync::Arc;

use portcullis_core::admin::AdminRole;
use portcullis_core::device::DeviceStatus;

use super::{at, cid, sesid, tenants, tid, uid, with_postgres, with_sqlite};
use portcullis_store::*;

conformance!(
    device_authorizations_are_found_by_user_code_while_pending,
    a_decision_is_taken_once_and_not_after_expiry,
    polls_are_recorded_by_compare_and_swap,
    an_approved_device_code_is_used_exactly_once,
    racing_uses_of_one_device_code_yield_one_winner,
    expired_device_authorizations_are_pruned,
    user_admin_roles_are_set_replaced_listed_and_removed,
    device_state_and_user_roles_block_an_import,
);

const USER_1: &str = "usr_00000000000000000000000001";
const SID_1: &str = "ses_00000000000000000000000001";
/// Two users, `USER_A` listed first.
const USER_A: &str = "usr_0000000000000000000000000a";
const USER_B: &str = "usr_0000000000000000000000000b";

pub(super) fn device(d: u8, tenant: &str) -> DeviceAuthorizationRecord {
    DeviceAuthorizationRecord {
        device_digest: vec![d; 32],
        user_code_digest: vec![d.wrapping_add(100); 32],
        tenant: tid(tenant),
        client_id: cid("portcullis-cli"),
        scope: vec!["offline_access".into(), "openid".into()],
        status: DeviceStatus::Pending,
        created_at: at(1_000),
        expires_at: at(601_000),
        interval_secs: 5,
        last_polled_at: None,
        user_id: None,
        sid: None,
        auth_time: None,
        decided_at: None,
    }
}

pub(super) fn decision(approve: bool, when: i64) -> DeviceDecision {
    DeviceDecision {
        approve,
        user_id: uid(USER_1),
        sid: sesid(SID_1),
        auth_time: at(900),
        at: at(when),
    }
}

async fn device_authorizations_are_found_by_user_code_while_pending(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    let d = device(1, "acme");
    s.insert_device_authorization(&d).await.expect("insert");
    // Either digest again is a conflict: codes are unique while their rows live.
    assert!(matches!(
        s.insert_device_authorization(&d).await,
        Err(StoreError::Conflict)
    ));
    let mut same_user_code = device(2, "acme");
    same_user_code.user_code_digest = d.user_code_digest.clone();
    assert!(matches!(
        s.insert_device_authorization(&same_user_code).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        s.get_device_authorization(&d.device_digest)
            .await
            .expect("get"),
        Some(d.clone())
    );
    assert_eq!(
        s.find_pending_device_authorization(&d.user_code_digest, at(2_000))
            .await
            .expect("find"),
        Some(d.clone())
    );
    // Not after it expires, and not by an unknown code.
    assert_eq!(
        s.find_pending_device_authorization(&d.user_code_digest, at(601_000))
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        s.find_pending_device_authorization(&[9; 32], at(2_000))
            .await
            .expect("find"),
        None
    );
    assert_eq!(
        s.get_device_authorization(&[9; 32]).await.expect("get"),
        None
    );
    // A tenant that does not exist.
    assert!(s
        .insert_device_authorization(&device(3, "nope"))
        .await
        .is_err());
}

async fn a_decision_is_taken_once_and_not_after_expiry(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    let d = device(1, "acme");
    s.insert_device_authorization(&d).await.expect("insert");
    assert!(s
        .decide_device_authorization(&d.user_code_digest, &decision(true, 2_000))
        .await
        .expect("approve"));
    // Decided: a second decision (another tab, another node) does not take, and the code no
    // longer resolves on the page.
    assert!(!s
        .decide_device_authorization(&d.user_code_digest, &decision(false, 3_000))
        .await
        .expect("again"));
    assert_eq!(
        s.find_pending_device_authorization(&d.user_code_digest, at(3_000))
            .await
            .expect("find"),
        None
    );
    let got = s
        .get_device_authorization(&d.device_digest)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(got.status, DeviceStatus::Approved);
    assert_eq!(got.user_id, Some(uid(USER_1)));
    assert_eq!(got.sid, Some(sesid(SID_1)));
    assert_eq!(got.auth_time, Some(at(900)));
    assert_eq!(got.decided_at, Some(at(2_000)));

    let late = device(2, "acme");
    s.insert_device_authorization(&late).await.expect("insert");
    assert!(!s
        .decide_device_authorization(&late.user_code_digest, &decision(true, 601_000))
        .await
        .expect("expired"));
    let denied = device(3, "acme");
    s.insert_device_authorization(&denied)
        .await
        .expect("insert");
    assert!(s
        .decide_device_authorization(&denied.user_code_digest, &decision(false, 2_000))
        .await
        .expect("deny"));
    let got = s
        .get_device_authorization(&denied.device_digest)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(got.status, DeviceStatus::Denied);
}

async fn polls_are_recorded_by_compare_and_swap(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    let d = device(1, "acme");
    s.insert_device_authorization(&d).await.expect("insert");
    assert!(s
        .record_device_poll(&d.device_digest, None, at(2_000), 5)
        .await
        .expect("first poll"));
    // A poll that read the row before the first was recorded loses.
    assert!(!s
        .record_device_poll(&d.device_digest, None, at(2_001), 5)
        .await
        .expect("stale"));
    assert!(s
        .record_device_poll(&d.device_digest, Some(at(2_000)), at(3_000), 10)
        .await
        .expect("slow down"));
    let got = s
        .get_device_authorization(&d.device_digest)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(got.last_polled_at, Some(at(3_000)));
    assert_eq!(got.interval_secs, 10);
    assert!(!s
        .record_device_poll(&[9; 32], None, at(3_000), 5)
        .await
        .expect("unknown"));
}

async fn an_approved_device_code_is_used_exactly_once(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    let d = device(1, "acme");
    s.insert_device_authorization(&d).await.expect("insert");
    // Pending: nothing to use.
    assert!(!s
        .use_device_authorization(&d.device_digest, at(2_000))
        .await
        .expect("pending"));
    s.decide_device_authorization(&d.user_code_digest, &decision(true, 2_000))
        .await
        .expect("approve");
    assert!(s
        .use_device_authorization(&d.device_digest, at(3_000))
        .await
        .expect("use"));
    assert!(!s
        .use_device_authorization(&d.device_digest, at(3_001))
        .await
        .expect("reuse"));
    let got = s
        .get_device_authorization(&d.device_digest)
        .await
        .expect("get")
        .expect("row");
    assert_eq!(got.status, DeviceStatus::Used);
    // A denied or expired one is never used.
    let denied = device(2, "acme");
    s.insert_device_authorization(&denied)
        .await
        .expect("insert");
    s.decide_device_authorization(&denied.user_code_digest, &decision(false, 2_000))
        .await
        .expect("deny");
    assert!(!s
        .use_device_authorization(&denied.device_digest, at(3_000))
        .await
        .expect("denied"));
    let expired = device(3, "acme");
    s.insert_device_authorization(&expired)
        .await
        .expect("insert");
    s.decide_device_authorization(&expired.user_code_digest, &decision(true, 2_000))
        .await
        .expect("approve");
    assert!(!s
        .use_device_authorization(&expired.device_digest, at(601_000))
        .await
        .expect("expired"));
}

async fn racing_uses_of_one_device_code_yield_one_winner(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    let d = device(1, "acme");
    s.insert_device_authorization(&d).await.expect("insert");
    s.decide_device_authorization(&d.user_code_digest, &decision(true, 2_000))
        .await
        .expect("approve");
    let mut tasks = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        let digest = d.device_digest.clone();
        tasks.push(tokio::spawn(async move {
            s.use_device_authorization(&digest, at(3_000 + i))
                .await
                .expect("use")
        }));
    }
    let mut wins = 0;
    for t in tasks {
        if t.await.expect("join") {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}

async fn expired_device_authorizations_are_pruned(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    let a = device(1, "acme");
    let mut b = device(2, "acme");
    b.expires_at = at(900_000);
    s.insert_device_authorization(&a).await.expect("insert");
    s.insert_device_authorization(&b).await.expect("insert");
    assert_eq!(
        s.prune_device_authorizations(at(601_000))
            .await
            .expect("prune"),
        1
    );
    assert_eq!(
        s.get_device_authorization(&a.device_digest)
            .await
            .expect("get"),
        None
    );
    assert!(s
        .get_device_authorization(&b.device_digest)
        .await
        .expect("get")
        .is_some());
}

async fn user_admin_roles_are_set_replaced_listed_and_removed(s: Arc<dyn Store>) {
    tenants(&s, &["acme", "beta"]).await;
    let role = |tenant: &str, user: &str, role: AdminRole, when: i64| UserAdminRole {
        tenant: tid(tenant),
        user_id: uid(user),
        role,
        granted_at: at(when),
        granted_by: "admin:adm_1".into(),
    };
    s.put_user_admin_role(&role("acme", USER_B, AdminRole::Auditor, 1))
        .await
        .expect("put");
    s.put_user_admin_role(&role("acme", USER_A, AdminRole::TenantAdmin, 2))
        .await
        .expect("put");
    s.put_user_admin_role(&role("beta", USER_A, AdminRole::Auditor, 3))
        .await
        .expect("put");
    // Replaced, not added: one role per user.
    s.put_user_admin_role(&role("acme", USER_B, AdminRole::ApiKeyManager, 4))
        .await
        .expect("replace");
    assert_eq!(
        s.get_user_admin_role(&tid("acme"), USER_B)
            .await
            .expect("get"),
        Some(role("acme", USER_B, AdminRole::ApiKeyManager, 4))
    );
    let listed = s.list_user_admin_roles(&tid("acme")).await.expect("list");
    assert_eq!(
        listed,
        vec![
            role("acme", USER_A, AdminRole::TenantAdmin, 2),
            role("acme", USER_B, AdminRole::ApiKeyManager, 4),
        ]
    );
    // Per tenant.
    assert_eq!(
        s.get_user_admin_role(&tid("beta"), USER_A)
            .await
            .expect("get")
            .map(|r| r.role),
        Some(AdminRole::Auditor)
    );
    assert!(s
        .delete_user_admin_role(&tid("acme"), USER_A)
        .await
        .expect("delete"));
    assert!(!s
        .delete_user_admin_role(&tid("acme"), USER_A)
        .await
        .expect("again"));
    assert_eq!(
        s.get_user_admin_role(&tid("acme"), USER_A)
            .await
            .expect("get"),
        None
    );
    assert!(s
        .get_user_admin_role(&tid("beta"), USER_A)
        .await
        .expect("get")
        .is_some());
}

async fn device_state_and_user_roles_block_an_import(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    s.insert_device_authorization(&device(1, "acme"))
        .await
        .expect("insert");
    s.put_user_admin_role(&UserAdminRole {
        tenant: tid("acme"),
        user_id: uid(USER_A),
        role: AdminRole::Auditor,
        granted_at: at(1),
        granted_by: "admin:adm_1".into(),
    })
    .await
    .expect("put");
    let blockers = s.import_blockers().await.expect("blockers");
    assert!(blockers.contains(&"device_authorizations"), "{blockers:?}");
    assert!(blockers.contains(&"user_admin_roles"), "{blockers:?}");
}
