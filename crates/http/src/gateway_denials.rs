//! `POST /v1/gateway/denials`: where standalone gateways send the requests they refused, in
//! batches, so the detectors see failures at the edge (`portcullis_service::gateway_denials`).
//!
//! The caller authenticates with its service credential (`Authorization: Bearer`) and needs
//! `report_denials` (held by `service` credentials only) on its own reach, then on every tenant
//! the batch names. The body is a `portcullis_core::denial_report::WireBatch` of at most
//! `MAX_EVENTS` reports and `MAX_BATCH_BYTES` bytes, parsed whole at this edge.
//!
//! Answers: 202 `{"accepted": n}`; 429 with `Retry-After` past the credential's batch rate
//! (`DenialIngest::RATE`); 400 `invalid_request` for a body that is not a valid batch
//! (nothing recorded); 413 for one over the size limit; 401 for a missing or bad credential;
//! 403 `insufficient_scope` for a credential without the permission or a report for a tenant
//! it does not reach (nothing recorded). This module must never record part of a refused batch.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use portcullis_core::admin::{AdminPrincipal, AdminTarget, Permission};
use portcullis_core::denial_report::{self, WireBatch};
use portcullis_service::audit::RequestOrigin;
use portcullis_service::gateway_denials::{self as ingest, DenialIngest};
use serde_json::json;

use crate::admin::auth::{authenticate, authorize, deny};
use crate::error::ApiError;
use crate::extract::origin;

/// The denial-report route, over its own state.
pub fn router() -> Router<DenialIngest> {
    Router::new().route(
        denial_report::PATH,
        // A batch may be larger than the server's general body limit, never larger than this.
        post(report).layer(DefaultBodyLimit::max(denial_report::MAX_BATCH_BYTES)),
    )
}

/// A caller allowed to report denials on its own reach (tenants named in the batch are
/// checked again by the service).
#[derive(Debug)]
pub struct Reporter {
    principal: AdminPrincipal,
    origin: RequestOrigin,
}

impl FromRequestParts<DenialIngest> for Reporter {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &DenialIngest) -> Result<Self, ApiError> {
        let origin = origin(parts);
        let principal = authenticate(parts, state, &origin).await?;
        authorize(
            state,
            &principal,
            Permission::ReportDenials,
            principal.home(),
            &origin,
        )?;
        Ok(Self { principal, origin })
    }
}

async fn report(
    caller: Reporter,
    State(state): State<DenialIngest>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    state.admit(&caller.principal).map_err(|limited| {
        tracing::info!(
            credential = %caller.principal.credential_id,
            "denial reports over the rate; answered 429"
        );
        ApiError::rate_limited(limited.retry_after_secs)
    })?;
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large()
        } else {
            ApiError::invalid_request("could not read the body")
        }
    })?;
    let wire: WireBatch = serde_json::from_slice(&body)
        .map_err(|_| ApiError::invalid_request("the body is not a denial batch"))?;
    let reports =
        denial_report::parse_batch(wire).map_err(|e| ApiError::invalid_request(e.to_string()))?;
    let n = ingest::record(&state.audit, &caller.principal, reports).map_err(|r| {
        deny(
            &state,
            &caller.principal,
            r.denied,
            AdminTarget::Tenant(&r.tenant),
            &caller.origin,
        )
    })?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "accepted": n }))).into_response())
}
