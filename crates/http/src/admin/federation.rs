//! Workload identity federation of a tenant: the external issuers it trusts (CI platforms,
//! clusters, SPIFFE) and the trust rules that say which of their tokens get which tokens here.
//!
//! A rule is checked by core when saved (its conditions, its lifetime, and on an issuer shared
//! by every customer of a platform the pin of an immutable owner or project id), and may only
//! grant audiences of this tenant's resource servers and scopes they define, like a client. An
//! issuer is addressed by its URL in the `issuer` query parameter (URLs do not fit a path
//! segment); one with rules cannot be removed.
//!
//! A rule's view carries core's lint warnings (`portcullis_core::federation::lint`): rules that
//! would match pull requests (forks' included), any branch, or constrain only the calling
//! workflow. A warning never refuses a rule; it is shown on create, show and list.
//!
//! This module must never save a rule core refuses, nor a key set with a private key.

use std::time::Duration;

use crate::state::FederationAdmin;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::audit::{Action, Outcome};
use portcullis_core::federation::lint::lint;
use portcullis_core::federation::rule::Use;
use portcullis_core::federation::{ClaimCondition, Preset, RuleId, TrustRule, TrustedIssuer};
use portcullis_core::oauth::{Audience, ScopeSet, WORKLOAD_IDENTITY_JWT};
use portcullis_core::time::Timestamp;
use portcullis_service::audit::EventDraft;
use portcullis_service::federation::{check_uploaded_keys, issuer_from_record, rule_from_record};
use portcullis_service::state::rfc3339;
use portcullis_store::{KeySourceRecord, StoreError, TrustRuleRecord, TrustedIssuerRecord};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::TenantAdmin;
use crate::error::ApiError;
use crate::extract::ApiJson;

/// Algorithms accepted when the request names none.
const DEFAULT_ALGORITHMS: [&str; 2] = ["RS256", "ES256"];

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeySourceBody {
    /// `discovery`, `jwks_uri`, `jwks` or `spiffe_bundle`.
    kind: String,
    /// The JWKS URL, for `jwks_uri` (https).
    uri: Option<String>,
    /// The key set itself, for `jwks` and `spiffe_bundle` (public keys only).
    #[schema(value_type = Option<Object>)]
    keys: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTrustedIssuer {
    /// The issuer exactly as its tokens' `iss` (https). Optional for presets of a hosted
    /// platform (GitHub Actions, GitLab, Buildkite), which default to it.
    issuer: Option<String>,
    /// `github_actions`, `gitlab`, `kubernetes`, `spiffe_jwt_svid`, `buildkite`, `circleci`,
    /// `generic_oidc`.
    preset: String,
    key_source: KeySourceBody,
    /// Accepted JWS algorithms (default RS256 and ES256); never `none` or HS*.
    algorithms: Option<Vec<String>>,
    /// Longest subject-token lifetime accepted (default: the preset's; one hour, a day for
    /// Kubernetes).
    max_token_age_secs: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeySourceView {
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    keys: Option<serde_json::Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrustedIssuerView {
    tenant: String,
    issuer: String,
    preset: String,
    key_source: KeySourceView,
    algorithms: Vec<String>,
    max_token_age_secs: i64,
    created_at: String,
    updated_at: String,
}

impl From<TrustedIssuerRecord> for TrustedIssuerView {
    fn from(r: TrustedIssuerRecord) -> Self {
        let kind = r.key_source.kind().to_owned();
        let key_source = match r.key_source {
            KeySourceRecord::Discovery => KeySourceView {
                kind,
                uri: None,
                keys: None,
            },
            KeySourceRecord::JwksUri(u) => KeySourceView {
                kind,
                uri: Some(u),
                keys: None,
            },
            KeySourceRecord::Jwks(k) | KeySourceRecord::SpiffeBundle(k) => KeySourceView {
                kind,
                uri: None,
                keys: serde_json::from_str(&k).ok(),
            },
        };
        Self {
            tenant: r.tenant.to_string(),
            issuer: r.issuer,
            preset: r.preset,
            key_source,
            algorithms: r.algorithms,
            max_token_age_secs: r.max_token_age_s,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
        }
    }
}

/// The `issuer` query parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct IssuerParam {
    /// The issuer URL.
    issuer: String,
}

/// A 400 `invalid_request` saying what to change.
fn bad(description: impl Into<String>) -> ApiError {
    ApiError::invalid_request(description)
}

fn draft(admin: &TenantAdmin, action: Action, target: String) -> EventDraft {
    EventDraft {
        tenant: admin.tenant.clone(),
        actor: admin.principal.actor(),
        credential_id: Some(admin.principal.credential_id.clone()),
        action,
        outcome: Outcome::Success,
        reason: None,
        target: Some(target),
    }
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/federation/issuers", tag = "federation", params(super::openapi::TenantPath), request_body = CreateTrustedIssuer,
    responses((status = 201, description = "The trusted issuer", body = TrustedIssuerView)))]
pub async fn create_issuer(
    admin: TenantAdmin,
    State(state): State<FederationAdmin>,
    ApiJson(body): ApiJson<CreateTrustedIssuer>,
) -> Result<(StatusCode, Json<TrustedIssuerView>), ApiError> {
    let preset = Preset::parse(&body.preset).ok_or_else(|| {
        bad("preset: one of github_actions, gitlab, kubernetes, spiffe_jwt_svid, buildkite, circleci, generic_oidc")
    })?;
    let issuer = body
        .issuer
        .or_else(|| preset.default_issuer().map(str::to_owned))
        .ok_or_else(|| bad("issuer: required for this preset"))?;
    let algorithms = body
        .algorithms
        .unwrap_or_else(|| DEFAULT_ALGORITHMS.map(str::to_owned).to_vec());
    let max_age = body
        .max_token_age_secs
        .map_or(preset.default_max_token_age(), Duration::from_secs);
    let core = TrustedIssuer {
        issuer,
        preset,
        algorithms,
        max_token_age: max_age,
    };
    let allow_http = state.oauth.issuer_keys.allows_http();
    core.check(allow_http).map_err(|e| bad(e.to_string()))?;
    let ks = body.key_source;
    let key_source = match (ks.kind.as_str(), ks.uri, ks.keys) {
        ("discovery", None, None) => KeySourceRecord::Discovery,
        ("jwks_uri", Some(u), None) => {
            // The rule of every fetched key set (`federation.insecure_allow_http_loopback`
            // admits http:// for tests and local development).
            let u = portcullis_service::oauth::remote_jwks::validate_jwks_uri(&u, allow_http)
                .map_err(|_| bad("key_source.uri: an https URL"))?;
            KeySourceRecord::JwksUri(u)
        }
        (kind @ ("jwks" | "spiffe_bundle"), None, Some(keys)) => {
            check_uploaded_keys(&keys, kind == "spiffe_bundle").map_err(bad)?;
            if kind == "jwks" {
                KeySourceRecord::Jwks(keys.to_string())
            } else {
                KeySourceRecord::SpiffeBundle(keys.to_string())
            }
        }
        _ => {
            return Err(bad(
                "key_source: {kind: discovery} | {kind: jwks_uri, uri} | {kind: jwks | spiffe_bundle, keys}",
            ))
        }
    };
    let now = state.clock.now();
    let rec = TrustedIssuerRecord {
        tenant: admin.tenant.clone(),
        issuer: core.issuer.clone(),
        preset: preset.as_str().to_owned(),
        key_source,
        algorithms: core.algorithms.clone(),
        max_token_age_s: i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
        created_at: now,
        updated_at: now,
    };
    state
        .store
        .create_trusted_issuer(&rec)
        .await
        .map_err(|e| match e {
            StoreError::Conflict => ApiError::conflict("this tenant already trusts this issuer"),
            other => other.into(),
        })?;
    // Before answering: this node's next exchange reads the new state.
    state.oauth.trusted_issuers.changed(&admin.tenant);
    state.audit.record(
        draft(&admin, Action::FederationIssuerCreate, rec.issuer.clone()),
        &admin.origin,
    );
    Ok((StatusCode::CREATED, Json(rec.into())))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/federation/issuers", tag = "federation", params(super::openapi::TenantPath),
    responses((status = 200, description = "The tenant's trusted issuers, by issuer", body = Vec<TrustedIssuerView>)))]
pub async fn list_issuers(
    admin: TenantAdmin,
    State(state): State<FederationAdmin>,
) -> Result<Json<Vec<TrustedIssuerView>>, ApiError> {
    let all = state.store.list_trusted_issuers(&admin.tenant).await?;
    Ok(Json(all.into_iter().map(Into::into).collect()))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/federation/issuers", tag = "federation", params(super::openapi::TenantPath, IssuerParam),
    responses((status = 204, description = "The issuer is no longer trusted"),
        (status = 409, description = "Rules are still on this issuer", body = super::openapi::ErrorBody)))]
pub async fn delete_issuer(
    admin: TenantAdmin,
    State(state): State<FederationAdmin>,
    Query(q): Query<IssuerParam>,
) -> Result<StatusCode, ApiError> {
    let removed = state
        .store
        .delete_trusted_issuer(&admin.tenant, &q.issuer)
        .await
        .map_err(|e| match e {
            StoreError::Conflict => {
                ApiError::conflict("rules are still on this issuer: remove them first")
            }
            other => other.into(),
        })?;
    if !removed {
        return Err(ApiError::not_found());
    }
    state.oauth.trusted_issuers.changed(&admin.tenant);
    state.audit.record(
        draft(&admin, Action::FederationIssuerDelete, q.issuer),
        &admin.origin,
    );
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTrustRule {
    /// The rule's name in the tenant: 1 to 64 of `a-z 0-9 - _`.
    id: String,
    /// A trusted issuer of this tenant.
    issuer: String,
    /// The audience the external token must carry.
    audience: String,
    /// Every condition must hold: `{"claim": "repository_id", "equals": "123"}`, or `one_of`
    /// (a list), `prefix`, `glob` (`*` never crosses `/` or `:`), `exists: true`.
    #[schema(value_type = Vec<Object>)]
    conditions: Vec<ClaimCondition>,
    /// Audiences (this tenant's resource servers) the issued token may be for; the first is the
    /// default.
    audiences: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    /// Longest lifetime of the issued token (default 900 s; the configured maximum applies).
    max_lifetime_secs: Option<u64>,
    /// Allows subject tokens older than the issuer's bound.
    max_token_age_secs: Option<u64>,
    /// The issued token never outlives the subject token (default true).
    bound_to_subject_lifetime: Option<bool>,
    /// The client this rule authenticates instead (a `workload_identity_jwt` client of this
    /// tenant, which sends the external token as its `client_assertion`): the rule then serves
    /// no token exchange or JWT-bearer grant, its `audience` must be this server's issuer or
    /// token endpoint, and its audiences, scopes and lifetime also bound what the client gets.
    client_id: Option<String>,
}

/// Binds a trust rule to a client, or unbinds it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindTrustRule {
    /// A `workload_identity_jwt` client of this tenant; `null`: the rule serves the workload
    /// grants again.
    client_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrustRuleView {
    tenant: String,
    id: String,
    issuer: String,
    audience: String,
    #[schema(value_type = Vec<Object>)]
    conditions: serde_json::Value,
    audiences: Vec<String>,
    scopes: Vec<String>,
    max_lifetime_secs: i64,
    max_token_age_secs: Option<i64>,
    bound_to_subject_lifetime: bool,
    /// The client this rule authenticates (its external token as the `client_assertion`);
    /// absent: a rule of the workload grants.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<String>,
    created_at: String,
    updated_at: String,
    /// What the rule also admits that was probably not meant (never a refusal). Omitted when
    /// there is nothing to say.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    warnings: Vec<RuleWarning>,
}

/// One lint warning about a rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleWarning {
    /// `matches_pull_requests`, `any_branch` or `only_calling_workflow`.
    code: &'static str,
    message: &'static str,
}

impl TrustRuleView {
    /// The view of `r`, with the warnings of the rule read under its issuer's preset (none for
    /// a rule that does not read).
    fn linted(r: TrustRuleRecord, issuer: Option<&TrustedIssuerRecord>) -> Self {
        let warnings = issuer
            .and_then(issuer_from_record)
            .and_then(|i| rule_from_record(&r, &i).map(|rule| lint(&rule, i.preset)))
            .unwrap_or_default()
            .into_iter()
            .map(|l| RuleWarning {
                code: l.as_str(),
                message: l.message(),
            })
            .collect();
        let mut view = Self::from(r);
        view.warnings = warnings;
        view
    }
}

impl From<TrustRuleRecord> for TrustRuleView {
    fn from(r: TrustRuleRecord) -> Self {
        Self {
            tenant: r.tenant.to_string(),
            id: r.id,
            issuer: r.issuer,
            audience: r.audience,
            conditions: serde_json::from_str(&r.conditions).unwrap_or(serde_json::Value::Null),
            audiences: r.audiences,
            scopes: r.scopes,
            max_lifetime_secs: r.max_lifetime_s,
            max_token_age_secs: r.max_token_age_s,
            bound_to_subject_lifetime: r.bound_to_subject_lifetime,
            client_id: r.client_id,
            created_at: rfc3339(r.created_at),
            updated_at: rfc3339(r.updated_at),
            warnings: Vec::new(),
        }
    }
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/federation/rules", tag = "federation", params(super::openapi::TenantPath), request_body = CreateTrustRule,
    responses((status = 201, description = "The trust rule", body = TrustRuleView)))]
pub async fn create_rule(
    admin: TenantAdmin,
    State(state): State<FederationAdmin>,
    ApiJson(body): ApiJson<CreateTrustRule>,
) -> Result<(StatusCode, Json<TrustRuleView>), ApiError> {
    let id = RuleId::parse(&body.id).ok_or_else(|| bad("id: 1 to 64 of a-z 0-9 - _"))?;
    let stored = state
        .store
        .get_trusted_issuer(&admin.tenant, &body.issuer)
        .await?
        .ok_or_else(|| bad("issuer: not a trusted issuer of this tenant"))?;
    let issuer = issuer_from_record(&stored)
        .ok_or_else(|| ApiError::internal("stored trusted issuer does not read"))?;
    if body.audiences.len() > 16 {
        return Err(bad("audiences: at most 16"));
    }
    let mut audiences: Vec<Audience> = Vec::new();
    let mut defined = ScopeSet::default();
    for a in &body.audiences {
        let a = Audience::parse(a).map_err(|e| bad(e.to_string()))?;
        if audiences.contains(&a) {
            continue;
        }
        let rs = state
            .store
            .find_resource_server_by_audience(&admin.tenant, a.as_str())
            .await?
            .ok_or_else(|| {
                bad(format!(
                    "no resource server in this tenant has audience {a}"
                ))
            })?;
        defined = ScopeSet::from_strs(
            defined
                .iter()
                .map(|s| s.as_str())
                .chain(rs.scopes.iter().map(String::as_str)),
        )
        .map_err(|e| bad(e.to_string()))?;
        audiences.push(a);
    }
    let scopes = ScopeSet::from_strs(body.scopes.iter().map(String::as_str))
        .map_err(|e| bad(e.to_string()))?;
    if !scopes.is_subset(&defined) {
        return Err(bad(
            "every scope must be defined by one of the rule's audiences",
        ));
    }
    let max_lifetime = Duration::from_secs(body.max_lifetime_secs.unwrap_or(900));
    if max_lifetime > state.oauth.lifetimes.max {
        return Err(bad(format!(
            "max_lifetime_secs: at most {} (the configured maximum)",
            state.oauth.lifetimes.max.as_secs()
        )));
    }
    let rule = TrustRule {
        id,
        issuer: issuer.issuer.clone(),
        audience: body.audience,
        conditions: body.conditions,
        audiences,
        scopes,
        max_lifetime,
        max_token_age: body.max_token_age_secs.map(Duration::from_secs),
        bound_to_subject_lifetime: body.bound_to_subject_lifetime.unwrap_or(true),
        client_id: body.client_id,
    };
    rule.check(&issuer).map_err(|e| bad(e.to_string()))?;
    check_binding(&state, &admin, &rule).await?;
    let secs = |d: Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let now = state.clock.now();
    let rec = TrustRuleRecord {
        tenant: admin.tenant.clone(),
        id: rule.id.as_str().to_owned(),
        issuer: rule.issuer.clone(),
        audience: rule.audience.clone(),
        conditions: serde_json::to_string(&rule.conditions)
            .map_err(|_| ApiError::internal("conditions do not serialise"))?,
        audiences: rule
            .audiences
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect(),
        scopes: rule.scopes.to_vec(),
        max_lifetime_s: secs(rule.max_lifetime),
        max_token_age_s: rule.max_token_age.map(secs),
        bound_to_subject_lifetime: rule.bound_to_subject_lifetime,
        client_id: rule.client_id.clone(),
        created_at: now,
        updated_at: now,
    };
    state
        .store
        .create_trust_rule(&rec)
        .await
        .map_err(|e| match e {
            StoreError::Conflict => {
                ApiError::conflict("this tenant already has a rule with this id")
            }
            StoreError::NotFound => bad("issuer: not a trusted issuer of this tenant"),
            other => other.into(),
        })?;
    state.oauth.trusted_issuers.changed(&admin.tenant);
    state.audit.record(
        draft(&admin, Action::FederationRuleCreate, rec.id.clone()),
        &admin.origin,
    );
    Ok((
        StatusCode::CREATED,
        Json(TrustRuleView::linted(rec, Some(&stored))),
    ))
}

/// A rule bound to a client names a `workload_identity_jwt` client of this tenant, and this
/// server as the external token's audience (core's `check_client_binding`).
async fn check_binding(
    state: &FederationAdmin,
    admin: &TenantAdmin,
    rule: &TrustRule,
) -> Result<(), ApiError> {
    let Some(id) = rule.client_id.as_deref() else {
        return Ok(());
    };
    rule.check_client_binding(&state.oauth.assertion_audiences())
        .map_err(|e| bad(e.to_string()))?;
    let client = admin
        .scope
        .client(id)
        .await?
        .ok_or_else(|| bad("client_id: not a client of this tenant"))?;
    if client.auth_method != WORKLOAD_IDENTITY_JWT {
        return Err(bad(format!(
            "client_id: a rule authenticates only a {WORKLOAD_IDENTITY_JWT} client (this one is {})",
            client.auth_method
        )));
    }
    Ok(())
}

/// Binds a rule to a client (its external tokens then authenticate that client, and the rule
/// serves no workload grant), or unbinds it.
#[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/federation/rules/{id}/client", tag = "federation", params(super::openapi::TenantIdPath), request_body = BindTrustRule,
    responses((status = 200, description = "The trust rule", body = TrustRuleView),
        (status = 409, description = "The rule changed while it was being bound, or no longer reads under this version", body = super::openapi::ErrorBody)))]
pub async fn bind_rule(
    admin: TenantAdmin,
    State(state): State<FederationAdmin>,
    Path((_, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<BindTrustRule>,
) -> Result<Json<TrustRuleView>, ApiError> {
    if id.len() > 64 {
        return Err(ApiError::not_found());
    }
    let mut rec = state
        .store
        .get_trust_rule(&admin.tenant, &id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let stored = state
        .store
        .get_trusted_issuer(&admin.tenant, &rec.issuer)
        .await?
        .ok_or_else(|| ApiError::conflict("the rule's issuer was removed; read the rule again"))?;
    // A stored rule this version cannot read serves no token either (the issuer cache skips
    // it); binding it would only hide that, so the answer says what to do instead.
    let unreadable = || {
        ApiError::conflict(
            "this rule no longer reads under this version; delete it and create it again",
        )
    };
    let issuer = issuer_from_record(&stored).ok_or_else(unreadable)?;
    let mut rule = rule_from_record(&rec, &issuer).ok_or_else(unreadable)?;
    rule.client_id = body.client_id;
    check_binding(&state, &admin, &rule).await?;
    let read_updated_at = rec.updated_at;
    rec.client_id = rule.client_id;
    // Strictly later than the version read, even within one millisecond or behind another
    // node's clock: a second bind from the same read then finds a version it did not read.
    rec.updated_at = state
        .clock
        .now()
        .max(Timestamp::from_millis(read_updated_at.as_millis() + 1));
    // Only the version read is written: a rule deleted and created again meanwhile keeps its
    // own conditions rather than taking back the old ones.
    if !state.store.update_trust_rule(&rec, read_updated_at).await? {
        return Err(
            match state.store.get_trust_rule(&admin.tenant, &id).await? {
                None => ApiError::not_found(),
                Some(_) => ApiError::conflict(
                    "the rule changed while it was being bound; read it and try again",
                ),
            },
        );
    }
    state.oauth.trusted_issuers.changed(&admin.tenant);
    state.audit.record(
        draft(&admin, Action::FederationRuleBind, rec.id.clone()),
        &admin.origin,
    );
    Ok(Json(TrustRuleView::linted(rec, Some(&stored))))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/federation/rules", tag = "federation", params(super::openapi::TenantPath),
    responses((status = 200, description = "The tenant's trust rules, by id", body = Vec<TrustRuleView>)))]
pub async fn list_rules(
    admin: TenantAdmin,
    State(state): State<FederationAdmin>,
) -> Result<Json<Vec<TrustRuleView>>, ApiError> {
    let all = state.store.list_trust_rules(&admin.tenant, None).await?;
    let issuers = state.store.list_trusted_issuers(&admin.tenant).await?;
    Ok(Json(
        all.into_iter()
            .map(|r| {
                let issuer = issuers.iter().find(|i| i.issuer == r.issuer);
                TrustRuleView::linted(r, issuer)
            })
            .collect(),
    ))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/federation/rules/{id}", tag = "federation", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The trust rule", body = TrustRuleView)))]
pub async fn show_rule(
    admin: TenantAdmin,
    State(state): State<FederationAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<TrustRuleView>, ApiError> {
    if id.len() > 64 {
        return Err(ApiError::not_found());
    }
    let rule = state
        .store
        .get_trust_rule(&admin.tenant, &id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let issuer = state
        .store
        .get_trusted_issuer(&admin.tenant, &rule.issuer)
        .await?;
    Ok(Json(TrustRuleView::linted(rule, issuer.as_ref())))
}

#[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/federation/rules/{id}", tag = "federation", params(super::openapi::TenantIdPath),
    responses((status = 204, description = "The rule is removed")))]
pub async fn delete_rule(
    admin: TenantAdmin,
    State(state): State<FederationAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if id.len() > 64 || !state.store.delete_trust_rule(&admin.tenant, &id).await? {
        return Err(ApiError::not_found());
    }
    state.oauth.trusted_issuers.changed(&admin.tenant);
    state.audit.record(
        draft(&admin, Action::FederationRuleDelete, id),
        &admin.origin,
    );
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FederationTestBody {
    /// The external token to try (a CI job's OIDC token, a pod token, a JWT-SVID).
    token: String,
    /// The rule a request would name; default: the most specific match.
    rule: Option<String>,
    /// The scope a request would ask for.
    scope: Option<String>,
    /// The audience a request would ask for.
    audience: Option<String>,
    /// Try the token as this client's `client_assertion` (the rules bound to it) instead of
    /// as a workload grant (the rules bound to no client).
    client_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FederationCheckView {
    /// `structure`, `issuer`, `keys`, `signature_and_claims`, `workload`, `rule` (one per rule
    /// of the issuer), `selection`, `grant`, `jti`.
    check: String,
    ok: bool,
    detail: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FederationTestView {
    /// Whether a token request would be admitted (single use aside: a dry run neither checks
    /// nor spends the token's `jti`).
    admitted: bool,
    /// The rule that would apply.
    rule: Option<String>,
    audience: Option<String>,
    scope: Option<String>,
    lifetime_secs: Option<u64>,
    /// Every check made, in order, with its result.
    checks: Vec<FederationCheckView>,
}

/// A dry run of the tenant's rules against a token: what `portcullis federation test` prints.
/// A caller of the token endpoint only ever sees `invalid_grant`; an operator sees every check.
#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/federation/test", tag = "federation", params(super::openapi::TenantPath), request_body = FederationTestBody,
    responses((status = 200, description = "Every check and the outcome", body = FederationTestView)))]
pub async fn test_token(
    admin: TenantAdmin,
    State(state): State<FederationAdmin>,
    ApiJson(body): ApiJson<FederationTestBody>,
) -> Result<Json<FederationTestView>, ApiError> {
    use portcullis_service::federation::exchange;
    let rule = match body.rule.as_deref() {
        None => None,
        Some(r) => Some(RuleId::parse(r).ok_or_else(|| bad("rule: a rule id"))?),
    };
    let targets: Vec<&str> = body.audience.as_deref().into_iter().collect();
    let assertion_audiences = state.oauth.assertion_audiences();
    let req = exchange::Request {
        tenant: &admin.tenant,
        purpose: match body.client_id.as_deref() {
            None => Use::Grant,
            Some(id) => Use::ClientAuthentication(id),
        },
        assertion_audiences: &assertion_audiences,
        subject_token: &body.token,
        rule: rule.as_ref(),
        scope: body.scope.as_deref(),
        targets: &targets,
        now: state.clock.now(),
        leeway: portcullis_service::keys::jwt::LEEWAY,
        tenant_cap: state.oauth.lifetimes.max,
        keys: Some(&state.oauth.issuer_keys),
        // What is stored now, not what this node cached up to a TTL ago.
        issuers: None,
    };
    let e = exchange::explain(state.store.as_ref(), &req).await;
    if let Err(exchange::Refused::Store(cause)) = &e.outcome {
        return Err(ApiError::internal(cause));
    }
    let admitted = e.outcome.as_ref().ok();
    Ok(Json(FederationTestView {
        admitted: admitted.is_some(),
        rule: admitted.map(|a| a.rule.id.as_str().to_owned()),
        audience: admitted.map(|a| a.decision.audience.as_str().to_owned()),
        scope: admitted.map(|a| a.decision.scopes.to_delimited()),
        lifetime_secs: admitted.map(|a| a.decision.lifetime.as_secs()),
        checks: e
            .checks
            .into_iter()
            .map(|c| FederationCheckView {
                check: c.check.to_owned(),
                ok: c.ok,
                detail: c.detail,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokensRevokedView {
    /// The rules whose tokens were revoked (one revocation-log entry each).
    rules: Vec<String>,
    /// The `workload_identity_jwt` clients those rules are bound to, whose tokens were revoked
    /// too (their tokens name the client, not the rule; one entry each).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    clients: Vec<String>,
}

/// Revokes every token issued under these rules until now, through the revocation log: a
/// `subject` entry for each rule's workload subject (`workload:<rule>`), and a `client` entry
/// for each client a rule is bound to; the one revocation rule every verifier applies.
async fn revoke_rules(
    state: &FederationAdmin,
    admin: &TenantAdmin,
    rules: Vec<TrustRuleRecord>,
    target: String,
) -> Result<Json<TokensRevokedView>, ApiError> {
    use portcullis_core::federation::issued::WORKLOAD_SUBJECT_PREFIX;
    use portcullis_core::revocation::RevocationKind;
    let now = state.clock.now();
    let entry = |kind, subject| portcullis_store::NewRevocation {
        tenant: admin.tenant.clone(),
        kind,
        subject,
        revoked_before: Some(now),
        expires_at: Some(now.saturating_add(state.oauth.lifetimes.max)),
        reason: Some("federation_tokens_revoked".into()),
    };
    // A rule bound to a client authenticates that client, and the client's tokens carry its
    // own id as `sub`, not the rule's workload subject: they are revoked by client.
    let clients: std::collections::BTreeSet<String> =
        rules.iter().filter_map(|r| r.client_id.clone()).collect();
    for rule in &rules {
        let subject = format!("{WORKLOAD_SUBJECT_PREFIX}{}", rule.id);
        state
            .store
            .append_revocation(&entry(RevocationKind::Subject, subject), now)
            .await?;
    }
    for client in &clients {
        state
            .store
            .append_revocation(&entry(RevocationKind::Client, client.clone()), now)
            .await?;
    }
    state.audit.record(
        draft(admin, Action::FederationTokensRevoke, target),
        &admin.origin,
    );
    Ok(Json(TokensRevokedView {
        rules: rules.into_iter().map(|r| r.id).collect(),
        clients: clients.into_iter().collect(),
    }))
}

/// Revokes every token issued so far under the rule (the rule stays: tokens issued after this
/// are valid).
#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/federation/rules/{id}/revoke-tokens", tag = "federation", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The rule whose tokens were revoked", body = TokensRevokedView)))]
pub async fn revoke_rule_tokens(
    admin: TenantAdmin,
    State(state): State<FederationAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<TokensRevokedView>, ApiError> {
    if id.len() > 64 {
        return Err(ApiError::not_found());
    }
    let rule = state
        .store
        .get_trust_rule(&admin.tenant, &id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    revoke_rules(&state, &admin, vec![rule], id).await
}

/// Revokes every token issued so far under any rule of the issuer (`issuer` query parameter).
#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/federation/issuers/revoke-tokens", tag = "federation", params(super::openapi::TenantPath, IssuerParam),
    responses((status = 200, description = "The issuer's rules whose tokens were revoked", body = TokensRevokedView)))]
pub async fn revoke_issuer_tokens(
    admin: TenantAdmin,
    State(state): State<FederationAdmin>,
    Query(q): Query<IssuerParam>,
) -> Result<Json<TokensRevokedView>, ApiError> {
    if state
        .store
        .get_trusted_issuer(&admin.tenant, &q.issuer)
        .await?
        .is_none()
    {
        return Err(ApiError::not_found());
    }
    let rules = state
        .store
        .list_trust_rules(&admin.tenant, Some(&q.issuer))
        .await?;
    revoke_rules(&state, &admin, rules, q.issuer).await
}
