//! The token endpoint's operation: authenticate the client, then issue by grant. Each grant is
//! one variant of [`Grant`] (its parameters, typed) and one module beside this one. It must
//! never issue to a client that did not authenticate, nor judge a grant's parameters before
//! authentication (only the grant type is read first).

use portcullis_core::oauth::{parse_grant_type, GrantType, TOKEN_TYPE_ACCESS_TOKEN};
use portcullis_core::secret::Secret;

use portcullis_core::confirmation::{Confirmation, Thumbprint};

use super::{authorization_code, client_credentials, device, refresh, service_exchange, workload};
use crate::audit::RequestOrigin;
use crate::client_auth::{
    authenticate, authenticate_app, authenticate_for_client_credentials, AuthenticatedClient,
};
use crate::oauth::dpop;
use crate::oauth::error::{OAuthError, Refusal};
use crate::oauth::form::{Params, Presented};
use crate::oauth::OAuthService;

/// The parameters that may repeat at the token endpoint: RFC 8707 allows several `resource`
/// values (we then require they name one audience).
pub const TOKEN_REPEATABLE: &[&str] = &["resource"];

/// A token request: the grant asked for and its parameters, read from the form before the
/// client is authenticated (an unknown `grant_type` is refused first). Whether the client may
/// have what it asks for, and whether a required parameter is missing, is decided after
/// authentication.
#[derive(Debug)]
pub enum Grant {
    /// RFC 6749 section 4.4.
    ClientCredentials(ClientCredentials),
    /// RFC 6749 section 4.1.3 with PKCE (RFC 7636 section 4.5).
    AuthorizationCode(CodeGrant),
    /// RFC 6749 section 6, rotating.
    RefreshToken(RefreshGrant),
    /// RFC 8693 token exchange of an external workload token (`workload`).
    TokenExchange(WorkloadGrant),
    /// RFC 8693 token exchange of one of our access tokens by the client acting for its subject
    /// (`service_exchange`): `subject_token_type` access_token.
    ServiceExchange(ServiceExchange),
    /// RFC 7523 section 2.1: an external workload token as the grant (`workload`).
    JwtBearer(WorkloadGrant),
    /// RFC 8628 section 3.4: a device polls with its device code (`device`).
    DeviceCode(device::DeviceGrant),
}

/// What a workload grant presents: the external token (`subject_token` of a token exchange,
/// `assertion` of a JWT-bearer grant) and what is asked for. Read as sent; judged by the
/// tenant's trust rules (`crate::federation::exchange`).
#[derive(Debug)]
pub struct WorkloadGrant {
    pub token: Option<Secret<String>>,
    /// Token exchange: `subject_token_type` (RFC 8693 section 2.1).
    pub token_type: Option<String>,
    /// Token exchange: `requested_token_type`.
    pub requested_token_type: Option<String>,
    /// Token exchange: whether an `actor_token` was sent (not taken for external tokens).
    pub actor_token: bool,
    pub scope: Option<String>,
    /// Every `resource`, then `audience`; they must name one API the rule grants.
    pub targets: Vec<String>,
    /// `rule`: the trust rule the caller names (else the most specific match).
    pub rule: Option<String>,
}

/// What a token exchange between services presents, read as sent.
#[derive(Debug)]
pub struct ServiceExchange {
    pub subject_token: Option<Secret<String>>,
    pub requested_token_type: Option<String>,
    /// Whether an `actor_token` was sent (not taken: the authenticated client is the actor).
    pub actor_token: bool,
    pub scope: Option<String>,
    /// Every `resource`, then `audience`; they must name one of the actor's APIs.
    pub targets: Vec<String>,
}

/// What a client-credentials request asks for.
#[derive(Debug, Default)]
pub struct ClientCredentials {
    /// Every `resource` (RFC 8707), then `audience`; they must name one API.
    pub targets: Vec<String>,
    pub scope: Option<String>,
}

/// What a code redemption presents.
#[derive(Debug)]
pub struct CodeGrant {
    pub code: Option<Secret<String>>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<Secret<String>>,
    /// `resource` values (RFC 8707): the API the access token is for, else the default.
    pub targets: Vec<String>,
}

/// What a refresh presents.
#[derive(Debug)]
pub struct RefreshGrant {
    pub refresh_token: Option<Secret<String>>,
    /// May only narrow the family's scope.
    pub scope: Option<String>,
    pub targets: Vec<String>,
}

fn targets(params: &Params) -> Vec<String> {
    let mut targets: Vec<String> = params
        .all("resource")
        .into_iter()
        .map(str::to_owned)
        .collect();
    targets.extend(params.get("audience").map(str::to_owned));
    targets
}

impl Grant {
    /// Reads the grant and its parameters from the token request's form.
    pub fn from_params(params: &Params) -> Result<Self, OAuthError> {
        let secret = |name: &str| params.get(name).map(|v| Secret::new(v.to_owned()));
        Ok(
            match parse_grant_type(params.get("grant_type")).map_err(OAuthError::from)? {
                GrantType::ClientCredentials => Self::ClientCredentials(ClientCredentials {
                    targets: targets(params),
                    scope: params.get("scope").map(str::to_owned),
                }),
                GrantType::AuthorizationCode => Self::AuthorizationCode(CodeGrant {
                    code: secret("code"),
                    redirect_uri: params.get("redirect_uri").map(str::to_owned),
                    code_verifier: secret("code_verifier"),
                    targets: targets(params),
                }),
                GrantType::RefreshToken => Self::RefreshToken(RefreshGrant {
                    refresh_token: secret("refresh_token"),
                    scope: params.get("scope").map(str::to_owned),
                    targets: targets(params),
                }),
                GrantType::TokenExchange
                    if params.get("subject_token_type") == Some(TOKEN_TYPE_ACCESS_TOKEN) =>
                {
                    Self::ServiceExchange(ServiceExchange {
                        subject_token: secret("subject_token"),
                        requested_token_type: params.get("requested_token_type").map(str::to_owned),
                        actor_token: params.get("actor_token").is_some()
                            || params.get("actor_token_type").is_some(),
                        scope: params.get("scope").map(str::to_owned),
                        targets: targets(params),
                    })
                }
                GrantType::TokenExchange => Self::TokenExchange(WorkloadGrant {
                    token: secret("subject_token"),
                    token_type: params.get("subject_token_type").map(str::to_owned),
                    requested_token_type: params.get("requested_token_type").map(str::to_owned),
                    actor_token: params.get("actor_token").is_some()
                        || params.get("actor_token_type").is_some(),
                    scope: params.get("scope").map(str::to_owned),
                    targets: targets(params),
                    rule: params.get("rule").map(str::to_owned),
                }),
                GrantType::DeviceCode => Self::DeviceCode(device::DeviceGrant {
                    device_code: secret("device_code"),
                    targets: targets(params),
                }),
                GrantType::JwtBearer => Self::JwtBearer(WorkloadGrant {
                    token: secret("assertion"),
                    token_type: None,
                    requested_token_type: None,
                    actor_token: false,
                    scope: params.get("scope").map(str::to_owned),
                    targets: targets(params),
                    rule: params.get("rule").map(str::to_owned),
                }),
            },
        )
    }

    pub fn grant_type(&self) -> GrantType {
        match self {
            Self::ClientCredentials(_) => GrantType::ClientCredentials,
            Self::AuthorizationCode(_) => GrantType::AuthorizationCode,
            Self::RefreshToken(_) => GrantType::RefreshToken,
            Self::TokenExchange(_) | Self::ServiceExchange(_) => GrantType::TokenExchange,
            Self::JwtBearer(_) => GrantType::JwtBearer,
            Self::DeviceCode(_) => GrantType::DeviceCode,
        }
    }
}

/// What RFC 6749 section 5.1's response carries (and OIDC Core 3.1.3.3's `id_token`).
#[derive(Debug)]
pub struct Issued {
    pub access_token: Secret<String>,
    /// `Bearer`, or `DPoP` for a token bound to the proof key (RFC 9449 section 5).
    pub token_type: &'static str,
    pub expires_in: u64,
    pub scope: Option<String>,
    /// User grants with `openid`.
    pub id_token: Option<Secret<String>>,
    /// User grants with `offline_access` (the family's first token, or the successor).
    pub refresh_token: Option<Secret<String>>,
    /// Token exchange only (RFC 8693 section 2.2.1).
    pub issued_token_type: Option<&'static str>,
}

/// The keys a token request proved it holds: a DPoP key (RFC 9449) and a client certificate
/// (RFC 8705), what the access token (and a public client's or an mTLS client's refresh
/// family) is bound to. Both `None`: a bearer token.
#[derive(Debug, Clone, Default)]
pub struct Binding {
    pub dpop_jkt: Option<Thumbprint>,
    /// The `x5t#S256` of the client certificate ([`AuthenticatedClient::bound_certificate`]).
    pub x5t_s256: Option<Thumbprint>,
}

impl Binding {
    /// The access token's `cnf` claim.
    pub fn cnf(&self) -> Option<Confirmation> {
        (self.dpop_jkt.is_some() || self.x5t_s256.is_some()).then(|| Confirmation {
            jkt: self.dpop_jkt.clone(),
            x5t_s256: self.x5t_s256.clone(),
        })
    }

    /// The `token_type` of the answer.
    pub fn token_type(&self) -> &'static str {
        if self.dpop_jkt.is_some() {
            "DPoP"
        } else {
            "Bearer"
        }
    }
}

/// The binding step of the pipeline, after authentication and before the grant: checks and
/// records the request's DPoP proof (`oauth::dpop`). Refusals are audited as denied issuances.
async fn bind(
    svc: &OAuthService,
    authenticated: &AuthenticatedClient,
    proof: &dpop::Presented,
    origin: &RequestOrigin,
) -> Result<Binding, OAuthError> {
    let client = authenticated.client();
    let refuse = |e: OAuthError| {
        super::audit(
            svc,
            client,
            portcullis_core::audit::Action::OAuthTokenIssue,
            portcullis_core::audit::Outcome::Denied,
            Some(portcullis_core::audit::Reason::of(&e.reason)),
            None,
            origin,
        );
        e
    };
    let dpop_jkt = dpop::check_token_request(svc, proof)
        .await
        .map_err(refuse)?;
    // A client registered with `require_dpop` gets bound tokens only, whatever the grant.
    if dpop_jkt.is_none() && client.require_dpop {
        return Err(refuse(dpop::proof_required(svc)));
    }
    Ok(Binding {
        dpop_jkt,
        x5t_s256: authenticated.bound_certificate().cloned(),
    })
}

/// `POST /oauth2/token`: authenticates the client, checks a DPoP proof if one was sent, and
/// issues a token for `grant` (bound to the proof key), or says why not (refusals are audited).
/// The user grants admit public clients by `client_id` alone.
pub async fn issue(
    svc: &OAuthService,
    grant: Grant,
    presented: Presented,
    proof: &dpop::Presented,
    origin: &RequestOrigin,
) -> Result<Issued, OAuthError> {
    let (authenticated, issued) = match grant {
        Grant::ClientCredentials(request) => {
            let authenticated = authenticate_for_client_credentials(svc, presented, origin).await?;
            let binding = bind(svc, &authenticated, proof, origin).await?;
            let issued =
                client_credentials::issue(svc, &authenticated, request, &binding, origin).await?;
            (authenticated, issued)
        }
        Grant::AuthorizationCode(request) => {
            let authenticated = authenticate_app(svc, presented, origin).await?;
            let binding = bind(svc, &authenticated, proof, origin).await?;
            let issued =
                authorization_code::issue(svc, &authenticated, request, &binding, origin).await?;
            (authenticated, issued)
        }
        Grant::RefreshToken(request) => {
            let authenticated = authenticate_app(svc, presented, origin).await?;
            let binding = bind(svc, &authenticated, proof, origin).await?;
            let issued = refresh::issue(svc, &authenticated, request, &binding, origin).await?;
            (authenticated, issued)
        }
        Grant::ServiceExchange(request) => {
            let authenticated = authenticate(svc, presented, origin).await?;
            let binding = bind(svc, &authenticated, proof, origin).await?;
            let issued =
                service_exchange::issue(svc, &authenticated, request, &binding, origin).await?;
            (authenticated, issued)
        }
        Grant::DeviceCode(request) => {
            let authenticated = authenticate_app(svc, presented, origin).await?;
            let binding = bind(svc, &authenticated, proof, origin).await?;
            let issued = device::issue(svc, &authenticated, request, &binding, origin).await?;
            (authenticated, issued)
        }
        // The installation's endpoint cannot tell which tenant's rules to apply: the tenant
        // is named by the endpoint's path (`issue_for_tenant`), never guessed from the token.
        Grant::TokenExchange(_) | Grant::JwtBearer(_) => {
            return Err(OAuthError::refuse(Refusal::TenantEndpointRequired))
        }
    };
    // The scopes the client's credential was used for, for the hygiene report's "broader than
    // used" (throttled to one write per client, scope string and hour).
    let client = authenticated.client();
    crate::lifecycle::record_client_scope_use(
        &svc.store,
        &svc.oauth.match_marks,
        &client.tenant,
        &client.id,
        issued.scope.as_deref(),
        svc.clock.now(),
    );
    Ok(issued)
}

/// `POST /oauth2/tenants/{tenant}/token`: a workload grant judged by `tenant`'s trust rules.
/// Nothing authenticates a client here: a request carrying client credentials (`presented`)
/// or naming a client grant is refused, so a client secret is never taken at an endpoint that
/// does not check it. A bare `client_id` (sent by many client libraries) is ignored.
pub async fn issue_for_tenant(
    svc: &OAuthService,
    tenant: &str,
    grant: Grant,
    presents_credentials: bool,
    origin: &RequestOrigin,
) -> Result<Issued, OAuthError> {
    if presents_credentials {
        return Err(OAuthError::refuse(Refusal::NotAWorkloadRequest));
    }
    let exchange = matches!(grant, Grant::TokenExchange(_));
    match grant {
        Grant::TokenExchange(request) | Grant::JwtBearer(request) => {
            workload::issue(svc, tenant, request, exchange, origin).await
        }
        // One of our access tokens is exchanged at the installation's endpoint, by the client
        // acting for its subject (which authenticates there).
        Grant::ServiceExchange(_) => Err(OAuthError::refuse(Refusal::UnsupportedTokenType)),
        _ => Err(OAuthError::refuse(Refusal::NotAWorkloadRequest)),
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
        // The user grants' parameters are read as they are; missing ones are judged later.
        let Ok(Grant::AuthorizationCode(c)) = grant(
            "grant_type=authorization_code&code=c1&redirect_uri=https%3A%2F%2Fa%2Fcb&code_verifier=v",
        ) else {
            panic!("code");
        };
        assert_eq!(c.code.as_ref().map(|c| c.expose().as_str()), Some("c1"));
        assert_eq!(c.redirect_uri.as_deref(), Some("https://a/cb"));
        let Ok(Grant::RefreshToken(r)) = grant("grant_type=refresh_token") else {
            panic!("refresh");
        };
        assert!(r.refresh_token.is_none() && r.scope.is_none());
    }
}
