//! Resource servers (APIs) of a tenant: the audience tokens are bound to and the scopes it
//! defines. Clients may only be allowed audiences and scopes declared here.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::audit::Outcome;
use portcullis_core::oauth::{Audience, ScopeSet};
use portcullis_store::{ResourceServer, StoreError};
use serde::{Deserialize, Serialize};

use super::auth::TenantAdmin;
use super::tenants::validate_display_name;
use crate::audit::EventDraft;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::{rfc3339, AppState};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateResourceServer {
    audience: String,
    name: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct ResourceServerView {
    id: String,
    tenant: String,
    name: String,
    audience: String,
    scopes: Vec<String>,
    created_at: String,
    updated_at: String,
}

impl From<ResourceServer> for ResourceServerView {
    fn from(r: ResourceServer) -> Self {
        Self {
            id: r.id,
            tenant: r.tenant.to_string(),
            name: r.name,
            audience: r.audience,
            scopes: r.scopes,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

pub async fn create(
    admin: TenantAdmin,
    State(state): State<AppState>,
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
        .resource_servers_changed(&admin.tenant);
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
            action: "resource_server.create",
            outcome: Outcome::Success,
            reason: None,
            target: Some(rs.id.clone()),
        },
        &admin.origin,
    );
    Ok((StatusCode::CREATED, Json(rs.into())))
}

pub async fn list(
    admin: TenantAdmin,
    State(state): State<AppState>,
) -> Result<Json<Vec<ResourceServerView>>, ApiError> {
    let all = state.store.list_resource_servers(&admin.tenant).await?;
    Ok(Json(all.into_iter().map(Into::into).collect()))
}

pub async fn show(
    admin: TenantAdmin,
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<ResourceServerView>, ApiError> {
    if id.len() > 64 {
        return Err(ApiError::not_found());
    }
    let rs = state
        .store
        .get_resource_server(&admin.tenant, &id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(rs.into()))
}
