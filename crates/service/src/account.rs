//! What a user does for itself: accept an invitation (the first password), reset a forgotten
//! password through a one-time link, ask for such a link, and on the account page change the
//! password, list and end its own sessions, list and withdraw its consents.
//!
//! * A one-time link is checked twice: [`Account::open_link`] only reads (the page shows the
//!   form), and [`Account::set_password_with_link`] checks the new password against the user
//!   *before* spending the link, so a refused password leaves the link usable; the link is then
//!   spent in one conditional update (`consume_user_token`): of two concurrent uses one wins.
//! * Every way a link can be wrong (malformed, unknown, used, expired, another tenant's, another
//!   purpose's, a disabled user's, an invitation of a user that is already active) is one
//!   [`AccountError::InvalidLink`]: the page shows one neutral answer; the reason is for audit.
//! * A password reset ends every session and refresh-token family of the user (with their
//!   revocation entries); a password change ends every session but the one it was made from.
//! * Asking for a reset answers the same whether or not the address has an account, in the
//!   same time (`Users::request_password_reset` works in the background).
//! * A user reaches its own sessions and consents only: another user's sid is "not found".
//!
//! This module must never return or log a token or a password, never tell whether an address
//! has an account, and never depend on a web framework.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::audit::{Action, Actor, Outcome, Reason};
use portcullis_core::password::PasswordRefusal;
use portcullis_core::secret::Secret;
use portcullis_core::tenant::{TenantId, TenantStatus};
use portcullis_core::time::Clock;
use portcullis_core::user::{Email, OneTimeToken, TokenPurpose, UserId, UserStatus};
use portcullis_store::{ConsentRecord, SessionRecord, Store, StoreError, UserRecord};

use crate::audit::{AuditSink, EventDraft, RequestOrigin};
use crate::passwords::{PasswordError, PasswordHashString, Verification};
use crate::sign_in::{SignIn, SignInError};
use crate::state::AppState;
use crate::users::{Users, UsersError};

/// Why an account operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The link cannot be used; the page says only that (the reason is for audit and logs).
    #[error("the link is not valid ({0})")]
    InvalidLink(&'static str),
    /// The new password breaks the rule (the page names which rule).
    #[error("{0}")]
    Password(PasswordRefusal),
    /// The current password given on the account page is wrong.
    #[error("the current password is wrong")]
    WrongPassword,
    /// The signed-in user has no such session or consent (or it is another user's).
    #[error("not found")]
    NotFound,
    /// Password hashing is busy: try again after `retry_after`.
    #[error("password hashing is busy")]
    Busy { retry_after: Duration },
    /// Too many wrong passwords (the sign-in throttle): try again after `retry_after`.
    #[error("throttled")]
    Throttled { retry_after: Duration },
    /// The password pool has stopped, or the user vanished meanwhile.
    #[error("unavailable: {0}")]
    Unavailable(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<PasswordError> for AccountError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Busy { retry_after } => Self::Busy { retry_after },
            PasswordError::Stopped => Self::Unavailable("password hashing stopped"),
        }
    }
}

impl From<UsersError> for AccountError {
    fn from(e: UsersError) -> Self {
        match e {
            UsersError::Password(r) => Self::Password(r),
            UsersError::Busy(p) => p.into(),
            UsersError::NoEmail => Self::Unavailable("the user has no email address"),
            UsersError::Store(s) => Self::Store(s),
        }
    }
}

impl From<SignInError> for AccountError {
    fn from(e: SignInError) -> Self {
        match e {
            SignInError::Store(s) => Self::Store(s),
            SignInError::Invalid(_) => Self::NotFound,
        }
    }
}

pub type Result<T, E = AccountError> = std::result::Result<T, E>;

/// A link that may be used: whose it is (for the page's greeting and the password rule).
#[derive(Debug, Clone)]
pub struct OpenLink {
    pub user: UserRecord,
    pub purpose: TokenPurpose,
}

/// The account operations over one node's state. Cheap to build per request.
#[derive(Debug, Clone)]
pub struct Account {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audit: AuditSink,
    users: Arc<Users>,
    sign_in: Arc<SignIn>,
    login: Arc<crate::login::Login>,
}

impl Account {
    pub fn new(state: &AppState) -> Self {
        Self {
            store: state.store.clone(),
            clock: state.clock.clone(),
            audit: state.audit.clone(),
            users: state.users.clone(),
            sign_in: state.sign_in.clone(),
            login: state.login.clone(),
        }
    }

    /// The user a usable link of `purpose` in `tenant` belongs to, without using it.
    pub async fn open_link(
        &self,
        tenant: &TenantId,
        token: &str,
        purpose: TokenPurpose,
    ) -> Result<OpenLink> {
        let token = OneTimeToken::parse(token).ok_or(AccountError::InvalidLink("malformed"))?;
        let now = self.clock.now();
        let record = self
            .store
            .find_user_token(&token.digest(), purpose, now)
            .await?
            .ok_or(AccountError::InvalidLink("unknown, used or expired"))?;
        if &record.tenant != tenant {
            return Err(AccountError::InvalidLink("another tenant's link"));
        }
        match self.store.get_tenant(tenant).await? {
            Some(t) if t.status == TenantStatus::Active => {}
            _ => return Err(AccountError::InvalidLink("tenant not active")),
        }
        let user = self
            .store
            .get_user(tenant, &record.user_id)
            .await?
            .ok_or(AccountError::InvalidLink("no such user"))?;
        match (purpose, user.status) {
            (_, UserStatus::Disabled) => Err(AccountError::InvalidLink("user disabled")),
            (TokenPurpose::Invite, UserStatus::Active) => {
                Err(AccountError::InvalidLink("user already active"))
            }
            _ => Ok(OpenLink { user, purpose }),
        }
    }

    /// Sets the password through a link: the invitation's first password (the user becomes
    /// active) or a reset (every session and refresh-token family of the user ends). Either
    /// way the address is then verified: the user read the mail. A refused password leaves the
    /// link usable.
    pub async fn set_password_with_link(
        &self,
        tenant: &TenantId,
        token: &str,
        purpose: TokenPurpose,
        password: &Secret<String>,
        origin: &RequestOrigin,
    ) -> Result<UserRecord> {
        let outcome = self
            .set_password_with_link_inner(tenant, token, purpose, password, origin)
            .await;
        let action = match purpose {
            TokenPurpose::Invite => Action::UserInviteAccept,
            TokenPurpose::PasswordReset => Action::UserPasswordReset,
        };
        match &outcome {
            Ok(user) => self.record(
                tenant,
                action,
                Outcome::Success,
                None,
                Some(&user.id),
                origin,
            ),
            Err(AccountError::InvalidLink(reason)) => {
                self.record(tenant, action, Outcome::Failure, Some(reason), None, origin)
            }
            Err(AccountError::Password(r)) => self.record(
                tenant,
                action,
                Outcome::Failure,
                Some(r.code()),
                None,
                origin,
            ),
            Err(_) => {}
        }
        outcome
    }

    async fn set_password_with_link_inner(
        &self,
        tenant: &TenantId,
        token: &str,
        purpose: TokenPurpose,
        password: &Secret<String>,
        origin: &RequestOrigin,
    ) -> Result<UserRecord> {
        let OpenLink { mut user, .. } = self.open_link(tenant, token, purpose).await?;
        let hash = self.users.new_password_hash(&user, password).await?;
        // Spent only now, and only once whoever races: the loser changes nothing.
        let digest = OneTimeToken::parse(token)
            .ok_or(AccountError::InvalidLink("malformed"))?
            .digest();
        self.store
            .consume_user_token(&digest, purpose, self.clock.now())
            .await?
            .ok_or(AccountError::InvalidLink("used meanwhile"))?;
        let now = self.clock.now();
        if !self
            .store
            .set_user_password(tenant, &user.id, hash.as_str(), now)
            .await?
        {
            return Err(AccountError::Unavailable("the user was deleted meanwhile"));
        }
        if user.status == UserStatus::Invited {
            self.store
                .set_user_status(tenant, &user.id, UserStatus::Active, now)
                .await?;
            user.status = UserStatus::Active;
        }
        if !user.email_verified && user.email.is_some() {
            user.email_verified = true;
            // A concurrent admin change of the address wins: then it stays unverified.
            match self.store.update_user(&user, now).await {
                Ok(_) | Err(StoreError::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        if purpose == TokenPurpose::PasswordReset {
            self.sign_in
                .revoke_user_sessions(
                    tenant,
                    user.id.as_str(),
                    "password_reset",
                    Actor::anonymous(),
                    origin,
                )
                .await?;
        }
        user.password_hash = Some(hash.as_str().to_owned());
        user.password_changed_at = Some(now);
        Ok(user)
    }

    /// Starts a password reset for whatever `email` (as typed) names in `tenant`, if anything.
    /// Returns at once, the same way whatever the input: the lookup, the link and the mail and
    /// the audit event happen in the background.
    pub fn request_reset(&self, tenant: &TenantId, email: &str, origin: &RequestOrigin) {
        let Ok(email) = Email::parse(email) else {
            self.record(
                tenant,
                Action::UserPasswordResetRequest,
                Outcome::Failure,
                Some("malformed email"),
                None,
                origin,
            );
            return;
        };
        let task = self.users.request_password_reset(
            self.store.clone(),
            tenant.clone(),
            email,
            self.clock.now(),
        );
        let this = self.clone();
        let (tenant, origin) = (tenant.clone(), origin.clone());
        tokio::spawn(async move {
            let target = task.await.ok().flatten();
            this.record(
                &tenant,
                Action::UserPasswordResetRequest,
                Outcome::Success,
                None,
                target.as_ref(),
                &origin,
            );
        });
    }

    /// The signed-in user's record (`None` if it was deleted or disabled since sign-in).
    pub async fn user(&self, tenant: &TenantId, user_id: &UserId) -> Result<Option<UserRecord>> {
        Ok(self
            .store
            .get_user(tenant, user_id)
            .await?
            .filter(|u| u.status.may_sign_in()))
    }

    /// Changes the signed-in user's password: `current` must be right, `new` must follow the
    /// rule. Every other session of the user ends (`current_sid` stays). Returns the sids ended.
    pub async fn change_password(
        &self,
        session: &SessionRecord,
        current: &Secret<String>,
        new: &Secret<String>,
        origin: &RequestOrigin,
    ) -> Result<Vec<String>> {
        let tenant = &session.tenant;
        let user = self
            .user(tenant, &session.user_id)
            .await?
            .ok_or(AccountError::NotFound)?;
        // The current password is a password guess like a sign-in: throttled alike.
        let login = user.username.as_str().to_owned();
        if let Some(retry_after) = self.login.password_check_wait(tenant, &login, origin) {
            self.record(
                tenant,
                Action::UserPasswordChange,
                Outcome::Denied,
                Some("throttled"),
                Some(&user.id),
                origin,
            );
            return Err(AccountError::Throttled { retry_after });
        }
        let stored = user
            .password_hash
            .clone()
            .map(PasswordHashString::from_stored);
        let verdict = self.users.hasher.verify(stored.as_ref(), current).await?;
        if verdict == Verification::Mismatch {
            self.login.password_check_failed(tenant, &login, origin);
            self.record(
                tenant,
                Action::UserPasswordChange,
                Outcome::Failure,
                Some("wrong current password"),
                Some(&user.id),
                origin,
            );
            return Err(AccountError::WrongPassword);
        }
        self.login.password_check_succeeded(tenant, &login, origin);
        let hash = match self.users.new_password_hash(&user, new).await {
            Ok(h) => h,
            Err(e) => {
                let e = AccountError::from(e);
                if let AccountError::Password(r) = &e {
                    self.record(
                        tenant,
                        Action::UserPasswordChange,
                        Outcome::Failure,
                        Some(r.code()),
                        Some(&user.id),
                        origin,
                    );
                }
                return Err(e);
            }
        };
        let now = self.clock.now();
        if !self
            .store
            .set_user_password(tenant, &user.id, hash.as_str(), now)
            .await?
        {
            return Err(AccountError::NotFound);
        }
        let mut ended = Vec::new();
        for other in self
            .sign_in
            .list_sessions(tenant, session.user_id.as_str())
            .await?
        {
            if other.id != session.id
                && self
                    .sign_in
                    .revoke_session(
                        tenant,
                        other.id.as_str(),
                        "password_change",
                        Actor::anonymous(),
                        origin,
                    )
                    .await?
            {
                ended.push(other.id.to_string());
            }
        }
        self.record(
            tenant,
            Action::UserPasswordChange,
            Outcome::Success,
            None,
            Some(&user.id),
            origin,
        );
        Ok(ended)
    }

    /// The signed-in user's active sessions, oldest first.
    pub async fn sessions(&self, session: &SessionRecord) -> Result<Vec<SessionRecord>> {
        Ok(self
            .sign_in
            .list_sessions(&session.tenant, session.user_id.as_str())
            .await?)
    }

    /// Ends one of the signed-in user's sessions (possibly the current one). Another user's
    /// session, an unknown or an ended one is [`AccountError::NotFound`], changing nothing.
    pub async fn end_session(
        &self,
        session: &SessionRecord,
        sid: &str,
        origin: &RequestOrigin,
    ) -> Result<()> {
        let tenant = &session.tenant;
        let target = self.store.get_session_by_id(tenant, sid).await?;
        match target {
            Some(t) if t.user_id == session.user_id && t.revoked_at.is_none() => {}
            _ => return Err(AccountError::NotFound),
        }
        if self
            .sign_in
            .revoke_session(
                tenant,
                sid,
                "signed_out_by_user",
                Actor::anonymous(),
                origin,
            )
            .await?
        {
            Ok(())
        } else {
            Err(AccountError::NotFound)
        }
    }

    /// The signed-in user's consents, by client id.
    pub async fn consents(&self, session: &SessionRecord) -> Result<Vec<ConsentRecord>> {
        Ok(self
            .store
            .list_user_consents(&session.tenant, session.user_id.as_str())
            .await?)
    }

    /// Withdraws the signed-in user's consent to `client_id`; the client's refresh-token
    /// families for the user are revoked with it (storage does both in one transaction).
    pub async fn revoke_consent(
        &self,
        session: &SessionRecord,
        client_id: &str,
        origin: &RequestOrigin,
    ) -> Result<()> {
        let done = self
            .store
            .revoke_consent(
                &session.tenant,
                session.user_id.as_str(),
                client_id,
                self.clock.now(),
                self.sign_in.config().token_lifetime,
            )
            .await?;
        if !done {
            return Err(AccountError::NotFound);
        }
        self.audit.record(
            EventDraft {
                tenant: session.tenant.clone(),
                actor: Actor::anonymous(),
                credential_id: None,
                action: Action::ConsentRevoke,
                outcome: Outcome::Success,
                reason: None,
                target: Some(format!("{}:{client_id}", session.user_id)),
            },
            origin,
        );
        Ok(())
    }

    fn record(
        &self,
        tenant: &TenantId,
        action: Action,
        outcome: Outcome,
        reason: Option<&'static str>,
        user: Option<&UserId>,
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
                target: user.map(|u| u.as_str().to_owned()),
            },
            origin,
        );
    }
}
