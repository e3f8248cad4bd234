//! Applies a tenant's lifetime policy to credentials that already exist. In mode `disable`, the
//! API keys that break the policy are disabled. Each change is audited as `api_key.disable`
//! with reason `lifetime_policy` and reaches every verifier through the revocation log. It runs
//! when a global admin calls `enforce`, and on every node from the periodic sweep
//! ([`spawn_sweeper`]; hourly unless `api_keys.lifetime_sweep_interval_secs` says otherwise,
//! first at a random point of the first period), so a key that falls out of compliance (it aged
//! past the maximum, or the policy was tightened) stops working without anyone asking.
//!
//! Core (`portcullis_core::lifetime`) decides compliance over the facts `lifecycle` reads; this
//! module only acts on the answer. It must never disable anything unless the mode is `disable`,
//! and never touch client secrets: those are reported, and the client's owner rotates them.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::audit::{Action, Actor, Outcome, Reason};
use portcullis_core::hygiene::CredentialKind;
use portcullis_core::lifetime::ExistingMode;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{Clock, Timestamp};
use portcullis_store::{Store, StoreError};

use crate::api_keys::ApiKeyVerifier;
use crate::audit::{AuditSink, EventDraft, RequestOrigin};
use crate::lifecycle::{self, NonCompliant};

/// Who applies the policy, for the audit events.
#[derive(Debug, Clone)]
pub struct EnforcedBy {
    pub actor: Actor,
    pub credential_id: Option<String>,
    pub origin: RequestOrigin,
}

impl EnforcedBy {
    /// The sweep: the system, from no request.
    pub fn sweep() -> Self {
        Self {
            actor: Actor::system(),
            credential_id: None,
            origin: RequestOrigin::default(),
        }
    }
}

/// What one application of the policy found and did.
#[derive(Debug)]
pub struct Enforcement {
    pub mode: ExistingMode,
    pub non_compliant: Vec<NonCompliant>,
    /// API keys disabled by this application (mode `disable` only).
    pub disabled: Vec<String>,
}

/// What enforcing a policy needs.
#[derive(Clone)]
pub struct Enforcer {
    pub store: Arc<dyn Store>,
    pub audit: AuditSink,
    pub verifier: Arc<ApiKeyVerifier>,
    pub clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Enforcer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enforcer").finish_non_exhaustive()
    }
}

impl Enforcer {
    /// Applies `tenant`'s policy now: finds the non-compliant credentials and, in mode
    /// `disable`, disables the API keys among them that are not disabled yet.
    pub async fn enforce(
        &self,
        tenant: &TenantId,
        by: &EnforcedBy,
    ) -> Result<Enforcement, StoreError> {
        let store = self.store.as_ref();
        let now = self.clock.now();
        let mode = lifecycle::lifetime_policy(store, tenant).await?.existing;
        let non_compliant = lifecycle::non_compliant(store, tenant, now).await?;
        let mut disabled = Vec::new();
        if mode == ExistingMode::Disable {
            for n in &non_compliant {
                if n.kind == CredentialKind::ApiKey && self.disable(tenant, n, by, now).await? {
                    disabled.push(n.id.clone());
                }
            }
        }
        Ok(Enforcement {
            mode,
            non_compliant,
            disabled,
        })
    }

    /// Disables one non-compliant key unless it already is: `true` if this call disabled it.
    async fn disable(
        &self,
        tenant: &TenantId,
        n: &NonCompliant,
        by: &EnforcedBy,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        // A key already disabled (by an admin, or by another node's sweep a moment ago) changes
        // nothing and is not counted again: the store's compare-and-swap decides.
        if !self
            .store
            .disable_api_key_if_enabled(tenant, &n.id, now)
            .await?
        {
            return Ok(false);
        }
        self.verifier.invalidate(&n.id);
        self.audit.record(
            EventDraft {
                tenant: tenant.clone(),
                actor: by.actor.clone(),
                credential_id: by.credential_id.clone(),
                action: Action::ApiKeyDisable,
                outcome: Outcome::Success,
                reason: Some(Reason::with_detail("lifetime_policy", n.violation.as_str())),
                target: Some(n.id.clone()),
            },
            &by.origin,
        );
        Ok(true)
    }

    /// Applies the policy of every tenant whose mode is `disable`; returns how many keys it
    /// disabled. A tenant that fails is logged and the others still run.
    pub async fn sweep(&self) -> Result<usize, StoreError> {
        let tenants = self
            .store
            .tenants_with_existing_mode(ExistingMode::Disable.as_str())
            .await?;
        let by = EnforcedBy::sweep();
        let mut disabled = 0;
        for tenant in tenants {
            match self.enforce(&tenant, &by).await {
                Ok(done) => disabled += done.disabled.len(),
                Err(e) => tracing::warn!(
                    tenant = tenant.as_str(),
                    error = %e,
                    "could not apply the tenant's lifetime policy"
                ),
            }
        }
        Ok(disabled)
    }
}

/// Sweeps every `every` (`api_keys.lifetime_sweep_interval_secs` in `serve`). The first sweep comes at a random point
/// of the first period: a node restarted more often than that still sweeps, a restart loop
/// does not become a sweep loop, and the nodes of a cluster do not sweep in step. Two nodes
/// sweeping at once disable a key once (the store's compare-and-swap).
pub fn spawn_sweeper(enforcer: Enforcer, every: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let first = every.mul_f64(rand::random::<f64>());
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + first, every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            match enforcer.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(disabled = n, "lifetime policy sweep disabled API keys"),
                Err(e) => tracing::warn!(error = %e, "lifetime policy sweep failed"),
            }
        }
    })
}
