//! The records of webhook endpoints and their delivery queue (issue 19), as storage sees them.
//! A sealed secret is ciphertext (opened only by the service, with the KEK); storage never sees
//! a plaintext webhook secret.

use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;

/// An endpoint that receives alerts. `tenant` is the tenant whose alerts it receives, or the
/// installation's `system` tenant for every tenant's.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookEndpointRecord {
    pub id: String,
    pub tenant: TenantId,
    pub url: String,
    pub description: String,
    /// The KEK that sealed `sealed_secret`.
    pub kek_id: String,
    pub sealed_secret: Vec<u8>,
    pub created_at: Timestamp,
    pub secret_rotated_at: Timestamp,
}

impl std::fmt::Debug for WebhookEndpointRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookEndpointRecord")
            .field("id", &self.id)
            .field("tenant", &self.tenant)
            .field("url", &self.url)
            .field("kek_id", &self.kek_id)
            .field("sealed_secret", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or being attempted, under a lease).
    Pending,
    Delivered,
    /// Every attempt failed: on the dead-letter list until redelivered.
    Dead,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 3] = [Self::Pending, Self::Delivered, Self::Dead];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// One alert event for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookDeliveryRecord {
    /// Also the `webhook-id` header and the CloudEvents `id`: the same on every attempt.
    pub id: String,
    pub endpoint_id: String,
    /// The endpoint's tenant (`system` for an installation-wide endpoint): who may see this row.
    pub endpoint_tenant: TenantId,
    /// The alert's tenant.
    pub tenant: TenantId,
    pub alert_id: String,
    pub rule: String,
    pub event_type: String,
    /// The body sent, fixed when queued.
    pub payload: String,
    pub status: DeliveryStatus,
    /// Attempts started so far.
    pub attempts: i64,
    pub next_attempt_at: Timestamp,
    pub lease_owner: Option<String>,
    pub lease_until: Option<Timestamp>,
    pub last_error: Option<String>,
    pub last_status: Option<i64>,
    pub created_at: Timestamp,
    /// When it was delivered or dead-lettered.
    pub finished_at: Option<Timestamp>,
}

/// Which deliveries to list, most recently queued first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliveryFilter {
    /// Only deliveries to this tenant's endpoints (`None`: every endpoint's).
    pub endpoint_tenant: Option<TenantId>,
    pub status: Option<DeliveryStatus>,
    pub endpoint_id: Option<String>,
}

/// What an attempt came to, recorded by the lease holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Failed; try again at this time.
    Retry {
        at: Timestamp,
    },
    /// Failed for the last time: dead-letter it.
    Dead,
}
