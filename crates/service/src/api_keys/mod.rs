//! API keys outside the admin API: the in-process verifier (`verifier`), leak reports from
//! secret scanners (`leaks`) and what the public endpoints (in `portcullis-http`'s `api_keys`)
//! share ([`ApiKeyService`]). The endpoints:
//!
//! * `POST /v1/api-keys/verify`: for services in other languages. The caller authenticates with
//!   an admin token (`Authorization: Bearer pcl_adm_...`): a tenant admin verifies keys of its own
//!   tenant only; a global admin may name any tenant or none. The key travels in the JSON body,
//!   never in the URL.
//! * `POST /v1/api-keys/leaks`: a secret scanner's webhook. The body is a JSON array of found
//!   tokens; matching keys are revoked at once. When `api_keys.leak_report_hmac_key` is set, the
//!   body must carry `X-Portcullis-Signature: sha256=<hex HMAC-SHA256 of the body>`; when
//!   `api_keys.leak_report_ecdsa_public_key` is set, a GitHub-style
//!   `Github-Public-Key-Signature` (base64 DER ECDSA P-256 SHA-256) by that key is accepted.
//!
//! * `GET /v1/tenants/{tenant}/api-keys/self`: authenticated by an API key of that tenant
//!   (`X-API-Key` or `Authorization: Bearer`), answers what the key may do. It is the smallest
//!   route protected by `portcullis_http::api_keys::extract::ApiKeyAuth`, the extractor other
//!   routes use.
//!
//! Keys sent in a URL query string are refused on these routes: URLs end up in proxy and access
//! logs. No endpoint reads a key from the query string.

pub mod leaks;
pub mod verifier;

use std::sync::Arc;

use portcullis_core::secret::Secret;
use portcullis_core::time::Clock;
use portcullis_store::Store;

use crate::audit::AuditSink;

pub use verifier::{ApiKeyVerifier, VerifierSettings, VerifyError, VerifyRequest};

/// What the API key endpoints and admin handlers share, held in `AppState`.
#[derive(Debug)]
pub struct ApiKeys {
    pub verifier: Arc<ApiKeyVerifier>,
    /// The secret scanner's HMAC key.
    pub leak_report_key: Option<Secret<Vec<u8>>>,
    /// The secret scanner's ECDSA P-256 public key (SubjectPublicKeyInfo DER). With neither key
    /// configured, unsigned leak reports are accepted; with either, a valid signature by one
    /// of them is required.
    pub leak_report_ecdsa_key: Option<Vec<u8>>,
}

/// The API key subsystem as its public endpoints use it: the verifier and leak-report keys,
/// and the storage, clock and audit sink those endpoints (and the caller authentication of the
/// verify endpoint) work with. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ApiKeyService {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub audit: AuditSink,
    pub keys: Arc<ApiKeys>,
}
