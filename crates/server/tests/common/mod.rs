//! Default subsystem states for in-process tests. Each test harness builds the parts it is
//! about and takes the rest from here, so adding a subsystem to `AppState` means one change here
//! rather than one in every harness.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::credential::Environment;
use portcullis_core::time::Clock;
use portcullis_server::api_keys::{ApiKeyVerifier, ApiKeys, VerifierSettings};
use portcullis_server::audit::AuditSink;
use portcullis_server::config::OAuthConfig;
use portcullis_server::keys::KeySet;
use portcullis_server::oauth::OAuthState;
use portcullis_server::revocations::Feed;
use portcullis_store::Store;

pub const ISSUER: &str = "http://127.0.0.1:8080";

/// API key verification for the `live` environment, no leak-report keys.
pub fn api_keys(store: Arc<dyn Store>, clock: Arc<dyn Clock>, audit: AuditSink) -> Arc<ApiKeys> {
    Arc::new(ApiKeys {
        verifier: Arc::new(ApiKeyVerifier::new(
            store,
            clock,
            audit,
            VerifierSettings {
                environment: Environment::live(),
                cache_capacity: 1_000,
                cache_ttl: Duration::from_secs(3_600),
            },
        )),
        leak_report_key: None,
        leak_report_ecdsa_key: None,
    })
}

/// The OAuth endpoints with default lifetimes, signing with `keys`' active key, no rotation.
pub fn oauth(keys: &KeySet) -> Arc<OAuthState> {
    Arc::new(OAuthState::new(ISSUER.into(), &OAuthConfig::default(), keys).expect("oauth state"))
}

/// The revocation feed with the default one-second heartbeat.
pub fn revocations() -> Arc<Feed> {
    Arc::new(Feed::new(Duration::from_secs(1)))
}
