//! Discovery: RFC 8414 metadata listing only what is implemented, and the JWKS with public keys
//! only. No OpenID Connect discovery document is served until the provider issues ID tokens:
//! one without OIDC's required members (authorization endpoint, subject types, ID token
//! algorithms) would make OIDC libraries fail in confusing ways, or guess.

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use portcullis_service::keys::jwt;
use portcullis_service::oauth::error::OAuthError;

use super::reply::OAuthReply;
use super::{INTROSPECT_PATH, JWKS_PATH, REVOKE_PATH, TOKEN_PATH};
use portcullis_service::oauth::OAuthService;

const METADATA_MAX_AGE_SECS: u64 = 3600;

const AUTH_METHODS: &[&str] = &[
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
];

pub fn metadata_document(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "introspection_endpoint": format!("{issuer}{INTROSPECT_PATH}"),
        "revocation_endpoint": format!("{issuer}{REVOKE_PATH}"),
        "grant_types_supported": ["client_credentials"],
        "response_types_supported": [],
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": portcullis_core::oauth::ASSERTION_ALGORITHMS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
        // RFC 8414 section 2: required wherever an endpoint lists a JWT-based method.
        "introspection_endpoint_auth_signing_alg_values_supported": portcullis_core::oauth::ASSERTION_ALGORITHMS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "revocation_endpoint_auth_signing_alg_values_supported": portcullis_core::oauth::ASSERTION_ALGORITHMS,
    })
}

pub async fn metadata(State(state): State<OAuthService>) -> Response {
    let mut r = Json(metadata_document(&state.oauth.issuer)).into_response();
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
        let m = metadata_document("https://auth.example");
        assert_eq!(m["token_endpoint"], "https://auth.example/oauth2/token");
        assert_eq!(m["grant_types_supported"], json!(["client_credentials"]));
        assert!(m.get("authorization_endpoint").is_none());
        assert!(m.get("userinfo_endpoint").is_none());
    }
}
