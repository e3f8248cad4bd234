//! Who may administer what: the single place that decides whether an authenticated admin
//! credential may act on a tenant or on the installation as a whole.
//!
//! Handlers never compare tenant ids themselves; they ask [`AdminPrincipal::authorize`], so the
//! choice between allowed and forbidden is made here and tested here.

use serde::{Deserialize, Serialize};

use crate::tenant::TenantId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdminRole {
    /// Administers the installation and every tenant. Belongs to the system tenant.
    GlobalAdmin,
    /// Administers exactly one tenant.
    TenantAdmin,
}

impl AdminRole {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GlobalAdmin => "global_admin",
            Self::TenantAdmin => "tenant_admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "global_admin" => Some(Self::GlobalAdmin),
            "tenant_admin" => Some(Self::TenantAdmin),
            _ => None,
        }
    }
}

/// An authenticated administrator: the result of checking an admin credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPrincipal {
    pub credential_id: String,
    pub tenant: TenantId,
    pub role: AdminRole,
}

/// What an admin operation touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdminTarget<'a> {
    /// The installation as a whole (tenant lifecycle, signing keys, global admins).
    Global,
    /// One tenant's resources.
    Tenant(&'a TenantId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdminDenied {
    #[error("global_admin_required")]
    GlobalAdminRequired,
    #[error("tenant_mismatch")]
    TenantMismatch,
}

impl AdminPrincipal {
    pub fn authorize(&self, target: AdminTarget<'_>) -> Result<(), AdminDenied> {
        match (self.role, target) {
            (AdminRole::GlobalAdmin, _) => Ok(()),
            (AdminRole::TenantAdmin, AdminTarget::Global) => Err(AdminDenied::GlobalAdminRequired),
            (AdminRole::TenantAdmin, AdminTarget::Tenant(t)) if *t == self.tenant => Ok(()),
            (AdminRole::TenantAdmin, AdminTarget::Tenant(_)) => Err(AdminDenied::TenantMismatch),
        }
    }

    /// The actor string recorded in audit events.
    pub fn actor(&self) -> String {
        format!("admin:{}", self.credential_id)
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

    #[test]
    fn global_admin_reaches_everything() {
        let p = principal(AdminRole::GlobalAdmin, "system");
        assert_eq!(p.authorize(AdminTarget::Global), Ok(()));
        assert_eq!(p.authorize(AdminTarget::Tenant(&t("acme"))), Ok(()));
    }

    #[test]
    fn tenant_admin_reaches_only_its_tenant() {
        let p = principal(AdminRole::TenantAdmin, "acme");
        assert_eq!(p.authorize(AdminTarget::Tenant(&t("acme"))), Ok(()));
        assert_eq!(
            p.authorize(AdminTarget::Tenant(&t("globex"))),
            Err(AdminDenied::TenantMismatch)
        );
        assert_eq!(
            p.authorize(AdminTarget::Tenant(&t("system"))),
            Err(AdminDenied::TenantMismatch)
        );
        assert_eq!(
            p.authorize(AdminTarget::Global),
            Err(AdminDenied::GlobalAdminRequired)
        );
    }
}
