//! The audit chain as the service runs it: verification of the whole stored chain (for
//! `portcullis audit verify` and `GET /admin/v1/audit/verify`), the checkpointer that signs the
//! chain head with the installation's signing key every `audit.checkpoint_interval_secs`, and
//! the retention prune, which deletes only after the chain verified and only up to a
//! checkpoint, so what remains stays checkable.
//!
//! The rules themselves (the link, what counts as broken) are `portcullis_core::audit_chain`;
//! the signature profile is `portcullis_jose::profile::audit_checkpoint`. This module must never
//! write to a chained event, and must never prune a chain that does not verify.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::audit_chain::{hex, Break, Broken, Hash, Verifier, GENESIS};
use portcullis_core::signing::KeyState;
use portcullis_core::time::Clock;
use portcullis_jose::profile::audit_checkpoint;
use portcullis_jose::Alg;
use portcullis_store::{AuditCheckpoint, Store, StoreError};
use serde::Serialize;
use tokio::task::JoinHandle;

use crate::oauth::OAuthState;

/// Chained events read per query while verifying.
const PAGE: u32 = 10_000;

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    /// The chain verified from its first stored position to the head.
    pub ok: bool,
    /// Events whose hash was recomputed and matched.
    pub checked: u64,
    /// The first position stored (after a prune, the one after its checkpoint).
    pub first_position: i64,
    /// The head: the last position written.
    pub head_position: i64,
    pub checkpoints: usize,
    /// Checkpoints whose signature verified under a stored, unrevoked signing key.
    pub signed_checkpoints: usize,
    /// Events written before the chain existed (not covered).
    pub unchained_events: u64,
    /// The first broken position and how, when not `ok`.
    pub broken: Option<Broken>,
    /// One line for people.
    pub message: String,
}

/// Verifies the stored chain: every event from the first stored position to the head against
/// its stored hash and every checkpoint, and every checkpoint's signature.
pub async fn verify(store: &dyn Store, issuer: &str) -> Result<VerifyReport, StoreError> {
    let (head, _) = store.audit_chain_head().await?;
    let checkpoints = store.audit_checkpoints().await?;
    let unchained = store.count_unchained_audit_events().await?;
    let keys = checkpoint_keys(store).await?;
    let mut signed = 0;
    let mut forged: Option<i64> = None;
    let mut trusted: Vec<(i64, Hash)> = Vec::with_capacity(checkpoints.len());
    for cp in &checkpoints {
        let Ok(hash) = Hash::try_from(cp.hash.as_slice()) else {
            forged.get_or_insert(cp.pos);
            continue;
        };
        if let Some(sig) = &cp.signature {
            match audit_checkpoint::verify(sig, issuer, &Alg::SIGNING, &keys) {
                Ok(v) if v.pos == cp.pos && v.hash == hex(&hash) => signed += 1,
                // Signed by a key no longer stored or revoked: the hash still counts, unsigned.
                Err(portcullis_jose::JoseError::UnknownKid) => {}
                _ => {
                    forged.get_or_insert(cp.pos);
                }
            }
        }
        trusted.push((cp.pos, hash));
    }
    let first = store.audit_chain_first().await?.unwrap_or(head + 1);
    let seed = if first <= 1 {
        Some((0, GENESIS))
    } else {
        trusted.iter().find(|(p, _)| *p == first - 1).copied()
    };
    let result = match seed {
        // Events deleted from the start without the prune's checkpoint.
        None => Err(Broken {
            position: trusted
                .iter()
                .map(|(p, _)| p + 1)
                .filter(|p| *p < first)
                .max()
                .unwrap_or(1),
            kind: Break::Missing,
            from: None,
        }),
        Some((start, hash)) => walk(store, start, hash, &trusted, head).await?,
    };
    let broken = match (result.as_ref().err(), forged) {
        (Some(b), Some(f)) if f < b.position => Some(forged_at(f)),
        (Some(b), _) => Some(b.clone()),
        (None, Some(f)) => Some(forged_at(f)),
        (None, None) => None,
    };
    let checked = result.unwrap_or_default();
    let message = match &broken {
        None => format!(
            "audit chain intact: {checked} events, positions {first} to {head}, {} checkpoints ({signed} signed)",
            checkpoints.len()
        ),
        Some(b) => format!("audit chain broken: {b}"),
    };
    Ok(VerifyReport {
        ok: broken.is_none(),
        checked,
        first_position: first.min(head + 1),
        head_position: head,
        checkpoints: checkpoints.len(),
        signed_checkpoints: signed,
        unchained_events: unchained,
        broken,
        message,
    })
}

fn forged_at(pos: i64) -> Broken {
    Broken {
        position: pos,
        kind: Break::CheckpointForged,
        from: None,
    }
}

async fn walk(
    store: &dyn Store,
    start: i64,
    seed: Hash,
    checkpoints: &[(i64, Hash)],
    head: i64,
) -> Result<Result<u64, Broken>, StoreError> {
    let mut v = Verifier::new(start, seed, checkpoints.iter().copied());
    let mut after = start;
    loop {
        let page = store.audit_chain_events(after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.pos;
        if !page.iter().all(|c| v.feed(c.pos, &c.hash, &c.event)) {
            break;
        }
    }
    Ok(v.finish(head))
}

/// Every stored signing key not revoked (retired keys too: old checkpoints stay checkable).
async fn checkpoint_keys(store: &dyn Store) -> Result<portcullis_jose::KeySet, StoreError> {
    let jwks: Vec<serde_json::Value> = store
        .list_signing_keys()
        .await?
        .iter()
        .filter(|k| k.state != KeyState::Revoked)
        .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
        .collect();
    Ok(
        portcullis_jose::parse_jwk_set(&serde_json::json!({ "keys": jwks }), &Alg::SIGNING)
            .unwrap_or_default(),
    )
}

/// Records a checkpoint at the chain head, signed if a signer is available; `None` if the
/// head has not moved since the last one (or nothing is chained yet).
pub async fn checkpoint(
    store: &dyn Store,
    clock: &dyn Clock,
    oauth: &OAuthState,
) -> Result<Option<AuditCheckpoint>, StoreError> {
    let (pos, hash) = store.audit_chain_head().await?;
    if pos == 0 {
        return Ok(None);
    }
    let now = clock.now();
    let (kid, signature) = match oauth.signer() {
        Some(signer) => {
            let claims = audit_checkpoint::Claims {
                iss: oauth.issuer.clone(),
                pos,
                hash: hex(&hash),
                iat: now.as_secs(),
            };
            match signer.sign_checkpoint(&claims) {
                Ok(jws) => (Some(signer.kid().to_owned()), Some(jws)),
                Err(e) => {
                    tracing::warn!(error = %e, "could not sign an audit checkpoint; stored unsigned");
                    (None, None)
                }
            }
        }
        None => (None, None),
    };
    let cp = AuditCheckpoint {
        pos,
        hash,
        created_at: now,
        kid,
        signature,
    };
    Ok(store.insert_audit_checkpoint(&cp).await?.then_some(cp))
}

/// Verifies, then prunes events older than `retention` up to the newest checkpoint before the
/// cut-off. A chain that does not verify is left whole (it is evidence) and reported.
pub async fn prune(
    store: &dyn Store,
    clock: &dyn Clock,
    issuer: &str,
    retention: Duration,
) -> Result<Result<Option<portcullis_store::AuditPrune>, VerifyReport>, StoreError> {
    let report = verify(store, issuer).await?;
    if !report.ok {
        return Ok(Err(report));
    }
    let before = clock.now().saturating_sub(retention);
    Ok(Ok(store.prune_audit_events(before).await?))
}

/// Checkpoints every `interval` and, with a `retention`, prunes hourly after verifying.
pub fn spawn(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    oauth: Arc<OAuthState>,
    interval: Duration,
    retention: Option<Duration>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval.max(Duration::from_secs(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let prune_every = Duration::from_secs(3_600);
        let mut last_prune: Option<tokio::time::Instant> = None;
        loop {
            tick.tick().await;
            if let Err(e) = checkpoint(store.as_ref(), clock.as_ref(), &oauth).await {
                tracing::warn!(error = %e, "could not record an audit checkpoint");
            }
            let Some(retention) = retention else { continue };
            if last_prune.is_some_and(|t| t.elapsed() < prune_every) {
                continue;
            }
            last_prune = Some(tokio::time::Instant::now());
            match prune(store.as_ref(), clock.as_ref(), &oauth.issuer, retention).await {
                Ok(Ok(Some(p))) => {
                    tracing::info!(up_to = p.up_to, deleted = p.deleted, "pruned the audit log")
                }
                Ok(Ok(None)) => {}
                Ok(Err(report)) => {
                    tracing::error!(message = %report.message, "audit chain does not verify; not pruning")
                }
                Err(e) => tracing::warn!(error = %e, "could not prune the audit log"),
            }
        }
    })
}

#[cfg(test)]
#[path = "audit_chain_tests.rs"]
mod tests;
