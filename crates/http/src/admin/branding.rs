//! A tenant's sign-in page branding (`GET`/`PUT /admin/v1/tenants/{tenant}/branding`): display
//! name, logo URL and accent colour. Values are checked by `portcullis_core::branding` before
//! anything is stored (a colour that is not `#rrggbb`, a logo that is not a plain https URL, a
//! name with control characters: `400 invalid_request`, nothing changed), so nothing stored can
//! become markup or CSS on a page. This module must never store an unchecked value.

use axum::extract::State;
use axum::Json;
use portcullis_core::audit::{Action, Outcome};
use portcullis_core::branding::Branding;
use portcullis_store::BrandingRecord;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::TenantAdmin;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::UsersAdmin;
use portcullis_service::audit::EventDraft;
use portcullis_service::state::rfc3339;

/// The branding to set; every field replaces the stored one (`null` or absent clears it).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BrandingBody {
    /// Shown in the page header instead of the tenant id: 1 to 80 characters.
    display_name: Option<String>,
    /// An https URL of the logo (http only on a loopback host), without quotes, parentheses,
    /// spaces, user-info or fragment.
    logo_url: Option<String>,
    /// The accent colour of buttons, `#rrggbb`.
    #[schema(pattern = "^#[0-9a-fA-F]{6}$")]
    accent_colour: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BrandingView {
    display_name: Option<String>,
    logo_url: Option<String>,
    accent_colour: Option<String>,
    /// When it was last set (`null`: never).
    updated_at: Option<String>,
}

impl From<Option<BrandingRecord>> for BrandingView {
    fn from(b: Option<BrandingRecord>) -> Self {
        match b {
            Some(b) => Self {
                display_name: b.display_name,
                logo_url: b.logo_url,
                accent_colour: b.accent_colour,
                updated_at: Some(rfc3339(b.updated_at)),
            },
            None => Self {
                display_name: None,
                logo_url: None,
                accent_colour: None,
                updated_at: None,
            },
        }
    }
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/branding", tag = "tenants", params(super::openapi::TenantPath),
    responses((status = 200, description = "The tenant's sign-in page branding", body = BrandingView)))]
pub async fn show_branding(
    admin: TenantAdmin,
    State(state): State<UsersAdmin>,
) -> Result<Json<BrandingView>, ApiError> {
    Ok(Json(state.store.get_branding(&admin.tenant).await?.into()))
}

#[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/branding", tag = "tenants", params(super::openapi::TenantPath), request_body = BrandingBody,
    responses((status = 200, description = "The branding, replaced", body = BrandingView)))]
pub async fn put_branding(
    admin: TenantAdmin,
    State(state): State<UsersAdmin>,
    ApiJson(body): ApiJson<BrandingBody>,
) -> Result<Json<BrandingView>, ApiError> {
    let checked = Branding::parse(
        body.display_name.as_deref(),
        body.logo_url.as_deref(),
        body.accent_colour.as_deref(),
    )
    .map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let record = BrandingRecord {
        tenant: admin.tenant.clone(),
        display_name: checked.display_name.map(|v| v.as_str().to_owned()),
        logo_url: checked.logo_url.map(|v| v.as_str().to_owned()),
        accent_colour: checked.accent_colour.map(|v| v.as_str().to_owned()),
        updated_at: state.clock.now(),
    };
    state.store.put_branding(&record).await?;
    state.audit.record(
        EventDraft {
            tenant: admin.tenant.clone(),
            actor: admin.principal.actor(),
            credential_id: Some(admin.principal.credential_id.clone()),
            action: Action::TenantBrandingUpdate,
            outcome: Outcome::Success,
            reason: None,
            target: Some(admin.tenant.to_string()),
        },
        &admin.origin,
    );
    Ok(Json(Some(record).into()))
}
