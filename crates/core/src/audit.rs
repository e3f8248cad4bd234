//! The audit event: one record per issuance, use, failure, rotation and revocation.
//!
//! Events carry identifiers, never secrets: a credential appears by its non-secret id only.
//! The `reason` field holds the precise internal reason code that the client never sees.

use serde::{Deserialize, Serialize};

use crate::tenant::TenantId;
use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    Failure,
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "success" => Some(Self::Success),
            "failure" => Some(Self::Failure),
            "denied" => Some(Self::Denied),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Unique, time-ordered event id.
    pub id: String,
    pub occurred_at: Timestamp,
    pub tenant: TenantId,
    /// Who acted: `admin:<credential id>`, `client:<client id>`, `system`, `anonymous`.
    pub actor: String,
    /// The non-secret id of the credential presented, if any.
    pub credential_id: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// Dotted action name: `tenant.create`, `admin.authenticate`, `signing_key.generate`, ...
    pub action: String,
    pub outcome: Outcome,
    /// Internal reason code (`tenant_mismatch`, `credential_checksum_mismatch`, ...).
    pub reason: Option<String>,
    pub request_id: Option<String>,
    /// The object acted upon, for example the tenant id created or the key id rotated.
    pub target: Option<String>,
}

impl AuditEvent {
    /// Longest user agent kept; the rest is cut so a client cannot bloat the log.
    pub const MAX_USER_AGENT: usize = 256;

    /// Replaces anything shaped like a Portcullis secret in every text field by its non-secret
    /// prefix (a client that sends its secret where its id belongs, say). Run on every event
    /// before it is stored: events carry identifiers, never secrets.
    pub fn redact_secrets(&mut self) {
        fn field(s: &mut String) {
            if let std::borrow::Cow::Owned(red) = crate::credential::redact_secrets(s) {
                *s = red;
            }
        }
        field(&mut self.actor);
        field(&mut self.action);
        for f in [
            &mut self.credential_id,
            &mut self.client_ip,
            &mut self.user_agent,
            &mut self.reason,
            &mut self.request_id,
            &mut self.target,
        ]
        .into_iter()
        .flatten()
        {
            field(f);
        }
    }

    pub fn truncate_user_agent(ua: &str) -> String {
        let mut end = ua.len().min(Self::MAX_USER_AGENT);
        while !ua.is_char_boundary(end) {
            end -= 1;
        }
        ua[..end].to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_truncation_respects_char_boundaries() {
        let ua = "é".repeat(200);
        let cut = AuditEvent::truncate_user_agent(&ua);
        assert!(cut.len() <= AuditEvent::MAX_USER_AGENT);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(AuditEvent::truncate_user_agent("curl/8"), "curl/8");
    }

    #[test]
    fn outcome_round_trips() {
        for o in [Outcome::Success, Outcome::Failure, Outcome::Denied] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(Outcome::parse("ok"), None);
    }
}
