//! Pushed authorization requests (RFC 9126): a client POSTs its authorization request to the
//! PAR endpoint, authenticated like at the token endpoint (a public client by `client_id`
//! alone), and gets a short-lived `request_uri` to send the browser with instead of the
//! parameters. The request is validated here by the same core rules as at the authorization
//! endpoint, and again when it is opened there ([`open`]); it is used up when a code is issued
//! ([`use_up`]). A DPoP proof sent with the push (RFC 9449 section 10.1) is checked like one at
//! the token endpoint and binds the code to its key (`dpop_jkt`).
//!
//! This module must never store a request core refused, keep the client's authentication
//! parameters, resolve a `request_uri` for another client than the one that pushed it, or
//! resolve one that expired or was used.

use portcullis_core::audit::{Action, Outcome, Reason};
use portcullis_core::authorize::pushed::{
    request_pairs, PushError, RequestUri, OPENED_LIFETIME, PUSHED_LIFETIME,
};
use portcullis_core::authorize::{AuthorizeError, AuthorizeParams};
use portcullis_core::tenant::{TenantId, TenantStatus};
use portcullis_core::time::Timestamp;
use portcullis_store::{PushedRequestRecord, Store, StoreError};
use rand::rngs::OsRng;
use rand::RngCore as _;

use crate::audit::RequestOrigin;
use crate::client_auth::authenticate_app;
use crate::oauth::directory::app_client;
use crate::oauth::dpop;
use crate::oauth::error::{OAuthError, Refusal};
use crate::oauth::form::{Params, Presented};
use crate::oauth::OAuthService;

/// RFC 9126 section 2.2's answer.
#[derive(Debug)]
pub struct Pushed {
    pub request_uri: String,
    pub expires_in: u64,
}

/// `POST /oauth2/par`: authenticates the client, validates its authorization request and stores
/// it. Refusals are audited; a refused request stores nothing.
pub async fn push(
    svc: &OAuthService,
    params: &Params,
    presented: Presented,
    proof: &dpop::Presented,
    origin: &RequestOrigin,
) -> Result<Pushed, OAuthError> {
    let authenticated = authenticate_app(svc, presented, origin).await?;
    let client = authenticated.client();
    // Every refusal after authentication is audited, with its reason (the refusal table's).
    let denied = |e: OAuthError| {
        super::audit(
            svc,
            client,
            Action::OAuthAuthorizationPush,
            Outcome::Denied,
            Some(Reason::of(&e.reason)),
            None,
            origin,
        );
        e
    };
    let refuse = |code: &'static str, reason: &'static str| {
        denied(OAuthError::refuse(Refusal::InvalidPushedRequest {
            code,
            reason,
        }))
    };
    let mut pairs = request_pairs(params.singles().map(|(k, v)| (k.to_owned(), v.to_owned())))
        .map_err(|e| match e {
            PushError::RequestUriPushed => refuse("invalid_request", "request_uri_pushed"),
            PushError::Repeated => refuse("invalid_request", "parameter_repeated"),
        })?;
    // `client_id` is an authorization request parameter (section 2.1); a client authenticating
    // with HTTP Basic may leave it out of the body, and it cannot differ from the one that
    // authenticated (the credential parsing refuses that).
    if !pairs.iter().any(|(k, _)| k == "client_id") {
        pairs.push(("client_id".to_owned(), client.id.clone()));
    }
    // RFC 9449 section 10.1: a proof sent with the pushed request binds the code it leads to to
    // the proof's key, as a `dpop_jkt` parameter would; sent together, they must name one key.
    if let Some(jkt) = dpop::check_pushed_request(svc, proof)
        .await
        .map_err(denied)?
    {
        match pairs.iter().find(|(k, _)| k == "dpop_jkt") {
            Some((_, named)) if named != jkt.as_str() => {
                return Err(denied(OAuthError::refuse(Refusal::DpopProof(
                    "dpop_jkt_mismatch",
                ))));
            }
            Some(_) => {}
            None => pairs.push(("dpop_jkt".to_owned(), jkt.as_str().to_owned())),
        }
    }
    pairs.sort();
    let now = svc.clock.now();
    let tenant_active = svc
        .oauth
        .directory
        .tenant_status(svc.store.as_ref(), &client.tenant, now)
        .await
        .map_err(OAuthError::internal)?
        == Some(TenantStatus::Active);
    let app = app_client(client, tenant_active)
        .ok_or_else(|| OAuthError::internal(format!("stored client {} is invalid", client.id)))?;
    match AuthorizeParams::from_pairs(pairs.iter().cloned())
        .pushed()
        .validate(Some(&app))
    {
        Ok(_) => {}
        Err(AuthorizeError::Page(p)) => return Err(refuse(p.error(), p.reason())),
        Err(AuthorizeError::Redirect(e)) => {
            let code = e.error.as_str();
            return Err(refuse(code, code));
        }
    }
    let mut random = [0u8; 32];
    OsRng.fill_bytes(&mut random);
    let uri = RequestUri::from_random(random);
    let record = PushedRequestRecord {
        digest: uri.digest().to_vec(),
        tenant: client.tenant.clone(),
        client_id: app.client_id.clone(),
        params: serde_json::to_string(&pairs).map_err(OAuthError::internal)?,
        created_at: now,
        expires_at: now.saturating_add(PUSHED_LIFETIME),
        opened_at: None,
        used_at: None,
    };
    svc.store
        .insert_pushed_request(&record)
        .await
        .map_err(OAuthError::internal)?;
    super::audit(
        svc,
        client,
        Action::OAuthAuthorizationPush,
        Outcome::Success,
        None,
        None,
        origin,
    );
    Ok(Pushed {
        request_uri: uri.as_uri(),
        expires_in: PUSHED_LIFETIME.as_secs(),
    })
}

/// A pushed request opened at the authorization endpoint.
#[derive(Debug, Clone)]
pub struct Opened {
    pub tenant: TenantId,
    /// The request's parameters as pushed (validated again by the caller, marked pushed).
    pub pairs: Vec<(String, String)>,
    /// What [`use_up`] takes.
    pub digest: [u8; 32],
}

/// Resolves `request_uri` for `client_id` at the authorization endpoint: `None` when it is not
/// one of ours, unknown, another client's, expired or used. The first resolution starts the
/// sign-in window ([`OPENED_LIFETIME`]).
pub async fn open(
    store: &dyn Store,
    client_id: &str,
    request_uri: &str,
    now: Timestamp,
) -> Result<Option<Opened>, StoreError> {
    let Some(uri) = RequestUri::parse(request_uri) else {
        return Ok(None);
    };
    let digest = uri.digest();
    let Some(record) = store
        .open_pushed_request(&digest, client_id, now, now.saturating_add(OPENED_LIFETIME))
        .await?
    else {
        return Ok(None);
    };
    let Ok(pairs) = serde_json::from_str::<Vec<(String, String)>>(&record.params) else {
        return Err(StoreError::Corrupt(format!(
            "pushed request of client {client_id} holds unreadable parameters"
        )));
    };
    Ok(Some(Opened {
        tenant: record.tenant,
        pairs,
        digest,
    }))
}

/// Uses up an opened request as its code is issued: `false` if another request (a second tab,
/// another node) used it first or it expired meanwhile.
pub async fn use_up(
    store: &dyn Store,
    digest: &[u8; 32],
    now: Timestamp,
) -> Result<bool, StoreError> {
    store.use_pushed_request(digest, now).await
}
