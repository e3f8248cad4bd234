//! The revocation log as verifiers see it: the wire record the server streams, and the in-memory
//! set a verifier builds from it to answer "is this credential revoked?" without I/O.
//!
//! The log is ordered and gapless (positions 1, 2, 3, ...). A verifier applies records in order,
//! remembers the last position it applied, and resumes from there after a disconnect, so nothing
//! is lost. Applying a record twice is harmless: records at or before the current position are
//! ignored.
//!
//! Evolving the wire format (protocol version [`FEED_PROTOCOL_VERSION`]): within a version the
//! server may add record kinds and optional fields, never change what a known kind covers.
//! A verifier that meets a kind it does not know keeps following the feed and treats the record
//! conservatively ([`RevocationKind::Unknown`]): it revokes, in its tenant (every tenant when
//! filed under `system`), every token that carries the record's subject as any identifier
//! (`jti`, client, subject, `kid`, family, session `sid`, tenant, a `jti` it was exchanged
//! from) and was issued at or before
//! `revoked_before`, and the API key with that id; unknown fields are ignored. So an older
//! verifier may refuse more than a newer one, never accept what the new record revokes. A
//! change that cannot keep to this takes a new protocol version, which older verifiers refuse
//! (failing closed) instead of misreading.
//!
//! A token exchanged from another (service token exchange) lists the `jti` of every token it
//! was exchanged from (`exchanged_from`), and a [`RevocationKind::Token`] record for any of
//! them revokes it too: its authority came from theirs. Its expiry is never later than theirs,
//! so the record lives long enough.
//!
//! Session records ([`RevocationKind::Session`], subject = the `sid`) are the one addition that
//! leans on a deployment rule rather than on this: a verifier from before sessions reads them as
//! unknown but does not read the `sid` claim, so it cannot match them. Only tokens issued to a
//! browser or mobile sign-in carry a `sid`; verifiers and gateways must run a version that knows
//! `session` records before the sign-in endpoints are enabled (the upgrade notes say so). The
//! same holds for `exchanged_from`: a verifier from before it does not read the claim, so it
//! refuses an exchanged token only by the token's own identifiers.
//!
//! This module must never decide anything from a record's `reason` (it is not on the wire) or
//! trust a record that did not come from the server's authenticated feed; it only holds state.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::tenant::TenantId;
use crate::time::{Timestamp, MAX_LEEWAY};

/// The revocation feed's wire protocol version, sent by the server (`Portcullis-Feed-Version`
/// header, snapshot `version`) and checked by verifiers: see the module docs for what may change
/// within a version.
pub const FEED_PROTOCOL_VERSION: u32 = 1;

/// The header both feed endpoints name [`FEED_PROTOCOL_VERSION`] in.
pub const FEED_VERSION_HEADER: &str = "portcullis-feed-version";

/// What a revocation record names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RevocationKind {
    /// One access token, by `jti`.
    Token,
    /// A refresh-token family: every token of the family issued at or before `revoked_before`.
    Family,
    /// A client: its tokens issued at or before `revoked_before` (all of them when absent).
    Client,
    /// A subject: its tokens issued at or before `revoked_before` (all of them when absent).
    Subject,
    /// An API key, by key id: revoked for good.
    ApiKey,
    /// An API key's facts changed (disabled, enabled, updated, rotated): caches must drop what
    /// they hold for it and look it up again. Not a denial by itself.
    ApiKeyChanged,
    /// A signing key, by `kid`: every token carrying that `kid` is revoked, whatever its `iat`
    /// (whoever stole the key can mint tokens dated after the revocation), and the mark is never
    /// forgotten. Not tenant-scoped.
    SigningKey,
    /// A tenant (the subject is its id) was disabled: its tokens issued at or before
    /// `revoked_before` are revoked, and caches must drop what they hold for its API keys
    /// (which are refused by their backend while the tenant is disabled, and work again once it
    /// is enabled).
    Tenant,
    /// A sign-in session (the subject is its `sid`) ended (sign-out, admin revocation, timeout
    /// enforcement): every token carrying that `sid` issued at or before `revoked_before` is
    /// revoked.
    Session,
    /// A kind this verifier does not know (a newer server's): read by the conservative rule in
    /// the module docs. Never stored or sent by this version.
    Unknown,
}

impl Serialize for RevocationKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for RevocationKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        Ok(Self::parse(&text).unwrap_or(Self::Unknown))
    }
}

impl RevocationKind {
    pub const ALL: [Self; 9] = [
        Self::Token,
        Self::Family,
        Self::Client,
        Self::Subject,
        Self::ApiKey,
        Self::ApiKeyChanged,
        Self::SigningKey,
        Self::Tenant,
        Self::Session,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::Family => "family",
            Self::Client => "client",
            Self::Subject => "subject",
            Self::ApiKey => "api_key",
            Self::ApiKeyChanged => "api_key_changed",
            Self::SigningKey => "signing_key",
            Self::Tenant => "tenant",
            Self::Session => "session",
            Self::Unknown => "unknown",
        }
    }

    /// A kind this version knows; `None` for anything else ("unknown" included).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// One entry of the revocation log as it travels to verifiers (SSE `data`, snapshot items).
/// The internal `reason` is deliberately absent. Unknown fields are ignored (module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationRecord {
    /// Position in the log (1, 2, 3, ... with no gaps).
    pub seq: i64,
    pub tenant: TenantId,
    pub kind: RevocationKind,
    /// The jti, family id, client id, subject, API key id, kid, tenant id or session id.
    pub subject: String,
    /// Credentials issued at or before this time are covered (absent: all, or the one named).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_before: Option<Timestamp>,
    /// After this the record covers nothing still valid and may be forgotten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

/// The earliest `expires_at` an entry may have at `now` and still be needed: a verifier accepts
/// a token up to its leeway (at most [`MAX_LEEWAY`]) past `exp`, so an entry must refuse it
/// that much longer. Entries that expired before this may be forgotten (by a verifier's set) or
/// left out (by the feed and the embedded gateway's follower).
pub fn needed_if_expiring_after(now: Timestamp) -> Timestamp {
    now.saturating_sub(MAX_LEEWAY)
}

/// What identifies an access token for a revocation check.
#[derive(Debug, Clone, Copy)]
pub struct TokenIdentity<'a> {
    pub tenant: &'a TenantId,
    pub jti: &'a str,
    pub client_id: Option<&'a str>,
    pub subject: &'a str,
    pub kid: &'a str,
    pub family: Option<&'a str>,
    /// The sign-in session (`sid` claim) the token was issued under, if any.
    pub sid: Option<&'a str>,
    /// The `jti`s of the tokens it was exchanged from (`exchanged_from` claim; empty for a token
    /// from any other grant).
    pub exchanged_from: &'a [String],
    pub issued_at: Timestamp,
}

/// One log entry that could revoke a token: its kind, the tenant it must be filed under
/// (`None`: any tenant, for signing keys), and the subject it must name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate<'a> {
    pub kind: RevocationKind,
    pub tenant: Option<&'a TenantId>,
    pub subject: &'a str,
}

impl<'a> TokenIdentity<'a> {
    /// Every entry that could revoke this token, in the order [`RevocationSet::token_revoked`]
    /// reports them. Storage reads exactly these (and nothing decides from the read but this
    /// module), so introspection and every verifier apply one rule.
    pub fn candidates(&self) -> impl Iterator<Item = Candidate<'a>> {
        self.candidates_by().map(|(c, _)| c)
    }

    /// [`Self::candidates`], each with what it revokes by.
    fn candidates_by(&self) -> impl Iterator<Item = (Candidate<'a>, RevokedBy)> {
        let tenant = Some(self.tenant);
        let own = [
            // Signing-key marks are global (stored under the system tenant): any tenant matches.
            Some((RevocationKind::SigningKey, None, self.kid)),
            Some((RevocationKind::Tenant, tenant, self.tenant.as_str())),
            Some((RevocationKind::Token, tenant, self.jti)),
            self.client_id.map(|c| (RevocationKind::Client, tenant, c)),
            Some((RevocationKind::Subject, tenant, self.subject)),
            self.family.map(|f| (RevocationKind::Family, tenant, f)),
            self.sid.map(|s| (RevocationKind::Session, tenant, s)),
        ]
        .into_iter()
        .flatten()
        .map(|(kind, tenant, subject)| (kind, tenant, subject, RevokedBy::of(kind)));
        let lineage = self.exchanged_from.iter().map(move |jti| {
            (
                RevocationKind::Token,
                tenant,
                jti.as_str(),
                RevokedBy::ExchangedFrom,
            )
        });
        own.chain(lineage).map(|(kind, tenant, subject, by)| {
            (
                Candidate {
                    kind,
                    tenant,
                    subject,
                },
                by,
            )
        })
    }
}

/// Why a credential counts as revoked (internal; for logs and audit only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokedBy {
    Token,
    Family,
    Client,
    Subject,
    ApiKey,
    SigningKey,
    Tenant,
    Session,
    /// A token this one was exchanged from was revoked by `jti`.
    ExchangedFrom,
    /// A record of a kind this verifier does not know (module docs).
    UnknownKind,
}

impl RevokedBy {
    /// What a mark of this kind revokes by. API key records never revoke tokens.
    fn of(kind: RevocationKind) -> Self {
        match kind {
            RevocationKind::Token => Self::Token,
            RevocationKind::Family => Self::Family,
            RevocationKind::Client => Self::Client,
            RevocationKind::Subject => Self::Subject,
            RevocationKind::SigningKey => Self::SigningKey,
            RevocationKind::Tenant => Self::Tenant,
            RevocationKind::Session => Self::Session,
            RevocationKind::ApiKey | RevocationKind::ApiKeyChanged => Self::ApiKey,
            RevocationKind::Unknown => Self::UnknownKind,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Self::Token => "token_revoked",
            Self::Family => "family_revoked",
            Self::Client => "client_revoked",
            Self::Subject => "subject_revoked",
            Self::ApiKey => "api_key_revoked",
            Self::SigningKey => "signing_key_revoked",
            Self::Tenant => "tenant_disabled",
            Self::Session => "session_revoked",
            Self::ExchangedFrom => "exchanged_from_revoked",
            Self::UnknownKind => "revoked_by_unknown_kind",
        }
    }
}

/// What applying a record did, so the caller can drop caches that depend on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// At or before the current position: already applied.
    Duplicate,
    /// Recorded.
    Recorded,
    /// An API key's facts changed (or it was revoked): drop anything cached for this key id.
    ApiKey(String),
    /// A tenant was disabled: drop anything cached for its API keys.
    Tenant(TenantId),
    /// A signing key was revoked: drop the key (by `kid`) from key caches and every cached
    /// verification of a token it signed.
    SigningKey(String),
    /// A record of an unknown kind: drop anything cached for an API key with this id (its
    /// backend knows what the record means); tokens are covered by the conservative rule.
    Unknown(String),
}

/// A "revoked at or before" mark: `None` covers everything ever issued.
type Mark = Option<Timestamp>;

#[derive(Debug, Clone, Copy)]
struct Held {
    mark: Mark,
    expires_at: Option<Timestamp>,
}

/// The revocation state a verifier holds, built by applying the log in order.
///
/// Marks are indexed by subject string so a lookup borrows the token's own strings and
/// allocates nothing: this runs on every verification, cached or not.
#[derive(Debug, Default)]
pub struct RevocationSet {
    position: i64,
    /// subject -> marks for it, one per (kind, tenant). Signing keys use the system tenant.
    held: HashMap<String, Vec<(RevocationKind, TenantId, Held)>>,
    /// Revoked API key ids (key ids are globally unique), with when the entry may be forgotten.
    api_keys: HashMap<String, Option<Timestamp>>,
    /// How many marks of an unknown kind are held: zero keeps their wider check off the hot path.
    unknown_marks: usize,
}

impl RevocationSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// The position of the last record applied (0 before any).
    pub fn position(&self) -> i64 {
        self.position
    }

    /// How many live marks are held (for metrics and tests).
    pub fn len(&self) -> usize {
        self.held.values().map(Vec::len).sum::<usize>() + self.api_keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Applies one record. Records at or before the current position are ignored.
    pub fn apply(&mut self, r: &RevocationRecord) -> Applied {
        if r.seq <= self.position {
            return Applied::Duplicate;
        }
        self.position = r.seq;
        match r.kind {
            RevocationKind::ApiKeyChanged => Applied::ApiKey(r.subject.clone()),
            RevocationKind::ApiKey => {
                let until = self.api_keys.get(&r.subject).copied();
                let merged = match until {
                    Some(old) => later(old, r.expires_at),
                    None => r.expires_at,
                };
                self.api_keys.insert(r.subject.clone(), merged);
                Applied::ApiKey(r.subject.clone())
            }
            kind => {
                let tenant = if kind == RevocationKind::SigningKey {
                    TenantId::system()
                } else {
                    r.tenant.clone()
                };
                // A stolen signing key signs whatever `iat` the thief likes, for as long as they
                // like: its mark covers everything and is never pruned, whatever the record says.
                let new = if kind == RevocationKind::SigningKey {
                    Held {
                        mark: None,
                        expires_at: None,
                    }
                } else {
                    Held {
                        mark: r.revoked_before,
                        expires_at: r.expires_at,
                    }
                };
                let marks = self.held.entry(r.subject.clone()).or_default();
                match marks
                    .iter_mut()
                    .find(|(k, t, _)| *k == kind && *t == tenant)
                {
                    Some((_, _, old)) => {
                        *old = Held {
                            mark: wider(old.mark, new.mark),
                            expires_at: later(old.expires_at, new.expires_at),
                        }
                    }
                    None => {
                        marks.push((kind, tenant, new));
                        // Counted as added (not recounted: applying must stay O(1) per record).
                        if kind == RevocationKind::Unknown {
                            self.unknown_marks += 1;
                        }
                    }
                }
                match kind {
                    RevocationKind::Tenant => Applied::Tenant(r.tenant.clone()),
                    RevocationKind::SigningKey => Applied::SigningKey(r.subject.clone()),
                    RevocationKind::Unknown => Applied::Unknown(r.subject.clone()),
                    _ => Applied::Recorded,
                }
            }
        }
    }

    /// Moves the position forward without records (the server reported a head past entries
    /// that were all expired and therefore not sent).
    pub fn advance_to(&mut self, position: i64) {
        self.position = self.position.max(position);
    }

    /// Forgets marks that cover nothing still valid ([`needed_if_expiring_after`]).
    pub fn prune(&mut self, now: Timestamp) {
        let expired_before = needed_if_expiring_after(now);
        self.held.retain(|_, marks| {
            marks.retain(|(_, _, h)| h.expires_at.is_none_or(|exp| exp > expired_before));
            !marks.is_empty()
        });
        self.api_keys
            .retain(|_, until| until.is_none_or(|exp| exp > expired_before));
        self.unknown_marks = self.count_unknown();
    }

    fn count_unknown(&self) -> usize {
        self.held
            .values()
            .flatten()
            .filter(|(k, _, _)| *k == RevocationKind::Unknown)
            .count()
    }

    /// Whether a mark of an unknown kind names `subject` for this tenant (or every tenant) and
    /// covers what was issued at `issued_at` (`None`: an API key, covered whatever its age).
    fn unknown_covers(
        &self,
        subject: &str,
        tenant: Option<&TenantId>,
        issued_at: Option<Timestamp>,
    ) -> bool {
        self.held.get(subject).is_some_and(|marks| {
            marks.iter().any(|(k, mt, h)| {
                *k == RevocationKind::Unknown
                    && (tenant.is_none_or(|t| t == mt) || mt.is_system())
                    && h.mark
                        .is_none_or(|before| issued_at.is_none_or(|iat| iat <= before))
            })
        })
    }

    /// Whether an access token is revoked, and by what.
    pub fn token_revoked(&self, t: &TokenIdentity<'_>) -> Option<RevokedBy> {
        if self.held.is_empty() {
            return None;
        }
        t.candidates_by()
            .find_map(|(c, by)| {
                let covered = self.held.get(c.subject).is_some_and(|marks| {
                    marks.iter().any(|(k, mt, h)| {
                        *k == c.kind
                            && c.tenant.is_none_or(|tt| tt == mt)
                            && h.mark.is_none_or(|before| t.issued_at <= before)
                    })
                });
                covered.then_some(by)
            })
            .or_else(|| {
                // A newer server's kind: any identifier of the token it names (module docs).
                (self.unknown_marks > 0
                    && t.candidates()
                        .any(|c| self.unknown_covers(c.subject, Some(t.tenant), Some(t.issued_at))))
                .then_some(RevokedBy::UnknownKind)
            })
    }

    /// The set holding exactly `records` (oldest first): what a one-off check builds from the
    /// entries storage found for a token's [`TokenIdentity::candidates`].
    pub fn from_records<'r>(records: impl IntoIterator<Item = &'r RevocationRecord>) -> Self {
        let mut set = Self::new();
        for r in records {
            set.apply(r);
        }
        set
    }

    /// Whether an API key (by key id) has been revoked.
    pub fn api_key_revoked(&self, key_id: &str) -> bool {
        self.api_keys.contains_key(key_id)
            || (self.unknown_marks > 0 && self.unknown_covers(key_id, None, None))
    }
}

/// The wider of two "revoked at or before" marks (`None` covers everything).
fn wider(a: Mark, b: Mark) -> Mark {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        _ => None,
    }
}

/// The later of two expiries (`None` never expires).
fn later(a: Option<Timestamp>, b: Option<Timestamp>) -> Option<Timestamp> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantId {
        TenantId::parse(s).expect("tenant")
    }

    fn rec(seq: i64, tenant: &str, kind: RevocationKind, subject: &str) -> RevocationRecord {
        RevocationRecord {
            seq,
            tenant: t(tenant),
            kind,
            subject: subject.into(),
            revoked_before: None,
            expires_at: None,
            created_at: Timestamp::from_millis(1),
        }
    }

    fn token<'a>(tenant: &'a TenantId, issued_at: i64) -> TokenIdentity<'a> {
        TokenIdentity {
            tenant,
            jti: "j1",
            client_id: Some("cl_1"),
            subject: "cl_1",
            kid: "k1",
            family: None,
            sid: None,
            exchanged_from: &[],
            issued_at: Timestamp::from_millis(issued_at),
        }
    }

    #[test]
    fn a_disabled_tenant_revokes_its_tokens_issued_until_then_and_no_one_elses() {
        let mut s = RevocationSet::new();
        let mut r = rec(1, "acme", RevocationKind::Tenant, "acme");
        r.revoked_before = Some(Timestamp::from_millis(1_000));
        assert_eq!(s.apply(&r), Applied::Tenant(t("acme")));
        let (acme, globex) = (t("acme"), t("globex"));
        assert_eq!(s.token_revoked(&token(&acme, 999)), Some(RevokedBy::Tenant));
        assert_eq!(
            s.token_revoked(&token(&acme, 1_000)),
            Some(RevokedBy::Tenant)
        );
        assert_eq!(
            s.token_revoked(&token(&acme, 1_001)),
            None,
            "issued after re-enabling"
        );
        assert_eq!(s.token_revoked(&token(&globex, 999)), None);
        // A token whose subject happens to be the tenant's id is not a tenant mark's business
        // elsewhere: the mark is keyed by (kind, tenant).
        let mut other = token(&globex, 999);
        other.subject = "acme";
        assert_eq!(s.token_revoked(&other), None);
    }

    #[test]
    fn token_jti_revocation_is_tenant_scoped() {
        let mut s = RevocationSet::new();
        s.apply(&rec(1, "acme", RevocationKind::Token, "j1"));
        let acme = t("acme");
        let globex = t("globex");
        assert_eq!(s.token_revoked(&token(&acme, 5)), Some(RevokedBy::Token));
        assert_eq!(s.token_revoked(&token(&globex, 5)), None);
    }

    #[test]
    fn revoking_a_token_by_jti_revokes_every_token_exchanged_from_it_in_its_tenant() {
        let acme = t("acme");
        let lineage = ["j_root".to_owned(), "j_mid".to_owned()];
        let exchanged = TokenIdentity {
            jti: "j_leaf",
            exchanged_from: &lineage,
            ..token(&acme, 5)
        };
        for (revoked, by) in [
            ("j_root", Some(RevokedBy::ExchangedFrom)),
            ("j_mid", Some(RevokedBy::ExchangedFrom)),
            ("j_leaf", Some(RevokedBy::Token)),
            ("j_other", None),
        ] {
            let mut s = RevocationSet::new();
            s.apply(&rec(1, "acme", RevocationKind::Token, revoked));
            assert_eq!(s.token_revoked(&exchanged), by, "{revoked}");
            // Storage reads what the rule reads: the lineage is among the candidates.
            assert_eq!(
                exchanged
                    .candidates()
                    .any(|c| c.kind == RevocationKind::Token
                        && c.subject == revoked
                        && c.tenant == Some(&acme)),
                by.is_some(),
                "{revoked}"
            );
        }
        // Another tenant's record naming the same jti reaches nothing here.
        let mut s = RevocationSet::new();
        s.apply(&rec(1, "globex", RevocationKind::Token, "j_root"));
        assert_eq!(s.token_revoked(&exchanged), None);
        // Only `token` records reach down the lineage: a client or family id equal to an
        // ancestor's jti does not.
        let mut s = RevocationSet::new();
        s.apply(&rec(1, "acme", RevocationKind::Family, "j_root"));
        s.apply(&rec(2, "acme", RevocationKind::Client, "j_mid"));
        assert_eq!(s.token_revoked(&exchanged), None);
    }

    #[test]
    fn client_mark_covers_only_tokens_issued_at_or_before_it() {
        let mut s = RevocationSet::new();
        let mut r = rec(1, "acme", RevocationKind::Client, "cl_1");
        r.revoked_before = Some(Timestamp::from_millis(100));
        s.apply(&r);
        let acme = t("acme");
        assert_eq!(s.token_revoked(&token(&acme, 100)), Some(RevokedBy::Client));
        assert_eq!(s.token_revoked(&token(&acme, 101)), None);
    }

    #[test]
    fn a_later_unbounded_mark_widens_an_earlier_bounded_one() {
        let mut s = RevocationSet::new();
        let mut r = rec(1, "acme", RevocationKind::Subject, "cl_1");
        r.revoked_before = Some(Timestamp::from_millis(100));
        s.apply(&r);
        s.apply(&rec(2, "acme", RevocationKind::Subject, "cl_1"));
        let acme = t("acme");
        assert_eq!(
            s.token_revoked(&token(&acme, 10_000)),
            Some(RevokedBy::Subject)
        );
    }

    #[test]
    fn a_signing_key_mark_covers_tokens_dated_after_it_and_is_never_pruned() {
        let mut s = RevocationSet::new();
        let mut r = rec(1, "system", RevocationKind::SigningKey, "k1");
        // What the server wrote before this rule: a bounded mark with an expiry.
        r.revoked_before = Some(Timestamp::from_millis(1_000));
        r.expires_at = Some(Timestamp::from_millis(2_000));
        assert_eq!(s.apply(&r), Applied::SigningKey("k1".into()));
        let acme = t("acme");
        // A token a thief minted with the stolen key after the revocation.
        assert_eq!(
            s.token_revoked(&token(&acme, 1_000_000)),
            Some(RevokedBy::SigningKey)
        );
        s.prune(Timestamp::from_millis(10_000_000));
        assert_eq!(
            s.token_revoked(&token(&acme, 20_000_000)),
            Some(RevokedBy::SigningKey),
            "a stolen key stays stolen after the record's expiry"
        );
        let mut other = token(&acme, 20_000_000);
        other.kid = "k2";
        assert_eq!(s.token_revoked(&other), None);
    }

    #[test]
    fn signing_key_revocation_applies_to_every_tenant() {
        let mut s = RevocationSet::new();
        s.apply(&rec(1, "system", RevocationKind::SigningKey, "k1"));
        let globex = t("globex");
        assert_eq!(
            s.token_revoked(&token(&globex, 5)),
            Some(RevokedBy::SigningKey)
        );
    }

    #[test]
    fn duplicates_and_replays_are_ignored_and_position_advances() {
        let mut s = RevocationSet::new();
        assert_eq!(
            s.apply(&rec(1, "acme", RevocationKind::Token, "j1")),
            Applied::Recorded
        );
        assert_eq!(
            s.apply(&rec(1, "acme", RevocationKind::Token, "j2")),
            Applied::Duplicate
        );
        assert_eq!(s.position(), 1);
        let acme = t("acme");
        let mut other = token(&acme, 5);
        other.jti = "j2";
        assert_eq!(s.token_revoked(&other), None);
        s.advance_to(7);
        assert_eq!(s.position(), 7);
        s.advance_to(3);
        assert_eq!(s.position(), 7);
    }

    #[test]
    fn api_key_records_revoke_or_only_invalidate() {
        let mut s = RevocationSet::new();
        assert_eq!(
            s.apply(&rec(1, "acme", RevocationKind::ApiKeyChanged, "abc")),
            Applied::ApiKey("abc".into())
        );
        assert!(!s.api_key_revoked("abc"));
        assert_eq!(
            s.apply(&rec(2, "acme", RevocationKind::ApiKey, "abc")),
            Applied::ApiKey("abc".into())
        );
        assert!(s.api_key_revoked("abc"));
    }

    #[test]
    fn expired_marks_are_pruned() {
        let mut s = RevocationSet::new();
        let mut r = rec(1, "acme", RevocationKind::Token, "j1");
        r.expires_at = Some(Timestamp::from_millis(50));
        s.apply(&r);
        let mut k = rec(2, "acme", RevocationKind::ApiKey, "k1");
        k.expires_at = Some(Timestamp::from_millis(60));
        s.apply(&k);
        s.apply(&rec(3, "acme", RevocationKind::ApiKey, "k-forever"));
        // A mark outlives its expiry by the longest leeway: a token a verifier still accepts
        // (up to its leeway past `exp`) is still refused.
        let grace = i64::try_from(MAX_LEEWAY.as_millis()).expect("ms");
        s.prune(Timestamp::from_millis(50 + grace - 1));
        assert_eq!(s.len(), 3);
        assert_eq!(
            s.token_revoked(&token(&t("acme"), 1)),
            Some(RevokedBy::Token)
        );
        s.prune(Timestamp::from_millis(50 + grace));
        assert_eq!(s.len(), 2);
        s.prune(Timestamp::from_millis(60 + grace));
        assert!(!s.api_key_revoked("k1"));
        assert!(
            s.api_key_revoked("k-forever"),
            "a key that never expires is never forgotten"
        );
    }

    #[test]
    fn wire_record_round_trips_and_reads_a_newer_servers_records() {
        let mut r = rec(3, "acme", RevocationKind::ApiKeyChanged, "abc");
        r.revoked_before = Some(Timestamp::from_millis(9));
        let text = serde_json::to_string(&r).expect("json");
        assert!(text.contains("\"kind\":\"api_key_changed\""));
        let back: RevocationRecord = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, r);
        // A field added by a newer server is ignored; a kind added by one reads as Unknown.
        let extra = text.replace("\"seq\"", "\"audience\":\"x\",\"seq\"");
        assert_eq!(
            serde_json::from_str::<RevocationRecord>(&extra).expect("newer field"),
            r
        );
        let newer = text.replace("api_key_changed", "grant");
        assert_eq!(
            serde_json::from_str::<RevocationRecord>(&newer)
                .expect("newer kind")
                .kind,
            RevocationKind::Unknown
        );
        for k in RevocationKind::ALL {
            assert_eq!(RevocationKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(RevocationKind::parse("unknown"), None, "never stored");
    }

    #[test]
    fn an_unknown_kind_revokes_every_token_and_key_it_could_name() {
        let acme = t("acme");
        let globex = t("globex");
        for field in ["jti", "client", "subject", "kid", "family", "sid", "tenant"] {
            let mut s = RevocationSet::new();
            let mut r = rec(
                1,
                "acme",
                RevocationKind::Unknown,
                if field == "tenant" { "acme" } else { "x1" },
            );
            r.revoked_before = Some(Timestamp::from_millis(100));
            assert_eq!(s.apply(&r), Applied::Unknown(r.subject.clone()));
            let mut tok = token(&acme, 100);
            tok.family = Some("f0");
            tok.sid = Some("s0");
            match field {
                "jti" => tok.jti = "x1",
                "client" => tok.client_id = Some("x1"),
                "subject" => tok.subject = "x1",
                "kid" => tok.kid = "x1",
                "family" => tok.family = Some("x1"),
                "sid" => tok.sid = Some("x1"),
                _ => {}
            }
            assert_eq!(
                s.token_revoked(&tok),
                Some(RevokedBy::UnknownKind),
                "{field}"
            );
            tok.issued_at = Timestamp::from_millis(101);
            assert_eq!(
                s.token_revoked(&tok),
                None,
                "{field}: issued after the mark"
            );
            tok.issued_at = Timestamp::from_millis(100);
            tok.tenant = &globex;
            if field != "tenant" {
                assert_eq!(s.token_revoked(&tok), None, "{field}: another tenant");
            }
        }
        // Filed under `system`, it concerns every tenant; an API key by its id.
        let mut s = RevocationSet::new();
        s.apply(&rec(1, "system", RevocationKind::Unknown, "k1"));
        assert_eq!(
            s.token_revoked(&token(&globex, 5)),
            Some(RevokedBy::UnknownKind)
        );
        assert!(s.api_key_revoked("k1"));
        assert!(!s.api_key_revoked("k2"));
        let plain = RevocationSet::new();
        assert!(!plain.api_key_revoked("k1"));
    }

    #[test]
    fn a_session_mark_revokes_tokens_carrying_its_sid_issued_until_then_in_its_tenant() {
        let mut s = RevocationSet::new();
        let mut r = rec(1, "acme", RevocationKind::Session, "sid_1");
        r.revoked_before = Some(Timestamp::from_millis(1_000));
        assert_eq!(s.apply(&r), Applied::Recorded);
        let (acme, globex) = (t("acme"), t("globex"));
        let mut tok = token(&acme, 1_000);
        tok.sid = Some("sid_1");
        assert_eq!(s.token_revoked(&tok), Some(RevokedBy::Session));
        assert_eq!(RevokedBy::Session.reason(), "session_revoked");
        tok.issued_at = Timestamp::from_millis(1_001);
        assert_eq!(s.token_revoked(&tok), None, "a later sign-in's token");
        tok.issued_at = Timestamp::from_millis(10);
        tok.sid = Some("sid_2");
        assert_eq!(s.token_revoked(&tok), None, "another session");
        tok.sid = None;
        assert_eq!(s.token_revoked(&tok), None, "a machine token has no sid");
        let mut other = token(&globex, 10);
        other.sid = Some("sid_1");
        assert_eq!(s.token_revoked(&other), None, "another tenant");
        // A sid equal to some other identifier is not a session mark's business.
        let mut named = token(&acme, 10);
        named.jti = "sid_1";
        assert_eq!(s.token_revoked(&named), None);
        // The wire name is stable.
        assert_eq!(
            RevocationKind::parse("session"),
            Some(RevocationKind::Session)
        );
    }
}
