//! The OAuth 2.0 and OpenID Connect endpoints that answer apps (not people), as HTTP: the
//! handlers read the form or the Bearer token, call the service's operation
//! (`portcullis_service::tokens`: issuance per grant, introspection, revocation, userinfo;
//! client authentication is `portcullis_service::client_auth`) and render its outcome, with
//! CORS for registered browser origins on the token and userinfo endpoints (`cors`). The
//! router's state is the OAuth subsystem's own (`OAuthService`).
//!
//! | path | what |
//! |---|---|
//! | `POST /oauth2/token` | client credentials (RFC 6749 section 4.4, RFC 8707 `resource`), authorization code with PKCE, rotating refresh tokens |
//! | `POST /oauth2/tenants/{tenant}/token` | workload grants judged by the tenant's trust rules: RFC 8693 token exchange, RFC 7523 JWT bearer |
//! | `GET`/`POST /oauth2/userinfo` | OpenID Connect userinfo, Bearer user access token with `openid` |
//! | `GET /.well-known/openid-configuration` | OpenID Connect Discovery (the same document as RFC 8414's) |
//! | `POST /oauth2/device_authorization` | RFC 8628 device authorization: a device code, a user code for the `/device` page |
//! | `POST /oauth2/par` | RFC 9126 pushed authorization requests: the request stored, a `request_uri` back |
//! | `POST /oauth2/introspect` | RFC 7662, for clients with the introspection permission |
//! | `POST /oauth2/revoke` | RFC 7009, a client revokes its own tokens |
//! | `GET /oauth2/jwks` | public signing keys |
//! | `GET /.well-known/oauth-authorization-server` | RFC 8414 metadata |
//!
//! This module never logs a secret or a token; refusals carry a standard code outside and the
//! precise reason in the audit log.

mod cors;
mod discovery;
mod endpoints;
pub mod form;
pub mod reply;
mod userinfo;

use axum::handler::Handler;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use portcullis_service::oauth::OAuthService;
pub use portcullis_service::oauth::{
    INTROSPECT_PATH, JWKS_PATH, PAR_PATH, REVOKE_PATH, TENANT_TOKEN_PATH, TOKEN_PATH, USERINFO_PATH,
};

pub use reply::OAuthReply;

/// The OAuth routes, over the OAuth subsystem's own state (not the whole `AppState`).
pub fn router() -> Router<OAuthService> {
    Router::new()
        .route(
            TOKEN_PATH,
            form_post(endpoints::token).options(cors::token_preflight),
        )
        .route(
            USERINFO_PATH,
            get(userinfo::userinfo)
                .post(userinfo::userinfo)
                .options(cors::userinfo_preflight),
        )
        .route(PAR_PATH, form_post(endpoints::push))
        .route(
            portcullis_service::tokens::device::DEVICE_AUTHORIZATION_PATH,
            form_post(endpoints::device_authorization),
        )
        .route(TENANT_TOKEN_PATH, form_post(endpoints::tenant_token))
        .route(INTROSPECT_PATH, form_post(endpoints::introspect))
        .route(REVOKE_PATH, form_post(endpoints::revoke))
        .route(JWKS_PATH, get(discovery::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata),
        )
        .route(
            "/.well-known/openid-configuration",
            get(discovery::metadata),
        )
}

/// POST only; any other method is a 405 in the RFC 6749 error format.
fn form_post<H, T>(handler: H) -> MethodRouter<OAuthService>
where
    H: Handler<T, OAuthService>,
    T: 'static,
{
    post(handler).fallback(endpoints::method_not_allowed)
}
