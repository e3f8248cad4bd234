//! Signing-key rotation: on demand (`portcullis keys rotate`) and on a schedule.
//!
//! 1. A new key is stored as `pending` with `activates_at = now + prepublish`: it is in JWKS at
//!    once, so verifiers that cache JWKS (for at most half the pre-publication window) know it
//!    before it signs.
//! 2. When due, one transaction retires the active key (published until every token it signed
//!    has expired: now + the hard maximum token lifetime + leeway) and activates the pending one.
//! 3. Every node's key task notices the new active key in storage and swaps its signer.
//!
//! Each step is one durable write, so `kill -9` anywhere leaves a state the next tick completes:
//! a pending key stays published and is activated when due; a retired key stays published.
//! `revoke` is the compromise path: the key leaves JWKS at once, its tokens are revoked through
//! the revocation log, and if it was signing, the pending key (or a fresh one) takes over now.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::audit::{Action, Actor, Reason};
use portcullis_core::signing::{KeyLane, KeyState, SigningAlgorithm};
use portcullis_core::tenant::TenantId;
use portcullis_store::{NewRevocation, RevocationKind, Store, StoredSigningKey};

use crate::keys::jwt::{Signer, LEEWAY};
pub use crate::keys::Rotation;
use crate::keys::{envelope_aad, KeyError};
use crate::oauth::OAuthService;

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] portcullis_store::StoreError),
    #[error("the active signing key cannot sign: {0}")]
    Signer(String),
}

/// The key of `lane` in `state` (lanes: `portcullis_core::signing::KeyLane`).
fn state_of(
    keys: &[StoredSigningKey],
    lane: KeyLane,
    state: KeyState,
) -> Option<&StoredSigningKey> {
    keys.iter()
        .find(|k| k.state == state && lane.holds(k.algorithm))
}

/// Stores a new pending key in every lane in use (the primary algorithm's and the RS256
/// companion's), unless one is already pending there (then that one is kept). Returns the
/// primary lane's pending key.
pub async fn begin(
    store: &dyn Store,
    rotation: &Rotation,
    now: portcullis_core::time::Timestamp,
) -> Result<StoredSigningKey, RotationError> {
    let keys = store.list_signing_keys().await?;
    let mut primary = None;
    for (lane, alg) in KeyLane::in_use(rotation.algorithm) {
        let row = match state_of(&keys, lane, KeyState::Pending) {
            Some(pending) => pending.clone(),
            None => {
                let row = new_key_row(
                    rotation,
                    alg,
                    KeyState::Pending,
                    now,
                    now.saturating_add(rotation.prepublish),
                )?;
                store.insert_signing_key(&row).await?;
                crate::fault::crash_point("after-rotation-key-stored");
                row
            }
        };
        primary.get_or_insert(row);
    }
    primary.ok_or_else(|| RotationError::Signer("no key lane in use".into()))
}

fn new_key_row(
    rotation: &Rotation,
    alg: SigningAlgorithm,
    state: KeyState,
    now: portcullis_core::time::Timestamp,
    activates_at: portcullis_core::time::Timestamp,
) -> Result<StoredSigningKey, RotationError> {
    let (pkcs8, jwk) = crate::keys::generate(alg)?;
    let kid = jwk["kid"].as_str().unwrap_or_default().to_owned();
    let (kek_id, sealed) = rotation
        .keyring
        .seal(pkcs8.expose(), &envelope_aad(&kid, alg))
        .map_err(KeyError::from)?;
    Ok(StoredSigningKey {
        kid,
        algorithm: alg,
        state,
        public_jwk: jwk.to_string(),
        kek_id,
        sealed_private_key: sealed,
        created_at: now,
        activates_at,
        retired_at: None,
        publish_until: None,
    })
}

/// How long a retired key must stay published: every token it signed expires within the hard
/// maximum lifetime, plus the leeway verifiers allow.
fn retire_until(
    state: &OAuthService,
    now: portcullis_core::time::Timestamp,
) -> portcullis_core::time::Timestamp {
    now.saturating_add(state.oauth.lifetimes.max)
        .saturating_add(LEEWAY)
}

/// One pass of the key task: start a scheduled rotation if due, activate a due pending key in
/// each lane, and make this node sign with whatever keys storage says are active.
pub async fn tick(state: &OAuthService) -> Result<(), RotationError> {
    let Some(rotation) = state.oauth.rotation.as_ref() else {
        return Ok(());
    };
    let now = state.clock.now();
    let keys = state.store.list_signing_keys().await?;
    let primary = KeyLane::of(rotation.algorithm);
    let active = state_of(&keys, primary, KeyState::Active);
    let pending = state_of(&keys, primary, KeyState::Pending);
    if pending.is_none() && !rotation.interval.is_zero() {
        let due = active.is_none_or(|a| a.activates_at.saturating_add(rotation.interval) <= now);
        if due {
            let row = begin(state.store.as_ref(), rotation, now).await?;
            state.oauth.directory.signing_keys_changed();
            audit(state, Action::SigningKeyRotate, &row.kid, "scheduled");
        }
    }
    for (lane, _) in KeyLane::in_use(rotation.algorithm) {
        if let Some(p) = state_of(&keys, lane, KeyState::Pending).filter(|p| p.activates_at <= now)
        {
            if state
                .store
                .activate_signing_key(&p.kid, now, retire_until(state, now))
                .await?
            {
                crate::fault::crash_point("after-key-activated");
                state.oauth.directory.signing_keys_changed();
                audit(
                    state,
                    Action::SigningKeyActivate,
                    &p.kid,
                    "prepublication_over",
                );
            }
        }
    }
    refresh_signer(state, rotation).await
}

/// Loads the active keys from storage into the signer if they are not the ones signing now.
pub async fn refresh_signer(
    state: &OAuthService,
    rotation: &Rotation,
) -> Result<(), RotationError> {
    let keys = state.store.list_signing_keys().await?;
    let Some(active) = state_of(&keys, KeyLane::of(rotation.algorithm), KeyState::Active) else {
        return Ok(());
    };
    let companion = (KeyLane::of(rotation.algorithm) != KeyLane::Rs256)
        .then(|| state_of(&keys, KeyLane::Rs256, KeyState::Active))
        .flatten();
    if state.oauth.signer().is_some_and(|s| {
        s.kid() == active.kid && s.rs256_companion_kid() == companion.map(|c| c.kid.as_str())
    }) {
        return Ok(());
    }
    let key = crate::keys::open_row(active, &rotation.keyring)?;
    let mut signer = Signer::new(&key).map_err(|e| RotationError::Signer(e.to_string()))?;
    if let Some(c) = companion {
        let c = crate::keys::open_row(c, &rotation.keyring)?;
        signer = signer
            .with_rs256_companion(&c)
            .map_err(|e| RotationError::Signer(e.to_string()))?;
    }
    tracing::info!(kid = %signer.kid(), rs256_companion = ?signer.rs256_companion_kid(), "now signing with key");
    state.oauth.set_signer(Arc::new(signer));
    Ok(())
}

/// Revokes a key. If it was signing, the pending key takes over at once, or a new key is made
/// active: after a compromise nothing may wait for a pre-publication window.
pub async fn revoke(state: &OAuthService, kid: &str) -> Result<Option<KeyState>, RotationError> {
    let Some(rotation) = state.oauth.rotation.as_ref() else {
        return Ok(None);
    };
    let now = state.clock.now();
    let Some(before) = state.store.revoke_signing_key(kid, now).await? else {
        return Ok(None);
    };
    state
        .store
        .append_revocation(
            &NewRevocation {
                tenant: TenantId::system(),
                kind: RevocationKind::SigningKey,
                subject: kid.to_owned(),
                // Every token carrying this kid, whatever its `iat`, for good: whoever holds
                // the key can mint tokens dated after now, so the mark must never lapse.
                revoked_before: None,
                expires_at: None,
                reason: Some("signing_key_revoked".into()),
            },
            now,
        )
        .await?;
    let revoked_alg = state
        .store
        .list_signing_keys()
        .await?
        .into_iter()
        .find(|k| k.kid == kid)
        .map(|k| k.algorithm);
    // A revoked active key is replaced in its own lane, if that lane is still in use.
    let lane = revoked_alg.and_then(|a| {
        KeyLane::in_use(rotation.algorithm)
            .into_iter()
            .find(|(lane, _)| lane.holds(a))
    });
    if let (KeyState::Active, Some((lane, alg))) = (before, lane) {
        let keys = state.store.list_signing_keys().await?;
        let promoted = match state_of(&keys, lane, KeyState::Pending) {
            Some(p) => {
                state
                    .store
                    .activate_signing_key(&p.kid, now, retire_until(state, now))
                    .await?
            }
            None => false,
        };
        if !promoted {
            let row = new_key_row(rotation, alg, KeyState::Active, now, now)?;
            // Refused only if another node made a key active first; then that one signs.
            state.store.insert_signing_key(&row).await?;
        }
    }
    refresh_signer(state, rotation).await?;
    // The revoked key's audit checkpoints no longer anchor the chain: vouch for the ones that
    // still match the events with the key signing now. That reads the whole chain, so it runs
    // beside the request, never in it.
    tokio::spawn(re_sign_checkpoints(state.clone(), kid.to_owned()));
    Ok(Some(before))
}

async fn re_sign_checkpoints(state: OAuthService, kid: String) {
    let outcome = crate::audit_chain::re_sign(
        state.store.as_ref(),
        state.clock.as_ref(),
        &state.oauth,
        &kid,
    )
    .await;
    match outcome {
        Ok(Ok(0)) => {}
        Ok(Ok(n)) => {
            tracing::info!(
                kid,
                checkpoints = n,
                "re-signed the revoked key's audit checkpoints"
            )
        }
        Ok(Err(report)) => tracing::error!(
            kid,
            message = %report.message,
            "audit chain does not verify; the revoked key's checkpoints were not re-signed"
        ),
        Err(e) => {
            tracing::error!(kid, error = %e, "could not re-sign the revoked key's audit checkpoints")
        }
    }
}

/// Runs [`tick`] every `every` until the process ends, the first time `every` from now (the
/// assembly runs one step itself before serving). Failures are logged and retried.
pub async fn run(state: OAuthService, every: Duration) {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(e) = tick(&state).await {
            tracing::error!(error = %e, "signing-key rotation step failed; retrying");
        }
    }
}

fn audit(state: &OAuthService, action: Action, kid: &str, reason: &'static str) {
    state.audit.record(
        crate::audit::EventDraft {
            tenant: TenantId::system(),
            actor: Actor::system(),
            credential_id: None,
            action,
            outcome: portcullis_core::audit::Outcome::Success,
            reason: Some(Reason::new(reason)),
            target: Some(kid.to_owned()),
        },
        &crate::audit::RequestOrigin::default(),
    );
}
