//! OAuth clients of a tenant: create (secret shown once), list, show, rotate the secret with an
//! overlap window, disable (which also revokes every token already issued to the client),
//! archive (disable for good: in one transaction the client is disabled, its secrets expire at
//! once, it is recorded archived and a `client` revocation-log entry revokes its tokens; it then
//! leaves the default list, and no rotation, disabling or enabling touches it again).
//!
//! A client may only be allowed audiences of its own tenant's resource servers, and only scopes
//! those resource servers define: another tenant's API cannot be named.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use portcullis_core::audit::{Action, Outcome};
use portcullis_core::credential::{Credential, CredentialKind, Environment};
use portcullis_core::oauth::{Audience, AuthMethod, GrantType, ScopeSet};
use portcullis_core::tenant::TenantStatus;
use portcullis_core::time::Timestamp;
use portcullis_store::{
    Archivable, ArchivedKind, ClientSecretRecord, ClientStatus, NewRevocation, OAuthClient,
    RevocationKind,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::archive::{self, ArchivedParams};
use super::auth::TenantAdmin;
use super::tenants::validate_display_name;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::page::{ListQuery, Paged};
use portcullis_service::audit::EventDraft;
use portcullis_service::state::{rfc3339, AppState};

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
    #[serde(default)]
    scopes: Vec<String>,
    audiences: Vec<String>,
    grant_types: Option<Vec<String>>,
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
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = RotateClientSecret)]
pub struct RotateSecret {
    /// How long the previous secrets keep working, in seconds (default one day, 0 = at once).
    overlap_secs: Option<u64>,
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
        Self {
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
    /// The secret, shown this once (none for `private_key_jwt` clients).
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

fn new_secret(
    client_id: &str,
    environment: &Environment,
    now: Timestamp,
) -> (ClientSecretRecord, Credential) {
    let credential = generate_secret(environment);
    let record = ClientSecretRecord {
        id: credential.id().to_owned(),
        client_id: client_id.to_owned(),
        display_prefix: credential.display_prefix(),
        secret_digest: credential.digest().to_vec(),
        created_at: now,
        expires_at: None,
        last_used_at: None,
    };
    (record, credential)
}

#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/clients", tag = "clients", params(super::openapi::TenantPath), request_body = CreateClient,
    responses((status = 201, description = "The client; its secret is shown this once", body = CreatedClient)))]
pub async fn create(
    admin: TenantAdmin,
    State(state): State<AppState>,
    ApiJson(body): ApiJson<CreateClient>,
) -> Result<(StatusCode, Json<CreatedClient>), ApiError> {
    let name = validate_display_name(&body.name)?;
    let environment = Environment::parse(body.environment.as_deref().unwrap_or("live"))
        .map_err(|_| bad("environment is 1 to 16 lowercase letters and digits"))?;
    let auth_method =
        AuthMethod::parse(body.auth_method.as_deref().unwrap_or("client_secret_basic"))
            .map_err(bad)?;
    let grant_types = body
        .grant_types
        .unwrap_or_else(|| vec!["client_credentials".into()])
        .iter()
        .map(|g| GrantType::parse(g).map(|g| g.as_str().to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    if grant_types.is_empty() {
        return Err(bad("grant_types may not be empty"));
    }
    let scopes = ScopeSet::from_strs(body.scopes.iter().map(String::as_str)).map_err(bad)?;
    if body.audiences.is_empty() || body.audiences.len() > MAX_AUDIENCES {
        return Err(bad(
            "audiences: 1 to 16 audiences; the first is the default",
        ));
    }
    let mut audiences: Vec<String> = Vec::new();
    let mut defined = ScopeSet::default();
    for a in &body.audiences {
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
    if !scopes.is_subset(&defined) {
        return Err(bad(
            "every scope must be defined by one of the client's audiences",
        ));
    }
    let max_ttl = state.oauth.lifetimes.max.as_secs();
    let ttl = body
        .access_token_ttl_secs
        .unwrap_or(state.oauth.lifetimes.default.as_secs());
    if ttl == 0 || ttl > max_ttl {
        return Err(bad(format!(
            "access_token_ttl_secs must be 1 to {max_ttl} (the configured maximum)"
        )));
    }
    let tenant = state
        .store
        .get_tenant(&admin.tenant)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if tenant.status != TenantStatus::Active {
        return Err(ApiError::conflict("the tenant is disabled"));
    }
    let (jwks, jwks_uri) = match (auth_method, &body.jwks, &body.jwks_uri) {
        (AuthMethod::PrivateKeyJwt, Some(jwks), None) => (
            Some(portcullis_service::oauth::assertion::validate_client_jwks(jwks).map_err(bad)?),
            None,
        ),
        (AuthMethod::PrivateKeyJwt, None, Some(uri)) => (
            None,
            Some(
                portcullis_service::oauth::remote_jwks::validate_jwks_uri(
                    uri,
                    state.oauth.insecure_allow_http_jwks_uri,
                )
                .map_err(bad)?,
            ),
        ),
        (AuthMethod::PrivateKeyJwt, Some(_), Some(_)) => {
            return Err(bad("register either jwks or jwks_uri, not both"))
        }
        (AuthMethod::PrivateKeyJwt, None, None) => {
            return Err(bad(
                "private_key_jwt clients must register a jwks or a jwks_uri",
            ))
        }
        (_, None, None) => (None, None),
        (_, _, _) => {
            return Err(bad(
                "jwks and jwks_uri are only for private_key_jwt clients",
            ))
        }
    };
    let now = state.clock.now();
    let id = format!("cl_{}", random_id());
    // Clients that authenticate with a key get no secret at all.
    let issued =
        (auth_method != AuthMethod::PrivateKeyJwt).then(|| new_secret(&id, &environment, now));
    let client = OAuthClient {
        id: id.clone(),
        tenant: admin.tenant.clone(),
        name,
        environment: environment.to_string(),
        auth_method: auth_method.as_str().to_owned(),
        grant_types,
        scopes: scopes.to_vec(),
        audiences,
        access_token_ttl_secs: i64::try_from(ttl).unwrap_or(i64::MAX),
        can_introspect: body.introspection,
        jwks,
        jwks_uri,
        status: ClientStatus::Active,
        created_at: now,
        updated_at: now,
        last_used_at: None,
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
    State(state): State<AppState>,
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
async fn load(state: &AppState, admin: &TenantAdmin, id: &str) -> Result<ClientView, ApiError> {
    let client = tenant_client(state, admin, id).await?;
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
    state: &AppState,
    admin: &TenantAdmin,
    id: &str,
) -> Result<OAuthClient, ApiError> {
    let client = tenant_client(state, admin, id).await?;
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
async fn tenant_client(
    state: &AppState,
    admin: &TenantAdmin,
    id: &str,
) -> Result<OAuthClient, ApiError> {
    if id.len() > 64 {
        return Err(ApiError::not_found());
    }
    state
        .store
        .get_client(id)
        .await?
        .filter(|c| c.tenant == admin.tenant)
        .ok_or_else(ApiError::not_found)
}

#[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/clients/{id}", tag = "clients", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The client with its secrets' metadata", body = ClientView)))]
pub async fn show(
    admin: TenantAdmin,
    State(state): State<AppState>,
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
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
    ApiJson(body): ApiJson<RotateSecret>,
) -> Result<(StatusCode, Json<RotatedSecret>), ApiError> {
    let overlap = rotation_overlap(body.overlap_secs)?;
    let client = live_client(&state, &admin, &id).await?;
    if client.auth_method == AuthMethod::PrivateKeyJwt.as_str() {
        return Err(bad("private_key_jwt clients have no secret to rotate"));
    }
    let environment = Environment::parse(&client.environment)
        .map_err(|_| ApiError::internal("stored client has an invalid environment"))?;
    let now = state.clock.now();
    let (secret, credential) = new_secret(&client.id, &environment, now);
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
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<ClientView>, ApiError> {
    let client = live_client(&state, &admin, &id).await?;
    let now = state.clock.now();
    let written = state
        .store
        .set_client_status(&admin.tenant, &client.id, ClientStatus::Disabled, now)
        .await;
    state.oauth.directory.client_changed(&client.id);
    if !written? {
        return Err(ApiError::not_found());
    }
    let max = state.oauth.lifetimes.max;
    state
        .store
        .append_revocation(
            &NewRevocation {
                tenant: admin.tenant.clone(),
                kind: RevocationKind::Client,
                subject: client.id.clone(),
                revoked_before: Some(now),
                expires_at: Some(now.saturating_add(max)),
                reason: Some("client_disabled".into()),
            },
            now,
        )
        .await?;
    record(&state, &admin, Action::OAuthClientDisable, &client.id);
    let client = tenant_client(&state, &admin, &id).await?;
    Ok(Json(client.into()))
}

/// Archives the client: see the module docs.
#[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/clients/{id}/archive", tag = "clients", params(super::openapi::TenantIdPath),
    responses((status = 200, description = "The client, archived: disabled for good, its secrets expired, its tokens revoked", body = ClientView)))]
pub async fn archive(
    admin: TenantAdmin,
    State(state): State<AppState>,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<ClientView>, ApiError> {
    let client = tenant_client(&state, &admin, &id).await?;
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

fn record(state: &AppState, admin: &TenantAdmin, action: Action, target: &str) {
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
