//! The one evaluation every way in shares (token exchange, the JWT-bearer grant, and an
//! external token as a `client_assertion`, RFC 7523 section 2.2): an external token, a tenant,
//! what it is for (core's `Use`: a grant, or one client's authentication; only the rules that
//! serve it take part) and the request's rule, scope and target, turned into the rule that
//! admits the token and what may be issued under it, or the reason it may not (for the audit
//! log; the caller answers `invalid_grant`, or `invalid_client` for a client assertion).
//!
//! Order: the strict parse (jose), the issuer looked up by the unverified `iss` (only to find
//! keys: nothing is believed before the signature holds; read with its rules and uploaded keys
//! parsed once per fill of `super::facts`'s cache, or straight from storage for a dry run),
//! the signature and registered claims (jose's external profile, with the issuer's algorithms,
//! every rule's audience on it and the longest token age any of them allows), the workload read
//! (core, with the issuer's preset), for a client assertion its one audience being this server
//! (core's `external_assertion_audience_ok`), the rule selected (core), the grant (core), then
//! single use of the token per issuer (store, across nodes): by its `jti`, or, for a token
//! without one (SPIRE's JWT-SVIDs carry none), by the SHA-256 of its signed part, so the same
//! token is still spent once (the signature is left out: an ECDSA signature can be re-encoded
//! without the key, the signed bytes cannot). Digests are kept apart from the issuer's own
//! `jti`s ([`SingleUse`]), so no `jti` an issuer writes can spend another token. Keys come from the
//! issuer's uploaded JWKS or SPIFFE bundle, or are
//! fetched from its discovery document or `jwks_uri` (`super::keys`, under the outbound
//! rules).
//!
//! Must never: issue when any step refuses, read a key from the token, or report a reason to
//! the caller.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::federation::rule::{decide_grant, issued_lifetime, select_rule, Use};
use portcullis_core::federation::{RuleId, SelectError, TrustRule, Workload};
use portcullis_core::oauth::{external_assertion_audience_ok, GrantDecision, GrantError};
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_jose::profile::external;
use portcullis_store::Store;

use super::facts::{IssuerFacts, TrustedIssuers};

/// What a request asks of the evaluation.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub tenant: &'a TenantId,
    /// What the token is presented for: only the rules serving it are evaluated.
    pub purpose: Use<'a>,
    /// For [`Use::ClientAuthentication`]: the audiences a client assertion may name here (this
    /// server's issuer and token endpoint); the token must name exactly one of them.
    pub assertion_audiences: &'a [&'a str],
    pub subject_token: &'a str,
    pub rule: Option<&'a RuleId>,
    pub scope: Option<&'a str>,
    pub targets: &'a [&'a str],
    pub now: Timestamp,
    pub leeway: Duration,
    /// The installation's longest access-token lifetime.
    pub tenant_cap: Duration,
    /// Where remote key sources (discovery, `jwks_uri`) are fetched; `None`: uploaded keys
    /// only, a remote source is `key_source_unavailable`.
    pub keys: Option<&'a super::keys::IssuerKeys>,
    /// Where the tenant's trusted issuers, rules and uploaded keys are read, parsed once per
    /// fill; `None`: from storage on every call (the dry run, which shows what is stored now).
    pub issuers: Option<&'a TrustedIssuers>,
}

/// An admitted token: the rule, the workload it describes, and what may be issued.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub rule: TrustRule,
    pub workload: Workload,
    pub decision: GrantDecision,
    /// What single use is kept by.
    pub single_use: SingleUse,
}

/// What an admitted token is spent under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SingleUse {
    /// Its `jti`, in its issuer's namespace.
    Jti(String),
    /// It has no `jti`: the base64url SHA-256 of its signed part (`header.payload`), in a
    /// namespace of its own beside the issuer's (the same token always gets the same id, a
    /// re-encoded signature does not make another one, and no `jti` can equal it).
    Digest(String),
}

impl SingleUse {
    fn of(jti: Option<&str>, token: &str) -> Self {
        use base64::Engine as _;
        if let Some(jti) = jti {
            return Self::Jti(jti.to_owned());
        }
        let signed = token.rsplit_once('.').map_or(token, |(signed, _)| signed);
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, signed.as_bytes());
        Self::Digest(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref()))
    }

    /// The replay table's (namespace, id) for a token of `issuer`. A digest's namespace is the
    /// issuer followed by ` #sha256`: a trusted issuer never holds a space or `#` (core's
    /// `TrustedIssuer::check`), so no issuer's own namespace is that.
    fn record_key(&self, issuer: &str) -> (String, &str) {
        match self {
            Self::Jti(jti) => (issuer.to_owned(), jti),
            Self::Digest(d) => (format!("{issuer} #sha256"), d),
        }
    }
}

/// Why a token was not admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The token, its issuer or its rules refused it: `invalid_grant`, with the audit reason.
    Grant(String),
    /// The rule admits the token but not the requested scope or audience (`invalid_scope`,
    /// `invalid_target`).
    Request(GrantError),
    /// Storage failed: a server error, never an admission.
    Store(String),
}

fn refuse(reason: impl Into<String>) -> Refused {
    Refused::Grant(reason.into())
}

/// Evaluates `req` against the tenant's trusted issuers and rules in `store`, and spends the
/// token's `jti` ([`admit`], then [`consume`]).
pub async fn evaluate(store: &dyn Store, req: &Request<'_>) -> Result<Admitted, Refused> {
    let admitted = admit(store, req).await?;
    consume(store, &admitted, req.leeway, req.now).await?;
    Ok(admitted)
}

/// Every check but single use: the token, its issuer, the rule, and what may be issued. A
/// caller that narrows the decision further (the resource's own scopes) does so before
/// [`consume`], so a request refused for its scope or target does not burn the token.
pub async fn admit(store: &dyn Store, req: &Request<'_>) -> Result<Admitted, Refused> {
    admit_traced(store, req, &mut Trace(None)).await
}

/// One check of a dry run, as [`explain`] reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// What a dry run found: every check made, in order, and the outcome.
#[derive(Debug, Clone)]
pub struct Explanation {
    pub checks: Vec<Check>,
    pub outcome: Result<Admitted, Refused>,
}

/// A dry run of [`admit`] for an operator (`portcullis federation test`, the admin API): the
/// same checks in the same order, each reported with its result, every rule of the issuer
/// evaluated (not only the selected one), and the token's `jti` neither checked against nor
/// added to the replay table.
pub async fn explain(store: &dyn Store, req: &Request<'_>) -> Explanation {
    let mut checks = Vec::new();
    let outcome = admit_traced(store, req, &mut Trace(Some(&mut checks))).await;
    Explanation { checks, outcome }
}

/// Where checks are written during a dry run; nothing is built otherwise.
struct Trace<'t>(Option<&'t mut Vec<Check>>);

impl Trace<'_> {
    fn pass(&mut self, check: &'static str, detail: impl FnOnce() -> String) {
        if let Some(c) = self.0.as_mut() {
            c.push(Check {
                check,
                ok: true,
                detail: detail(),
            });
        }
    }

    fn fail(&mut self, check: &'static str, refused: Refused) -> Refused {
        if let Some(c) = self.0.as_mut() {
            let detail = match &refused {
                Refused::Grant(r) | Refused::Store(r) => r.clone(),
                Refused::Request(e) => e.code().to_owned(),
            };
            c.push(Check {
                check,
                ok: false,
                detail,
            });
        }
        refused
    }

    fn enabled(&self) -> bool {
        self.0.is_some()
    }
}

async fn admit_traced(
    store: &dyn Store,
    req: &Request<'_>,
    t: &mut Trace<'_>,
) -> Result<Admitted, Refused> {
    let store_err = |e: portcullis_store::StoreError| Refused::Store(e.to_string());
    let u =
        external::parse(req.subject_token).map_err(|e| t.fail("structure", refuse(e.as_str())))?;
    t.pass("structure", || {
        format!(
            "alg {}, kid {}, no key in the header",
            u.header.alg.as_str(),
            u.header.kid.as_deref().unwrap_or("-")
        )
    });
    let iss = u
        .claims()
        .ok()
        .and_then(|c| c.str("iss").ok().flatten().map(|s| s.into_owned()))
        .ok_or_else(|| t.fail("issuer", refuse("subject_token_missing_iss")))?;
    let facts = match req.issuers {
        Some(cache) => cache.get(store, req.tenant, &iss, req.now).await,
        None => IssuerFacts::load(store, req.tenant, &iss)
            .await
            .map(|f| f.map(Arc::new)),
    }
    .map_err(store_err)?
    .ok_or_else(|| t.fail("issuer", refuse("untrusted_issuer")))?;
    let Some(parsed) = facts.parsed.as_ref() else {
        return Err(t.fail("issuer", refuse("trusted_issuer_unreadable")));
    };
    let issuer = &parsed.issuer;
    t.pass("issuer", || {
        format!(
            "{} trusted (preset {})",
            issuer.issuer,
            issuer.preset.as_str()
        )
    });
    // An uploaded key set was parsed when the issuer was read; a remote one is fetched (and
    // cached) by the key source.
    let keys = match (&parsed.uploaded, req.keys) {
        (Some(uploaded), _) => uploaded.clone(),
        (None, Some(source)) => {
            source
                .keys(
                    &facts.record.key_source,
                    &issuer.issuer,
                    u.header.kid.as_deref(),
                    req.now,
                )
                .await
        }
        (None, None) => Err("key_source_unavailable"),
    }
    .map_err(|e| t.fail("keys", refuse(e)))?;
    t.pass("keys", || {
        format!("from {}", facts.record.key_source.kind())
    });
    // Only the rules serving what the token is presented for take part: a rule bound to a
    // client authenticates that client and serves no grant, and the other way round.
    // (Borrowed from the cache: `select_rule` applies the same purpose filter itself.)
    let serving = || parsed.rules.iter().filter(|r| r.serves(req.purpose));
    if serving().next().is_none() {
        return Err(t.fail("rules", refuse("no_trust_rule_on_issuer")));
    }
    let audiences: Vec<&str> = serving().map(|r| r.audience.as_str()).collect();
    let max_lifetime = serving()
        .filter_map(|r| r.max_token_age)
        .fold(issuer.max_token_age, Duration::max);
    let rules_in = external::Rules {
        issuer: &issuer.issuer,
        algorithms: &parsed.algorithms,
        audiences: &audiences,
        max_lifetime,
        leeway: req.leeway,
    };
    let claims =
        external::verify(&u, keys.for_alg(u.header.alg), &rules_in, req.now).map_err(|e| {
            t.fail(
                "signature_and_claims",
                refuse(format!("subject_token_{}", e.as_str())),
            )
        })?;
    t.pass("signature_and_claims", || {
        "signature, iss, aud, exp, nbf, iat and token age hold".into()
    });
    let workload = Workload::from_claims(issuer.preset, &claims)
        .map_err(|e| t.fail("workload", refuse(e.to_string())))?;
    t.pass("workload", || {
        format!(
            "sub {}; fields {}",
            workload.subject,
            workload
                .fields()
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    if let Use::ClientAuthentication(_) = req.purpose {
        if !external_assertion_audience_ok(&workload.audiences, req.assertion_audiences) {
            return Err(t.fail(
                "assertion_audience",
                refuse("client_assertion_audience_not_this_server"),
            ));
        }
        t.pass("assertion_audience", || "this server, and only it".into());
    }
    if t.enabled() {
        for r in serving() {
            match r.evaluate(issuer, &workload, req.now) {
                Ok(()) => t.pass("rule", || format!("rule {}: every condition holds", r.id)),
                Err(miss) => {
                    t.fail("rule", refuse(miss.to_string()));
                }
            }
        }
    }
    let rule = select_rule(
        &parsed.rules,
        issuer,
        &workload,
        req.rule,
        req.purpose,
        req.now,
    )
    .map_err(|e| {
        // A reason code the audit log and detectors can match, then every miss.
        let code = match &e {
            SelectError::NoRules => "no_trust_rule",
            SelectError::NamedRuleUnknown => "named_rule_unknown",
            SelectError::NoMatch(_) => "no_rule_matched",
            SelectError::Ambiguous(..) => "rules_ambiguous",
        };
        t.fail("selection", refuse(format!("{code}:{e}")))
    })?
    .clone();
    t.pass("selection", || format!("rule {}", rule.id));
    let lifetime = issued_lifetime(&rule, req.tenant_cap, &workload, req.now);
    let decision = decide_grant(&rule, req.scope, req.targets, None, lifetime)
        .map_err(|e| t.fail("grant", Refused::Request(e)))?;
    t.pass("grant", || {
        format!(
            "audience {}, scope \"{}\", lifetime {} s",
            decision.audience,
            decision.scopes.to_delimited(),
            decision.lifetime.as_secs()
        )
    });
    let single_use = SingleUse::of(workload.jti.as_deref(), req.subject_token);
    t.pass("jti", || match &single_use {
        SingleUse::Jti(_) => "present (single use is not checked by a dry run)".into(),
        SingleUse::Digest(d) => {
            format!("absent: the token is spent once by its SHA-256 {d} (not checked by a dry run)")
        }
    });
    Ok(Admitted {
        rule,
        workload,
        decision,
        single_use,
    })
}

/// Single use of an admitted token per issuer (by [`Admitted::single_use`]), kept until its
/// `exp` plus `leeway` (the store decides, across nodes).
pub async fn consume(
    store: &dyn Store,
    admitted: &Admitted,
    leeway: Duration,
    now: Timestamp,
) -> Result<(), Refused> {
    let w = &admitted.workload;
    let keep_until = Timestamp::from_secs(w.expires_at).saturating_add(leeway);
    let (namespace, id) = admitted.single_use.record_key(&w.issuer);
    if !store
        .record_subject_jti(&namespace, id, keep_until, now)
        .await
        .map_err(|e| Refused::Store(e.to_string()))?
    {
        return Err(refuse("subject_token_replayed"));
    }
    Ok(())
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod tests;
