//! Who is calling: what a verified credential says, in one shape for tokens and API keys.

use portcullis_core::confirmation::Confirmation;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;

/// The kind of credential a request presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CredentialKind {
    AccessToken,
    ApiKey,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "access_token",
            Self::ApiKey => "api_key",
        }
    }
}

/// A verified caller. Handlers receive it from the axum extractor; it never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Principal {
    /// `sub` of a token; the owner of an API key.
    pub subject: String,
    /// `client_id` of a token; `None` for API keys.
    pub client_id: Option<String>,
    pub tenant: Option<TenantId>,
    pub scopes: Vec<String>,
    pub roles: Vec<String>,
    pub kind: CredentialKind,
    /// The token's `jti` or the API key's id.
    pub credential_id: String,
    /// The token's issuer; `None` for API keys.
    pub issuer: Option<String>,
    /// The API key's environment; `None` for tokens.
    pub environment: Option<String>,
    pub expires_at: Option<Timestamp>,
    /// The key a token is bound to (RFC 7800 `cnf`: a DPoP key or a client certificate), which
    /// the request proved it holds; `None` for bearer tokens and API keys.
    pub confirmation: Option<Confirmation>,
}

impl Principal {
    /// A principal with only its kind, subject and credential id; set the other (public) fields
    /// as needed. The type is `#[non_exhaustive]` so fields can be added without breaking
    /// embedders: build it with this, not a struct literal.
    pub fn new(
        kind: CredentialKind,
        subject: impl Into<String>,
        credential_id: impl Into<String>,
    ) -> Self {
        Self {
            subject: subject.into(),
            client_id: None,
            tenant: None,
            scopes: Vec::new(),
            roles: Vec::new(),
            kind,
            credential_id: credential_id.into(),
            issuer: None,
            environment: None,
            expires_at: None,
            confirmation: None,
        }
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}
