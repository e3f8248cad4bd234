//! Sign-in state as stored: sessions, authorization codes, refresh-token families and their
//! tokens, consents. Secrets never appear here: session cookies, codes and refresh tokens are
//! SHA-256 digests.
//!
//! Ids are core's typed ids ([`UserId`], [`ClientId`], [`SessionId`], [`FamilyId`]), stored as
//! their text and parsed once, when a row is read: a stored id that does not parse is the
//! store's [`crate::StoreError::Corrupt`], so no caller re-checks them.
//!
//! Users are referenced by their text id (`usr_...`) and tenant with no foreign key: deleting a
//! user must go through the service, which revokes the user's sessions and families (writing the
//! revocation entries verifiers need), never through a silent cascade.

use portcullis_core::client::ClientId;
use portcullis_core::refresh::FamilyId;
use portcullis_core::session::SessionId;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_core::user::UserId;

/// A sign-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the cookie secret.
    pub digest: Vec<u8>,
    /// The public `sid`.
    pub id: SessionId,
    pub tenant: TenantId,
    pub user_id: UserId,
    pub auth_time: Timestamp,
    pub amr: Vec<String>,
    pub acr: Option<String>,
    pub created_at: Timestamp,
    pub last_seen_at: Timestamp,
    pub idle_expires_at: Timestamp,
    pub absolute_expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
}

/// What the first redemption of a code issued, recorded so a replay can revoke it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeIssuance {
    /// The access tokens' `jti`s.
    pub jtis: Vec<String>,
    /// When the latest of those access tokens expires (the revocation entries may go then).
    pub tokens_expire_at: Timestamp,
    /// The refresh-token family started, if any.
    pub family_id: Option<FamilyId>,
}

/// An authorization code and everything it is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCodeRecord {
    /// SHA-256 of the code.
    pub digest: Vec<u8>,
    pub tenant: TenantId,
    pub client_id: ClientId,
    pub redirect_uri: String,
    /// The S256 PKCE challenge.
    pub code_challenge: String,
    pub nonce: Option<String>,
    pub scope: Vec<String>,
    pub user_id: UserId,
    pub sid: SessionId,
    pub auth_time: Timestamp,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub consumed_at: Option<Timestamp>,
    pub issued: Option<CodeIssuance>,
    /// The DPoP key thumbprint the authorization request bound the code to (RFC 9449 section
    /// 10, `dpop_jkt`): the redeeming request's proof must be signed by that key.
    pub dpop_jkt: Option<String>,
}

/// The result of redeeming a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeConsumption {
    /// This call redeemed it (and nobody else ever will).
    Redeemed(AuthCodeRecord),
    /// It had been redeemed before: a replay. The record carries what the first redemption
    /// issued (if it got as far as recording it), and the code is marked replayed so a
    /// redemption still issuing learns of it ([`crate::AuthCodeStore::record_code_issuance`]).
    AlreadyUsed(AuthCodeRecord),
    /// Never redeemed, and past its expiry.
    Expired,
    NotFound,
}

/// A refresh-token family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshFamilyRecord {
    pub id: FamilyId,
    pub tenant: TenantId,
    pub client_id: ClientId,
    pub user_id: UserId,
    /// The session it was issued under.
    pub sid: Option<SessionId>,
    pub scope: Vec<String>,
    pub auth_time: Timestamp,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    pub created_at: Timestamp,
    pub idle_expires_at: Timestamp,
    pub absolute_expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub revoked_reason: Option<String>,
    /// The RFC 7638 thumbprint of the DPoP key a public client's family is bound to: every
    /// refresh must come with a proof of that key (RFC 9449 section 5).
    pub dpop_jkt: Option<String>,
    /// The `x5t#S256` of the client certificate an mTLS client's family is bound to: every
    /// refresh must come over a connection with that certificate (RFC 8705 section 4).
    pub cert_x5t: Option<String>,
}

/// One refresh token of a family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    /// SHA-256 of the token.
    pub digest: Vec<u8>,
    pub family_id: FamilyId,
    /// 0 for the first token of the family, +1 per rotation.
    pub generation: i64,
    pub created_at: Timestamp,
    pub rotated_at: Option<Timestamp>,
    pub successor_digest: Option<Vec<u8>>,
}

/// A refresh token as a grant reads it, in one lookup: the token, its family, and the status
/// of the family's user (`None`: no such user in the family's tenant any more), so a refresh
/// for a disabled or deleted user is refused without a second read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRead {
    pub token: RefreshTokenRecord,
    pub family: RefreshFamilyRecord,
    pub user_status: Option<portcullis_core::user::UserStatus>,
}

/// The result of rotating a refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// This call rotated it: the successor is stored and the family's idle deadline moved.
    Rotated,
    /// Someone rotated it first (another tab, another node, or a thief): its one successor.
    AlreadyRotated {
        successor_digest: Vec<u8>,
        rotated_at: Timestamp,
    },
    /// The family was revoked: nothing changed.
    FamilyRevoked,
    NotFound,
}

/// Scopes a user granted a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRecord {
    pub tenant: TenantId,
    pub user_id: UserId,
    pub client_id: ClientId,
    pub scopes: Vec<String>,
    pub granted_at: Timestamp,
}

/// A tenant's sign-in page branding, as stored (checked by the service before writing; read back
/// through `portcullis_core::branding`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrandingRecord {
    pub tenant: TenantId,
    pub display_name: Option<String>,
    pub logo_url: Option<String>,
    pub accent_colour: Option<String>,
    pub updated_at: Timestamp,
}

/// A pushed authorization request (RFC 9126), keyed by the SHA-256 digest of its request_uri's
/// random part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedRequestRecord {
    pub digest: Vec<u8>,
    pub tenant: TenantId,
    pub client_id: ClientId,
    /// The authorization request's parameters as pushed (client authentication removed), a
    /// JSON array of `[name, value]` pairs.
    pub params: String,
    pub created_at: Timestamp,
    /// Until opened: a minute after the push. Once opened: the end of the sign-in window.
    pub expires_at: Timestamp,
    pub opened_at: Option<Timestamp>,
    pub used_at: Option<Timestamp>,
}
