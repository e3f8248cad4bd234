//! Reading a tenant's audit log.

use axum::extract::State;
use axum::Json;
use portcullis_core::audit::AuditEvent;
use portcullis_core::time::Timestamp;
use portcullis_store::AuditQuery;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::TenantAdmin;
use crate::error::ApiError;
use crate::page::{ListQuery, Paged};
use crate::state::AuditAdmin;
use portcullis_service::state::rfc3339;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// RFC 3339 time, or a duration back from now (`1h`, `30m`, `7days`).
    since: Option<String>,
    until: Option<String>,
    action: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuditEventView)]
pub struct EventView {
    #[serde(flatten)]
    #[schema(inline, value_type = super::openapi::AuditEventSchema)]
    event: AuditEvent,
    occurred_at_rfc3339: String,
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/audit-events", tag = "audit", params(super::openapi::TenantPath, crate::page::PageParams, Params),
    responses((status = 200, description = "A page of the tenant's audit events, newest first", body = Paged<EventView>)))]
pub async fn list(
    admin: TenantAdmin,
    State(state): State<AuditAdmin>,
    query: ListQuery<Params>,
) -> Result<Json<Paged<EventView>>, ApiError> {
    let scope = format!("audit-events:{}", admin.tenant);
    let page = query.paging.request(&scope)?;
    let params = query.filter;
    let now = state.clock.now();
    let query = AuditQuery {
        tenant: admin.tenant.clone(),
        since: params
            .since
            .as_deref()
            .map(|s| parse_time(s, now))
            .transpose()?,
        until: params
            .until
            .as_deref()
            .map(|s| parse_time(s, now))
            .transpose()?,
        action: params.action,
        page,
    };
    let events = state.store.query_audit_events(&query).await?;
    Ok(Json(Paged::new(events, &scope, |event| EventView {
        occurred_at_rfc3339: rfc3339(event.occurred_at),
        event,
    })))
}

/// `2026-01-01T00:00:00Z` or a duration before `now` such as `1h`.
pub fn parse_time(s: &str, now: Timestamp) -> Result<Timestamp, ApiError> {
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now.saturating_sub(d));
    }
    let t = humantime::parse_rfc3339_weak(s).map_err(|_| {
        ApiError::invalid_request("times are RFC 3339 (2026-01-01T00:00:00Z) or durations (1h)")
    })?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| ApiError::invalid_request("time before 1970"))?
        .as_millis();
    Ok(Timestamp::from_millis(
        i64::try_from(ms).unwrap_or(i64::MAX),
    ))
}
