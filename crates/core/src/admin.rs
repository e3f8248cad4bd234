//! Who may administer what: the single place that decides whether an authenticated admin or
//! service credential may use a [`Permission`] on a tenant or on the installation as a whole.
//!
//! A credential has one [`AdminRole`] and belongs to one tenant. The role says which permissions
//! it holds ([`AdminRole::grants`]); the tenant says how far they reach: a credential of the
//! system tenant reaches the installation and every tenant, any other credential only its own
//! tenant. [`decide`] (also [`AdminPrincipal::authorize`]) combines the two, and
//! [`AdminPrincipal::authorize_grant`] adds the rule that keeps token creation from escalating
//! privilege.
//!
//! Handlers, extractors and the feed never compare roles or tenant ids themselves; they ask here,
//! so the choice between allowed and forbidden is made and tested in one place. This module must
//! never do I/O, and must never allow anything when a role and its tenant disagree (a record no
//! API can create): such a credential reaches no further than its own tenant.

use serde::{Deserialize, Serialize};

use crate::tenant::TenantId;

/// What a credential is for. Stored with the credential; parsed from the API's `role` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminRole {
    /// Administers the installation and every tenant. Belongs to the system tenant.
    GlobalAdmin,
    /// Administers exactly one tenant.
    TenantAdmin,
    /// Reads everything an administrator may read, the audit log included, and changes nothing.
    /// No read it is allowed returns a secret.
    Auditor,
    /// Creates, lists, changes, rotates and revokes its tenant's API keys, and reads the tenant.
    ApiKeyManager,
    /// A verifier or gateway: reads the revocation feed, verifies API keys and reports the
    /// gateway's denials, nothing else.
    Service,
}

impl AdminRole {
    pub const ALL: [Self; 5] = [
        Self::GlobalAdmin,
        Self::TenantAdmin,
        Self::Auditor,
        Self::ApiKeyManager,
        Self::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::GlobalAdmin => "global_admin",
            Self::TenantAdmin => "tenant_admin",
            Self::Auditor => "auditor",
            Self::ApiKeyManager => "api_key_manager",
            Self::Service => "service",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The role a new credential of `tenant` gets when none is asked for: the system tenant's
    /// credentials are global admins, any other tenant's are its tenant admins.
    pub fn default_for(tenant: &TenantId) -> Self {
        if tenant.is_system() {
            Self::GlobalAdmin
        } else {
            Self::TenantAdmin
        }
    }

    /// Whether a credential of `tenant` may hold this role. Global admins exist only in the system
    /// tenant; tenant admins and API key managers only outside it (in the system tenant they would
    /// reach every tenant, which is a global admin's job).
    pub fn exists_in(self, tenant: &TenantId) -> bool {
        match self {
            Self::GlobalAdmin => tenant.is_system(),
            Self::TenantAdmin | Self::ApiKeyManager => !tenant.is_system(),
            Self::Auditor | Self::Service => true,
        }
    }

    /// Whether this role holds `permission` (on whatever its tenant lets it reach). Matched per
    /// permission, exhaustively, so a new permission must be given to roles explicitly.
    pub fn grants(self, permission: Permission) -> bool {
        use AdminRole::*;
        use Permission::*;
        match permission {
            ManageTenants | ManageSigningKeys | ManageApiKeyPolicy => matches!(self, GlobalAdmin),
            ReadSigningKeys => matches!(self, GlobalAdmin | Auditor),
            ReadTenant | ReadApiKeys => {
                matches!(self, GlobalAdmin | TenantAdmin | Auditor | ApiKeyManager)
            }
            ManageApiKeys => matches!(self, GlobalAdmin | TenantAdmin | ApiKeyManager),
            ManageAdminTokens
            | ManageClients
            | ManageResourceServers
            | ManageUsers
            | ManageFederation => {
                matches!(self, GlobalAdmin | TenantAdmin)
            }
            ReadAdminTokens | ReadAudit | ReadClients | ReadResourceServers | ReadUsers
            | ReadAlerts | ReadFederation => {
                matches!(self, GlobalAdmin | TenantAdmin | Auditor)
            }
            ManageAlerts => matches!(self, GlobalAdmin | TenantAdmin),
            ReadRevocationFeed | VerifyApiKeys => {
                matches!(self, GlobalAdmin | TenantAdmin | Service)
            }
            // Only a gateway's own credential: reports feed the detectors, so an administrator
            // (let alone a tenant's) has no business writing them.
            ReportDenials => matches!(self, Service),
        }
    }

    /// Whether a holder of this role may create credentials of role `new`: a global admin any,
    /// a tenant admin any role no stronger than its own, every other role none.
    fn may_grant(self, new: AdminRole) -> bool {
        match self {
            Self::GlobalAdmin => true,
            Self::TenantAdmin => !matches!(new, Self::GlobalAdmin),
            Self::Auditor | Self::ApiKeyManager | Self::Service => false,
        }
    }
}

/// One thing a credential may be allowed to do. Every admin route, the revocation feed and the
/// API key verify endpoint each name exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Create, list, disable and enable tenants.
    ManageTenants,
    /// Read a tenant (and, installation-wide, list them).
    ReadTenant,
    /// Rotate and revoke signing keys.
    ManageSigningKeys,
    /// List signing keys (public halves only).
    ReadSigningKeys,
    /// Create and revoke admin and service credentials.
    ManageAdminTokens,
    /// List admin and service credentials (never their secrets).
    ReadAdminTokens,
    /// Read the audit log.
    ReadAudit,
    /// Create, change, rotate, disable, enable and revoke API keys.
    ManageApiKeys,
    /// List and show API keys and the tenant's API key policy (never the secrets).
    ReadApiKeys,
    /// Set a tenant's API key policy (the limits its own admins work within).
    ManageApiKeyPolicy,
    /// Register, rotate and disable OAuth clients.
    ManageClients,
    /// List and show OAuth clients (never their secrets).
    ReadClients,
    /// Register resource servers and rotate their secrets.
    ManageResourceServers,
    /// List and show resource servers (never their secrets).
    ReadResourceServers,
    /// Create, change, disable, enable and delete users; send invitations and reset links.
    ManageUsers,
    /// List and show users (never their password hashes).
    ReadUsers,
    /// Read the revocation feed (snapshot and stream).
    ReadRevocationFeed,
    /// Ask `POST /v1/api-keys/verify` whether an API key is good.
    VerifyApiKeys,
    /// List and show the detectors' alerts.
    ReadAlerts,
    /// Acknowledge and resolve alerts.
    ManageAlerts,
    /// Add and remove trusted external issuers and trust rules (workload identity): what lets a
    /// CI job or pod get tokens, so as strong as registering a client.
    ManageFederation,
    /// List and show trusted issuers and trust rules.
    ReadFederation,
    /// Send a standalone gateway's denials to `POST /v1/gateway/denials` (for the detectors).
    ReportDenials,
}

impl Permission {
    pub const ALL: [Self; 23] = [
        Self::ManageTenants,
        Self::ReadTenant,
        Self::ManageSigningKeys,
        Self::ReadSigningKeys,
        Self::ManageAdminTokens,
        Self::ReadAdminTokens,
        Self::ReadAudit,
        Self::ManageApiKeys,
        Self::ReadApiKeys,
        Self::ManageApiKeyPolicy,
        Self::ManageClients,
        Self::ReadClients,
        Self::ManageResourceServers,
        Self::ReadResourceServers,
        Self::ManageUsers,
        Self::ReadUsers,
        Self::ReadRevocationFeed,
        Self::VerifyApiKeys,
        Self::ReadAlerts,
        Self::ManageAlerts,
        Self::ManageFederation,
        Self::ReadFederation,
        Self::ReportDenials,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ManageTenants => "manage_tenants",
            Self::ReadTenant => "read_tenant",
            Self::ManageSigningKeys => "manage_signing_keys",
            Self::ReadSigningKeys => "read_signing_keys",
            Self::ManageAdminTokens => "manage_admin_tokens",
            Self::ReadAdminTokens => "read_admin_tokens",
            Self::ReadAudit => "read_audit",
            Self::ManageApiKeys => "manage_api_keys",
            Self::ReadApiKeys => "read_api_keys",
            Self::ManageApiKeyPolicy => "manage_api_key_policy",
            Self::ManageClients => "manage_clients",
            Self::ReadClients => "read_clients",
            Self::ManageResourceServers => "manage_resource_servers",
            Self::ReadResourceServers => "read_resource_servers",
            Self::ManageUsers => "manage_users",
            Self::ReadUsers => "read_users",
            Self::ReadRevocationFeed => "read_revocation_feed",
            Self::VerifyApiKeys => "verify_api_keys",
            Self::ReadAlerts => "read_alerts",
            Self::ManageAlerts => "manage_alerts",
            Self::ManageFederation => "manage_federation",
            Self::ReadFederation => "read_federation",
            Self::ReportDenials => "report_denials",
        }
    }
}

/// An authenticated admin or service credential: the result of checking a bearer token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPrincipal {
    pub credential_id: String,
    pub tenant: TenantId,
    pub role: AdminRole,
}

/// What an operation touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminTarget<'a> {
    /// The installation as a whole (tenant lifecycle, signing keys, every tenant's data at once).
    Global,
    /// One tenant's resources.
    Tenant(&'a TenantId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdminDenied {
    /// The target is the installation and the credential reaches only one tenant.
    #[error("global_admin_required")]
    GlobalAdminRequired,
    /// The target is a tenant the credential does not reach.
    #[error("tenant_mismatch")]
    TenantMismatch,
    /// The credential reaches the target but its role lacks the permission.
    #[error("role_lacks_permission")]
    RoleLacksPermission,
    /// The credential may not create a credential of the asked-for role.
    #[error("role_not_grantable")]
    RoleNotGrantable,
}

/// Why a credential cannot be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrantRefused {
    /// The creator may not (403).
    #[error(transparent)]
    Denied(#[from] AdminDenied),
    /// No credential of that tenant can hold that role, whoever asks (400).
    #[error("role_not_available_in_tenant")]
    RoleNotAvailableInTenant,
}

/// The one decision: may `principal` use `permission` on `target`?
///
/// Reach is checked before the role, so a credential asking beyond its tenant is told so
/// (`tenant_mismatch`, `global_admin_required`) whatever its role.
pub fn decide(
    principal: &AdminPrincipal,
    permission: Permission,
    target: AdminTarget<'_>,
) -> Result<(), AdminDenied> {
    let installation_wide = principal.installation_wide();
    match target {
        AdminTarget::Global if !installation_wide => return Err(AdminDenied::GlobalAdminRequired),
        AdminTarget::Tenant(t) if !installation_wide && *t != principal.tenant => {
            return Err(AdminDenied::TenantMismatch)
        }
        AdminTarget::Global | AdminTarget::Tenant(_) => {}
    }
    if principal.role.grants(permission) {
        Ok(())
    } else {
        Err(AdminDenied::RoleLacksPermission)
    }
}

impl AdminPrincipal {
    /// See [`decide`].
    pub fn authorize(
        &self,
        permission: Permission,
        target: AdminTarget<'_>,
    ) -> Result<(), AdminDenied> {
        decide(self, permission, target)
    }

    /// Whether this credential reaches the installation and every tenant: it belongs to the
    /// system tenant and its role may exist there.
    fn installation_wide(&self) -> bool {
        self.tenant.is_system() && self.role.exists_in(&self.tenant)
    }

    /// The widest target this credential reaches: the installation for a system-tenant
    /// credential, its own tenant otherwise. What the feed and the verify endpoint serve when
    /// the caller names no tenant.
    pub fn home(&self) -> AdminTarget<'_> {
        if self.installation_wide() {
            AdminTarget::Global
        } else {
            AdminTarget::Tenant(&self.tenant)
        }
    }

    /// May this credential create a credential of role `role` in `tenant`? It must manage admin
    /// tokens there, may grant only roles no stronger than its own, and the role must exist in
    /// that tenant.
    pub fn authorize_grant(&self, role: AdminRole, tenant: &TenantId) -> Result<(), GrantRefused> {
        decide(
            self,
            Permission::ManageAdminTokens,
            AdminTarget::Tenant(tenant),
        )?;
        if !self.role.may_grant(role) {
            return Err(AdminDenied::RoleNotGrantable.into());
        }
        if !role.exists_in(tenant) {
            return Err(GrantRefused::RoleNotAvailableInTenant);
        }
        Ok(())
    }

    /// Who this admin is in audit events (`admin:<credential id>`).
    pub fn actor(&self) -> crate::audit::Actor {
        crate::audit::Actor::admin(&self.credential_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantId {
        TenantId::parse(s).expect("valid")
    }

    fn principal(role: AdminRole, tenant: &str) -> AdminPrincipal {
        AdminPrincipal {
            credential_id: "id".into(),
            tenant: t(tenant),
            role,
        }
    }

    /// The role x permission table, written out independently of [`AdminRole::grants`].
    /// Columns: global_admin, tenant_admin, auditor, api_key_manager, service.
    const TABLE: [(Permission, [bool; 5]); 23] = {
        use Permission::*;
        const Y: bool = true;
        const N: bool = false;
        [
            (ManageTenants, [Y, N, N, N, N]),
            (ReadTenant, [Y, Y, Y, Y, N]),
            (ManageSigningKeys, [Y, N, N, N, N]),
            (ReadSigningKeys, [Y, N, Y, N, N]),
            (ManageAdminTokens, [Y, Y, N, N, N]),
            (ReadAdminTokens, [Y, Y, Y, N, N]),
            (ReadAudit, [Y, Y, Y, N, N]),
            (ManageApiKeys, [Y, Y, N, Y, N]),
            (ReadApiKeys, [Y, Y, Y, Y, N]),
            (ManageApiKeyPolicy, [Y, N, N, N, N]),
            (ManageClients, [Y, Y, N, N, N]),
            (ReadClients, [Y, Y, Y, N, N]),
            (ManageResourceServers, [Y, Y, N, N, N]),
            (ReadResourceServers, [Y, Y, Y, N, N]),
            (ManageUsers, [Y, Y, N, N, N]),
            (ReadUsers, [Y, Y, Y, N, N]),
            (ReadRevocationFeed, [Y, Y, N, N, Y]),
            (VerifyApiKeys, [Y, Y, N, N, Y]),
            (ReadAlerts, [Y, Y, Y, N, N]),
            (ManageAlerts, [Y, Y, N, N, N]),
            (ManageFederation, [Y, Y, N, N, N]),
            (ReadFederation, [Y, Y, Y, N, N]),
            (ReportDenials, [N, N, N, N, Y]),
        ]
    };

    fn column(role: AdminRole) -> usize {
        AdminRole::ALL
            .iter()
            .position(|r| *r == role)
            .expect("listed")
    }

    #[test]
    fn the_table_lists_every_permission_once() {
        let listed: Vec<_> = TABLE.iter().map(|(p, _)| *p).collect();
        assert_eq!(listed, Permission::ALL);
    }

    #[test]
    fn role_names_round_trip_and_unknown_names_are_refused() {
        for role in AdminRole::ALL {
            assert_eq!(AdminRole::parse(role.as_str()), Some(role));
            let json = serde_json::to_value(role).expect("json");
            assert_eq!(json, role.as_str());
        }
        for bad in ["", "admin", "Service", "global-admin", "root", "service "] {
            assert_eq!(AdminRole::parse(bad), None, "{bad:?}");
        }
    }

    /// Every role, in every tenant it may exist in and in the ones it may not, against every
    /// permission on every kind of target.
    #[test]
    fn full_role_permission_target_table() {
        let (system, acme, globex) = (t("system"), t("acme"), t("globex"));
        let targets = [
            ("global", AdminTarget::Global),
            ("system", AdminTarget::Tenant(&system)),
            ("acme", AdminTarget::Tenant(&acme)),
            ("globex", AdminTarget::Tenant(&globex)),
        ];
        let mut checked = 0;
        for role in AdminRole::ALL {
            for home in ["system", "acme"] {
                let p = principal(role, home);
                // Reach: a system-tenant credential whose role may exist there reaches
                // everything; any other credential only its own tenant.
                let wide = home == "system"
                    && role != AdminRole::TenantAdmin
                    && role != AdminRole::ApiKeyManager;
                for (permission, row) in TABLE {
                    let granted = row[column(role)];
                    for (name, target) in &targets {
                        let reaches = wide || *name == home;
                        let want = if !reaches {
                            Err(if *name == "global" {
                                AdminDenied::GlobalAdminRequired
                            } else {
                                AdminDenied::TenantMismatch
                            })
                        } else if granted {
                            Ok(())
                        } else {
                            Err(AdminDenied::RoleLacksPermission)
                        };
                        assert_eq!(
                            decide(&p, permission, target.clone()),
                            want,
                            "{} of {home}, {} on {name}",
                            role.as_str(),
                            permission.as_str()
                        );
                        assert_eq!(p.authorize(permission, target.clone()), want);
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 5 * 2 * 23 * 4);
    }

    #[test]
    fn a_global_admin_outside_the_system_tenant_reaches_only_its_tenant() {
        // No API creates this record; if storage ever holds one it must not open everything.
        let p = principal(AdminRole::GlobalAdmin, "acme");
        assert_eq!(
            p.authorize(Permission::ManageTenants, AdminTarget::Global),
            Err(AdminDenied::GlobalAdminRequired)
        );
        assert_eq!(
            p.authorize(Permission::ReadAudit, AdminTarget::Tenant(&t("globex"))),
            Err(AdminDenied::TenantMismatch)
        );
        assert_eq!(p.home(), AdminTarget::Tenant(&t("acme")));
    }

    #[test]
    fn home_is_the_installation_only_for_system_credentials() {
        assert_eq!(
            principal(AdminRole::Service, "system").home(),
            AdminTarget::Global
        );
        assert_eq!(
            principal(AdminRole::GlobalAdmin, "system").home(),
            AdminTarget::Global
        );
        assert_eq!(
            principal(AdminRole::Service, "acme").home(),
            AdminTarget::Tenant(&t("acme"))
        );
        assert_eq!(
            principal(AdminRole::TenantAdmin, "system").home(),
            AdminTarget::Tenant(&t("system"))
        );
    }

    #[test]
    fn default_roles_follow_the_tenant() {
        assert_eq!(AdminRole::default_for(&t("system")), AdminRole::GlobalAdmin);
        assert_eq!(AdminRole::default_for(&t("acme")), AdminRole::TenantAdmin);
        for tenant in ["system", "acme"] {
            assert!(AdminRole::default_for(&t(tenant)).exists_in(&t(tenant)));
        }
    }

    /// Who may create which credential where: no role can create one stronger than itself, and
    /// only a global admin creates system-tenant credentials.
    #[test]
    fn granting_never_escalates() {
        use AdminRole::*;
        let (system, acme, globex) = (t("system"), t("acme"), t("globex"));
        let denied = |d| Err(GrantRefused::Denied(d));
        let absent = Err(GrantRefused::RoleNotAvailableInTenant);

        let global = principal(GlobalAdmin, "system");
        for role in [GlobalAdmin, Auditor, Service] {
            assert_eq!(global.authorize_grant(role, &system), Ok(()), "{role:?}");
        }
        for role in [TenantAdmin, Auditor, ApiKeyManager, Service] {
            assert_eq!(global.authorize_grant(role, &acme), Ok(()), "{role:?}");
        }
        for role in [TenantAdmin, ApiKeyManager] {
            assert_eq!(global.authorize_grant(role, &system), absent, "{role:?}");
        }
        assert_eq!(global.authorize_grant(GlobalAdmin, &acme), absent);

        let admin = principal(TenantAdmin, "acme");
        for role in [TenantAdmin, Auditor, ApiKeyManager, Service] {
            assert_eq!(admin.authorize_grant(role, &acme), Ok(()), "{role:?}");
            assert_eq!(
                admin.authorize_grant(role, &globex),
                denied(AdminDenied::TenantMismatch)
            );
            assert_eq!(
                admin.authorize_grant(role, &system),
                denied(AdminDenied::TenantMismatch)
            );
        }
        assert_eq!(
            admin.authorize_grant(GlobalAdmin, &acme),
            denied(AdminDenied::RoleNotGrantable)
        );

        for weak in [Auditor, ApiKeyManager, Service] {
            for home in ["acme", "system"] {
                let p = principal(weak, home);
                for role in AdminRole::ALL {
                    for tenant in [&system, &acme] {
                        let got = p.authorize_grant(role, tenant);
                        assert!(
                            matches!(got, Err(GrantRefused::Denied(_))),
                            "{weak:?} of {home} granted {role:?} in {tenant}: {got:?}"
                        );
                    }
                }
            }
        }
    }
}
