//! The audit chain on both backends: appends are chained in order and survive a retried batch;
//! an edit, a deletion or a reordering made directly in the database (past the store) is found
//! at its position; the prune keeps what remains checkable from its checkpoint; the export read
//! is oldest first and tenant scoped.

use std::sync::Arc;

use portcullis_core::audit::{Action, Actor, AuditEvent, Outcome};
use portcullis_core::audit_chain::{Break, Broken, Hash, Verifier, GENESIS};
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_store::*;

use crate::conformance::Raw;

/// Runs `case` on SQLite, then on PostgreSQL when it is configured, each with the raw handle
/// for edits the store would never make (the conformance suite's set-up).
async fn with_both<F, Fut>(name: &str, case: F)
where
    F: Fn(Arc<dyn Store>, Raw) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    crate::conformance::with_sqlite_raw(&case).await;
    crate::conformance::with_postgres_raw(name, &case).await;
}

fn event(i: u32, tenant: &str) -> AuditEvent {
    AuditEvent {
        id: format!("ev{i:06}"),
        occurred_at: Timestamp::from_secs(1_700_000_000 + i64::from(i)),
        tenant: TenantId::parse(tenant).expect("tenant"),
        actor: Actor::system(),
        credential_id: None,
        client_ip: Some("192.0.2.1".into()),
        user_agent: None,
        action: Action::TenantCreate,
        outcome: Outcome::Success,
        reason: None,
        request_id: None,
        target: Some(format!("t{i}")),
    }
}

/// The service's verification, in small: from the first stored position (seeded by the
/// checkpoint before it after a prune), page by page, against every checkpoint.
async fn verify(s: &Arc<dyn Store>) -> Result<u64, Broken> {
    let (head, _) = s.audit_chain_head().await.expect("head");
    let cps = s.audit_checkpoints().await.expect("checkpoints");
    let hash = |h: &[u8]| -> Hash { h.try_into().expect("32 bytes") };
    let first = s
        .audit_chain_first()
        .await
        .expect("first")
        .unwrap_or(head + 1);
    let (start, seed) = if first <= 1 {
        (0, GENESIS)
    } else {
        match cps.iter().find(|c| c.pos == first - 1) {
            Some(c) => (c.pos, hash(&c.hash)),
            None => {
                return Err(Broken {
                    position: 1,
                    kind: Break::Missing,
                    from: None,
                })
            }
        }
    };
    let mut v = Verifier::new(start, seed, cps.iter().map(|c| (c.pos, hash(&c.hash))));
    let mut after = start;
    loop {
        let page = s.audit_chain_events(after, 3).await.expect("page");
        let Some(last) = page.last() else { break };
        after = last.pos;
        if !page.iter().all(|c| v.feed(c.pos, &c.hash, &c.event)) {
            break;
        }
    }
    v.finish(head)
}

async fn append(s: &Arc<dyn Store>, range: std::ops::RangeInclusive<u32>) {
    let events: Vec<_> = range.map(|i| event(i, "system")).collect();
    s.append_audit_events(&events).await.expect("append");
}

#[tokio::test]
async fn appends_are_chained_in_order_and_a_retried_batch_changes_nothing() {
    with_both("chained", |s, _raw| async move {
        assert_eq!(s.audit_chain_head().await.expect("head"), (0, vec![0; 32]));
        append(&s, 1..=5).await;
        append(&s, 6..=10).await;
        // The same batch again (its first commit was reported lost), with one new event.
        let retry: Vec<_> = (9..=11).map(|i| event(i, "system")).collect();
        s.append_audit_events(&retry).await.expect("retry");
        assert_eq!(s.audit_chain_head().await.expect("head").0, 11);
        assert_eq!(verify(&s).await, Ok(11));
        let page = s.audit_chain_events(0, 100).await.expect("events");
        let ids: Vec<_> = page.iter().map(|c| c.event.id.as_str()).collect();
        assert_eq!(ids.first(), Some(&"ev000001"));
        assert_eq!(ids.last(), Some(&"ev000011"));
        assert_eq!(s.count_unchained_audit_events().await.expect("n"), 0);
    })
    .await;
}

#[tokio::test]
async fn an_edit_made_directly_in_the_database_is_found_at_its_position() {
    with_both("edit", |s, raw| async move {
        append(&s, 1..=10).await;
        raw.exec("UPDATE audit_events SET outcome = 'failure' WHERE chain_pos = 6")
            .await;
        let b = verify(&s).await.expect_err("edited");
        assert_eq!((b.position, b.kind), (6, Break::Altered));
    })
    .await;
}

#[tokio::test]
async fn a_deletion_made_directly_in_the_database_is_found_at_its_position() {
    with_both("delete", |s, raw| async move {
        append(&s, 1..=10).await;
        raw.exec("DELETE FROM audit_events WHERE chain_pos = 4")
            .await;
        let b = verify(&s).await.expect_err("deleted");
        assert_eq!((b.position, b.kind), (4, Break::Missing));
        // The newest one deleted: the head still counts it.
        raw.exec("DELETE FROM audit_events WHERE chain_pos >= 4")
            .await;
        let b = verify(&s).await.expect_err("tail deleted");
        assert_eq!((b.position, b.kind), (4, Break::Missing));
    })
    .await;
}

#[tokio::test]
async fn a_reordering_made_directly_in_the_database_is_found_at_its_position() {
    with_both("reorder", |s, raw| async move {
        append(&s, 1..=10).await;
        // Swap two rows' places in the chain (positions and hashes travel with the rows).
        raw.exec("UPDATE audit_events SET chain_pos = -3 WHERE chain_pos = 3")
            .await;
        raw.exec("UPDATE audit_events SET chain_pos = 3 WHERE chain_pos = 7")
            .await;
        raw.exec("UPDATE audit_events SET chain_pos = 7 WHERE chain_pos = -3")
            .await;
        let b = verify(&s).await.expect_err("reordered");
        assert_eq!((b.position, b.kind), (3, Break::Altered));
    })
    .await;
}

#[tokio::test]
async fn a_prune_deletes_up_to_a_checkpoint_and_the_rest_still_verifies() {
    with_both("prune", |s, raw| async move {
        append(&s, 1..=10).await;
        // No checkpoint yet: nothing is pruned.
        assert_eq!(
            s.prune_audit_events(4, Timestamp::from_secs(2_000_000_000))
                .await
                .expect("prune"),
            None
        );
        let page = s.audit_chain_events(0, 100).await.expect("events");
        for pos in [4, 8] {
            let cp = AuditCheckpoint {
                pos,
                hash: page[pos as usize - 1].hash.clone(),
                created_at: Timestamp::from_secs(1_700_000_000 + pos),
                kid: None,
                signature: None,
            };
            assert!(s.insert_audit_checkpoint(&cp).await.expect("cp"));
            assert!(!s.insert_audit_checkpoint(&cp).await.expect("cp again"));
        }
        append(&s, 11..=12).await;
        // The checkpoint at 8 is not old enough, and there is none at 6: nothing is pruned.
        for at in [8, 6] {
            assert_eq!(
                s.prune_audit_events(at, Timestamp::from_secs(1_700_000_005))
                    .await
                    .expect("prune"),
                None
            );
        }
        assert_eq!(s.audit_chain_first().await.expect("first"), Some(1));
        // Re-signing swaps only a checkpoint the named key still signs.
        assert!(!s
            .re_sign_audit_checkpoint(4, "old", "new", "sig")
            .await
            .expect("re-sign"));
        raw.exec("UPDATE audit_checkpoints SET kid = 'old', signature = 'a' WHERE pos = 4")
            .await;
        assert!(s
            .re_sign_audit_checkpoint(4, "old", "new", "b")
            .await
            .expect("re-sign"));
        let cps = s.audit_checkpoints().await.expect("checkpoints");
        assert_eq!(
            (cps[0].kid.as_deref(), cps[0].signature.as_deref()),
            (Some("new"), Some("b"))
        );
        assert_eq!(
            (cps[1].kid.as_deref(), cps[1].signature.as_deref()),
            (None, None)
        );
        let pruned = s
            .prune_audit_events(4, Timestamp::from_secs(1_700_000_005))
            .await
            .expect("prune")
            .expect("a checkpoint is old enough");
        assert_eq!(
            pruned,
            AuditPrune {
                up_to: 4,
                deleted: 4
            }
        );
        assert_eq!(s.audit_chain_first().await.expect("first"), Some(5));
        assert_eq!(verify(&s).await, Ok(8));
        // A rewritten tail (event and every hash after it) is caught by the checkpoint at 8.
        raw.exec("UPDATE audit_events SET target = 'evil' WHERE chain_pos = 6")
            .await;
        let b = verify(&s).await.expect_err("edited after prune");
        assert_eq!((b.position, b.kind), (6, Break::Altered));
    })
    .await;
}

#[tokio::test]
async fn the_export_read_is_oldest_first_tenant_scoped_and_resumable() {
    with_both("export", |s, _raw| async move {
        let events: Vec<_> = (1..=6)
            .map(|i| event(i, if i % 2 == 0 { "acme" } else { "globex" }))
            .collect();
        s.append_audit_events(&events).await.expect("append");
        let q = |tenant: Option<&str>, since: Option<i64>, after_seq: i64| AuditExportQuery {
            tenant: tenant.map(|t| TenantId::parse(t).expect("t")),
            since: since.map(Timestamp::from_secs),
            after_seq,
            limit: 2,
        };
        let first = s
            .export_audit_events(&q(Some("acme"), None, 0))
            .await
            .expect("1");
        let ids: Vec<_> = first.iter().map(|(_, e)| e.id.as_str()).collect();
        assert_eq!(ids, ["ev000002", "ev000004"]);
        let next = s
            .export_audit_events(&q(Some("acme"), None, first[1].0))
            .await
            .expect("2");
        assert_eq!(next.len(), 1);
        assert_eq!(next[0].1.id, "ev000006");
        let since = s
            .export_audit_events(&q(None, Some(1_700_000_005), 0))
            .await
            .expect("since");
        let ids: Vec<_> = since.iter().map(|(_, e)| e.id.as_str()).collect();
        assert_eq!(ids, ["ev000005", "ev000006"]);
    })
    .await;
}
