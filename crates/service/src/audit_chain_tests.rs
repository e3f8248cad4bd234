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
use portcullis_store::{
    AuditChainStore, AuditCheckpoint, AuditStore, SigningKeyStore, SqliteStore,
};

use super::*;
use crate::kek::{Kek, Keyring};
use crate::oauth::OAuthConfig;

const ISSUER: &str = "https://auth.example";

struct Rig {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    store: Arc<SqliteStore>,
    clock: Arc<ManualClock>,
    ring: Keyring,
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
        ring,
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

    /// [`prune`] with a retention of one day.
    async fn prune_day(&self) -> Result<Option<portcullis_store::AuditPrune>, VerifyReport> {
        prune(
            self.store.as_ref(),
            self.clock.as_ref(),
            ISSUER,
            Duration::from_secs(86_400),
        )
        .await
        .expect("prune")
    }

    /// The token service after a new active key was made (the old one revoked before).
    async fn with_new_key(&self) -> OAuthState {
        let dyn_clock: Arc<dyn Clock> = self.clock.clone();
        let (keys, _) = crate::keys::load_or_create_active(
            self.store.as_ref(),
            &self.ring,
            &dyn_clock,
            SigningAlgorithm::ES256,
        )
        .await
        .expect("new key");
        OAuthState::new(ISSUER.into(), &OAuthConfig::default(), &keys).expect("oauth")
    }

    /// A checkpoint at the head as someone with write access to the database could add it.
    async fn insert_at_head(&self, kid: Option<String>, signature: Option<String>) -> i64 {
        let (pos, hash) = self.store.audit_chain_head().await.expect("head");
        let cp = AuditCheckpoint {
            pos,
            hash,
            created_at: self.clock.now(),
            kid,
            signature,
        };
        assert!(self
            .store
            .insert_audit_checkpoint(&cp)
            .await
            .expect("insert"));
        pos
    }

    /// Signs `pos` and `hash` with a key this installation never had, under `kid`.
    fn foreign_signature(&self, kid: &str, pos: i64, hash: &[u8]) -> String {
        let (_, other) = SigningKeyPair::generate(portcullis_jose::Alg::ES256).expect("key");
        portcullis_jose::profile::audit_checkpoint::signer(other, kid)
            .sign(&portcullis_jose::profile::audit_checkpoint::Claims {
                iss: ISSUER.into(),
                pos,
                hash: hex(hash),
                iat: 1,
            })
            .expect("sign")
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
    let kid = r.oauth.signer().expect("signer").kid().to_owned();
    let forged = r.foreign_signature(&kid, pos, &hash);
    r.insert_at_head(Some(kid), Some(forged)).await;
    let report = r.verify().await;
    let b = report.broken.expect("broken");
    assert_eq!((b.position, b.kind), (6, Break::CheckpointForged));
}

#[tokio::test]
async fn a_checkpoint_without_a_signature_or_with_an_unknown_key_is_forged_not_an_anchor() {
    // Stripped signature: the hash is right, but anyone could have written it.
    let r = rig().await;
    r.append(1..=5).await;
    r.insert_at_head(None, None).await;
    let report = r.verify().await;
    assert_eq!(report.signed_checkpoints, 0);
    let b = report.broken.expect("an unsigned checkpoint is a break");
    assert_eq!((b.position, b.kind), (5, Break::CheckpointForged));

    // A key id this installation never had.
    let r = rig().await;
    r.append(1..=5).await;
    let (pos, hash) = r.store.audit_chain_head().await.expect("head");
    let sig = r.foreign_signature("attacker-key", pos, &hash);
    r.insert_at_head(Some("attacker-key".into()), Some(sig))
        .await;
    let b = r.verify().await.broken.expect("an unknown key is a break");
    assert_eq!((b.position, b.kind), (5, Break::CheckpointForged));

    // A genuine signature moved onto a checkpoint at another position.
    let r = rig().await;
    r.append(1..=3).await;
    let genuine = r.checkpoint().await.expect("cp at 3");
    r.append(4..=5).await;
    r.insert_at_head(genuine.kid, genuine.signature).await;
    let b = r.verify().await.broken.expect("claims of another position");
    assert_eq!((b.position, b.kind), (5, Break::CheckpointForged));
}

#[tokio::test]
async fn events_deleted_from_the_start_behind_an_unsigned_checkpoint_are_reported() {
    // Deleting the oldest events and planting an unsigned checkpoint with the right hash where
    // they end used to pass for a prune. Only a signed checkpoint may seed what remains.
    let r = rig().await;
    r.append(1..=6).await;
    let planted = r.insert_at_head(None, None).await;
    r.append(7..=9).await;
    r.checkpoint().await.expect("a genuine checkpoint at 9");
    r.raw(&format!(
        "DELETE FROM audit_events WHERE chain_pos <= {planted}"
    ))
    .await;
    let report = r.verify().await;
    assert!(!report.ok);
    let b = report.broken.clone().expect("broken");
    assert_eq!((b.position, b.kind), (1, Break::Missing), "{report:?}");
    // And such a chain is never pruned.
    r.clock.advance(Duration::from_secs(86_400 * 2));
    let refused = r.prune_day().await;
    assert!(refused.is_err());
}

#[tokio::test]
async fn no_checkpoint_is_recorded_without_a_signer() {
    let r = rig().await;
    r.append(1..=3).await;
    let unsigned = OAuthState::new(
        ISSUER.into(),
        &OAuthConfig::default(),
        &crate::keys::KeySet {
            keys: vec![],
            primary: SigningAlgorithm::ES256,
        },
    )
    .expect("oauth");
    let none = checkpoint(r.store.as_ref(), r.clock.as_ref(), &unsigned)
        .await
        .expect("checkpoint");
    assert!(none.is_none());
    assert!(r.store.audit_checkpoints().await.expect("cps").is_empty());
}

#[tokio::test]
async fn a_revoked_keys_checkpoints_stop_anchoring_until_re_signed_with_the_new_key() {
    let r = rig().await;
    r.append(1..=4).await;
    r.checkpoint().await.expect("cp at 4");
    r.append(5..=8).await;
    r.checkpoint().await.expect("cp at 8");
    let old = r.oauth.signer().expect("signer").kid().to_owned();
    r.store
        .revoke_signing_key(&old, r.clock.now())
        .await
        .expect("revoke")
        .expect("was stored");
    // Validly signed by a key revoked since: neither an anchor nor a break.
    let report = r.verify().await;
    assert!(report.ok, "{report:?}");
    assert_eq!(
        (report.signed_checkpoints, report.revoked_key_checkpoints),
        (0, 2)
    );
    // Not an anchor: a rewrite before it is no longer caught by it, and nothing is pruned up to it.
    r.clock.advance(Duration::from_secs(86_400 * 2));
    let nothing = r.prune_day().await.expect("verified");
    assert_eq!(nothing, None);

    // A new active key re-signs them after checking them against the events.
    let oauth = r.with_new_key().await;
    assert_ne!(oauth.signer().expect("signer").kid(), old);
    let n = re_sign(r.store.as_ref(), r.clock.as_ref(), &oauth, &old)
        .await
        .expect("re-sign")
        .expect("verified");
    assert_eq!(n, 2);
    let report = r.verify().await;
    assert!(report.ok, "{report:?}");
    assert_eq!(
        (report.signed_checkpoints, report.revoked_key_checkpoints),
        (2, 0)
    );
    // Anchors again: the chain prunes to the re-signed checkpoint at 8 and still verifies.
    let pruned = r.prune_day().await.expect("verified").expect("pruned");
    assert_eq!(pruned.up_to, 8);
    assert!(r.verify().await.ok);
}

#[tokio::test]
async fn a_revoked_keys_checkpoints_that_disagree_with_the_events_are_not_re_signed() {
    let r = rig().await;
    r.append(1..=4).await;
    r.checkpoint().await.expect("cp at 4");
    let old = r.oauth.signer().expect("signer").kid().to_owned();
    r.store
        .revoke_signing_key(&old, r.clock.now())
        .await
        .expect("revoke");
    // An event edited after the revocation: the chain does not verify, so nothing is vouched
    // for with the new key.
    r.raw("UPDATE audit_events SET target = 'evil' WHERE chain_pos = 2")
        .await;
    let oauth = r.with_new_key().await;
    let refused = re_sign(r.store.as_ref(), r.clock.as_ref(), &oauth, &old)
        .await
        .expect("re-sign")
        .expect_err("the chain does not verify");
    assert!(!refused.ok);
    let cps = r.store.audit_checkpoints().await.expect("cps");
    assert_eq!(cps[0].kid.as_deref(), Some(old.as_str()), "left as it was");
}

#[tokio::test]
async fn a_broken_chain_is_never_pruned_and_a_whole_one_prunes_to_its_checkpoint() {
    let r = rig().await;
    r.append(1..=4).await;
    r.checkpoint().await.expect("cp at 4");
    r.append(5..=8).await;
    r.clock.advance(Duration::from_secs(86_400 * 2));
    // Break it: a signed checkpoint at 8 that the events do not hash to (as if they were
    // rewritten after it was signed).
    let signer = r.oauth.signer().expect("signer");
    let claims = portcullis_jose::profile::audit_checkpoint::Claims {
        iss: ISSUER.into(),
        pos: 8,
        hash: hex(&[7; 32]),
        iat: 1,
    };
    let bad = AuditCheckpoint {
        pos: 8,
        hash: vec![7; 32],
        created_at: r.clock.now(),
        kid: Some(signer.kid().to_owned()),
        signature: Some(signer.sign_checkpoint(&claims).expect("sign")),
    };
    r.store.insert_audit_checkpoint(&bad).await.expect("bad cp");
    let refused = r.prune_day().await;
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
    let pruned = r.prune_day().await.expect("verified").expect("pruned");
    assert_eq!(pruned.up_to, 4);
    let report = r.verify().await;
    assert!(report.ok, "{report:?}");
    assert_eq!((report.first_position, report.checked), (5, 4));
}
