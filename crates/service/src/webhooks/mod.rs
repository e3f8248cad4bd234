//! Webhooks: the detectors' alerts sent to operators' endpoints (issue 19). Endpoints belong to a
//! tenant (its alerts) or to the installation (every tenant's); each has a signing secret, shown
//! once and stored sealed under the KEK. An alert update queues one delivery per endpoint in the
//! store ([`Webhooks::enqueue`]); the dispatcher ([`deliver`]) claims due deliveries under a
//! lease, sends them signed per Standard Webhooks with a CloudEvents 1.0 body, retries with
//! exponential backoff and jitter, and dead-letters what never got through.
//!
//! What this module must never do: make a request path wait for a receiver (queueing happens in
//! the detectors' writer task, sending in the dispatcher), send a shadow alert, follow a
//! redirect, reach a private address without `insecure_allow_private_addresses`, or log or
//! return a secret except once, to the admin who created or rotated it.

pub mod address;
pub mod deliver;
pub mod event;
pub mod sign;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::detect::Rule;
use portcullis_core::metrics::{Kind, Text};
use portcullis_core::secret::Secret;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Clock;
use portcullis_store::{
    AlertRecord, DeliveryStatus, Store, WebhookDeliveryRecord, WebhookEndpointRecord,
};
use serde::{Deserialize, Serialize};

use crate::kek::Keyring;

/// The `[webhooks]` configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Runs the dispatcher on this node (deliveries queue regardless; any node with it on sends
    /// them).
    pub enabled: bool,
    /// Longest one attempt may take, connecting included.
    pub timeout_ms: u64,
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: u32,
    /// Wait after the first failed attempt; doubles with each further one (with jitter).
    pub retry_base_ms: u64,
    /// Longest wait between two attempts.
    pub retry_max_ms: u64,
    /// How long a node holds a claimed delivery before another may take it over (a node that
    /// died mid-attempt). Longer than `timeout_ms`.
    pub lease_secs: u64,
    /// How often the dispatcher looks for due deliveries when nothing wakes it.
    pub poll_interval_ms: u64,
    /// Deliveries claimed (and sent concurrently) at once.
    pub batch: u32,
    /// Accept plain `http://` endpoint URLs (tests, closed networks).
    pub insecure_allow_http: bool,
    /// Accept endpoints on loopback, private and link-local addresses (tests, closed networks).
    pub insecure_allow_private_addresses: bool,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            timeout_ms: 10_000,
            max_attempts: 8,
            retry_base_ms: 30_000,
            retry_max_ms: 3_600_000,
            lease_secs: 60,
            poll_interval_ms: 1_000,
            batch: 16,
            insecure_allow_http: false,
            insecure_allow_private_addresses: false,
        }
    }
}

impl WebhookSettings {
    /// Every value that cannot work, as messages for `config check`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut need = |ok: bool, what: &str| {
            if !ok {
                out.push(format!("webhooks.{what}"));
            }
        };
        need(
            (100..=60_000).contains(&self.timeout_ms),
            "timeout_ms must be 100 to 60000",
        );
        need(
            (1..=50).contains(&self.max_attempts),
            "max_attempts must be 1 to 50",
        );
        need(self.retry_base_ms >= 1, "retry_base_ms must be positive");
        need(
            self.retry_max_ms >= self.retry_base_ms,
            "retry_max_ms must be at least retry_base_ms",
        );
        need(
            self.lease_secs.saturating_mul(1000) > self.timeout_ms,
            "lease_secs must be longer than timeout_ms",
        );
        need(
            (10..=60_000).contains(&self.poll_interval_ms),
            "poll_interval_ms must be 10 to 60000",
        );
        need((1..=256).contains(&self.batch), "batch must be 1 to 256");
        out
    }

    fn allow(&self) -> address::Allow {
        address::Allow {
            http: self.insecure_allow_http,
            private_addresses: self.insecure_allow_private_addresses,
        }
    }

    /// The wait before attempt `attempts + 1`, after `attempts` failed ones: base × 2^(n-1),
    /// capped, then drawn uniformly from its upper half so a receiver coming back is not hit by
    /// every queued delivery at once.
    pub fn backoff(&self, attempts: u32, unit_random: f64) -> Duration {
        let exp = attempts.saturating_sub(1).min(40);
        let full = self
            .retry_base_ms
            .saturating_mul(1u64 << exp)
            .min(self.retry_max_ms);
        let half = full / 2;
        let jitter = (half as f64 * unit_random.clamp(0.0, 1.0)) as u64;
        Duration::from_millis(half + jitter)
    }
}

/// Outcomes counted per rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    Retried,
    DeadLettered,
}

impl Outcome {
    const ALL: [Outcome; 3] = [Self::Delivered, Self::Retried, Self::DeadLettered];

    fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retried => "retried",
            Self::DeadLettered => "dead_lettered",
        }
    }
}

const RULES: usize = Rule::ALL.len();

/// Webhook counters: attempts by rule and outcome, deliveries queued, and queueing failures.
#[derive(Debug, Default)]
pub struct WebhookMetrics {
    outcomes: [[AtomicU64; 3]; RULES],
    queued: AtomicU64,
    queue_failures: AtomicU64,
}

fn rule_index(rule: &str) -> Option<usize> {
    Rule::ALL.iter().position(|r| r.as_str() == rule)
}

impl WebhookMetrics {
    pub fn count(&self, rule: &str, outcome: Outcome) -> u64 {
        let o = Outcome::ALL.iter().position(|x| *x == outcome).unwrap_or(0);
        rule_index(rule).map_or(0, |r| self.outcomes[r][o].load(Ordering::Relaxed))
    }

    fn add(&self, rule: &str, outcome: Outcome) {
        let o = Outcome::ALL.iter().position(|x| *x == outcome).unwrap_or(0);
        if let Some(r) = rule_index(rule) {
            self.outcomes[r][o].fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    pub fn write(&self, t: &mut Text) {
        let name = "portcullis_webhook_deliveries_total";
        t.header(
            name,
            "Webhook delivery attempts by rule and outcome (delivered, retried, dead_lettered).",
            Kind::Counter,
        );
        for (ri, rule) in Rule::ALL.iter().enumerate() {
            for (oi, outcome) in Outcome::ALL.iter().enumerate() {
                let n = self.outcomes[ri][oi].load(Ordering::Relaxed);
                t.sample(
                    name,
                    &[("rule", rule.as_str()), ("outcome", outcome.as_str())],
                    n,
                );
            }
        }
        t.single(
            "portcullis_webhook_queued_total",
            "Webhook deliveries queued (one per alert update and endpoint).",
            Kind::Counter,
            self.queued(),
        );
        t.single(
            "portcullis_webhook_queue_failures_total",
            "Alert updates whose webhook deliveries could not be queued (database error).",
            Kind::Counter,
            self.queue_failures.load(Ordering::Relaxed),
        );
    }
}

/// Why an endpoint operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("{0}")]
    Invalid(&'static str),
    #[error("no such endpoint")]
    NotFound,
    #[error("the webhook secret could not be sealed or opened: {0}")]
    Kek(#[from] crate::kek::KekError),
    #[error("no random bytes for a secret")]
    Random,
    #[error(transparent)]
    Store(#[from] portcullis_store::StoreError),
}

/// Endpoint management, queueing and what the dispatcher shares.
#[derive(Debug)]
pub struct Webhooks {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    keyring: Keyring,
    /// The CloudEvents `source`: the issuer.
    source: String,
    settings: WebhookSettings,
    pub metrics: Arc<WebhookMetrics>,
    /// Wakes the dispatcher when deliveries are queued.
    wake: tokio::sync::Notify,
    /// This node's lease owner name.
    node: String,
}

/// Longest endpoint description.
pub const MAX_DESCRIPTION: usize = 200;

/// A delivery's body is at most this long (the evidence is bounded; this is the backstop).
pub const MAX_BODY: usize = 64 * 1024;

/// The associated data a webhook secret is sealed with: binds it to its endpoint's row.
pub fn secret_aad(endpoint_id: &str) -> Vec<u8> {
    format!("portcullis/webhook-secret/{endpoint_id}").into_bytes()
}

impl Webhooks {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        keyring: Keyring,
        source: String,
        settings: WebhookSettings,
    ) -> Self {
        Self {
            store,
            clock,
            keyring,
            source,
            settings,
            metrics: Arc::new(WebhookMetrics::default()),
            wake: tokio::sync::Notify::new(),
            node: format!("node-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    pub fn settings(&self) -> &WebhookSettings {
        &self.settings
    }

    /// Checks an endpoint URL against the rules in force.
    pub fn validate_url(&self, url: &str) -> Result<String, WebhookError> {
        address::validate_url(url, self.settings.allow())
            .map(String::from)
            .map_err(WebhookError::Invalid)
    }

    fn seal(&self, id: &str, secret: &Secret<String>) -> Result<(String, Vec<u8>), WebhookError> {
        Ok(self
            .keyring
            .seal(secret.expose().as_bytes(), &secret_aad(id))?)
    }

    /// Opens an endpoint's secret.
    pub fn open_secret(&self, e: &WebhookEndpointRecord) -> Result<Secret<String>, WebhookError> {
        let plain = self
            .keyring
            .open(&e.kek_id, &e.sealed_secret, &secret_aad(&e.id))?;
        String::from_utf8(plain.expose().clone())
            .map(Secret::new)
            .map_err(|_| WebhookError::Invalid("the stored secret is not text"))
    }

    /// Registers an endpoint for `tenant` (`system`: the installation) and returns it with its
    /// secret, the only time the secret is shown.
    pub async fn create(
        &self,
        tenant: &TenantId,
        url: &str,
        description: &str,
    ) -> Result<(WebhookEndpointRecord, Secret<String>), WebhookError> {
        let url = self.validate_url(url)?;
        if description.chars().count() > MAX_DESCRIPTION
            || description.chars().any(char::is_control)
        {
            return Err(WebhookError::Invalid(
                "description is at most 200 characters, without control characters",
            ));
        }
        let id = format!("wh_{}", uuid::Uuid::now_v7().simple());
        let secret = sign::generate().map_err(|_| WebhookError::Random)?;
        let (kek_id, sealed) = self.seal(&id, &secret)?;
        let now = self.clock.now();
        let record = WebhookEndpointRecord {
            id,
            tenant: tenant.clone(),
            url,
            description: description.to_owned(),
            kek_id,
            sealed_secret: sealed,
            created_at: now,
            secret_rotated_at: now,
        };
        self.store.create_webhook_endpoint(&record).await?;
        Ok((record, secret))
    }

    /// Replaces an endpoint's secret at once (the old one stops signing) and returns the new one.
    pub async fn rotate_secret(
        &self,
        tenant: &TenantId,
        id: &str,
    ) -> Result<(WebhookEndpointRecord, Secret<String>), WebhookError> {
        let secret = sign::generate().map_err(|_| WebhookError::Random)?;
        let (kek_id, sealed) = self.seal(id, &secret)?;
        let now = self.clock.now();
        if !self
            .store
            .set_webhook_secret(tenant, id, &kek_id, &sealed, now)
            .await?
        {
            return Err(WebhookError::NotFound);
        }
        let record = self
            .store
            .get_webhook_endpoint(tenant, id)
            .await?
            .ok_or(WebhookError::NotFound)?;
        Ok((record, secret))
    }

    /// Queues one delivery of an alert update for every endpoint that receives its tenant's
    /// alerts, and wakes the dispatcher. Shadow alerts are never queued. `opened`: this update
    /// opened the alert (else it added to a live one). Failures are counted and logged: the
    /// caller (the detectors' writer) never waits on a receiver, only on this insert.
    pub async fn enqueue(&self, alert: &AlertRecord, opened: bool) {
        if alert.shadow {
            return;
        }
        match self.queue(alert, opened).await {
            Ok(0) => {}
            Ok(n) => {
                self.metrics.queued.fetch_add(n, Ordering::Relaxed);
                self.wake.notify_one();
            }
            Err(e) => {
                self.metrics.queue_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, alert = %alert.id, "could not queue webhook deliveries");
            }
        }
    }

    async fn queue(&self, alert: &AlertRecord, opened: bool) -> Result<u64, WebhookError> {
        let endpoints = self.store.webhook_endpoints_for(&alert.tenant).await?;
        if endpoints.is_empty() {
            return Ok(0);
        }
        let now = self.clock.now();
        let event_type = event::event_type(opened);
        let deliveries: Vec<WebhookDeliveryRecord> = endpoints
            .iter()
            .map(|e| {
                let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
                let payload = event::cloud_event(&id, &self.source, event_type, now, alert);
                WebhookDeliveryRecord {
                    id,
                    endpoint_id: e.id.clone(),
                    endpoint_tenant: e.tenant.clone(),
                    tenant: alert.tenant.clone(),
                    alert_id: alert.id.clone(),
                    rule: alert.rule.clone(),
                    event_type: event_type.to_owned(),
                    payload,
                    status: DeliveryStatus::Pending,
                    attempts: 0,
                    next_attempt_at: now,
                    lease_owner: None,
                    lease_until: None,
                    last_error: None,
                    last_status: None,
                    created_at: now,
                    finished_at: None,
                }
            })
            .collect();
        self.store.enqueue_webhook_deliveries(&deliveries).await?;
        Ok(deliveries.len() as u64)
    }

    /// Moves a dead-lettered delivery back to the queue, due now.
    pub async fn redeliver(
        &self,
        endpoint_tenant: Option<&TenantId>,
        id: &str,
    ) -> Result<bool, WebhookError> {
        let done = self
            .store
            .redeliver_webhook(endpoint_tenant, id, self.clock.now())
            .await?;
        if done {
            self.wake.notify_one();
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests;
