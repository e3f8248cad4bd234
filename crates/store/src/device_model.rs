//! Device sign-in state as stored (RFC 8628) and admin roles held by users. Device and user
//! codes appear only as SHA-256 digests.

use portcullis_core::admin::AdminRole;
use portcullis_core::client::ClientId;
use portcullis_core::device::DeviceStatus;
use portcullis_core::session::SessionId;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_core::user::UserId;

/// One device authorization request and where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuthorizationRecord {
    /// SHA-256 of the device code.
    pub device_digest: Vec<u8>,
    /// SHA-256 of the user code's canonical letters.
    pub user_code_digest: Vec<u8>,
    pub tenant: TenantId,
    pub client_id: ClientId,
    pub scope: Vec<String>,
    pub status: DeviceStatus,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// The polling interval the device must keep, raised by each `slow_down`.
    pub interval_secs: u64,
    pub last_polled_at: Option<Timestamp>,
    /// Who approved or denied (set with the decision).
    pub user_id: Option<UserId>,
    /// The approving session's `sid` and sign-in time.
    pub sid: Option<SessionId>,
    pub auth_time: Option<Timestamp>,
    pub decided_at: Option<Timestamp>,
}

/// A person's decision on the verification page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceDecision {
    pub approve: bool,
    pub user_id: UserId,
    pub sid: SessionId,
    pub auth_time: Timestamp,
    pub at: Timestamp,
}

/// An admin role held by a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAdminRole {
    pub tenant: TenantId,
    pub user_id: UserId,
    pub role: AdminRole,
    pub granted_at: Timestamp,
    /// Who granted it (an audit actor, `admin:<id>` or `user:<id>`).
    pub granted_by: String,
}
