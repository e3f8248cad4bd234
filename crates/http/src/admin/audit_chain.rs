//! The audit log for machines: chain verification (`GET /admin/v1/audit/verify`, global) and
//! the streaming export (`GET .../audit-events/export`, JSON Lines, oldest first), with the
//! same tenant scoping as the rest of the admin API: a tenant's admins export their tenant's
//! events only; global admins export one tenant's or every tenant's.
//!
//! The export streams page by page from storage through a bounded channel, so a large log
//! never sits in memory and a slow reader only slows its own stream. It must never return
//! another tenant's event on a tenant route.

use crate::state::AuditAdmin;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Json;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_service::audit_chain::VerifyReport;
use portcullis_service::state::rfc3339;
use portcullis_store::AuditExportQuery;
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use utoipa::IntoParams;

use super::audit_events::parse_time;
use super::auth::{GlobalAdmin, TenantAdmin};
use crate::error::ApiError;

/// Events read from storage per page.
const PAGE: u32 = 1_000;
/// Pages buffered ahead of a slow reader.
const BUFFER: usize = 4;

#[utoipa::path(get, path = "/admin/v1/audit/verify", tag = "audit",
    responses((status = 200, description = "The audit chain checked from its first stored position to its head: `ok`, and otherwise the first broken position and how (`altered`, `missing`, `checkpoint_mismatch`, `checkpoint_forged`)", body = Object)))]
pub async fn verify(
    _admin: GlobalAdmin,
    State(state): State<AuditAdmin>,
) -> Result<Json<VerifyReport>, ApiError> {
    let report =
        portcullis_service::audit_chain::verify(state.store.as_ref(), &state.oauth.issuer).await?;
    Ok(Json(report))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ExportParams {
    /// RFC 3339 time, or a duration back from now (`1h`, `7days`): events from then on.
    since: Option<String>,
    /// `jsonl` (the only format).
    format: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GlobalExportParams {
    /// RFC 3339 time, or a duration back from now (`1h`, `7days`): events from then on.
    since: Option<String>,
    /// `jsonl` (the only format).
    format: Option<String>,
    /// Only this tenant's events (every tenant's without it).
    tenant: Option<String>,
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/audit-events/export", tag = "audit",
    params(super::openapi::TenantPath, ExportParams),
    responses((status = 200, description = "The tenant's audit events, oldest first, one JSON object per line (application/x-ndjson), streamed", content_type = "application/x-ndjson", body = String)))]
pub async fn export(
    admin: TenantAdmin,
    State(state): State<AuditAdmin>,
    Query(p): Query<ExportParams>,
) -> Result<Response, ApiError> {
    let since = since(p.since.as_deref(), p.format.as_deref(), &state)?;
    Ok(stream(state, Some(admin.tenant), since))
}

#[utoipa::path(get, path = "/admin/v1/audit-events/export", tag = "audit",
    params(GlobalExportParams),
    responses((status = 200, description = "Every tenant's audit events (or one tenant's), oldest first, one JSON object per line (application/x-ndjson), streamed", content_type = "application/x-ndjson", body = String)))]
pub async fn export_all(
    _admin: GlobalAdmin,
    State(state): State<AuditAdmin>,
    Query(p): Query<GlobalExportParams>,
) -> Result<Response, ApiError> {
    let since = since(p.since.as_deref(), p.format.as_deref(), &state)?;
    let tenant = p
        .tenant
        .as_deref()
        .map(|t| {
            TenantId::parse(t).map_err(|_| ApiError::invalid_request("tenant is not a tenant id"))
        })
        .transpose()?;
    Ok(stream(state, tenant, since))
}

fn since(
    since: Option<&str>,
    format: Option<&str>,
    state: &AuditAdmin,
) -> Result<Option<Timestamp>, ApiError> {
    if format.is_some_and(|f| f != "jsonl") {
        return Err(ApiError::invalid_request("format must be jsonl"));
    }
    since.map(|s| parse_time(s, state.clock.now())).transpose()
}

fn stream(state: AuditAdmin, tenant: Option<TenantId>, since: Option<Timestamp>) -> Response {
    let (tx, rx) = mpsc::channel::<Result<String, std::io::Error>>(BUFFER);
    tokio::spawn(async move {
        let mut q = AuditExportQuery {
            tenant,
            since,
            after_seq: 0,
            limit: PAGE,
        };
        loop {
            let page = match state.store.export_audit_events(&q).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "audit export stopped: storage error");
                    // Cut the body short: a reader sees an incomplete last line or a reset,
                    // never a clean end.
                    let _ = tx.send(Err(std::io::Error::other("storage error"))).await;
                    return;
                }
            };
            let Some((last, _)) = page.last() else { return };
            q.after_seq = *last;
            let mut chunk = String::with_capacity(page.len() * 256);
            for (_, event) in &page {
                let mut v = serde_json::to_value(event).unwrap_or_default();
                if let Some(o) = v.as_object_mut() {
                    o.insert(
                        "occurred_at_rfc3339".into(),
                        rfc3339(event.occurred_at).into(),
                    );
                }
                chunk.push_str(&v.to_string());
                chunk.push('\n');
            }
            if tx.send(Ok(chunk)).await.is_err() {
                return; // The reader left.
            }
            if page.len() < q.limit as usize {
                return;
            }
        }
    });
    let mut response = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
