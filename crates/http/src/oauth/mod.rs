//! The OAuth 2.0 endpoints for machine clients, as HTTP: the handlers read the form, call the
//! service's operation (`portcullis_service::tokens`: issuance per grant, introspection,
//! revocation; client authentication is `portcullis_service::client_auth`) and render its
//! outcome. The router's state is the OAuth subsystem's own (`OAuthService`).
//!
//! | path | what |
//! |---|---|
//! | `POST /oauth2/token` | client credentials grant (RFC 6749 section 4.4, RFC 8707 `resource`) |
//! | `POST /oauth2/introspect` | RFC 7662, for clients with the introspection permission |
//! | `POST /oauth2/revoke` | RFC 7009, a client revokes its own tokens |
//! | `GET /oauth2/jwks` | public signing keys |
//! | `GET /.well-known/oauth-authorization-server` | RFC 8414 metadata |
//!
//! This module never logs a secret or a token; refusals carry a standard code outside and the
//! precise reason in the audit log.

mod discovery;
mod endpoints;
pub mod form;
pub mod reply;

use axum::handler::Handler;
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use portcullis_service::oauth::OAuthService;
pub use portcullis_service::oauth::{INTROSPECT_PATH, JWKS_PATH, REVOKE_PATH, TOKEN_PATH};

pub use reply::OAuthReply;

/// The OAuth routes, over the OAuth subsystem's own state (not the whole `AppState`).
pub fn router() -> Router<OAuthService> {
    Router::new()
        .route(TOKEN_PATH, form_post(endpoints::token))
        .route(INTROSPECT_PATH, form_post(endpoints::introspect))
        .route(REVOKE_PATH, form_post(endpoints::revoke))
        .route(JWKS_PATH, get(discovery::jwks))
        .route(
            "/.well-known/oauth-authorization-server",
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
