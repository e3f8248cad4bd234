//! Records as stored. Secrets never appear here in plaintext: credentials are digests, private
//! keys are sealed blobs.

use portcullis_core::admin::AdminRole;
use portcullis_core::signing::{KeyState, SigningAlgorithm};
use portcullis_core::tenant::{TenantId, TenantStatus};
use portcullis_core::time::Timestamp;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTenant {
    pub id: TenantId,
    pub display_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    pub id: TenantId,
    pub display_name: String,
    pub status: TenantStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pub state: KeyState,
    /// The public JWK as JSON text.
    pub public_jwk: String,
    /// Id of the key-encryption key that sealed `sealed_private_key`.
    pub kek_id: String,
    /// AEAD envelope of the private key; opaque to storage.
    pub sealed_private_key: Vec<u8>,
    pub created_at: Timestamp,
    pub activates_at: Timestamp,
    pub retired_at: Option<Timestamp>,
    /// After this time the key may leave JWKS (every token it signed has expired).
    pub publish_until: Option<Timestamp>,
}

impl std::fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("state", &self.state)
            .field("kek_id", &self.kek_id)
            .field("sealed_private_key", &"[sealed]")
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminCredentialRecord {
    /// The lookup id embedded in the token.
    pub id: String,
    pub tenant: TenantId,
    pub role: AdminRole,
    pub name: String,
    /// Non-secret prefix for listings (`pcl_adm_live_<id>`).
    pub display_prefix: String,
    /// SHA-256 of the whole token.
    pub secret_digest: Vec<u8>,
    pub created_at: Timestamp,
    pub created_by: Option<String>,
    pub revoked_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditQuery {
    pub tenant: TenantId,
    pub since: Option<Timestamp>,
    pub until: Option<Timestamp>,
    pub action: Option<String>,
    pub limit: u32,
}
