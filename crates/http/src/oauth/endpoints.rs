//! The OAuth endpoints: token (client credentials), introspection (RFC 7662) and revocation
//! (RFC 7009). Each reads a form, authenticates the client, asks core for the decision, and
//! audits the outcome.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_core::audit::{Action, Actor, Outcome, Reason};
use portcullis_core::oauth::{
    decide_client_credentials, parse_grant_type, select_audience, token_search_order,
    AccessTokenClaims, GrantType, TokenType,
};
use portcullis_core::revocation::{RevocationSet, TokenIdentity};
use portcullis_core::time::Timestamp;
use portcullis_store::{NewRevocation, OAuthClient, RevocationKind};
use serde_json::json;

use portcullis_service::client_auth::{authenticate, authenticate_introspector, Introspector};
use portcullis_service::keys::jwt::{self, VerifiedToken};
use portcullis_service::oauth::error::{OAuthError, Refusal};
use portcullis_service::oauth::form::{self, presented_credentials};

use super::form::read;
use super::reply::{no_store, OAuthReply};
use crate::extract::origin;
use portcullis_service::audit::{EventDraft, RequestOrigin};
use portcullis_service::state::AppState;

/// The parameters that may repeat at the token endpoint: RFC 8707 allows several `resource`
/// values (we then require they name one audience).
const TOKEN_REPEATABLE: &[&str] = &["resource"];

pub async fn method_not_allowed() -> OAuthReply {
    OAuthReply(OAuthError::refuse(Refusal::NotPost))
}

/// `POST /oauth2/token`.
pub async fn token(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let origin = origin(&parts);
    match issue(&state, &parts, body, &origin).await {
        Ok(r) => r,
        Err(e) => OAuthReply(e).into_response(),
    }
}

async fn issue(
    state: &AppState,
    parts: &axum::http::request::Parts,
    body: axum::body::Body,
    origin: &RequestOrigin,
) -> Result<Response, OAuthError> {
    let params = read(parts, body, TOKEN_REPEATABLE).await?;
    let grant = parse_grant_type(params.get("grant_type")).map_err(OAuthError::from)?;
    let presented = presented_credentials(&parts.headers, &params)?;
    let method = presented.method;
    let authenticated = authenticate(state, presented, origin)
        .await
        .map_err(|e| e.for_method(method))?;
    let client = authenticated.client();
    let refuse = |e: OAuthError| {
        audit(
            state,
            client,
            Action::OAuthTokenIssue,
            Outcome::Denied,
            Some(Reason::of(&e.reason)),
            None,
            origin,
        );
        e
    };
    match grant {
        GrantType::ClientCredentials => {}
    }
    let policy =
        authenticated.facts.policy.as_ref().ok_or_else(|| {
            OAuthError::internal(format!("stored client {} is invalid", client.id))
        })?;
    let mut targets = params.all("resource");
    targets.extend(params.get("audience"));
    let audience = select_audience(policy, &targets)
        .map_err(OAuthError::from)
        .map_err(refuse)?;
    let now = state.clock.now();
    let resource = state
        .oauth
        .directory
        .resource(state.store.as_ref(), &client.tenant, audience.as_str(), now)
        .await?
        .ok_or_else(|| refuse(OAuthError::refuse(Refusal::InvalidTarget)))?;
    let resource = resource
        .policy
        .as_ref()
        .ok_or_else(|| OAuthError::internal("stored resource server is invalid"))?;
    let decision =
        decide_client_credentials(policy, resource, params.get("scope"), state.oauth.lifetimes)
            .map_err(OAuthError::from)
            .map_err(refuse)?;
    let jti = uuid::Uuid::new_v4().simple().to_string();
    let claims = AccessTokenClaims::for_client(&state.oauth.issuer, policy, &decision, jti, now);
    let signer = state
        .oauth
        .signer()
        .ok_or_else(|| OAuthError::internal("no active signing key"))?;
    let token = signer.sign(&claims).map_err(OAuthError::internal)?;
    state.oauth.metrics.issued(grant);
    audit(
        state,
        client,
        Action::OAuthTokenIssue,
        Outcome::Success,
        None,
        Some(claims.jti.clone()),
        origin,
    );
    let body = TokenResponse {
        access_token: &token,
        token_type: "Bearer",
        expires_in: decision.lifetime.as_secs(),
        scope: claims.scope.as_deref(),
    };
    let mut response = (StatusCode::OK, Json(body)).into_response();
    no_store(response.headers_mut());
    Ok(response)
}

/// RFC 6749 section 5.1 successful token response.
#[derive(serde::Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
}

/// Verifies a token and checks the revocation log. `None` for anything not currently valid.
async fn current_token(
    state: &AppState,
    token: &str,
    now: Timestamp,
) -> Result<Result<VerifiedToken, &'static str>, OAuthError> {
    let directory = &state.oauth.directory;
    let keys = directory.signing_keys(state.store.as_ref(), now).await?;
    let verify = |keys: &jwt::PublishedKeys| {
        jwt::verify(
            token,
            keys,
            &state.oauth.issuer,
            state.oauth.lifetimes.max,
            now,
        )
    };
    let verified = match verify(&keys) {
        // A key made active on another node within the cache's lifetime (an emergency
        // replacement after a revoke is active at once): read the keys again before refusing.
        Err(jwt::Invalid::UnknownKey) => {
            directory.signing_keys_changed();
            let keys = directory.signing_keys(state.store.as_ref(), now).await?;
            verify(&keys)
        }
        other => other,
    };
    let verified = match verified {
        Ok(v) => v,
        Err(e) => return Ok(Err(e.as_str())),
    };
    let Ok(tenant) = portcullis_core::tenant::TenantId::parse(&verified.claims.tenant) else {
        return Ok(Err("token_bad_tenant"));
    };

    let claims = &verified.claims;
    let identity = TokenIdentity {
        tenant: &tenant,
        jti: &claims.jti,
        client_id: Some(&claims.client_id),
        subject: &claims.sub,
        kid: &verified.kid,
        family: None,
        sid: verified.sid.as_deref(),
        issued_at: Timestamp::from_secs(claims.iat),
    };
    // The one revocation rule (core), over the entries that name this token.
    let candidates: Vec<_> = identity.candidates().collect();
    let entries = state.store.revocations_naming(&candidates).await?;
    let records: Vec<_> = entries.into_iter().map(|e| e.into_record()).collect();
    if let Some(by) = RevocationSet::from_records(&records).token_revoked(&identity) {
        return Ok(Err(by.reason()));
    }
    Ok(Ok(verified))
}

/// The token types this server issues. Refresh tokens arrive with the authorization-code grant.
const ISSUED_TOKEN_TYPES: &[TokenType] = &[TokenType::AccessToken];

/// Finds the presented token, looking first where `token_type_hint` points and then in every
/// other type this server issues (RFC 7009 section 2.1, RFC 7662 section 2.1). An unknown hint
/// is ignored (RFC 7009 section 2.2). The error is why nothing current was found.
async fn find_token(
    state: &AppState,
    params: &form::Params,
    now: Timestamp,
) -> Result<Result<VerifiedToken, &'static str>, OAuthError> {
    let token = params.get("token").ok_or(Refusal::NoToken)?;
    let hint = params.get("token_type_hint");
    let mut why = "token_unknown";
    for kind in token_search_order(hint, ISSUED_TOKEN_TYPES) {
        match kind {
            TokenType::AccessToken => match current_token(state, token, now).await? {
                Ok(found) => {
                    if hint.is_some_and(|h| h != kind.as_str()) {
                        tracing::debug!(
                            hint,
                            found = kind.as_str(),
                            "token_type_hint did not match"
                        );
                    }
                    return Ok(Ok(found));
                }
                Err(reason) => why = reason,
            },
            // None issued yet: nothing to look in.
            TokenType::RefreshToken => {}
        }
    }
    Ok(Err(why))
}

/// `POST /oauth2/introspect` (RFC 7662). Callers are clients with the introspection permission,
/// who learn about tokens of their own tenant, and resource servers with their own credential,
/// who learn only about tokens of their tenant whose audience is theirs. Anything else is
/// `active: false` and nothing more.
pub async fn introspect(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let origin = origin(&parts);
    let result: Result<Response, OAuthError> = async {
        let params = read(&parts, body, &[]).await?;
        let presented = presented_credentials(&parts.headers, &params)?;
        let method = presented.method;
        let caller = authenticate_introspector(&state, presented, &origin)
            .await
            .map_err(|e| e.for_method(method))?;
        let (tenant, audience) = match &caller {
            Introspector::Client(authenticated) => {
                let client = authenticated.client();
                if !client.can_introspect {
                    let e = OAuthError::refuse(Refusal::MayNotIntrospect);
                    audit(
                        &state,
                        client,
                        Action::OAuthTokenIntrospect,
                        Outcome::Denied,
                        Some(Reason::new(Refusal::MayNotIntrospect.entry().reason)),
                        None,
                        &origin,
                    );
                    return Err(e);
                }
                (&client.tenant, None)
            }
            Introspector::ResourceServer(rs) => {
                (&rs.server.tenant, Some(rs.server.audience.as_str()))
            }
        };
        let now = state.clock.now();
        let answer = match find_token(&state, &params, now).await? {
            Ok(v) if v.claims.tenant != tenant.as_str() => {
                tracing::info!(reason = "token_other_tenant", "introspection: inactive");
                json!({"active": false})
            }
            Ok(v) if audience.is_some_and(|a| a != v.claims.aud) => {
                tracing::info!(reason = "token_other_audience", "introspection: inactive");
                json!({"active": false})
            }
            Ok(v) => {
                let c = &v.claims;
                let mut body = json!({
                    "active": true,
                    "client_id": c.client_id,
                    "token_type": "Bearer",
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
                body
            }
            Err(reason) => {
                tracing::info!(reason, "introspection: inactive");
                json!({"active": false})
            }
        };
        let mut response = (StatusCode::OK, Json(answer)).into_response();
        no_store(response.headers_mut());
        Ok(response)
    }
    .await;
    result.unwrap_or_else(|e| OAuthReply(e).into_response())
}

/// `POST /oauth2/revoke` (RFC 7009): a client revokes tokens issued to itself. Unknown, invalid
/// and expired tokens answer 200 as the RFC requires; another client's token is refused.
pub async fn revoke(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let origin = origin(&parts);
    let result: Result<Response, OAuthError> = async {
        let params = read(&parts, body, &[]).await?;
        let presented = presented_credentials(&parts.headers, &params)?;
        let method = presented.method;
        let authenticated = authenticate(&state, presented, &origin)
            .await
            .map_err(|e| e.for_method(method))?;
        let client = authenticated.client();
        let now = state.clock.now();
        match find_token(&state, &params, now).await? {
            Err(reason) => {
                tracing::info!(
                    reason,
                    "revocation of a token that is not valid: nothing to do"
                );
            }
            Ok(v) => {
                if v.claims.client_id != client.id || v.claims.tenant != client.tenant.as_str() {
                    let e = OAuthError::refuse(Refusal::TokenOfAnotherClient);
                    audit(
                        &state,
                        client,
                        Action::OAuthTokenRevoke,
                        Outcome::Denied,
                        Some(Reason::new(Refusal::TokenOfAnotherClient.entry().reason)),
                        Some(v.claims.jti),
                        &origin,
                    );
                    return Err(e);
                }
                state
                    .store
                    .append_revocation(
                        &NewRevocation {
                            tenant: client.tenant.clone(),
                            kind: RevocationKind::Token,
                            subject: v.claims.jti.clone(),
                            revoked_before: None,
                            expires_at: Some(Timestamp::from_secs(v.claims.exp)),
                            reason: Some("revoked_by_client".into()),
                        },
                        now,
                    )
                    .await?;
                audit(
                    &state,
                    client,
                    Action::OAuthTokenRevoke,
                    Outcome::Success,
                    None,
                    Some(v.claims.jti),
                    &origin,
                );
            }
        }
        let mut response = StatusCode::OK.into_response();
        no_store(response.headers_mut());
        Ok(response)
    }
    .await;
    result.unwrap_or_else(|e| OAuthReply(e).into_response())
}

fn audit(
    state: &AppState,
    client: &OAuthClient,
    action: Action,
    outcome: Outcome,
    reason: Option<Reason>,
    target: Option<String>,
    origin: &RequestOrigin,
) {
    state.audit.record(
        EventDraft {
            tenant: client.tenant.clone(),
            actor: Actor::client(&client.id),
            credential_id: Some(client.id.clone()),
            action,
            outcome,
            reason,
            target,
        },
        origin,
    );
}
