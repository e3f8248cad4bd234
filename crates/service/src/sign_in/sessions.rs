//! Sessions: created at every sign-in (a new secret and `sid` each time, replacing whatever
//! session the browser presented: fixation defence), resolved from the cookie secret (anything
//! but an active session of the tenant is no session), revoked one at a time or all of a user's.

use portcullis_core::audit::{Action, Actor, Outcome};
use portcullis_core::session::{SessionId, SessionSecret, SessionState};
use portcullis_core::tenant::TenantId;
use portcullis_core::user::UserId;
use portcullis_store::SessionRecord;
use rand::rngs::OsRng;

use super::{Result, SignIn};
use crate::audit::RequestOrigin;

/// A successful sign-in.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub tenant: TenantId,
    pub user_id: UserId,
    /// How the user authenticated (`pwd`, ...).
    pub amr: Vec<String>,
    pub acr: Option<String>,
}

/// A session just created: the secret goes into the cookie, once.
#[derive(Debug, Clone)]
pub struct StartedSession {
    pub secret: SessionSecret,
    pub sid: SessionId,
    pub record: SessionRecord,
}

impl SignIn {
    /// Starts a session for a sign-in at `now` with fresh identifiers. `presented` is the
    /// session cookie the request carried, if any: that session is revoked (`superseded`),
    /// so an identifier planted or seen before sign-in is never the signed-in one.
    pub async fn create_session(
        &self,
        new: NewSession,
        presented: Option<&str>,
        actor: Actor,
        origin: &RequestOrigin,
    ) -> Result<StartedSession> {
        let now = self.clock.now();
        if let Some(old) = presented.and_then(SessionSecret::parse) {
            if let Some(prev) = self.store.get_session(&old.digest()).await? {
                self.revoke_session(
                    &prev.tenant,
                    prev.id.as_str(),
                    "superseded",
                    actor.clone(),
                    origin,
                )
                .await?;
            }
        }
        let secret = SessionSecret::generate(&mut OsRng);
        let sid = SessionId::generate(&mut OsRng);
        let times = self.config.session.start(now);
        let record = SessionRecord {
            digest: secret.digest().to_vec(),
            id: sid.clone(),
            tenant: new.tenant,
            user_id: new.user_id,
            auth_time: now,
            amr: new.amr,
            acr: new.acr,
            created_at: times.created_at,
            last_seen_at: times.last_seen_at,
            idle_expires_at: times.idle_expires_at,
            absolute_expires_at: times.absolute_expires_at,
            revoked_at: None,
        };
        self.store.insert_session(&record).await?;
        self.record(
            &record.tenant,
            actor,
            None,
            Action::SessionCreate,
            Outcome::Success,
            None,
            Some(record.id.to_string()),
            origin,
        );
        Ok(StartedSession {
            secret,
            sid,
            record,
        })
    }

    /// The active session of `tenant` a cookie value names, its idle deadline moved forward
    /// (written at most once a minute: `SessionPolicy::touch_due`); `None` for a malformed,
    /// unknown, expired, revoked or other tenant's one.
    pub async fn resolve_session(
        &self,
        tenant: &TenantId,
        cookie: &str,
    ) -> Result<Option<SessionRecord>> {
        let Some(secret) = SessionSecret::parse(cookie) else {
            return Ok(None);
        };
        let Some(mut s) = self.store.get_session(&secret.digest()).await? else {
            return Ok(None);
        };
        let now = self.clock.now();
        if &s.tenant != tenant || times(&s).state(s.revoked_at, now) != SessionState::Active {
            return Ok(None);
        }
        if !self.config.session.touch_due(&times(&s), now) {
            return Ok(Some(s));
        }
        let touched = self.config.session.touch(&times(&s), now);
        if !self
            .store
            .touch_session(&s.digest, touched.last_seen_at, touched.idle_expires_at)
            .await?
        {
            // Revoked between the read and the touch.
            return Ok(None);
        }
        s.last_seen_at = touched.last_seen_at;
        s.idle_expires_at = touched.idle_expires_at;
        Ok(Some(s))
    }

    /// A user's active sessions (for the account page and admins), oldest first.
    pub async fn list_sessions(
        &self,
        tenant: &TenantId,
        user_id: &str,
    ) -> Result<Vec<SessionRecord>> {
        let now = self.clock.now();
        Ok(self
            .store
            .list_user_sessions(tenant, user_id)
            .await?
            .into_iter()
            .filter(|s| times(s).state(s.revoked_at, now) == SessionState::Active)
            .collect())
    }

    /// Ends a session of `tenant` (sign-out, the user, an admin): a `session` revocation entry
    /// refuses its tokens at every verifier and its refresh-token families are revoked. Returns
    /// `false` if there was no such unrevoked session.
    pub async fn revoke_session(
        &self,
        tenant: &TenantId,
        sid: &str,
        reason: &'static str,
        actor: Actor,
        origin: &RequestOrigin,
    ) -> Result<bool> {
        let now = self.clock.now();
        let done = self
            .store
            .revoke_session(tenant, sid, reason, now, self.config.token_lifetime)
            .await?
            .is_some();
        if done {
            self.record(
                tenant,
                actor,
                None,
                Action::SessionRevoke,
                Outcome::Success,
                Some(reason),
                Some(sid.to_owned()),
                origin,
            );
            self.sessions_ended(tenant, &[sid.to_owned()]).await;
        }
        Ok(done)
    }

    /// Ends every session and refresh-token family of a user (sign out everywhere, or the user
    /// is being deleted or disabled). Returns the sids ended.
    pub async fn revoke_user_sessions(
        &self,
        tenant: &TenantId,
        user_id: &str,
        reason: &'static str,
        actor: Actor,
        origin: &RequestOrigin,
    ) -> Result<Vec<String>> {
        let now = self.clock.now();
        let sids = self
            .store
            .revoke_user_sessions(tenant, user_id, reason, now, self.config.token_lifetime)
            .await?;
        for sid in &sids {
            self.record(
                tenant,
                actor.clone(),
                None,
                Action::SessionRevoke,
                Outcome::Success,
                Some(reason),
                Some(sid.clone()),
                origin,
            );
        }
        self.sessions_ended(tenant, &sids).await;
        Ok(sids)
    }
}

fn times(s: &SessionRecord) -> portcullis_core::session::SessionTimes {
    portcullis_core::session::SessionTimes {
        created_at: s.created_at,
        last_seen_at: s.last_seen_at,
        idle_expires_at: s.idle_expires_at,
        absolute_expires_at: s.absolute_expires_at,
    }
}
