//! Client authentication at the OAuth endpoints, with failures throttled per source and per
//! (client id, source) (`throttle.rs`): a failing source is slowed, a client is never locked out
//! by failures naming it from elsewhere.
//!
//! Every failure (unknown client, wrong or expired secret, disabled client or tenant, wrong
//! method) is the same `invalid_client` answer; the reason goes to the audit log. An unknown
//! client id costs the same digest comparison as a known one.
//!
//! At the introspection endpoint a resource server may authenticate instead of a client, with
//! its own secret and its `rs_...` id as `client_id`; it goes through the same throttle, the
//! same constant-time comparison and the same audit trail.
//!
//! This module must never tell a caller which check failed (only the audit log knows) and never
//! compare a secret other than in constant time.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::audit::{Action, Actor, Outcome, Reason};
use portcullis_core::credential::{Credential, CredentialKind};
use portcullis_core::oauth::AuthMethod;
use portcullis_core::secret::constant_time_eq;
use portcullis_core::tenant::{TenantId, TenantStatus};
use portcullis_core::time::Timestamp;
use portcullis_store::{ClientStatus, OAuthClient};

use portcullis_core::secret::Secret;

use crate::audit::{EventDraft, RequestOrigin};
use crate::oauth::directory::{ClientFacts, ResourceServerCredential, SecretFacts};
use crate::oauth::error::OAuthError;
use crate::oauth::form::{Presented, Proof};
use crate::state::AppState;

/// How stale `last_used_at` may get before a request refreshes it.
const LAST_USED_GRANULARITY: Duration = Duration::from_secs(30);
/// Longest client id looked up; anything longer cannot exist.
const MAX_CLIENT_ID_LEN: usize = 64;
/// Resource-server ids (`rs_...`) authenticate as resource servers at introspection.
pub const RESOURCE_SERVER_ID_PREFIX: &str = "rs_";

/// A client that proved its identity, with the stored facts it was checked against.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub facts: Arc<ClientFacts>,
}

impl AuthenticatedClient {
    pub fn client(&self) -> &OAuthClient {
        &self.facts.client
    }
}

/// One authentication attempt: throttled before any lookup, and every refusal counted and
/// audited the same way whoever the caller claims to be. The throttle's source is the client
/// address the HTTP edge resolved (`extract::origin`).
struct Attempt<'a> {
    state: &'a AppState,
    origin: &'a RequestOrigin,
    id: &'a str,
    now: Timestamp,
}

impl<'a> Attempt<'a> {
    fn start(
        state: &'a AppState,
        origin: &'a RequestOrigin,
        id: &'a str,
    ) -> Result<Self, OAuthError> {
        let now = state.clock.now();
        let attempt = Self {
            state,
            origin,
            id,
            now,
        };
        if let Some(secs) = state.oauth.throttle.blocked(id, attempt.ip(), now) {
            audit_failure(
                state,
                None,
                id,
                "throttled",
                origin,
                Action::OAuthClientAuthThrottled,
            );
            return Err(OAuthError::throttled(secs));
        }
        Ok(attempt)
    }

    fn ip(&self) -> Option<IpAddr> {
        self.origin.client_ip
    }

    fn fail(&self, tenant: Option<TenantId>, reason: &str) -> OAuthError {
        self.state
            .oauth
            .throttle
            .record_failure(self.id, self.ip(), self.now);
        audit_failure(
            self.state,
            tenant,
            self.id,
            reason,
            self.origin,
            Action::OAuthClientAuth,
        );
        OAuthError::invalid_client(reason.to_owned())
    }

    /// Refuses the caller unless its tenant is active.
    async fn require_active_tenant(&self, tenant: &TenantId) -> Result<(), OAuthError> {
        let status = self
            .state
            .oauth
            .directory
            .tenant_status(self.state.store.as_ref(), tenant, self.now)
            .await?;
        if status == Some(TenantStatus::Active) {
            Ok(())
        } else {
            Err(self.fail(Some(tenant.clone()), "tenant_disabled"))
        }
    }

    /// Writes a use off the request path: last-used is informational and must not slow
    /// issuance.
    fn record_use<F, Fut>(&self, write: F)
    where
        F: FnOnce(Arc<dyn portcullis_store::Store>, Timestamp) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = portcullis_store::Result<()>> + Send,
    {
        let store = self.state.store.clone();
        let now = self.now;
        tokio::spawn(async move {
            if let Err(e) = write(store, now).await {
                tracing::warn!(error = %e, "could not record a credential's use");
            }
        });
    }
}

/// Why a presented secret does not authenticate its owner.
fn check_secret(
    secrets: Option<&[SecretFacts]>,
    presented: &Secret<String>,
    now: Timestamp,
) -> Result<String, &'static str> {
    // The presented secret's digest is computed whatever happens next, so unknown owners and
    // malformed secrets cost the same as known ones.
    let digest = portcullis_core::credential::digest(presented.expose());
    let format_ok = Credential::parse(presented.expose())
        .map(|c| c.kind() == CredentialKind::ClientSecret)
        .unwrap_or(false);
    let Some(secrets) = secrets else {
        let _ = constant_time_eq(&digest, &[0u8; 32]);
        return Err("client_unknown");
    };
    if !format_ok {
        return Err("client_secret_malformed");
    }
    // Every digest is compared, whichever matches, so timing does not tell which.
    let mut matched: Option<(&str, bool)> = None;
    for s in secrets {
        if constant_time_eq(&s.digest, &digest) {
            matched = Some((&s.id, s.expires_at.is_none_or(|end| end > now)));
        }
    }
    match matched {
        None => Err("client_secret_mismatch"),
        Some((_, false)) => Err("client_secret_expired"),
        Some((id, true)) => Ok(id.to_owned()),
    }
}

/// Authenticates the OAuth client of a request (token and revocation endpoints).
pub async fn authenticate(
    state: &AppState,
    presented: Presented,
    origin: &RequestOrigin,
) -> Result<AuthenticatedClient, OAuthError> {
    let attempt = Attempt::start(state, origin, &presented.client_id)?;
    let now = attempt.now;
    let client = if presented.client_id.len() <= MAX_CLIENT_ID_LEN {
        state
            .oauth
            .directory
            .client(state.store.as_ref(), &presented.client_id, now)
            .await?
    } else {
        None
    };
    let tenant = || client.as_ref().map(|f| f.client.tenant.clone());
    let secret_id = match &presented.proof {
        Proof::None => return Err(attempt.fail(None, "no_client_secret")),
        Proof::Secret(secret) => {
            let secrets = client.as_ref().map(|f| f.secrets.as_slice());
            Some(check_secret(secrets, secret, now).map_err(|r| attempt.fail(tenant(), r))?)
        }
        Proof::Assertion(jwt) => {
            let Some(facts) = &client else {
                return Err(attempt.fail(None, "client_unknown"));
            };
            if let Err(reason) = crate::oauth::assertion::verify(
                &state.oauth,
                state.store.as_ref(),
                facts,
                jwt.expose(),
                now,
            )
            .await?
            {
                return Err(attempt.fail(tenant(), reason));
            }
            None
        }
    };
    let Some(facts) = client else {
        return Err(attempt.fail(None, "client_unknown"));
    };
    let tenant = facts.client.tenant.clone();
    let expected = AuthMethod::parse(&facts.client.auth_method)
        .map_err(|_| OAuthError::internal("stored client has an unknown auth method"))?;
    if presented.method.auth_method() != expected {
        return Err(attempt.fail(Some(tenant), "client_auth_method_mismatch"));
    }
    if facts.client.status != ClientStatus::Active {
        return Err(attempt.fail(Some(tenant), "client_disabled"));
    }
    attempt.require_active_tenant(&tenant).await?;
    if facts.note_use(now, LAST_USED_GRANULARITY) {
        let id = facts.client.id.clone();
        attempt.record_use(move |store, now| async move {
            store.touch_client(&id, secret_id.as_deref(), now).await
        });
    }
    Ok(AuthenticatedClient { facts })
}

/// Who may call the introspection endpoint (RFC 7662 section 2.1).
#[derive(Debug, Clone)]
pub enum Introspector {
    /// An OAuth client; allowed only with the introspection permission.
    Client(AuthenticatedClient),
    /// A resource server, with its own credential (`client_id` is its `rs_...` id).
    ResourceServer(Arc<ResourceServerCredential>),
}

/// Authenticates the caller of the introspection endpoint: a resource server when the presented
/// id is a resource server's, an OAuth client otherwise. Resource servers authenticate with a
/// secret only (`client_secret_basic` or `client_secret_post`).
pub async fn authenticate_introspector(
    state: &AppState,
    presented: Presented,
    origin: &RequestOrigin,
) -> Result<Introspector, OAuthError> {
    if !presented.client_id.starts_with(RESOURCE_SERVER_ID_PREFIX) {
        return authenticate(state, presented, origin)
            .await
            .map(Introspector::Client);
    }
    let attempt = Attempt::start(state, origin, &presented.client_id)?;
    let now = attempt.now;
    let server = if presented.client_id.len() <= MAX_CLIENT_ID_LEN {
        state
            .oauth
            .directory
            .resource_server_credential(state.store.as_ref(), &presented.client_id, now)
            .await?
    } else {
        None
    };
    let tenant = || server.as_ref().map(|f| f.server.tenant.clone());
    let Proof::Secret(secret) = &presented.proof else {
        return Err(attempt.fail(tenant(), "resource_server_needs_a_secret"));
    };
    let secrets = server.as_ref().map(|f| f.secrets.as_slice());
    let secret_id = check_secret(secrets, secret, now).map_err(|r| attempt.fail(tenant(), r))?;
    let Some(server) = server else {
        return Err(attempt.fail(None, "client_unknown"));
    };
    attempt.require_active_tenant(&server.server.tenant).await?;
    if server.note_use(now, LAST_USED_GRANULARITY) {
        attempt.record_use(move |store, now| async move {
            store.touch_resource_server_secret(&secret_id, now).await
        });
    }
    Ok(Introspector::ResourceServer(server))
}

fn audit_failure(
    state: &AppState,
    tenant: Option<TenantId>,
    client_id: &str,
    reason: &str,
    origin: &RequestOrigin,
    action: Action,
) {
    // An id that matched no client is recorded only if it looks like one of ours: the audit
    // log must not become a store for whatever an attacker types.
    let credential_id = (client_id.len() <= MAX_CLIENT_ID_LEN
        && client_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    .then(|| client_id.to_owned());
    state.audit.record(
        EventDraft {
            tenant: tenant.unwrap_or_else(TenantId::system),
            actor: Actor::anonymous(),
            credential_id,
            action,
            outcome: Outcome::Failure,
            reason: Some(Reason::of(&reason)),
            target: None,
        },
        origin,
    );
}
