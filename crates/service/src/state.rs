//! The state the service's subsystems share: storage, clock, audit sink, signing keys, API key
//! verification, the OAuth state and the revocation feed's settings. Built once by the assembly
//! (`portcullis-server`) and handed to the HTTP handlers.
//!
//! This module must never hold a rule: it only groups what the subsystems need.

use std::sync::Arc;

use portcullis_core::time::{Clock, Timestamp};
use portcullis_store::Store;

use crate::api_keys::ApiKeys;
use crate::audit::AuditSink;
use crate::keys::KeySet;

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub audit: AuditSink,
    pub keys: Arc<KeySet>,
    pub api_keys: Arc<ApiKeys>,
    /// Issuer, token lifetimes, the signer and the failure throttle of the OAuth endpoints.
    pub oauth: Arc<crate::oauth::OAuthState>,
    /// The revocation feed's heartbeat and shutdown signal.
    pub revocations: Arc<crate::revocations::Feed>,
    /// Users' password rule and hashing pool, one-time links and the mailer.
    pub users: Arc<crate::users::Users>,
}

/// RFC 3339 text for API responses.
pub fn rfc3339(t: Timestamp) -> String {
    let ms = u64::try_from(t.as_millis()).unwrap_or(0);
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(when).to_string()
}
