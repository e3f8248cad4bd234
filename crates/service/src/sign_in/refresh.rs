//! Refresh-token families: started at a code redemption, rotated at every refresh. What a
//! presented token may do is core's rule (`portcullis_core::refresh::decide`); this applies it:
//! a rotation stores exactly one successor (storage's compare-and-swap), a race lost within the
//! grace window or a replay within it hands out the same successor (recomputed, `successor`
//! module), and a replay after it revokes the family with a `family` revocation entry.

use portcullis_core::audit::{Action, Actor, Outcome};
use portcullis_core::client::ClientId;
use portcullis_core::credential::{Credential, CredentialKind};
use portcullis_core::refresh::{decide, FamilyId, FamilyTimes, PresentedToken, RefreshDecision};
use portcullis_core::session::SessionId;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_core::user::{UserId, UserStatus};
use portcullis_store::{RefreshFamilyRecord, RefreshTokenRead, RefreshTokenRecord, RotateOutcome};
use rand::rngs::OsRng;

use super::{Result, SignIn, SignInError};
use crate::audit::RequestOrigin;

/// A family to start (at the code redemption that grants `offline_access` or refresh tokens).
#[derive(Debug, Clone)]
pub struct NewFamily {
    pub tenant: TenantId,
    pub client_id: ClientId,
    pub user_id: UserId,
    pub sid: Option<SessionId>,
    pub scope: Vec<String>,
    pub auth_time: Timestamp,
    pub acr: Option<String>,
    pub amr: Vec<String>,
    /// The DPoP key (RFC 7638 thumbprint) a public client's refresh tokens are bound to.
    pub dpop_jkt: Option<String>,
    /// The client certificate (`x5t#S256`) an mTLS client's refresh tokens are bound to.
    pub cert_x5t: Option<String>,
}

/// A family just started, with its first refresh token (shown to the client once).
#[derive(Debug, Clone)]
pub struct StartedFamily {
    pub family: RefreshFamilyRecord,
    pub token: Credential,
}

/// A refresh that succeeded: the token to hand the client and the family to issue from.
#[derive(Debug, Clone)]
pub struct Refreshed {
    pub token: Credential,
    pub family: RefreshFamilyRecord,
    /// `false` when this is the successor handed out again within the grace window.
    pub rotated: bool,
}

/// A presented refresh token as introspection and revocation see it: its family and what a
/// refresh with it would do now (for the family's own client). Nothing is changed to learn it.
#[derive(Debug, Clone)]
pub struct InspectedRefresh {
    pub family: RefreshFamilyRecord,
    pub decision: RefreshDecision,
    /// When this token was issued (its rotation predecessor's refresh, or the code redemption).
    pub issued_at: Timestamp,
}

impl InspectedRefresh {
    /// Whether the token endpoint would honour it now (a current token, or one rotated within
    /// the grace window): what RFC 7662 calls active.
    pub fn active(&self) -> bool {
        self.decision.issues()
    }

    /// When the token stops being usable if nothing else happens: the family's idle or absolute
    /// deadline, whichever comes first.
    pub fn expires_at(&self) -> Timestamp {
        self.family
            .idle_expires_at
            .min(self.family.absolute_expires_at)
    }
}

/// A presented refresh token as one store read found it ([`SignIn::read_refresh_token`]).
// One value per request, moved into the rotation once and never stored: boxing the records
// would add two allocations per grant to save a few hundred bytes of stack.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum PresentedRefresh {
    /// Not a refresh token of this installation's environment (format or checksum wrong).
    Malformed,
    /// Well formed, but no stored token has its digest.
    Unknown,
    Known {
        cred: Credential,
        token: RefreshTokenRecord,
        family: RefreshFamilyRecord,
        /// The family's user's status, read with the token (`None`: no such user).
        user_status: Option<UserStatus>,
    },
}

impl PresentedRefresh {
    /// The family the token belongs to, if it is known and of `tenant`'s client `client_id`,
    /// with the family's user's status as read with it.
    pub fn family_of(
        &self,
        tenant: &TenantId,
        client_id: &str,
    ) -> Option<(&RefreshFamilyRecord, Option<UserStatus>)> {
        match self {
            Self::Known {
                family,
                user_status,
                ..
            } if &family.tenant == tenant && family.client_id.as_str() == client_id => {
                Some((family, *user_status))
            }
            _ => None,
        }
    }
}

impl SignIn {
    /// Looks a presented refresh token up without rotating it: `None` if it is malformed, of
    /// another environment or unknown (the format and checksum are checked before any lookup).
    /// Whose it is (tenant, client) is the caller's to judge.
    pub async fn inspect_refresh_token(&self, presented: &str) -> Result<Option<InspectedRefresh>> {
        let Ok(cred) = Credential::parse(presented) else {
            return Ok(None);
        };
        if cred.kind() != CredentialKind::RefreshToken
            || cred.environment() != &self.config.environment
        {
            return Ok(None);
        }
        let Some(RefreshTokenRead { token, family, .. }) =
            self.store.get_refresh_token(&cred.digest()).await?
        else {
            return Ok(None);
        };
        let decision = self.decide(
            &family,
            family.client_id.as_str(),
            token.rotated_at,
            self.clock.now(),
        );
        Ok(Some(InspectedRefresh {
            family,
            decision,
            issued_at: token.created_at,
        }))
    }

    pub async fn start_family(&self, new: NewFamily) -> Result<StartedFamily> {
        let now = self.clock.now();
        let times = self.config.refresh.start(now);
        let family = RefreshFamilyRecord {
            id: FamilyId::generate(&mut OsRng),
            tenant: new.tenant,
            client_id: new.client_id,
            user_id: new.user_id,
            sid: new.sid,
            scope: new.scope,
            auth_time: new.auth_time,
            acr: new.acr,
            amr: new.amr,
            created_at: now,
            idle_expires_at: times.idle_expires_at,
            absolute_expires_at: times.absolute_expires_at,
            revoked_at: None,
            revoked_reason: None,
            dpop_jkt: new.dpop_jkt,
            cert_x5t: new.cert_x5t,
        };
        let token = Credential::generate(
            CredentialKind::RefreshToken,
            self.config.environment.clone(),
            &mut OsRng,
        );
        let first = RefreshTokenRecord {
            digest: token.digest().to_vec(),
            family_id: family.id.clone(),
            generation: 0,
            created_at: now,
            rotated_at: None,
            successor_digest: None,
        };
        self.store.create_refresh_family(&family, &first).await?;
        Ok(StartedFamily { family, token })
    }

    /// Reads a presented refresh token once: its format and checksum are checked before any
    /// lookup, then one store read finds it with its family. The token endpoint judges the
    /// request against [`PresentedRefresh::family_of`] before [`Self::refresh_presented`]
    /// rotates anything (so a refused request never costs the client its token), and the
    /// rotation decides from this same read: the store's compare-and-swap, not a second read,
    /// is what makes a racing rotation or revocation safe.
    pub async fn read_refresh_token(&self, presented: &str) -> Result<PresentedRefresh> {
        let Ok(cred) = Credential::parse(presented) else {
            return Ok(PresentedRefresh::Malformed);
        };
        if cred.kind() != CredentialKind::RefreshToken
            || cred.environment() != &self.config.environment
        {
            return Ok(PresentedRefresh::Malformed);
        }
        Ok(match self.store.get_refresh_token(&cred.digest()).await? {
            Some(RefreshTokenRead {
                token,
                family,
                user_status,
            }) => PresentedRefresh::Known {
                cred,
                token,
                family,
                user_status,
            },
            None => PresentedRefresh::Unknown,
        })
    }

    /// Refreshes with `presented` for the authenticated client `client_id` of `tenant`. The
    /// format and checksum are checked before any lookup.
    pub async fn refresh(
        &self,
        presented: &str,
        tenant: &TenantId,
        client_id: &str,
        origin: &RequestOrigin,
    ) -> Result<Refreshed> {
        let read = self.read_refresh_token(presented).await?;
        self.refresh_presented(read, tenant, client_id, origin)
            .await
    }

    /// [`Self::refresh`] with a token already read by [`Self::read_refresh_token`].
    pub async fn refresh_presented(
        &self,
        presented: PresentedRefresh,
        tenant: &TenantId,
        client_id: &str,
        origin: &RequestOrigin,
    ) -> Result<Refreshed> {
        let (cred, token, family) = match presented {
            PresentedRefresh::Malformed => return Err(SignInError::Invalid("refresh_malformed")),
            PresentedRefresh::Unknown => return Err(SignInError::Invalid("refresh_unknown")),
            PresentedRefresh::Known {
                cred,
                token,
                family,
                ..
            } => (cred, token, family),
        };
        let digest = cred.digest();
        if &family.tenant != tenant {
            // Another tenant's token: as unknown to this client as a wrong one.
            return Err(SignInError::Invalid("refresh_unknown"));
        }
        let actor = Actor::client(client_id);
        let now = self.clock.now();
        let decision = self.decide(&family, client_id, token.rotated_at, now);
        match decision {
            RefreshDecision::Rotate => {}
            RefreshDecision::WithinGrace => {
                return self
                    .hand_out_again(
                        &cred,
                        &token,
                        family,
                        token.successor_digest.as_deref(),
                        actor,
                        origin,
                    )
                    .await;
            }
            RefreshDecision::ReusedAfterRotation => {
                return self.reused(&cred, &family, actor, origin).await;
            }
            refused => {
                self.record(
                    &family.tenant,
                    actor,
                    Some(cred.display_prefix()),
                    Action::OAuthRefreshRotate,
                    Outcome::Failure,
                    Some(refused.as_str()),
                    Some(family.id.to_string()),
                    origin,
                );
                return Err(SignInError::Invalid(refused.as_str()));
            }
        }
        let generation = token.generation + 1;
        let successor = self.keys.successor(
            &self.config.environment,
            family.id.as_str(),
            generation,
            &digest,
        );
        let record = RefreshTokenRecord {
            digest: successor.digest().to_vec(),
            family_id: family.id.clone(),
            generation,
            created_at: now,
            rotated_at: None,
            successor_digest: None,
        };
        let idle = self
            .config
            .refresh
            .idle_after_rotation(&family_times(&family), now);
        match self
            .store
            .rotate_refresh_token(&digest, &record, idle)
            .await?
        {
            RotateOutcome::Rotated => {
                self.record(
                    &family.tenant,
                    actor,
                    Some(cred.display_prefix()),
                    Action::OAuthRefreshRotate,
                    Outcome::Success,
                    Some(RefreshDecision::Rotate.as_str()),
                    Some(family.id.to_string()),
                    origin,
                );
                let family = RefreshFamilyRecord {
                    idle_expires_at: idle
                        .map_or(family.idle_expires_at, |i| i.max(family.idle_expires_at)),
                    ..family
                };
                Ok(Refreshed {
                    token: successor,
                    family,
                    rotated: true,
                })
            }
            // Another tab or node rotated it first: decide again with its rotation time.
            RotateOutcome::AlreadyRotated {
                successor_digest,
                rotated_at,
            } => match self.decide(&family, client_id, Some(rotated_at), now) {
                RefreshDecision::WithinGrace => {
                    self.hand_out_again(
                        &cred,
                        &token,
                        family,
                        Some(&successor_digest),
                        actor,
                        origin,
                    )
                    .await
                }
                _ => self.reused(&cred, &family, actor, origin).await,
            },
            RotateOutcome::FamilyRevoked => {
                Err(SignInError::Invalid(RefreshDecision::Revoked.as_str()))
            }
            RotateOutcome::NotFound => Err(SignInError::Invalid("refresh_unknown")),
        }
    }

    /// Revokes a family (admin, the user, a replayed code) with its revocation entry and an
    /// audit event. Returns `false` if there was no such unrevoked family.
    pub async fn revoke_family(
        &self,
        tenant: &TenantId,
        family_id: &str,
        reason: &'static str,
        origin: &RequestOrigin,
    ) -> Result<bool> {
        let now = self.clock.now();
        let done = self
            .store
            .revoke_refresh_family(tenant, family_id, reason, now, self.config.token_lifetime)
            .await?
            .is_some();
        if done {
            self.record(
                tenant,
                Actor::system(),
                None,
                Action::OAuthRefreshFamilyRevoke,
                Outcome::Success,
                Some(reason),
                Some(family_id.to_owned()),
                origin,
            );
        }
        Ok(done)
    }

    fn decide(
        &self,
        family: &RefreshFamilyRecord,
        client_id: &str,
        rotated_at: Option<Timestamp>,
        now: Timestamp,
    ) -> RefreshDecision {
        let presented = PresentedToken {
            client_id: family.client_id.as_str(),
            rotated_at,
        };
        decide(
            &self.config.refresh,
            &family_times(family),
            &presented,
            client_id,
            now,
        )
    }

    /// Within the grace window: the one successor, recomputed (never stored in plaintext).
    async fn hand_out_again(
        &self,
        cred: &Credential,
        token: &RefreshTokenRecord,
        family: RefreshFamilyRecord,
        successor_digest: Option<&[u8]>,
        actor: Actor,
        origin: &RequestOrigin,
    ) -> Result<Refreshed> {
        let successor = successor_digest.and_then(|stored| {
            self.keys.matching(
                &self.config.environment,
                family.id.as_str(),
                token.generation + 1,
                &cred.digest(),
                stored,
            )
        });
        let Some(successor) = successor else {
            // Derived under a KEK no longer configured: refuse, without revoking anything.
            return Err(SignInError::Invalid("grace_successor_unavailable"));
        };
        // The rotation that made this successor may be another request's, still waiting for
        // its fsync: the successor leaves only once that rotation is on disk.
        self.store.await_request_writes().await?;
        self.record(
            &family.tenant,
            actor,
            Some(cred.display_prefix()),
            Action::OAuthRefreshRotate,
            Outcome::Success,
            Some(RefreshDecision::WithinGrace.as_str()),
            Some(family.id.to_string()),
            origin,
        );
        Ok(Refreshed {
            token: successor,
            family,
            rotated: false,
        })
    }

    /// A rotated token presented after the grace window: revoke the whole family.
    async fn reused(
        &self,
        cred: &Credential,
        family: &RefreshFamilyRecord,
        actor: Actor,
        origin: &RequestOrigin,
    ) -> Result<Refreshed> {
        self.record(
            &family.tenant,
            actor,
            Some(cred.display_prefix()),
            Action::OAuthRefreshReuse,
            Outcome::Failure,
            Some(RefreshDecision::ReusedAfterRotation.as_str()),
            Some(family.id.to_string()),
            origin,
        );
        self.revoke_family(&family.tenant, family.id.as_str(), "refresh_reuse", origin)
            .await?;
        Err(SignInError::Invalid(
            RefreshDecision::ReusedAfterRotation.as_str(),
        ))
    }
}

fn family_times(f: &RefreshFamilyRecord) -> FamilyTimes {
    FamilyTimes {
        created_at: f.created_at,
        idle_expires_at: f.idle_expires_at,
        absolute_expires_at: f.absolute_expires_at,
        revoked_at: f.revoked_at,
    }
}
