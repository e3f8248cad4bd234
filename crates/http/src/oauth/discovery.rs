//! Discovery: one metadata document, served as OpenID Connect Discovery 1.0
//! (`/.well-known/openid-configuration`) and RFC 8414 (`/.well-known/oauth-authorization-server`),
//! listing only what is implemented, and the JWKS with public keys only.
//!
//! `id_token_signing_alg_values_supported` lists the algorithm of the active signing key (ID
//! tokens are signed by the key that signs access tokens, `[signing] algorithm`, by default)
//! and RS256, as OpenID Connect requires: the RS256 companion key signs the ID tokens of clients
//! registered with `id_token_signed_response_alg = RS256` (docs/browser-apps.md). Members whose
//! OIDC default would claim something unimplemented are stated (`request_uri_parameter_supported`
//! defaults to true). This module must never list a feature that is not served.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use portcullis_core::user_token::{ID_TOKEN_CLAIMS, USERINFO_CLAIMS};
use portcullis_service::keys::jwt;
use portcullis_service::oauth::error::OAuthError;
use portcullis_service::oauth::{AUTHORIZE_PATH, END_SESSION_PATH, USERINFO_PATH};

use super::reply::OAuthReply;
use super::{INTROSPECT_PATH, JWKS_PATH, PAR_PATH, REVOKE_PATH, TOKEN_PATH};
use portcullis_service::oauth::OAuthService;

const METADATA_MAX_AGE_SECS: u64 = 3600;

/// How clients authenticate at introspection and revocation.
const AUTH_METHODS: &[&str] = &[
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];

/// At the token endpoint, public clients (single-page and native apps) too, and workload
/// clients (an external workload token as the `client_assertion`, client credentials only).
const TOKEN_AUTH_METHODS: &[&str] = &[
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
    "none",
    portcullis_core::oauth::WORKLOAD_IDENTITY_JWT,
];

/// The RFC 8705 methods, listed where client certificates reach the server.
const MTLS_AUTH_METHODS: &[&str] = &["tls_client_auth", "self_signed_tls_client_auth"];

/// The metadata of `issuer`, whose ID tokens are signed with one of `id_token_algs`. With
/// `client_certificates` (a listener asks for them, or a trusted proxy forwards them), the
/// RFC 8705 members too. One listener serves mTLS and everything else, so there are no
/// `mtls_endpoint_aliases` (RFC 8705 section 5: only for endpoints served elsewhere for mTLS).
pub fn metadata_document(issuer: &str, id_token_algs: &[&str], client_certificates: bool) -> Value {
    let mut claims: Vec<&str> = ID_TOKEN_CLAIMS.to_vec();
    claims.extend(
        USERINFO_CLAIMS
            .iter()
            .filter(|c| !ID_TOKEN_CLAIMS.contains(c)),
    );
    let with_mtls = |methods: &[&'static str]| {
        let mut all = methods.to_vec();
        if client_certificates {
            all.extend_from_slice(MTLS_AUTH_METHODS);
        }
        all
    };
    let mut doc = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}{AUTHORIZE_PATH}"),
        "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
        "userinfo_endpoint": format!("{issuer}{USERINFO_PATH}"),
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "end_session_endpoint": format!("{issuer}{END_SESSION_PATH}"),
        "introspection_endpoint": format!("{issuer}{INTROSPECT_PATH}"),
        "revocation_endpoint": format!("{issuer}{REVOKE_PATH}"),
        "pushed_authorization_request_endpoint": format!("{issuer}{PAR_PATH}"),
        "device_authorization_endpoint": format!(
            "{issuer}{}",
            portcullis_service::tokens::device::DEVICE_AUTHORIZATION_PATH
        ),
        // Per client (`require_pushed_requests`) or per tenant (its OAuth policy, `PUT
        // /admin/v1/tenants/{tenant}/oauth-policy`); this one document serves every tenant.
        "require_pushed_authorization_requests": false,
        "scopes_supported": portcullis_core::client::OIDC_SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        // The workload grants are served at each tenant's token endpoint
        // (`/oauth2/tenants/{tenant}/token`, docs/workload-identity.md).
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials",
            portcullis_core::oauth::TOKEN_EXCHANGE_GRANT, portcullis_core::oauth::JWT_BEARER_GRANT,
            portcullis_core::device::DEVICE_CODE_GRANT],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": id_token_algs,
        "claims_supported": claims,
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
        "token_endpoint_auth_methods_supported": with_mtls(TOKEN_AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": portcullis_core::oauth::ASSERTION_ALGORITHMS,
        "introspection_endpoint_auth_methods_supported": with_mtls(AUTH_METHODS),
        // RFC 8414 section 2: required wherever an endpoint lists a JWT-based method.
        "introspection_endpoint_auth_signing_alg_values_supported": portcullis_core::oauth::ASSERTION_ALGORITHMS,
        "revocation_endpoint_auth_methods_supported": with_mtls(AUTH_METHODS),
        "revocation_endpoint_auth_signing_alg_values_supported": portcullis_core::oauth::ASSERTION_ALGORITHMS,
        // RFC 9449 section 5.1: DPoP proofs are checked at the token endpoint.
        "dpop_signing_alg_values_supported": portcullis_service::oauth::dpop::ALGORITHM_NAMES,
    });
    if client_certificates {
        // RFC 8705 section 3.3.
        doc["tls_client_certificate_bound_access_tokens"] = json!(true);
    }
    doc
}

/// Both well-known documents.
pub async fn metadata(State(state): State<OAuthService>) -> Response {
    let Some(signer) = state.oauth.signer() else {
        return OAuthReply(OAuthError::internal("no active signing key")).into_response();
    };
    let doc = metadata_document(
        &state.oauth.issuer,
        &signer.id_token_algs(),
        state.oauth.client_certificates,
    );
    let mut r = Json(doc).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={METADATA_MAX_AGE_SECS}")) {
        r.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    r
}

pub async fn jwks(State(state): State<OAuthService>) -> Response {
    let now = state.clock.now();
    let keys = match state.store.list_signing_keys().await {
        Ok(k) => k,
        Err(e) => return OAuthReply(OAuthError::internal(e)).into_response(),
    };
    let published: Vec<Value> = keys
        .iter()
        .filter(|k| jwt::published(k, now))
        .filter_map(|k| serde_json::from_str::<Value>(&k.public_jwk).ok())
        .map(public_only)
        .collect();
    let mut r = Json(json!({ "keys": published })).into_response();
    let max_age = state.oauth.jwks_max_age_secs;
    if let Ok(v) = HeaderValue::from_str(&format!("public, max-age={max_age}")) {
        r.headers_mut().insert(header::CACHE_CONTROL, v);
    }
    r
}

/// Keeps only public members, whatever the stored JWK holds: defence in depth against a private
/// parameter ever reaching storage.
fn public_only(jwk: Value) -> Value {
    const PUBLIC: &[&str] = &["kty", "kid", "alg", "use", "crv", "x", "y", "n", "e"];
    match jwk {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(k, _)| PUBLIC.contains(&k.as_str()))
                .collect(),
        ),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_members_never_leave() {
        let jwk = json!({"kty": "EC", "kid": "k", "alg": "ES256", "use": "sig", "crv": "P-256",
            "x": "x", "y": "y", "d": "secret", "p": "q"});
        let out = public_only(jwk);
        assert!(out.get("d").is_none());
        assert!(out.get("p").is_none());
        assert_eq!(out["kid"], "k");
    }

    #[test]
    fn metadata_lists_only_implemented_features() {
        let m = metadata_document("https://auth.example", &["ES256", "RS256"], false);
        assert_eq!(m["token_endpoint"], "https://auth.example/oauth2/token");
        assert_eq!(
            m["authorization_endpoint"],
            "https://auth.example/oauth2/authorize"
        );
        assert_eq!(
            m["userinfo_endpoint"],
            "https://auth.example/oauth2/userinfo"
        );
        assert_eq!(
            m["end_session_endpoint"],
            "https://auth.example/oauth2/logout"
        );
        assert_eq!(m["response_types_supported"], json!(["code"]));
        assert_eq!(m["code_challenge_methods_supported"], json!(["S256"]));
        assert_eq!(
            m["id_token_signing_alg_values_supported"],
            json!(["ES256", "RS256"])
        );
        assert_eq!(m["request_uri_parameter_supported"], json!(false));
        assert_eq!(
            m["pushed_authorization_request_endpoint"],
            "https://auth.example/oauth2/par"
        );
        assert_eq!(m["require_pushed_authorization_requests"], json!(false));
        assert!(m["token_endpoint_auth_methods_supported"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("none"))));
        // Workload clients authenticate at the token endpoint only, so only it lists them.
        assert!(m["token_endpoint_auth_methods_supported"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("workload_identity_jwt"))));
        for member in [
            "introspection_endpoint_auth_methods_supported",
            "revocation_endpoint_auth_methods_supported",
        ] {
            assert!(!m[member]
                .as_array()
                .is_some_and(|a| a.contains(&json!("workload_identity_jwt"))));
        }
        assert_eq!(
            m["dpop_signing_alg_values_supported"],
            json!(["ES256", "ES384", "RS256", "PS256", "EdDSA"])
        );
        // Not implemented, so not listed.
        for absent in ["registration_endpoint", "frontchannel_logout_supported"] {
            assert!(m.get(absent).is_none(), "{absent}");
        }
        // No client certificate can reach this server: no RFC 8705 member.
        assert!(m
            .get("tls_client_certificate_bound_access_tokens")
            .is_none());
        assert!(!m["token_endpoint_auth_methods_supported"]
            .as_array()
            .is_some_and(|a| a.contains(&json!("tls_client_auth"))));
    }

    /// Where client certificates reach the server (a TLS listener asking for them, or a trusted
    /// proxy forwarding them), the RFC 8705 methods are listed at every endpoint that
    /// authenticates clients, with certificate-bound tokens; one listener serves both, so there
    /// are no aliases.
    #[test]
    fn mtls_is_listed_where_client_certificates_arrive() {
        let m = metadata_document("https://auth.example", &["ES256"], true);
        for member in [
            "token_endpoint_auth_methods_supported",
            "introspection_endpoint_auth_methods_supported",
            "revocation_endpoint_auth_methods_supported",
        ] {
            for method in ["tls_client_auth", "self_signed_tls_client_auth"] {
                assert!(
                    m[member]
                        .as_array()
                        .is_some_and(|a| a.contains(&json!(method))),
                    "{member} {method}"
                );
            }
        }
        assert_eq!(m["tls_client_certificate_bound_access_tokens"], json!(true));
        assert!(m.get("mtls_endpoint_aliases").is_none());
    }
}
