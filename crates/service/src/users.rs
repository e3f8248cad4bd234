//! Users' accounts as the service runs them: the new-password rule, the hashing pool, one-time
//! links (invitations, password resets) and the mail that carries them.
//!
//! A one-time link is `<issuer>/account/<tenant>/invite?token=...` or `.../reset?token=...`; the
//! token is in the URL the user receives and nowhere else (not in an API answer, not in the
//! audit log, not in a log line), and storage keeps only its digest. The pages that open those
//! links (next to the sign-in pages) consume the token with
//! [`portcullis_store::UserStore::consume_user_token`].
//!
//! [`Users::request_password_reset`] answers the same whether or not the address has an account:
//! the mail is sent from a background task either way, so neither the answer nor its timing
//! tells the caller anything. This module must never return or log a token or a password.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::password::{PasswordContext, PasswordPolicy, PasswordRefusal};
use portcullis_core::secret::Secret;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_core::user::{Email, OneTimeToken, TokenPurpose};
use portcullis_store::{Store, StoreError, UserRecord, UserTokenRecord};
use serde::{Deserialize, Serialize};

use crate::mail::{Mail, Mailer};
use crate::passwords::{Argon2Settings, PasswordError, PasswordHashString, PasswordHasher};

/// The `[users]` section: the new-password rule and how long one-time links live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UsersConfig {
    /// Shortest new password, in characters (at least 8; default 12).
    pub password_min_chars: usize,
    /// Longest new password, in characters (at least 64; default 128).
    pub password_max_chars: usize,
    /// Lowest zxcvbn strength score accepted, 0 to 4 (default 3).
    pub password_min_score: u8,
    /// Lifetime of an invitation link, in seconds (default a week).
    pub invite_ttl_secs: u64,
    /// Lifetime of a password-reset link, in seconds (default an hour, at most a day).
    pub reset_ttl_secs: u64,
}

impl Default for UsersConfig {
    fn default() -> Self {
        let policy = PasswordPolicy::default();
        Self {
            password_min_chars: policy.min_chars,
            password_max_chars: policy.max_chars,
            password_min_score: policy.min_score,
            invite_ttl_secs: TokenPurpose::Invite.default_ttl().as_secs(),
            reset_ttl_secs: TokenPurpose::PasswordReset.default_ttl().as_secs(),
        }
    }
}

const MAX_RESET_TTL_SECS: u64 = 24 * 3600;
const MAX_INVITE_TTL_SECS: u64 = 30 * 24 * 3600;

impl UsersConfig {
    pub fn policy(&self) -> Result<PasswordPolicy, String> {
        PasswordPolicy {
            min_chars: self.password_min_chars,
            max_chars: self.password_max_chars,
            min_score: self.password_min_score,
        }
        .validate()
        .map_err(|e| format!("users.{e}"))
    }

    pub fn validate(&self) -> Result<(), String> {
        self.policy()?;
        if self.reset_ttl_secs == 0 || self.reset_ttl_secs > MAX_RESET_TTL_SECS {
            return Err(format!(
                "users.reset_ttl_secs must be 1 to {MAX_RESET_TTL_SECS} (reset links are short-lived)"
            ));
        }
        if self.invite_ttl_secs == 0 || self.invite_ttl_secs > MAX_INVITE_TTL_SECS {
            return Err(format!(
                "users.invite_ttl_secs must be 1 to {MAX_INVITE_TTL_SECS}"
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UsersError {
    #[error("{0}")]
    Password(PasswordRefusal),
    #[error(transparent)]
    Busy(PasswordError),
    #[error("the user has no email address")]
    NoEmail,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What the user-facing parts of the service share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Users {
    pub hasher: PasswordHasher,
    pub policy: PasswordPolicy,
    pub mailer: Mailer,
    /// Base of the links in mails: the issuer URL.
    pub base_url: String,
    pub invite_ttl: Duration,
    pub reset_ttl: Duration,
}

impl Users {
    pub fn new(
        config: &UsersConfig,
        hashing: Argon2Settings,
        mailer: Mailer,
        base_url: String,
    ) -> anyhow::Result<Arc<Self>> {
        config.validate().map_err(anyhow::Error::msg)?;
        Ok(Arc::new(Self {
            hasher: PasswordHasher::start(hashing)?,
            policy: config.policy().map_err(anyhow::Error::msg)?,
            mailer,
            base_url: base_url.trim_end_matches('/').to_owned(),
            invite_ttl: Duration::from_secs(config.invite_ttl_secs),
            reset_ttl: Duration::from_secs(config.reset_ttl_secs),
        }))
    }

    /// Checks a new password for `user` against the rule and hashes it (on the pool).
    pub async fn new_password_hash(
        &self,
        user: &UserRecord,
        password: &Secret<String>,
    ) -> Result<PasswordHashString, UsersError> {
        let checked = self
            .policy
            .check(
                password,
                PasswordContext {
                    username: Some(&user.username),
                    email: user.email.as_ref(),
                },
            )
            .map_err(UsersError::Password)?;
        self.hasher.hash(checked).await.map_err(UsersError::Busy)
    }

    /// The link a user opens for a token of `purpose`.
    pub fn link(&self, tenant: &TenantId, purpose: TokenPurpose, token: &OneTimeToken) -> String {
        let page = match purpose {
            TokenPurpose::Invite => "invite",
            TokenPurpose::PasswordReset => "reset",
        };
        format!(
            "{}/account/{tenant}/{page}?token={}",
            self.base_url,
            token.expose()
        )
    }

    /// Issues a one-time token of `purpose` for `user` (replacing its unused one) and mails the
    /// link. Returns when the token is stored and the link mailed; the expiry is returned, the
    /// token never is.
    pub async fn send_link(
        &self,
        store: &dyn Store,
        user: &UserRecord,
        purpose: TokenPurpose,
        now: Timestamp,
    ) -> Result<Timestamp, UsersError> {
        let email = user.email.as_ref().ok_or(UsersError::NoEmail)?;
        let (record, mail) = self.prepare(user, email, purpose, now);
        store.insert_user_token(&record, now).await?;
        if let Err(e) = self.mailer.send(&mail).await {
            tracing::warn!(user = %user.id, purpose = purpose.as_str(), error = %e, "could not mail a one-time link");
        }
        Ok(record.expires_at)
    }

    fn prepare(
        &self,
        user: &UserRecord,
        email: &Email,
        purpose: TokenPurpose,
        now: Timestamp,
    ) -> (UserTokenRecord, Mail) {
        let token = OneTimeToken::generate(&mut rand::rngs::OsRng);
        let ttl = match purpose {
            TokenPurpose::Invite => self.invite_ttl,
            TokenPurpose::PasswordReset => self.reset_ttl,
        };
        let record = UserTokenRecord {
            digest: token.digest().to_vec(),
            tenant: user.tenant.clone(),
            user_id: user.id.clone(),
            purpose,
            created_at: now,
            expires_at: now.saturating_add(ttl),
            used_at: None,
        };
        let link = self.link(&user.tenant, purpose, &token);
        let minutes = ttl.as_secs() / 60;
        let (subject, body) = match purpose {
            TokenPurpose::Invite => (
                "You are invited".to_owned(),
                format!(
                    "Hello {},\n\nYou have been invited to an account. Choose your password \
                     here (the link works once, for {} hours):\n\n{link}\n\nIf you did not \
                     expect this, ignore this message.\n",
                    user.username,
                    minutes / 60
                ),
            ),
            TokenPurpose::PasswordReset => (
                "Reset your password".to_owned(),
                format!(
                    "Hello {},\n\nSomeone asked to reset the password of your account. Choose a \
                     new one here (the link works once, for {minutes} minutes):\n\n{link}\n\n\
                     If it was not you, ignore this message: your password is unchanged.\n",
                    user.username
                ),
            ),
        };
        (
            record,
            Mail {
                to: email.as_str().to_owned(),
                subject,
                body: Secret::new(body),
            },
        )
    }

    /// Starts a password reset for whoever has `email` in `tenant`, if anyone does, and returns
    /// whether someone did (for the audit log only: the caller must answer the same either
    /// way). The lookup, token and mail happen in a background task, so the answer's timing is
    /// the same whether or not the address has an account.
    pub fn request_password_reset(
        self: &Arc<Self>,
        store: Arc<dyn Store>,
        tenant: TenantId,
        email: Email,
        now: Timestamp,
    ) -> tokio::task::JoinHandle<Option<portcullis_core::user::UserId>> {
        let users = Arc::clone(self);
        tokio::spawn(async move {
            let user = match store.find_user_by_email(&tenant, &email).await {
                Ok(Some(u)) if u.status != portcullis_core::user::UserStatus::Disabled => u,
                Ok(_) => return None,
                Err(e) => {
                    tracing::warn!(error = %e, "password reset lookup failed");
                    return None;
                }
            };
            match users
                .send_link(store.as_ref(), &user, TokenPurpose::PasswordReset, now)
                .await
            {
                Ok(_) => Some(user.id),
                Err(e) => {
                    tracing::warn!(user = %user.id, error = %e, "password reset failed");
                    None
                }
            }
        })
    }

    /// What must happen when a user is deleted or disabled besides the user record: its
    /// sessions and refresh-token families end. Sign-in state keeps users by id and tenant with
    /// no foreign key to `users` (nothing cascades), so this revokes them through the store in
    /// one transaction, appending a `session` entry per session and a `family` entry per refresh
    /// family to the revocation log (`core::revocation` decides), so every verifier and gateway
    /// refuses the user's tokens within a second. `token_lifetime` is the longest access-token
    /// lifetime (how long the entries must be kept); `reason` goes to the log's internal reason.
    /// Back-channel logouts are queued for the sessions' clients. Returns the session ids
    /// revoked.
    pub async fn end_sign_in_state(
        &self,
        store: &dyn Store,
        tenant: &TenantId,
        user: &portcullis_core::user::UserId,
        reason: &str,
        token_lifetime: std::time::Duration,
        now: Timestamp,
    ) -> Result<Vec<String>, UsersError> {
        let sids = store
            .revoke_user_sessions(tenant, user.as_str(), reason, now, token_lifetime)
            .await?;
        // The clients that got tokens in those sessions are told (back-channel logout,
        // `crate::logout`): queued here, delivered by the delivery task's next poll.
        if !sids.is_empty() {
            if let Err(e) = store.enqueue_backchannel_logouts(tenant, &sids, now).await {
                tracing::error!(error = %e, "could not queue back-channel logouts for a user's ended sessions");
            }
        }
        Ok(sids)
    }
}
