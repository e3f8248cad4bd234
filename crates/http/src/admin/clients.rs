//! OAuth clients of a tenant: create (secret shown once), list, show, update, rotate the secret
//! with an overlap window, disable (which also revokes every token already issued to the client),
//! enable again (new tokens only: what the disable revoked stays revoked), archive (disable for good: in one transaction the client is disabled, its secrets expire at
//! once, it is recorded archived and a `client` revocation-log entry revokes its tokens; it then
//! leaves the default list, and no update, rotation, disabling or enabling touches it again).
//!
//! Machine clients, confidential web apps and public single-page and native apps are all
//! clients; create and update run one check ([`check_settings`]): the admin API's own checks
//! (name, lifetime, audiences of this tenant's resource servers) and then core's registration
//! rules (`portcullis_core::client::check_app_registration`), whose refusals answer with the
//! RFC 7591 codes `invalid_redirect_uri` and `invalid_client_metadata`. A client may only be
//! allowed audiences of its own tenant's resource servers, and only scopes those resource servers
//! define (plus the OpenID Connect scopes for app clients): another tenant's API cannot be named.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::audit::{Action, Outcome};
use portcullis_core::client::{
    check_app_registration, AppRegistration, ApplicationType, ClientType,
};
use portcullis_core::credential::{Credential, CredentialKind, Environment};
use portcullis_core::oauth::{Audience, AuthMethod, GrantType, ScopeSet};
use portcullis_core::signing::SigningAlgorithm;
use portcullis_core::tenant::TenantStatus;
use portcullis_core::time::Timestamp;
use portcullis_store::{
    Archivable, ArchivedKind, ClientSecretRecord, ClientStatus, NewRevocation, OAuthClient,
    RevocationKind, TlsSubjectRecord,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::archive::{self, ArchivedParams};
use super::auth::TenantAdmin;
use super::tenants::validate_display_name;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::page::{ListQuery, Paged};
use crate::state::OAuthAdmin;
use portcullis_service::audit::EventDraft;
use portcullis_service::mtls::TlsSubject;
use portcullis_service::state::rfc3339;

const DEFAULT_OVERLAP: Duration = Duration::from_secs(24 * 3600);
const MAX_OVERLAP: Duration = Duration::from_secs(30 * 24 * 3600);

/// The overlap asked for by a secret rotation (client or resource server): how long the
/// previous secrets keep working. Default one day, 0 = at once, at most 30 days.
pub(super) fn rotation_overlap(overlap_secs: Option<u64>) -> Result<Duration, ApiError> {
    let overlap = overlap_secs
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_OVERLAP);
    if overlap > MAX_OVERLAP {
        return Err(ApiError::invalid_request("overlap_secs is at most 30 days"));
    }
    Ok(overlap)
}
const MAX_AUDIENCES: usize = 16;

/// A random, non-secret identifier body (22 base62 characters, ~131 bits).
pub fn random_id() -> String {
    portcullis_core::base62::random(&mut rand::rngs::OsRng, 22)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    name: String,
    /// Lifetime of the client secret, in seconds (default: the tenant's lifetime policy's
    /// `client_secret_max_age`, or no expiry without one).
    secret_expires_in_secs: Option<u64>,
    #[serde(default)]
    scopes: Vec<String>,
    /// Resource servers' audiences, the first the default: at least one for
    /// `client_credentials`, none needed by an app that only signs users in.
    #[serde(default)]
    audiences: Vec<String>,
    /// Default: `authorization_code` for public clients and clients with redirect URIs,
    /// `client_credentials` otherwise.
    grant_types: Option<Vec<String>>,
    /// Default: `none` for public clients, `client_secret_basic` otherwise.
    /// `workload_identity_jwt`: no secret and no keys; the client authenticates with an external
    /// workload token under a trust rule bound to it (client credentials only).
    auth_method: Option<String>,
    access_token_ttl_secs: Option<u64>,
    environment: Option<String>,
    #[serde(default)]
    introspection: bool,
    /// For `private_key_jwt`: the client's public keys (a JWKS object).
    #[schema(value_type = Option<Object>)]
    jwks: Option<serde_json::Value>,
    /// For `private_key_jwt`, instead of `jwks`: where the server fetches the client's JWKS.
    jwks_uri: Option<String>,
    /// `confidential` (machine clients, web apps with a server side) or `public` (single-page
    /// and native apps: no secret). Default: `public` for native apps, else `confidential`.
    #[schema(value_type = Option<String>, example = "public")]
    client_type: Option<String>,
    /// `web` (default) or `native`.
    #[schema(value_type = Option<String>, example = "web")]
    application_type: Option<String>,
    /// Where the authorization endpoint may send the user back; compared exactly.
    #[serde(default)]
    redirect_uris: Vec<String>,
    /// Where logout may send the user back; compared exactly.
    #[serde(default)]
    post_logout_redirect_uris: Vec<String>,
    /// Single-page apps: exact origins (`https://host[:port]`) allowed to call the token
    /// endpoint from script.
    #[serde(default)]
    allowed_web_origins: Vec<String>,
    /// The tenant's own app: users are not asked for consent.
    #[serde(default)]
    first_party: bool,
    /// Where logout tokens are POSTed when a session the client got tokens in ends (OpenID
    /// Connect Back-Channel Logout 1.0): an `https://` URL; app clients only.
    backchannel_logout_uri: Option<String>,
    /// The client needs `sid` in its logout tokens (always sent; needs a URI).
    #[serde(default)]
    backchannel_logout_session_required: bool,
    /// Every authorization request must be pushed to the PAR endpoint first (RFC 9126); needs
    /// the `authorization_code` grant.
    #[serde(default)]
    require_pushed_authorization_requests: bool,
    /// Every token request must carry a valid DPoP proof (RFC 9449 section 5.2
    /// `dpop_bound_access_tokens`): every token the client gets is bound to its key.
    #[serde(default)]
    dpop_bound_access_tokens: bool,
    /// The algorithm of the client's ID tokens (OpenID Connect Registration): one listed in
    /// discovery's `id_token_signing_alg_values_supported` (`RS256` or the installation's
    /// algorithm). Default: the installation's algorithm.
    id_token_signed_response_alg: Option<String>,
    #[serde(flatten)]
    tls: TlsSubjectFields,
    /// RFC 8705: bind this client's access tokens to the client certificate it presents even
    /// though it authenticates otherwise (tokens of `tls_client_auth` and
    /// `self_signed_tls_client_auth` clients are always bound).
    #[serde(default)]
    tls_client_certificate_bound_access_tokens: bool,
}

/// RFC 8705 section 2.1.2: the one certificate fact a `tls_client_auth` client is registered
/// with. Exactly one for `tls_client_auth`, none for any other method.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TlsSubjectFields {
    /// The certificate's subject DN, RFC 4514 text (`CN=payments,O=Acme`).
    tls_client_auth_subject_dn: Option<String>,
    /// A `dNSName` SAN of the certificate.
    tls_client_auth_san_dns: Option<String>,
    /// A `uniformResourceIdentifier` SAN (a SPIFFE ID, for example).
    tls_client_auth_san_uri: Option<String>,
    /// An `iPAddress` SAN, IPv4 or IPv6 text.
    tls_client_auth_san_ip: Option<String>,
    /// An `rfc822Name` SAN.
    tls_client_auth_san_email: Option<String>,
}

impl TlsSubjectFields {
    fn any(&self) -> bool {
        self.tls_client_auth_subject_dn.is_some()
            || self.tls_client_auth_san_dns.is_some()
            || self.tls_client_auth_san_uri.is_some()
            || self.tls_client_auth_san_ip.is_some()
            || self.tls_client_auth_san_email.is_some()
    }

    /// The registration to store: exactly one fact for `tls_client_auth`, none otherwise.
    fn check(&self, method: AuthMethod) -> Result<Option<TlsSubjectRecord>, ApiError> {
        if method != AuthMethod::TlsClientAuth {
            if self.any() {
                return Err(metadata(
                    "tls_client_auth_* members are only for tls_client_auth clients",
                ));
            }
            return Ok(None);
        }
        let subject = TlsSubject::from_metadata(
            self.tls_client_auth_subject_dn.as_deref(),
            self.tls_client_auth_san_dns.as_deref(),
            self.tls_client_auth_san_uri.as_deref(),
            self.tls_client_auth_san_ip.as_deref(),
            self.tls_client_auth_san_email.as_deref(),
        )
        .map_err(|e| metadata(e.to_string()))?;
        Ok(Some(TlsSubjectRecord {
            kind: subject.kind().to_owned(),
            value: subject.value(),
        }))
    }
}

/// The members an update may change; each one left out keeps its value. The client's type,
/// application type, authentication method, keys and environment never change: register a new
/// client instead.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateClient {
    name: Option<String>,
    scopes: Option<Vec<String>>,
    audiences: Option<Vec<String>>,
    grant_types: Option<Vec<String>>,
    access_token_ttl_secs: Option<u64>,
    introspection: Option<bool>,
    redirect_uris: Option<Vec<String>>,
    post_logout_redirect_uris: Option<Vec<String>>,
    allowed_web_origins: Option<Vec<String>>,
    first_party: Option<bool>,
    /// A new back-channel logout URI; `""` removes it.
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: Option<bool>,
    require_pushed_authorization_requests: Option<bool>,
    dpop_bound_access_tokens: Option<bool>,
    /// A new ID-token algorithm; `""` returns to the installation's algorithm.
    id_token_signed_response_alg: Option<String>,
    /// A `tls_client_auth` client's new certificate fact: exactly one, replacing the
    /// registered one (the method itself never changes).
    #[serde(flatten)]
    tls: TlsSubjectFields,
    tls_client_certificate_bound_access_tokens: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RotateClientSecret)]
pub struct RotateSecret {
    /// How long the previous secrets keep working, in seconds (default one day, 0 = at once).
    overlap_secs: Option<u64>,
    /// Lifetime of the new secret, in seconds (default: the tenant's lifetime policy's
    /// `client_secret_max_age`, or no expiry without one).
    secret_expires_in_secs: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    client_id: String,
    tenant: String,
    name: String,
    environment: String,
    auth_method: String,
    grant_types: Vec<String>,
    scopes: Vec<String>,
    audiences: Vec<String>,
    access_token_ttl_secs: i64,
    introspection: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    jwks_uri: Option<String>,
    #[schema(value_type = String, example = "confidential")]
    client_type: &'static str,
    #[schema(value_type = String, example = "web")]
    application_type: &'static str,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    allowed_web_origins: Vec<String>,
    first_party: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    backchannel_logout_uri: Option<String>,
    backchannel_logout_session_required: bool,
    require_pushed_authorization_requests: bool,
    /// Token requests without a valid DPoP proof are refused (RFC 9449).
    dpop_bound_access_tokens: bool,
    /// Absent: the installation's algorithm.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "RS256")]
    id_token_signed_response_alg: Option<&'static str>,
    /// `tls_client_auth` clients: the registered certificate fact, under its RFC 8705 name
    /// (`tls_client_auth_san_uri`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_client_auth_subject_dn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_client_auth_san_dns: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_client_auth_san_uri: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_client_auth_san_ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls_client_auth_san_email: Option<String>,
    /// Whether access tokens are bound to the client certificate (RFC 8705 section 3):
    /// always for mTLS clients, on request for others.
    tls_client_certificate_bound_access_tokens: bool,
    #[schema(value_type = String)]
    status: &'static str,
    created_at: String,
    updated_at: String,
    last_used_at: Option<String>,
    /// When the client was archived (`null`: it is not).
    archived_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secrets: Option<Vec<SecretView>>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ClientSecretView)]
pub struct SecretView {
    id: String,
    display_prefix: String,
    created_at: String,
    expires_at: Option<String>,
    last_used_at: Option<String>,
}

impl From<OAuthClient> for ClientView {
    fn from(c: OAuthClient) -> Self {
        Archivable {
            item: c,
            archived_at: None,
        }
        .into()
    }
}

impl From<Archivable<OAuthClient>> for ClientView {
    fn from(a: Archivable<OAuthClient>) -> Self {
        let c = a.item;
        let tls = |kind: &str| {
            c.tls_subject
                .as_ref()
                .filter(|t| t.kind == kind)
                .map(|t| t.value.clone())
        };
        let bound = c.certificate_bound_tokens
            || AuthMethod::parse(&c.auth_method).is_ok_and(AuthMethod::is_mtls);
        Self {
            tls_client_auth_subject_dn: tls("tls_client_auth_subject_dn"),
            tls_client_auth_san_dns: tls("tls_client_auth_san_dns"),
            tls_client_auth_san_uri: tls("tls_client_auth_san_uri"),
            tls_client_auth_san_ip: tls("tls_client_auth_san_ip"),
            tls_client_auth_san_email: tls("tls_client_auth_san_email"),
            tls_client_certificate_bound_access_tokens: bound,
            client_id: c.id,
            tenant: c.tenant.to_string(),
            name: c.name,
            environment: c.environment,
            auth_method: c.auth_method,
            grant_types: c.grant_types,
            scopes: c.scopes,
            audiences: c.audiences,
            access_token_ttl_secs: c.access_token_ttl_secs,
            introspection: c.can_introspect,
            jwks_uri: c.jwks_uri,
            client_type: c.client_type.as_str(),
            application_type: c.application_type.as_str(),
            redirect_uris: c.redirect_uris,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            allowed_web_origins: c.allowed_web_origins,
            first_party: c.first_party,
            backchannel_logout_uri: c.backchannel_logout_uri,
            backchannel_logout_session_required: c.backchannel_logout_session_required,
            require_pushed_authorization_requests: c.require_pushed_requests,
            dpop_bound_access_tokens: c.require_dpop,
            id_token_signed_response_alg: c.id_token_signed_response_alg.map(|a| a.as_str()),
            status: c.status.as_str(),
            created_at: rfc3339(c.created_at),
            updated_at: rfc3339(c.updated_at),
            last_used_at: c.last_used_at.map(rfc3339),
            archived_at: a.archived_at.map(rfc3339),
            secrets: None,
        }
    }
}

impl From<ClientSecretRecord> for SecretView {
    fn from(s: ClientSecretRecord) -> Self {
        Self {
            id: s.id,
            display_prefix: s.display_prefix,
            created_at: rfc3339(s.created_at),
            expires_at: s.expires_at.map(rfc3339),
            last_used_at: s.last_used_at.map(rfc3339),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedClient {
    #[serde(flatten)]
    view: ClientView,
    /// The secret, shown this once (none for `private_key_jwt` and public clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RotatedClientSecret)]
pub struct RotatedSecret {
    client_id: String,
    /// The new secret, shown this once.
    client_secret: String,
    secret_id: String,
    previous_secrets_expire_at: String,
}

fn bad(e: impl std::fmt::Display) -> ApiError {
    ApiError::invalid_request(e.to_string())
}

/// A new secret for the OAuth endpoints (a client's, or a resource server's for introspection):
/// >= 128 bits from the OS, prefixed and checksummed, shown once, stored as its digest.
pub(super) fn generate_secret(environment: &Environment) -> Credential {
    Credential::generate(
        CredentialKind::ClientSecret,
        environment.clone(),
        &mut rand::rngs::OsRng,
    )
}

/// The expiry of a new client secret under the tenant's lifetime policy; a request the policy
/// refuses is `400 invalid_request` naming the policy setting, before anything is created.
async fn secret_expiry(
    state: &OAuthAdmin,
    admin: &TenantAdmin,
    requested_secs: Option<u64>,
    now: Timestamp,
) -> Result<Option<Timestamp>, ApiError> {
    portcullis_service::lifecycle::lifetime_policy(state.store.as_ref(), &admin.tenant)
        .await?
        .client_secret_expiry(requested_secs.map(Duration::from_secs), now)
        .map_err(bad)
}

fn new_secret(
    client_id: &str,
    environment: &Environment,
    now: Timestamp,
    expires_at: Option<Timestamp>,
) -> (ClientSecretRecord, Credential) {
    let credential = generate_secret(environment);
    let record = ClientSecretRecord {
        id: credential.id().to_owned(),
        client_id: client_id.to_owned(),
        display_prefix: credential.display_prefix(),
        secret_digest: credential.digest().to_vec(),
        created_at: now,
        expires_at,
        last_used_at: None,
    };
    (record, credential)
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/clients", tag = "clients", params(super::openapi::TenantPath), request_body = CreateClient,
    responses((status = 201, description = "The client; its secret is shown this once", body = CreatedClient),
        (status = 400, description = "Malformed request (`invalid_request`), or a registration the rules refuse: `invalid_redirect_uri`, `invalid_client_metadata` (RFC 7591)", body = super::openapi::ErrorBody)))]
pub async fn create(
    admin: TenantAdmin,
    State(state): State<OAuthAdmin>,
    ApiJson(body): ApiJson<CreateClient>,
) -> Result<(StatusCode, Json<CreatedClient>), ApiError> {
    let environment = Environment::parse(body.environment.as_deref().unwrap_or("live"))
        .map_err(|_| bad("environment is 1 to 16 lowercase letters and digits"))?;
    let application_type = match body.application_type.as_deref() {
        None => ApplicationType::Web,
        Some(a) => ApplicationType::parse(a)
            .ok_or_else(|| metadata("application_type is web or native"))?,
    };
    let client_type = match body.client_type.as_deref() {
        None if application_type == ApplicationType::Native => ClientType::Public,
        None => ClientType::Confidential,
        Some(t) => {
            ClientType::parse(t).ok_or_else(|| metadata("client_type is confidential or public"))?
        }
    };
    let default_method = match client_type {
        ClientType::Public => "none",
        ClientType::Confidential => "client_secret_basic",
    };
    let auth_method =
        AuthMethod::parse(body.auth_method.as_deref().unwrap_or(default_method)).map_err(bad)?;
    let grant_types = body.grant_types.clone().unwrap_or_else(|| {
        let app = client_type == ClientType::Public || !body.redirect_uris.is_empty();
        let default = if app {
            GrantType::AuthorizationCode
        } else {
            GrantType::ClientCredentials
        };
        vec![default.as_str().to_owned()]
    });
    let checked = check_settings(
        &state,
        &admin,
        Settings {
            name: &body.name,
            client_type,
            application_type,
            auth_method,
            grant_types: &grant_types,
            scopes: &body.scopes,
            audiences: &body.audiences,
            access_token_ttl_secs: body.access_token_ttl_secs,
            introspection: body.introspection,
            has_keys: body.jwks.is_some() || body.jwks_uri.is_some(),
            redirect_uris: &body.redirect_uris,
            post_logout_redirect_uris: &body.post_logout_redirect_uris,
            allowed_web_origins: &body.allowed_web_origins,
            first_party: body.first_party,
        },
    )
    .await?;
    let tenant = state
        .store
        .get_tenant(&admin.tenant)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if tenant.status != TenantStatus::Active {
        return Err(ApiError::conflict("the tenant is disabled"));
    }
    let tls_subject = body.tls.check(auth_method)?;
    // Keys are registered the same way for both methods that use them: an assertion's signing
    // key, or a self-signed certificate's key (RFC 8705 section 2.2).
    let keyed = matches!(
        auth_method,
        AuthMethod::PrivateKeyJwt | AuthMethod::SelfSignedTlsClientAuth
    );
    let (jwks, jwks_uri) = match (keyed, &body.jwks, &body.jwks_uri) {
        (true, Some(jwks), None) => (
            Some(portcullis_service::oauth::assertion::validate_client_jwks(jwks).map_err(bad)?),
            None,
        ),
        (true, None, Some(uri)) => (
            None,
            Some(
                portcullis_service::oauth::remote_jwks::validate_jwks_uri(
                    uri,
                    state.oauth.insecure_allow_http_jwks_uri,
                )
                .map_err(bad)?,
            ),
        ),
        (true, Some(_), Some(_)) => {
            return Err(bad("register either jwks or jwks_uri, not both"))
        }
        (true, None, None) => {
            return Err(bad(
                "private_key_jwt and self_signed_tls_client_auth clients must register a jwks or a jwks_uri",
            ))
        }
        (false, None, None) => (None, None),
        (false, _, _) => {
            return Err(bad(
                "jwks and jwks_uri are only for private_key_jwt and self_signed_tls_client_auth clients",
            ))
        }
    };
    let backchannel_logout_uri = check_backchannel(
        &state,
        &checked.grant_types,
        body.backchannel_logout_uri.as_deref(),
        body.backchannel_logout_session_required,
    )?;
    check_pushed_requirement(
        &checked.grant_types,
        body.require_pushed_authorization_requests,
    )?;
    let id_token_signed_response_alg = check_id_token_alg(
        &state,
        &checked.grant_types,
        body.id_token_signed_response_alg.as_deref(),
    )?;
    let now = state.clock.now();
    let id = format!("cl_{}", random_id());
    // Clients that authenticate with a key, and public clients, get no secret at all.
    let has_secret = auth_method.has_secret();
    let secret_expires_at = if has_secret {
        secret_expiry(&state, &admin, body.secret_expires_in_secs, now).await?
    } else if body.secret_expires_in_secs.is_some() {
        return Err(bad(
            "secret_expires_in_secs is only for clients with a secret",
        ));
    } else {
        None
    };
    let issued = has_secret.then(|| new_secret(&id, &environment, now, secret_expires_at));
    let client = OAuthClient {
        id: id.clone(),
        tenant: admin.tenant.clone(),
        name: checked.name,
        environment: environment.to_string(),
        auth_method: auth_method.as_str().to_owned(),
        grant_types: checked.grant_types,
        scopes: checked.scopes,
        audiences: checked.audiences,
        access_token_ttl_secs: checked.access_token_ttl_secs,
        can_introspect: body.introspection,
        jwks,
        jwks_uri,
        status: ClientStatus::Active,
        created_at: now,
        updated_at: now,
        last_used_at: None,
        client_type,
        application_type,
        redirect_uris: checked.redirect_uris,
        post_logout_redirect_uris: checked.post_logout_redirect_uris,
        allowed_web_origins: checked.allowed_web_origins,
        first_party: body.first_party,
        backchannel_logout_uri,
        backchannel_logout_session_required: body.backchannel_logout_session_required,
        require_pushed_requests: body.require_pushed_authorization_requests,
        require_dpop: body.dpop_bound_access_tokens,
        id_token_signed_response_alg,
        tls_subject,
        certificate_bound_tokens: body.tls_client_certificate_bound_access_tokens,
    };
    let written = state
        .store
        .create_client(&client, issued.as_ref().map(|(record, _)| record))
        .await;
    // The id may have been remembered as unknown (ids are random, but a cache must not decide
    // that).
    state.oauth.directory.client_changed(&id);
    written?;
    record(&state, &admin, Action::OAuthClientCreate, &id);
    Ok((
        StatusCode::CREATED,
        Json(CreatedClient {
            view: client.into(),
            client_secret: issued.map(|(_, c)| c.expose().to_owned()),
        }),
    ))
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/clients", tag = "clients", params(super::openapi::TenantPath, crate::page::PageParams, ArchivedParams),
    responses((status = 200, description = "A page of the tenant's clients, oldest first", body = Paged<ClientView>)))]
pub async fn list(
    admin: TenantAdmin,
    State(state): State<OAuthAdmin>,
    query: ListQuery<ArchivedParams>,
) -> Result<Json<Paged<ClientView>>, ApiError> {
    let scope = format!("clients:{}", admin.tenant);
    let page = query.paging.request(&scope)?;
    let clients = state
        .store
        .list_clients(&admin.tenant, &page, query.filter.filter())
        .await?;
    Ok(Json(Paged::new(clients, &scope, Into::into)))
}

/// The tenant's client with whether it is archived, or 404.
async fn load(state: &OAuthAdmin, admin: &TenantAdmin, id: &str) -> Result<ClientView, ApiError> {
    let client = tenant_client(admin, id).await?;
    let archived_at = state
        .store
        .archived_at(ArchivedKind::Client, &client.id)
        .await?;
    Ok(Archivable {
        item: client,
        archived_at,
    }
    .into())
}

/// The tenant's live client, 404 if there is none, 409 if it is archived.
async fn live_client(
    state: &OAuthAdmin,
    admin: &TenantAdmin,
    id: &str,
) -> Result<OAuthClient, ApiError> {
    let client = tenant_client(admin, id).await?;
    if state
        .store
        .archived_at(ArchivedKind::Client, &client.id)
        .await?
        .is_some()
    {
        return Err(archive::already_archived());
    }
    Ok(client)
}

/// The tenant's client, or 404 (also for another tenant's client id).
async fn tenant_client(admin: &TenantAdmin, id: &str) -> Result<OAuthClient, ApiError> {
    admin
        .scope
        .client(id)
        .await?
        .ok_or_else(ApiError::not_found)
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/clients/{id}", tag = "clients", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The client with its secrets' metadata", body = ClientView)))]
pub async fn show(
    admin: TenantAdmin,
    State(state): State<OAuthAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<ClientView>, ApiError> {
    let mut view = load(&state, &admin, &id).await?;
    let secrets = state.store.list_client_secrets(&view.client_id).await?;
    view.secrets = Some(secrets.into_iter().map(Into::into).collect());
    Ok(Json(view))
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/clients/{id}/rotate-secret", tag = "clients", params(super::openapi::TenantIdPath), request_body = RotateSecret,
    responses((status = 201, description = "The new secret, shown this once", body = RotatedSecret)))]
pub async fn rotate_secret(
    admin: TenantAdmin,
    State(state): State<OAuthAdmin>,
    Path((_, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<RotateSecret>,
) -> Result<(StatusCode, Json<RotatedSecret>), ApiError> {
    let overlap = rotation_overlap(body.overlap_secs)?;
    let client = live_client(&state, &admin, &id).await?;
    // Only secret clients have a secret to rotate: a key, a certificate or a bound trust rule
    // authenticates the others, and public clients have nothing.
    if !AuthMethod::parse(&client.auth_method).is_ok_and(AuthMethod::has_secret) {
        return Err(bad(format!(
            "{} clients have no secret to rotate",
            client.auth_method
        )));
    }
    let environment = Environment::parse(&client.environment)
        .map_err(|_| ApiError::internal("stored client has an invalid environment"))?;
    let now = state.clock.now();
    let expires_at = secret_expiry(&state, &admin, body.secret_expires_in_secs, now).await?;
    let (secret, credential) = new_secret(&client.id, &environment, now, expires_at);
    let old_end = now.saturating_add(overlap);
    let written = state
        .store
        .rotate_client_secret(&admin.tenant, &secret, old_end)
        .await;
    state.oauth.directory.client_changed(&client.id);
    if !written? {
        return Err(ApiError::not_found());
    }
    record(&state, &admin, Action::OAuthClientRotateSecret, &client.id);
    Ok((
        StatusCode::CREATED,
        Json(RotatedSecret {
            client_id: client.id,
            client_secret: credential.expose().to_owned(),
            secret_id: secret.id,
            previous_secrets_expire_at: rfc3339(old_end),
        }),
    ))
}

/// Disables the client and revokes every token issued to it so far (a `client` entry in the
/// revocation log), so verifiers following the log stop accepting them too.
#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/clients/{id}/disable", tag = "clients", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The client, disabled; its tokens are revoked", body = ClientView)))]
pub async fn disable(
    admin: TenantAdmin,
    State(state): State<OAuthAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<ClientView>, ApiError> {
    let client = set_status(&state, &admin, &id, ClientStatus::Disabled).await?;
    state
        .store
        .append_revocation(
            &NewRevocation {
                tenant: admin.tenant.clone(),
                kind: RevocationKind::Client,
                subject: client.id.clone(),
                revoked_before: Some(client.updated_at),
                expires_at: Some(client.updated_at.saturating_add(state.oauth.lifetimes.max)),
                reason: Some("client_disabled".into()),
            },
            client.updated_at,
        )
        .await?;
    record(&state, &admin, Action::OAuthClientDisable, &client.id);
    Ok(Json(client.into()))
}

/// Enables a disabled client again. The `client` entry its disable wrote to the revocation log
/// stays, so the tokens it held then stay revoked; it gets new ones. An archived client is
/// never enabled (409). Enabling an active client changes nothing and is not an error.
#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/clients/{id}/enable", tag = "clients", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The client, active; tokens revoked by its disable stay revoked", body = ClientView)))]
pub async fn enable(
    admin: TenantAdmin,
    State(state): State<OAuthAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<ClientView>, ApiError> {
    let client = set_status(&state, &admin, &id, ClientStatus::Active).await?;
    record(&state, &admin, Action::OAuthClientEnable, &client.id);
    Ok(Json(client.into()))
}

/// Sets a live (not archived) client's status, at `updated_at` = now, drops what this node's
/// directory cached about it, and returns it as stored (the store changes those two fields
/// only, so it is not read again).
async fn set_status(
    state: &OAuthAdmin,
    admin: &TenantAdmin,
    id: &str,
    status: ClientStatus,
) -> Result<OAuthClient, ApiError> {
    let client = live_client(state, admin, id).await?;
    let now = state.clock.now();
    let written = state
        .store
        .set_client_status(&admin.tenant, &client.id, status, now)
        .await;
    state.oauth.directory.client_changed(&client.id);
    if !written? {
        return Err(ApiError::not_found());
    }
    Ok(OAuthClient {
        status,
        updated_at: now,
        ..client
    })
}

/// Archives the client: see the module docs.
#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/clients/{id}/archive", tag = "clients", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The client, archived: disabled for good, its secrets expired, its tokens revoked", body = ClientView)))]
pub async fn archive(
    admin: TenantAdmin,
    State(state): State<OAuthAdmin>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<ClientView>, ApiError> {
    let client = tenant_client(&admin, &id).await?;
    let now = state.clock.now();
    let revocation = NewRevocation {
        tenant: admin.tenant.clone(),
        kind: RevocationKind::Client,
        subject: client.id.clone(),
        revoked_before: Some(now),
        expires_at: Some(now.saturating_add(state.oauth.lifetimes.max)),
        reason: Some("client_archived".into()),
    };
    let written = state
        .store
        .archive_client(
            &admin.tenant,
            &client.id,
            Some(&admin.principal.credential_id),
            &revocation,
            now,
        )
        .await;
    state.oauth.directory.client_changed(&client.id);
    archive::outcome(written?)?;
    record(&state, &admin, Action::OAuthClientArchive, &client.id);
    Ok(Json(load(&state, &admin, &id).await?))
}

/// A client's registration as create or update would leave it, before the checks.
struct Settings<'a> {
    name: &'a str,
    client_type: ClientType,
    application_type: ApplicationType,
    auth_method: AuthMethod,
    grant_types: &'a [String],
    scopes: &'a [String],
    audiences: &'a [String],
    access_token_ttl_secs: Option<u64>,
    introspection: bool,
    has_keys: bool,
    redirect_uris: &'a [String],
    post_logout_redirect_uris: &'a [String],
    allowed_web_origins: &'a [String],
    first_party: bool,
}

/// The registration as stored, after the checks.
struct Checked {
    name: String,
    grant_types: Vec<String>,
    scopes: Vec<String>,
    audiences: Vec<String>,
    access_token_ttl_secs: i64,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    allowed_web_origins: Vec<String>,
}

/// The back-channel logout registration: a URI under the outbound rules of `[logout]`, for
/// clients with the authorization_code grant only (no other client has sessions to end);
/// Pushed authorization requests can only be required of a client that uses the authorization
/// endpoint.
fn check_pushed_requirement(grant_types: &[String], required: bool) -> Result<(), ApiError> {
    if required && !grant_types.iter().any(|g| g == "authorization_code") {
        return Err(metadata(
            "require_pushed_authorization_requests needs the authorization_code grant",
        ));
    }
    Ok(())
}

/// `backchannel_logout_session_required` only with a URI. Returns the URI normalised.
fn check_backchannel(
    state: &OAuthAdmin,
    grant_types: &[String],
    uri: Option<&str>,
    session_required: bool,
) -> Result<Option<String>, ApiError> {
    let Some(uri) = uri else {
        if session_required {
            return Err(metadata(
                "backchannel_logout_session_required needs a backchannel_logout_uri",
            ));
        }
        return Ok(None);
    };
    if !grant_types
        .iter()
        .any(|g| g == GrantType::AuthorizationCode.as_str())
    {
        return Err(metadata(
            "backchannel_logout_uri needs the authorization_code grant",
        ));
    }
    portcullis_service::logout::validate_backchannel_uri(uri, state.logout.settings().outbound())
        .map(Some)
        .map_err(metadata)
}

/// The ID-token algorithm a client registers: one this server signs ID tokens with (the
/// installation's algorithm, or RS256 through the companion key), for clients with the
/// authorization_code grant only (no other client gets ID tokens).
fn check_id_token_alg(
    state: &OAuthAdmin,
    grant_types: &[String],
    alg: Option<&str>,
) -> Result<Option<SigningAlgorithm>, ApiError> {
    let Some(given) = alg else {
        return Ok(None);
    };
    if !grant_types
        .iter()
        .any(|g| g == GrantType::AuthorizationCode.as_str())
    {
        return Err(metadata(
            "id_token_signed_response_alg needs the authorization_code grant",
        ));
    }
    let supported = state
        .oauth
        .signer()
        .map(|s| s.id_token_algs())
        .unwrap_or_default();
    match SigningAlgorithm::parse(given) {
        Some(a) if supported.contains(&a.as_str()) => Ok(Some(a)),
        _ => Err(metadata(format!(
            "id_token_signed_response_alg must be one of {}",
            supported.join(", ")
        ))),
    }
}

/// 400 `invalid_client_metadata` (RFC 7591 section 3.2.2).
fn metadata(description: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_client_metadata", description)
}

/// The one check of a client registration, for create and update alike: the admin API's own
/// rules, then core's [`check_app_registration`].
async fn check_settings(
    state: &OAuthAdmin,
    admin: &TenantAdmin,
    s: Settings<'_>,
) -> Result<Checked, ApiError> {
    let name = validate_display_name(s.name)?;
    let grant_types = s
        .grant_types
        .iter()
        .map(|g| GrantType::parse(g))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    if grant_types.is_empty() {
        return Err(bad("grant_types may not be empty"));
    }
    let mut unique_grants: Vec<GrantType> = Vec::new();
    for g in grant_types {
        if !unique_grants.contains(&g) {
            unique_grants.push(g);
        }
    }
    // A workload client authenticates only where client credentials are issued (its method is
    // listed for the token endpoint only, and only that grant takes it).
    if s.auth_method == AuthMethod::WorkloadIdentityJwt
        && unique_grants != [GrantType::ClientCredentials]
    {
        return Err(metadata(
            "workload_identity_jwt clients have the client_credentials grant only",
        ));
    }
    let scopes = ScopeSet::from_strs(s.scopes.iter().map(String::as_str)).map_err(bad)?;
    let machine = unique_grants.contains(&GrantType::ClientCredentials);
    if s.audiences.len() > MAX_AUDIENCES || (machine && s.audiences.is_empty()) {
        return Err(bad(
            "audiences: 1 to 16 audiences (none only for clients without client_credentials); the first is the default",
        ));
    }
    let mut audiences: Vec<String> = Vec::new();
    let mut defined = ScopeSet::default();
    for a in s.audiences {
        let a = Audience::parse(a).map_err(bad)?;
        if audiences.iter().any(|x| x == a.as_str()) {
            continue;
        }
        let rs = state
            .store
            .find_resource_server_by_audience(&admin.tenant, a.as_str())
            .await?
            .ok_or_else(|| {
                bad(format!(
                    "no resource server in this tenant has audience {a}"
                ))
            })?;
        let rs_scopes = ScopeSet::from_strs(rs.scopes.iter().map(String::as_str))
            .map_err(|_| ApiError::internal("stored resource server has invalid scopes"))?;
        defined = ScopeSet::from_strs(defined.iter().chain(rs_scopes.iter()).map(|s| s.as_str()))
            .map_err(bad)?;
        audiences.push(a.as_str().to_owned());
    }
    let undefined: Vec<&str> = scopes
        .iter()
        .filter(|sc| !defined.iter().any(|d| d == *sc))
        .map(|sc| sc.as_str())
        .collect();
    if machine && !undefined.is_empty() && !unique_grants.contains(&GrantType::AuthorizationCode) {
        return Err(bad(
            "every scope must be defined by one of the client's audiences",
        ));
    }
    let max_ttl = state.oauth.lifetimes.max.as_secs();
    let ttl = s
        .access_token_ttl_secs
        .unwrap_or(state.oauth.lifetimes.default.as_secs());
    if ttl == 0 || ttl > max_ttl {
        return Err(bad(format!(
            "access_token_ttl_secs must be 1 to {max_ttl} (the configured maximum)"
        )));
    }
    let app = check_app_registration(&AppRegistration {
        client_type: s.client_type,
        application_type: s.application_type,
        auth_method: s.auth_method,
        grant_types: &unique_grants,
        redirect_uris: s.redirect_uris,
        post_logout_redirect_uris: s.post_logout_redirect_uris,
        allowed_web_origins: s.allowed_web_origins,
        first_party: s.first_party,
        can_introspect: s.introspection,
        has_keys: s.has_keys,
        audiences: audiences.len(),
        undefined_scopes: &undefined,
    })
    .map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    Ok(Checked {
        name,
        grant_types: unique_grants
            .iter()
            .map(|g| g.as_str().to_owned())
            .collect(),
        scopes: scopes.to_vec(),
        audiences,
        access_token_ttl_secs: i64::try_from(ttl).unwrap_or(i64::MAX),
        redirect_uris: app
            .redirect_uris
            .iter()
            .map(|u| u.as_str().to_owned())
            .collect(),
        post_logout_redirect_uris: app
            .post_logout_redirect_uris
            .iter()
            .map(|u| u.as_str().to_owned())
            .collect(),
        allowed_web_origins: app
            .allowed_web_origins
            .iter()
            .map(|o| o.as_str().to_owned())
            .collect(),
    })
}

/// Changes a client's registration: the members sent replace the stored ones, and the whole
/// result goes through the same check as a new client. Tokens already issued keep what they
/// were issued with until they expire (at most the configured maximum lifetime).
#[utoipa::path(patch, path = "/admin/v1/tenants/{tenant}/clients/{id}", tag = "clients", params(super::openapi::TenantIdPath), request_body = UpdateClient,
    responses((status = 200, description = "The client, changed", body = ClientView),
        (status = 400, description = "Malformed request (`invalid_request`), or a registration the rules refuse: `invalid_redirect_uri`, `invalid_client_metadata` (RFC 7591)", body = super::openapi::ErrorBody)))]
pub async fn update(
    admin: TenantAdmin,
    State(state): State<OAuthAdmin>,
    Path((_, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateClient>,
) -> Result<Json<ClientView>, ApiError> {
    let client = live_client(&state, &admin, &id).await?;
    if client.status != ClientStatus::Active {
        return Err(ApiError::conflict("the client is disabled"));
    }
    // Its tokens act at the admin API as the person who signed in: a redirect URI or another
    // grant added here would let any page that obtains them do the same.
    if portcullis_core::client::is_cli_client_id(&client.id) {
        return Err(bad(
            "the built-in CLI client cannot be changed (it can be disabled or archived)",
        ));
    }
    let auth_method = AuthMethod::parse(&client.auth_method)
        .map_err(|_| ApiError::internal("stored client has an unknown auth method"))?;
    let pick = |new: &Option<Vec<String>>, old: &Vec<String>| new.clone().unwrap_or(old.clone());
    let grant_types = pick(&body.grant_types, &client.grant_types);
    let scopes = pick(&body.scopes, &client.scopes);
    let audiences = pick(&body.audiences, &client.audiences);
    let redirect_uris = pick(&body.redirect_uris, &client.redirect_uris);
    let post_logout = pick(
        &body.post_logout_redirect_uris,
        &client.post_logout_redirect_uris,
    );
    let origins = pick(&body.allowed_web_origins, &client.allowed_web_origins);
    let introspection = body.introspection.unwrap_or(client.can_introspect);
    let first_party = body.first_party.unwrap_or(client.first_party);
    let checked = check_settings(
        &state,
        &admin,
        Settings {
            name: body.name.as_deref().unwrap_or(&client.name),
            client_type: client.client_type,
            application_type: client.application_type,
            auth_method,
            grant_types: &grant_types,
            scopes: &scopes,
            audiences: &audiences,
            access_token_ttl_secs: Some(
                body.access_token_ttl_secs
                    .unwrap_or(u64::try_from(client.access_token_ttl_secs).unwrap_or(0)),
            ),
            introspection,
            has_keys: client.jwks.is_some() || client.jwks_uri.is_some(),
            redirect_uris: &redirect_uris,
            post_logout_redirect_uris: &post_logout,
            allowed_web_origins: &origins,
            first_party,
        },
    )
    .await?;
    let tenant = state
        .store
        .get_tenant(&admin.tenant)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if tenant.status != TenantStatus::Active {
        return Err(ApiError::conflict("the tenant is disabled"));
    }
    let backchannel_uri = match body.backchannel_logout_uri.as_deref() {
        Some("") => None,
        Some(uri) => Some(uri),
        None => client.backchannel_logout_uri.as_deref(),
    };
    // Removing the URI drops the sid requirement with it unless the update sets one.
    let session_required = body
        .backchannel_logout_session_required
        .unwrap_or(backchannel_uri.is_some() && client.backchannel_logout_session_required);
    let backchannel_logout_uri = check_backchannel(
        &state,
        &checked.grant_types,
        backchannel_uri,
        session_required,
    )?;
    let require_pushed = body
        .require_pushed_authorization_requests
        .unwrap_or(client.require_pushed_requests);
    check_pushed_requirement(&checked.grant_types, require_pushed)?;
    let id_token_signed_response_alg = match body.id_token_signed_response_alg.as_deref() {
        Some("") => None,
        Some(alg) => check_id_token_alg(&state, &checked.grant_types, Some(alg))?,
        None => client.id_token_signed_response_alg,
    };
    // A new certificate fact replaces the registered one; none sent keeps it.
    let tls_subject = if body.tls.any() {
        body.tls.check(auth_method)?
    } else {
        client.tls_subject.clone()
    };
    let certificate_bound_tokens = body
        .tls_client_certificate_bound_access_tokens
        .unwrap_or(client.certificate_bound_tokens);
    let changed = OAuthClient {
        name: checked.name,
        grant_types: checked.grant_types,
        scopes: checked.scopes,
        audiences: checked.audiences,
        access_token_ttl_secs: checked.access_token_ttl_secs,
        can_introspect: introspection,
        redirect_uris: checked.redirect_uris,
        post_logout_redirect_uris: checked.post_logout_redirect_uris,
        allowed_web_origins: checked.allowed_web_origins,
        first_party,
        backchannel_logout_uri,
        backchannel_logout_session_required: session_required,
        require_pushed_requests: require_pushed,
        require_dpop: body.dpop_bound_access_tokens.unwrap_or(client.require_dpop),
        id_token_signed_response_alg,
        tls_subject,
        certificate_bound_tokens,
        ..client
    };
    let written = state.store.update_client(&changed, state.clock.now()).await;
    state.oauth.directory.client_changed(&changed.id);
    if !written? {
        return Err(ApiError::not_found());
    }
    record(&state, &admin, Action::OAuthClientUpdate, &changed.id);
    let client = tenant_client(&admin, &id).await?;
    Ok(Json(client.into()))
}

fn record(state: &OAuthAdmin, admin: &TenantAdmin, action: Action, target: &str) {
    state.audit.record(
        EventDraft {
            tenant: admin.tenant.clone(),
            actor: admin.principal.actor(),
            credential_id: Some(admin.principal.credential_id.clone()),
            action,
            outcome: Outcome::Success,
            reason: None,
            target: Some(target.to_owned()),
        },
        &admin.origin,
    );
}
