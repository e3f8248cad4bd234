//! Resource servers (APIs) of a tenant: the audience tokens are bound to and the scopes it
//! defines. Clients may only be allowed audiences and scopes declared here.
//!
//! A resource server may also hold a credential for the introspection endpoint: a generated
//! secret, shown once, stored as its digest, rotated with an overlap window like a client's.
//!
//! Archiving a resource server (final) expires its introspection secrets at once and hides it
//! from the token service in one transaction: no token is issued for its audience any more (a
//! token request naming it is refused like an unknown audience), and it can no longer
//! introspect. Tokens already issued for its audience are not revoked (no revocation-log entry
//! names an audience): they stay valid until they expire, at most the configured maximum token
//! lifetime, for any verifier that still accepts that audience (verifiers check the audience
//! themselves). Its audience stays reserved in the tenant, so a new resource server can never
//! inherit those tokens.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::audit::{Action, Outcome};
use portcullis_core::credential::Environment;
use portcullis_core::oauth::{Audience, ScopeSet};
use portcullis_store::{
    Archivable, ArchivedKind, ResourceServer, ResourceServerSecretRecord, StoreError,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::archive::{self, ArchivedParams};
use super::auth::TenantAdmin;
use super::tenants::validate_display_name;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::page::{ListQuery, Paged};
use crate::state::OAuthAdmin;
use portcullis_service::audit::EventDraft;
use portcullis_service::state::rfc3339;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateResourceServer {
    audience: String,
    name: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceServerView {
    id: String,
    tenant: String,
    name: String,
    audience: String,
    scopes: Vec<String>,
    created_at: String,
    updated_at: String,
    /// When the resource server was archived (`null`: it is not).
    archived_at: Option<String>,
    /// Introspection credentials (metadata only), on `show`.
    #[serde(skip_serializing_if = "Option::is_none")]
    secrets: Option<Vec<SecretView>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ResourceServerSecretView)]
pub struct SecretView {
    id: String,
    display_prefix: String,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
}

impl From<ResourceServerSecretRecord> for SecretView {
    fn from(s: ResourceServerSecretRecord) -> Self {
        Self {
            id: s.id,
            display_prefix: s.display_prefix,
            created_at: rfc3339(s.created_at),
            expires_at: s.expires_at.map(rfc3339),
            last_used_at: s.last_used_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RotateResourceServerSecret)]
pub struct RotateSecret {
    /// How long the previous secrets keep working, in seconds (default one day, 0 = at once).
    overlap_secs: Option<u64>,
    /// Environment label embedded in the secret (default `live`).
    environment: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RotatedResourceServerSecret)]
pub struct RotatedSecret {
    resource_server_id: String,
    /// What the resource server sends as `client_id` at the introspection endpoint.
    client_id: String,
    /// The new secret, shown this once.
    client_secret: String,
    secret_id: String,
    previous_secrets_expire_at: String,
}

impl From<ResourceServer> for ResourceServerView {
    fn from(r: ResourceServer) -> Self {
        Archivable {
            item: r,
            archived_at: None,
        }
        .into()
    }
}

impl From<Archivable<ResourceServer>> for ResourceServerView {
    fn from(a: Archivable<ResourceServer>) -> Self {
        let r = a.item;
        Self {
            archived_at: a.archived_at.map(rfc3339),
            id: r.id,
            tenant: r.tenant.to_string(),
            name: r.name,
            audience: r.audience,
            scopes: r.scopes,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            secrets: None,
        }
    }
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/resource-servers", tag = "resource-servers", params(super::openapi::TenantPath), request_body = CreateResourceServer,
    responses((status = 201, description = "The resource server", body = ResourceServerView)))]
pub async fn create(
    admin: TenantAdmin,
    State(state): State<OAuthAdmin>,
    ApiJson(body): ApiJson<CreateResourceServer>,
) -> Result<(StatusCode, Json<ResourceServerView>), ApiError> {
    let audience =
        Audience::parse(&body.audience).map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let name = validate_display_name(body.name.as_deref().unwrap_or(audience.as_str()))?;
    let scopes = ScopeSet::from_strs(body.scopes.iter().map(String::as_str))
        .map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let now = state.clock.now();
    let rs = ResourceServer {
        id: format!("rs_{}", super::clients::random_id()),
        tenant: admin.tenant.clone(),
        name,
        audience: audience.as_str().to_owned(),
        scopes: scopes.to_vec(),
        created_at: now,
        updated_at: now,
    };
    let written = state.store.create_resource_server(&rs).await;
    state
        .oauth
        .directory
        .resource_server_changed(&admin.tenant, &rs.id);
    written.map_err(|e| match e {
        StoreError::Conflict => {
            ApiError::conflict("this tenant already has a resource server with this audience")
        }
        other => other.into(),
    })?;
    state.audit.record(
        EventDraft {
            tenant: admin.tenant.clone(),
            actor: admin.principal.actor(),
            credential_id: Some(admin.principal.credential_id.clone()),
            action: Action::ResourceServerCreate,
            outcome: Outcome::Success,
            reason: None,
            target: Some(rs.id.clone()),
        },
        &admin.origin,
    );
    Ok((StatusCode::CREATED, Json(rs.into())))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/resource-servers", tag = "resource-servers", params(super::openapi::TenantPath, crate::page::PageParams, ArchivedParams),
    responses((status = 200, description = "A page of the tenant's resource servers, oldest first", body = Paged<ResourceServerView>)))]
pub async fn list(
    admin: TenantAdmin,
    State(state): State<OAuthAdmin>,
    query: ListQuery<ArchivedParams>,
) -> Result<Json<Paged<ResourceServerView>>, ApiError> {
    let scope = format!("resource-servers:{}", admin.tenant);
    let page = query.paging.request(&scope)?;
    let all = state
        .store
        .list_resource_servers(&admin.tenant, &page, query.filter.filter())
        .await?;
    Ok(Json(Paged::new(all, &scope, Into::into)))
}

/// The tenant's resource server with whether it is archived, or 404.
async fn load(
    state: &OAuthAdmin,
    admin: &TenantAdmin,
    id: &str,
) -> Result<ResourceServerView, ApiError> {
    let rs = tenant_resource_server(admin, id).await?;
    let archived_at = state
        .store
        .archived_at(ArchivedKind::ResourceServer, &rs.id)
        .await?;
    Ok(Archivable {
        item: rs,
        archived_at,
    }
    .into())
}

/// Archives the resource server: see the module docs.
#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/resource-servers/{id}/archive", tag = "resource-servers", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The resource server, archived: no more tokens for its audience, its secrets expired", body = ResourceServerView)))]
pub async fn archive(
    admin: TenantAdmin,
    State(state): State<OAuthAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<ResourceServerView>, ApiError> {
    let rs = tenant_resource_server(&admin, &id).await?;
    let written = state
        .store
        .archive_resource_server(
            &admin.tenant,
            &rs.id,
            Some(&admin.principal.credential_id),
            state.clock.now(),
        )
        .await;
    state
        .oauth
        .directory
        .resource_server_changed(&admin.tenant, &rs.id);
    archive::outcome(written?)?;
    state.audit.record(
        EventDraft {
            tenant: admin.tenant.clone(),
            actor: admin.principal.actor(),
            credential_id: Some(admin.principal.credential_id.clone()),
            action: Action::ResourceServerArchive,
            outcome: Outcome::Success,
            reason: None,
            target: Some(rs.id.clone()),
        },
        &admin.origin,
    );
    Ok(Json(load(&state, &admin, &id).await?))
}

/// The tenant's resource server, or 404 (also for another tenant's id).
async fn tenant_resource_server(admin: &TenantAdmin, id: &str) -> Result<ResourceServer, ApiError> {
    admin
        .scope
        .resource_server(id)
        .await?
        .ok_or_else(ApiError::not_found)
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/resource-servers/{id}", tag = "resource-servers", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The resource server with its secrets' metadata", body = ResourceServerView)))]
pub async fn show(
    admin: TenantAdmin,
    State(state): State<OAuthAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<ResourceServerView>, ApiError> {
    let mut view = load(&state, &admin, &id).await?;
    let secrets = state.store.list_resource_server_secrets(&view.id).await?;
    view.secrets = Some(secrets.into_iter().map(Into::into).collect());
    Ok(Json(view))
}

/// Issues a credential for the introspection endpoint; the first call creates the first one.
/// Older secrets keep working for the overlap window.
#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/resource-servers/{id}/rotate-secret", tag = "resource-servers", params(super::openapi::TenantIdPath), request_body = RotateSecret,
    responses((status = 201, description = "The new introspection secret, shown this once", body = RotatedSecret)))]
pub async fn rotate_secret(
    admin: TenantAdmin,
    State(state): State<OAuthAdmin>,
    Path((_, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<RotateSecret>,
) -> Result<(StatusCode, Json<RotatedSecret>), ApiError> {
    let overlap = super::clients::rotation_overlap(body.overlap_secs)?;
    let environment =
        Environment::parse(body.environment.as_deref().unwrap_or("live")).map_err(|_| {
            ApiError::invalid_request("environment is 1 to 16 lowercase letters and digits")
        })?;
    let rs = tenant_resource_server(&admin, &id).await?;
    if state
        .store
        .archived_at(ArchivedKind::ResourceServer, &rs.id)
        .await?
        .is_some()
    {
        return Err(archive::already_archived());
    }
    let now = state.clock.now();
    let credential = super::clients::generate_secret(&environment);
    let record = ResourceServerSecretRecord {
        id: credential.id().to_owned(),
        resource_server_id: rs.id.clone(),
        display_prefix: credential.display_prefix(),
        secret_digest: credential.digest().to_vec(),
        created_at: now,
        expires_at: None,
        last_used_at: None,
    };
    let old_end = now.saturating_add(overlap);
    let written = state
        .store
        .rotate_resource_server_secret(&admin.tenant, &record, old_end)
        .await;
    state
        .oauth
        .directory
        .resource_server_changed(&admin.tenant, &rs.id);
    if !written? {
        return Err(ApiError::not_found());
    }
    state.audit.record(
        EventDraft {
            tenant: admin.tenant.clone(),
            actor: admin.principal.actor(),
            credential_id: Some(admin.principal.credential_id.clone()),
            action: Action::ResourceServerRotateSecret,
            outcome: Outcome::Success,
            reason: None,
            target: Some(rs.id.clone()),
        },
        &admin.origin,
    );
    Ok((
        StatusCode::CREATED,
        Json(RotatedSecret {
            resource_server_id: rs.id.clone(),
            client_id: rs.id,
            client_secret: credential.expose().to_owned(),
            secret_id: record.id,
            previous_secrets_expire_at: rfc3339(old_end),
        }),
    ))
}
