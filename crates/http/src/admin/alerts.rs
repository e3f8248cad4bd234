//! The detectors' alerts as HTTP: a tenant's list, one alert, acknowledge and resolve; and the
//! list over every tenant for global admins. Reads the request, calls storage and core's status
//! rule (`AlertStatus::may_become`), renders. Never shows another tenant's alert on a tenant
//! route: every lookup is scoped by the path's tenant.

use axum::extract::{Path, State};
use axum::Json;
use portcullis_core::alert::AlertStatus;
use portcullis_core::audit::{Action, Outcome};
use portcullis_core::detect::Rule;
use portcullis_core::tenant::TenantId;
use portcullis_store::{AlertFilter, AlertRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{GlobalAdmin, TenantAdmin};
use crate::error::ApiError;
use crate::page::{ListQuery, Paged};
use crate::state::AuditAdmin;
use portcullis_service::audit::EventDraft;
use portcullis_service::state::rfc3339;

/// Longer ids are never ours (uuids): not found without a query.
const MAX_ID: usize = 64;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// `open`, `acknowledged` or `resolved`.
    status: Option<String>,
    /// A rule name (`failed_auth_spike`, `credential_stuffing`, `unusual_refresh`, ...: every rule is listed in docs/alerts.md).
    rule: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GlobalParams {
    /// Only this tenant's alerts.
    tenant: Option<String>,
    /// `open`, `acknowledged` or `resolved`.
    status: Option<String>,
    /// A rule name.
    rule: Option<String>,
}

/// One alert.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Alert)]
pub struct AlertView {
    id: String,
    tenant: String,
    /// The rule that fired.
    rule: String,
    /// What it is about: `client:<id>`, `api_key:<id>`, `address:<ip>`, `tenant:<id>`,
    /// `admin:<credential id>`, `admin_credential:<id>`.
    subject: String,
    #[schema(schema_with = alert_status)]
    status: String,
    /// Recorded by a rule in shadow mode: what would have fired, not an alert.
    shadow: bool,
    /// The newest finding's evidence: counts, window, threshold, baseline, sample event ids.
    #[schema(value_type = Object)]
    evidence: serde_json::Value,
    /// Findings folded into this alert.
    count: i64,
    first_seen: String,
    last_seen: String,
    acknowledged_at: Option<String>,
    acknowledged_by: Option<String>,
    resolved_at: Option<String>,
    resolved_by: Option<String>,
}

fn alert_status() -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(AlertStatus::ALL.map(AlertStatus::as_str)))
}

impl From<AlertRecord> for AlertView {
    fn from(a: AlertRecord) -> Self {
        Self {
            // Written by the detector task as JSON; an unreadable one is shown as text.
            evidence: serde_json::from_str(&a.evidence)
                .unwrap_or(serde_json::Value::String(a.evidence)),
            id: a.id,
            tenant: a.tenant.to_string(),
            rule: a.rule,
            subject: a.subject,
            status: a.status.as_str().to_owned(),
            shadow: a.shadow,
            count: a.count,
            first_seen: rfc3339(a.first_seen),
            last_seen: rfc3339(a.last_seen),
            acknowledged_at: a.acknowledged_at.map(rfc3339),
            acknowledged_by: a.acknowledged_by,
            resolved_at: a.resolved_at.map(rfc3339),
            resolved_by: a.resolved_by,
        }
    }
}

fn filter(
    tenant: Option<TenantId>,
    status: Option<&str>,
    rule: Option<&str>,
) -> Result<AlertFilter, ApiError> {
    let status = status
        .map(|s| {
            AlertStatus::parse(s).ok_or_else(|| {
                ApiError::invalid_request("status is open, acknowledged or resolved")
            })
        })
        .transpose()?;
    let rule = rule
        .map(|r| {
            Rule::parse(r)
                .map(|r| r.as_str().to_owned())
                .ok_or_else(|| ApiError::invalid_request("unknown rule"))
        })
        .transpose()?;
    Ok(AlertFilter {
        tenant,
        status,
        rule,
    })
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/alerts", tag = "alerts", params(super::openapi::TenantPath, crate::page::PageParams, Params),
    responses((status = 200, description = "A page of the tenant's alerts, the most recently opened first", body = Paged<AlertView>),
              (status = 400, description = "Bad filter, limit, or a cursor not from this list", body = super::openapi::ErrorBody)))]
pub async fn list(
    admin: TenantAdmin,
    State(state): State<AuditAdmin>,
    query: ListQuery<Params>,
) -> Result<Json<Paged<AlertView>>, ApiError> {
    let scope = format!("alerts:{}", admin.tenant);
    let page = query.paging.request(&scope)?;
    let p = query.filter;
    let f = filter(Some(admin.tenant), p.status.as_deref(), p.rule.as_deref())?;
    let alerts = state.store.list_alerts(&f, &page).await?;
    Ok(Json(Paged::new(alerts, &scope, AlertView::from)))
}

#[utoipa::path(get, path = "/admin/v1/alerts", tag = "alerts", params(crate::page::PageParams, GlobalParams),
    responses((status = 200, description = "A page of the alerts of every tenant (or one), the most recently opened first", body = Paged<AlertView>),
              (status = 400, description = "Bad filter, limit, or a cursor not from this list", body = super::openapi::ErrorBody)))]
pub async fn list_all(
    _admin: GlobalAdmin,
    State(state): State<AuditAdmin>,
    query: ListQuery<GlobalParams>,
) -> Result<Json<Paged<AlertView>>, ApiError> {
    let p = query.filter;
    let (tenant, scope) = crate::page::tenant_filtered("alerts", p.tenant.as_deref())?;
    let page = query.paging.request(&scope)?;
    let f = filter(tenant, p.status.as_deref(), p.rule.as_deref())?;
    let alerts = state.store.list_alerts(&f, &page).await?;
    Ok(Json(Paged::new(alerts, &scope, AlertView::from)))
}

async fn load(state: &AuditAdmin, tenant: &TenantId, id: &str) -> Result<AlertRecord, ApiError> {
    if id.len() > MAX_ID {
        return Err(ApiError::not_found());
    }
    state
        .store
        .get_alert(Some(tenant), id)
        .await?
        .ok_or_else(ApiError::not_found)
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/alerts/{id}", tag = "alerts", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The alert", body = AlertView)))]
pub async fn show(
    admin: TenantAdmin,
    State(state): State<AuditAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<AlertView>, ApiError> {
    Ok(Json(load(&state, &admin.tenant, &id).await?.into()))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/alerts/{id}/ack", tag = "alerts", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The alert, acknowledged", body = AlertView),
              (status = 409, description = "The alert is not open", body = super::openapi::ErrorBody)))]
pub async fn ack(
    admin: TenantAdmin,
    State(state): State<AuditAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<AlertView>, ApiError> {
    change(&state, &admin, &id, AlertStatus::Acknowledged).await
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/alerts/{id}/resolve", tag = "alerts", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The alert, resolved", body = AlertView),
              (status = 409, description = "The alert is already resolved", body = super::openapi::ErrorBody)))]
pub async fn resolve(
    admin: TenantAdmin,
    State(state): State<AuditAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<AlertView>, ApiError> {
    change(&state, &admin, &id, AlertStatus::Resolved).await
}

async fn change(
    state: &AuditAdmin,
    admin: &TenantAdmin,
    id: &str,
    to: AlertStatus,
) -> Result<Json<AlertView>, ApiError> {
    let alert = load(state, &admin.tenant, id).await?;
    if !alert.status.may_become(to) {
        return Err(ApiError::conflict(format!("the alert is {}", alert.status)));
    }
    let by = admin.principal.actor();
    let now = state.clock.now();
    let changed = state
        .store
        .set_alert_status(Some(&admin.tenant), id, alert.status, to, by.as_str(), now)
        .await?;
    if !changed {
        // Another operator moved it meanwhile.
        return Err(ApiError::conflict("the alert changed meanwhile"));
    }
    state.audit.record(
        EventDraft {
            tenant: admin.tenant.clone(),
            actor: by,
            credential_id: Some(admin.principal.credential_id.clone()),
            action: match to {
                AlertStatus::Resolved => Action::AlertResolve,
                _ => Action::AlertAcknowledge,
            },
            outcome: Outcome::Success,
            reason: None,
            target: Some(id.to_owned()),
        },
        &admin.origin,
    );
    Ok(Json(load(state, &admin.tenant, id).await?.into()))
}
