//! Authorization codes: issued bound to client, redirect URI, PKCE challenge, nonce and (when the
//! request named one, RFC 9449 section 10) a DPoP key; redeemed
//! once. A second presentation (a replay) revokes what the first redemption issued (DESIGN
//! invariant 6): its access tokens by `jti` and its refresh-token family, including tokens the
//! first redemption records after the replay arrived ([`SignIn::code_issued`]).

use portcullis_core::audit::{Action, Actor, Outcome};
use portcullis_core::auth_code::{self, AuthCode, CodeBinding, Redemption};
use portcullis_core::client::ClientId;
use portcullis_core::refresh::FamilyId;
use portcullis_core::revocation::RevocationKind;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_store::{
    AuthCodeRecord, CodeConsumption, CodeIssuance, NewRevocation, SessionRecord,
};
use rand::rngs::OsRng;

use super::{Result, SignIn, SignInError};
use crate::audit::RequestOrigin;

/// What the authorization endpoint binds a code to (after it validated the request).
#[derive(Debug, Clone)]
pub struct CodeRequest<'a> {
    pub client_id: &'a ClientId,
    /// Exactly as the authorization request named it (and the client registered it).
    pub redirect_uri: &'a str,
    /// The S256 challenge (the endpoint refuses `plain` and a missing challenge).
    pub code_challenge: &'a str,
    pub nonce: Option<&'a str>,
    pub scope: Vec<String>,
    /// The DPoP key thumbprint the request bound the code to (RFC 9449 section 10).
    pub dpop_jkt: Option<&'a str>,
    /// The signed-in session the code is issued under.
    pub session: &'a SessionRecord,
}

/// What the token endpoint presents.
#[derive(Debug, Clone, Copy)]
pub struct RedemptionRequest<'a> {
    pub code: &'a str,
    /// The authenticated client's tenant and id.
    pub tenant: &'a TenantId,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub code_verifier: &'a str,
    /// The key of the request's verified DPoP proof, if it sent one.
    pub dpop_jkt: Option<&'a str>,
}

/// A code redeemed by this call: issue tokens from `record`, then report them with
/// [`SignIn::code_issued`].
#[derive(Debug, Clone)]
pub struct RedeemedCode {
    pub record: AuthCodeRecord,
}

impl SignIn {
    /// Issues a code for `req`, living the configured lifetime (at most 60 s).
    pub async fn issue_code(&self, req: CodeRequest<'_>) -> Result<AuthCode> {
        let now = self.clock.now();
        let code = AuthCode::generate(&mut OsRng);
        let s = req.session;
        let record = AuthCodeRecord {
            digest: code.digest().to_vec(),
            tenant: s.tenant.clone(),
            client_id: req.client_id.clone(),
            redirect_uri: req.redirect_uri.to_owned(),
            code_challenge: req.code_challenge.to_owned(),
            nonce: req.nonce.map(str::to_owned),
            scope: req.scope,
            user_id: s.user_id.clone(),
            sid: s.id.clone(),
            auth_time: s.auth_time,
            acr: s.acr.clone(),
            amr: s.amr.clone(),
            created_at: now,
            expires_at: auth_code::expiry(now, self.config.code_lifetime),
            consumed_at: None,
            issued: None,
            dpop_jkt: req.dpop_jkt.map(str::to_owned),
        };
        self.store.insert_code(&record).await?;
        Ok(code)
    }

    /// Redeems a code. Refused (changing nothing) if it is malformed, unknown, expired, or does
    /// not match the client, redirect URI or PKCE verifier; a code presented after its first
    /// redemption is a replay: what the first issued is revoked, and this one refused.
    pub async fn redeem_code(
        &self,
        r: RedemptionRequest<'_>,
        origin: &RequestOrigin,
    ) -> Result<RedeemedCode> {
        let code = AuthCode::parse(r.code).ok_or(SignInError::Invalid("code_malformed"))?;
        let digest = code.digest();
        let stored = self
            .store
            .get_code(&digest)
            .await?
            .ok_or(SignInError::Invalid("code_unknown"))?;
        let now = self.clock.now();
        if stored.consumed_at.is_some() {
            return self.replayed(&digest, r, origin).await;
        }
        let binding = CodeBinding {
            tenant: &stored.tenant,
            client_id: stored.client_id.as_str(),
            redirect_uri: &stored.redirect_uri,
            code_challenge: &stored.code_challenge,
            expires_at: stored.expires_at,
        };
        let redemption = Redemption {
            tenant: r.tenant,
            client_id: r.client_id,
            redirect_uri: r.redirect_uri,
            code_verifier: r.code_verifier,
        };
        binding
            .check(&redemption, now)
            .map_err(|e| SignInError::Invalid(e.as_str()))?;
        // A code bound to a DPoP key (RFC 9449 section 10) redeems only with a proof of that
        // key; checked before it is consumed, so a thief without the key cannot burn it.
        if let Some(bound) = &stored.dpop_jkt {
            if r.dpop_jkt != Some(bound.as_str()) {
                return Err(SignInError::Invalid("code_dpop_key_mismatch"));
            }
        }
        // Which clients got tokens in the session, for back-channel logout: recorded before the
        // code is consumed, so a redemption never issues tokens unrecorded (a record for a
        // redemption that then fails costs at most one needless logout notification).
        self.store
            .record_session_client(
                &stored.tenant,
                stored.sid.as_str(),
                stored.client_id.as_str(),
                now,
            )
            .await?;
        match self.store.consume_code(&digest, now).await? {
            CodeConsumption::Redeemed(record) => Ok(RedeemedCode { record }),
            // Another node redeemed it between the read and here.
            CodeConsumption::AlreadyUsed(_) => self.replayed(&digest, r, origin).await,
            CodeConsumption::Expired => Err(SignInError::Invalid("code_expired")),
            CodeConsumption::NotFound => Err(SignInError::Invalid("code_unknown")),
        }
    }

    /// Records what a redemption issued: the access tokens' `jti`s (expiring at
    /// `tokens_expire_at`) and the refresh-token family, if any. If a replay arrived meanwhile,
    /// revokes them at once and fails.
    pub async fn code_issued(
        &self,
        redeemed: &RedeemedCode,
        jtis: Vec<String>,
        tokens_expire_at: Timestamp,
        family_id: Option<FamilyId>,
    ) -> Result<()> {
        let issued = CodeIssuance {
            jtis,
            tokens_expire_at,
            family_id,
        };
        let replayed = self
            .store
            .record_code_issuance(&redeemed.record.digest, &issued)
            .await?;
        if replayed {
            let origin = RequestOrigin::default();
            self.revoke_issued(&redeemed.record.tenant, &issued, &origin)
                .await?;
            return Err(SignInError::Invalid("code_replayed"));
        }
        Ok(())
    }

    async fn replayed(
        &self,
        digest: &[u8],
        r: RedemptionRequest<'_>,
        origin: &RequestOrigin,
    ) -> Result<RedeemedCode> {
        let now = self.clock.now();
        // Marks the code replayed (so a redemption still issuing learns of it) and reads what
        // the first redemption recorded.
        let CodeConsumption::AlreadyUsed(first) = self.store.consume_code(digest, now).await?
        else {
            return Err(SignInError::Invalid("code_unknown"));
        };
        if let Some(issued) = &first.issued {
            self.revoke_issued(&first.tenant, issued, origin).await?;
        }
        self.record(
            &first.tenant,
            Actor::client(r.client_id),
            None,
            Action::OAuthCodeReplay,
            Outcome::Failure,
            Some("code_replayed"),
            Some(first.client_id.to_string()),
            origin,
        );
        Err(SignInError::Invalid("code_replayed"))
    }

    /// Revokes what one redemption issued: each access token by `jti`, and its family.
    async fn revoke_issued(
        &self,
        tenant: &TenantId,
        issued: &CodeIssuance,
        origin: &RequestOrigin,
    ) -> Result<()> {
        let now = self.clock.now();
        for jti in &issued.jtis {
            self.store
                .append_revocation(
                    &NewRevocation {
                        tenant: tenant.clone(),
                        kind: RevocationKind::Token,
                        subject: jti.clone(),
                        revoked_before: None,
                        expires_at: Some(issued.tokens_expire_at),
                        reason: Some("code_replayed".into()),
                    },
                    now,
                )
                .await?;
        }
        if let Some(family) = &issued.family_id {
            self.revoke_family(tenant, family.as_str(), "code_replayed", origin)
                .await?;
        }
        Ok(())
    }
}
