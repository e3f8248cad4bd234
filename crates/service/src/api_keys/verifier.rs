//! The in-process API key verifier: what the HTTP verify endpoint, and later the verify library
//! and the gateway, call for every request that presents a key.
//!
//! Order of work, cheapest and least revealing first:
//! 1. length, format and CRC32 checksum ([`parse_presented`]): typos and garbage never reach
//!    storage;
//! 2. environment ([`precheck`]): a `live` verifier refuses a `test` key without a lookup;
//! 3. lookup by the key id embedded in the key, from a bounded cache or storage;
//! 4. [`decide`]: constant-time digest comparison, then revocation, rotation window, enabled,
//!    expiry, environment, tenant, IP allowlist, audience and scopes.
//!
//! Every refusal is recorded in the audit log with its precise reason; the caller answers the
//! client with the same `invalid_token` whatever the reason (403 `insufficient_scope` for scope).
//!
//! Cache coherence: revoke, disable, enable, update and rotate performed through this process
//! call [`ApiKeyVerifier::invalidate`], so they take effect on the next request. Every one of
//! them also appends an `api_key` or `api_key_changed` entry to the revocation log in the same
//! transaction, and [`ApiKeyVerifier::spawn_revocation_follower`] drops the cached key when any
//! node's entry arrives: at once for this node's, and as fast as PostgreSQL `LISTEN/NOTIFY`
//! (or, if a notification is lost, the store's head poll) for another node's. The end of a
//! rotation window needs no invalidation (the cached entry carries the window and the decision
//! reads the clock). The TTL (`api_keys.cache_ttl_ms`) remains as the backstop. A lookup that
//! overlaps an invalidation is used for its own request but not cached, so a read made before a
//! change can never be cached after it.
//!
//! Last use is recorded in memory and written in one batch every `usage_flush_interval_ms`: no
//! database write per request, and `last_used_at` accurate to that interval. The same batch
//! carries the scopes each key's verifications required (or that one named none) and the
//! networks they came from, written for the hygiene report at most once per key, scope or
//! network, and hour.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use portcullis_core::api_key::{
    decide, parse_presented, precheck, ApiKeyFacts, ApiKeyPrincipal, IpAllowlist, RateLimit,
    Rejection, ScopeSet, ScopeToken, VerifyContext,
};
use portcullis_core::audit::{Action, Actor, Outcome, Reason};
use portcullis_core::credential::Environment;
use portcullis_core::rate_limit::Buckets;
use portcullis_core::tenant::{TenantId, TenantStatus};
use portcullis_core::time::{Clock, Timestamp};
use portcullis_store::{
    ApiKeyRecord, ApiKeyUse, RevocationEntry, RevocationKind, Store, StoreError,
};
use tokio::task::JoinHandle;

use crate::audit::{AuditSink, EventDraft, RequestOrigin};
use crate::revocations::follow::{follow, LogFollower, OnReadError, Start};

/// What a request asks of the verifier.
#[derive(Debug, Clone)]
pub struct VerifyRequest<'a> {
    /// The key exactly as presented (untrusted).
    pub presented: &'a str,
    /// The tenant whose resource is reached; `None` accepts a key of any tenant.
    pub tenant: Option<&'a TenantId>,
    /// The environment the caller serves; `None` = the verifier's configured environment.
    pub environment: Option<&'a Environment>,
    /// The end client's address, checked against the key's allowlist.
    pub client_ip: Option<IpAddr>,
    /// The resource being reached, checked against the key's allowed audiences.
    pub audience: Option<&'a ScopeToken>,
    pub required_scopes: &'a ScopeSet,
    /// Count the request against the key's own rate limit. `false` only where the caller counts
    /// it itself (the verify library does, for every request it admits from its cache).
    pub enforce_rate_limit: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The key is refused; the reason is internal (already audited).
    #[error("{0}")]
    Rejected(Rejection),
    /// The key is good but over its own rate limit: 429 with `Retry-After`.
    #[error("api key over its rate limit")]
    RateLimited { retry_after_secs: u64 },
    /// Storage failed: the request is denied, never allowed.
    #[error("api key verification failed: {0}")]
    Internal(#[from] StoreError),
}

/// The client's answer on a key-protected route: 401 `invalid_token` whatever the reason, 403
/// for scope, 429 over the key's limit, 500 (deny) when storage failed. (`POST
/// /v1/api-keys/verify` answers a refused key itself: 200 `{"valid": false}`.)
#[derive(Debug, Clone)]
struct CacheEntry<V> {
    value: V,
    fetched_at: Timestamp,
}

/// A bounded map of key facts (or of ids that matched no key). When full, the entry inserted longest ago is evicted
/// (expired entries are the oldest, so they go first). Eviction is O(1) amortised: a miss storm
/// against a full cache must not scan the map while holding the lock that every hit also takes.
#[derive(Debug)]
struct Cache<V> {
    entries: HashMap<String, CacheEntry<V>>,
    capacity: usize,
    /// Insertion order as (id, fetched_at). A slot whose entry was invalidated or re-inserted
    /// since no longer matches and is skipped.
    order: VecDeque<(String, Timestamp)>,
    /// Moves on every invalidation. A lookup records it before reading storage and caches its
    /// result only if it has not moved since.
    generation: u64,
}

impl<V> Cache<V> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity: capacity.max(1),
            order: VecDeque::new(),
            generation: 0,
        }
    }

    /// Inserts the result of a lookup that began at `generation`, unless an invalidation
    /// happened since (the result may predate the change that caused it).
    fn insert_if_current(&mut self, generation: u64, id: String, entry: CacheEntry<V>) {
        if self.generation == generation {
            self.insert(id, entry);
        }
    }

    fn remove(&mut self, id: &str) {
        self.generation = self.generation.wrapping_add(1);
        self.entries.remove(id);
    }

    fn insert(&mut self, id: String, entry: CacheEntry<V>) {
        if self.entries.len() >= self.capacity && !self.entries.contains_key(&id) {
            self.evict_oldest();
        }
        self.order.push_back((id.clone(), entry.fetched_at));
        self.entries.insert(id, entry);
        // Skipped slots accumulate when keys are invalidated or refreshed; drop them once they
        // outnumber the live ones, so the queue stays O(capacity).
        if self.order.len() > 2 * self.capacity + 16 {
            let entries = &self.entries;
            self.order
                .retain(|(id, at)| entries.get(id).is_some_and(|e| e.fetched_at == *at));
        }
    }

    fn evict_oldest(&mut self) {
        while let Some((id, at)) = self.order.pop_front() {
            if self.entries.get(&id).is_some_and(|e| e.fetched_at == at) {
                self.entries.remove(&id);
                return;
            }
        }
    }

    fn clear(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.entries.clear();
        self.order.clear();
    }

    /// The entry for `id` if it was fetched after `cutoff`.
    fn fresh(&self, id: &str, cutoff: Timestamp) -> Option<&V> {
        self.entries
            .get(id)
            .filter(|e| e.fetched_at > cutoff)
            .map(|e| &e.value)
    }
}

/// Known keys and remembered misses, invalidated together. Misses have their own bound, so a
/// flood of well-formed unknown ids can neither reach storage on every request nor evict real
/// keys.
#[derive(Debug)]
struct Caches {
    known: Cache<Arc<ApiKeyFacts>>,
    unknown: Cache<()>,
}

impl Caches {
    fn remove(&mut self, id: &str) {
        self.known.remove(id);
        self.unknown.remove(id);
    }

    fn clear(&mut self) {
        self.known.clear();
        self.unknown.clear();
    }
}

/// Settings for [`ApiKeyVerifier::new`].
#[derive(Debug, Clone)]
pub struct VerifierSettings {
    pub environment: Environment,
    pub cache_capacity: usize,
    pub cache_ttl: Duration,
}

#[derive(Debug)]
pub struct ApiKeyVerifier {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    audit: AuditSink,
    environment: Environment,
    ttl: Duration,
    cache: Mutex<Caches>,
    usage: Mutex<HashMap<String, PendingUse>>,
    /// Scope and network uses this node recorded lately: one write per key, scope (or network)
    /// and hour.
    use_marks: crate::match_marks::MatchMarks,
    /// Network rows written per key in the current hour ([`NETWORK_ROWS_PER_HOUR`]).
    network_rows: Mutex<HashMap<String, (i64, u32)>>,
    /// Each key's own rate limit, counted on this node.
    limits: Buckets,
    metrics: crate::metrics::ApiKeyMetrics,
}

/// A key's uses since the last flush: the latest (its `last_used_at` and address) and the scopes
/// its verifications required, for the hygiene report's "broader than used".
#[derive(Debug)]
struct PendingUse {
    latest: ApiKeyUse,
    tenant: TenantId,
    scopes: BTreeSet<String>,
    /// A verification named no scope: its caller checks scopes itself.
    unscoped: bool,
    /// The networks (`portcullis_core::network::network_base`) the uses came from, at most
    /// [`MAX_NETWORKS_PER_FLUSH`]: the report asks "more than one", not "how many".
    networks: BTreeSet<IpAddr>,
}

/// Networks kept per key between two flushes.
const MAX_NETWORKS_PER_FLUSH: usize = 8;

/// New network rows a key may add per hour on one node: the report asks "more than one", and a
/// key holder who sprays source addresses must not grow the table by a row per address.
pub const NETWORK_ROWS_PER_HOUR: u32 = 4;

/// A poisoned lock only means another request panicked mid-update of a cache or a usage map;
/// both hold only derived data, so carrying on is safe.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ApiKeyVerifier {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        audit: AuditSink,
        settings: VerifierSettings,
    ) -> Self {
        Self {
            store,
            clock,
            audit,
            environment: settings.environment,
            ttl: settings.cache_ttl,
            cache: Mutex::new(Caches {
                known: Cache::new(settings.cache_capacity),
                unknown: Cache::new(settings.cache_capacity),
            }),
            usage: Mutex::new(HashMap::new()),
            // Keys times their scopes and networks: more subjects than the default capacity.
            use_marks: crate::match_marks::MatchMarks::with_capacity(
                settings.cache_capacity.saturating_mul(4),
            ),
            network_rows: Mutex::new(HashMap::new()),
            limits: Buckets::default(),
            metrics: crate::metrics::ApiKeyMetrics::default(),
        }
    }

    /// Verifications by outcome and the revocation log position the cache has applied.
    pub fn metrics(&self) -> &crate::metrics::ApiKeyMetrics {
        &self.metrics
    }

    pub fn environment(&self) -> &Environment {
        &self.environment
    }

    /// Verifies a presented key. Every refusal is audited under `origin`.
    pub async fn verify(
        &self,
        req: &VerifyRequest<'_>,
        origin: &RequestOrigin,
    ) -> Result<ApiKeyPrincipal, VerifyError> {
        let mut key_id = None;
        let mut key_tenant = None;
        let result = self.verify_inner(req, &mut key_id, &mut key_tenant).await;
        let result = result.and_then(|p| {
            if req.enforce_rate_limit {
                self.within_rate_limit(p, origin)
            } else {
                Ok(p)
            }
        });
        use crate::metrics::KeyVerification;
        match &result {
            Ok(p) => {
                self.metrics.verification(KeyVerification::Valid);
                self.note_use(p, req, origin)
            }
            Err(VerifyError::Rejected(r)) => {
                self.metrics.verification(KeyVerification::Rejected);
                self.audit_failure(*r, req.tenant, key_id, key_tenant, origin)
            }
            Err(VerifyError::RateLimited { .. }) => {
                self.metrics.verification(KeyVerification::RateLimited);
            }
            Err(VerifyError::Internal(e)) => {
                self.metrics.verification(KeyVerification::Error);
                tracing::error!(error = %e, "api key verification could not read storage");
                self.audit.record(
                    EventDraft {
                        tenant: req.tenant.cloned().unwrap_or_else(TenantId::system),
                        actor: Actor::anonymous(),
                        credential_id: key_id,
                        action: Action::ApiKeyVerify,
                        outcome: Outcome::Failure,
                        reason: Some(Reason::new("storage_unavailable")),
                        target: None,
                    },
                    origin,
                );
            }
        }
        result
    }

    async fn verify_inner(
        &self,
        req: &VerifyRequest<'_>,
        key_id: &mut Option<String>,
        key_tenant: &mut Option<TenantId>,
    ) -> Result<ApiKeyPrincipal, VerifyError> {
        let credential = parse_presented(req.presented).map_err(VerifyError::Rejected)?;
        *key_id = Some(credential.id().to_owned());
        let ctx = VerifyContext {
            now: self.clock.now(),
            environment: req.environment.unwrap_or(&self.environment),
            tenant: req.tenant,
            client_ip: req.client_ip,
            audience: req.audience,
            required_scopes: req.required_scopes,
        };
        precheck(&credential, &ctx).map_err(VerifyError::Rejected)?;
        let facts = self.facts(credential.id(), ctx.now).await?;
        if let Some(f) = &facts {
            *key_tenant = Some(f.tenant.clone());
        }
        decide(&credential, facts.as_deref(), &ctx).map_err(VerifyError::Rejected)
    }

    /// Counts an admitted request against the key's own limit, if it has one. The first
    /// refusal of a limited stretch is audited; the rest of a flood is not, so an abused key
    /// cannot flood the audit log either.
    fn within_rate_limit(
        &self,
        p: ApiKeyPrincipal,
        origin: &RequestOrigin,
    ) -> Result<ApiKeyPrincipal, VerifyError> {
        let Some(rate) = p.rate_limit.and_then(RateLimit::rate) else {
            return Ok(p);
        };
        match self.limits.check(&p.key_id, rate, self.clock.now()) {
            Ok(()) => Ok(p),
            Err(limited) => {
                if limited.first {
                    self.audit.record(
                        EventDraft {
                            tenant: p.tenant.clone(),
                            actor: Actor::anonymous(),
                            credential_id: Some(p.key_id.clone()),
                            action: Action::ApiKeyVerify,
                            outcome: Outcome::Denied,
                            reason: Some(Reason::new("api_key_rate_limited")),
                            target: Some(p.tenant.to_string()),
                        },
                        origin,
                    );
                }
                Err(VerifyError::RateLimited {
                    retry_after_secs: limited.retry_after_secs,
                })
            }
        }
    }

    /// Cached facts for a key id, or storage's. A miss is remembered for the cache TTL too.
    async fn facts(
        &self,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Arc<ApiKeyFacts>>, StoreError> {
        let cutoff = now.saturating_sub(self.ttl);
        let (generation, unknown_generation) = {
            let cache = lock(&self.cache);
            if let Some(facts) = cache.known.fresh(id, cutoff) {
                return Ok(Some(facts.clone()));
            }
            if cache.unknown.fresh(id, cutoff).is_some() {
                return Ok(None);
            }
            (cache.known.generation, cache.unknown.generation)
        };
        let Some(record) = self.store.get_api_key(id).await? else {
            lock(&self.cache).unknown.insert_if_current(
                unknown_generation,
                id.to_owned(),
                CacheEntry {
                    value: (),
                    fetched_at: now,
                },
            );
            return Ok(None);
        };
        let tenant_active = self
            .store
            .get_tenant(&record.tenant)
            .await?
            .is_some_and(|t| t.status == TenantStatus::Active);
        let facts = Arc::new(facts_from_record(&record, tenant_active)?);
        lock(&self.cache).known.insert_if_current(
            generation,
            id.to_owned(),
            CacheEntry {
                value: facts.clone(),
                fetched_at: now,
            },
        );
        Ok(Some(facts))
    }

    /// Drops a key from the cache: the next verification reads storage.
    pub fn invalidate(&self, id: &str) {
        lock(&self.cache).remove(id);
    }

    /// Drops every cached key (a tenant was disabled, say).
    pub fn invalidate_all(&self) {
        lock(&self.cache).clear();
    }

    pub fn cached_len(&self) -> usize {
        lock(&self.cache).known.entries.len()
    }

    fn note_use(&self, p: &ApiKeyPrincipal, req: &VerifyRequest<'_>, origin: &RequestOrigin) {
        let required = req.required_scopes;
        let at = self.clock.now();
        let mut usage = lock(&self.usage);
        let entry = usage.entry(p.key_id.clone()).or_insert_with(|| PendingUse {
            latest: ApiKeyUse {
                id: p.key_id.clone(),
                at,
                ip: None,
            },
            tenant: p.tenant.clone(),
            scopes: BTreeSet::new(),
            unscoped: false,
            networks: BTreeSet::new(),
        });
        if entry.latest.at <= at {
            entry.latest.at = at;
            entry.latest.ip = origin.client_ip.map(|ip| ip.to_string());
        }
        // The end client's address as the request names it, never the caller's own: a service
        // calling the verify endpoint without `client_ip` is not where the key was used.
        if let Some(ip) = req.client_ip {
            if entry.networks.len() < MAX_NETWORKS_PER_FLUSH {
                entry
                    .networks
                    .insert(portcullis_core::network::network_base(ip));
            }
        }
        if required.is_empty() {
            entry.unscoped = true;
        }
        for scope in required.iter() {
            if !entry.scopes.contains(scope) {
                entry.scopes.insert(scope.to_owned());
            }
        }
    }

    /// Writes the uses recorded since the last flush in one batch. On failure they are put back
    /// (unless newer uses replaced them) for the next attempt. Then the scopes and networks of
    /// those uses, for the hygiene report: one row at a time on this task (never a burst of
    /// concurrent writes), each at most once per key, scope or network, and hour, and at most
    /// [`NETWORK_ROWS_PER_HOUR`] new networks per key.
    pub async fn flush_usage(&self) -> Result<usize, StoreError> {
        let pending = std::mem::take(&mut *lock(&self.usage));
        if pending.is_empty() {
            return Ok(0);
        }
        let mut uses = Vec::with_capacity(pending.len());
        let mut seen = Vec::with_capacity(pending.len());
        for (id, u) in pending {
            seen.push((id, u.tenant, u.latest.at, u.scopes, u.unscoped, u.networks));
            uses.push(u.latest);
        }
        if let Err(e) = self.store.record_api_key_uses(&uses).await {
            let mut usage = lock(&self.usage);
            for (latest, (_, tenant, ..)) in uses.into_iter().zip(seen) {
                usage.entry(latest.id.clone()).or_insert(PendingUse {
                    latest,
                    tenant,
                    scopes: BTreeSet::new(),
                    unscoped: false,
                    networks: BTreeSet::new(),
                });
            }
            return Err(e);
        }
        use crate::lifecycle::{
            record_match_awaited, API_KEY_NETWORK, API_KEY_SCOPE, API_KEY_UNSCOPED,
        };
        let store = self.store.as_ref();
        let marks = &self.use_marks;
        for (id, tenant, at, scopes, unscoped, networks) in seen {
            for scope in &scopes {
                let subject = format!("{id} {scope}");
                record_match_awaited(store, marks, &tenant, API_KEY_SCOPE, &subject, at).await;
            }
            if unscoped {
                record_match_awaited(store, marks, &tenant, API_KEY_UNSCOPED, &id, at).await;
            }
            for network in &networks {
                if !self.network_budget(&id, at, false) {
                    break;
                }
                let subject = format!("{id} {network}");
                if record_match_awaited(store, marks, &tenant, API_KEY_NETWORK, &subject, at).await
                {
                    self.network_budget(&id, at, true);
                }
            }
        }
        Ok(uses.len())
    }

    /// Whether `id` may still add a network row in the hour of `at` on this node; with `spend`,
    /// counts one. Forgets every key past the marks' capacity, like the marks.
    fn network_budget(&self, id: &str, at: Timestamp, spend: bool) -> bool {
        let hour = at.as_millis().div_euclid(3_600_000);
        let mut budget = lock(&self.network_rows);
        if budget.len() >= self.use_marks.capacity() && !budget.contains_key(id) {
            budget.clear();
        }
        let entry = budget.entry(id.to_owned()).or_insert((hour, 0));
        if entry.0 != hour {
            *entry = (hour, 0);
        }
        if spend {
            entry.1 += 1;
        }
        entry.1 < NETWORK_ROWS_PER_HOUR
    }

    /// Follows the revocation log until the returned task is aborted: every `api_key` or
    /// `api_key_changed` entry, whichever node appended it, drops that key from the cache.
    pub fn spawn_revocation_follower(self: &Arc<Self>) -> JoinHandle<()> {
        // Watch before reading the starting position, so no append falls between the two.
        let head = self.store.watch_revocation_head();
        let follower = CacheFollower(self.clone());
        // The head is confirmed now and then, so a restored or replaced log is noticed.
        let confirm = Some(Duration::from_secs(5));
        tokio::spawn(follow(
            self.store.clone(),
            head,
            Start::Head,
            confirm,
            follower,
        ))
    }

    /// Flushes usage every `interval` until the returned task is aborted.
    pub fn spawn_usage_flusher(self: &Arc<Self>, interval: Duration) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = this.flush_usage().await {
                    tracing::warn!(error = %e, "could not record api key use; will retry");
                }
            }
        })
    }

    fn audit_failure(
        &self,
        rejection: Rejection,
        requested_tenant: Option<&TenantId>,
        key_id: Option<String>,
        key_tenant: Option<TenantId>,
        origin: &RequestOrigin,
    ) {
        // The event belongs to the tenant whose resource was reached if known, else to the
        // key's tenant, else to the installation.
        let tenant = requested_tenant
            .cloned()
            .or_else(|| key_tenant.clone())
            .unwrap_or_else(TenantId::system);
        self.audit.record(
            EventDraft {
                tenant,
                actor: Actor::anonymous(),
                credential_id: key_id,
                action: Action::ApiKeyVerify,
                outcome: if rejection.is_insufficient_scope() {
                    Outcome::Denied
                } else {
                    Outcome::Failure
                },
                reason: Some(Reason::of(&rejection.reason())),
                target: key_tenant.map(|t| t.to_string()),
            },
            origin,
        );
    }

    /// Records a refusal decided outside [`Self::verify`] (a key sent in the query string).
    pub fn audit_refusal(
        &self,
        rejection: Rejection,
        tenant: Option<&TenantId>,
        origin: &RequestOrigin,
    ) {
        self.audit_failure(rejection, tenant, None, None, origin);
    }
}

/// Applies the revocation log to the key cache.
#[derive(Debug)]
struct CacheFollower(Arc<ApiKeyVerifier>);

impl LogFollower for CacheFollower {
    fn started(&mut self, position: i64) {
        // Whatever was cached before now may predate entries this follower will never read.
        self.0.invalidate_all();
        self.0.metrics.set_applied(position);
    }

    fn caught_up(&mut self, position: i64) {
        self.0.metrics.set_applied(position);
    }

    fn apply(&mut self, entries: Vec<RevocationEntry>, _through: i64) {
        for e in entries {
            match e.kind {
                RevocationKind::ApiKey | RevocationKind::ApiKeyChanged => {
                    self.0.invalidate(&e.subject)
                }
                // A tenant disabled on another node: cached keys carry its old status.
                RevocationKind::Tenant => self.0.invalidate_all(),
                _ => {}
            }
        }
    }

    fn read_failed(&mut self, error: &StoreError) -> OnReadError {
        // Not knowing which keys changed, forget them all: lookups read storage.
        tracing::warn!(error = %error, "could not read the revocation log; dropping every cached api key");
        self.0.invalidate_all();
        OnReadError::Skip
    }

    fn log_replaced(&mut self) {
        self.0.invalidate_all();
    }
}

/// The decision's view of a stored key. Stored lists that no longer parse mean corrupt data:
/// an error (deny), never a key with fewer restrictions.
pub fn facts_from_record(r: &ApiKeyRecord, tenant_active: bool) -> Result<ApiKeyFacts, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("api key {}: {what}", r.id));
    let rate_limit = match (r.rate_limit_requests, r.rate_limit_window_secs) {
        // An out-of-range limit would mean no limit at all: refuse it as corrupt instead.
        (Some(n), Some(w)) => Some(
            RateLimit {
                requests: u32::try_from(n).map_err(|_| corrupt("rate limit"))?,
                window_secs: u32::try_from(w).map_err(|_| corrupt("rate limit"))?,
            }
            .validate()
            .map_err(|_| corrupt("rate limit"))?,
        ),
        (None, None) => None,
        _ => return Err(corrupt("rate limit")),
    };
    Ok(ApiKeyFacts {
        id: r.id.clone(),
        tenant: r.tenant.clone(),
        tenant_active,
        environment: Environment::parse(&r.environment).map_err(|_| corrupt("environment"))?,
        digest: r.digest.clone(),
        name: r.name.clone(),
        owner: r.owner.clone(),
        scopes: ScopeSet::parse_spaced(&r.scopes).map_err(|_| corrupt("scopes"))?,
        audiences: r
            .audiences
            .as_deref()
            .map(ScopeSet::parse_spaced)
            .transpose()
            .map_err(|_| corrupt("audiences"))?,
        ip_allowlist: r
            .ip_allowlist
            .as_deref()
            .map(IpAllowlist::parse_spaced)
            .transpose()
            .map_err(|_| corrupt("ip allowlist"))?,
        rate_limit,
        expires_at: r.expires_at,
        disabled: r.disabled_at.is_some(),
        revoked: r.revoked_at.is_some(),
        rotation_overlap_ends_at: r.rotation_overlap_ends_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: i64) -> CacheEntry<Arc<ApiKeyFacts>> {
        CacheEntry {
            value: Arc::new(ApiKeyFacts {
                id: "x".into(),
                tenant: TenantId::system(),
                tenant_active: true,
                environment: Environment::live(),
                digest: vec![0; 32],
                name: String::new(),
                owner: String::new(),
                scopes: ScopeSet::default(),
                audiences: None,
                ip_allowlist: None,
                rate_limit: None,
                expires_at: None,
                disabled: false,
                revoked: false,
                rotation_overlap_ends_at: None,
            }),
            fetched_at: Timestamp::from_secs(at),
        }
    }

    #[test]
    fn the_cache_never_grows_past_its_capacity_and_evicts_stale_entries_first() {
        let mut cache = Cache::new(3);
        cache.insert("old".into(), entry(0));
        for (i, id) in ["a", "b"].into_iter().enumerate() {
            cache.insert(id.into(), entry(20 + i as i64));
        }
        assert_eq!(cache.entries.len(), 3);
        cache.insert("c".into(), entry(25));
        assert_eq!(cache.entries.len(), 3);
        assert!(
            !cache.entries.contains_key("old"),
            "the stale entry goes first"
        );
        for i in 0..100 {
            cache.insert(format!("k{i}"), entry(25));
            assert!(cache.entries.len() <= 3);
        }
        // Replacing an existing id never evicts another.
        let before: Vec<String> = cache.entries.keys().cloned().collect();
        cache.insert(before[0].clone(), entry(26));
        let mut after: Vec<String> = cache.entries.keys().cloned().collect();
        let mut before = before;
        before.sort();
        after.sort();
        assert_eq!(before, after);
    }

    #[test]
    fn eviction_skips_refreshed_and_invalidated_slots_and_the_queue_stays_bounded() {
        let mut cache = Cache::new(2);
        cache.insert("a".into(), entry(1));
        cache.insert("b".into(), entry(2));
        // "a" is refreshed: its first slot is stale, so the next eviction takes "b".
        cache.insert("a".into(), entry(3));
        cache.insert("c".into(), entry(4));
        assert!(cache.entries.contains_key("a") && cache.entries.contains_key("c"));
        assert!(!cache.entries.contains_key("b"));
        // An invalidated key's slot is skipped too.
        cache.entries.remove("a");
        cache.insert("d".into(), entry(5));
        cache.insert("e".into(), entry(6));
        assert_eq!(cache.entries.len(), 2);
        assert!(cache.entries.contains_key("d") && cache.entries.contains_key("e"));
        // Refresh churn never lets the queue grow past a constant multiple of the capacity.
        for i in 0..10_000 {
            cache.insert("d".into(), entry(10 + i));
            assert!(cache.order.len() <= 2 * 2 + 16 + 1);
        }
        cache.clear();
        assert!(cache.entries.is_empty() && cache.order.is_empty());
    }

    fn sample_record() -> ApiKeyRecord {
        ApiKeyRecord {
            id: "abc".into(),
            tenant: TenantId::parse("acme").expect("tenant"),
            environment: "live".into(),
            name: "n".into(),
            description: String::new(),
            owner: "o".into(),
            scopes: "orders:read".into(),
            audiences: None,
            ip_allowlist: None,
            rate_limit_requests: None,
            rate_limit_window_secs: None,
            metadata: "{}".into(),
            display_prefix: "pcl_key_live_abc".into(),
            digest: vec![0; 32],
            created_at: Timestamp::from_secs(0),
            created_by: None,
            expires_at: None,
            disabled_at: None,
            revoked_at: None,
            revoked_reason: None,
            replaced_by: None,
            rotation_overlap_ends_at: None,
            last_used_at: None,
            last_used_ip: None,
        }
    }

    #[test]
    fn a_stored_rate_limit_out_of_range_is_corrupt_never_no_limit() {
        let record = |n: Option<i64>, w: Option<i64>| ApiKeyRecord {
            rate_limit_requests: n,
            rate_limit_window_secs: w,
            ..sample_record()
        };
        let limit = facts_from_record(&record(Some(10), Some(60)), true)
            .expect("valid")
            .rate_limit;
        assert_eq!(
            limit,
            Some(RateLimit {
                requests: 10,
                window_secs: 60
            })
        );
        assert_eq!(
            facts_from_record(&record(None, None), true)
                .expect("none")
                .rate_limit,
            None
        );
        for (n, w) in [
            (Some(0), Some(60)),
            (Some(10), Some(0)),
            (Some(10), Some(86_401)),
            (Some(-1), Some(60)),
            (Some(10), None),
        ] {
            assert!(
                matches!(
                    facts_from_record(&record(n, w), true),
                    Err(StoreError::Corrupt(_))
                ),
                "{n:?} {w:?}"
            );
        }
    }

    #[test]
    fn a_lookup_that_overlaps_an_invalidation_is_not_cached() {
        let mut cache = Cache::new(10);
        let before = cache.generation;
        // A change is invalidated while a lookup that read the old state is in flight.
        cache.remove("k");
        cache.insert_if_current(before, "k".into(), entry(1));
        assert!(!cache.entries.contains_key("k"), "stale lookup cached");
        let before = cache.generation;
        cache.clear();
        cache.insert_if_current(before, "k".into(), entry(2));
        assert!(
            !cache.entries.contains_key("k"),
            "stale lookup cached after clear"
        );
        // Without an invalidation in between, the lookup is cached.
        let now = cache.generation;
        cache.insert_if_current(now, "k".into(), entry(3));
        assert!(cache.entries.contains_key("k"));
    }
}
