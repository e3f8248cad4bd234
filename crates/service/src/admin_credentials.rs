//! Admin and service credentials as the service makes them: [`mint`] (a new secret and the
//! record that stores only its digest), [`issue`] (stored and audited; the admin API and the
//! first-start bootstrap), and [`create`], the admin API's operation: the role asked for or the
//! tenant's administrator role, core's decision whether the caller may grant it
//! (`AdminPrincipal::authorize_grant`), an active tenant, then [`issue`].
//!
//! This module must never store a credential before that decision, and never return a secret
//! anywhere but in the one [`Created`] value (the caller shows it once).

use portcullis_core::admin::{AdminDenied, AdminPrincipal, AdminRole, GrantRefused};
use portcullis_core::audit::{Action, Actor, Outcome};
use portcullis_core::credential::{Credential, CredentialKind, Environment};
use portcullis_core::tenant::{TenantId, TenantStatus};
use portcullis_core::time::{Clock, Timestamp};
use portcullis_store::{AdminCredentialRecord, Store, StoreError};

use crate::audit::{AuditSink, EventDraft, RequestOrigin};

/// A new administrator credential and the record that stores its digest. The role follows the
/// tenant: the system tenant's admins are global admins.
pub fn mint(
    tenant: &TenantId,
    name: String,
    created_by: String,
    now: Timestamp,
) -> (AdminCredentialRecord, Credential) {
    mint_with_role(
        tenant,
        AdminRole::default_for(tenant),
        name,
        created_by,
        now,
    )
}

/// A new credential of `role` and the record that stores its digest. Whoever calls this has
/// already decided the role may be created (or is the first-start bootstrap).
pub fn mint_with_role(
    tenant: &TenantId,
    role: AdminRole,
    name: String,
    created_by: String,
    now: Timestamp,
) -> (AdminCredentialRecord, Credential) {
    let credential = Credential::generate(
        CredentialKind::AdminToken,
        Environment::live(),
        &mut rand::rngs::OsRng,
    );
    let record = AdminCredentialRecord {
        id: credential.id().to_owned(),
        tenant: tenant.clone(),
        role,
        name,
        display_prefix: credential.display_prefix(),
        secret_digest: credential.digest().to_vec(),
        created_at: now,
        created_by: Some(created_by),
        revoked_at: None,
        last_used_at: None,
    };
    (record, credential)
}

/// Who is creating a credential, for `created_by` and the audit log.
#[derive(Debug)]
pub struct Issuer<'a> {
    pub actor: Actor,
    pub credential_id: Option<String>,
    pub origin: &'a RequestOrigin,
}

/// A stored credential and its secret, to be shown once.
#[derive(Debug)]
pub struct Created {
    pub record: AdminCredentialRecord,
    pub credential: Credential,
}

/// Mints a credential of `role`, stores it and audits its creation. Whoever calls this has
/// decided the role may be created.
pub async fn issue(
    store: &dyn Store,
    clock: &dyn Clock,
    audit: &AuditSink,
    tenant: &TenantId,
    role: AdminRole,
    name: String,
    issuer: Issuer<'_>,
) -> Result<Created, StoreError> {
    let (record, credential) =
        mint_with_role(tenant, role, name, issuer.actor.to_string(), clock.now());
    store.insert_admin_credential(&record).await?;
    audit.record(
        EventDraft {
            tenant: tenant.clone(),
            actor: issuer.actor,
            credential_id: issuer.credential_id,
            action: Action::AdminTokenCreate,
            outcome: Outcome::Success,
            reason: None,
            target: Some(record.id.clone()),
        },
        issuer.origin,
    );
    Ok(Created { record, credential })
}

/// A credential asked for through the admin API (the name already checked as a display name).
#[derive(Debug)]
pub struct CreateRequest {
    pub name: String,
    /// `None`: the tenant's administrator role ([`AdminRole::default_for`]).
    pub role: Option<AdminRole>,
}

/// Why no credential was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateRefused {
    /// The caller may not create it (core's decision; the caller audits and answers 403).
    Denied(AdminDenied),
    /// No credential of that tenant can hold that role, whoever asks.
    RoleNotAvailableInTenant(AdminRole),
    TenantNotFound,
    TenantDisabled,
}

/// Creates a credential of `tenant` for `principal`, if core lets it grant the role and the
/// tenant is active.
pub async fn create(
    store: &dyn Store,
    clock: &dyn Clock,
    audit: &AuditSink,
    principal: &AdminPrincipal,
    tenant: &TenantId,
    request: CreateRequest,
    origin: &RequestOrigin,
) -> Result<Result<Created, CreateRefused>, StoreError> {
    let role = request
        .role
        .unwrap_or_else(|| AdminRole::default_for(tenant));
    match principal.authorize_grant(role, tenant) {
        Ok(()) => {}
        Err(GrantRefused::Denied(denied)) => return Ok(Err(CreateRefused::Denied(denied))),
        Err(GrantRefused::RoleNotAvailableInTenant) => {
            return Ok(Err(CreateRefused::RoleNotAvailableInTenant(role)))
        }
    }
    let Some(stored) = store.get_tenant(tenant).await? else {
        return Ok(Err(CreateRefused::TenantNotFound));
    };
    if stored.status != TenantStatus::Active {
        return Ok(Err(CreateRefused::TenantDisabled));
    }
    let created = issue(
        store,
        clock,
        audit,
        tenant,
        role,
        request.name,
        Issuer {
            actor: principal.actor(),
            credential_id: Some(principal.credential_id.clone()),
            origin,
        },
    )
    .await?;
    Ok(Ok(created))
}
