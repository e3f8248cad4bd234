//! The audit event: one record per issuance, use, failure, rotation and revocation, and the
//! typed vocabulary it is written in: [`Action`], [`Actor`] and [`Reason`].
//!
//! Events carry identifiers, never secrets: a credential appears by its non-secret id only.
//! The `reason` field holds the precise internal reason code that the client never sees.
//!
//! Stored and wire form: every typed value is written as the same dotted or prefixed string the
//! database and the admin audit API have always held (`tenant.create`, `admin:<id>`,
//! `tenant_mismatch`). Reading is lenient: a string this version does not know (a row written
//! by a newer binary) reads as [`Action::Unknown`] or an [`ActorKind::Unknown`] actor, never as
//! an error. This module must never do I/O, and must never rename a stored string: the test
//! `every_action_has_its_stored_string` pins each one.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::tenant::TenantId;
use crate::time::Timestamp;

macro_rules! actions {
    ($($(#[$doc:meta])* $variant:ident => $s:literal,)*) => {
        /// What an audit event records. Stored as its dotted name ([`Action::as_str`]).
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum Action {
            $($(#[$doc])* $variant,)*
            /// A stored name this version does not know (written by a newer binary). Kept
            /// verbatim, so reading and re-writing such a row loses nothing.
            Unknown(String),
        }

        impl Action {
            /// Every known action, in declaration order (not [`Action::Unknown`]).
            pub const ALL: &'static [Action] = &[$(Action::$variant,)*];

            /// The stored and wire name.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $s,)*
                    Self::Unknown(s) => s,
                }
            }

            /// Reads a stored name; never fails (unknown names become [`Action::Unknown`]).
            pub fn parse(s: &str) -> Self {
                match s {
                    $($s => Self::$variant,)*
                    other => Self::Unknown(other.to_owned()),
                }
            }
        }
    };
}

actions! {
    /// An admin token was presented (success or the reason it was refused).
    AdminAuthenticate => "admin.authenticate",
    /// An authenticated admin was refused an operation.
    AdminAuthorize => "admin.authorize",
    AdminTokenBootstrap => "admin_token.bootstrap",
    /// An operator acknowledged a detector's alert.
    AlertAcknowledge => "alert.acknowledge",
    /// An operator resolved a detector's alert.
    AlertResolve => "alert.resolve",
    /// A webhook endpoint for alerts was created.
    WebhookCreate => "webhook.create",
    /// A webhook endpoint was deleted (with its queued deliveries).
    WebhookDelete => "webhook.delete",
    /// A webhook endpoint's signing secret was replaced.
    WebhookRotateSecret => "webhook.rotate_secret",
    /// A dead-lettered webhook delivery was queued again.
    WebhookRedeliver => "webhook.redeliver",
    AdminTokenCreate => "admin_token.create",
    AdminTokenRevoke => "admin_token.revoke",
    ApiKeyCreate => "api_key.create",
    ApiKeyUpdate => "api_key.update",
    ApiKeyDisable => "api_key.disable",
    ApiKeyEnable => "api_key.enable",
    ApiKeyRevoke => "api_key.revoke",
    ApiKeyRotate => "api_key.rotate",
    ApiKeyPolicyUpdate => "api_key.policy_update",
    /// An API key was presented for verification.
    ApiKeyVerify => "api_key.verify",
    /// A leak report arrived (the report itself, before it is matched to a key).
    ApiKeyLeakReport => "api_key.leak_report",
    /// A reported leak matched a key that was recorded but not revoked.
    ApiKeyLeakReported => "api_key.leak_reported",
    /// A reported leak matched a key and revoked it.
    ApiKeyLeakRevoked => "api_key.leak_revoked",
    /// Events were lost (queue full or storage down); the reason carries how many.
    AuditDropped => "audit.dropped",
    /// A gateway refused a request: the embedded one (actor `gateway`), or a standalone one
    /// that reported it (actor `gateway:<service credential id>`).
    GatewayDenied => "gateway.denied",
    /// Gateway denials over the audit rate, counted per reason instead of written one by one.
    GatewayDenialsSuppressed => "gateway.denials_suppressed",
    /// A client authenticated (or failed to) at the token service.
    OAuthClientAuth => "oauth.client_auth",
    /// Client authentication was refused without checking, because of too many failures.
    OAuthClientAuthThrottled => "oauth.client_auth.throttled",
    OAuthTokenIssue => "oauth.token.issue",
    OAuthTokenIntrospect => "oauth.token.introspect",
    OAuthTokenRevoke => "oauth.token.revoke",
    /// A client pushed an authorization request (RFC 9126), or was refused.
    OAuthAuthorizationPush => "oauth.authorization.push",
    /// A device asked for a device and user code (RFC 8628), or was refused.
    OAuthDeviceAuthorize => "oauth.device.authorize",
    /// A person approved or denied a device's request on the verification page, or typed a
    /// user code that matched nothing.
    OAuthDeviceDecide => "oauth.device.decide",
    /// An admin role was granted to a user (the target is the user id, the reason the role).
    UserRoleGrant => "user.role_grant",
    /// A user's admin role was removed.
    UserRoleRevoke => "user.role_revoke",
    /// An authorization code was presented again after its first redemption: what the first
    /// issued was revoked (DESIGN invariant 6).
    OAuthCodeReplay => "oauth.code.replay",
    /// A refresh token was rotated (or, within the grace window, its successor handed out again).
    OAuthRefreshRotate => "oauth.refresh.rotate",
    /// A rotated refresh token was presented again after the grace window (likely stolen).
    OAuthRefreshReuse => "oauth.refresh.reuse",
    /// A refresh-token family was revoked (reuse, sign-out, admin), with a `family` entry in
    /// the revocation log.
    OAuthRefreshFamilyRevoke => "oauth.refresh.family_revoke",
    OAuthClientCreate => "oauth_client.create",
    OAuthClientRotateSecret => "oauth_client.rotate_secret",
    OAuthClientDisable => "oauth_client.disable",
    /// A disabled client was enabled again; tokens revoked by the disable stay revoked.
    OAuthClientEnable => "oauth_client.enable",
    /// A client was archived: disabled for good, its secrets expired, its tokens revoked.
    OAuthClientArchive => "oauth_client.archive",
    OAuthClientUpdate => "oauth_client.update",
    ResourceServerCreate => "resource_server.create",
    /// A tenant began trusting an external issuer (workload identity).
    FederationIssuerCreate => "federation.issuer.create",
    FederationIssuerDelete => "federation.issuer.delete",
    FederationRuleCreate => "federation.rule.create",
    FederationRuleDelete => "federation.rule.delete",
    /// A trust rule was bound to a client (or unbound): the target is the rule id.
    FederationRuleBind => "federation.rule.bind",
    /// A workload's external token was exchanged under a trust rule: the target is the rule
    /// id, the credential id the workload's subject (for the new-workload-subject detector).
    FederationExchange => "federation.exchange",
    /// The tokens issued under a trust rule (or every rule of an issuer) were revoked.
    FederationTokensRevoke => "federation.tokens.revoke",
    /// A user signed in: a new session (a new id at every sign-in).
    SessionCreate => "session.create",
    /// A session was ended (sign-out, the user, an admin), with a `session` revocation entry.
    SessionRevoke => "session.revoke",
    /// A back-channel logout token was delivered to a client (success), or its delivery was
    /// given up after the last attempt (failure, with the last reason).
    SessionBackchannelLogout => "session.backchannel_logout",
    /// An invited user set its first password through the invitation link (or failed to).
    UserInviteAccept => "user.invite_accept",
    /// A user set a new password through a reset link (or failed to); its sessions ended.
    UserPasswordReset => "user.password_reset",
    /// A signed-in user changed its password on the account page (or failed to).
    UserPasswordChange => "user.password_change",
    /// A user withdrew a client's consent on the account page; the client's refresh-token
    /// families for the user were revoked with it.
    ConsentRevoke => "consent.revoke",
    ResourceServerRotateSecret => "resource_server.rotate_secret",
    /// A resource server was archived: its audience gets no more tokens, its secrets expired.
    ResourceServerArchive => "resource_server.archive",
    SigningKeyGenerate => "signing_key.generate",
    SigningKeyRotate => "signing_key.rotate",
    SigningKeyActivate => "signing_key.activate",
    SigningKeyRevoke => "signing_key.revoke",
    TenantCreate => "tenant.create",
    TenantDisable => "tenant.disable",
    TenantEnable => "tenant.enable",
    /// A tenant's OAuth policy was set (pushed authorization requests required of its clients).
    TenantOAuthPolicyUpdate => "tenant.oauth_policy_update",
    UserCreate => "user.create",
    UserUpdate => "user.update",
    UserDisable => "user.disable",
    UserEnable => "user.enable",
    UserDelete => "user.delete",
    /// An invitation link was issued and mailed (never the link itself).
    UserInvite => "user.invite",
    /// A password reset was asked for an address; the target is the user if there is one.
    UserPasswordResetRequest => "user.password_reset_request",
    /// A tenant was archived: disabled for good, its tokens revoked.
    TenantArchive => "tenant.archive",
    /// A tenant's sign-in page branding was set or cleared.
    TenantBrandingUpdate => "tenant.branding_update",
    /// A CA set was added to a tenant's mTLS trust anchors (RFC 8705 `tls_client_auth`).
    TenantCaSetCreate => "tenant.ca_set.create",
    /// A CA set was removed: certificates it vouched for no longer authenticate clients.
    TenantCaSetDelete => "tenant.ca_set.delete",
    /// A tenant's credential lifetime policy was set.
    TenantLifetimePolicyUpdate => "tenant.lifetime_policy_update",
    /// A password sign-in on the sign-in page (success, or failure with a reason).
    UserSignIn => "user.sign_in",
    /// A sign-in attempt refused without checking the password (too many recent failures).
    UserSignInThrottled => "user.sign_in.throttled",
    /// One source failed sign-ins on many different accounts (credential stuffing).
    UserSignInStuffing => "user.sign_in.credential_stuffing",
    /// One password failed on many different accounts (password spraying).
    UserSignInSpraying => "user.sign_in.password_spraying",
    /// A user granted a client scopes on the consent page.
    ConsentGrant => "consent.grant",
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for Action {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Action {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(Self::parse(&s))
    }
}

/// Who acted, by kind. Borrowed from an [`Actor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ActorKind<'a> {
    /// An admin credential, by its non-secret id.
    Admin(&'a str),
    /// An OAuth client, by its client id.
    Client(&'a str),
    /// The server itself (start-up, rotation, the audit writer).
    System,
    /// Nobody authenticated (a refused credential, say).
    Anonymous,
    /// A secret scanner reporting a leak.
    Scanner,
    /// The embedded gateway refusing a request.
    Gateway,
    /// A standalone gateway reporting its denials, by the id of the service credential it
    /// reported with.
    RemoteGateway(&'a str),
    /// A workload that proved an external identity, by the trust rule that admitted it (or
    /// `-` when no rule did).
    Workload(&'a str),
    /// A stored actor this version does not know.
    Unknown(&'a str),
}

/// Who acted. Built only through its typed constructors; stored as `admin:<credential id>`,
/// `client:<client id>`, `workload:<rule>`, `system`, `anonymous`, `scanner`, `gateway` or
/// `gateway:<service credential id>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Actor(String);

impl Actor {
    pub fn admin(credential_id: &str) -> Self {
        Self(format!("admin:{credential_id}"))
    }

    pub fn client(client_id: &str) -> Self {
        Self(format!("client:{client_id}"))
    }

    pub fn system() -> Self {
        Self("system".into())
    }

    /// A workload by its trust rule; `None` when no rule admitted it.
    pub fn workload(rule: Option<&str>) -> Self {
        Self(format!("workload:{}", rule.unwrap_or("-")))
    }

    pub fn anonymous() -> Self {
        Self("anonymous".into())
    }

    pub fn scanner() -> Self {
        Self("scanner".into())
    }

    pub fn gateway() -> Self {
        Self("gateway".into())
    }

    /// A standalone gateway, by the service credential it reports with.
    pub fn remote_gateway(credential_id: &str) -> Self {
        Self(format!("gateway:{credential_id}"))
    }

    /// Reads a stored actor; never fails (see [`ActorKind::Unknown`]).
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    pub fn kind(&self) -> ActorKind<'_> {
        match self.0.as_str() {
            "system" => ActorKind::System,
            "anonymous" => ActorKind::Anonymous,
            "scanner" => ActorKind::Scanner,
            "gateway" => ActorKind::Gateway,
            s => match s.split_once(':') {
                Some(("admin", id)) => ActorKind::Admin(id),
                Some(("client", id)) => ActorKind::Client(id),
                Some(("workload", rule)) => ActorKind::Workload(rule),
                Some(("gateway", id)) => ActorKind::RemoteGateway(id),
                _ => ActorKind::Unknown(s),
            },
        }
    }

    /// The stored and wire form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Actor {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Actor {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// An internal reason code (`tenant_mismatch`, `storage_unavailable`, ...), optionally with a
/// detail after a colon (`leaked:github`, `queue_full_or_store_unavailable:3`). The code is a
/// constant chosen by the emitter, so detectors can match on [`Reason::code`]; the detail may
/// be anything and is redacted like every other field. Stored as `code` or `code:detail`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Reason(String);

impl Reason {
    pub fn new(code: &'static str) -> Self {
        Self(code.to_owned())
    }

    pub fn with_detail(code: &'static str, detail: impl fmt::Display) -> Self {
        Self(format!("{code}:{detail}"))
    }

    /// A reason code computed by a typed value of another module (a [`crate::api_key::Rejection`],
    /// an admin denial): its `Display` is its code.
    pub fn of(code: &impl fmt::Display) -> Self {
        Self(code.to_string())
    }

    /// Reads a stored reason; never fails.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }

    /// The code: everything before the first colon.
    pub fn code(&self) -> &str {
        self.0.split_once(':').map_or(&self.0, |(c, _)| c)
    }

    /// The detail after the first colon, if any.
    pub fn detail(&self) -> Option<&str> {
        self.0.split_once(':').map(|(_, d)| d)
    }

    /// The stored and wire form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Reason {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl From<Reason> for String {
    fn from(r: Reason) -> String {
        r.0
    }
}

impl PartialEq<str> for Reason {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

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
    /// Who acted.
    pub actor: Actor,
    /// The non-secret id of the credential presented, if any.
    pub credential_id: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    /// What happened; stored as its dotted name (`tenant.create`, `admin.authenticate`, ...).
    pub action: Action,
    pub outcome: Outcome,
    /// Internal reason code (`tenant_mismatch`, `credential_checksum_mismatch`, ...).
    pub reason: Option<Reason>,
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
        field(&mut self.actor.0);
        if let Action::Unknown(s) = &mut self.action {
            field(s);
        }
        if let Some(r) = &mut self.reason {
            field(&mut r.0);
        }
        for f in [
            &mut self.credential_id,
            &mut self.client_ip,
            &mut self.user_agent,
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

    /// Pins the stored name of every action: a rename would make old rows unreadable as the
    /// action they are and break every query by name.
    #[test]
    fn every_action_has_its_stored_string() {
        let pinned = [
            (Action::AdminAuthenticate, "admin.authenticate"),
            (Action::TenantBrandingUpdate, "tenant.branding_update"),
            (
                Action::TenantLifetimePolicyUpdate,
                "tenant.lifetime_policy_update",
            ),
            (Action::UserSignIn, "user.sign_in"),
            (Action::UserSignInThrottled, "user.sign_in.throttled"),
            (
                Action::UserSignInStuffing,
                "user.sign_in.credential_stuffing",
            ),
            (Action::UserSignInSpraying, "user.sign_in.password_spraying"),
            (Action::ConsentGrant, "consent.grant"),
            (Action::AdminAuthorize, "admin.authorize"),
            (Action::AdminTokenBootstrap, "admin_token.bootstrap"),
            (Action::AlertAcknowledge, "alert.acknowledge"),
            (Action::AlertResolve, "alert.resolve"),
            (Action::WebhookCreate, "webhook.create"),
            (Action::WebhookDelete, "webhook.delete"),
            (Action::WebhookRotateSecret, "webhook.rotate_secret"),
            (Action::WebhookRedeliver, "webhook.redeliver"),
            (Action::AdminTokenCreate, "admin_token.create"),
            (Action::AdminTokenRevoke, "admin_token.revoke"),
            (Action::ApiKeyCreate, "api_key.create"),
            (Action::ApiKeyUpdate, "api_key.update"),
            (Action::ApiKeyDisable, "api_key.disable"),
            (Action::ApiKeyEnable, "api_key.enable"),
            (Action::ApiKeyRevoke, "api_key.revoke"),
            (Action::ApiKeyRotate, "api_key.rotate"),
            (Action::ApiKeyPolicyUpdate, "api_key.policy_update"),
            (Action::ApiKeyVerify, "api_key.verify"),
            (Action::ApiKeyLeakReport, "api_key.leak_report"),
            (Action::ApiKeyLeakReported, "api_key.leak_reported"),
            (Action::ApiKeyLeakRevoked, "api_key.leak_revoked"),
            (Action::AuditDropped, "audit.dropped"),
            (Action::GatewayDenied, "gateway.denied"),
            (
                Action::GatewayDenialsSuppressed,
                "gateway.denials_suppressed",
            ),
            (Action::OAuthClientAuth, "oauth.client_auth"),
            (
                Action::OAuthClientAuthThrottled,
                "oauth.client_auth.throttled",
            ),
            (Action::OAuthTokenIssue, "oauth.token.issue"),
            (Action::OAuthTokenIntrospect, "oauth.token.introspect"),
            (Action::OAuthTokenRevoke, "oauth.token.revoke"),
            (Action::OAuthAuthorizationPush, "oauth.authorization.push"),
            (Action::OAuthDeviceAuthorize, "oauth.device.authorize"),
            (Action::OAuthDeviceDecide, "oauth.device.decide"),
            (Action::UserRoleGrant, "user.role_grant"),
            (Action::UserRoleRevoke, "user.role_revoke"),
            (Action::OAuthCodeReplay, "oauth.code.replay"),
            (Action::OAuthRefreshRotate, "oauth.refresh.rotate"),
            (Action::OAuthRefreshReuse, "oauth.refresh.reuse"),
            (
                Action::OAuthRefreshFamilyRevoke,
                "oauth.refresh.family_revoke",
            ),
            (Action::OAuthClientCreate, "oauth_client.create"),
            (
                Action::OAuthClientRotateSecret,
                "oauth_client.rotate_secret",
            ),
            (Action::OAuthClientDisable, "oauth_client.disable"),
            (Action::OAuthClientEnable, "oauth_client.enable"),
            (Action::OAuthClientArchive, "oauth_client.archive"),
            (Action::OAuthClientUpdate, "oauth_client.update"),
            (Action::ResourceServerCreate, "resource_server.create"),
            (Action::FederationIssuerCreate, "federation.issuer.create"),
            (Action::FederationIssuerDelete, "federation.issuer.delete"),
            (Action::FederationRuleCreate, "federation.rule.create"),
            (Action::FederationRuleDelete, "federation.rule.delete"),
            (Action::FederationRuleBind, "federation.rule.bind"),
            (Action::FederationExchange, "federation.exchange"),
            (Action::FederationTokensRevoke, "federation.tokens.revoke"),
            (Action::ResourceServerArchive, "resource_server.archive"),
            (
                Action::ResourceServerRotateSecret,
                "resource_server.rotate_secret",
            ),
            (Action::SessionCreate, "session.create"),
            (Action::SessionRevoke, "session.revoke"),
            (
                Action::SessionBackchannelLogout,
                "session.backchannel_logout",
            ),
            (Action::UserInviteAccept, "user.invite_accept"),
            (Action::UserPasswordReset, "user.password_reset"),
            (Action::UserPasswordChange, "user.password_change"),
            (Action::ConsentRevoke, "consent.revoke"),
            (Action::SigningKeyGenerate, "signing_key.generate"),
            (Action::SigningKeyRotate, "signing_key.rotate"),
            (Action::SigningKeyActivate, "signing_key.activate"),
            (Action::SigningKeyRevoke, "signing_key.revoke"),
            (Action::TenantCreate, "tenant.create"),
            (Action::TenantDisable, "tenant.disable"),
            (Action::TenantEnable, "tenant.enable"),
            (
                Action::TenantOAuthPolicyUpdate,
                "tenant.oauth_policy_update",
            ),
            (Action::UserCreate, "user.create"),
            (Action::UserUpdate, "user.update"),
            (Action::UserDisable, "user.disable"),
            (Action::UserEnable, "user.enable"),
            (Action::UserDelete, "user.delete"),
            (Action::UserInvite, "user.invite"),
            (
                Action::UserPasswordResetRequest,
                "user.password_reset_request",
            ),
            (Action::TenantArchive, "tenant.archive"),
            (Action::TenantCaSetCreate, "tenant.ca_set.create"),
            (Action::TenantCaSetDelete, "tenant.ca_set.delete"),
        ];
        assert_eq!(
            pinned.len(),
            Action::ALL.len(),
            "a variant has no pinned string"
        );
        for (action, stored) in &pinned {
            assert_eq!(action.as_str(), *stored);
            assert_eq!(&Action::parse(stored), action);
            assert_eq!(
                serde_json::to_string(action).expect("json"),
                format!("\"{stored}\"")
            );
        }
        for a in Action::ALL {
            assert!(pinned.iter().any(|(p, _)| p == a), "{a} is not pinned");
        }
    }

    #[test]
    fn an_unknown_stored_action_reads_back_verbatim() {
        let a = Action::parse("user.teleport");
        assert_eq!(a, Action::Unknown("user.teleport".into()));
        assert_eq!(a.as_str(), "user.teleport");
        let json: Action = serde_json::from_str("\"user.teleport\"").expect("lenient");
        assert_eq!(json, a);
    }

    #[test]
    fn actors_keep_their_stored_form_and_read_back_by_kind() {
        assert_eq!(Actor::admin("adm_1").as_str(), "admin:adm_1");
        assert_eq!(Actor::client("c1").as_str(), "client:c1");
        assert_eq!(Actor::system().as_str(), "system");
        assert_eq!(Actor::anonymous().as_str(), "anonymous");
        assert_eq!(Actor::scanner().as_str(), "scanner");
        assert_eq!(Actor::gateway().as_str(), "gateway");
        assert_eq!(Actor::remote_gateway("adm_7").as_str(), "gateway:adm_7");
        for (stored, kind) in [
            ("admin:adm_1", ActorKind::Admin("adm_1")),
            ("client:a:b", ActorKind::Client("a:b")),
            ("system", ActorKind::System),
            ("anonymous", ActorKind::Anonymous),
            ("scanner", ActorKind::Scanner),
            ("gateway", ActorKind::Gateway),
            ("gateway:adm_7", ActorKind::RemoteGateway("adm_7")),
            ("user:u1", ActorKind::Unknown("user:u1")),
        ] {
            assert_eq!(Actor::from_stored(stored.into()).kind(), kind);
        }
        assert_eq!(
            serde_json::to_string(&Actor::admin("x")).expect("json"),
            "\"admin:x\""
        );
    }

    #[test]
    fn reasons_split_into_code_and_detail() {
        let r = Reason::with_detail("leaked", "github");
        assert_eq!(r.as_str(), "leaked:github");
        assert_eq!(r.code(), "leaked");
        assert_eq!(r.detail(), Some("github"));
        let plain = Reason::new("tenant_mismatch");
        assert_eq!((plain.code(), plain.detail()), ("tenant_mismatch", None));
        assert_eq!(
            serde_json::to_string(&plain).expect("json"),
            "\"tenant_mismatch\""
        );
    }

    #[test]
    fn redaction_reaches_typed_fields() {
        let secret = crate::credential::Credential::generate(
            crate::credential::CredentialKind::ClientSecret,
            crate::credential::Environment::live(),
            &mut <rand::rngs::SmallRng as rand::SeedableRng>::seed_from_u64(7),
        )
        .expose()
        .to_owned();
        let mut e = AuditEvent {
            id: "1".into(),
            occurred_at: Timestamp::from_secs(1),
            tenant: TenantId::system(),
            actor: Actor::client(&secret),
            credential_id: None,
            client_ip: None,
            user_agent: None,
            action: Action::Unknown(secret.clone()),
            outcome: Outcome::Failure,
            reason: Some(Reason::with_detail("bad", &secret)),
            request_id: None,
            target: None,
        };
        e.redact_secrets();
        let all = serde_json::to_string(&e).expect("json");
        assert!(!all.contains(&secret), "{all}");
    }

    #[test]
    fn outcome_round_trips() {
        for o in [Outcome::Success, Outcome::Failure, Outcome::Denied] {
            assert_eq!(Outcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(Outcome::parse("ok"), None);
    }
}
