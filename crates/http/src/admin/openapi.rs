//! The admin API's part of the OpenAPI document: the list of annotated handlers, the shapes they
//! share (error body, path parameters) and schemas for the core types the views carry.
//!
//! The handlers' `#[utoipa::path]` annotations describe each route; [`AdminApi`] collects them.
//! The route registry in `super::routes` stays the source of what exists: a test compares the
//! two and fails when a route is missing from the document or the document lists a route the
//! registry lacks. This module must never describe a route the router does not serve, and
//! holds no behaviour: nothing here runs while a request is answered.

use portcullis_core::admin::AdminRole;
use portcullis_core::audit::Outcome;
use portcullis_core::signing::{KeyState, SigningAlgorithm};
use portcullis_core::tenant::TenantStatus;
use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::{
    alerts, api_keys, audit_chain, audit_events, branding, ca_sets, clients, federation, lifecycle,
    oauth_policy, resource_servers, signing_keys, tenants, tokens, user_roles, user_sessions,
    users, webhooks,
};

/// Every error answer of the admin API: a standard code and, for validation failures only, a
/// short description.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// `invalid_request`, `invalid_token`, `insufficient_scope`, `not_found`, `conflict`, ...
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// The `{tenant}` path segment. Its pattern (also on `CreateTenant::id`; the macros take only
/// literals) tells clients and fuzzers what a tenant id looks like; core's `TenantId::parse`
/// stays the rule and also refuses double hyphens and reserved ids.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// Tenant id (2 to 63 lowercase letters, digits and single hyphens).
    #[param(pattern = "^[a-z][a-z0-9-]{0,61}[a-z0-9]$")]
    #[allow(dead_code)]
    tenant: String,
}

/// The `{tenant}` and `{id}` path segments.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantIdPath {
    /// Tenant id.
    #[param(pattern = "^[a-z][a-z0-9-]{0,61}[a-z0-9]$")]
    #[allow(dead_code)]
    tenant: String,
    /// The object's id.
    #[allow(dead_code)]
    id: String,
}

fn string_enum(values: impl IntoIterator<Item = &'static str>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
}

pub fn tenant_status() -> ObjectBuilder {
    string_enum([TenantStatus::Active, TenantStatus::Disabled].map(TenantStatus::as_str))
}

pub fn admin_role() -> ObjectBuilder {
    string_enum(AdminRole::ALL.map(AdminRole::as_str))
}

pub fn key_state() -> ObjectBuilder {
    string_enum(
        [
            KeyState::Pending,
            KeyState::Active,
            KeyState::Retired,
            KeyState::Revoked,
        ]
        .map(KeyState::as_str),
    )
}

pub fn signing_algorithm() -> ObjectBuilder {
    string_enum(
        [
            SigningAlgorithm::ES256,
            SigningAlgorithm::RS256,
            SigningAlgorithm::EdDSA,
        ]
        .map(SigningAlgorithm::as_str),
    )
}

/// The shape of core's `RateLimit` on the wire.
#[derive(Debug, ToSchema)]
#[schema(as = RateLimit)]
#[allow(dead_code)]
pub struct RateLimitSchema {
    /// Requests allowed per window (at least 1).
    requests: u32,
    /// Window length in seconds (1 to 86400).
    window_secs: u32,
}

/// The shape of core's `AuditEvent` on the wire.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct AuditEventSchema {
    /// Unique, time-ordered event id.
    id: String,
    /// Milliseconds since the Unix epoch.
    occurred_at: i64,
    tenant: String,
    /// Who acted: `admin:<credential id>`, `client:<client id>`, `system`, `anonymous`.
    actor: String,
    credential_id: Option<String>,
    client_ip: Option<String>,
    user_agent: Option<String>,
    /// Dotted action name: `tenant.create`, `admin.authenticate`, ...
    action: String,
    #[schema(schema_with = outcome)]
    outcome: String,
    /// Internal reason code.
    reason: Option<String>,
    request_id: Option<String>,
    /// The object acted upon.
    target: Option<String>,
}

pub fn outcome() -> ObjectBuilder {
    string_enum([Outcome::Success, Outcome::Failure, Outcome::Denied].map(Outcome::as_str))
}

/// The admin API's operations and schemas.
#[derive(Debug, OpenApi)]
#[openapi(
    paths(
        tenants::create,
        tenants::list,
        tenants::show,
        tenants::disable,
        tenants::enable,
        tenants::archive,
        branding::show_branding,
        branding::put_branding,
        oauth_policy::show_oauth_policy,
        oauth_policy::put_oauth_policy,
        ca_sets::create_ca_set,
        ca_sets::list_ca_sets,
        ca_sets::delete_ca_set,
        lifecycle::show_policy,
        lifecycle::put_policy,
        lifecycle::enforce,
        lifecycle::hygiene_report,
        tokens::create,
        tokens::list,
        tokens::revoke,
        audit_events::list,
        audit_chain::export,
        audit_chain::export_all,
        audit_chain::verify,
        api_keys::create,
        api_keys::list,
        api_keys::revoke_by_owner,
        api_keys::show,
        api_keys::update,
        api_keys::disable,
        api_keys::enable,
        api_keys::revoke,
        api_keys::rotate,
        api_keys::show_policy,
        api_keys::put_policy,
        resource_servers::create,
        resource_servers::list,
        resource_servers::show,
        resource_servers::rotate_secret,
        resource_servers::archive,
        clients::create,
        clients::list,
        clients::show,
        clients::update,
        clients::rotate_secret,
        clients::disable,
        clients::enable,
        users::create,
        users::list,
        users::reset_password,
        users::show,
        users::update,
        users::delete,
        users::disable,
        users::enable,
        users::invite,
        user_roles::grant_role,
        user_roles::show_role,
        user_roles::revoke_role,
        user_sessions::list_sessions,
        user_sessions::end_session,
        clients::archive,
        signing_keys::list,
        signing_keys::rotate,
        signing_keys::revoke,
        alerts::list,
        alerts::show,
        alerts::ack,
        alerts::resolve,
        alerts::list_all,
        webhooks::create,
        webhooks::list,
        webhooks::show,
        webhooks::delete,
        webhooks::rotate_secret,
        webhooks::deliveries,
        webhooks::redeliver,
        webhooks::create_global,
        webhooks::list_global,
        webhooks::show_global,
        webhooks::delete_global,
        webhooks::rotate_secret_global,
        webhooks::deliveries_global,
        webhooks::redeliver_global,
        federation::create_issuer,
        federation::list_issuers,
        federation::delete_issuer,
        federation::create_rule,
        federation::list_rules,
        federation::show_rule,
        federation::delete_rule,
        federation::bind_rule,
        federation::test_token,
        federation::revoke_rule_tokens,
        federation::revoke_issuer_tokens,
    ),
    components(schemas(ErrorBody))
)]
pub struct AdminApi;
