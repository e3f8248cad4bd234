//! Webhook endpoints and their deliveries as HTTP: a tenant's endpoints (its alerts) under
//! `/tenants/{tenant}/webhooks`, the installation's (every tenant's alerts) under `/webhooks`;
//! create (the secret shown once), list, show, delete, rotate the secret; deliveries listed
//! (the dead-letter list is `?status=dead`) and a dead one redelivered. Reads the request, calls
//! the service's `Webhooks` and storage, renders. Every lookup is scoped by the caller's tenant
//! (`system` on the global routes), so a tenant admin never sees another tenant's endpoint or
//! delivery; never shows a stored secret, only a new one in the answer that made it.

use crate::state::AuditAdmin;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::audit::{Action, Outcome};
use portcullis_core::tenant::TenantId;
use portcullis_service::audit::{EventDraft, RequestOrigin};
use portcullis_service::state::rfc3339;
use portcullis_service::webhooks::WebhookError;
use portcullis_store::{
    DeliveryFilter, DeliveryStatus, WebhookDeliveryRecord, WebhookEndpointRecord,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{GlobalAdmin, TenantAdmin};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::page::{ListQuery, NoFilter, Paged};
use portcullis_core::admin::AdminPrincipal;

/// Longer ids are never ours: not found without a query.
const MAX_ID: usize = 64;

/// A new endpoint.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    /// Where alerts are POSTed: `https://` on a public address (plain `http` and private
    /// addresses only with the `webhooks.insecure_*` settings).
    url: String,
    /// What it is for (at most 200 characters).
    #[serde(default)]
    description: String,
}

/// An endpoint. `secret` is present only in the answer that created or rotated it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Webhook)]
pub struct WebhookView {
    id: String,
    /// The tenant whose alerts it receives; `system` for every tenant's.
    tenant: String,
    url: String,
    description: String,
    created_at: String,
    secret_rotated_at: String,
    /// `whsec_...`: the signing secret, shown once. Store it in the receiver.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl WebhookView {
    fn of(e: WebhookEndpointRecord, secret: Option<String>) -> Self {
        Self {
            id: e.id,
            tenant: e.tenant.to_string(),
            url: e.url,
            description: e.description,
            created_at: rfc3339(e.created_at),
            secret_rotated_at: rfc3339(e.secret_rotated_at),
            secret,
        }
    }
}

/// One delivery of one alert event to one endpoint.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = WebhookDelivery)]
pub struct DeliveryView {
    /// Also the `webhook-id` header and the event's `id`.
    id: String,
    endpoint_id: String,
    /// The endpoint's tenant (`system` for an installation-wide endpoint).
    endpoint_tenant: String,
    /// The alert's tenant.
    tenant: String,
    alert_id: String,
    rule: String,
    /// `dev.portcullis.alert.opened` or `dev.portcullis.alert.updated`.
    r#type: String,
    #[schema(schema_with = delivery_status)]
    status: String,
    /// Attempts made (reset by a redelivery).
    attempts: i64,
    /// When a pending delivery is next tried.
    next_attempt_at: String,
    /// The last attempt's HTTP status, if it got one.
    last_status: Option<i64>,
    /// Why the last attempt failed.
    last_error: Option<String>,
    created_at: String,
    /// When it was delivered or dead-lettered.
    finished_at: Option<String>,
    /// The CloudEvents body sent.
    #[schema(value_type = Object)]
    event: serde_json::Value,
}

fn delivery_status() -> utoipa::openapi::schema::ObjectBuilder {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(DeliveryStatus::ALL.map(DeliveryStatus::as_str)))
}

impl From<WebhookDeliveryRecord> for DeliveryView {
    fn from(d: WebhookDeliveryRecord) -> Self {
        Self {
            event: serde_json::from_str(&d.payload).unwrap_or(serde_json::Value::String(d.payload)),
            id: d.id,
            endpoint_id: d.endpoint_id,
            endpoint_tenant: d.endpoint_tenant.to_string(),
            tenant: d.tenant.to_string(),
            alert_id: d.alert_id,
            rule: d.rule,
            r#type: d.event_type,
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            next_attempt_at: rfc3339(d.next_attempt_at),
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: rfc3339(d.created_at),
            finished_at: d.finished_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeliveryParams {
    /// `pending`, `delivered` or `dead` (the dead-letter list).
    status: Option<String>,
    /// Only this endpoint's deliveries.
    endpoint: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GlobalDeliveryParams {
    /// Only deliveries to this tenant's endpoints (`system`: the installation's).
    tenant: Option<String>,
    /// `pending`, `delivered` or `dead` (the dead-letter list).
    status: Option<String>,
    /// Only this endpoint's deliveries.
    endpoint: Option<String>,
}

/// The `{id}` path segment of the installation-wide routes.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct IdPath {
    /// The object's id.
    #[allow(dead_code)]
    id: String,
}

/// Who acts and for which endpoints: a tenant's admin on its tenant, a global admin on `system`.
struct Caller<'a> {
    tenant: TenantId,
    principal: &'a AdminPrincipal,
    origin: &'a RequestOrigin,
}

impl<'a> From<&'a TenantAdmin> for Caller<'a> {
    fn from(a: &'a TenantAdmin) -> Self {
        Self {
            tenant: a.tenant.clone(),
            principal: &a.principal,
            origin: &a.origin,
        }
    }
}

impl<'a> From<&'a GlobalAdmin> for Caller<'a> {
    fn from(a: &'a GlobalAdmin) -> Self {
        Self {
            tenant: TenantId::system(),
            principal: &a.principal,
            origin: &a.origin,
        }
    }
}

impl Caller<'_> {
    fn record(&self, state: &AuditAdmin, action: Action, target: &str) {
        state.audit.record(
            EventDraft {
                tenant: self.tenant.clone(),
                actor: self.principal.actor(),
                credential_id: Some(self.principal.credential_id.clone()),
                action,
                outcome: Outcome::Success,
                reason: None,
                target: Some(target.to_owned()),
            },
            self.origin,
        );
    }
}

fn webhook_error(e: WebhookError) -> ApiError {
    match e {
        WebhookError::Invalid(why) => ApiError::invalid_request(why),
        WebhookError::NotFound => ApiError::not_found(),
        WebhookError::Store(e) => e.into(),
        other => ApiError::internal(other),
    }
}

async fn do_create(
    state: &AuditAdmin,
    caller: Caller<'_>,
    body: CreateWebhook,
) -> Result<(StatusCode, Json<WebhookView>), ApiError> {
    let (endpoint, secret) = state
        .webhooks
        .create(&caller.tenant, &body.url, &body.description)
        .await
        .map_err(webhook_error)?;
    caller.record(state, Action::WebhookCreate, &endpoint.id);
    let secret = secret.expose().clone();
    Ok((
        StatusCode::CREATED,
        Json(WebhookView::of(endpoint, Some(secret))),
    ))
}

async fn do_list(
    state: &AuditAdmin,
    tenant: &TenantId,
    query: ListQuery<NoFilter>,
) -> Result<Json<Paged<WebhookView>>, ApiError> {
    let scope = format!("webhooks:{tenant}");
    let page = query.paging.request(&scope)?;
    let endpoints = state.store.list_webhook_endpoints(tenant, &page).await?;
    Ok(Json(Paged::new(endpoints, &scope, |e| {
        WebhookView::of(e, None)
    })))
}

async fn load(
    state: &AuditAdmin,
    tenant: &TenantId,
    id: &str,
) -> Result<WebhookEndpointRecord, ApiError> {
    if id.len() > MAX_ID {
        return Err(ApiError::not_found());
    }
    state
        .store
        .get_webhook_endpoint(tenant, id)
        .await?
        .ok_or_else(ApiError::not_found)
}

async fn do_delete(
    state: &AuditAdmin,
    caller: Caller<'_>,
    id: &str,
) -> Result<StatusCode, ApiError> {
    if id.len() > MAX_ID
        || !state
            .store
            .delete_webhook_endpoint(&caller.tenant, id)
            .await?
    {
        return Err(ApiError::not_found());
    }
    caller.record(state, Action::WebhookDelete, id);
    Ok(StatusCode::NO_CONTENT)
}

async fn do_rotate(
    state: &AuditAdmin,
    caller: Caller<'_>,
    id: &str,
) -> Result<Json<WebhookView>, ApiError> {
    if id.len() > MAX_ID {
        return Err(ApiError::not_found());
    }
    let (endpoint, secret) = state
        .webhooks
        .rotate_secret(&caller.tenant, id)
        .await
        .map_err(webhook_error)?;
    caller.record(state, Action::WebhookRotateSecret, id);
    let secret = secret.expose().clone();
    Ok(Json(WebhookView::of(endpoint, Some(secret))))
}

fn delivery_filter(
    endpoint_tenant: Option<TenantId>,
    status: Option<&str>,
    endpoint: Option<String>,
) -> Result<DeliveryFilter, ApiError> {
    let status = status
        .map(|s| {
            DeliveryStatus::parse(s)
                .ok_or_else(|| ApiError::invalid_request("status is pending, delivered or dead"))
        })
        .transpose()?;
    if endpoint.as_ref().is_some_and(|e| e.len() > MAX_ID) {
        return Err(ApiError::invalid_request("endpoint is not a webhook id"));
    }
    Ok(DeliveryFilter {
        endpoint_tenant,
        status,
        endpoint_id: endpoint,
    })
}

async fn do_redeliver(
    state: &AuditAdmin,
    caller: Caller<'_>,
    scope: Option<&TenantId>,
    id: &str,
) -> Result<Json<DeliveryView>, ApiError> {
    if id.len() > MAX_ID {
        return Err(ApiError::not_found());
    }
    let found = state
        .store
        .get_webhook_delivery(scope, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if found.status != DeliveryStatus::Dead {
        return Err(ApiError::conflict(format!(
            "the delivery is {}, not dead",
            found.status.as_str()
        )));
    }
    if !state
        .webhooks
        .redeliver(scope, id)
        .await
        .map_err(webhook_error)?
    {
        return Err(ApiError::conflict("the delivery changed meanwhile"));
    }
    caller.record(state, Action::WebhookRedeliver, id);
    // The answer is the delivery as the redelivery left it, not a second read: the deliverer
    // is woken at once and may already have started an attempt.
    let after = portcullis_store::WebhookDeliveryRecord {
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: state.clock.now(),
        lease_owner: None,
        lease_until: None,
        finished_at: None,
        ..found
    };
    Ok(Json(after.into()))
}

// --- A tenant's endpoints ---------------------------------------------------------------------

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/webhooks", tag = "webhooks", params(super::openapi::TenantPath), request_body = CreateWebhook,
    responses((status = 201, description = "The endpoint, with its secret (shown once)", body = WebhookView),
              (status = 400, description = "A URL the rules refuse, or a bad description", body = super::openapi::ErrorBody)))]
pub async fn create(
    admin: TenantAdmin,
    State(state): State<AuditAdmin>,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookView>), ApiError> {
    do_create(&state, (&admin).into(), body).await
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/webhooks", tag = "webhooks", params(super::openapi::TenantPath, crate::page::PageParams),
    responses((status = 200, description = "A page of the tenant's endpoints, newest first", body = Paged<WebhookView>)))]
pub async fn list(
    admin: TenantAdmin,
    State(state): State<AuditAdmin>,
    query: ListQuery<NoFilter>,
) -> Result<Json<Paged<WebhookView>>, ApiError> {
    do_list(&state, &admin.tenant, query).await
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/webhooks/{id}", tag = "webhooks", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The endpoint (never its secret)", body = WebhookView)))]
pub async fn show(
    admin: TenantAdmin,
    State(state): State<AuditAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(WebhookView::of(
        load(&state, &admin.tenant, &id).await?,
        None,
    )))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/webhooks/{id}", tag = "webhooks", params(super::openapi::TenantIdPath),
    responses((status = 204, description = "Deleted, with its queued deliveries")))]
pub async fn delete(
    admin: TenantAdmin,
    State(state): State<AuditAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    do_delete(&state, (&admin).into(), &id).await
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/webhooks/{id}/rotate-secret", tag = "webhooks", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The endpoint with its new secret (shown once); the old one no longer signs", body = WebhookView)))]
pub async fn rotate_secret(
    admin: TenantAdmin,
    State(state): State<AuditAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<WebhookView>, ApiError> {
    do_rotate(&state, (&admin).into(), &id).await
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/webhook-deliveries", tag = "webhooks", params(super::openapi::TenantPath, crate::page::PageParams, DeliveryParams),
    responses((status = 200, description = "A page of deliveries to the tenant's endpoints, newest first", body = Paged<DeliveryView>),
              (status = 400, description = "Bad filter, limit, or a cursor not from this list", body = super::openapi::ErrorBody)))]
pub async fn deliveries(
    admin: TenantAdmin,
    State(state): State<AuditAdmin>,
    query: ListQuery<DeliveryParams>,
) -> Result<Json<Paged<DeliveryView>>, ApiError> {
    let p = query.filter;
    let scope = format!("webhook-deliveries:{}", admin.tenant);
    let page = query.paging.request(&scope)?;
    let f = delivery_filter(Some(admin.tenant.clone()), p.status.as_deref(), p.endpoint)?;
    let rows = state.store.list_webhook_deliveries(&f, &page).await?;
    Ok(Json(Paged::new(rows, &scope, DeliveryView::from)))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/webhook-deliveries/{id}/redeliver", tag = "webhooks", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The delivery, queued again with its attempts reset", body = DeliveryView),
              (status = 409, description = "The delivery is not dead", body = super::openapi::ErrorBody)))]
pub async fn redeliver(
    admin: TenantAdmin,
    State(state): State<AuditAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<DeliveryView>, ApiError> {
    let tenant = admin.tenant.clone();
    do_redeliver(&state, (&admin).into(), Some(&tenant), &id).await
}

// --- The installation's endpoints -------------------------------------------------------------

#[utoipa::path(post, path = "/admin/v1/webhooks", tag = "webhooks", request_body = CreateWebhook,
    responses((status = 201, description = "The installation-wide endpoint (every tenant's alerts), with its secret (shown once)", body = WebhookView),
              (status = 400, description = "A URL the rules refuse, or a bad description", body = super::openapi::ErrorBody)))]
pub async fn create_global(
    admin: GlobalAdmin,
    State(state): State<AuditAdmin>,
    ApiJson(body): ApiJson<CreateWebhook>,
) -> Result<(StatusCode, Json<WebhookView>), ApiError> {
    do_create(&state, (&admin).into(), body).await
}

#[utoipa::path(get, path = "/admin/v1/webhooks", tag = "webhooks", params(crate::page::PageParams),
    responses((status = 200, description = "A page of the installation-wide endpoints, newest first", body = Paged<WebhookView>)))]
pub async fn list_global(
    _admin: GlobalAdmin,
    State(state): State<AuditAdmin>,
    query: ListQuery<NoFilter>,
) -> Result<Json<Paged<WebhookView>>, ApiError> {
    do_list(&state, &TenantId::system(), query).await
}

#[utoipa::path(get, path = "/admin/v1/webhooks/{id}", tag = "webhooks", params(IdPath),
    responses((status = 200, description = "The endpoint (never its secret)", body = WebhookView)))]
pub async fn show_global(
    _admin: GlobalAdmin,
    State(state): State<AuditAdmin>,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(WebhookView::of(
        load(&state, &TenantId::system(), &id).await?,
        None,
    )))
}

#[utoipa::path(delete, path = "/admin/v1/webhooks/{id}", tag = "webhooks", params(IdPath),
    responses((status = 204, description = "Deleted, with its queued deliveries")))]
pub async fn delete_global(
    admin: GlobalAdmin,
    State(state): State<AuditAdmin>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    do_delete(&state, (&admin).into(), &id).await
}

#[utoipa::path(post, path = "/admin/v1/webhooks/{id}/rotate-secret", tag = "webhooks", params(IdPath),
    responses((status = 200, description = "The endpoint with its new secret (shown once)", body = WebhookView)))]
pub async fn rotate_secret_global(
    admin: GlobalAdmin,
    State(state): State<AuditAdmin>,
    Path(id): Path<String>,
) -> Result<Json<WebhookView>, ApiError> {
    do_rotate(&state, (&admin).into(), &id).await
}

#[utoipa::path(get, path = "/admin/v1/webhook-deliveries", tag = "webhooks", params(crate::page::PageParams, GlobalDeliveryParams),
    responses((status = 200, description = "A page of deliveries to every endpoint (or one tenant's), newest first", body = Paged<DeliveryView>),
              (status = 400, description = "Bad filter, limit, or a cursor not from this list", body = super::openapi::ErrorBody)))]
pub async fn deliveries_global(
    _admin: GlobalAdmin,
    State(state): State<AuditAdmin>,
    query: ListQuery<GlobalDeliveryParams>,
) -> Result<Json<Paged<DeliveryView>>, ApiError> {
    let p = query.filter;
    let (tenant, scope) = crate::page::tenant_filtered("webhook-deliveries", p.tenant.as_deref())?;
    let page = query.paging.request(&scope)?;
    let f = delivery_filter(tenant, p.status.as_deref(), p.endpoint)?;
    let rows = state.store.list_webhook_deliveries(&f, &page).await?;
    Ok(Json(Paged::new(rows, &scope, DeliveryView::from)))
}

#[utoipa::path(post, path = "/admin/v1/webhook-deliveries/{id}/redeliver", tag = "webhooks", params(IdPath),
    responses((status = 200, description = "The delivery, queued again with its attempts reset", body = DeliveryView),
              (status = 409, description = "The delivery is not dead", body = super::openapi::ErrorBody)))]
pub async fn redeliver_global(
    admin: GlobalAdmin,
    State(state): State<AuditAdmin>,
    Path(id): Path<String>,
) -> Result<Json<DeliveryView>, ApiError> {
    do_redeliver(&state, (&admin).into(), None, &id).await
}
