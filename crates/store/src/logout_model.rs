//! Back-channel logout state as stored (OpenID Connect Back-Channel Logout 1.0): which clients a
//! session issued tokens to, and the logout notifications still to deliver. No token is stored:
//! the logout token is minted at each attempt from these fields.

use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;

/// One logout notification to deliver: session `sid` of `user_id` ended, tell `client_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackchannelDelivery {
    /// `<sid>:<client_id>`: one delivery per ended session and client, however often queued.
    pub id: String,
    pub tenant: TenantId,
    pub client_id: String,
    pub sid: String,
    pub user_id: String,
    /// Attempts started so far (a claim counts as one).
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub created_at: Timestamp,
    /// Why the last attempt failed (a short reason).
    pub last_error: Option<String>,
}
