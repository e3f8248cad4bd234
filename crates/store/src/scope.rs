//! A storage handle for one tenant: [`TenantScope`] looks objects up with the tenant in the
//! query, so code that reads a tenant's client, API key, resource server, user or alert through
//! it cannot get another tenant's row, whatever id it is handed. The admin API's tenant routes
//! read single objects through it instead of a global lookup followed by a filter.
//!
//! This module must never offer a lookup that is not bound to its tenant; global lookups (the
//! token endpoint finding a client by its globally unique id) stay on [`crate::Store`].

use std::sync::Arc;

use portcullis_core::tenant::TenantId;
use portcullis_core::user::UserId;

use crate::{AlertRecord, ApiKeyRecord, OAuthClient, ResourceServer, Result, Store, UserRecord};

/// Ids longer than this are no object's id: looked up, they are simply not found.
const MAX_ID_LEN: usize = 64;

/// Storage seen from one tenant.
#[derive(Clone)]
pub struct TenantScope {
    store: Arc<dyn Store>,
    tenant: TenantId,
}

impl std::fmt::Debug for TenantScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantScope")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl TenantScope {
    pub fn new(store: Arc<dyn Store>, tenant: TenantId) -> Self {
        Self { store, tenant }
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The tenant's client `id`, archived or not.
    pub async fn client(&self, id: &str) -> Result<Option<OAuthClient>> {
        if id.len() > MAX_ID_LEN {
            return Ok(None);
        }
        self.store.get_tenant_client(&self.tenant, id).await
    }

    /// The tenant's API key `id`.
    pub async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
        if id.len() > MAX_ID_LEN {
            return Ok(None);
        }
        self.store.get_tenant_api_key(&self.tenant, id).await
    }

    /// The tenant's resource server `id`.
    pub async fn resource_server(&self, id: &str) -> Result<Option<ResourceServer>> {
        if id.len() > MAX_ID_LEN {
            return Ok(None);
        }
        self.store.get_resource_server(&self.tenant, id).await
    }

    /// The tenant's user `id`.
    pub async fn user(&self, id: &UserId) -> Result<Option<UserRecord>> {
        self.store.get_user(&self.tenant, id).await
    }

    /// The tenant's alert `id`.
    pub async fn alert(&self, id: &str) -> Result<Option<AlertRecord>> {
        if id.len() > MAX_ID_LEN {
            return Ok(None);
        }
        self.store.get_alert(Some(&self.tenant), id).await
    }
}
