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
use portcullis_core::signing::KeyState;
use portcullis_core::tenant::TenantId;
use portcullis_store::{NewRevocation, RevocationKind, Store, StoredSigningKey};

use crate::keys::jwt::{Signer, LEEWAY};
pub use crate::keys::Rotation;
use crate::keys::{envelope_aad, KeyError};
use crate::state::AppState;

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] portcullis_store::StoreError),
    #[error("the active signing key cannot sign: {0}")]
    Signer(String),
}

fn state_of(keys: &[StoredSigningKey], state: KeyState) -> Option<&StoredSigningKey> {
    keys.iter().find(|k| k.state == state)
}

/// Stores a new pending key, unless one is already pending (then that one is returned).
pub async fn begin(
    store: &dyn Store,
    rotation: &Rotation,
    now: portcullis_core::time::Timestamp,
) -> Result<StoredSigningKey, RotationError> {
    let keys = store.list_signing_keys().await?;
    if let Some(pending) = state_of(&keys, KeyState::Pending) {
        return Ok(pending.clone());
    }
    let row = new_key_row(
        rotation,
        KeyState::Pending,
        now,
        now.saturating_add(rotation.prepublish),
    )?;
    store.insert_signing_key(&row).await?;
    crate::fault::crash_point("after-rotation-key-stored");
    Ok(row)
}

fn new_key_row(
    rotation: &Rotation,
    state: KeyState,
    now: portcullis_core::time::Timestamp,
    activates_at: portcullis_core::time::Timestamp,
) -> Result<StoredSigningKey, RotationError> {
    let alg = rotation.algorithm;
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
    state: &AppState,
    now: portcullis_core::time::Timestamp,
) -> portcullis_core::time::Timestamp {
    now.saturating_add(state.oauth.lifetimes.max)
        .saturating_add(LEEWAY)
}

/// One pass of the key task: start a scheduled rotation if due, activate a due pending key, and
/// make this node sign with whatever key storage says is active.
pub async fn tick(state: &AppState) -> Result<(), RotationError> {
    let Some(rotation) = state.oauth.rotation.as_ref() else {
        return Ok(());
    };
    let now = state.clock.now();
    let keys = state.store.list_signing_keys().await?;
    let active = state_of(&keys, KeyState::Active);
    let pending = state_of(&keys, KeyState::Pending);
    if pending.is_none() && !rotation.interval.is_zero() {
        let due = active.is_none_or(|a| a.activates_at.saturating_add(rotation.interval) <= now);
        if due {
            let row = begin(state.store.as_ref(), rotation, now).await?;
            state.oauth.directory.signing_keys_changed();
            audit(state, Action::SigningKeyRotate, &row.kid, "scheduled");
        }
    }
    if let Some(p) = pending.filter(|p| p.activates_at <= now) {
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
    refresh_signer(state, rotation).await
}

/// Loads the active key from storage into the signer if it is not the one signing now.
pub async fn refresh_signer(state: &AppState, rotation: &Rotation) -> Result<(), RotationError> {
    let keys = state.store.list_signing_keys().await?;
    let Some(active) = state_of(&keys, KeyState::Active) else {
        return Ok(());
    };
    if state.oauth.signer().is_some_and(|s| s.kid() == active.kid) {
        return Ok(());
    }
    let key = crate::keys::open_row(active, &rotation.keyring)?;
    let signer = Signer::new(&key).map_err(|e| RotationError::Signer(e.to_string()))?;
    tracing::info!(kid = %signer.kid(), "now signing with key");
    state.oauth.set_signer(Arc::new(signer));
    Ok(())
}

/// Revokes a key. If it was signing, the pending key takes over at once, or a new key is made
/// active: after a compromise nothing may wait for a pre-publication window.
pub async fn revoke(state: &AppState, kid: &str) -> Result<Option<KeyState>, RotationError> {
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
    if before == KeyState::Active {
        let keys = state.store.list_signing_keys().await?;
        let promoted = match state_of(&keys, KeyState::Pending) {
            Some(p) => {
                state
                    .store
                    .activate_signing_key(&p.kid, now, retire_until(state, now))
                    .await?
            }
            None => false,
        };
        if !promoted {
            let row = new_key_row(rotation, KeyState::Active, now, now)?;
            // Refused only if another node made a key active first; then that one signs.
            state.store.insert_signing_key(&row).await?;
        }
    }
    refresh_signer(state, rotation).await?;
    Ok(Some(before))
}

/// Runs [`tick`] every `every` until the process ends, the first time `every` from now (the
/// assembly runs one step itself before serving). Failures are logged and retried.
pub async fn run(state: AppState, every: Duration) {
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        if let Err(e) = tick(&state).await {
            tracing::error!(error = %e, "signing-key rotation step failed; retrying");
        }
    }
}

fn audit(state: &AppState, action: Action, kid: &str, reason: &'static str) {
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
