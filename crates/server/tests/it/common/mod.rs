//! What the in-process test servers share: the configuration they start from and the one way
//! they are built, `serve::assemble` (the function `serve` runs), so no harness builds an
//! `AppState` by hand and a new subsystem is wired once, for production and tests alike. Also
//! seeded tenants and admin tokens, and reading the audit log.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use portcullis_core::audit::AuditEvent;
use portcullis_core::signing::SigningAlgorithm;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{ManualClock, Timestamp};
use portcullis_server::config::{ApiKeysConfig, Config, SigningConfig};
use portcullis_server::serve::{self, Assembled, Hooks};
use portcullis_store::{AuditQuery, NewTenant, Store};

pub const ISSUER: &str = "http://127.0.0.1:8080";

/// The configuration test servers are assembled from: data (the KEK, the bootstrap token) in
/// `dir`, ES256 keys rotated only on demand, API keys cached for an hour, and no background
/// step that would race a test's manual clock (the signing-key check and the usage flush are
/// an hour or a day apart; tests step rotation and flush usage themselves).
pub fn config(dir: &Path) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        signing: SigningConfig {
            algorithm: SigningAlgorithm::ES256,
            rotation_interval_secs: 0,
            check_interval_secs: 86_400,
            ..SigningConfig::default()
        },
        api_keys: ApiKeysConfig {
            cache_capacity: 1_000,
            cache_ttl_ms: 3_600_000,
            usage_flush_interval_ms: 86_400_000,
            ..ApiKeysConfig::default()
        },
        ..Config::default()
    }
}

/// The app `serve` would run with `config` on `store`, reading the time from `clock`. The KEK
/// is read from (or created in) the configuration's data directory, so nodes given the same
/// directory share their signing keys.
pub async fn assemble(
    config: &Config,
    issuer: &str,
    store: Arc<dyn Store>,
    clock: Arc<ManualClock>,
) -> Assembled {
    assemble_with(config, issuer, store, Hooks::new(clock)).await
}

/// [`assemble`] with other [`Hooks`].
pub async fn assemble_with(
    config: &Config,
    issuer: &str,
    store: Arc<dyn Store>,
    hooks: Hooks,
) -> Assembled {
    let keyring = serve::load_or_create_keyring(config, store.as_ref())
        .await
        .expect("keyring");
    serve::assemble(config, issuer.into(), store, keyring, hooks)
        .await
        .expect("assemble")
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
