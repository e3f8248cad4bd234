//! Logout as the token service does it: the `[logout]` settings, and back-channel logout
//! (OpenID Connect Back-Channel Logout 1.0) delivery.
//!
//! When a session ends (any path through [`crate::sign_in::SignIn::revoke_session`] or
//! `revoke_user_sessions`: RP-initiated logout, sign-out on the account page, an admin, a user
//! disabled or deleted, a session superseded by a new sign-in), the store queues one delivery
//! per client that redeemed a code in that session and registered a `backchannel_logout_uri`
//! (`portcullis_store::LogoutStore`). [`Backchannel`] delivers them: it claims due deliveries
//! (on any node: a claim is a lease in the store, so a node that dies mid-delivery leaves the
//! delivery to another after the lease), mints a logout token per attempt (jose's
//! `logout_token` profile, signed with the active key), POSTs it as
//! `application/x-www-form-urlencoded` `logout_token=...` under the outbound rules
//! ([`outbound`]), deletes the delivery on a 2xx answer, and otherwise retries with backoff
//! (`portcullis_core::logout::DeliveryPolicy`) until the last attempt, when it gives up with a
//! `session.backchannel_logout` failure event.
//!
//! This module must never store or log a logout token, never follow a redirect, and never
//! deliver to a client other than the one a delivery names (a client whose URI was removed,
//! or that was disabled or archived, is skipped and the delivery dropped).

pub mod outbound;
#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_core::audit::{Action, Actor, Outcome, Reason};
use portcullis_core::logout::{AfterFailure, DeliveryPolicy};
use portcullis_core::time::{Clock, Timestamp};
use portcullis_jose::profile::logout_token;
use portcullis_store::{BackchannelDelivery, ClientStatus, Store, StoreError};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::audit::{AuditSink, EventDraft, RequestOrigin};
use crate::oauth::OAuthState;
pub use outbound::{validate_backchannel_uri, Outbound};

/// Deliveries claimed per pass.
const CLAIM_BATCH: u32 = 32;
/// How often session-client rows of pruned sessions are deleted.
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// The `[logout]` section of the configuration (`docs/configuration.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogoutSettings {
    /// Time limit of one back-channel logout request (connect, send, answer), in milliseconds:
    /// 100 to 30000 (default 5000).
    pub backchannel_timeout_ms: u64,
    /// Attempts per delivery, the first included, before it is given up: 1 to 20 (default 6).
    pub backchannel_max_attempts: u32,
    /// Delay before the second attempt, in seconds, doubled for each further one (default 5).
    pub backchannel_first_retry_secs: u64,
    /// Longest delay between attempts, in seconds (default 600).
    pub backchannel_max_retry_secs: u64,
    /// How often due deliveries are looked for besides when a session ends here, in
    /// milliseconds: deliveries queued on another node or due for a retry (default 1000).
    pub backchannel_poll_interval_ms: u64,
    /// Lifetime of a logout token, in seconds: 10 to 600 (default 120).
    pub logout_token_lifetime_secs: u64,
    /// Allow `http://` back-channel logout URIs to loopback hosts (and delivery to loopback
    /// addresses). For tests and local development only.
    pub insecure_allow_http_loopback: bool,
    /// Allow delivery to private, loopback and link-local addresses over HTTPS. For closed
    /// networks only: otherwise a client registration could make this server call internal
    /// services.
    pub insecure_allow_private_addresses: bool,
}

impl Default for LogoutSettings {
    fn default() -> Self {
        let policy = DeliveryPolicy::default();
        Self {
            backchannel_timeout_ms: 5_000,
            backchannel_max_attempts: policy.max_attempts,
            backchannel_first_retry_secs: policy.first_retry.as_secs(),
            backchannel_max_retry_secs: policy.max_retry.as_secs(),
            backchannel_poll_interval_ms: 1_000,
            logout_token_lifetime_secs: 120,
            insecure_allow_http_loopback: false,
            insecure_allow_private_addresses: false,
        }
    }
}

impl LogoutSettings {
    /// Refuses settings outside their ranges.
    pub fn validate(&self) -> Result<(), String> {
        if !(100..=30_000).contains(&self.backchannel_timeout_ms) {
            return Err("logout.backchannel_timeout_ms must be 100 to 30000".into());
        }
        if !(1..=20).contains(&self.backchannel_max_attempts) {
            return Err("logout.backchannel_max_attempts must be 1 to 20".into());
        }
        if self.backchannel_first_retry_secs == 0
            || self.backchannel_first_retry_secs > self.backchannel_max_retry_secs
        {
            return Err(
                "logout.backchannel_first_retry_secs must be at least 1 and at most backchannel_max_retry_secs"
                    .into(),
            );
        }
        if self.backchannel_max_retry_secs > 86_400 {
            return Err("logout.backchannel_max_retry_secs must be at most 86400".into());
        }
        if !(10..=60_000).contains(&self.backchannel_poll_interval_ms) {
            return Err("logout.backchannel_poll_interval_ms must be 10 to 60000".into());
        }
        if !(10..=600).contains(&self.logout_token_lifetime_secs) {
            return Err("logout.logout_token_lifetime_secs must be 10 to 600".into());
        }
        Ok(())
    }

    pub fn outbound(&self) -> Outbound {
        Outbound {
            allow_http_loopback: self.insecure_allow_http_loopback,
            allow_private: self.insecure_allow_private_addresses,
        }
    }

    pub fn policy(&self) -> DeliveryPolicy {
        DeliveryPolicy {
            max_attempts: self.backchannel_max_attempts,
            first_retry: Duration::from_secs(self.backchannel_first_retry_secs),
            max_retry: Duration::from_secs(self.backchannel_max_retry_secs),
        }
    }
}

/// What one pass of [`Backchannel::run_due`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    pub delivered: u32,
    pub retrying: u32,
    pub given_up: u32,
    /// Dropped: the client is gone, disabled or no longer registers a URI.
    pub dropped: u32,
}

/// Back-channel logout delivery (module docs).
#[derive(Debug)]
pub struct Backchannel {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audit: AuditSink,
    oauth: Arc<OAuthState>,
    settings: LogoutSettings,
    http: reqwest::Client,
    wake: Arc<tokio::sync::Notify>,
}

enum Attempt {
    Delivered,
    Failed(&'static str),
    Drop(&'static str),
}

impl Backchannel {
    /// `wake`: notified when a session ends on this node ([`crate::sign_in::SignIn`]).
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        audit: AuditSink,
        oauth: Arc<OAuthState>,
        settings: LogoutSettings,
        wake: Arc<tokio::sync::Notify>,
    ) -> anyhow::Result<Self> {
        let http = outbound::client(
            settings.outbound(),
            Duration::from_millis(settings.backchannel_timeout_ms),
        )
        .map_err(|e| anyhow::anyhow!("could not build the back-channel logout HTTP client: {e}"))?;
        Ok(Self {
            store,
            clock,
            audit,
            oauth,
            settings,
            http,
            wake,
        })
    }

    pub fn settings(&self) -> &LogoutSettings {
        &self.settings
    }

    /// Delivers until aborted: a pass when a session ends here, and every poll interval.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let poll = Duration::from_millis(self.settings.backchannel_poll_interval_ms);
            let mut last_prune: Option<std::time::Instant> = None;
            loop {
                match self.run_due().await {
                    // A full batch: more may be due at once.
                    Ok(r) if r.delivered + r.retrying + r.given_up + r.dropped >= CLAIM_BATCH => {
                        continue
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "back-channel logout pass failed"),
                }
                if last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY) {
                    last_prune = Some(std::time::Instant::now());
                    if let Err(e) = self.store.prune_session_clients().await {
                        tracing::warn!(error = %e, "could not prune session clients");
                    }
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        })
    }

    /// One pass: claims the deliveries due now and makes one attempt at each, concurrently.
    pub async fn run_due(&self) -> Result<PassReport, StoreError> {
        let now = self.clock.now();
        // The lease outlasts an attempt: a claimed delivery is not claimed again while its
        // attempt may still be running.
        let lease = Duration::from_millis(self.settings.backchannel_timeout_ms)
            .saturating_mul(2)
            .saturating_add(Duration::from_secs(5));
        let claimed = self
            .store
            .claim_backchannel_deliveries(now, now.saturating_add(lease), CLAIM_BATCH)
            .await?;
        let mut tasks = tokio::task::JoinSet::new();
        for d in claimed {
            let this = self.clone_parts();
            tasks.spawn(async move { this.attempt_and_record(d).await });
        }
        let mut report = PassReport::default();
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok(Ok(Some(AfterAttempt::Delivered))) => report.delivered += 1,
                Ok(Ok(Some(AfterAttempt::Retrying))) => report.retrying += 1,
                Ok(Ok(Some(AfterAttempt::GivenUp))) => report.given_up += 1,
                Ok(Ok(Some(AfterAttempt::Dropped))) => report.dropped += 1,
                Ok(Ok(None)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not record a back-channel logout attempt")
                }
                Err(e) => tracing::error!(error = %e, "a back-channel logout attempt panicked"),
            }
        }
        Ok(report)
    }

    fn clone_parts(&self) -> Arc<Parts> {
        Arc::new(Parts {
            store: self.store.clone(),
            clock: self.clock.clone(),
            audit: self.audit.clone(),
            oauth: self.oauth.clone(),
            settings: self.settings.clone(),
            http: self.http.clone(),
        })
    }
}

enum AfterAttempt {
    Delivered,
    Retrying,
    GivenUp,
    Dropped,
}

/// What one attempt needs, owned so attempts run as separate tasks.
struct Parts {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audit: AuditSink,
    oauth: Arc<OAuthState>,
    settings: LogoutSettings,
    http: reqwest::Client,
}

impl Parts {
    async fn attempt_and_record(
        &self,
        d: BackchannelDelivery,
    ) -> Result<Option<AfterAttempt>, StoreError> {
        let outcome = self.attempt(&d).await?;
        let now = self.clock.now();
        Ok(Some(match outcome {
            Attempt::Delivered => {
                self.store.delete_backchannel_delivery(&d.id).await?;
                self.event(&d, Outcome::Success, None);
                AfterAttempt::Delivered
            }
            Attempt::Drop(why) => {
                tracing::debug!(client_id = %d.client_id, why, "back-channel logout dropped");
                self.store.delete_backchannel_delivery(&d.id).await?;
                AfterAttempt::Dropped
            }
            Attempt::Failed(why) => match self.settings.policy().after_failure(d.attempts) {
                AfterFailure::GiveUp => {
                    self.store.delete_backchannel_delivery(&d.id).await?;
                    self.event(&d, Outcome::Failure, Some(why));
                    tracing::warn!(client_id = %d.client_id, attempts = d.attempts, why, "gave up a back-channel logout");
                    AfterAttempt::GivenUp
                }
                AfterFailure::RetryIn(delay) => {
                    self.store
                        .retry_backchannel_delivery(&d.id, now.saturating_add(delay), why)
                        .await?;
                    AfterAttempt::Retrying
                }
            },
        }))
    }

    async fn attempt(&self, d: &BackchannelDelivery) -> Result<Attempt, StoreError> {
        let Some(client) = self.store.get_client(&d.client_id).await? else {
            return Ok(Attempt::Drop("client_gone"));
        };
        if client.tenant != d.tenant || client.status != ClientStatus::Active {
            return Ok(Attempt::Drop("client_inactive"));
        }
        let Some(uri) = client.backchannel_logout_uri.as_deref() else {
            return Ok(Attempt::Drop("uri_removed"));
        };
        if validate_backchannel_uri(uri, self.settings.outbound()).is_err() {
            return Ok(Attempt::Failed("uri_not_allowed"));
        }
        let Some(token) = self.mint(d, self.clock.now()) else {
            return Ok(Attempt::Failed("no_signing_key"));
        };
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("logout_token", &token)
            .finish();
        let sent = self
            .http
            .post(uri)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await;
        Ok(match sent {
            Ok(r) if r.status().is_success() => Attempt::Delivered,
            Ok(r) if r.status().is_redirection() => Attempt::Failed("redirected"),
            Ok(_) => Attempt::Failed("bad_status"),
            Err(e) if e.is_timeout() => Attempt::Failed("timeout"),
            Err(_) => Attempt::Failed("unreachable"),
        })
    }

    /// A fresh logout token for this delivery (a new `jti` and `iat` per attempt).
    fn mint(&self, d: &BackchannelDelivery, now: Timestamp) -> Option<String> {
        let signer = self.oauth.signer()?;
        let mut jti = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut jti);
        let claims = logout_token::Claims::new(
            &self.oauth.issuer,
            &d.client_id,
            now.as_secs(),
            i64::try_from(self.settings.logout_token_lifetime_secs).unwrap_or(120),
            URL_SAFE_NO_PAD.encode(jti),
            Some(d.user_id.clone()),
            Some(d.sid.clone()),
        )?;
        match signer.sign_logout(&claims) {
            Ok(t) => Some(t),
            Err(e) => {
                tracing::error!(error = %e, "could not sign a logout token");
                None
            }
        }
    }

    fn event(&self, d: &BackchannelDelivery, outcome: Outcome, reason: Option<&'static str>) {
        self.audit.record(
            EventDraft {
                tenant: d.tenant.clone(),
                actor: Actor::system(),
                credential_id: None,
                action: Action::SessionBackchannelLogout,
                outcome,
                reason: reason.map(|r| {
                    Reason::with_detail(r, format_args!("client={} sid={}", d.client_id, d.sid))
                }),
                target: Some(d.client_id.clone()),
            },
            &RequestOrigin::default(),
        );
    }
}
