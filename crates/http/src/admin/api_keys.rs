//! API key administration under `/tenants/{tenant}/api-keys`: create (the key is shown once),
//! list (filters; never secrets), show, update, disable, enable, revoke, rotate with overlap, bulk
//! revoke by owner; and the tenant's expiry policy.
//!
//! Every change (update, disable, enable, revoke, rotate, bulk revoke) is written together with
//! its revocation-log entry in one store transaction: `api_key` for a revocation,
//! `api_key_changed` otherwise, bounded by the key's expiry. Other nodes and verifiers following
//! the feed drop their cached copy when the entry reaches them; this process's verifier cache is
//! invalidated before the handler answers.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::api_key::{
    parse_description, parse_label, parse_metadata, ExpiryPolicy, IpAllowlist, PolicyError,
    RateLimit, RequestedExpiry, ScopeSet,
};
use portcullis_core::audit::{Action, Outcome, Reason};
use portcullis_core::credential::{Credential, CredentialKind, Environment};
use portcullis_core::tenant::{TenantId, TenantStatus};
use portcullis_core::time::Timestamp;
use portcullis_store::{ApiKeyFilter, ApiKeyPolicyRecord, ApiKeyRecord};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::auth::{GlobalAdmin, TenantAdmin};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::page::{ListQuery, Paged};
use portcullis_service::api_keys::ApiKeyService;
use portcullis_service::audit::EventDraft;
use portcullis_service::state::rfc3339;

/// Longest rotation overlap accepted.
const MAX_OVERLAP: Duration = Duration::from_secs(30 * 86_400);

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiKeyView)]
pub struct KeyView {
    id: String,
    tenant: String,
    environment: String,
    name: String,
    description: String,
    owner: String,
    scopes: Vec<String>,
    audiences: Option<Vec<String>>,
    ip_allowlist: Option<Vec<String>>,
    #[schema(value_type = Option<super::openapi::RateLimitSchema>)]
    rate_limit: Option<RateLimit>,
    #[schema(value_type = Object)]
    metadata: Value,
    display_prefix: String,
    /// `active`, `rotating` (replaced, still inside its overlap window), `rotated`, `disabled`,
    /// `expired` or `revoked`, as of the moment of the request.
    #[schema(value_type = String)]
    status: &'static str,
    enabled: bool,
    created_at: String,
    created_by: Option<String>,
    expires_at: Option<String>,
    disabled_at: Option<String>,
    revoked_at: Option<String>,
    revoked_reason: Option<String>,
    replaced_by: Option<String>,
    rotation_overlap_ends_at: Option<String>,
    last_used_at: Option<String>,
    last_used_ip: Option<String>,
}

fn spaced(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

fn status(r: &ApiKeyRecord, now: Timestamp) -> &'static str {
    if r.revoked_at.is_some() {
        "revoked"
    } else if r.rotation_overlap_ends_at.is_some_and(|t| now >= t) {
        "rotated"
    } else if r.expires_at.is_some_and(|t| now >= t) {
        "expired"
    } else if r.disabled_at.is_some() {
        "disabled"
    } else if r.replaced_by.is_some() {
        "rotating"
    } else {
        "active"
    }
}

impl KeyView {
    fn new(r: ApiKeyRecord, now: Timestamp) -> Self {
        let status = status(&r, now);
        Self {
            status,
            enabled: r.disabled_at.is_none(),
            tenant: r.tenant.to_string(),
            scopes: spaced(&r.scopes),
            audiences: r.audiences.as_deref().map(spaced),
            ip_allowlist: r.ip_allowlist.as_deref().map(spaced),
            rate_limit: match (r.rate_limit_requests, r.rate_limit_window_secs) {
                (Some(n), Some(w)) => Some(RateLimit {
                    requests: u32::try_from(n).unwrap_or(u32::MAX),
                    window_secs: u32::try_from(w).unwrap_or(u32::MAX),
                }),
                _ => None,
            },
            metadata: serde_json::from_str(&r.metadata).unwrap_or(Value::Null),
            created_at: rfc3339(r.created_at),
            expires_at: r.expires_at.map(rfc3339),
            disabled_at: r.disabled_at.map(rfc3339),
            revoked_at: r.revoked_at.map(rfc3339),
            rotation_overlap_ends_at: r.rotation_overlap_ends_at.map(rfc3339),
            last_used_at: r.last_used_at.map(rfc3339),
            id: r.id,
            environment: r.environment,
            name: r.name,
            description: r.description,
            owner: r.owner,
            display_prefix: r.display_prefix,
            created_by: r.created_by,
            revoked_reason: r.revoked_reason,
            replaced_by: r.replaced_by,
            last_used_ip: r.last_used_ip,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = CreatedApiKey)]
pub struct CreatedKey {
    #[serde(flatten)]
    view: KeyView,
    /// The key, shown this once.
    key: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = CreateApiKey)]
pub struct CreateKey {
    name: String,
    #[serde(default)]
    description: String,
    owner: String,
    /// Default `live`.
    environment: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    audiences: Option<Vec<String>>,
    /// A duration (`90d`, `12h`) or `never`; default: the tenant's policy.
    expires_in: Option<String>,
    ip_allowlist: Option<Vec<String>>,
    #[schema(value_type = Option<super::openapi::RateLimitSchema>)]
    rate_limit: Option<RateLimit>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_request(e.to_string())
}

fn parse_expiry(s: Option<&str>) -> Result<RequestedExpiry, ApiError> {
    match s.map(str::trim) {
        None => Ok(RequestedExpiry::PolicyDefault),
        Some("never") => Ok(RequestedExpiry::Never),
        Some(d) => humantime::parse_duration(d)
            .map(RequestedExpiry::After)
            .map_err(|_| bad("expires_in is a duration such as 90d or 12h, or `never`")),
    }
}

async fn policy(state: &ApiKeyService, tenant: &TenantId) -> Result<ExpiryPolicy, ApiError> {
    Ok(match state.store.get_api_key_policy(tenant).await? {
        None => ExpiryPolicy::default(),
        Some(p) => ExpiryPolicy {
            default_ttl_secs: p.default_ttl_secs.and_then(|s| u64::try_from(s).ok()),
            max_ttl_secs: p.max_ttl_secs.and_then(|s| u64::try_from(s).ok()),
            allow_never: p.allow_never,
        },
    })
}

async fn active_tenant(state: &ApiKeyService, tenant: &TenantId) -> Result<(), ApiError> {
    let t = state
        .store
        .get_tenant(tenant)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if t.status != TenantStatus::Active {
        return Err(ApiError::conflict("the tenant is disabled"));
    }
    Ok(())
}

fn record_event(
    state: &ApiKeyService,
    admin: &TenantAdmin,
    action: Action,
    target: &str,
    reason: Option<Reason>,
) {
    state.audit.record(
        EventDraft {
            tenant: admin.tenant.clone(),
            actor: admin.principal.actor(),
            credential_id: Some(admin.principal.credential_id.clone()),
            action,
            outcome: Outcome::Success,
            reason,
            target: Some(target.to_owned()),
        },
        &admin.origin,
    );
}

/// A freshly generated key and the record storing its digest, without an id clash check (the
/// store's primary key refuses one; 71 random bits make it practically impossible).
fn mint(environment: &Environment) -> Credential {
    Credential::generate(
        CredentialKind::ApiKey,
        environment.clone(),
        &mut rand::rngs::OsRng,
    )
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/api-keys", tag = "api-keys", params(super::openapi::TenantPath), request_body = CreateKey,
    responses((status = 201, description = "The key; the secret is shown this once", body = CreatedKey)))]
pub async fn create(
    admin: TenantAdmin,
    State(state): State<ApiKeyService>,
    ApiJson(body): ApiJson<CreateKey>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let environment = match body.environment.as_deref() {
        None => Environment::live(),
        Some(e) => Environment::parse(e).map_err(|_| {
            bad("environment must be a lowercase slug of 1 to 16 characters, e.g. live or test")
        })?,
    };
    let name = parse_label("name", &body.name).map_err(bad)?;
    let owner = parse_label("owner", &body.owner).map_err(bad)?;
    let description = parse_description(&body.description).map_err(bad)?;
    let scopes = ScopeSet::parse_list(&body.scopes).map_err(bad)?;
    let audiences = body
        .audiences
        .as_deref()
        .map(ScopeSet::parse_list)
        .transpose()
        .map_err(bad)?;
    let ip_allowlist = body
        .ip_allowlist
        .as_deref()
        .map(IpAllowlist::parse_list)
        .transpose()
        .map_err(bad)?;
    let rate_limit = body
        .rate_limit
        .map(RateLimit::validate)
        .transpose()
        .map_err(bad)?;
    let metadata =
        parse_metadata(&body.metadata.unwrap_or_else(|| serde_json::json!({}))).map_err(bad)?;
    let requested = parse_expiry(body.expires_in.as_deref())?;
    active_tenant(&state, &admin.tenant).await?;
    let now = state.clock.now();
    let expires_at = policy(&state, &admin.tenant)
        .await?
        .resolve(requested, now)
        .map_err(bad)?;

    let credential = mint(&environment);
    let record = ApiKeyRecord {
        id: credential.id().to_owned(),
        tenant: admin.tenant.clone(),
        environment: environment.to_string(),
        name,
        description,
        owner,
        scopes: scopes.to_spaced(),
        audiences: audiences.map(|a| a.to_spaced()),
        ip_allowlist: ip_allowlist.map(|a| a.to_spaced()),
        rate_limit_requests: rate_limit.map(|r| i64::from(r.requests)),
        rate_limit_window_secs: rate_limit.map(|r| i64::from(r.window_secs)),
        metadata,
        display_prefix: credential.display_prefix(),
        digest: credential.digest().to_vec(),
        created_at: now,
        created_by: Some(admin.principal.actor().to_string()),
        expires_at,
        disabled_at: None,
        revoked_at: None,
        revoked_reason: None,
        replaced_by: None,
        rotation_overlap_ends_at: None,
        last_used_at: None,
        last_used_ip: None,
    };
    state.store.insert_api_key(&record).await?;
    record_event(&state, &admin, Action::ApiKeyCreate, &record.id, None);
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            view: KeyView::new(record, now),
            key: credential.expose().to_owned(),
        }),
    ))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    environment: Option<String>,
    owner: Option<String>,
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/api-keys", tag = "api-keys", params(super::openapi::TenantPath, crate::page::PageParams, ListParams),
    responses((status = 200, description = "A page of the tenant's keys, oldest first", body = Paged<KeyView>)))]
pub async fn list(
    admin: TenantAdmin,
    State(state): State<ApiKeyService>,
    query: ListQuery<ListParams>,
) -> Result<Json<Paged<KeyView>>, ApiError> {
    let scope = format!("api-keys:{}", admin.tenant);
    let page = query.paging.request(&scope)?;
    let filter = ApiKeyFilter {
        environment: query.filter.environment,
        owner: query.filter.owner,
    };
    let now = state.clock.now();
    let keys = state
        .store
        .list_api_keys(&admin.tenant, &filter, &page)
        .await?;
    Ok(Json(Paged::new(keys, &scope, |k| KeyView::new(k, now))))
}

/// The key `id` of the admin's tenant; another tenant's key is "not found".
async fn load(admin: &TenantAdmin, id: &str) -> Result<ApiKeyRecord, ApiError> {
    admin
        .scope
        .api_key(id)
        .await?
        .ok_or_else(ApiError::not_found)
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/api-keys/{id}", tag = "api-keys", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The key", body = KeyView)))]
pub async fn show(
    admin: TenantAdmin,
    State(state): State<ApiKeyService>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<KeyView>, ApiError> {
    let key = load(&admin, &id).await?;
    Ok(Json(KeyView::new(key, state.clock.now())))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UpdateApiKey)]
pub struct UpdateKey {
    name: Option<String>,
    description: Option<String>,
    scopes: Option<Vec<String>>,
    /// An empty list removes the restriction.
    audiences: Option<Vec<String>>,
    /// An empty list removes the allowlist.
    ip_allowlist: Option<Vec<String>>,
    /// `null` removes the limit.
    #[serde(default, deserialize_with = "explicit_null")]
    #[schema(value_type = Option<super::openapi::RateLimitSchema>)]
    rate_limit: Option<Option<RateLimit>>,
    #[schema(value_type = Option<Object>)]
    metadata: Option<Value>,
}

/// Distinguishes a field set to `null` (`Some(None)`) from an absent one (`None`).
fn explicit_null<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

#[utoipa::path(patch, path = "/admin/v1/tenants/{tenant}/api-keys/{id}", tag = "api-keys", params(super::openapi::TenantIdPath), request_body = UpdateKey,
    responses((status = 200, description = "The key, changed", body = KeyView)))]
pub async fn update(
    admin: TenantAdmin,
    State(state): State<ApiKeyService>,
    Path((_, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateKey>,
) -> Result<Json<KeyView>, ApiError> {
    let mut key = load(&admin, &id).await?;
    if key.revoked_at.is_some() {
        return Err(ApiError::conflict("the key is revoked"));
    }
    if let Some(n) = &body.name {
        key.name = parse_label("name", n).map_err(bad)?;
    }
    if let Some(d) = &body.description {
        key.description = parse_description(d).map_err(bad)?;
    }
    if let Some(s) = &body.scopes {
        key.scopes = ScopeSet::parse_list(s).map_err(bad)?.to_spaced();
    }
    if let Some(a) = &body.audiences {
        key.audiences = if a.is_empty() {
            None
        } else {
            Some(ScopeSet::parse_list(a).map_err(bad)?.to_spaced())
        };
    }
    if let Some(ips) = &body.ip_allowlist {
        key.ip_allowlist = if ips.is_empty() {
            None
        } else {
            Some(IpAllowlist::parse_list(ips).map_err(bad)?.to_spaced())
        };
    }
    if let Some(limit) = body.rate_limit {
        let limit = limit.map(RateLimit::validate).transpose().map_err(bad)?;
        key.rate_limit_requests = limit.map(|r| i64::from(r.requests));
        key.rate_limit_window_secs = limit.map(|r| i64::from(r.window_secs));
    }
    if let Some(m) = &body.metadata {
        key.metadata = parse_metadata(m).map_err(bad)?;
    }
    if !state
        .store
        .update_api_key_attributes(&key, state.clock.now())
        .await?
    {
        return Err(ApiError::not_found());
    }
    state.keys.verifier.invalidate(&key.id);
    record_event(&state, &admin, Action::ApiKeyUpdate, &key.id, None);
    Ok(Json(KeyView::new(key, state.clock.now())))
}

async fn set_disabled(
    admin: TenantAdmin,
    state: ApiKeyService,
    id: String,
    disable: bool,
) -> Result<Json<KeyView>, ApiError> {
    let now = state.clock.now();
    let changed = state
        .store
        .set_api_key_disabled(&admin.tenant, &id, disable.then_some(now), now)
        .await?;
    if !changed {
        return Err(ApiError::not_found());
    }
    state.keys.verifier.invalidate(&id);
    let action = if disable {
        Action::ApiKeyDisable
    } else {
        Action::ApiKeyEnable
    };
    record_event(&state, &admin, action, &id, None);
    let key = load(&admin, &id).await?;
    Ok(Json(KeyView::new(key, now)))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/api-keys/{id}/disable", tag = "api-keys", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The key, disabled", body = KeyView)))]
pub async fn disable(
    admin: TenantAdmin,
    State(state): State<ApiKeyService>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<KeyView>, ApiError> {
    set_disabled(admin, state, id, true).await
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/api-keys/{id}/enable", tag = "api-keys", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The key, enabled", body = KeyView)))]
pub async fn enable(
    admin: TenantAdmin,
    State(state): State<ApiKeyService>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<KeyView>, ApiError> {
    set_disabled(admin, state, id, false).await
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/api-keys/{id}/revoke", tag = "api-keys", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The key, revoked", body = KeyView)))]
pub async fn revoke(
    admin: TenantAdmin,
    State(state): State<ApiKeyService>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<KeyView>, ApiError> {
    let now = state.clock.now();
    if id.len() > 64
        || !state
            .store
            .revoke_api_key(&admin.tenant, &id, "admin", now)
            .await?
    {
        return Err(ApiError::not_found());
    }
    state.keys.verifier.invalidate(&id);
    record_event(
        &state,
        &admin,
        Action::ApiKeyRevoke,
        &id,
        Some(Reason::new("admin")),
    );
    let key = load(&admin, &id).await?;
    Ok(Json(KeyView::new(key, now)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeByOwner {
    owner: String,
}

/// What `revoke-by-owner` did.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedByOwner {
    owner: String,
    /// Ids of the keys revoked by this call.
    revoked: Vec<String>,
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/api-keys/revoke-by-owner", tag = "api-keys", params(super::openapi::TenantPath), request_body = RevokeByOwner,
    responses((status = 200, description = "The keys revoked", body = RevokedByOwner)))]
pub async fn revoke_by_owner(
    admin: TenantAdmin,
    State(state): State<ApiKeyService>,
    ApiJson(body): ApiJson<RevokeByOwner>,
) -> Result<Json<RevokedByOwner>, ApiError> {
    let owner = parse_label("owner", &body.owner).map_err(bad)?;
    let ids = state
        .store
        .revoke_api_keys_by_owner(&admin.tenant, &owner, "owner_offboarded", state.clock.now())
        .await?;
    for id in &ids {
        state.keys.verifier.invalidate(id);
        record_event(
            &state,
            &admin,
            Action::ApiKeyRevoke,
            id,
            Some(Reason::new("owner_offboarded")),
        );
    }
    Ok(Json(RevokedByOwner {
        owner,
        revoked: ids,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RotateApiKey)]
pub struct RotateKey {
    /// How long the old key keeps working (`1h`, `0` = stops at once). Default 0.
    overlap: Option<String>,
    /// Lifetime of the new key (`90d` or `never`); default: the tenant's policy.
    expires_in: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RotatedApiKey)]
pub struct Rotated {
    new: CreatedKey,
    old: KeyView,
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/api-keys/{id}/rotate", tag = "api-keys", params(super::openapi::TenantIdPath), request_body = RotateKey,
    responses((status = 201, description = "The new key (secret shown this once) and the old one", body = Rotated)))]
pub async fn rotate(
    admin: TenantAdmin,
    State(state): State<ApiKeyService>,
    Path((_, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<RotateKey>,
) -> Result<(StatusCode, Json<Rotated>), ApiError> {
    let overlap = match body.overlap.as_deref().map(str::trim) {
        None | Some("0") => Duration::ZERO,
        Some(d) => humantime::parse_duration(d).map_err(|_| {
            bad("overlap is a duration such as 1h, or 0 to stop the old key at once")
        })?,
    };
    if overlap > MAX_OVERLAP {
        return Err(bad("overlap may be at most 30 days"));
    }
    let requested = parse_expiry(body.expires_in.as_deref())?;
    let old = load(&admin, &id).await?;
    if old.revoked_at.is_some() || old.replaced_by.is_some() {
        return Err(ApiError::conflict("the key is revoked or already rotated"));
    }
    active_tenant(&state, &admin.tenant).await?;
    let now = state.clock.now();
    let expires_at = policy(&state, &admin.tenant)
        .await?
        .resolve(requested, now)
        .map_err(|e: PolicyError| bad(e))?;
    let environment = Environment::parse(&old.environment)
        .map_err(|_| ApiError::internal("stored api key has an invalid environment"))?;
    let credential = mint(&environment);
    let new = ApiKeyRecord {
        id: credential.id().to_owned(),
        display_prefix: credential.display_prefix(),
        digest: credential.digest().to_vec(),
        created_at: now,
        created_by: Some(admin.principal.actor().to_string()),
        expires_at,
        disabled_at: None,
        revoked_at: None,
        revoked_reason: None,
        replaced_by: None,
        rotation_overlap_ends_at: None,
        last_used_at: None,
        last_used_ip: None,
        ..old.clone()
    };
    let overlap_ends_at = now.saturating_add(overlap);
    if !state
        .store
        .rotate_api_key(&old.id, overlap_ends_at, &new)
        .await?
    {
        return Err(ApiError::conflict("the key is revoked or already rotated"));
    }
    state.keys.verifier.invalidate(&old.id);
    record_event(
        &state,
        &admin,
        Action::ApiKeyRotate,
        &old.id,
        Some(Reason::with_detail(
            "replaced_by",
            format_args!("{} overlap_secs:{}", new.id, overlap.as_secs()),
        )),
    );
    record_event(
        &state,
        &admin,
        Action::ApiKeyCreate,
        &new.id,
        Some(Reason::with_detail("rotation_of", &old.id)),
    );
    let old = load(&admin, &old.id).await?;
    Ok((
        StatusCode::CREATED,
        Json(Rotated {
            new: CreatedKey {
                view: KeyView::new(new, now),
                key: credential.expose().to_owned(),
            },
            old: KeyView::new(old, now),
        }),
    ))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = ApiKeyPolicy)]
pub struct PolicyBody {
    /// Lifetime of keys created without `expires_in`: a duration, or `never`.
    default_ttl: String,
    /// Longest lifetime allowed, or `none` for no maximum.
    max_ttl: String,
    allow_never: bool,
}

fn ttl_text(secs: Option<u64>, none_word: &str) -> String {
    secs.map(|s| humantime::format_duration(Duration::from_secs(s)).to_string())
        .unwrap_or_else(|| none_word.to_owned())
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/api-key-policy", tag = "api-keys", params(super::openapi::TenantPath),
    responses((status = 200, description = "The tenant's API key expiry policy", body = PolicyBody)))]
pub async fn show_policy(
    admin: TenantAdmin,
    State(state): State<ApiKeyService>,
) -> Result<Json<PolicyBody>, ApiError> {
    let p = policy(&state, &admin.tenant).await?;
    Ok(Json(PolicyBody {
        default_ttl: ttl_text(p.default_ttl_secs, "never"),
        max_ttl: ttl_text(p.max_ttl_secs, "none"),
        allow_never: p.allow_never,
    }))
}

/// Only global administrators set a tenant's policy: a tenant admin cannot lengthen the
/// lifetime of its own keys past what the operator allows.
#[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/api-key-policy", tag = "api-keys", params(super::openapi::TenantPath), request_body = PolicyBody,
    responses((status = 200, description = "The policy, replaced", body = PolicyBody)))]
pub async fn put_policy(
    admin: GlobalAdmin,
    State(state): State<ApiKeyService>,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<PolicyBody>,
) -> Result<Json<PolicyBody>, ApiError> {
    let tenant = TenantId::parse(&tenant).map_err(bad)?;
    let secs = |s: &str, none_word: &str| -> Result<Option<u64>, ApiError> {
        if s.trim() == none_word {
            return Ok(None);
        }
        humantime::parse_duration(s.trim())
            .map(|d| Some(d.as_secs()))
            .map_err(|_| bad(format!("expected a duration such as 90d, or `{none_word}`")))
    };
    let policy = ExpiryPolicy {
        default_ttl_secs: secs(&body.default_ttl, "never")?,
        max_ttl_secs: secs(&body.max_ttl, "none")?,
        allow_never: body.allow_never,
    }
    .validate()
    .map_err(bad)?;
    let to_i64 = |v: Option<u64>| v.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
    state
        .store
        .put_api_key_policy(
            &tenant,
            &ApiKeyPolicyRecord {
                default_ttl_secs: to_i64(policy.default_ttl_secs),
                max_ttl_secs: to_i64(policy.max_ttl_secs),
                allow_never: policy.allow_never,
            },
            state.clock.now(),
        )
        .await?;
    state.audit.record(
        EventDraft {
            tenant: tenant.clone(),
            actor: admin.principal.actor(),
            credential_id: Some(admin.principal.credential_id.clone()),
            action: Action::ApiKeyPolicyUpdate,
            outcome: Outcome::Success,
            reason: None,
            target: Some(tenant.to_string()),
        },
        &admin.origin,
    );
    Ok(Json(PolicyBody {
        default_ttl: ttl_text(policy.default_ttl_secs, "never"),
        max_ttl: ttl_text(policy.max_ttl_secs, "none"),
        allow_never: policy.allow_never,
    }))
}
