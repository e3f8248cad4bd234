//! Introspection (RFC 7662). Callers are clients with the introspection permission, who learn
//! about tokens of their own tenant, and resource servers with their own credential, who learn
//! only about tokens of their tenant whose audience is theirs. Anything else is inactive, and
//! only the log says why: this module must never tell a caller why a token is inactive, nor
//! describe a token of another tenant or audience.
//!
//! Refresh tokens: only the client they were issued to learns about one (another client, even
//! of the same tenant, and every resource server get `active: false`); active while the token
//! endpoint would honour it (current, or rotated within the grace window, in a live family).

use portcullis_core::audit::{Action, Outcome, Reason};

use super::lookup::{find_token, Found};
use super::TokenQuery;
use crate::audit::RequestOrigin;
use crate::client_auth::{authenticate_introspector, Introspector};
use crate::keys::jwt::VerifiedToken;
use crate::oauth::error::{OAuthError, Refusal};
use crate::oauth::form::Presented;
use crate::oauth::OAuthService;
use crate::sign_in::InspectedRefresh;

/// What the caller learns about the token.
#[derive(Debug)]
pub enum Introspection {
    /// Current, and the caller may know of it.
    Active(Box<VerifiedToken>),
    /// A refresh token of the caller's own, current.
    ActiveRefresh(Box<InspectedRefresh>),
    /// `active: false` and nothing more; the reason is logged only.
    Inactive(&'static str),
}

/// `POST /oauth2/introspect`.
pub async fn introspect(
    svc: &OAuthService,
    query: TokenQuery,
    presented: Presented,
    origin: &RequestOrigin,
) -> Result<Introspection, OAuthError> {
    let caller = authenticate_introspector(svc, presented, origin).await?;
    let (tenant, audience, client_id) = match &caller {
        Introspector::Client(authenticated) => {
            let client = authenticated.client();
            if !client.can_introspect {
                super::audit(
                    svc,
                    client,
                    Action::OAuthTokenIntrospect,
                    Outcome::Denied,
                    Some(Reason::new(Refusal::MayNotIntrospect.entry().reason)),
                    None,
                    origin,
                );
                return Err(OAuthError::refuse(Refusal::MayNotIntrospect));
            }
            (&client.tenant, None, Some(client.id.as_str()))
        }
        Introspector::ResourceServer(rs) => {
            (&rs.server.tenant, Some(rs.server.audience.as_str()), None)
        }
    };
    let now = svc.clock.now();
    let answer = match find_token(svc, &query, now).await? {
        Ok(Found::Access(v)) if v.tenant != *tenant => {
            Introspection::Inactive("token_other_tenant")
        }
        Ok(Found::Access(v)) if audience.is_some_and(|a| a != v.claims.aud) => {
            Introspection::Inactive("token_other_audience")
        }
        Ok(Found::Access(v)) => Introspection::Active(v),
        Ok(Found::Refresh(r)) if r.family.tenant != *tenant => {
            Introspection::Inactive("token_other_tenant")
        }
        Ok(Found::Refresh(r)) if client_id != Some(r.family.client_id.as_str()) => {
            Introspection::Inactive("refresh_token_of_another_client")
        }
        Ok(Found::Refresh(r)) if !r.active() => Introspection::Inactive(r.decision.as_str()),
        Ok(Found::Refresh(r)) => Introspection::ActiveRefresh(r),
        Err(reason) => Introspection::Inactive(reason),
    };
    if let Introspection::Inactive(reason) = answer {
        tracing::info!(reason, "introspection: inactive");
    }
    Ok(answer)
}
