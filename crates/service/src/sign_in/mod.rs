//! Server-side sign-in state as operations the sign-in endpoints call: sessions (`sessions`),
//! authorization codes (`codes`), refresh-token families (`refresh`), with the deterministic
//! refresh-token successor (`successor`).
//!
//! Each operation reads storage, asks the rule in `portcullis-core` (`session`, `auth_code`,
//! `refresh`), and makes the change the rule calls for, with an audit event where one is due.
//! Time comes from the injected clock. Everything a client may be told fails as
//! [`SignInError::Invalid`] (the endpoint answers `invalid_grant` or shows the sign-in page); the
//! reason inside is for audit and logs only.
//!
//! Users are referenced by id with no foreign key (storage module docs): deleting a user must
//! call [`SignIn::revoke_user_sessions`], which revokes the user's sessions and refresh-token
//! families and writes their revocation entries.
//!
//! This module must never store or log a plaintext session secret, code or refresh token, never
//! decide a rule itself (core does), and never depend on a web framework.

mod codes;
mod refresh;
mod sessions;
mod successor;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::audit::{Action, Actor, Outcome, Reason};
use portcullis_core::credential::Environment;
use portcullis_core::refresh::RefreshPolicy;
use portcullis_core::session::SessionPolicy;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Clock;
use portcullis_store::{Store, StoreError};

use crate::audit::{AuditSink, EventDraft, RequestOrigin};
use crate::kek::Keyring;

pub use codes::{CodeRequest, RedeemedCode, RedemptionRequest};
pub use refresh::{NewFamily, Refreshed, StartedFamily};
pub use sessions::{NewSession, StartedSession};
pub use successor::SuccessorKeys;

/// The `[sign_in]` settings these operations apply.
#[derive(Debug, Clone)]
pub struct SignInConfig {
    pub session: SessionPolicy,
    pub refresh: RefreshPolicy,
    /// How long an authorization code lives (capped at 60 s by the rule). Default 60 s.
    pub code_lifetime: Duration,
    /// The longest access-token lifetime: a revocation entry for a session or family may be
    /// forgotten that long after the session or family ends.
    pub token_lifetime: Duration,
    /// The environment refresh tokens are issued for (`pcl_rt_<environment>_...`).
    pub environment: Environment,
}

impl Default for SignInConfig {
    fn default() -> Self {
        Self {
            session: SessionPolicy::default(),
            refresh: RefreshPolicy::default(),
            code_lifetime: portcullis_core::auth_code::MAX_CODE_LIFETIME,
            token_lifetime: Duration::from_secs(3600),
            environment: Environment::live(),
        }
    }
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// Refused: the client learns only that (`invalid_grant`); the reason is for audit.
    #[error("refused: {0}")]
    Invalid(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl SignInError {
    /// The internal reason of a refusal (`None` for a storage failure).
    pub fn reason(&self) -> Option<&'static str> {
        match self {
            Self::Invalid(r) => Some(r),
            Self::Store(_) => None,
        }
    }
}

pub type Result<T, E = SignInError> = std::result::Result<T, E>;

/// The sign-in operations over one store.
#[derive(Debug, Clone)]
pub struct SignIn {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audit: AuditSink,
    config: SignInConfig,
    keys: Arc<SuccessorKeys>,
}

impl SignIn {
    /// `keyring`: the KEK file's keys, from which the refresh-token successor key is derived
    /// (`successor` module docs).
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        audit: AuditSink,
        config: SignInConfig,
        keyring: &Keyring,
    ) -> Self {
        Self {
            store,
            clock,
            audit,
            config,
            keys: Arc::new(SuccessorKeys::from_keyring(keyring)),
        }
    }

    pub fn config(&self) -> &SignInConfig {
        &self.config
    }

    /// Deletes what can no longer matter: sessions past their absolute deadline, and codes
    /// expired longer ago than the longest access-token lifetime (a replay is still recognised,
    /// and revokes, as long as the first redemption's tokens live). Returns (sessions, codes).
    pub async fn prune(&self) -> Result<(u64, u64)> {
        let now = self.clock.now();
        let sessions = self.store.prune_sessions(now).await?;
        let codes = self
            .store
            .prune_codes(now.saturating_sub(self.config.token_lifetime))
            .await?;
        Ok((sessions, codes))
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        tenant: &TenantId,
        actor: Actor,
        credential_id: Option<String>,
        action: Action,
        outcome: Outcome,
        reason: Option<&'static str>,
        target: Option<String>,
        origin: &RequestOrigin,
    ) {
        self.audit.record(
            EventDraft {
                tenant: tenant.clone(),
                actor,
                credential_id,
                action,
                outcome,
                reason: reason.map(Reason::new),
                target,
            },
            origin,
        );
    }
}
