//! Listing signing keys: public facts only, never key material.

use axum::extract::State;
use axum::Json;
use portcullis_core::signing::{KeyState, SigningAlgorithm};
use serde::Serialize;

use super::auth::GlobalAdmin;
use crate::error::ApiError;
use crate::state::{rfc3339, AppState};

#[derive(Debug, Serialize)]
pub struct KeyView {
    kid: String,
    algorithm: SigningAlgorithm,
    state: KeyState,
    kek_id: String,
    created_at: String,
    activates_at: String,
    retired_at: Option<String>,
    publish_until: Option<String>,
}

pub async fn list(
    _admin: GlobalAdmin,
    State(state): State<AppState>,
) -> Result<Json<Vec<KeyView>>, ApiError> {
    let keys = state.store.list_signing_keys().await?;
    Ok(Json(
        keys.into_iter()
            .map(|k| KeyView {
                kid: k.kid,
                algorithm: k.algorithm,
                state: k.state,
                kek_id: k.kek_id,
                created_at: rfc3339(k.created_at),
                activates_at: rfc3339(k.activates_at),
                retired_at: k.retired_at.map(rfc3339),
                publish_until: k.publish_until.map(rfc3339),
            })
            .collect(),
    ))
}
