//! The device authorization grant (RFC 8628): the device authorization endpoint ([`authorize`]),
//! the verification page's lookup and decision ([`pending`], [`decide`]) and the token
//! endpoint's `urn:ietf:params:oauth:grant-type:device_code` grant ([`issue`]).
//!
//! Everything lives in the store under SHA-256 digests of the device and user codes, and every
//! state change is a compare-and-swap there, so a device may poll any node and a person may
//! approve on any other. What a poll gets is core's decision (`portcullis_core::device`).
//!
//! This module must never store a code in clear, issue tokens twice for one device code, issue
//! for a request nobody approved or that expired, or let a poll that came too fast go unslowed.
//! Polls still pending are not audited (a device polls every few seconds; the log would fill
//! with them and feed the failure detectors); every other refusal and every issuance is.

use portcullis_core::audit::{Action, Actor, Outcome, Reason};
use portcullis_core::client::ClientId;
use portcullis_core::device::{
    decide_poll, device_code_from_random, digest, requested_scope, PollDecision, PollFacts,
    UserCode, DEVICE_CODE_LIFETIME, INITIAL_INTERVAL,
};
use portcullis_core::oauth::GrantType;
use portcullis_core::refresh::FamilyId;
use portcullis_core::secret::Secret;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_core::user_token::{decide_device_grant, SignInFacts};
use portcullis_store::{DeviceAuthorizationRecord, DeviceDecision, SessionRecord, StoreError};
use rand::rngs::OsRng;
use rand::RngCore as _;

use super::issue::{Binding, Issued};
use super::user_tokens::{binds_refresh_tokens, mint, require_active_user, UserGrant};
use crate::audit::{EventDraft, RequestOrigin};
use crate::client_auth::{authenticate_app, AuthenticatedClient};
use crate::oauth::error::{OAuthError, Refusal};
use crate::oauth::form::{Params, Presented};
use crate::oauth::OAuthService;
use crate::sign_in::NewFamily;

/// The device authorization endpoint (RFC 8628 section 3.1).
pub const DEVICE_AUTHORIZATION_PATH: &str = "/oauth2/device_authorization";
/// The verification page (RFC 8628 section 3.3), served by the sign-in pages.
pub const VERIFICATION_PATH: &str = "/device";

/// RFC 8628 section 3.2's answer.
#[derive(Debug)]
pub struct DeviceAuthorization {
    pub device_code: Secret<String>,
    /// As shown to people: `XXXX-XXXX`.
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: u64,
    pub interval: u64,
}

/// What the token request of this grant presents.
#[derive(Debug)]
pub struct DeviceGrant {
    pub device_code: Option<Secret<String>>,
    pub targets: Vec<String>,
}

/// `POST /oauth2/device_authorization`: authenticates the client (a public client by its
/// `client_id`), checks it may use the grant and the scope it asks for, and stores a new
/// request under the digests of a fresh device code and user code.
pub async fn authorize(
    svc: &OAuthService,
    params: &Params,
    presented: Presented,
    origin: &RequestOrigin,
) -> Result<DeviceAuthorization, OAuthError> {
    let authenticated = authenticate_app(svc, presented, origin).await?;
    let client = authenticated.client();
    let audit = |outcome: Outcome, reason: Option<Reason>| {
        super::audit(
            svc,
            client,
            Action::OAuthDeviceAuthorize,
            outcome,
            reason,
            None,
            origin,
        );
    };
    let (policy, client_id) = authenticated.facts.policy_and_id()?;
    let scope = requested_scope(policy, params.get("scope")).map_err(|e| {
        let e = OAuthError::from(e);
        audit(Outcome::Denied, Some(Reason::of(&e.reason)));
        e
    })?;
    let now = svc.clock.now();
    // A user code collides with a live one about once in 25 million requests; try again then.
    for _ in 0..3 {
        let mut random = [0u8; 32];
        OsRng.fill_bytes(&mut random);
        let device_code = device_code_from_random(random);
        let user_code = UserCode::generate(&mut OsRng);
        let record = DeviceAuthorizationRecord {
            device_digest: digest(&device_code).to_vec(),
            user_code_digest: digest(user_code.canonical()).to_vec(),
            tenant: client.tenant.clone(),
            client_id: client_id.clone(),
            scope: scope.to_vec(),
            status: portcullis_core::device::DeviceStatus::Pending,
            created_at: now,
            expires_at: now.saturating_add(DEVICE_CODE_LIFETIME),
            interval_secs: INITIAL_INTERVAL.as_secs(),
            last_polled_at: None,
            user_id: None,
            sid: None,
            auth_time: None,
            decided_at: None,
        };
        match svc.store.insert_device_authorization(&record).await {
            Ok(()) => {}
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(OAuthError::internal(e)),
        }
        audit(Outcome::Success, None);
        let verification_uri = format!("{}{VERIFICATION_PATH}", svc.oauth.issuer);
        let shown = user_code.display();
        return Ok(DeviceAuthorization {
            device_code: Secret::new(device_code),
            verification_uri_complete: format!("{verification_uri}?user_code={shown}"),
            verification_uri,
            user_code: shown,
            expires_in: DEVICE_CODE_LIFETIME.as_secs(),
            interval: INITIAL_INTERVAL.as_secs(),
        });
    }
    Err(OAuthError::internal("no free user code after three tries"))
}

/// A pending request as the verification page shows it.
#[derive(Debug, Clone)]
pub struct PendingDevice {
    pub tenant: TenantId,
    pub client_id: String,
    pub scope: Vec<String>,
    /// The canonical user code's digest: what [`decide`] takes.
    pub user_code_digest: Vec<u8>,
}

/// The pending, unexpired request a person's typed user code names, if any. A code that is not
/// shaped like one is `None` without a lookup.
pub async fn pending(
    store: &dyn portcullis_store::Store,
    typed: &str,
    now: Timestamp,
) -> Result<Option<PendingDevice>, StoreError> {
    let Some(code) = UserCode::parse(typed) else {
        return Ok(None);
    };
    let found = store
        .find_pending_device_authorization(&digest(code.canonical()), now)
        .await?;
    Ok(found.map(|r| PendingDevice {
        tenant: r.tenant,
        client_id: r.client_id.to_string(),
        scope: r.scope,
        user_code_digest: r.user_code_digest,
    }))
}

/// Records a signed-in person's approval or denial of `device`: `false` if it was decided
/// meanwhile (another tab, another node) or expired. Audited either way.
pub async fn decide(
    svc: &OAuthService,
    device: &PendingDevice,
    session: &SessionRecord,
    approve: bool,
    origin: &RequestOrigin,
) -> Result<bool, StoreError> {
    let taken = svc
        .store
        .decide_device_authorization(
            &device.user_code_digest,
            &DeviceDecision {
                approve,
                user_id: session.user_id.clone(),
                sid: session.id.clone(),
                auth_time: session.auth_time,
                at: svc.clock.now(),
            },
        )
        .await?;
    svc.audit.record(
        EventDraft {
            tenant: device.tenant.clone(),
            // The person is named as the target; sessions have no actor kind of their own.
            actor: Actor::anonymous(),
            credential_id: Some(device.client_id.clone()),
            action: Action::OAuthDeviceDecide,
            outcome: if taken && approve {
                Outcome::Success
            } else {
                Outcome::Denied
            },
            reason: Some(Reason::new(match (taken, approve) {
                (true, true) => "approved",
                (true, false) => "denied",
                (false, _) => "already_decided_or_expired",
            })),
            target: Some(session.user_id.to_string()),
        },
        origin,
    );
    Ok(taken)
}

/// The token endpoint's device code grant: judges the poll (core), records it, and on an
/// approved request uses the device code up and issues, once.
pub(super) async fn issue(
    svc: &OAuthService,
    authenticated: &AuthenticatedClient,
    request: DeviceGrant,
    binding: &Binding,
    origin: &RequestOrigin,
) -> Result<Issued, OAuthError> {
    let grant = UserGrant::start(svc, authenticated, GrantType::DeviceCode, origin)?;
    let (client, client_id, policy) = (grant.client, &grant.client_id, grant.policy);
    let refuse = |e: OAuthError| grant.refuse(e);
    let code = request
        .device_code
        .ok_or(Refusal::GrantRequest("device_code is required"))
        .map_err(|r| refuse(r.into()))?;
    let device_digest = digest(code.expose());
    let record = svc
        .store
        .get_device_authorization(&device_digest)
        .await
        .map_err(OAuthError::internal)?
        .filter(|r| r.client_id == *client_id && r.tenant == client.tenant)
        .ok_or_else(|| refuse(Refusal::InvalidGrant("device_code_unknown").into()))?;
    let now = svc.clock.now();
    let facts = PollFacts {
        status: record.status,
        expires_at: record.expires_at,
        interval_secs: record.interval_secs,
        last_polled_at: record.last_polled_at,
    };
    match decide_poll(&facts, now) {
        PollDecision::Pending => {
            let recorded = svc
                .store
                .record_device_poll(
                    &device_digest,
                    record.last_polled_at,
                    now,
                    record.interval_secs,
                )
                .await
                .map_err(OAuthError::internal)?;
            // Another poll was recorded in between: this one came too fast.
            Err(if recorded {
                Refusal::DevicePending.into()
            } else {
                Refusal::DeviceSlowDown.into()
            })
        }
        PollDecision::SlowDown { new_interval_secs } => {
            // Lost to a concurrent poll: that one is recorded, this one still slows down.
            svc.store
                .record_device_poll(
                    &device_digest,
                    record.last_polled_at,
                    now,
                    new_interval_secs,
                )
                .await
                .map_err(OAuthError::internal)?;
            Err(Refusal::DeviceSlowDown.into())
        }
        PollDecision::Expired => Err(refuse(Refusal::DeviceExpired.into())),
        PollDecision::Denied => Err(refuse(Refusal::DeviceDenied.into())),
        PollDecision::AlreadyUsed => Err(refuse(Refusal::InvalidGrant("device_code_used").into())),
        PollDecision::Issue => {
            let issued = issue_approved(
                svc,
                client,
                client_id,
                policy,
                &record,
                &request.targets,
                binding,
            )
            .await
            .map_err(refuse)?;
            svc.oauth.metrics.issued(GrantType::DeviceCode);
            super::audit(
                svc,
                client,
                Action::OAuthTokenIssue,
                Outcome::Success,
                None,
                None,
                origin,
            );
            Ok(issued)
        }
    }
}

async fn issue_approved(
    svc: &OAuthService,
    client: &portcullis_store::OAuthClient,
    client_id: &ClientId,
    policy: &portcullis_core::oauth::ClientPolicy,
    record: &DeviceAuthorizationRecord,
    targets: &[String],
    binding: &Binding,
) -> Result<Issued, OAuthError> {
    let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
    let decision = decide_device_grant(policy, &record.scope, &targets, svc.oauth.lifetimes)?;
    let user_id = record
        .user_id
        .as_ref()
        .ok_or_else(|| OAuthError::internal("approved device authorization without a user"))?;
    require_active_user(svc, &record.tenant, user_id).await?;
    let now = svc.clock.now();
    // Single use, whichever node the device polls: exactly one poll gets here.
    if !svc
        .store
        .use_device_authorization(&record.device_digest, now)
        .await
        .map_err(OAuthError::internal)?
    {
        return Err(Refusal::InvalidGrant("device_code_used").into());
    }
    let auth_time = record.auth_time.unwrap_or(now);
    let amr = vec!["pwd".to_owned()];
    // The device's tokens do not end with the browser session that approved them: the person
    // signs the device out with `portcullis logout` (or an admin revokes the family).
    let family = if decision.refresh_token {
        Some(
            svc.sign_in
                .start_family(NewFamily {
                    tenant: record.tenant.clone(),
                    client_id: client_id.clone(),
                    user_id: user_id.clone(),
                    sid: None,
                    scope: decision.scopes.to_vec(),
                    auth_time,
                    acr: None,
                    amr: amr.clone(),
                    dpop_jkt: binding
                        .dpop_jkt
                        .as_ref()
                        .filter(|_| binds_refresh_tokens(client))
                        .map(|t| t.as_str().to_owned()),
                    cert_x5t: binding.x5t_s256.as_ref().map(|t| t.as_str().to_owned()),
                })
                .await?,
        )
    } else {
        None
    };
    let family_id = family.as_ref().map(|f| f.family.id.clone());
    let facts = SignInFacts {
        tenant: &record.tenant,
        user_id: user_id.as_str(),
        sid: None,
        auth_time,
        acr: None,
        amr: &amr,
        family: family_id.as_ref().map(FamilyId::as_str),
    };
    let minted = mint(svc, client, &decision, &facts, None, binding, now)?;
    Ok(Issued {
        access_token: minted.access_token,
        token_type: binding.token_type(),
        expires_in: decision.lifetime.as_secs(),
        scope: minted.scope,
        id_token: minted.id_token,
        refresh_token: family.map(|f| Secret::new(f.token.expose().to_owned())),
        issued_token_type: None,
    })
}
