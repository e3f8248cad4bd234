//! Introspection (RFC 7662). Callers are clients with the introspection permission, who learn
//! about tokens of their own tenant, and resource servers with their own credential, who learn
//! only about tokens of their tenant whose audience is theirs. Anything else is inactive, and
//! only the log says why: this module must never tell a caller why a token is inactive, nor
//! describe a token of another tenant or audience.

use portcullis_core::audit::{Action, Outcome, Reason};

use super::lookup::find_token;
use super::TokenQuery;
use crate::audit::RequestOrigin;
use crate::client_auth::{authenticate_introspector, Introspector};
use crate::keys::jwt::VerifiedToken;
use crate::oauth::error::{OAuthError, Refusal};
use crate::oauth::form::Presented;
use crate::oauth::OAuthService;

/// What the caller learns about the token.
#[derive(Debug)]
pub enum Introspection {
    /// Current, and the caller may know of it.
    Active(Box<VerifiedToken>),
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
    let (tenant, audience) = match &caller {
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
            (&client.tenant, None)
        }
        Introspector::ResourceServer(rs) => (&rs.server.tenant, Some(rs.server.audience.as_str())),
    };
    let now = svc.clock.now();
    let answer = match find_token(svc, &query, now).await? {
        Ok(v) if v.tenant != *tenant => Introspection::Inactive("token_other_tenant"),
        Ok(v) if audience.is_some_and(|a| a != v.claims.aud) => {
            Introspection::Inactive("token_other_audience")
        }
        Ok(v) => Introspection::Active(Box::new(v)),
        Err(reason) => Introspection::Inactive(reason),
    };
    if let Introspection::Inactive(reason) = answer {
        tracing::info!(reason, "introspection: inactive");
    }
    Ok(answer)
}
