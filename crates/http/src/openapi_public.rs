//! The OpenAPI description of the routes that are not admin routes: the OAuth endpoints (token,
//! pushed authorization requests, introspection, revocation, JWKS, authorization-server
//! metadata) and API key verification.
//!
//! Their handlers live in `oauth` and `api_keys` and answer with hand-built JSON (RFC 6749, 7662,
//! 7009, 8414 shapes), so the shapes are written here once, as types used only for the document,
//! and the operations as annotated stubs that never run. A test in `crates/server/tests` sends
//! real requests and checks the answers against these schemas; another checks that every path
//! here is served.
//!
//! This module must never hold behaviour, and never describe a route the router does not serve.

#![allow(dead_code)]

use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// The security scheme name for OAuth client authentication with HTTP Basic.
pub const CLIENT_BASIC: &str = "client_basic";

/// A token request (RFC 6749 section 4.4, `application/x-www-form-urlencoded`). The client
/// authenticates with HTTP Basic (`client_secret_basic`), with `client_id` and `client_secret`
/// here (`client_secret_post`), with a signed assertion (`private_key_jwt`, RFC 7523), or with
/// the client certificate of the connection and only `client_id` here (`tls_client_auth`,
/// `self_signed_tls_client_auth`, RFC 8705).
#[derive(Debug, ToSchema)]
pub struct TokenRequest {
    /// Only `client_credentials`.
    #[schema(example = "client_credentials")]
    grant_type: String,
    /// Space-delimited scopes, each granted to the client.
    scope: Option<String>,
    /// The audience (RFC 8707): one of the client's allowed audiences.
    resource: Option<String>,
    /// Another name for `resource`.
    audience: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    /// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer` for `private_key_jwt`.
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// A successful token response (RFC 6749 section 5.1).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// A JWT access token (RFC 9068).
    access_token: String,
    /// Always `Bearer`.
    token_type: String,
    /// Lifetime in seconds.
    expires_in: u64,
    /// The granted scopes, space-delimited, when any were granted.
    scope: Option<String>,
}

/// An error answer of the OAuth endpoints (RFC 6749 section 5.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant`, `unauthorized_client`,
    /// `unsupported_grant_type`, `invalid_scope`, `invalid_target`, ...
    error: String,
    error_description: Option<String>,
}

/// An introspection or revocation request (RFC 7662 section 2.1, RFC 7009 section 2.1), with
/// the caller's client authentication as for the token endpoint.
#[derive(Debug, ToSchema)]
pub struct TokenLookupRequest {
    /// The token asked about.
    token: String,
    /// `access_token` or `refresh_token`; a hint only.
    token_type_hint: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// An introspection answer (RFC 7662 section 2.2): only `active: false` for anything that is
/// not a current token the caller may learn about.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntrospectionResponse {
    active: bool,
    client_id: Option<String>,
    token_type: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
    sub: Option<String>,
    aud: Option<String>,
    iss: Option<String>,
    jti: Option<String>,
    scope: Option<String>,
    /// The token's tenant.
    tenant: Option<String>,
}

/// A pushed authorization request (RFC 9126 section 2.1): the authorization request's
/// parameters, with the client's authentication as for the token endpoint (a public client
/// sends `client_id` alone). `request_uri` must not be sent.
#[derive(Debug, ToSchema)]
pub struct PushedAuthorizationRequest {
    /// Only `code`.
    #[schema(example = "code")]
    response_type: String,
    client_id: String,
    /// One of the client's registered redirect URIs, exactly.
    redirect_uri: String,
    scope: String,
    state: Option<String>,
    nonce: Option<String>,
    /// PKCE (RFC 7636), required for every client.
    code_challenge: String,
    /// Only `S256`.
    #[schema(example = "S256")]
    code_challenge_method: String,
    response_mode: Option<String>,
    prompt: Option<String>,
    max_age: Option<u64>,
    login_hint: Option<String>,
    ui_locales: Option<String>,
    /// The SHA-256 JWK thumbprint of the DPoP key the code is bound to (RFC 9449 section 10):
    /// the token request redeeming it must carry a proof signed by that key.
    dpop_jkt: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// A device authorization request (RFC 8628 section 3.1), with the client's authentication as
/// for the token endpoint (a public client sends `client_id` alone).
#[derive(Debug, ToSchema)]
pub struct DeviceAuthorizationRequest {
    client_id: String,
    /// A subset of the client's registered scopes; all of them when left out.
    scope: Option<String>,
    client_secret: Option<String>,
    client_assertion_type: Option<String>,
    client_assertion: Option<String>,
}

/// The answer to a device authorization request (RFC 8628 section 3.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceAuthorizationResponse {
    /// Polled with at the token endpoint (`grant_type=urn:ietf:params:oauth:grant-type:device_code`).
    device_code: String,
    /// Shown to the person: eight consonants, `XXXX-XXXX`.
    #[schema(example = "BCDF-GHJK")]
    user_code: String,
    /// The verification page (`/device`).
    verification_uri: String,
    /// The page with the user code filled in.
    verification_uri_complete: String,
    expires_in: u64,
    /// Seconds between polls; `slow_down` adds five.
    interval: u64,
}

/// The answer to a push (RFC 9126 section 2.2).
#[derive(Debug, Serialize, ToSchema)]
pub struct PushedAuthorizationResponse {
    /// `urn:ietf:params:oauth:request_uri:...`, sent to the authorization endpoint with
    /// `client_id`.
    request_uri: String,
    /// Seconds within which the request must be opened at the authorization endpoint.
    expires_in: u64,
}

/// The published signing keys (RFC 7517).
#[derive(Debug, Serialize, ToSchema)]
pub struct Jwks {
    /// Public JWKs (`kty`, `kid`, `alg`, `use` and the key's public parameters).
    #[schema(value_type = Vec<Object>)]
    keys: Vec<serde_json::Value>,
}

/// Authorization-server metadata (RFC 8414); members beyond these may appear.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuthorizationServerMetadata {
    issuer: String,
    token_endpoint: String,
    jwks_uri: String,
    introspection_endpoint: Option<String>,
    revocation_endpoint: Option<String>,
    grant_types_supported: Option<Vec<String>>,
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    scopes_supported: Option<Vec<String>>,
}

/// A request to verify an API key on behalf of a service.
#[derive(Debug, ToSchema)]
pub struct VerifyApiKeyRequest {
    /// The API key as presented to the calling service.
    key: String,
    /// The tenant whose resource is reached. Omitted: the caller's own tenant, or any tenant for
    /// a system-tenant credential.
    tenant: Option<String>,
    /// The environment the calling service serves (default: `api_keys.environment`).
    environment: Option<String>,
    /// Scopes the request needs; all must be granted to the key.
    scopes: Option<Vec<String>>,
    /// The end client's address, checked against the key's IP allowlist.
    client_ip: Option<String>,
    /// The resource being reached, checked against the key's allowed audiences.
    audience: Option<String>,
}

/// The verdict on a key: `{"valid": false}` alone for every reason a key is refused (the reason
/// is in the audit log); the key's facts when it is valid.
#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyApiKeyResponse {
    valid: bool,
    active: Option<bool>,
    key_id: Option<String>,
    tenant: Option<String>,
    environment: Option<String>,
    name: Option<String>,
    owner: Option<String>,
    scopes: Option<Vec<String>>,
    audiences: Option<Vec<String>>,
    #[schema(value_type = Option<Object>)]
    rate_limit: Option<serde_json::Value>,
    expires_at: Option<String>,
}

#[utoipa::path(post, path = "/oauth2/token", tag = "oauth",
    security((), ("client_basic" = [])),
    request_body(content = TokenRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "An access token", body = TokenResponse),
        (status = 400, description = "A malformed or refused request (RFC 6749 error code)", body = OAuthErrorBody),
        (status = 401, description = "Client authentication failed (`invalid_client`)", body = OAuthErrorBody),
        (status = 429, description = "Too many failed client authentications from this source; retry after `Retry-After`", body = OAuthErrorBody),
    ))]
fn token() {}

#[utoipa::path(post, path = "/oauth2/par", tag = "oauth",
    security((), ("client_basic" = [])),
    request_body(content = PushedAuthorizationRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 201, description = "The request is stored; open it by its `request_uri`", body = PushedAuthorizationResponse),
        (status = 400, description = "An authorization request the authorization endpoint would refuse (RFC 6749 error code)", body = OAuthErrorBody),
        (status = 401, description = "Client authentication failed (`invalid_client`)", body = OAuthErrorBody),
        (status = 429, description = "Too many failed client authentications from this source", body = OAuthErrorBody),
    ))]
fn push() {}

#[utoipa::path(post, path = "/oauth2/device_authorization", tag = "oauth",
    security((), ("client_basic" = [])),
    request_body(content = DeviceAuthorizationRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "A device code to poll with and a user code for the person", body = DeviceAuthorizationResponse),
        (status = 400, description = "A client not registered for the device grant, or a scope it may not have (RFC 6749 error code)", body = OAuthErrorBody),
        (status = 401, description = "Client authentication failed (`invalid_client`)", body = OAuthErrorBody),
        (status = 429, description = "Too many failed client authentications from this source", body = OAuthErrorBody),
    ))]
fn device_authorization() {}

#[utoipa::path(post, path = "/oauth2/introspect", tag = "oauth",
    security((), ("client_basic" = [])),
    request_body(content = TokenLookupRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "What the token is, or only `active: false`", body = IntrospectionResponse),
        (status = 400, description = "A malformed request", body = OAuthErrorBody),
        (status = 401, description = "The caller's authentication failed, or it may not introspect", body = OAuthErrorBody),
        (status = 429, description = "Too many failed client authentications from this source", body = OAuthErrorBody),
    ))]
fn introspect() {}

#[utoipa::path(post, path = "/oauth2/revoke", tag = "oauth",
    security((), ("client_basic" = [])),
    request_body(content = TokenLookupRequest, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "Revoked, or nothing to revoke (RFC 7009 section 2.2)"),
        (status = 400, description = "A malformed request, or another client's token", body = OAuthErrorBody),
        (status = 401, description = "Client authentication failed", body = OAuthErrorBody),
        (status = 429, description = "Too many failed client authentications from this source", body = OAuthErrorBody),
    ))]
fn revoke() {}

#[utoipa::path(get, path = "/oauth2/jwks", tag = "oauth", security(()),
    responses((status = 200, description = "The published public signing keys", body = Jwks)))]
fn jwks() {}

#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "oauth", security(()),
    responses((status = 200, description = "Authorization-server metadata (RFC 8414)", body = AuthorizationServerMetadata)))]
fn metadata() {}

#[utoipa::path(post, path = "/v1/api-keys/verify", tag = "api-key-verification",
    request_body = VerifyApiKeyRequest,
    responses(
        (status = 200, description = "The verdict on the key (`valid: false` for every refusal)", body = VerifyApiKeyResponse),
        (status = 400, description = "A malformed request (`invalid_request`)", body = super::admin::openapi::ErrorBody),
        (status = 401, description = "The caller's own credential is missing or invalid", body = super::admin::openapi::ErrorBody),
        (status = 403, description = "The caller may not verify keys of that tenant", body = super::admin::openapi::ErrorBody),
        (status = 429, description = "The key is over its own rate limit; retry after `Retry-After`", body = super::admin::openapi::ErrorBody),
    ))]
fn verify_api_key() {}

/// The operations and schemas of the public (non-admin) routes.
#[derive(Debug, OpenApi)]
#[openapi(paths(
    token,
    push,
    device_authorization,
    introspect,
    revoke,
    jwks,
    metadata,
    verify_api_key
))]
pub struct PublicApi;
