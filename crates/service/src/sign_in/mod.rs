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
pub use refresh::{InspectedRefresh, NewFamily, PresentedRefresh, Refreshed, StartedFamily};
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

/// The `[sign_in]` section of the configuration (`docs/browser-apps.md`): how long sessions,
/// refresh-token families and authorization codes live, and how often ended state is pruned.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignInSettings {
    /// A session not seen for this long is over, in seconds (default 30 minutes).
    pub session_idle_secs: u64,
    /// A session is over this long after sign-in, however active, in seconds (default 10 hours).
    pub session_absolute_secs: u64,
    /// A refresh-token family not used for this long is over, in seconds (default 14 days).
    pub refresh_idle_secs: u64,
    /// A refresh-token family is over this long after sign-in, in seconds (default 30 days).
    pub refresh_absolute_secs: u64,
    /// How long after a rotation the rotated token still gets the same successor (two browser
    /// tabs refreshing at once), in seconds; 0 turns it off, at most 60 (default 10).
    pub refresh_grace_secs: u64,
    /// How long an authorization code lives, in seconds: 1 to 60 (default 60).
    pub code_lifetime_secs: u64,
    /// How often ended sessions and expired codes are deleted, in seconds (default 5 minutes).
    pub prune_interval_secs: u64,
}

impl Default for SignInSettings {
    fn default() -> Self {
        let session = SessionPolicy::default();
        let refresh = RefreshPolicy::default();
        Self {
            session_idle_secs: session.idle.as_secs(),
            session_absolute_secs: session.absolute.as_secs(),
            refresh_idle_secs: refresh.idle.as_secs(),
            refresh_absolute_secs: refresh.absolute.as_secs(),
            refresh_grace_secs: refresh.grace.as_secs(),
            code_lifetime_secs: portcullis_core::auth_code::MAX_CODE_LIFETIME.as_secs(),
            prune_interval_secs: 300,
        }
    }
}

impl SignInSettings {
    /// Refuses settings that make no sense or weaken a rule: zero lifetimes, an idle timeout
    /// longer than the absolute one, a grace window over a minute, a code living over 60 s.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("session_idle_secs", self.session_idle_secs),
            ("session_absolute_secs", self.session_absolute_secs),
            ("refresh_idle_secs", self.refresh_idle_secs),
            ("refresh_absolute_secs", self.refresh_absolute_secs),
            ("code_lifetime_secs", self.code_lifetime_secs),
            ("prune_interval_secs", self.prune_interval_secs),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("sign_in.{name} must be at least 1"));
        }
        if self.session_idle_secs > self.session_absolute_secs {
            return Err("sign_in.session_idle_secs must not exceed session_absolute_secs".into());
        }
        if self.refresh_idle_secs > self.refresh_absolute_secs {
            return Err("sign_in.refresh_idle_secs must not exceed refresh_absolute_secs".into());
        }
        if self.refresh_grace_secs > portcullis_core::refresh::MAX_GRACE.as_secs() {
            return Err(format!(
                "sign_in.refresh_grace_secs must be 0 to {}",
                portcullis_core::refresh::MAX_GRACE.as_secs()
            ));
        }
        let max_code = portcullis_core::auth_code::MAX_CODE_LIFETIME.as_secs();
        if self.code_lifetime_secs > max_code {
            return Err(format!(
                "sign_in.code_lifetime_secs must be 1 to {max_code} (codes are short-lived)"
            ));
        }
        Ok(())
    }

    /// The operations' configuration: `token_lifetime` is the longest access-token lifetime,
    /// `environment` the one refresh tokens are issued for.
    pub fn config(&self, token_lifetime: Duration, environment: Environment) -> SignInConfig {
        SignInConfig {
            session: SessionPolicy {
                idle: Duration::from_secs(self.session_idle_secs),
                absolute: Duration::from_secs(self.session_absolute_secs),
            },
            refresh: RefreshPolicy {
                idle: Duration::from_secs(self.refresh_idle_secs),
                absolute: Duration::from_secs(self.refresh_absolute_secs),
                grace: Duration::from_secs(self.refresh_grace_secs),
            },
            code_lifetime: Duration::from_secs(self.code_lifetime_secs),
            token_lifetime,
            environment,
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
    /// Notified when sessions end here and back-channel logouts were queued
    /// (`crate::logout::Backchannel` waits on it).
    backchannel_wake: Arc<tokio::sync::Notify>,
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
            backchannel_wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// What the back-channel logout task waits on (`crate::logout::Backchannel::new`).
    pub fn backchannel_wakeup(&self) -> Arc<tokio::sync::Notify> {
        self.backchannel_wake.clone()
    }

    /// Queues back-channel logouts for sessions that just ended (one per client that redeemed
    /// a code in them and registered a URI) and wakes the delivery task. The sessions are
    /// already revoked: a failure here is logged, not returned, so sign-out still succeeds.
    async fn sessions_ended(&self, tenant: &TenantId, sids: &[String]) {
        if sids.is_empty() {
            return;
        }
        match self
            .store
            .enqueue_backchannel_logouts(tenant, sids, self.clock.now())
            .await
        {
            Ok(0) => {}
            Ok(_) => self.backchannel_wake.notify_one(),
            Err(e) => {
                tracing::error!(error = %e, tenant = %tenant, "could not queue back-channel logouts for ended sessions")
            }
        }
    }

    pub fn config(&self) -> &SignInConfig {
        &self.config
    }

    /// Prunes every `interval` until aborted; a failed pass is logged and retried next time.
    pub fn spawn_pruner(self: Arc<Self>, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match self.prune().await {
                    Ok((sessions, codes)) if sessions + codes > 0 => {
                        tracing::debug!(sessions, codes, "pruned ended sign-in state")
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not prune sign-in state"),
                }
            }
        })
    }

    /// Deletes what can no longer matter: sessions past their absolute deadline, and codes
    /// expired longer ago than the longest access-token lifetime (a replay is still recognised,
    /// and revokes, as long as the first redemption's tokens live), expired pushed
    /// authorization requests and device authorization requests (both counted with codes), and
    /// the workload subject-token and client-assertion ids whose keep-until has passed.
    /// Returns (sessions, codes).
    pub async fn prune(&self) -> Result<(u64, u64)> {
        let now = self.clock.now();
        let sessions = self.store.prune_sessions(now).await?;
        let pushed = self.store.prune_pushed_requests(now).await?;
        // An expired device code answers `expired_token` until it is gone, then `invalid_grant`
        // like any unknown code: either way it issues nothing.
        let devices = self.store.prune_device_authorizations(now).await?;
        let codes = self
            .store
            .prune_codes(now.saturating_sub(self.config.token_lifetime))
            .await?;
        // Exchanged workload-token ids past their expiry plus leeway: a replay of one is
        // refused by its expiry by then. Pruned by this node-local task on every node (the
        // delete is idempotent).
        let jtis = self.store.prune_subject_jtis(now).await?;
        if jtis > 0 {
            tracing::debug!(jtis, "pruned expired subject-token ids");
        }
        // Client-assertion ids likewise (single use is decided per id by the store's upsert;
        // this only keeps the table small).
        let assertions = self.store.prune_assertion_jtis(now).await?;
        if assertions > 0 {
            tracing::debug!(assertions, "pruned expired client-assertion ids");
        }
        Ok((sessions, codes + pushed + devices))
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
