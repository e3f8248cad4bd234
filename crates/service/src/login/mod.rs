//! Password sign-in on the sign-in page, decided here and not in the HTTP handler: throttling
//! (`portcullis_core::sign_in_throttle` is the rule, [`counters`] keeps the counts), the lookup
//! by username or email, the password check on the bounded hashing pool, the rehash when the
//! parameters changed, the last-login time, audit events, and the recognition of credential
//! stuffing and password spraying ([`patterns`]). It also holds the page keys: the CSRF key and
//! the key of the password digests the spraying detector compares.
//!
//! Unknown user, wrong password, disabled or invited user, and a user without a password all
//! end in the one [`LoginOutcome::Refused`] after the same work (a real or dummy Argon2id
//! verification), so neither the answer nor its timing says which; the reason goes to the audit
//! log only.
//!
//! The counters are per node (in memory): with several nodes behind a balancer an attacker gets
//! up to one node's allowance per node. This module must never store, log or compare a
//! plaintext password outside the hashing pool, and never depend on a web framework.

mod counters;
mod patterns;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::audit::{Action, Actor, Outcome, Reason};
use portcullis_core::secret::{constant_time_eq, Secret};
use portcullis_core::sign_in_throttle::{Decision, ThrottlePolicy};
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Clock;
use portcullis_core::user::{Email, UserStatus, Username};
use portcullis_store::{Store, StoreError, UserRecord};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditSink, EventDraft, RequestOrigin};
use crate::kek::Keyring;
use crate::passwords::{PasswordError, PasswordHashString, PasswordHasher, Verification};

use counters::Counters;
use patterns::Patterns;

/// Entries each in-memory table holds at most.
pub const MAX_ENTRIES: usize = 100_000;

/// The `[login]` section: sign-in throttling and the stuffing/spraying detectors. On by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoginSettings {
    /// Failures one source (IPv4 address or IPv6 /64) may have within the window before its
    /// attempts are delayed (default 10).
    pub free_failures_per_source: u32,
    /// Failures one account may have within the window before attempts from failing sources
    /// are delayed (default 5). Sources without recent failures are never delayed by it.
    pub free_failures_per_account: u32,
    /// First delay in milliseconds; it doubles with each further failure (default 1000).
    pub base_delay_ms: u64,
    /// Longest delay in seconds (default 300).
    pub max_delay_secs: u64,
    /// How long a failure counts, in seconds (default 900).
    pub window_secs: u64,
    /// Distinct accounts failed from one source within the window that are recorded as
    /// credential stuffing (default 10).
    pub stuffing_accounts: u32,
    /// Distinct accounts one password failed on within the window that are recorded as
    /// password spraying (default 10).
    pub spraying_accounts: u32,
}

impl Default for LoginSettings {
    fn default() -> Self {
        let p = ThrottlePolicy::default();
        Self {
            free_failures_per_source: p.free_per_source,
            free_failures_per_account: p.free_per_account,
            base_delay_ms: u64::try_from(p.base_delay.as_millis()).unwrap_or(1000),
            max_delay_secs: p.max_delay.as_secs(),
            window_secs: p.window.as_secs(),
            stuffing_accounts: 10,
            spraying_accounts: 10,
        }
    }
}

impl LoginSettings {
    pub fn validate(&self) -> Result<(), String> {
        if self.base_delay_ms == 0 || self.max_delay_secs == 0 || self.window_secs == 0 {
            return Err(
                "login.base_delay_ms, max_delay_secs and window_secs must be at least 1".into(),
            );
        }
        if self.base_delay_ms > self.max_delay_secs.saturating_mul(1000) {
            return Err("login.base_delay_ms must not exceed max_delay_secs".into());
        }
        if self.stuffing_accounts < 2 || self.spraying_accounts < 2 {
            return Err("login.stuffing_accounts and spraying_accounts must be at least 2".into());
        }
        Ok(())
    }

    pub fn policy(&self) -> ThrottlePolicy {
        ThrottlePolicy {
            free_per_source: self.free_failures_per_source,
            free_per_account: self.free_failures_per_account,
            base_delay: Duration::from_millis(self.base_delay_ms),
            max_delay: Duration::from_secs(self.max_delay_secs),
            window: Duration::from_secs(self.window_secs),
        }
    }
}

/// One sign-in attempt as the page received it.
#[derive(Debug)]
pub struct Attempt<'a> {
    pub tenant: &'a TenantId,
    /// Username or email, as typed.
    pub login: &'a str,
    pub password: &'a Secret<String>,
    pub origin: &'a RequestOrigin,
}

/// What the page shows.
#[derive(Debug)]
pub enum LoginOutcome {
    /// Signed in: start a session for this user.
    SignedIn(Box<UserRecord>),
    /// Wrong credentials, whatever the reason (one answer for all).
    Refused,
    /// Too many recent failures: not checked; try again after this long.
    Throttled(Duration),
    /// The hashing pool is full: try again after this long (503 with `Retry-After`).
    Busy(Duration),
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("password hashing has stopped")]
    Stopped,
}

/// The keys the pages use, derived from the KEK file (the same on every node).
pub struct LoginKeys {
    csrf: aws_lc_rs::hmac::Key,
    password_digest: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for LoginKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginKeys([redacted])")
    }
}

impl LoginKeys {
    pub fn from_keyring(keyring: &Keyring) -> Self {
        let key = |label: &str| {
            aws_lc_rs::hmac::Key::new(
                aws_lc_rs::hmac::HMAC_SHA256,
                keyring.derive_primary_key(label).expose(),
            )
        };
        Self {
            csrf: key("pages/csrf"),
            password_digest: key("login/password-digest"),
        }
    }
}

/// The sign-in decisions and their per-node state. Cheap to share behind an `Arc`.
pub struct Login {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audit: AuditSink,
    hasher: PasswordHasher,
    policy: ThrottlePolicy,
    counters: Counters,
    patterns: Patterns,
    csrf_key: aws_lc_rs::hmac::Key,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl Login {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        audit: AuditSink,
        hasher: PasswordHasher,
        settings: &LoginSettings,
        keys: LoginKeys,
    ) -> Self {
        let policy = settings.policy();
        Self {
            store,
            clock,
            audit,
            hasher,
            counters: Counters::new(MAX_ENTRIES),
            patterns: Patterns::new(
                keys.password_digest,
                settings.stuffing_accounts,
                settings.spraying_accounts,
                policy.window,
                MAX_ENTRIES,
            ),
            policy,
            csrf_key: keys.csrf,
        }
    }

    /// The CSRF token of forms shown to the browser holding `binding` (its session or
    /// pre-session cookie value) for `purpose` (the form).
    pub fn csrf_token(&self, binding: &str, purpose: &str) -> String {
        use base64::Engine;
        let tag = aws_lc_rs::hmac::sign(&self.csrf_key, format!("{purpose}\n{binding}").as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
    }

    /// Whether `presented` is the CSRF token for `binding` and `purpose` (constant time).
    pub fn csrf_valid(&self, binding: &str, purpose: &str, presented: &str) -> bool {
        constant_time_eq(
            self.csrf_token(binding, purpose).as_bytes(),
            presented.as_bytes(),
        )
    }

    /// Decides one password sign-in. See the module documentation.
    pub async fn authenticate(&self, a: Attempt<'_>) -> Result<LoginOutcome, LoginError> {
        let now = self.clock.now();
        let account = account_key(a.tenant, a.login);
        let source = a.origin.client_ip;
        let (src_f, acc_f) = self.counters.get(source, &account);
        if let Decision::Wait(wait) = self.policy.decide(src_f, acc_f, now) {
            self.record(
                a.tenant,
                Action::UserSignInThrottled,
                Outcome::Denied,
                Some("throttled"),
                None,
                a.origin,
            );
            return Ok(LoginOutcome::Throttled(wait));
        }
        let user = self.find(a.tenant, a.login).await?;
        let stored = user
            .as_ref()
            .and_then(|u| u.password_hash.clone())
            .map(PasswordHashString::from_stored);
        let verified = match self.hasher.verify(stored.as_ref(), a.password).await {
            Ok(v) => v,
            Err(PasswordError::Busy { retry_after }) => return Ok(LoginOutcome::Busy(retry_after)),
            Err(PasswordError::Stopped) => return Err(LoginError::Stopped),
        };
        let failure = match (&user, verified) {
            (None, _) => "unknown_user",
            (Some(u), _) if u.status == UserStatus::Disabled => "user_disabled",
            (Some(u), _) if u.status != UserStatus::Active => "user_not_active",
            (Some(_), Verification::Mismatch) => "wrong_password",
            (Some(u), Verification::Match { needs_rehash }) => {
                let u = u.clone();
                self.succeeded(&u, needs_rehash, a.password, source, &account, a.origin)
                    .await?;
                return Ok(LoginOutcome::SignedIn(Box::new(u)));
            }
        };
        self.counters.fail(source, &account, &self.policy, now);
        self.record(
            a.tenant,
            Action::UserSignIn,
            Outcome::Failure,
            Some(failure),
            user.as_ref().map(|u| u.id.as_str().to_owned()),
            a.origin,
        );
        let found = self
            .patterns
            .failed(a.tenant, source, &account, a.password, now);
        if let Some(accounts) = found.stuffing {
            self.record(
                a.tenant,
                Action::UserSignInStuffing,
                Outcome::Denied,
                Some("many_accounts_one_source"),
                Some(format!("{accounts} accounts")),
                a.origin,
            );
        }
        if let Some(accounts) = found.spraying {
            self.record(
                a.tenant,
                Action::UserSignInSpraying,
                Outcome::Denied,
                Some("one_password_many_accounts"),
                Some(format!("{accounts} accounts")),
                a.origin,
            );
        }
        Ok(LoginOutcome::Refused)
    }

    /// How long a password check outside sign-in (the account page's current password) must
    /// wait, if at all: the same counters and rule as sign-in, keyed by the account's username,
    /// so the account page is no way around the sign-in throttle.
    pub fn password_check_wait(
        &self,
        tenant: &TenantId,
        login: &str,
        origin: &RequestOrigin,
    ) -> Option<Duration> {
        let (src_f, acc_f) = self
            .counters
            .get(origin.client_ip, &account_key(tenant, login));
        match self.policy.decide(src_f, acc_f, self.clock.now()) {
            Decision::Wait(wait) => Some(wait),
            _ => None,
        }
    }

    /// Counts a wrong password given outside sign-in, as a failed sign-in counts.
    pub fn password_check_failed(&self, tenant: &TenantId, login: &str, origin: &RequestOrigin) {
        self.counters.fail(
            origin.client_ip,
            &account_key(tenant, login),
            &self.policy,
            self.clock.now(),
        );
    }

    /// A right password outside sign-in clears the source's failures, as a sign-in does.
    pub fn password_check_succeeded(&self, tenant: &TenantId, login: &str, origin: &RequestOrigin) {
        self.counters
            .succeeded(origin.client_ip, &account_key(tenant, login));
    }

    async fn succeeded(
        &self,
        user: &UserRecord,
        needs_rehash: bool,
        password: &Secret<String>,
        source: Option<IpAddr>,
        account: &str,
        origin: &RequestOrigin,
    ) -> Result<(), LoginError> {
        let now = self.clock.now();
        if needs_rehash {
            // Best effort: a busy pool leaves the old hash, which still verifies.
            if let Ok(fresh) = self.hasher.rehash(password).await {
                self.store
                    .set_user_password(&user.tenant, &user.id, fresh.as_str(), now)
                    .await?;
            }
        }
        self.store
            .record_user_login(&user.tenant, &user.id, now)
            .await?;
        self.counters.succeeded(source, account);
        self.record(
            &user.tenant,
            Action::UserSignIn,
            Outcome::Success,
            needs_rehash.then_some("rehashed"),
            Some(user.id.as_str().to_owned()),
            origin,
        );
        Ok(())
    }

    async fn find(&self, tenant: &TenantId, login: &str) -> Result<Option<UserRecord>, StoreError> {
        if login.contains('@') {
            match Email::parse(login) {
                Ok(e) => self.store.find_user_by_email(tenant, &e).await,
                Err(_) => Ok(None),
            }
        } else {
            match Username::parse(login) {
                Ok(u) => self.store.find_user_by_username(tenant, &u).await,
                Err(_) => Ok(None),
            }
        }
    }

    fn record(
        &self,
        tenant: &TenantId,
        action: Action,
        outcome: Outcome,
        reason: Option<&'static str>,
        target: Option<String>,
        origin: &RequestOrigin,
    ) {
        self.audit.record(
            EventDraft {
                tenant: tenant.clone(),
                actor: Actor::anonymous(),
                credential_id: None,
                action,
                outcome,
                reason: reason.map(Reason::new),
                target,
            },
            origin,
        );
    }
}

/// The throttle's account key: tenant and the login as typed, trimmed and lowercased (so an
/// unknown name is counted exactly like a known one).
fn account_key(tenant: &TenantId, login: &str) -> String {
    let login: String = login.trim().chars().take(320).collect();
    format!("{}\n{}", tenant.as_str(), login.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_on_and_refuse_what_would_turn_the_throttle_off_or_make_it_odd() {
        assert_eq!(LoginSettings::default().validate(), Ok(()));
        assert_eq!(LoginSettings::default().policy(), ThrottlePolicy::default());
        for bad in [
            LoginSettings {
                window_secs: 0,
                ..Default::default()
            },
            LoginSettings {
                base_delay_ms: 0,
                ..Default::default()
            },
            LoginSettings {
                base_delay_ms: 10_000,
                max_delay_secs: 5,
                ..Default::default()
            },
            LoginSettings {
                spraying_accounts: 1,
                ..Default::default()
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn account_keys_ignore_case_and_surrounding_space_per_tenant() {
        let acme = TenantId::parse("acme").expect("tenant");
        let globex = TenantId::parse("globex").expect("tenant");
        assert_eq!(account_key(&acme, " Alice "), account_key(&acme, "alice"));
        assert_ne!(account_key(&acme, "alice"), account_key(&globex, "alice"));
    }
}
