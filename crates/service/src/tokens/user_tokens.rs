//! Minting what a user grant issues: the RFC 9068 access token (`sub` the user, with the
//! sign-in's `auth_time`, `acr`, `amr`, `sid` and the refresh family) and, with `openid`, the
//! ID token, both signed by the active key; and the checks both user grants share (the client
//! is registered, the user is still active). Claims are core's (`portcullis_core::user_token`).
//!
//! This module must never decide what is granted (core does) and never mint for a user who is
//! not active.

use portcullis_core::client::ClientId;
use portcullis_core::oauth::AccessTokenClaims;
use portcullis_core::secret::Secret;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_core::user::{UserId, UserStatus};
use portcullis_core::user_token::{IdTokenClaims, SignInFacts, UserGrantDecision};
use portcullis_store::OAuthClient;

use crate::audit::RequestOrigin;
use crate::client_auth::AuthenticatedClient;
use crate::oauth::error::{OAuthError, Refusal};
use crate::oauth::OAuthService;

/// What both user grants start from: the client, its id as core's type, its policy (registered
/// for the grant, or the request is refused `unauthorized_client`) and the one way a refusal is
/// recorded (a denied issuance in the audit log, with the reason).
pub(super) struct UserGrant<'a> {
    svc: &'a OAuthService,
    origin: &'a RequestOrigin,
    pub client: &'a OAuthClient,
    pub client_id: ClientId,
    pub policy: &'a portcullis_core::oauth::ClientPolicy,
}

impl<'a> UserGrant<'a> {
    pub fn start(
        svc: &'a OAuthService,
        authenticated: &'a AuthenticatedClient,
        grant: portcullis_core::oauth::GrantType,
        origin: &'a RequestOrigin,
    ) -> Result<Self, OAuthError> {
        let client = authenticated.client();
        let (policy, client_id) = authenticated.facts.policy_and_id()?;
        let this = Self {
            svc,
            origin,
            client,
            client_id,
            policy,
        };
        if !policy.grant_types.contains(&grant) {
            return Err(this.refuse(portcullis_core::oauth::GrantError::UnauthorizedClient.into()));
        }
        Ok(this)
    }

    /// Records `e` as a denied issuance and hands it back.
    pub fn refuse(&self, e: OAuthError) -> OAuthError {
        super::audit(
            self.svc,
            self.client,
            portcullis_core::audit::Action::OAuthTokenIssue,
            portcullis_core::audit::Outcome::Denied,
            Some(portcullis_core::audit::Reason::of(&e.reason)),
            None,
            self.origin,
        );
        e
    }
}

/// The tokens of one answer.
#[derive(Debug)]
pub(super) struct Minted {
    pub access_token: Secret<String>,
    pub jti: String,
    /// When the access token expires (what a replay's revocation entries must outlive).
    pub expires_at: Timestamp,
    pub id_token: Option<Secret<String>>,
    pub scope: Option<String>,
}

/// Signs the access token for `decision`, and the ID token when `openid` was granted.
pub(super) fn mint(
    svc: &OAuthService,
    client: &OAuthClient,
    decision: &UserGrantDecision,
    facts: &SignInFacts<'_>,
    nonce: Option<&str>,
    binding: &super::issue::Binding,
    now: Timestamp,
) -> Result<Minted, OAuthError> {
    let signer = svc
        .oauth
        .signer()
        .ok_or_else(|| OAuthError::internal("no active signing key"))?;
    let jti = uuid::Uuid::new_v4().simple().to_string();
    let mut claims = AccessTokenClaims::for_user(
        &svc.oauth.issuer,
        &client.id,
        decision,
        facts,
        jti.clone(),
        now,
    );
    claims.cnf = binding.cnf();
    let access_token = signer.sign(&claims).map_err(OAuthError::internal)?;
    let id_token = if decision.id_token {
        let id = IdTokenClaims::new(
            &svc.oauth.issuer,
            &client.id,
            facts,
            nonce,
            decision.lifetime,
            now,
        );
        Some(Secret::new(
            signer
                .sign_id_token(&id, client.id_token_signed_response_alg)
                .map_err(OAuthError::internal)?,
        ))
    } else {
        None
    };
    Ok(Minted {
        access_token: Secret::new(access_token),
        jti,
        expires_at: Timestamp::from_secs(claims.exp),
        id_token,
        scope: claims.scope,
    })
}

/// Whether a client's refresh tokens are bound to its DPoP key: a public client's are (RFC 9449
/// section 5: it has no other credential to tie them to).
pub(super) fn binds_refresh_tokens(client: &OAuthClient) -> bool {
    client.auth_method == portcullis_core::oauth::AuthMethod::None.as_str()
}

/// Refuses (`invalid_grant`) unless the user is an active user of `tenant`: a disabled or
/// deleted user's code or refresh token gets nothing.
pub(super) async fn require_active_user(
    svc: &OAuthService,
    tenant: &TenantId,
    user_id: &UserId,
) -> Result<(), OAuthError> {
    let status = svc.store.get_user(tenant, user_id).await?.map(|u| u.status);
    user_may_get_tokens(status)
}

/// The rule [`require_active_user`] applies, for a caller that read the user's status (`None`:
/// no such user) with something else: only an active user gets tokens.
pub(super) fn user_may_get_tokens(status: Option<UserStatus>) -> Result<(), OAuthError> {
    match status {
        Some(UserStatus::Active) => Ok(()),
        Some(_) => Err(Refusal::InvalidGrant("user_inactive").into()),
        None => Err(Refusal::InvalidGrant("user_unknown").into()),
    }
}
