//! The OAuth endpoints as HTTP: token (every grant; the workload grants at a tenant's own
//! token endpoint), introspection (RFC 7662) and
//! revocation (RFC 7009). Each reads the form and the presented client credentials, calls the
//! service's operation (`portcullis_service::tokens`, which authenticates, decides and audits)
//! and writes its outcome. The request's client certificate (TLS handshake or trusted proxy,
//! `crate::extract::client_certificate`) goes with the presented credentials: mTLS clients
//! authenticate with it and certificate-bound tokens are bound to it (RFC 8705).
//!
//! This module must never decide anything about a client or a token: it only reads and renders.

use axum::extract::{Path, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use portcullis_service::oauth::dpop;
use portcullis_service::oauth::error::{OAuthError, Refusal};
use portcullis_service::oauth::form::presented_credentials;
use portcullis_service::oauth::OAuthService;
use portcullis_service::tokens::issue::TOKEN_REPEATABLE;
use portcullis_service::tokens::{self, Grant, Introspection, Issued, TokenQuery};

use super::cors;
use super::form::read;
use super::reply::{no_store, OAuthReply};
use crate::extract::{client_certificate, origin};

pub async fn method_not_allowed() -> OAuthReply {
    OAuthReply(OAuthError::refuse(Refusal::NotPost))
}

/// `POST /oauth2/token`. A browser caller (an `Origin` header) gets CORS headers when the
/// client the request names registered that origin (`cors`).
pub async fn token(State(svc): State<OAuthService>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let origin = origin(&parts);
    let mut client_id = None;
    let result: Result<Issued, OAuthError> = async {
        let params = read(&parts, body, TOKEN_REPEATABLE).await?;
        let grant = Grant::from_params(&params)?;
        if matches!(grant, Grant::TokenExchange(_) | Grant::JwtBearer(_)) {
            // Before reading client credentials: these grants use none here.
            return Err(OAuthError::refuse(Refusal::TenantEndpointRequired));
        }
        let presented = presented_credentials(&parts.headers, &params)?
            .with_certificate(client_certificate(&parts));
        client_id = Some(presented.client_id.clone());
        let proof = dpop_header(&parts.headers);
        tokens::issue(&svc, grant, presented, &proof, &origin).await
    }
    .await;
    let mut response = match result {
        Ok(issued) => token_response(&issued),
        Err(e) => OAuthReply(e).into_response(),
    };
    cors::answer(&svc, &parts.headers, client_id.as_deref(), &mut response).await;
    response
}

/// The request's `DPoP` header (RFC 9449 section 4.1): at most one, visible ASCII.
fn dpop_header(headers: &axum::http::HeaderMap) -> dpop::Presented {
    let mut all = headers.get_all("dpop").iter();
    match (all.next(), all.next()) {
        (None, _) => dpop::Presented::None,
        (Some(v), None) => match v.to_str() {
            Ok(s) if !s.is_empty() => dpop::Presented::One(s.to_owned()),
            _ => dpop::Presented::Invalid,
        },
        (Some(_), Some(_)) => dpop::Presented::Invalid,
    }
}

/// `POST /oauth2/tenants/{tenant}/token`: the workload grants, judged by the tenant's trust
/// rules. No client authentication and no CORS (a workload is not a browser).
pub async fn tenant_token(
    State(svc): State<OAuthService>,
    Path(tenant): Path<String>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    let origin = origin(&parts);
    let result: Result<Issued, OAuthError> = async {
        let params = read(&parts, body, TOKEN_REPEATABLE).await?;
        let grant = Grant::from_params(&params)?;
        let presents_credentials = parts.headers.contains_key(AUTHORIZATION)
            || ["client_secret", "client_assertion", "client_assertion_type"]
                .iter()
                .any(|p| params.get(p).is_some());
        tokens::issue_for_tenant(&svc, &tenant, grant, presents_credentials, &origin).await
    }
    .await;
    match result {
        Ok(issued) => token_response(&issued),
        Err(e) => OAuthReply(e).into_response(),
    }
}

/// RFC 6749 section 5.1 successful token response.
#[derive(serde::Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<&'a str>,
    /// RFC 8693 section 2.2.1, token exchange only.
    #[serde(skip_serializing_if = "Option::is_none")]
    issued_token_type: Option<&'static str>,
}

fn token_response(issued: &Issued) -> Response {
    let body = TokenResponse {
        access_token: issued.access_token.expose(),
        token_type: issued.token_type,
        expires_in: issued.expires_in,
        scope: issued.scope.as_deref(),
        id_token: issued.id_token.as_ref().map(|t| t.expose().as_str()),
        refresh_token: issued.refresh_token.as_ref().map(|t| t.expose().as_str()),
        issued_token_type: issued.issued_token_type,
    };
    let mut response = (StatusCode::OK, Json(body)).into_response();
    no_store(response.headers_mut());
    response
}

/// `POST /oauth2/par` (RFC 9126): 201 with the `request_uri` and its `expires_in`.
pub async fn push(State(svc): State<OAuthService>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let origin = origin(&parts);
    let result = async {
        let params = read(&parts, body, &[]).await?;
        let presented = presented_credentials(&parts.headers, &params)?
            .with_certificate(client_certificate(&parts));
        let proof = dpop_header(&parts.headers);
        tokens::pushed::push(&svc, &params, presented, &proof, &origin).await
    }
    .await;
    match result {
        Ok(pushed) => {
            let body = json!({
                "request_uri": pushed.request_uri,
                "expires_in": pushed.expires_in,
            });
            let mut response = (StatusCode::CREATED, Json(body)).into_response();
            no_store(response.headers_mut());
            response
        }
        Err(e) => OAuthReply(e).into_response(),
    }
}

/// `POST /oauth2/device_authorization` (RFC 8628 section 3.1): 200 with the device code, the
/// user code, where the person goes, and how often to poll.
pub async fn device_authorization(State(svc): State<OAuthService>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let origin = origin(&parts);
    let result = async {
        let params = read(&parts, body, &[]).await?;
        let presented = presented_credentials(&parts.headers, &params)?;
        tokens::device::authorize(&svc, &params, presented, &origin).await
    }
    .await;
    match result {
        Ok(d) => {
            let body = json!({
                "device_code": d.device_code.expose(),
                "user_code": d.user_code,
                "verification_uri": d.verification_uri,
                "verification_uri_complete": d.verification_uri_complete,
                "expires_in": d.expires_in,
                "interval": d.interval,
            });
            let mut response = (StatusCode::OK, Json(body)).into_response();
            no_store(response.headers_mut());
            response
        }
        Err(e) => OAuthReply(e).into_response(),
    }
}

/// `POST /oauth2/introspect` (RFC 7662).
pub async fn introspect(State(svc): State<OAuthService>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let origin = origin(&parts);
    let result: Result<Introspection, OAuthError> = async {
        let params = read(&parts, body, &[]).await?;
        let presented = presented_credentials(&parts.headers, &params)?
            .with_certificate(client_certificate(&parts));
        tokens::introspect(&svc, TokenQuery::from_params(&params), presented, &origin).await
    }
    .await;
    let answer = match result {
        Ok(Introspection::Active(v)) => {
            let c = &v.claims;
            let mut body = json!({
                "active": true,
                "client_id": c.client_id,
                "token_type": if c.cnf.as_ref().is_some_and(|k| k.jkt.is_some()) { "DPoP" } else { "Bearer" },
                "exp": c.exp,
                "iat": c.iat,
                "nbf": c.nbf,
                "sub": c.sub,
                "aud": c.aud,
                "iss": c.iss,
                "jti": c.jti,
                portcullis_core::oauth::TENANT_CLAIM: c.tenant,
            });
            if let Some(scope) = &c.scope {
                body["scope"] = json!(scope);
            }
            // RFC 9449 section 6.2, RFC 8705 section 3.2: the key the token is bound to.
            if let Some(cnf) = &c.cnf {
                body["cnf"] = json!(cnf);
            }
            body
        }
        // RFC 7662 section 2.2 for a refresh token: what the owning client needs to know.
        Ok(Introspection::ActiveRefresh(r)) => {
            let f = &r.family;
            json!({
                "active": true,
                "token_type": "refresh_token",
                "client_id": f.client_id,
                "scope": f.scope.join(" "),
                "sub": f.user_id,
                "exp": r.expires_at().as_secs(),
                "iat": r.issued_at.as_secs(),
                "iss": svc.oauth.issuer,
                portcullis_core::oauth::TENANT_CLAIM: f.tenant.as_str(),
            })
        }
        Ok(Introspection::Inactive(_)) => json!({"active": false}),
        Err(e) => return OAuthReply(e).into_response(),
    };
    let mut response = (StatusCode::OK, Json(answer)).into_response();
    no_store(response.headers_mut());
    response
}

/// `POST /oauth2/revoke` (RFC 7009): 200 whether the token was revoked or was nothing to
/// revoke, as the RFC requires.
pub async fn revoke(State(svc): State<OAuthService>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let origin = origin(&parts);
    let result = async {
        let params = read(&parts, body, &[]).await?;
        let presented = presented_credentials(&parts.headers, &params)?
            .with_certificate(client_certificate(&parts));
        tokens::revoke(&svc, TokenQuery::from_params(&params), presented, &origin).await
    }
    .await;
    match result {
        Ok(_) => {
            let mut response = StatusCode::OK.into_response();
            no_store(response.headers_mut());
            response
        }
        Err(e) => OAuthReply(e).into_response(),
    }
}
