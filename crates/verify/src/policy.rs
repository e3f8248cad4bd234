//! What an operation requires of a verified caller: credential kinds, scopes (any or all),
//! roles, tenant binding, and (when it differs from the verifier's) the audience and the API key
//! environment. Pure decisions, no I/O.
//!
//! Tenant binding compares the credential's tenant with the tenant of the resource being
//! reached (from the path or a header the caller names). A policy that binds a tenant refuses
//! when the resource's tenant cannot be determined: it must never fall back to "any tenant".

use portcullis_core::credential::Environment;
use portcullis_core::tenant::TenantId;

use crate::denial::Reason;
use crate::principal::{CredentialKind, Principal};

/// Which of a list must be held.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Requirement {
    /// Nothing required.
    #[default]
    None,
    /// At least one of these.
    Any(Vec<String>),
    /// Every one of these.
    All(Vec<String>),
}

impl Requirement {
    fn met_by(&self, has: impl Fn(&str) -> bool) -> bool {
        match self {
            Self::None => true,
            Self::Any(items) => items.iter().any(|i| has(i)),
            Self::All(items) => items.iter().all(|i| has(i)),
        }
    }
}

/// Where the tenant of the resource being reached comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TenantBinding {
    /// No tenant check (single-tenant APIs).
    #[default]
    Unbound,
    /// A named path parameter of the matched route (axum `{name}`).
    PathParam(String),
    /// A request header.
    Header(String),
}

/// The requirements of one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub accept_access_tokens: bool,
    pub accept_api_keys: bool,
    pub scopes: Requirement,
    pub roles: Requirement,
    pub tenant: TenantBinding,
    /// The audience tokens must name (and API keys must be allowed for); `None` = the
    /// verifier's configured audience.
    pub audience: Option<String>,
    /// The environment API keys must belong to; `None` = the verifier's configured one.
    pub api_key_environment: Option<Environment>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            accept_access_tokens: true,
            accept_api_keys: false,
            scopes: Requirement::None,
            roles: Requirement::None,
            tenant: TenantBinding::Unbound,
            audience: None,
            api_key_environment: None,
        }
    }
}

impl Policy {
    /// Access tokens only, nothing else required.
    pub fn access_token() -> Self {
        Self::default()
    }

    pub fn also_api_keys(mut self) -> Self {
        self.accept_api_keys = true;
        self
    }

    pub fn api_keys_only(mut self) -> Self {
        self.accept_access_tokens = false;
        self.accept_api_keys = true;
        self
    }

    pub fn all_scopes<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = Requirement::All(scopes.into_iter().map(Into::into).collect());
        self
    }

    pub fn any_scope<I: IntoIterator<Item = S>, S: Into<String>>(mut self, scopes: I) -> Self {
        self.scopes = Requirement::Any(scopes.into_iter().map(Into::into).collect());
        self
    }

    pub fn any_role<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.roles = Requirement::Any(roles.into_iter().map(Into::into).collect());
        self
    }

    pub fn all_roles<I: IntoIterator<Item = S>, S: Into<String>>(mut self, roles: I) -> Self {
        self.roles = Requirement::All(roles.into_iter().map(Into::into).collect());
        self
    }

    pub fn tenant_from_path(mut self, param: impl Into<String>) -> Self {
        self.tenant = TenantBinding::PathParam(param.into());
        self
    }

    pub fn tenant_from_header(mut self, header: impl Into<String>) -> Self {
        self.tenant = TenantBinding::Header(header.into().to_ascii_lowercase());
        self
    }

    /// Tokens must name `audience` in `aud` (instead of the verifier's audience); API keys are
    /// checked against it too. An empty audience is ignored (the verifier's applies).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        let audience = audience.into();
        self.audience = (!audience.is_empty()).then_some(audience);
        self
    }

    /// API keys must belong to `environment` (instead of the verifier's environment).
    pub fn api_key_environment(mut self, environment: Environment) -> Self {
        self.api_key_environment = Some(environment);
        self
    }

    pub fn accepts(&self, kind: CredentialKind) -> bool {
        match kind {
            CredentialKind::AccessToken => self.accept_access_tokens,
            CredentialKind::ApiKey => self.accept_api_keys,
        }
    }
}

/// Decides whether `p` may perform an operation under `policy` on a resource of
/// `resource_tenant`. `resource_tenant` is `None` when the binding found nothing (or a value
/// that is not a tenant id): a bound policy then refuses.
pub fn authorize(
    p: &Principal,
    policy: &Policy,
    resource_tenant: Option<&TenantId>,
) -> Result<(), Reason> {
    if !policy.accepts(p.kind) {
        return Err(Reason::CredentialKindNotAccepted);
    }
    if policy.tenant != TenantBinding::Unbound {
        let Some(want) = resource_tenant else {
            return Err(Reason::TenantUnresolved);
        };
        if p.tenant.as_ref() != Some(want) {
            return Err(Reason::TenantMismatch);
        }
    }
    if !policy.scopes.met_by(|s| p.has_scope(s)) {
        return Err(Reason::MissingScope);
    }
    if !policy.roles.met_by(|r| p.has_role(r)) {
        return Err(Reason::MissingRole);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).expect("tenant")
    }

    fn principal(kind: CredentialKind) -> Principal {
        Principal {
            subject: "svc".into(),
            client_id: Some("cl_1".into()),
            tenant: Some(tenant("acme")),
            scopes: vec!["a".into(), "b".into()],
            roles: vec!["admin".into()],
            kind,
            credential_id: "j1".into(),
            issuer: None,
            environment: None,
            expires_at: None,
            confirmation: None,
        }
    }

    type Case<'a> = (
        &'a Principal,
        Policy,
        Option<&'a TenantId>,
        Result<(), Reason>,
    );

    #[test]
    fn table() {
        let acme = tenant("acme");
        let globex = tenant("globex");
        let tok = principal(CredentialKind::AccessToken);
        let key = principal(CredentialKind::ApiKey);
        let cases: Vec<Case> = vec![
            (&tok, Policy::access_token(), None, Ok(())),
            (
                &key,
                Policy::access_token(),
                None,
                Err(Reason::CredentialKindNotAccepted),
            ),
            (&key, Policy::access_token().also_api_keys(), None, Ok(())),
            (
                &tok,
                Policy::access_token().api_keys_only(),
                None,
                Err(Reason::CredentialKindNotAccepted),
            ),
            (
                &tok,
                Policy::access_token().all_scopes(["a", "b"]),
                None,
                Ok(()),
            ),
            (
                &tok,
                Policy::access_token().all_scopes(["a", "c"]),
                None,
                Err(Reason::MissingScope),
            ),
            (
                &tok,
                Policy::access_token().any_scope(["c", "b"]),
                None,
                Ok(()),
            ),
            (
                &tok,
                Policy::access_token().any_scope(["c", "d"]),
                None,
                Err(Reason::MissingScope),
            ),
            (
                &tok,
                Policy::access_token().any_role(["admin"]),
                None,
                Ok(()),
            ),
            (
                &tok,
                Policy::access_token().all_roles(["admin", "ops"]),
                None,
                Err(Reason::MissingRole),
            ),
            (
                &tok,
                Policy::access_token().tenant_from_path("t"),
                Some(&acme),
                Ok(()),
            ),
            (
                &tok,
                Policy::access_token().tenant_from_path("t"),
                Some(&globex),
                Err(Reason::TenantMismatch),
            ),
            (
                &tok,
                Policy::access_token().tenant_from_header("x-tenant"),
                None,
                Err(Reason::TenantUnresolved),
            ),
        ];
        for (i, (p, policy, t, want)) in cases.into_iter().enumerate() {
            assert_eq!(authorize(p, &policy, t), want, "case {i}");
        }
    }

    #[test]
    fn a_tenantless_credential_never_passes_a_tenant_bound_policy() {
        let mut p = principal(CredentialKind::AccessToken);
        p.tenant = None;
        let acme = tenant("acme");
        assert_eq!(
            authorize(
                &p,
                &Policy::access_token().tenant_from_path("t"),
                Some(&acme)
            ),
            Err(Reason::TenantMismatch)
        );
    }

    #[test]
    fn tenant_mismatch_is_a_403_outside() {
        assert_eq!(
            Reason::TenantMismatch.class(),
            crate::denial::DenialClass::InsufficientScope
        );
        assert_eq!(
            Reason::MissingScope.class().error_code(),
            Some("insufficient_scope")
        );
    }
}
