//! Tenants: every client, API key, user, admin credential and audit event belongs to exactly one.
//!
//! A [`TenantId`] is a validated slug, so a path segment or a JSON field that is not one is
//! rejected at the edge. The reserved [`TenantId::system`] tenant owns global administrators and
//! events about the installation itself (signing keys, bootstrap); it cannot be created or
//! disabled through the API.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

pub const SYSTEM_TENANT: &str = "system";
const RESERVED: &[&str] = &[SYSTEM_TENANT, "admin", "api", "default", "global", "root"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantIdError {
    #[error("a tenant id is 2 to 63 characters: lowercase letters, digits and single hyphens, starting with a letter and not ending with a hyphen")]
    Invalid,
    #[error("tenant id `{0}` is reserved")]
    Reserved(String),
}

impl TenantId {
    /// Parses an id for an existing tenant (any valid slug, including the system tenant).
    pub fn parse(s: &str) -> Result<Self, TenantIdError> {
        let b = s.as_bytes();
        let ok = (2..=63).contains(&b.len())
            && b[0].is_ascii_lowercase()
            && b[b.len() - 1] != b'-'
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && !s.contains("--");
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(TenantIdError::Invalid)
        }
    }

    /// Parses an id for a tenant about to be created: valid and not reserved.
    pub fn parse_new(s: &str) -> Result<Self, TenantIdError> {
        let id = Self::parse(s)?;
        if RESERVED.contains(&s) {
            return Err(TenantIdError::Reserved(s.to_owned()));
        }
        Ok(id)
    }

    pub fn system() -> Self {
        Self(SYSTEM_TENANT.to_owned())
    }

    pub fn is_system(&self) -> bool {
        self.0 == SYSTEM_TENANT
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    Active,
    Disabled,
}

impl TenantStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "disabled" => Some(Self::Disabled),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_slugs() {
        for s in ["acme", "a1", "acme-corp", "x-1-2", &"a".repeat(63)] {
            assert!(TenantId::parse(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn invalid_slugs() {
        for s in [
            "",
            "a",
            "Acme",
            "1acme",
            "-acme",
            "acme-",
            "ac--me",
            "ac me",
            "acme/x",
            "../x",
            "acmé",
            "acme_corp",
            &"a".repeat(64),
        ] {
            assert_eq!(TenantId::parse(s), Err(TenantIdError::Invalid), "{s}");
        }
    }

    #[test]
    fn reserved_ids_cannot_be_created_but_system_can_be_named() {
        assert!(matches!(
            TenantId::parse_new("system"),
            Err(TenantIdError::Reserved(_))
        ));
        assert!(TenantId::parse("system").expect("valid").is_system());
        assert!(TenantId::parse_new("acme").is_ok());
    }

    #[test]
    fn deserialising_validates() {
        assert!(serde_json::from_str::<TenantId>("\"acme\"").is_ok());
        assert!(serde_json::from_str::<TenantId>("\"ACME\"").is_err());
    }
}
