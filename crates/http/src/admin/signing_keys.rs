//! Listing signing keys: public facts only, never key material.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::audit::{Action, Outcome};
use portcullis_core::signing::{KeyState, SigningAlgorithm};
use portcullis_core::tenant::TenantId;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::GlobalAdmin;
use crate::error::ApiError;
use crate::page::{ListQuery, NoFilter, Paged};
use portcullis_service::audit::EventDraft;
use portcullis_service::oauth::OAuthService;
use portcullis_service::state::rfc3339;

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SigningKeyView)]
pub struct KeyView {
    kid: String,
    #[schema(schema_with = super::openapi::signing_algorithm)]
    algorithm: SigningAlgorithm,
    #[schema(schema_with = super::openapi::key_state)]
    state: KeyState,
    kek_id: String,
    created_at: String,
    activates_at: String,
    retired_at: Option<String>,
    publish_until: Option<String>,
}

#[utoipa::path(get, path = "/admin/v1/signing-keys", tag = "signing-keys", params(crate::page::PageParams),
    responses((status = 200, description = "A page of signing keys, oldest first (metadata only)", body = Paged<KeyView>)))]
pub async fn list(
    _admin: GlobalAdmin,
    State(state): State<OAuthService>,
    query: ListQuery<NoFilter>,
) -> Result<Json<Paged<KeyView>>, ApiError> {
    const SCOPE: &str = "signing-keys";
    let page = query.paging.request(SCOPE)?;
    let keys = state.store.page_signing_keys(&page).await?;
    Ok(Json(Paged::new(keys, SCOPE, |k| KeyView {
        kid: k.kid,
        algorithm: k.algorithm,
        state: k.state,
        kek_id: k.kek_id,
        created_at: rfc3339(k.created_at),
        activates_at: rfc3339(k.activates_at),
        retired_at: k.retired_at.map(rfc3339),
        publish_until: k.publish_until.map(rfc3339),
    })))
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = SigningKeyRotation)]
pub struct RotationView {
    kid: String,
    #[schema(schema_with = super::openapi::key_state)]
    state: KeyState,
    activates_at: String,
}

/// Starts a rotation: a new key is published now and signs after the pre-publication window.
/// Idempotent while a rotation is pending.
#[utoipa::path(post, path = "/admin/v1/signing-keys/rotate", tag = "signing-keys",
    responses((status = 202, description = "The new key, pending until it activates", body = RotationView)))]
pub async fn rotate(
    admin: GlobalAdmin,
    State(state): State<OAuthService>,
) -> Result<(StatusCode, Json<RotationView>), ApiError> {
    let rotation = state
        .oauth
        .rotation
        .as_ref()
        .ok_or_else(|| ApiError::conflict("key rotation is not available on this node"))?;
    let row =
        portcullis_service::rotation::begin(state.store.as_ref(), rotation, state.clock.now())
            .await
            .map_err(ApiError::internal)?;
    state.oauth.directory.signing_keys_changed();
    record(&admin, &state, Action::SigningKeyRotate, &row.kid);
    Ok((
        StatusCode::ACCEPTED,
        Json(RotationView {
            kid: row.kid,
            state: row.state,
            activates_at: rfc3339(row.activates_at),
        }),
    ))
}

/// The compromise path: the key leaves JWKS at once and its tokens are revoked.
#[utoipa::path(post, path = "/admin/v1/signing-keys/{kid}/revoke", tag = "signing-keys", params(("kid" = String, Path, description = "Key id")),
    responses((status = 204, description = "Revoked; tokens it signed are refused")))]
pub async fn revoke(
    admin: GlobalAdmin,
    State(state): State<OAuthService>,
    Path(kid): Path<String>,
) -> Result<StatusCode, ApiError> {
    if kid.len() > 128 {
        return Err(ApiError::not_found());
    }
    let before = portcullis_service::rotation::revoke(&state, &kid)
        .await
        .map_err(ApiError::internal)?;
    state.oauth.directory.signing_keys_changed();
    if before.is_none() {
        return Err(ApiError::not_found());
    }
    record(&admin, &state, Action::SigningKeyRevoke, &kid);
    Ok(StatusCode::NO_CONTENT)
}

fn record(admin: &GlobalAdmin, state: &OAuthService, action: Action, kid: &str) {
    state.audit.record(
        EventDraft {
            tenant: TenantId::system(),
            actor: admin.principal.actor(),
            credential_id: Some(admin.principal.credential_id.clone()),
            action,
            outcome: Outcome::Success,
            reason: None,
            target: Some(kid.to_owned()),
        },
        &admin.origin,
    );
}
