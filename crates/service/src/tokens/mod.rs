//! What the token service does at its OAuth endpoints, without HTTP: issuing access tokens per
//! grant ([`issue`]; one module per grant: `client_credentials`, `authorization_code`,
//! `refresh`, `workload` (token exchange and the JWT-bearer grant, at a tenant's endpoint),
//! `service_exchange` (token exchange of our own access token between services), the user grants minting through `user_tokens`), introspecting ([`introspect`]) and
//! revoking ([`revoke`]) the tokens it issued, answering userinfo ([`userinfo`]), and finding a
//! presented token (`lookup`, with the one revocation rule of core).
//!
//! Each operation takes typed input (the parsed request and the presented client credentials,
//! both read by `crate::oauth::form`), authenticates the caller (`crate::client_auth`), asks
//! core for the decision, audits it, and returns a typed outcome that `portcullis-http` only
//! renders. A new grant (authorization code, refresh token, token exchange) is a new
//! [`issue::Grant`] variant and a module next to `client_credentials`.
//!
//! This module must never depend on a web framework, never log a secret or a token, and never
//! hold a rule core owns (grant, audience, scope and revocation decisions are core's).

mod authorization_code;
pub mod cli_session;
mod client_credentials;
pub mod device;
pub mod introspect;
pub mod issue;
mod lookup;
pub mod pushed;
mod refresh;
pub mod revoke;
mod service_exchange;
mod user_tokens;
pub mod userinfo;
mod workload;

use portcullis_core::audit::{Action, Actor, Outcome, Reason};
use portcullis_core::secret::Secret;
use portcullis_store::OAuthClient;

use crate::audit::{EventDraft, RequestOrigin};
use crate::oauth::form::Params;
use crate::oauth::OAuthService;

pub use introspect::{introspect, Introspection};
pub use issue::{issue, issue_for_tenant, Grant, Issued};
pub use revoke::{revoke, Revocation};

/// The token named at the introspection and revocation endpoints (RFC 7662 and RFC 7009
/// section 2.1), as sent. A missing token is refused only after the caller authenticated, as
/// before any other check of the request.
#[derive(Debug)]
pub struct TokenQuery {
    pub token: Option<Secret<String>>,
    pub hint: Option<String>,
}

impl TokenQuery {
    pub fn from_params(params: &Params) -> Self {
        Self {
            token: params.get("token").map(|t| Secret::new(t.to_owned())),
            hint: params.get("token_type_hint").map(str::to_owned),
        }
    }
}

/// Records what a client did at an OAuth endpoint.
fn audit(
    svc: &OAuthService,
    client: &OAuthClient,
    action: Action,
    outcome: Outcome,
    reason: Option<Reason>,
    target: Option<String>,
    origin: &RequestOrigin,
) {
    svc.audit.record(
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
