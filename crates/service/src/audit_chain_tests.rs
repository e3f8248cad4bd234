//! The service's chain operations on SQLite: checkpoints are signed by the active key and
//! verify; a forged checkpoint, an edit made directly in the database and a broken chain are
//! reported at their position; a broken chain is never pruned; a pruned chain still verifies.

use std::sync::Arc;

use portcullis_core::audit::{Action, Actor, AuditEvent, Outcome};
use portcullis_core::audit_chain::{hex, Break};
use portcullis_core::signing::SigningAlgorithm;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{ManualClock, Timestamp};
use portcullis_jose::SigningKeyPair;
use portcullis_store::{AuditChainStore, AuditCheckpoint, AuditStore, SqliteStore};

use super::*;
use crate::kek::{Kek, Keyring};
use crate::oauth::OAuthConfig;

const ISSUER: &str = "https://auth.example";

struct Rig {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: Arc<SqliteStore>,
    clock: Arc<ManualClock>,
    oauth: OAuthState,
}

async fn rig() -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let store = Arc::new(SqliteStore::open(&path).await.expect("open"));
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
    let dyn_clock: Arc<dyn Clock> = clock.clone();
    let ring = Keyring::new(Kek::from_bytes([9; 32]));
    let (keys, _) = crate::keys::load_or_create_active(
        store.as_ref(),
        &ring,
        &dyn_clock,
        SigningAlgorithm::ES256,
    )
    .await
    .expect("keys");
    let oauth = OAuthState::new(ISSUER.into(), &OAuthConfig::default(), &keys).expect("oauth");
    Rig {
        _dir: dir,
        path,
        store,
        clock,
        oauth,
    }
}

fn event(i: u32) -> AuditEvent {
    AuditEvent {
        id: format!("ev{i:06}"),
        occurred_at: Timestamp::from_secs(1_700_000_000 + i64::from(i)),
        tenant: TenantId::system(),
        actor: Actor::system(),
        credential_id: None,
        client_ip: None,
        user_agent: None,
        action: Action::TenantCreate,
        outcome: Outcome::Success,
        reason: None,
        request_id: None,
        target: Some(format!("t{i}")),
    }
}

impl Rig {
    async fn append(&self, range: std::ops::RangeInclusive<u32>) {
        let events: Vec<_> = range.map(event).collect();
        self.store
            .append_audit_events(&events)
            .await
            .expect("append");
    }

    async fn checkpoint(&self) -> Option<AuditCheckpoint> {
        checkpoint(self.store.as_ref(), self.clock.as_ref(), &self.oauth)
            .await
            .expect("checkpoint")
    }

    async fn verify(&self) -> VerifyReport {
        verify(self.store.as_ref(), ISSUER).await.expect("verify")
    }

    async fn raw(&self, sql: &str) {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", self.path.display()))
            .await
            .expect("raw");
        sqlx::query(sql).execute(&pool).await.expect(sql);
        pool.close().await;
    }
}

#[tokio::test]
async fn checkpoints_are_signed_and_an_intact_chain_verifies() {
    let r = rig().await;
    assert!(r.checkpoint().await.is_none(), "nothing chained yet");
    r.append(1..=5).await;
    let cp = r.checkpoint().await.expect("a checkpoint at the head");
    assert_eq!(cp.pos, 5);
    assert!(cp.signature.is_some() && cp.kid.is_some());
    assert!(r.checkpoint().await.is_none(), "the head did not move");
    r.append(6..=9).await;
    r.checkpoint().await.expect("second");
    let report = r.verify().await;
    assert!(report.ok, "{report:?}");
    assert_eq!(
        (
            report.checked,
            report.head_position,
            report.checkpoints,
            report.signed_checkpoints
        ),
        (9, 9, 2, 2)
    );
    assert!(report.message.contains("intact"), "{}", report.message);
}

#[tokio::test]
async fn an_edit_made_directly_in_sqlite_is_reported_at_its_position() {
    let r = rig().await;
    r.append(1..=8).await;
    r.checkpoint().await.expect("cp");
    r.raw("UPDATE audit_events SET actor = 'admin:someone_else' WHERE chain_pos = 3")
        .await;
    let report = r.verify().await;
    assert!(!report.ok);
    let b = report.broken.expect("broken");
    assert_eq!((b.position, b.kind), (3, Break::Altered));
    assert!(report.message.contains("position 3"), "{}", report.message);
}

#[tokio::test]
async fn a_checkpoint_signed_by_another_key_is_forged() {
    let r = rig().await;
    r.append(1..=6).await;
    let (pos, hash) = r.store.audit_chain_head().await.expect("head");
    let (_, other) = SigningKeyPair::generate(portcullis_jose::Alg::ES256).expect("key");
    let kid = r.oauth.signer().expect("signer").kid().to_owned();
    let forged = portcullis_jose::profile::audit_checkpoint::signer(other, &kid)
        .sign(&portcullis_jose::profile::audit_checkpoint::Claims {
            iss: ISSUER.into(),
            pos,
            hash: hex(&hash),
            iat: 1,
        })
        .expect("sign");
    let cp = AuditCheckpoint {
        pos,
        hash,
        created_at: r.clock.now(),
        kid: Some(kid),
        signature: Some(forged),
    };
    assert!(r.store.insert_audit_checkpoint(&cp).await.expect("insert"));
    let report = r.verify().await;
    let b = report.broken.expect("broken");
    assert_eq!((b.position, b.kind), (6, Break::CheckpointForged));
}

#[tokio::test]
async fn a_broken_chain_is_never_pruned_and_a_whole_one_prunes_to_its_checkpoint() {
    let r = rig().await;
    r.append(1..=4).await;
    r.checkpoint().await.expect("cp at 4");
    r.append(5..=8).await;
    r.clock.advance(Duration::from_secs(86_400 * 2));
    // Break it: an unsigned checkpoint claiming another hash at 8.
    let bad = AuditCheckpoint {
        pos: 8,
        hash: vec![7; 32],
        created_at: r.clock.now(),
        kid: None,
        signature: None,
    };
    r.store.insert_audit_checkpoint(&bad).await.expect("bad cp");
    let refused = prune(
        r.store.as_ref(),
        r.clock.as_ref(),
        ISSUER,
        Duration::from_secs(86_400),
    )
    .await
    .expect("prune");
    let report = refused.expect_err("not pruned");
    let b = report.broken.expect("broken");
    assert_eq!(
        (b.position, b.kind, b.from),
        (8, Break::CheckpointMismatch, Some(5))
    );
    assert_eq!(r.store.audit_chain_first().await.expect("first"), Some(1));

    // A whole chain: prune up to the checkpoint older than the retention, then still verify.
    let r = rig().await;
    r.append(1..=4).await;
    r.checkpoint().await.expect("cp at 4");
    r.clock.advance(Duration::from_secs(86_400 * 2));
    r.append(5..=8).await;
    r.checkpoint().await.expect("cp at 8");
    let pruned = prune(
        r.store.as_ref(),
        r.clock.as_ref(),
        ISSUER,
        Duration::from_secs(86_400),
    )
    .await
    .expect("prune")
    .expect("verified")
    .expect("pruned");
    assert_eq!(pruned.up_to, 4);
    let report = r.verify().await;
    assert!(report.ok, "{report:?}");
    assert_eq!((report.first_position, report.checked), (5, 4));
}
