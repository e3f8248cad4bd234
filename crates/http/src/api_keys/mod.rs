//! The API key endpoints outside the admin API (the verifier itself is
//! `portcullis_service::api_keys`). This module must never accept a key from a URL.
//!
//! * `POST /v1/api-keys/verify`: for services in other languages. The caller authenticates with
//!   an admin token (`Authorization: Bearer pcl_adm_...`): a tenant admin verifies keys of its own
//!   tenant only; a global admin may name any tenant or none. The key travels in the JSON body,
//!   never in the URL.
//! * `POST /v1/api-keys/leaks`: a secret scanner's webhook. The body is a JSON array of found
//!   tokens; matching keys are revoked at once. When `api_keys.leak_report_hmac_key` is set, the
//!   body must carry `X-Portcullis-Signature: sha256=<hex HMAC-SHA256 of the body>`; when
//!   `api_keys.leak_report_ecdsa_public_key` is set, a GitHub-style
//!   `Github-Public-Key-Signature` (base64 DER ECDSA P-256 SHA-256) by that key is accepted.
//!
//! * `GET /v1/tenants/{tenant}/api-keys/self`: authenticated by an API key of that tenant
//!   (`X-API-Key` or `Authorization: Bearer`), answers what the key may do. It is the smallest
//!   route protected by [`extract::ApiKeyAuth`], the extractor other routes use.
//!
//! Keys sent in a URL query string are refused on these routes: URLs end up in proxy and access
//! logs. No endpoint reads a key from the query string.

mod endpoints;
pub mod extract;

use axum::routing::post;
use axum::Router;
use portcullis_service::api_keys::ApiKeyService;

pub use endpoints::key_in_query;

/// The API key routes, over the API key subsystem's own state (not the whole `AppState`).
pub fn router() -> Router<ApiKeyService> {
    Router::new()
        .route("/v1/api-keys/verify", post(endpoints::verify))
        .route("/v1/api-keys/leaks", post(endpoints::leaks))
        .route(
            "/v1/tenants/{tenant}/api-keys/self",
            axum::routing::get(endpoints::whoami),
        )
}
