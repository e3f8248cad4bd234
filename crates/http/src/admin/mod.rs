//! The admin API under `/admin/v1/`.
//!
//! Every route is declared once in [`routes`], with its scope and the [`Permission`] it needs. The
//! router is built from that list, and each route carries its permission into the request (a
//! [`RoutePermission`] extension) where the [`auth::GlobalAdmin`] and [`auth::TenantAdmin`]
//! extractors ask core's `decide` about it; a route cannot be declared without one, and an
//! extractor that finds none refuses. The isolation test walks the same list for every role, so a
//! new route is covered the moment it exists.
//!
//! This module must never register a route outside [`routes`], and no handler here may act
//! without one of those extractors: there is no unauthenticated admin route.

mod alerts;
mod api_keys;
mod archive;
mod audit_chain;
mod audit_events;
pub mod auth;
mod branding;
mod clients;
mod federation;
mod lifecycle;
pub mod openapi;
mod resource_servers;
mod signing_keys;
mod tenants;
pub mod tokens;
mod user_sessions;
mod users;
mod webhooks;

use axum::http::Method;
use axum::routing::{self, MethodRouter};
use axum::{Extension, Router};
use portcullis_core::admin::Permission;

use portcullis_service::state::AppState;

/// Whom a route serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Global administrators only.
    Global,
    /// Administrators of the `{tenant}` in the path, and global administrators.
    Tenant,
}

#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub method: Method,
    /// Path below `/admin/v1`, axum syntax.
    pub path: &'static str,
    pub scope: Scope,
    /// What the caller must be allowed to do (on the installation for [`Scope::Global`], on the
    /// `{tenant}` in the path for [`Scope::Tenant`]).
    pub permission: Permission,
}

/// The permission of the route a request reached, put in its extensions by [`router`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutePermission(pub Permission);

pub const PREFIX: &str = "/admin/v1";

/// Every admin route with its scope, permission and handler.
pub fn routes() -> Vec<(RouteSpec, MethodRouter<AppState>)> {
    use Permission::*;
    use Scope::*;
    let r = |method: Method, path, scope, permission, handler: MethodRouter<AppState>| {
        (
            RouteSpec {
                method,
                path,
                scope,
                permission,
            },
            handler,
        )
    };
    vec![
        r(
            Method::POST,
            "/tenants",
            Global,
            ManageTenants,
            routing::post(tenants::create),
        ),
        r(
            Method::GET,
            "/tenants",
            Global,
            ReadTenant,
            routing::get(tenants::list),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}",
            Tenant,
            ReadTenant,
            routing::get(tenants::show),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/disable",
            Global,
            ManageTenants,
            routing::post(tenants::disable),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/enable",
            Global,
            ManageTenants,
            routing::post(tenants::enable),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/archive",
            Global,
            ManageTenants,
            routing::post(tenants::archive),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/branding",
            Tenant,
            ReadTenant,
            routing::get(branding::show_branding),
        ),
        r(
            Method::PUT,
            "/tenants/{tenant}/branding",
            Tenant,
            ManageClients,
            routing::put(branding::put_branding),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/lifetime-policy",
            Tenant,
            ReadTenant,
            routing::get(lifecycle::show_policy),
        ),
        r(
            Method::PUT,
            "/tenants/{tenant}/lifetime-policy",
            Global,
            ManageApiKeyPolicy,
            routing::put(lifecycle::put_policy),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/lifetime-policy/enforce",
            Global,
            ManageApiKeyPolicy,
            routing::post(lifecycle::enforce),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/hygiene-report",
            Tenant,
            ReadAudit,
            routing::get(lifecycle::hygiene_report),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/admin-tokens",
            Tenant,
            ManageAdminTokens,
            routing::post(tokens::create),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/admin-tokens",
            Tenant,
            ReadAdminTokens,
            routing::get(tokens::list),
        ),
        r(
            Method::DELETE,
            "/tenants/{tenant}/admin-tokens/{id}",
            Tenant,
            ManageAdminTokens,
            routing::delete(tokens::revoke),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/audit-events",
            Tenant,
            ReadAudit,
            routing::get(audit_events::list),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/audit-events/export",
            Tenant,
            ReadAudit,
            routing::get(audit_chain::export),
        ),
        r(
            Method::GET,
            "/audit-events/export",
            Global,
            ReadAudit,
            routing::get(audit_chain::export_all),
        ),
        r(
            Method::GET,
            "/audit/verify",
            Global,
            ReadAudit,
            routing::get(audit_chain::verify),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/api-keys",
            Tenant,
            ManageApiKeys,
            routing::post(api_keys::create),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/api-keys",
            Tenant,
            ReadApiKeys,
            routing::get(api_keys::list),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/api-keys/revoke-by-owner",
            Tenant,
            ManageApiKeys,
            routing::post(api_keys::revoke_by_owner),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/api-keys/{id}",
            Tenant,
            ReadApiKeys,
            routing::get(api_keys::show),
        ),
        r(
            Method::PATCH,
            "/tenants/{tenant}/api-keys/{id}",
            Tenant,
            ManageApiKeys,
            routing::patch(api_keys::update),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/api-keys/{id}/disable",
            Tenant,
            ManageApiKeys,
            routing::post(api_keys::disable),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/api-keys/{id}/enable",
            Tenant,
            ManageApiKeys,
            routing::post(api_keys::enable),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/api-keys/{id}/revoke",
            Tenant,
            ManageApiKeys,
            routing::post(api_keys::revoke),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/api-keys/{id}/rotate",
            Tenant,
            ManageApiKeys,
            routing::post(api_keys::rotate),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/api-key-policy",
            Tenant,
            ReadApiKeys,
            routing::get(api_keys::show_policy),
        ),
        r(
            Method::PUT,
            "/tenants/{tenant}/api-key-policy",
            Global,
            ManageApiKeyPolicy,
            routing::put(api_keys::put_policy),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/federation/issuers",
            Tenant,
            ManageFederation,
            routing::post(federation::create_issuer),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/federation/issuers",
            Tenant,
            ReadFederation,
            routing::get(federation::list_issuers),
        ),
        r(
            Method::DELETE,
            "/tenants/{tenant}/federation/issuers",
            Tenant,
            ManageFederation,
            routing::delete(federation::delete_issuer),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/federation/rules",
            Tenant,
            ManageFederation,
            routing::post(federation::create_rule),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/federation/rules",
            Tenant,
            ReadFederation,
            routing::get(federation::list_rules),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/federation/rules/{id}",
            Tenant,
            ReadFederation,
            routing::get(federation::show_rule),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/federation/rules/{id}/revoke-tokens",
            Tenant,
            ManageFederation,
            routing::post(federation::revoke_rule_tokens),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/federation/issuers/revoke-tokens",
            Tenant,
            ManageFederation,
            routing::post(federation::revoke_issuer_tokens),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/federation/test",
            Tenant,
            // A POST that fetches keys from the issuer: the managers' permission, like every
            // other non-GET route (auditors read).
            ManageFederation,
            routing::post(federation::test_token),
        ),
        r(
            Method::DELETE,
            "/tenants/{tenant}/federation/rules/{id}",
            Tenant,
            ManageFederation,
            routing::delete(federation::delete_rule),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/resource-servers",
            Tenant,
            ManageResourceServers,
            routing::post(resource_servers::create),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/resource-servers",
            Tenant,
            ReadResourceServers,
            routing::get(resource_servers::list),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/resource-servers/{id}",
            Tenant,
            ReadResourceServers,
            routing::get(resource_servers::show),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/resource-servers/{id}/rotate-secret",
            Tenant,
            ManageResourceServers,
            routing::post(resource_servers::rotate_secret),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/resource-servers/{id}/archive",
            Tenant,
            ManageResourceServers,
            routing::post(resource_servers::archive),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/clients",
            Tenant,
            ManageClients,
            routing::post(clients::create),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/clients",
            Tenant,
            ReadClients,
            routing::get(clients::list),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/clients/{id}",
            Tenant,
            ReadClients,
            routing::get(clients::show),
        ),
        r(
            Method::PATCH,
            "/tenants/{tenant}/clients/{id}",
            Tenant,
            ManageClients,
            routing::patch(clients::update),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/clients/{id}/rotate-secret",
            Tenant,
            ManageClients,
            routing::post(clients::rotate_secret),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/clients/{id}/disable",
            Tenant,
            ManageClients,
            routing::post(clients::disable),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/users",
            Tenant,
            ManageUsers,
            routing::post(users::create),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/users",
            Tenant,
            ReadUsers,
            routing::get(users::list),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/users/reset-password",
            Tenant,
            ManageUsers,
            routing::post(users::reset_password),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/users/{id}",
            Tenant,
            ReadUsers,
            routing::get(users::show),
        ),
        r(
            Method::PATCH,
            "/tenants/{tenant}/users/{id}",
            Tenant,
            ManageUsers,
            routing::patch(users::update),
        ),
        r(
            Method::DELETE,
            "/tenants/{tenant}/users/{id}",
            Tenant,
            ManageUsers,
            routing::delete(users::delete),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/users/{id}/disable",
            Tenant,
            ManageUsers,
            routing::post(users::disable),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/users/{id}/enable",
            Tenant,
            ManageUsers,
            routing::post(users::enable),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/users/{id}/invite",
            Tenant,
            ManageUsers,
            routing::post(users::invite),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/users/{id}/sessions",
            Tenant,
            ReadUsers,
            routing::get(user_sessions::list_sessions),
        ),
        r(
            Method::DELETE,
            "/tenants/{tenant}/users/{id}/sessions/{sid}",
            Tenant,
            ManageUsers,
            routing::delete(user_sessions::end_session),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/clients/{id}/archive",
            Tenant,
            ManageClients,
            routing::post(clients::archive),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/alerts",
            Tenant,
            ReadAlerts,
            routing::get(alerts::list),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/alerts/{id}",
            Tenant,
            ReadAlerts,
            routing::get(alerts::show),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/alerts/{id}/ack",
            Tenant,
            ManageAlerts,
            routing::post(alerts::ack),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/alerts/{id}/resolve",
            Tenant,
            ManageAlerts,
            routing::post(alerts::resolve),
        ),
        r(
            Method::GET,
            "/alerts",
            Global,
            ReadAlerts,
            routing::get(alerts::list_all),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/webhooks",
            Tenant,
            ManageAlerts,
            routing::post(webhooks::create),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/webhooks",
            Tenant,
            ReadAlerts,
            routing::get(webhooks::list),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/webhooks/{id}",
            Tenant,
            ReadAlerts,
            routing::get(webhooks::show),
        ),
        r(
            Method::DELETE,
            "/tenants/{tenant}/webhooks/{id}",
            Tenant,
            ManageAlerts,
            routing::delete(webhooks::delete),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/webhooks/{id}/rotate-secret",
            Tenant,
            ManageAlerts,
            routing::post(webhooks::rotate_secret),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/webhook-deliveries",
            Tenant,
            ReadAlerts,
            routing::get(webhooks::deliveries),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/webhook-deliveries/{id}/redeliver",
            Tenant,
            ManageAlerts,
            routing::post(webhooks::redeliver),
        ),
        r(
            Method::POST,
            "/webhooks",
            Global,
            ManageAlerts,
            routing::post(webhooks::create_global),
        ),
        r(
            Method::GET,
            "/webhooks",
            Global,
            ReadAlerts,
            routing::get(webhooks::list_global),
        ),
        r(
            Method::GET,
            "/webhooks/{id}",
            Global,
            ReadAlerts,
            routing::get(webhooks::show_global),
        ),
        r(
            Method::DELETE,
            "/webhooks/{id}",
            Global,
            ManageAlerts,
            routing::delete(webhooks::delete_global),
        ),
        r(
            Method::POST,
            "/webhooks/{id}/rotate-secret",
            Global,
            ManageAlerts,
            routing::post(webhooks::rotate_secret_global),
        ),
        r(
            Method::GET,
            "/webhook-deliveries",
            Global,
            ReadAlerts,
            routing::get(webhooks::deliveries_global),
        ),
        r(
            Method::POST,
            "/webhook-deliveries/{id}/redeliver",
            Global,
            ManageAlerts,
            routing::post(webhooks::redeliver_global),
        ),
        r(
            Method::GET,
            "/signing-keys",
            Global,
            ReadSigningKeys,
            routing::get(signing_keys::list),
        ),
        r(
            Method::POST,
            "/signing-keys/rotate",
            Global,
            ManageSigningKeys,
            routing::post(signing_keys::rotate),
        ),
        r(
            Method::POST,
            "/signing-keys/{kid}/revoke",
            Global,
            ManageSigningKeys,
            routing::post(signing_keys::revoke),
        ),
    ]
}

pub fn router() -> Router<AppState> {
    routes()
        .into_iter()
        .fold(Router::new(), |router, (spec, handler)| {
            router.route(
                spec.path,
                handler.layer(Extension(RoutePermission(spec.permission))),
            )
        })
}
