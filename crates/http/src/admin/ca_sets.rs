//! A tenant's CA sets for mutual-TLS client authentication (RFC 8705 `tls_client_auth`):
//! `POST`/`GET /admin/v1/tenants/{tenant}/ca-sets` and `DELETE .../ca-sets/{id}`. A set is PEM
//! text of one or more CA certificates; a `tls_client_auth` client of the tenant authenticates
//! with a certificate that chains to any of the tenant's sets. The PEM is checked
//! (`portcullis_service::mtls::parse_ca_set`) before anything is stored: not PEM, not a
//! certificate, not a CA, too large: `400 invalid_request`, nothing changed. This module must
//! never store a set that does not parse, nor show or delete another tenant's set.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::audit::{Action, Outcome};
use portcullis_store::CaSetRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::TenantAdmin;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::OAuthAdmin;
use portcullis_service::audit::EventDraft;
use portcullis_service::mtls::parse_ca_set;
use portcullis_service::state::rfc3339;

/// Longest set name.
const MAX_NAME_LEN: usize = 80;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCaSet {
    /// Unique within the tenant: 1 to 80 printable characters.
    name: String,
    /// One or more PEM `CERTIFICATE` blocks, each a CA certificate (text between blocks is
    /// ignored). At most 256 KiB and 64 certificates.
    pem: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CaSetView {
    id: String,
    name: String,
    /// The PEM as registered.
    pem: String,
    /// How many CA certificates it holds.
    certificates: usize,
    created_at: String,
}

impl From<CaSetRecord> for CaSetView {
    fn from(r: CaSetRecord) -> Self {
        Self {
            certificates: parse_ca_set(&r.pem).map(|c| c.len()).unwrap_or(0),
            id: r.id,
            name: r.name,
            pem: r.pem,
            created_at: rfc3339(r.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CaSetList {
    items: Vec<CaSetView>,
}

fn record(state: &OAuthAdmin, admin: &TenantAdmin, action: Action, id: &str) {
    state.audit.record(
        EventDraft {
            tenant: admin.tenant.clone(),
            actor: admin.principal.actor(),
            credential_id: Some(admin.principal.credential_id.clone()),
            action,
            outcome: Outcome::Success,
            reason: None,
            target: Some(id.to_owned()),
        },
        &admin.origin,
    );
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/ca-sets", tag = "tenants", params(super::openapi::TenantPath), request_body = CreateCaSet,
    responses((status = 201, description = "The CA set", body = CaSetView),
        (status = 400, description = "The name or the PEM is refused", body = super::openapi::ErrorBody),
        (status = 409, description = "The tenant has a set of that name", body = super::openapi::ErrorBody)))]
pub async fn create_ca_set(
    admin: TenantAdmin,
    State(state): State<OAuthAdmin>,
    ApiJson(body): ApiJson<CreateCaSet>,
) -> Result<(StatusCode, Json<CaSetView>), ApiError> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control)
    {
        return Err(ApiError::invalid_request(format!(
            "name: 1 to {MAX_NAME_LEN} printable characters"
        )));
    }
    parse_ca_set(&body.pem).map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let r = CaSetRecord {
        id: format!("ca_{}", super::clients::random_id()),
        tenant: admin.tenant.clone(),
        name: name.to_owned(),
        pem: body.pem,
        created_at: state.clock.now(),
    };
    state.store.insert_ca_set(&r).await.map_err(|e| match e {
        portcullis_store::StoreError::Conflict => {
            ApiError::conflict("the tenant has a CA set of that name")
        }
        other => other.into(),
    })?;
    state.oauth.directory.ca_sets_changed(&admin.tenant);
    record(&state, &admin, Action::TenantCaSetCreate, &r.id);
    Ok((StatusCode::CREATED, Json(r.into())))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/ca-sets", tag = "tenants", params(super::openapi::TenantPath),
    responses((status = 200, description = "The tenant's CA sets, oldest first", body = CaSetList)))]
pub async fn list_ca_sets(
    admin: TenantAdmin,
    State(state): State<OAuthAdmin>,
) -> Result<Json<CaSetList>, ApiError> {
    let items = state.store.list_ca_sets(&admin.tenant).await?;
    Ok(Json(CaSetList {
        items: items.into_iter().map(Into::into).collect(),
    }))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/ca-sets/{id}", tag = "tenants", params(super::openapi::TenantIdPath),
    responses((status = 204, description = "The set is removed: certificates it vouched for no longer authenticate")))]
pub async fn delete_ca_set(
    admin: TenantAdmin,
    State(state): State<OAuthAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if id.len() > 64 || !state.store.delete_ca_set(&admin.tenant, &id).await? {
        return Err(ApiError::not_found());
    }
    state.oauth.directory.ca_sets_changed(&admin.tenant);
    record(&state, &admin, Action::TenantCaSetDelete, &id);
    Ok(StatusCode::NO_CONTENT)
}
