//! A tenant's trusted issuer as every exchange reads it — the stored issuer row in core's terms,
//! its trust rules read back and checked, the algorithms, audiences and longest token age the
//! JOSE profile needs, and an uploaded JWKS or SPIFFE bundle parsed into keys — built once per
//! fill and served from a short-lived cache ([`TrustedIssuers`], a `FactCache` like the OAuth
//! directory's) in front of storage.
//!
//! Staleness bound, the OAuth directory's: an issuer or rule written through this process (the
//! admin API) calls [`TrustedIssuers::changed`] before it answers, so the very next exchange
//! reads the new state; a write made on another node sharing the database is seen once the
//! cached entry is older than `oauth.cache_ttl_ms` (default 1 s; 0 turns caching off).
//!
//! Must never: cache a decision (every exchange still verifies the token, evaluates the rules
//! and spends the `jti` itself), cache an issuer that does not exist (made-up `iss` values
//! cannot push out real ones), or keep an entry past a local invalidation or its TTL.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::federation::{TrustRule, TrustedIssuer};
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_jose::{Alg, ClientKeys};
use portcullis_store::{KeySourceRecord, Store, StoreError, TrustedIssuerRecord};

use super::{issuer_from_record, keys, rule_from_record};
use crate::fact_cache::FactCache;

/// One trusted issuer and its rules, read and parsed once.
#[derive(Debug)]
pub struct IssuerFacts {
    pub record: TrustedIssuerRecord,
    /// `None` if the stored issuer does not read (then it trusts nothing).
    pub parsed: Option<ParsedIssuer>,
}

/// What the evaluation needs of a readable issuer.
#[derive(Debug)]
pub struct ParsedIssuer {
    pub issuer: TrustedIssuer,
    /// The rules on this issuer that read back and still pass core's checks, by id.
    pub rules: Vec<TrustRule>,
    /// The issuer's algorithms that jose knows.
    pub algorithms: Vec<Alg>,
    /// An uploaded JWKS or SPIFFE bundle, parsed (`Err`: the audit reason); `None` for a
    /// remote source (fetched and cached by `super::keys::IssuerKeys`).
    pub uploaded: Option<Result<Arc<ClientKeys>, &'static str>>,
}

impl IssuerFacts {
    /// Reads `iss` of `tenant` and its rules from storage; `None` if the tenant does not trust
    /// that issuer.
    pub async fn load(
        store: &dyn Store,
        tenant: &TenantId,
        iss: &str,
    ) -> Result<Option<Self>, StoreError> {
        let Some(record) = store.get_trusted_issuer(tenant, iss).await? else {
            return Ok(None);
        };
        let parsed = match issuer_from_record(&record) {
            None => None,
            Some(issuer) => {
                let rules = store
                    .list_trust_rules(tenant, Some(&issuer.issuer))
                    .await?
                    .iter()
                    .filter_map(|r| rule_from_record(r, &issuer))
                    .collect();
                Some(ParsedIssuer::new(issuer, rules, &record.key_source))
            }
        };
        Ok(Some(Self { record, parsed }))
    }
}

impl ParsedIssuer {
    fn new(issuer: TrustedIssuer, rules: Vec<TrustRule>, source: &KeySourceRecord) -> Self {
        let algorithms = issuer
            .algorithms
            .iter()
            .filter_map(|a| Alg::parse(a))
            .collect();
        let uploaded = match source {
            KeySourceRecord::Jwks(_) | KeySourceRecord::SpiffeBundle(_) => {
                Some(keys::uploaded(source))
            }
            KeySourceRecord::Discovery | KeySourceRecord::JwksUri(_) => None,
        };
        Self {
            issuer,
            rules,
            algorithms,
            uploaded,
        }
    }
}

/// Cached [`IssuerFacts`] by tenant and issuer. See the module documentation.
#[derive(Debug)]
pub struct TrustedIssuers {
    facts: FactCache<(TenantId, String), Arc<IssuerFacts>>,
}

impl TrustedIssuers {
    /// At most `capacity` issuers, each trusted for `ttl` (zero: every lookup reads storage).
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            facts: FactCache::new(capacity, ttl),
        }
    }

    /// The issuer `iss` of `tenant` with its rules, or `None` if the tenant does not trust it.
    pub async fn get(
        &self,
        store: &dyn Store,
        tenant: &TenantId,
        iss: &str,
        now: Timestamp,
    ) -> Result<Option<Arc<IssuerFacts>>, StoreError> {
        let key = (tenant.clone(), iss.to_owned());
        if let Some(hit) = self.facts.get(&key, now) {
            return Ok(Some(hit));
        }
        // Taken before the read: an invalidation that lands during it is never cached over.
        let epoch = self.facts.epoch();
        let Some(facts) = IssuerFacts::load(store, tenant, iss).await? else {
            return Ok(None);
        };
        let facts = Arc::new(facts);
        self.facts.insert(key, facts.clone(), epoch, now);
        Ok(Some(facts))
    }

    /// A trusted issuer or trust rule of `tenant` was created, changed or removed through this
    /// process.
    pub fn changed(&self, tenant: &TenantId) {
        self.facts.invalidate_where(|(t, _)| t == tenant);
    }
}
