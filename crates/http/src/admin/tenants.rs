//! Tenant lifecycle: create, list, show, disable, enable, archive.
//!
//! Archiving is disabling for good: in one transaction the tenant is disabled, recorded archived
//! and a `tenant` revocation-log entry revokes its tokens issued until then. Its API keys,
//! clients and admin credentials are refused from then on (the tenant is disabled), it leaves
//! the default tenant list, it can never be enabled again, and its id is never reused.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::audit::{Action, Outcome};
use portcullis_core::revocation::RevocationKind;
use portcullis_core::tenant::{TenantId, TenantStatus};
use portcullis_store::{Archivable, ArchivedKind, NewRevocation, NewTenant, StoreError, Tenant};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::archive::{self, ArchivedParams};
use super::auth::{GlobalAdmin, TenantAdmin};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::page::{ListQuery, Paged};
use crate::state::TenantsAdmin;
use portcullis_service::audit::EventDraft;
use portcullis_service::state::rfc3339;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    #[schema(pattern = "^[a-z][a-z0-9-]{0,61}[a-z0-9]$")]
    id: String,
    display_name: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    id: String,
    display_name: String,
    #[schema(schema_with = super::openapi::tenant_status)]
    status: TenantStatus,
    created_at: String,
    updated_at: String,
    /// When the tenant was archived (`null`: it is not).
    archived_at: Option<String>,
}

impl From<Tenant> for TenantView {
    fn from(t: Tenant) -> Self {
        Archivable {
            item: t,
            archived_at: None,
        }
        .into()
    }
}

impl From<Archivable<Tenant>> for TenantView {
    fn from(a: Archivable<Tenant>) -> Self {
        let t = a.item;
        Self {
            id: t.id.to_string(),
            display_name: t.display_name,
            status: t.status,
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
            archived_at: a.archived_at.map(rfc3339),
        }
    }
}

/// The tenant with whether it is archived.
async fn load(state: &TenantsAdmin, id: &TenantId) -> Result<TenantView, ApiError> {
    let tenant = state
        .store
        .get_tenant(id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let archived_at = state
        .store
        .archived_at(ArchivedKind::Tenant, id.as_str())
        .await?;
    Ok(Archivable {
        item: tenant,
        archived_at,
    }
    .into())
}

/// A human-facing label: 1 to 200 characters, no control characters.
pub fn validate_display_name(name: &str) -> Result<String, ApiError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(ApiError::invalid_request(
            "display_name must be 1 to 200 characters without control characters",
        ));
    }
    Ok(name.to_owned())
}

#[utoipa::path(post, path = "/admin/v1/tenants", tag = "tenants", request_body = CreateTenant,
    responses((status = 201, description = "The tenant", body = TenantView)))]
pub async fn create(
    admin: GlobalAdmin,
    State(state): State<TenantsAdmin>,
    ApiJson(body): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<TenantView>), ApiError> {
    let id = TenantId::parse_new(&body.id).map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let display_name = validate_display_name(body.display_name.as_deref().unwrap_or(id.as_str()))?;
    let tenant = state
        .store
        .create_tenant(
            &NewTenant {
                id: id.clone(),
                display_name,
            },
            state.clock.now(),
        )
        .await
        .map_err(|e| match e {
            StoreError::Conflict => ApiError::conflict("a tenant with this id already exists"),
            other => other.into(),
        })?;
    record(&state, &admin, &id, Action::TenantCreate);
    // The tenant's own client for `portcullis login`. Should this fail, the next start-up
    // creates it (`ensure_clients`); the tenant itself is created either way.
    match portcullis_service::tokens::cli_session::ensure_client(
        state.store.as_ref(),
        state.clock.as_ref(),
        Some(&state.audit),
        &id,
    )
    .await
    {
        // Its id is predictable: a lookup made before it existed may be cached as unknown.
        Ok(_) => state
            .oauth
            .directory
            .client_changed(&portcullis_core::client::cli_client_id(&id)),
        Err(e) => {
            tracing::warn!(tenant = %id, error = %e, "could not create the tenant's CLI client")
        }
    }
    Ok((StatusCode::CREATED, Json(tenant.into())))
}

#[utoipa::path(get, path = "/admin/v1/tenants", tag = "tenants", params(crate::page::PageParams, ArchivedParams),
    responses((status = 200, description = "A page of tenants, oldest first", body = Paged<TenantView>)))]
pub async fn list(
    _admin: GlobalAdmin,
    State(state): State<TenantsAdmin>,
    query: ListQuery<ArchivedParams>,
) -> Result<Json<Paged<TenantView>>, ApiError> {
    const SCOPE: &str = "tenants";
    let page = query.paging.request(SCOPE)?;
    let tenants = state
        .store
        .list_tenants(&page, query.filter.filter())
        .await?;
    Ok(Json(Paged::new(tenants, SCOPE, Into::into)))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}", tag = "tenants", params(super::openapi::TenantPath),
    responses((status = 200, description = "The tenant", body = TenantView)))]
pub async fn show(
    admin: TenantAdmin,
    State(state): State<TenantsAdmin>,
) -> Result<Json<TenantView>, ApiError> {
    Ok(Json(load(&state, &admin.tenant).await?))
}

/// Archives the tenant: see the module docs.
#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/archive", tag = "tenants", params(super::openapi::TenantPath),
    responses((status = 200, description = "The tenant, archived: disabled for good, its tokens issued until now revoked", body = TenantView)))]
pub async fn archive(
    admin: GlobalAdmin,
    State(state): State<TenantsAdmin>,
    Path(raw): Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    let id = TenantId::parse(&raw).map_err(|e| ApiError::invalid_request(e.to_string()))?;
    if id.is_system() {
        return Err(ApiError::invalid_request(
            "the system tenant cannot be archived",
        ));
    }
    let now = state.clock.now();
    let revocation = NewRevocation {
        tenant: id.clone(),
        kind: RevocationKind::Tenant,
        subject: id.to_string(),
        revoked_before: Some(now),
        expires_at: Some(now.saturating_add(state.oauth.lifetimes.max)),
        reason: Some("tenant_archived".into()),
    };
    let written = state
        .store
        .archive_tenant(&id, Some(&admin.principal.credential_id), &revocation, now)
        .await;
    // Whatever the write reported (an error may still have committed), this process forgets
    // what it cached about the tenant; other processes follow the log.
    state.oauth.directory.tenant_changed(&id);
    state.api_keys.verifier.invalidate_all();
    archive::outcome(written?)?;
    record(&state, &admin, &id, Action::TenantArchive);
    Ok(Json(load(&state, &id).await?))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/disable", tag = "tenants", params(super::openapi::TenantPath),
    responses((status = 200, description = "The tenant, disabled; its tokens issued until now are revoked", body = TenantView)))]
pub async fn disable(
    admin: GlobalAdmin,
    state: State<TenantsAdmin>,
    path: Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    set_status(admin, state, path, TenantStatus::Disabled).await
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/enable", tag = "tenants", params(super::openapi::TenantPath),
    responses((status = 200, description = "The tenant, active", body = TenantView)))]
pub async fn enable(
    admin: GlobalAdmin,
    state: State<TenantsAdmin>,
    path: Path<String>,
) -> Result<Json<TenantView>, ApiError> {
    set_status(admin, state, path, TenantStatus::Active).await
}

async fn set_status(
    admin: GlobalAdmin,
    State(state): State<TenantsAdmin>,
    Path(raw): Path<String>,
    status: TenantStatus,
) -> Result<Json<TenantView>, ApiError> {
    let id = TenantId::parse(&raw).map_err(|e| ApiError::invalid_request(e.to_string()))?;
    if id.is_system() {
        return Err(ApiError::invalid_request(
            "the system tenant cannot be disabled or enabled",
        ));
    }
    if state
        .store
        .archived_at(ArchivedKind::Tenant, id.as_str())
        .await?
        .is_some()
    {
        return Err(archive::already_archived());
    }
    let written = state
        .store
        .set_tenant_status(&id, status, state.clock.now())
        .await;
    // The token service's cached tenant status goes whether or not the write reported success:
    // an error may still have committed.
    state.oauth.directory.tenant_changed(&id);
    let tenant = written?;
    // Cached API key verifications carry the tenant's status: drop them so a disabled
    // tenant's keys stop at once in this process.
    state.api_keys.verifier.invalidate_all();
    if status == TenantStatus::Disabled {
        // Verifiers elsewhere (other nodes, the verify library, gateways) learn it from the
        // log: the tenant's tokens issued until now are revoked, and cached API key answers
        // for it are dropped (its keys then fail their lookup while it stays disabled).
        let now = state.clock.now();
        state
            .store
            .append_revocation(
                &NewRevocation {
                    tenant: id.clone(),
                    kind: RevocationKind::Tenant,
                    subject: id.to_string(),
                    revoked_before: Some(now),
                    expires_at: Some(now.saturating_add(state.oauth.lifetimes.max)),
                    reason: Some("tenant_disabled".into()),
                },
                now,
            )
            .await?;
    }
    let action = match status {
        TenantStatus::Disabled => Action::TenantDisable,
        TenantStatus::Active => Action::TenantEnable,
    };
    record(&state, &admin, &id, action);
    Ok(Json(tenant.into()))
}

fn record(state: &TenantsAdmin, admin: &GlobalAdmin, tenant: &TenantId, action: Action) {
    state.audit.record(
        EventDraft {
            tenant: tenant.clone(),
            actor: admin.principal.actor(),
            credential_id: Some(admin.principal.credential_id.clone()),
            action,
            outcome: Outcome::Success,
            reason: None,
            target: Some(tenant.to_string()),
        },
        &admin.origin,
    );
}
