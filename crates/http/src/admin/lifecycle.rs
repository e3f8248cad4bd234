//! Credential lifecycle under `/tenants/{tenant}`: the lifetime policy (`GET`/`PUT
//! lifetime-policy`, `POST lifetime-policy/enforce`) and the hygiene report (`GET
//! hygiene-report`).
//!
//! The policy has two halves stored apart: API keys' maximum lifetime and required expiry are
//! the tenant's API key policy (`api-key-policy`'s `max_ttl` and `allow_never`), client secrets'
//! maximum age and required expiry and the mode for existing credentials are the lifetime
//! policy (migration 0027). Both are set here by global administrators only, like the API key
//! policy: a tenant admin cannot loosen the limits it works within. `enforce` disables
//! non-compliant API keys when the mode is `disable` (each audited; the service's
//! `lifetime_enforcement` does it, also hourly without a call); client secrets are reported,
//! never expired here (the client's owner rotates them). This module must never
//! decide compliance itself (core's `lifetime` and `hygiene` do) and never return a secret.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::Json;
use portcullis_core::admin::{AdminTarget, Permission};
use portcullis_core::api_key::ExpiryPolicy;
use portcullis_core::audit::{Action, Outcome, Reason};
use portcullis_core::hygiene::{self, Finding, HygieneSettings, InventoryItem};
use portcullis_core::lifetime::{ExistingMode, LifetimePolicy};
use portcullis_core::tenant::TenantId;
use portcullis_store::{ApiKeyPolicyRecord, LifetimePolicyRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{GlobalAdmin, TenantAdmin};
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiQuery};
use portcullis_service::api_keys::ApiKeyService;
use portcullis_service::audit::EventDraft;
use portcullis_service::lifecycle;
use portcullis_service::lifetime_enforcement::{EnforcedBy, Enforcement, Enforcer};
use portcullis_service::state::rfc3339;

const DAY: u64 = 86_400;
/// Longest window a report looks back over (`unused_days`).
const MAX_UNUSED_DAYS: u64 = 3650;

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_request(e.to_string())
}

/// A duration in the largest whole unit (`90d`, `36h`, `90s`), which the `PUT` reads back.
fn text(secs: Option<u64>, none_word: &str) -> String {
    match secs {
        None => none_word.to_owned(),
        Some(s) if s % DAY == 0 => format!("{}d", s / DAY),
        Some(s) if s % 3600 == 0 => format!("{}h", s / 3600),
        Some(s) if s % 60 == 0 => format!("{}m", s / 60),
        Some(s) => format!("{s}s"),
    }
}

/// A duration such as `90d`, or `none`.
fn parse_max(field: &str, s: &str) -> Result<Option<u64>, ApiError> {
    let s = s.trim();
    if s == "none" {
        return Ok(None);
    }
    match humantime::parse_duration(s) {
        Ok(d) if d.as_secs() >= 1 => Ok(Some(d.as_secs())),
        _ => Err(bad(format!(
            "{field} is a duration of at least 1s such as 90d, or `none`"
        ))),
    }
}

/// The tenant's credential lifetime policy, both halves.
#[derive(Debug, Serialize, ToSchema)]
pub struct LifetimePolicyView {
    /// Longest lifetime of an API key (`none`: no maximum). The API key policy's `max_ttl`.
    api_key_max_lifetime: String,
    /// Whether every API key must expire (the API key policy's `allow_never`, negated).
    api_key_expiry_required: bool,
    /// Longest a client secret may live, creation to expiry (`none`: no maximum). A secret
    /// created or rotated without `secret_expires_in_secs` gets this as its lifetime.
    client_secret_max_age: String,
    /// Whether every client secret must expire.
    client_secret_expiry_required: bool,
    /// What happens to existing credentials that break the policy: `ignore`, `report` (hygiene
    /// report findings) or `disable` (`enforce` disables non-compliant API keys).
    #[schema(value_type = String)]
    existing: &'static str,
    /// When the lifetime policy was last set (`null`: never).
    updated_at: Option<String>,
}

fn view(keys: &ExpiryPolicy, p: &LifetimePolicy, updated_at: Option<String>) -> LifetimePolicyView {
    LifetimePolicyView {
        api_key_max_lifetime: text(keys.max_ttl_secs, "none"),
        api_key_expiry_required: !keys.allow_never,
        client_secret_max_age: text(p.client_secret_max_age_secs, "none"),
        client_secret_expiry_required: p.client_secret_expiry_required,
        existing: p.existing.as_str(),
        updated_at,
    }
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/lifetime-policy", tag = "tenants", params(super::openapi::TenantPath),
    responses((status = 200, description = "The tenant's credential lifetime policy", body = LifetimePolicyView)))]
pub async fn show_policy(
    admin: TenantAdmin,
    State(state): State<ApiKeyService>,
) -> Result<Json<LifetimePolicyView>, ApiError> {
    let store = state.store.as_ref();
    let keys = lifecycle::api_key_policy(store, &admin.tenant).await?;
    let p = lifecycle::lifetime_policy(store, &admin.tenant).await?;
    let updated_at = store
        .get_lifetime_policy(&admin.tenant)
        .await?
        .map(|r| rfc3339(r.updated_at));
    Ok(Json(view(&keys, &p, updated_at)))
}

/// The policy to set. The client-secret fields and `existing` replace the stored ones; an API
/// key field left out keeps the API key policy's value.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LifetimePolicyBody {
    /// A duration (`365d`) or `none`. Lowers the API key policy's default lifetime with it.
    api_key_max_lifetime: Option<String>,
    api_key_expiry_required: Option<bool>,
    /// A duration (`180d`) or `none`; default `none`.
    client_secret_max_age: Option<String>,
    #[serde(default)]
    client_secret_expiry_required: bool,
    /// `ignore` (default), `report` or `disable`.
    existing: Option<String>,
}

#[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/lifetime-policy", tag = "tenants", params(super::openapi::TenantPath), request_body = LifetimePolicyBody,
    responses((status = 200, description = "The policy, replaced", body = LifetimePolicyView),
        (status = 400, description = "A value that is not a duration, `none` or a known mode", body = super::openapi::ErrorBody)))]
pub async fn put_policy(
    admin: GlobalAdmin,
    State(state): State<ApiKeyService>,
    Path(tenant): Path<String>,
    ApiJson(body): ApiJson<LifetimePolicyBody>,
) -> Result<Json<LifetimePolicyView>, ApiError> {
    let tenant = TenantId::parse(&tenant).map_err(bad)?;
    let existing = match body.existing.as_deref() {
        None => ExistingMode::Ignore,
        Some(m) => {
            ExistingMode::parse(m).ok_or_else(|| bad("existing is ignore, report or disable"))?
        }
    };
    let policy = LifetimePolicy {
        client_secret_max_age_secs: match body.client_secret_max_age.as_deref() {
            None => None,
            Some(s) => parse_max("client_secret_max_age", s)?,
        },
        client_secret_expiry_required: body.client_secret_expiry_required,
        existing,
    }
    .validate()
    .map_err(bad)?;
    let store = state.store.as_ref();
    if store.get_tenant(&tenant).await?.is_none() {
        return Err(ApiError::not_found());
    }
    let mut keys = lifecycle::api_key_policy(store, &tenant).await?;
    let keys_changed =
        body.api_key_max_lifetime.is_some() || body.api_key_expiry_required.is_some();
    if let Some(m) = body.api_key_max_lifetime.as_deref() {
        keys.max_ttl_secs = parse_max("api_key_max_lifetime", m)?;
    }
    if let Some(required) = body.api_key_expiry_required {
        keys.allow_never = !required;
    }
    if keys_changed {
        // Keep the default inside the new limits: a default of never needs allow_never and no
        // maximum; a default above the maximum becomes the maximum.
        keys.default_ttl_secs = match (keys.default_ttl_secs, keys.max_ttl_secs) {
            (Some(d), Some(m)) => Some(d.min(m)),
            (None, Some(m)) => Some(m),
            (None, None) if !keys.allow_never => {
                Some(ExpiryPolicy::default().default_ttl_secs.unwrap_or(90 * DAY))
            }
            (d, None) => d,
        };
        keys = keys.validate().map_err(bad)?;
    }
    let now = state.clock.now();
    let to_i64 = |v: Option<u64>| v.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
    store
        .put_lifetime_policy(&LifetimePolicyRecord {
            tenant: tenant.clone(),
            client_secret_max_age_secs: to_i64(policy.client_secret_max_age_secs),
            client_secret_expiry_required: policy.client_secret_expiry_required,
            existing: policy.existing.as_str().to_owned(),
            updated_at: now,
        })
        .await?;
    if keys_changed {
        store
            .put_api_key_policy(
                &tenant,
                &ApiKeyPolicyRecord {
                    default_ttl_secs: to_i64(keys.default_ttl_secs),
                    max_ttl_secs: to_i64(keys.max_ttl_secs),
                    allow_never: keys.allow_never,
                },
                now,
            )
            .await?;
    }
    state.audit.record(
        EventDraft {
            tenant: tenant.clone(),
            actor: admin.principal.actor(),
            credential_id: Some(admin.principal.credential_id.clone()),
            action: Action::TenantLifetimePolicyUpdate,
            outcome: Outcome::Success,
            reason: Some(Reason::with_detail(
                "existing",
                format_args!(
                    "{} api_key_max_lifetime:{} client_secret_max_age:{}",
                    policy.existing.as_str(),
                    text(keys.max_ttl_secs, "none"),
                    text(policy.client_secret_max_age_secs, "none")
                ),
            )),
            target: Some(tenant.to_string()),
        },
        &admin.origin,
    );
    Ok(Json(view(&keys, &policy, Some(rfc3339(now)))))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NonCompliantView {
    /// `api_key` or `client_secret`.
    kind: String,
    id: String,
    /// The key's name, or the secret's client id.
    label: String,
    /// `no_expiry`, `lifetime_too_long` or `older_than_maximum`.
    violation: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EnforceView {
    /// The mode applied.
    existing: String,
    non_compliant: Vec<NonCompliantView>,
    /// API keys disabled by this call (mode `disable` only).
    disabled: Vec<String>,
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/lifetime-policy/enforce", tag = "tenants", params(super::openapi::TenantPath),
    responses((status = 200, description = "The non-compliant credentials, and the API keys disabled if the mode is `disable`", body = EnforceView)))]
pub async fn enforce(
    admin: GlobalAdmin,
    State(state): State<ApiKeyService>,
    Path(tenant): Path<String>,
) -> Result<Json<EnforceView>, ApiError> {
    let tenant = TenantId::parse(&tenant).map_err(bad)?;
    let store = state.store.as_ref();
    if store.get_tenant(&tenant).await?.is_none() {
        return Err(ApiError::not_found());
    }
    let enforcer = Enforcer {
        store: state.store.clone(),
        audit: state.audit.clone(),
        verifier: state.keys.verifier.clone(),
        clock: state.clock.clone(),
    };
    let by = EnforcedBy {
        actor: admin.principal.actor(),
        credential_id: Some(admin.principal.credential_id.clone()),
        origin: admin.origin.clone(),
    };
    let Enforcement {
        mode,
        non_compliant: found,
        disabled,
    } = enforcer.enforce(&tenant, &by).await?;
    let kind = |k| match k {
        hygiene::CredentialKind::ApiKey => "api_key",
        _ => "client_secret",
    };
    Ok(Json(EnforceView {
        existing: mode.as_str().to_owned(),
        non_compliant: found
            .into_iter()
            .map(|n| NonCompliantView {
                kind: kind(n.kind).to_owned(),
                id: n.id,
                label: n.label,
                violation: n.violation.as_str().to_owned(),
            })
            .collect(),
        disabled,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct HygieneParams {
    /// A credential unused this many days is reported (also the window of used networks);
    /// default 90, 1 to 3650.
    unused_days: Option<u64>,
    /// A credential older than this many days is reported as not rotated; default 365.
    max_age_days: Option<u64>,
    /// A signing key or KEK older than this many days is reported; default 180.
    key_max_age_days: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HygieneView {
    tenant: String,
    generated_at: String,
    unused_days: u64,
    #[schema(value_type = Vec<Object>)]
    findings: Vec<Finding>,
    /// Admin and service credentials, and (for callers who may read signing keys) signing keys
    /// and KEKs, oldest first.
    #[schema(value_type = Vec<Object>)]
    inventory: Vec<InventoryItem>,
    /// Facts not recorded, and why (no finding is made from them).
    notes: Vec<String>,
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/hygiene-report", tag = "tenants", params(super::openapi::TenantPath, HygieneParams),
    responses((status = 200, description = "The tenant's credential hygiene report", body = HygieneView)))]
pub async fn hygiene_report(
    admin: TenantAdmin,
    State(state): State<ApiKeyService>,
    ApiQuery(q): ApiQuery<HygieneParams>,
) -> Result<Json<HygieneView>, ApiError> {
    let days = |v: Option<u64>, default: u64, name: &str| match v.unwrap_or(default) {
        d @ 1..=MAX_UNUSED_DAYS => Ok(d),
        _ => Err(bad(format!("{name} is 1 to {MAX_UNUSED_DAYS}"))),
    };
    let unused_days = days(q.unused_days, 90, "unused_days")?;
    let settings = HygieneSettings {
        unused: Duration::from_secs(unused_days * DAY),
        max_age: Duration::from_secs(days(q.max_age_days, 365, "max_age_days")? * DAY),
        key_max_age: Duration::from_secs(days(q.key_max_age_days, 180, "key_max_age_days")? * DAY),
    };
    let include_keys = admin
        .principal
        .authorize(Permission::ReadSigningKeys, AdminTarget::Global)
        .is_ok();
    let now = state.clock.now();
    let facts = lifecycle::hygiene_facts(
        state.store.as_ref(),
        &admin.tenant,
        settings.unused,
        now,
        include_keys,
    )
    .await?;
    let report = hygiene::report(&facts, &settings, now);
    Ok(Json(HygieneView {
        tenant: admin.tenant.to_string(),
        generated_at: rfc3339(now),
        unused_days,
        findings: report.findings,
        inventory: report.inventory,
        notes: report.notes,
    }))
}
