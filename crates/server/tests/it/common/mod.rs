//! Default subsystem states for in-process tests. Each test harness builds the parts it is
//! about and takes the rest from here, so adding a subsystem to `AppState` means one change here
//! rather than one in every harness.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::audit::AuditEvent;
use portcullis_core::credential::Environment;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{Clock, Timestamp};
use portcullis_server::config::OAuthConfig;
use portcullis_service::api_keys::{ApiKeyVerifier, ApiKeys, VerifierSettings};
use portcullis_service::audit::AuditSink;
use portcullis_service::keys::KeySet;
use portcullis_service::oauth::OAuthState;
use portcullis_service::revocations::Feed;
use portcullis_store::{AuditQuery, NewTenant, Store};

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

/// An admin token of `tenant`, made the way the admin API makes one (a `system` token is a
/// global admin), stored in `store`.
pub async fn admin_token(store: &dyn Store, tenant: &str) -> String {
    let (record, credential) = portcullis_http::admin::tokens::mint(
        &TenantId::parse(tenant).expect("tenant"),
        "test".into(),
        "test".into(),
        Timestamp::from_secs(1),
    );
    store
        .insert_admin_credential(&record)
        .await
        .expect("admin credential");
    credential.expose().to_owned()
}

/// Admin tokens of a seeded installation.
#[derive(Debug, Clone)]
pub struct Admins {
    /// A global admin (a token of the system tenant).
    pub global: String,
    pub acme: String,
    pub globex: String,
}

/// Creates the tenants `acme` and `globex` and an admin token for each, plus a global admin.
pub async fn seed(store: &dyn Store, now: Timestamp) -> Admins {
    for t in ["acme", "globex"] {
        store
            .create_tenant(
                &NewTenant {
                    id: TenantId::parse(t).expect("tenant"),
                    display_name: t.into(),
                },
                now,
            )
            .await
            .expect("tenant");
    }
    Admins {
        global: admin_token(store, "system").await,
        acme: admin_token(store, "acme").await,
        globex: admin_token(store, "globex").await,
    }
}

/// A tenant's stored audit events, oldest first (drain the audit writer first).
pub async fn audit_events(store: &dyn Store, tenant: &str) -> Vec<AuditEvent> {
    let mut query = AuditQuery {
        tenant: TenantId::parse(tenant).expect("tenant"),
        since: None,
        until: None,
        action: None,
        page: portcullis_store::PageRequest::first(portcullis_store::MAX_PAGE_LIMIT),
    };
    let mut events = Vec::new();
    loop {
        let page = store.query_audit_events(&query).await.expect("audit");
        events.extend(page.items);
        match page.next {
            Some(next) => query.page.after = Some(next),
            None => break,
        }
    }
    events.reverse();
    events
}
