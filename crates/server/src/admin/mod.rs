//! The admin API under `/admin/v1/`.
//!
//! Every route is declared once in [`routes`], with its scope. The router is built from that list
//! and the tenant-isolation test walks the same list, so a new route is covered by the isolation
//! test the moment it exists. Handlers take [`auth::GlobalAdmin`] or [`auth::TenantAdmin`]; there
//! is no unauthenticated admin route.

mod api_keys;
mod audit_events;
pub mod auth;
mod clients;
mod resource_servers;
mod signing_keys;
mod tenants;
pub mod tokens;

use axum::http::Method;
use axum::routing::{self, MethodRouter};
use axum::Router;

use crate::state::AppState;

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
}

pub const PREFIX: &str = "/admin/v1";

/// Every admin route with its scope and handler.
pub fn routes() -> Vec<(RouteSpec, MethodRouter<AppState>)> {
    use Scope::*;
    let r = |method: Method, path, scope, handler: MethodRouter<AppState>| {
        (
            RouteSpec {
                method,
                path,
                scope,
            },
            handler,
        )
    };
    vec![
        r(
            Method::POST,
            "/tenants",
            Global,
            routing::post(tenants::create),
        ),
        r(Method::GET, "/tenants", Global, routing::get(tenants::list)),
        r(
            Method::GET,
            "/tenants/{tenant}",
            Tenant,
            routing::get(tenants::show),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/disable",
            Global,
            routing::post(tenants::disable),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/enable",
            Global,
            routing::post(tenants::enable),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/admin-tokens",
            Tenant,
            routing::post(tokens::create),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/admin-tokens",
            Tenant,
            routing::get(tokens::list),
        ),
        r(
            Method::DELETE,
            "/tenants/{tenant}/admin-tokens/{id}",
            Tenant,
            routing::delete(tokens::revoke),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/audit-events",
            Tenant,
            routing::get(audit_events::list),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/api-keys",
            Tenant,
            routing::post(api_keys::create),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/api-keys",
            Tenant,
            routing::get(api_keys::list),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/api-keys/revoke-by-owner",
            Tenant,
            routing::post(api_keys::revoke_by_owner),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/api-keys/{id}",
            Tenant,
            routing::get(api_keys::show),
        ),
        r(
            Method::PATCH,
            "/tenants/{tenant}/api-keys/{id}",
            Tenant,
            routing::patch(api_keys::update),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/api-keys/{id}/disable",
            Tenant,
            routing::post(api_keys::disable),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/api-keys/{id}/enable",
            Tenant,
            routing::post(api_keys::enable),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/api-keys/{id}/revoke",
            Tenant,
            routing::post(api_keys::revoke),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/api-keys/{id}/rotate",
            Tenant,
            routing::post(api_keys::rotate),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/api-key-policy",
            Tenant,
            routing::get(api_keys::show_policy),
        ),
        r(
            Method::PUT,
            "/tenants/{tenant}/api-key-policy",
            Global,
            routing::put(api_keys::put_policy),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/resource-servers",
            Tenant,
            routing::post(resource_servers::create),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/resource-servers",
            Tenant,
            routing::get(resource_servers::list),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/resource-servers/{id}",
            Tenant,
            routing::get(resource_servers::show),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/resource-servers/{id}/rotate-secret",
            Tenant,
            routing::post(resource_servers::rotate_secret),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/clients",
            Tenant,
            routing::post(clients::create),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/clients",
            Tenant,
            routing::get(clients::list),
        ),
        r(
            Method::GET,
            "/tenants/{tenant}/clients/{id}",
            Tenant,
            routing::get(clients::show),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/clients/{id}/rotate-secret",
            Tenant,
            routing::post(clients::rotate_secret),
        ),
        r(
            Method::POST,
            "/tenants/{tenant}/clients/{id}/disable",
            Tenant,
            routing::post(clients::disable),
        ),
        r(
            Method::GET,
            "/signing-keys",
            Global,
            routing::get(signing_keys::list),
        ),
        r(
            Method::POST,
            "/signing-keys/rotate",
            Global,
            routing::post(signing_keys::rotate),
        ),
        r(
            Method::POST,
            "/signing-keys/{kid}/revoke",
            Global,
            routing::post(signing_keys::revoke),
        ),
    ]
}

pub fn router() -> Router<AppState> {
    routes()
        .into_iter()
        .fold(Router::new(), |router, (spec, handler)| {
            router.route(spec.path, handler)
        })
}
