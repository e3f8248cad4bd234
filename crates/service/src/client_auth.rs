//! Client authentication at the OAuth endpoints, with failures throttled per source and per
//! (client id, source) (`throttle.rs`): a failing source is slowed, a client is never locked out
//! by failures naming it from elsewhere.
//!
//! What a refusal may tell the caller is ruled in `oauth::error` (one table): a fault in what the
//! caller sent (no secret, a secret not shaped like ours, an assertion that is malformed,
//! expired or too long-lived) is judged before or regardless of any lookup and its description
//! says what is wrong; every failure decided against stored state (unknown client, wrong or
//! expired secret, disabled client or tenant, wrong method, unknown key, bad signature, replay)
//! is the one `Refusal::NotAuthenticated` answer, and only the audit log knows which. An unknown
//! client id costs the same digest comparison as a known one.
//!
//! A `workload_identity_jwt` client sends an external workload token (a CI job's OIDC token, a
//! pod's service-account token) as its `client_assertion` (RFC 7523 section 2.2). Which kind of
//! assertion was sent is read from the assertion alone (core's `is_external_assertion`: its
//! `iss` is a URL, not the client id); the token is judged by the one trust-rule evaluation of
//! `crate::federation::exchange`, with only the rules bound to that client, and its `jti` is
//! spent as an exchanged token's is. Only the client-credentials grant takes it
//! ([`authenticate_for_client_credentials`]); every refusal is the one `NotAuthenticated`
//! answer, the evaluation's reason (which check, rule, condition) in the audit log.
//!
//! At the introspection endpoint a resource server may authenticate instead of a client, with
//! its own secret and its `rs_...` id as `client_id`; it goes through the same throttle, the
//! same constant-time comparison and the same audit trail.
//!
//! This module must never tell a caller which check against stored state failed (only the audit
//! log knows), never let a lookup's result decide between two request-only answers, and never
//! compare a secret other than in constant time.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::audit::{Action, Actor, Outcome, Reason};
use portcullis_core::confirmation::{ClientCertificate, Thumbprint};
use portcullis_core::credential::{Credential, CredentialKind};
use portcullis_core::oauth::AuthMethod;
use portcullis_core::secret::constant_time_eq;
use portcullis_core::tenant::{TenantId, TenantStatus};
use portcullis_core::time::Timestamp;
use portcullis_store::{ClientStatus, OAuthClient};

use portcullis_core::secret::Secret;

use portcullis_core::federation::rule::Use;
use portcullis_core::oauth::{is_external_assertion, WORKLOAD_IDENTITY_JWT};

use crate::audit::{EventDraft, RequestOrigin};
use crate::federation::exchange::{self, Admitted, Refused};
use crate::metrics::AuthFailure;
use crate::mtls::{self, MtlsFailure};
use crate::oauth::assertion;
use crate::oauth::directory::{ClientFacts, ResourceServerCredential, SecretFacts};
use crate::oauth::error::{AuthCause, OAuthError, Refusal};
use crate::oauth::form::{unverified_claim, Presented, PresentedMethod, Proof};
use crate::oauth::OAuthService;

/// How stale `last_used_at` may get before a request refreshes it.
const LAST_USED_GRANULARITY: Duration = Duration::from_secs(30);
/// Longest client id looked up; anything longer cannot exist.
use portcullis_core::client::MAX_CLIENT_ID_LEN;
/// Resource-server ids (`rs_...`) authenticate as resource servers at introspection.
pub const RESOURCE_SERVER_ID_PREFIX: &str = "rs_";

/// A client that proved its identity, with the stored facts it was checked against.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub facts: Arc<ClientFacts>,
    /// The client certificate the request came with, whatever the method: the one an mTLS
    /// client authenticated with, or one another client presented (bound to its tokens only
    /// if it registered `tls_client_certificate_bound_access_tokens`).
    pub certificate: Option<ClientCertificate>,
    /// For a `workload_identity_jwt` client: the external identity its assertion proved and
    /// the trust rule that admitted it, which also bounds what the client is issued.
    pub workload: Option<Arc<Admitted>>,
}

impl AuthenticatedClient {
    pub fn client(&self) -> &OAuthClient {
        &self.facts.client
    }

    /// The certificate this client's tokens are bound to (RFC 8705 section 3): always the one
    /// an mTLS client authenticated with; for another client, the one it presented if it
    /// registered for certificate-bound tokens; else none.
    pub fn bound_certificate(&self) -> Option<&Thumbprint> {
        let client = self.client();
        let mtls = AuthMethod::parse(&client.auth_method).is_ok_and(AuthMethod::is_mtls);
        if mtls || client.certificate_bound_tokens {
            self.certificate.as_ref().map(ClientCertificate::thumbprint)
        } else {
            None
        }
    }
}

/// One authentication attempt: throttled before any lookup, and every refusal counted and
/// audited the same way whoever the caller claims to be. The throttle's source is the client
/// address the HTTP edge resolved (`extract::origin`).
struct Attempt<'a> {
    state: &'a OAuthService,
    origin: &'a RequestOrigin,
    id: &'a str,
    method: PresentedMethod,
    now: Timestamp,
}

impl<'a> Attempt<'a> {
    fn start(
        state: &'a OAuthService,
        origin: &'a RequestOrigin,
        presented: &'a Presented,
    ) -> Result<Self, OAuthError> {
        let now = state.clock.now();
        let attempt = Self {
            state,
            origin,
            id: &presented.client_id,
            method: presented.method,
            now,
        };
        if let Some(secs) = state.oauth.throttle.blocked(attempt.id, attempt.ip(), now) {
            state.oauth.metrics.auth_failure(AuthFailure::Throttled);
            audit_failure(
                state,
                None,
                attempt.id,
                "throttled",
                origin,
                Action::OAuthClientAuthThrottled,
            );
            return Err(OAuthError::throttled(secs).for_method(attempt.method));
        }
        Ok(attempt)
    }

    fn ip(&self) -> Option<IpAddr> {
        self.origin.client_ip
    }

    fn fail(&self, tenant: Option<TenantId>, refusal: Refusal) -> OAuthError {
        self.fail_because(tenant, refusal, None)
    }

    /// [`Self::fail`], with the audited reason given rather than the refusal's own (the trust
    /// rule evaluation's: which check, rule and condition failed). The caller's answer is the
    /// refusal's, whatever the reason.
    fn fail_because(
        &self,
        tenant: Option<TenantId>,
        refusal: Refusal,
        reason: Option<String>,
    ) -> OAuthError {
        let (mut error, class) = refusal_answer(refusal, self.method);
        if let Some(reason) = reason {
            error.reason = reason;
        }
        self.state.oauth.metrics.auth_failure(class);
        self.state
            .oauth
            .throttle
            .record_failure(self.id, self.ip(), self.now);
        audit_failure(
            self.state,
            tenant,
            self.id,
            &error.reason,
            self.origin,
            Action::OAuthClientAuth,
        );
        error
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
            Err(self.fail(
                Some(tenant.clone()),
                Refusal::NotAuthenticated(AuthCause::TenantDisabled),
            ))
        }
    }

    /// Records a use of a credential (one write per [`LAST_USED_GRANULARITY`], off the request
    /// path: last-used is informational and must not slow issuance).
    fn record_use<F, Fut>(&self, mark: &crate::use_mark::UseMark, write: F)
    where
        F: FnOnce(Arc<dyn portcullis_store::Store>, Timestamp) -> Fut,
        Fut: std::future::Future<Output = portcullis_store::Result<()>> + Send + 'static,
    {
        mark.record(self.now, LAST_USED_GRANULARITY, || {
            write(self.state.store.clone(), self.now)
        });
    }
}

/// The one place a client-authentication refusal becomes what the caller and the metrics see:
/// the answer, with the `WWW-Authenticate: Basic` challenge only for a caller that used the
/// `Authorization` header (RFC 6749 section 5.2: "matching the authentication scheme used by
/// the client"; one that authenticated in the body is not told to try Basic), and the metrics
/// class (a fixed vocabulary: labels never carry what a caller chose), read from the refusal's
/// typed cause. The precise reason stays in the audit log.
fn refusal_answer(refusal: Refusal, method: PresentedMethod) -> (OAuthError, AuthFailure) {
    let class = match refusal {
        Refusal::Throttled => AuthFailure::Throttled,
        Refusal::NotAuthenticated(cause) => match cause {
            AuthCause::UnknownClient => AuthFailure::UnknownClient,
            AuthCause::ClientDisabled | AuthCause::TenantDisabled => AuthFailure::Disabled,
            AuthCause::MethodMismatch => AuthFailure::MethodMismatch,
            AuthCause::SecretMismatch | AuthCause::SecretExpired => AuthFailure::BadSecret,
            AuthCause::Assertion(_) | AuthCause::Workload => AuthFailure::BadAssertion,
            AuthCause::Certificate(_) => AuthFailure::BadCertificate,
        },
        Refusal::Assertion(_) => AuthFailure::BadAssertion,
        Refusal::SecretMalformed => AuthFailure::BadSecret,
        Refusal::ResourceServerNeedsSecret => AuthFailure::MethodMismatch,
        _ => AuthFailure::NoCredentials,
    };
    (OAuthError::refuse(refusal).for_method(method), class)
}

/// Why a presented secret does not authenticate its owner. A malformed secret is refused
/// whether or not the owner exists: that answer depends on the secret alone.
fn check_secret(
    secrets: Option<&[SecretFacts]>,
    presented: &Secret<String>,
    now: Timestamp,
) -> Result<String, Refusal> {
    // The presented secret's digest is computed whatever happens next, so unknown owners and
    // malformed secrets cost the same as known ones.
    let digest = portcullis_core::credential::digest(presented.expose());
    let format_ok = Credential::parse(presented.expose())
        .map(|c| c.kind() == CredentialKind::ClientSecret)
        .unwrap_or(false);
    if !format_ok {
        return Err(Refusal::SecretMalformed);
    }
    let Some(secrets) = secrets else {
        let _ = constant_time_eq(&digest, &[0u8; 32]);
        return Err(Refusal::NotAuthenticated(AuthCause::UnknownClient));
    };
    // Every digest is compared, whichever matches, so timing does not tell which.
    let mut matched: Option<(&str, bool)> = None;
    for s in secrets {
        if constant_time_eq(&s.digest, &digest) {
            matched = Some((&s.id, s.expires_at.is_none_or(|end| end > now)));
        }
    }
    match matched {
        None => Err(Refusal::NotAuthenticated(AuthCause::SecretMismatch)),
        Some((_, false)) => Err(Refusal::NotAuthenticated(AuthCause::SecretExpired)),
        Some((id, true)) => Ok(id.to_owned()),
    }
}

/// Authenticates the OAuth client of a request (token and revocation endpoints). Every refusal
/// is answered, counted and audited here, challenge included: callers pass it on as it is.
pub async fn authenticate(
    state: &OAuthService,
    presented: Presented,
    origin: &RequestOrigin,
) -> Result<AuthenticatedClient, OAuthError> {
    authenticate_with(state, presented, origin, false, false).await
}

/// [`authenticate`] for the client-credentials grant, the one place a `workload_identity_jwt`
/// client may authenticate: its `client_assertion` is an external workload token, admitted by
/// a trust rule of its tenant bound to it (the one evaluation of `crate::federation::exchange`,
/// jti spent as for an exchange). Everywhere else such a client is refused (method mismatch),
/// as discovery says: the method is listed for the token endpoint only.
pub async fn authenticate_for_client_credentials(
    state: &OAuthService,
    presented: Presented,
    origin: &RequestOrigin,
) -> Result<AuthenticatedClient, OAuthError> {
    authenticate_with(state, presented, origin, false, true).await
}

/// [`authenticate`] for the user grants (`authorization_code`, `refresh_token`): a public
/// client (registered with method `none`) is identified by its `client_id` alone (RFC 6749
/// section 2.1; PKCE and the refresh token's binding to it are what protect it). A confidential
/// client must still prove itself as registered, and a public client presenting a credential is
/// refused (method mismatch).
pub async fn authenticate_app(
    state: &OAuthService,
    presented: Presented,
    origin: &RequestOrigin,
) -> Result<AuthenticatedClient, OAuthError> {
    authenticate_with(state, presented, origin, true, false).await
}

async fn authenticate_with(
    state: &OAuthService,
    presented: Presented,
    origin: &RequestOrigin,
    allow_public: bool,
    allow_workload: bool,
) -> Result<AuthenticatedClient, OAuthError> {
    let attempt = Attempt::start(state, origin, &presented)?;
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
    let is_public = |c: &Option<Arc<ClientFacts>>| {
        c.as_ref()
            .is_some_and(|f| f.client.auth_method == AuthMethod::None.as_str())
    };
    let public = allow_public && matches!(presented.proof, Proof::None) && is_public(&client);
    // RFC 8705 section 2: a client that sends only its id over a connection with a client
    // certificate authenticates with that certificate, by the method it registered.
    let mut by_certificate = None;
    let mut workload = None;
    let secret_id = match &presented.proof {
        Proof::None if public => None,
        Proof::None if presented.certificate.is_some() => {
            let (Some(facts), Some(certificate)) = (&client, &presented.certificate) else {
                return Err(attempt.fail(None, Refusal::NotAuthenticated(AuthCause::UnknownClient)));
            };
            let registered = AuthMethod::parse(&facts.client.auth_method)
                .ok()
                .filter(|m| m.is_mtls());
            let Some(method) = registered else {
                return Err(attempt.fail(
                    tenant(),
                    Refusal::NotAuthenticated(AuthCause::MethodMismatch),
                ));
            };
            if let Err(reason) = check_certificate(state, facts, certificate, method, now).await? {
                return Err(attempt.fail(
                    tenant(),
                    Refusal::NotAuthenticated(AuthCause::Certificate(reason)),
                ));
            }
            by_certificate = Some(method);
            None
        }
        Proof::None if allow_public && client.is_none() => {
            return Err(attempt.fail(None, Refusal::NotAuthenticated(AuthCause::UnknownClient)))
        }
        Proof::None => return Err(attempt.fail(tenant(), Refusal::NoSecret)),
        Proof::Secret(secret) => {
            let secrets = client.as_ref().map(|f| f.secrets.as_slice());
            Some(check_secret(secrets, secret, now).map_err(|r| attempt.fail(tenant(), r))?)
        }
        // An external workload token (its issuer a URL, not the client), told apart from the
        // assertion alone; judged by the trust rules bound to the client, every refusal the
        // one `invalid_client` answer, the evaluation's reason in the audit log.
        Proof::Assertion(jwt)
            if unverified_claim(jwt.expose(), "iss")
                .is_some_and(|iss| is_external_assertion(&iss, &presented.client_id)) =>
        {
            let Some(facts) = &client else {
                return Err(attempt.fail(None, Refusal::NotAuthenticated(AuthCause::UnknownClient)));
            };
            if !allow_workload || facts.client.auth_method != WORKLOAD_IDENTITY_JWT {
                return Err(attempt.fail(
                    tenant(),
                    Refusal::NotAuthenticated(AuthCause::MethodMismatch),
                ));
            }
            // Admission spends the job token's `jti`: never for a client or tenant that may
            // not authenticate anyway (the checks below repeat for every method).
            if facts.client.status != ClientStatus::Active {
                return Err(attempt.fail(
                    tenant(),
                    Refusal::NotAuthenticated(AuthCause::ClientDisabled),
                ));
            }
            attempt.require_active_tenant(&facts.client.tenant).await?;
            match admit_workload(state, facts, jwt.expose(), now).await? {
                Ok(admitted) => workload = Some(Arc::new(admitted)),
                Err(reason) => {
                    return Err(attempt.fail_because(
                        tenant(),
                        Refusal::NotAuthenticated(AuthCause::Workload),
                        Some(reason),
                    ))
                }
            }
            None
        }
        Proof::Assertion(jwt) => {
            // Judged from the assertion alone, known client or not.
            let checked =
                assertion::precheck(&state.oauth, jwt.expose(), &presented.client_id, now)
                    .map_err(|f| attempt.fail(tenant(), Refusal::Assertion(f)))?;
            let Some(facts) = &client else {
                return Err(attempt.fail(None, Refusal::NotAuthenticated(AuthCause::UnknownClient)));
            };
            if let Err(reason) =
                assertion::verify(&state.oauth, state.store.as_ref(), facts, &checked, now).await?
            {
                return Err(attempt.fail(
                    tenant(),
                    Refusal::NotAuthenticated(AuthCause::Assertion(reason)),
                ));
            }
            None
        }
    };
    let Some(facts) = client else {
        return Err(attempt.fail(None, Refusal::NotAuthenticated(AuthCause::UnknownClient)));
    };
    let tenant = facts.client.tenant.clone();
    let expected = AuthMethod::parse(&facts.client.auth_method)
        .map_err(|_| OAuthError::internal("stored client has an unknown auth method"))?;
    let presented_method = if public {
        AuthMethod::None
    } else if workload.is_some() {
        AuthMethod::WorkloadIdentityJwt
    } else if let Some(method) = by_certificate {
        method
    } else {
        presented.method.auth_method()
    };
    if presented_method != expected {
        return Err(attempt.fail(
            Some(tenant),
            Refusal::NotAuthenticated(AuthCause::MethodMismatch),
        ));
    }
    if facts.client.status != ClientStatus::Active {
        return Err(attempt.fail(
            Some(tenant),
            Refusal::NotAuthenticated(AuthCause::ClientDisabled),
        ));
    }
    attempt.require_active_tenant(&tenant).await?;
    attempt.record_use(&facts.last_use, |store, now| {
        let id = facts.client.id.clone();
        async move { store.touch_client(&id, secret_id.as_deref(), now).await }
    });
    Ok(AuthenticatedClient {
        facts,
        certificate: presented.certificate,
        workload,
    })
}

/// Judges an external workload token presented as `facts`' client assertion by its tenant's
/// trust rules bound to that client, then spends its `jti` (per issuer, as for an exchange).
/// The outer error is an internal failure; the inner one the audited reason to refuse.
async fn admit_workload(
    state: &OAuthService,
    facts: &ClientFacts,
    token: &str,
    now: Timestamp,
) -> Result<Result<Admitted, String>, OAuthError> {
    let client = &facts.client;
    let audiences = state.oauth.assertion_audiences();
    let req = exchange::Request {
        tenant: &client.tenant,
        purpose: Use::ClientAuthentication(&client.id),
        assertion_audiences: &audiences,
        subject_token: token,
        rule: None,
        scope: None,
        targets: &[],
        now,
        leeway: crate::keys::jwt::LEEWAY,
        tenant_cap: state.oauth.lifetimes.max,
        keys: Some(&state.oauth.issuer_keys),
        issuers: Some(&state.oauth.trusted_issuers),
    };
    let store = state.store.as_ref();
    let outcome = match exchange::admit(store, &req).await {
        Ok(admitted) => exchange::consume(store, &admitted, req.leeway, now)
            .await
            .map(|()| admitted),
        Err(e) => Err(e),
    };
    match outcome {
        Ok(admitted) => Ok(Ok(admitted)),
        Err(Refused::Grant(reason)) => Ok(Err(reason)),
        Err(Refused::Request(e)) => Ok(Err(format!("client_rule_grant_{}", e.code()))),
        Err(Refused::Store(e)) => Err(OAuthError::internal(e)),
    }
}

/// RFC 8705 section 2: whether `certificate` authenticates the client of `facts` by its
/// registered mTLS `method`. `tls_client_auth`: the chain leads to one of the tenant's CA sets
/// and the certificate carries the registered subject. `self_signed_tls_client_auth`: the
/// certificate's key is in the client's JWKS (inline or from its `jwks_uri`, as
/// `private_key_jwt` reads them). The outer error is an internal failure; the inner one the
/// audited reason to refuse.
async fn check_certificate(
    state: &OAuthService,
    facts: &ClientFacts,
    certificate: &ClientCertificate,
    method: AuthMethod,
    now: Timestamp,
) -> Result<Result<(), &'static str>, OAuthError> {
    let client = &facts.client;
    if method == AuthMethod::SelfSignedTlsClientAuth {
        // The same keys `private_key_jwt` reads: parsed once with the client's facts, or the
        // cached `jwks_uri` document (refetched only after its TTL).
        let keys = match (&client.jwks, &client.jwks_uri) {
            (Some(_), _) => match &facts.inline_jwks {
                Some(keys) => keys.clone(),
                None => return Ok(Err("client_jwks_invalid")),
            },
            (None, Some(uri)) => match state.oauth.remote_jwks.keys(uri, None, now).await {
                Ok(keys) => keys,
                Err(reason) => return Ok(Err(reason)),
            },
            (None, None) => return Ok(Err("client_has_no_keys")),
        };
        return Ok(mtls::self_signed_tls_client_auth(certificate.der(), &keys)
            .map_err(MtlsFailure::as_str));
    }
    // The registration and the tenant's CA sets, each read and parsed once and cached.
    let subject = match &facts.tls_subject {
        None => return Ok(Err("client_has_no_tls_subject")),
        Some(Err(_)) => return Ok(Err("client_tls_subject_invalid")),
        Some(Ok(subject)) => subject,
    };
    let anchors = state
        .oauth
        .directory
        .trust_anchors(state.store.as_ref(), &client.tenant, now)
        .await?;
    let now_secs = u64::try_from(now.as_secs()).unwrap_or(0);
    Ok(mtls::tls_client_auth_with(
        certificate.der(),
        certificate.intermediates(),
        &anchors,
        subject,
        now_secs,
    )
    .map_err(MtlsFailure::as_str))
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
    state: &OAuthService,
    presented: Presented,
    origin: &RequestOrigin,
) -> Result<Introspector, OAuthError> {
    if !presented.client_id.starts_with(RESOURCE_SERVER_ID_PREFIX) {
        return authenticate(state, presented, origin)
            .await
            .map(Introspector::Client);
    }
    let attempt = Attempt::start(state, origin, &presented)?;
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
        return Err(attempt.fail(tenant(), Refusal::ResourceServerNeedsSecret));
    };
    let secrets = server.as_ref().map(|f| f.secrets.as_slice());
    let secret_id = check_secret(secrets, secret, now).map_err(|r| attempt.fail(tenant(), r))?;
    let Some(server) = server else {
        return Err(attempt.fail(None, Refusal::NotAuthenticated(AuthCause::UnknownClient)));
    };
    attempt.require_active_tenant(&server.server.tenant).await?;
    attempt.record_use(&server.last_use, |store, now| async move {
        store.touch_resource_server_secret(&secret_id, now).await
    });
    Ok(Introspector::ResourceServer(server))
}

fn audit_failure(
    state: &OAuthService,
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
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::error::AssertionFault;

    /// The metrics class follows the refusal: a wrong secret never counts as an unknown client,
    /// and every stored-state reason lands in the class its name says.
    #[test]
    fn each_refusal_counts_in_its_failure_class() {
        use AuthFailure as F;
        for (refusal, class) in [
            (Refusal::Throttled, F::Throttled),
            (Refusal::NoCredentials, F::NoCredentials),
            (Refusal::NotBasic, F::NoCredentials),
            (Refusal::NoSecret, F::NoCredentials),
            (Refusal::SecretMalformed, F::BadSecret),
            (Refusal::ResourceServerNeedsSecret, F::MethodMismatch),
            (
                Refusal::Assertion(AssertionFault::Malformed),
                F::BadAssertion,
            ),
            (
                Refusal::NotAuthenticated(AuthCause::UnknownClient),
                F::UnknownClient,
            ),
            (
                Refusal::NotAuthenticated(AuthCause::SecretMismatch),
                F::BadSecret,
            ),
            (
                Refusal::NotAuthenticated(AuthCause::SecretExpired),
                F::BadSecret,
            ),
            (
                Refusal::NotAuthenticated(AuthCause::MethodMismatch),
                F::MethodMismatch,
            ),
            (
                Refusal::NotAuthenticated(AuthCause::ClientDisabled),
                F::Disabled,
            ),
            (
                Refusal::NotAuthenticated(AuthCause::TenantDisabled),
                F::Disabled,
            ),
            (
                Refusal::NotAuthenticated(AuthCause::Assertion("assertion_bad_signature")),
                F::BadAssertion,
            ),
            (
                Refusal::NotAuthenticated(AuthCause::Assertion("assertion_replayed")),
                F::BadAssertion,
            ),
        ] {
            assert_eq!(
                refusal_answer(refusal, PresentedMethod::Post).1,
                class,
                "{refusal:?}"
            );
        }
    }

    /// The Basic challenge is decided with the refusal, from how the caller presented its
    /// credentials: a 401 to a Basic caller carries it, one to a caller that authenticated in
    /// the body does not, whatever the cause.
    #[test]
    fn the_basic_challenge_follows_the_presented_method() {
        for refusal in [
            Refusal::NotAuthenticated(AuthCause::UnknownClient),
            Refusal::NotAuthenticated(AuthCause::Assertion("assertion_bad_signature")),
            Refusal::SecretMalformed,
            Refusal::NoSecret,
            Refusal::Assertion(AssertionFault::Malformed),
        ] {
            for (method, challenge) in [
                (PresentedMethod::Basic, true),
                (PresentedMethod::Post, false),
                (PresentedMethod::Assertion, false),
            ] {
                let (e, _) = refusal_answer(refusal, method);
                assert_eq!(e.status, http::StatusCode::UNAUTHORIZED);
                assert_eq!(e.basic_challenge, challenge, "{refusal:?} {method:?}");
            }
        }
    }
}
