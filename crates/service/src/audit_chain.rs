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
    /// Checkpoints whose signature verified under a stored, unrevoked signing key: the only
    /// ones that anchor verification.
    pub signed_checkpoints: usize,
    /// Checkpoints validly signed by a key revoked since (neither anchors nor breaks; revoking
    /// a key re-signs the ones that match the events, so this is normally 0).
    pub revoked_key_checkpoints: usize,
    /// Events written before the chain existed (not covered).
    pub unchained_events: u64,
    /// The first broken position and how, when not `ok`.
    pub broken: Option<Broken>,
    /// One line for people.
    pub message: String,
}

/// How far one checkpoint can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Signed by a stored, unrevoked key over its own position and hash: it anchors the walk
    /// (a rewrite before it is a mismatch) and may seed verification after a prune.
    Anchor,
    /// Validly signed by a key since revoked: consistent or not, it proves nothing any more
    /// (whoever revoked the key may have lost it), so it anchors nothing and breaks nothing.
    RevokedKey,
    /// No signature, a key this installation never had, a signature that does not verify, or
    /// claims about another position or hash. Anyone with write access to the database could
    /// have made it, so it is a break, never an anchor.
    Forged,
}

/// Verifies the stored chain: every event from the first stored position to the head against
/// its stored hash and every anchoring checkpoint, and every checkpoint's signature.
pub async fn verify(store: &dyn Store, issuer: &str) -> Result<VerifyReport, StoreError> {
    Ok(examine(store, issuer, None).await?.0)
}

/// [`verify`], also returning each checkpoint's standing. With `trust_revoked`, checkpoints
/// validly signed by that (revoked) key anchor too: used once, by [`re_sign`], to check them
/// against the events before vouching for them with the new key.
async fn examine(
    store: &dyn Store,
    issuer: &str,
    trust_revoked: Option<&str>,
) -> Result<(VerifyReport, Vec<(AuditCheckpoint, Standing)>), StoreError> {
    let (head, _) = store.audit_chain_head().await?;
    let checkpoints = store.audit_checkpoints().await?;
    let unchained = store.count_unchained_audit_events().await?;
    let mut keys = CheckpointKeys::load(store).await?;
    let mut signed = 0;
    let mut forged: Option<i64> = None;
    let mut trusted: Vec<(i64, Hash)> = Vec::with_capacity(checkpoints.len());
    let mut standings = Vec::with_capacity(checkpoints.len());
    for cp in checkpoints {
        let standing = keys.standing(&cp, issuer);
        let anchors = match standing {
            Standing::Anchor => {
                signed += 1;
                true
            }
            Standing::RevokedKey => trust_revoked.is_some_and(|k| cp.kid.as_deref() == Some(k)),
            Standing::Forged => {
                forged.get_or_insert(cp.pos);
                false
            }
        };
        if anchors {
            if let Ok(hash) = Hash::try_from(cp.hash.as_slice()) {
                trusted.push((cp.pos, hash));
            }
        }
        standings.push((cp, standing));
    }
    let first = store.audit_chain_first().await?.unwrap_or(head + 1);
    let seed = if first <= 1 {
        Some((0, GENESIS))
    } else {
        trusted.iter().find(|(p, _)| *p == first - 1).copied()
    };
    let result = match seed {
        // Events deleted from the start without the prune's (signed) checkpoint.
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
    let revoked = standings
        .iter()
        .filter(|(_, s)| *s == Standing::RevokedKey)
        .count();
    let message = match &broken {
        None => format!(
            "audit chain intact: {checked} events, positions {first} to {head}, {} checkpoints ({signed} signed{})",
            standings.len(),
            if revoked > 0 {
                format!(", {revoked} by a revoked key")
            } else {
                String::new()
            }
        ),
        Some(b) => format!("audit chain broken: {b}"),
    };
    let report = VerifyReport {
        ok: broken.is_none(),
        checked,
        first_position: first.min(head + 1),
        head_position: head,
        checkpoints: standings.len(),
        signed_checkpoints: signed,
        revoked_key_checkpoints: revoked,
        unchained_events: unchained,
        broken,
        message,
    };
    Ok((report, standings))
}

/// The installation's signing keys by `kid`, each parsed on first use: retired keys too (old
/// checkpoints stay checkable), revoked ones marked as such. Keys are looked up one by one, so
/// no cap on a key set's size ever makes an old checkpoint's key disappear.
struct CheckpointKeys {
    stored: std::collections::HashMap<String, (bool, String)>,
    parsed: std::collections::HashMap<String, portcullis_jose::KeySet>,
}

impl CheckpointKeys {
    async fn load(store: &dyn Store) -> Result<Self, StoreError> {
        let stored = store
            .list_signing_keys()
            .await?
            .into_iter()
            .map(|k| (k.kid, (k.state == KeyState::Revoked, k.public_jwk)))
            .collect();
        Ok(Self {
            stored,
            parsed: Default::default(),
        })
    }

    fn standing(&mut self, cp: &AuditCheckpoint, issuer: &str) -> Standing {
        let (Some(kid), Some(sig)) = (cp.kid.as_deref(), cp.signature.as_deref()) else {
            return Standing::Forged;
        };
        let Some((revoked, jwk)) = self.stored.get(kid) else {
            return Standing::Forged;
        };
        let Ok(hash) = Hash::try_from(cp.hash.as_slice()) else {
            return Standing::Forged;
        };
        let set = self.parsed.entry(kid.to_owned()).or_insert_with(|| {
            serde_json::from_str::<serde_json::Value>(jwk)
                .ok()
                .and_then(|k| {
                    portcullis_jose::parse_jwk_set(
                        &serde_json::json!({ "keys": [k] }),
                        &Alg::SIGNING,
                    )
                    .ok()
                })
                .unwrap_or_default()
        });
        match audit_checkpoint::verify(sig, issuer, &Alg::SIGNING, set) {
            Ok(v) if v.pos == cp.pos && v.hash == hex(&hash) && v.kid.as_deref() == Some(kid) => {
                if *revoked {
                    Standing::RevokedKey
                } else {
                    Standing::Anchor
                }
            }
            _ => Standing::Forged,
        }
    }
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

/// Records a checkpoint at the chain head, signed by the active key; `None` if the head has
/// not moved since the last one, nothing is chained yet, or there is no signer (an unsigned
/// checkpoint would prove nothing and verification counts it as forged).
pub async fn checkpoint(
    store: &dyn Store,
    clock: &dyn Clock,
    oauth: &OAuthState,
) -> Result<Option<AuditCheckpoint>, StoreError> {
    let (pos, hash) = store.audit_chain_head().await?;
    if pos == 0 {
        return Ok(None);
    }
    let Some(signer) = oauth.signer() else {
        tracing::warn!("no signing key loaded: the audit checkpoint waits for one");
        return Ok(None);
    };
    let now = clock.now();
    let Some(signature) = sign(&signer, &oauth.issuer, pos, &hash, now) else {
        return Ok(None);
    };
    let cp = AuditCheckpoint {
        pos,
        hash,
        created_at: now,
        kid: Some(signer.kid().to_owned()),
        signature: Some(signature),
    };
    Ok(store.insert_audit_checkpoint(&cp).await?.then_some(cp))
}

fn sign(
    signer: &crate::keys::jwt::Signer,
    issuer: &str,
    pos: i64,
    hash: &[u8],
    now: portcullis_core::time::Timestamp,
) -> Option<String> {
    let claims = audit_checkpoint::Claims {
        iss: issuer.to_owned(),
        pos,
        hash: hex(hash),
        iat: now.as_secs(),
    };
    signer
        .sign_checkpoint(&claims)
        .map_err(
            |e| tracing::warn!(error = %e, "could not sign an audit checkpoint; none recorded"),
        )
        .ok()
}

/// After `kid` was revoked: checks its checkpoints against the events (they anchor for this
/// one walk) and, if the whole chain verifies so, signs each again with the active key, so the
/// chain keeps its anchors and a pruned chain its seed. Returns how many were re-signed; a
/// chain that does not verify is left as it is (evidence) and reported.
pub async fn re_sign(
    store: &dyn Store,
    clock: &dyn Clock,
    oauth: &OAuthState,
    kid: &str,
) -> Result<Result<usize, VerifyReport>, StoreError> {
    let (report, standings) = examine(store, &oauth.issuer, Some(kid)).await?;
    if !report.ok {
        return Ok(Err(report));
    }
    let Some(signer) = oauth.signer().filter(|s| s.kid() != kid) else {
        return Ok(Ok(0));
    };
    let mut done = 0;
    for (cp, standing) in standings {
        if standing != Standing::RevokedKey || cp.kid.as_deref() != Some(kid) {
            continue;
        }
        let Ok(hash) = Hash::try_from(cp.hash.as_slice()) else {
            continue;
        };
        let Some(signature) = sign(&signer, &oauth.issuer, cp.pos, &hash, clock.now()) else {
            continue;
        };
        if store
            .re_sign_audit_checkpoint(cp.pos, kid, signer.kid(), &signature)
            .await?
        {
            done += 1;
        }
    }
    Ok(Ok(done))
}

/// Verifies, then prunes events older than `retention` up to the newest signed checkpoint
/// before the cut-off. A chain that does not verify is left whole (it is evidence) and reported.
pub async fn prune(
    store: &dyn Store,
    clock: &dyn Clock,
    issuer: &str,
    retention: Duration,
) -> Result<Result<Option<portcullis_store::AuditPrune>, VerifyReport>, StoreError> {
    let (report, standings) = examine(store, issuer, None).await?;
    if !report.ok {
        return Ok(Err(report));
    }
    let before = clock.now().saturating_sub(retention);
    // The new start must be a checkpoint whose signature verified: only such a one can seed
    // verification of what remains.
    let Some(at) = standings
        .iter()
        .filter(|(cp, s)| *s == Standing::Anchor && cp.created_at < before)
        .map(|(cp, _)| cp.pos)
        .max()
    else {
        return Ok(Ok(None));
    };
    Ok(Ok(store.prune_audit_events(at, before).await?))
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
