//! The token endpoint's operation: authenticate the client, then issue by grant. Each grant is
//! one variant of [`Grant`] (its parameters, typed) and one module beside this one. It must
//! never issue to a client that did not authenticate, nor judge a grant's parameters before
//! authentication (only the grant type is read first).

use portcullis_core::oauth::{parse_grant_type, GrantType};
use portcullis_core::secret::Secret;

use super::client_credentials;
use crate::audit::RequestOrigin;
use crate::client_auth::authenticate;
use crate::oauth::error::OAuthError;
use crate::oauth::form::{Params, Presented};
use crate::oauth::OAuthService;

/// The parameters that may repeat at the token endpoint: RFC 8707 allows several `resource`
/// values (we then require they name one audience).
pub const TOKEN_REPEATABLE: &[&str] = &["resource"];

/// A token request: the grant asked for and its parameters, read from the form before the
/// client is authenticated (an unknown `grant_type` is refused first). Whether the client may
/// have what it asks for is decided after authentication.
#[derive(Debug)]
pub enum Grant {
    /// RFC 6749 section 4.4.
    ClientCredentials(ClientCredentials),
}

/// What a client-credentials request asks for.
#[derive(Debug, Default)]
pub struct ClientCredentials {
    /// Every `resource` (RFC 8707), then `audience`; they must name one API.
    pub targets: Vec<String>,
    pub scope: Option<String>,
}

impl Grant {
    /// Reads the grant and its parameters from the token request's form.
    pub fn from_params(params: &Params) -> Result<Self, OAuthError> {
        match parse_grant_type(params.get("grant_type")).map_err(OAuthError::from)? {
            GrantType::ClientCredentials => {
                let mut targets: Vec<String> = params
                    .all("resource")
                    .into_iter()
                    .map(str::to_owned)
                    .collect();
                targets.extend(params.get("audience").map(str::to_owned));
                Ok(Self::ClientCredentials(ClientCredentials {
                    targets,
                    scope: params.get("scope").map(str::to_owned),
                }))
            }
            // `parse_grant_type` admits only the served grants (`GrantType::SERVED`); these are
            // registrable before their grant modules exist.
            GrantType::AuthorizationCode | GrantType::RefreshToken => Err(OAuthError::from(
                portcullis_core::oauth::GrantError::UnsupportedGrantType,
            )),
        }
    }

    pub fn grant_type(&self) -> GrantType {
        match self {
            Self::ClientCredentials(_) => GrantType::ClientCredentials,
        }
    }
}

/// An issued access token: what RFC 6749 section 5.1's response carries.
#[derive(Debug)]
pub struct Issued {
    pub access_token: Secret<String>,
    /// Always `Bearer` until sender-constrained tokens arrive.
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: Option<String>,
}

/// `POST /oauth2/token`: authenticates the client and issues a token for `grant`, or says why
/// not (refusals are audited).
pub async fn issue(
    svc: &OAuthService,
    grant: Grant,
    presented: Presented,
    origin: &RequestOrigin,
) -> Result<Issued, OAuthError> {
    let authenticated = authenticate(svc, presented, origin).await?;
    match grant {
        Grant::ClientCredentials(request) => {
            client_credentials::issue(svc, &authenticated, request, origin).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::form::parse;

    #[test]
    fn a_token_request_is_read_before_authentication_and_judged_after() {
        let grant = |body: &str| Grant::from_params(&parse(body.as_bytes(), TOKEN_REPEATABLE)?);
        // The grant type is judged first, whoever asks.
        for bad in ["", "grant_type=password", "grant_type=client_credentialsx"] {
            assert!(grant(bad).is_err(), "{bad}");
        }
        // Targets keep their order (resources, then audience); whether they name one API the
        // client may reach is decided after authentication.
        let Ok(Grant::ClientCredentials(cc)) =
            grant("grant_type=client_credentials&resource=a&resource=b&audience=c&scope=x+y")
        else {
            panic!("client credentials");
        };
        assert_eq!(cc.targets, ["a", "b", "c"]);
        assert_eq!(cc.scope.as_deref(), Some("x y"));
        let Ok(g) = grant("grant_type=client_credentials") else {
            panic!("client credentials");
        };
        assert_eq!(g.grant_type(), GrantType::ClientCredentials);
    }
}
