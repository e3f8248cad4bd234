//! The key cache of one issuer: static keys, a JWKS URL, or a discovery document naming one.
//!
//! * Freshness: a fetched key set lives for the response's `Cache-Control: max-age`, clamped to
//!   `[min_ttl, max_ttl]` (`default_ttl` when the header is absent).
//! * Unknown `kid`: the set is fetched again, but single-flight (concurrent callers share one
//!   fetch) and at most once per `refetch_interval`, so a flood of forged `kid`s cannot turn
//!   the verifier into a load generator against the issuer.
//! * Outage: when a fetch fails, the last good set keeps serving until `max_stale` past its
//!   expiry; after that every token of this issuer is refused (fail closed).
//!
//! * Revoked keys: a `kid` the revocation feed names as revoked is dropped from the held set at
//!   once and filtered out of every set fetched or configured afterwards, so neither a stale
//!   issuer nor a static JWKS can bring it back. The issuer has made another key active at once
//!   (no pre-publication after a compromise), so the next unknown `kid` fetches without waiting
//!   out `refetch_interval` (once per revocation: a flood of forged kids still costs one fetch).
//!
//! This module must never fetch a URL taken from a token.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::Mutex as AsyncMutex;
use tokio::time::Instant;

use crate::denial::Reason;
use crate::fetch::{Fetch, Fetched};
use portcullis_jose::jwk::{parse_jwks, KeySet, VerificationKey};
use portcullis_jose::Alg;

/// Where an issuer's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// An OpenID Connect / RFC 8414 discovery document URL; its `jwks_uri` is followed and its
    /// `issuer` must equal the configured issuer exactly.
    Discovery(String),
    /// A JWKS URL.
    JwksUrl(String),
    /// A JWKS document given in configuration; never refreshed.
    Static(String),
}

/// Freshness settings of a key cache.
#[derive(Debug, Clone, Copy)]
pub struct JwksTiming {
    pub default_ttl: Duration,
    pub min_ttl: Duration,
    pub max_ttl: Duration,
    /// Least time between two fetches not caused by expiry (unknown kid, failed fetch).
    pub refetch_interval: Duration,
    /// How long past expiry the last good keys keep serving while the issuer is unreachable.
    pub max_stale: Duration,
}

impl Default for JwksTiming {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(300),
            min_ttl: Duration::from_secs(30),
            max_ttl: Duration::from_secs(24 * 3600),
            refetch_interval: Duration::from_secs(10),
            max_stale: Duration::from_secs(3600),
        }
    }
}

#[derive(Debug, Clone)]
struct Snapshot {
    keys: Arc<KeySet>,
    expires_at: Instant,
}

#[derive(Debug)]
pub struct JwksCache {
    issuer: String,
    source: KeySource,
    allowed: Vec<Alg>,
    timing: JwksTiming,
    fetch: Arc<dyn Fetch>,
    current: RwLock<Option<Snapshot>>,
    /// Held while fetching: the single flight. Also guards the time of the last attempt.
    refresh: AsyncMutex<Option<Instant>>,
    /// The JWKS URL once discovery has named it.
    jwks_url: RwLock<Option<String>>,
    /// Kids revoked through the revocation feed: never served again.
    revoked: RwLock<HashSet<String>>,
    /// Set when a key is revoked: the issuer has just made another key active (no
    /// pre-publication after a compromise), so the next unknown `kid` may fetch at once instead
    /// of waiting out `refetch_interval`.
    refetch_now: AtomicBool,
}

fn read<T: Clone>(l: &RwLock<T>) -> T {
    l.read().unwrap_or_else(|p| p.into_inner()).clone()
}

fn write<T>(l: &RwLock<T>, v: T) {
    *l.write().unwrap_or_else(|p| p.into_inner()) = v;
}

impl JwksCache {
    pub fn new(
        issuer: String,
        source: KeySource,
        allowed: Vec<Alg>,
        timing: JwksTiming,
        fetch: Arc<dyn Fetch>,
    ) -> Result<Self, crate::ConfigError> {
        let current = match &source {
            KeySource::Static(doc) => Some(Snapshot {
                keys: Arc::new(
                    parse_jwks(doc.as_bytes(), &allowed)
                        .map_err(|e| crate::ConfigError(format!("static JWKS of {issuer}: {e}")))?,
                ),
                // Static keys never expire; a far-future instant keeps one code path.
                expires_at: Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600),
            }),
            _ => None,
        };
        Ok(Self {
            issuer,
            source,
            allowed,
            timing,
            fetch,
            current: RwLock::new(current),
            refresh: AsyncMutex::new(None),
            jwks_url: RwLock::new(None),
            revoked: RwLock::new(HashSet::new()),
            refetch_now: AtomicBool::new(false),
        })
    }

    /// Drops a revoked key from the held set and from every set fetched later.
    pub fn forget(&self, kid: &str) {
        let revoked = {
            let mut revoked = self.revoked.write().unwrap_or_else(|p| p.into_inner());
            if !revoked.insert(kid.to_owned()) {
                return;
            }
            revoked.clone()
        };
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if let Some(snap) = current.as_mut() {
            snap.keys = Arc::new(snap.keys.without(&revoked));
        }
        self.refetch_now.store(true, Ordering::Relaxed);
    }

    /// The key a token names, fetching if needed under the rules in the module docs.
    pub async fn key(&self, kid: Option<&str>) -> Result<Arc<VerificationKey>, Reason> {
        let now = Instant::now();
        let snap = read(&self.current);
        if let Some(s) = &snap {
            if s.expires_at > now {
                if let Some(k) = s.keys.find(kid) {
                    return Ok(k.clone());
                }
            }
        }
        if matches!(self.source, KeySource::Static(_)) {
            return Err(Reason::UnknownKid);
        }
        self.refresh_if_allowed(snap.as_ref()).await;
        let now = Instant::now();
        let Some(s) = read(&self.current) else {
            return Err(Reason::KeysUnavailable);
        };
        if s.expires_at + self.timing.max_stale <= now {
            return Err(Reason::KeysUnavailable);
        }
        s.keys.find(kid).cloned().ok_or(Reason::UnknownKid)
    }

    /// Fetches unless another caller just did (single flight) or the last attempt was less than
    /// `refetch_interval` ago while the held keys are still fresh.
    async fn refresh_if_allowed(&self, seen: Option<&Snapshot>) {
        let mut last_attempt = self.refresh.lock().await;
        let now = Instant::now();
        let current = read(&self.current);
        // Someone refreshed while we queued: use what they got.
        let changed = match (seen, &current) {
            (Some(a), Some(b)) => !Arc::ptr_eq(&a.keys, &b.keys),
            (None, Some(_)) => true,
            _ => false,
        };
        if changed {
            return;
        }
        let urgent = self.refetch_now.swap(false, Ordering::Relaxed);
        if let Some(at) = *last_attempt {
            if !urgent && now.duration_since(at) < self.timing.refetch_interval {
                return;
            }
        }
        *last_attempt = Some(now);
        match self.fetch_keys().await {
            Ok((keys, ttl)) => {
                tracing::debug!(issuer = %self.issuer, keys = keys.len(), ttl_s = ttl.as_secs(), "fetched JWKS");
                write(
                    &self.current,
                    Some(Snapshot {
                        keys: Arc::new(keys),
                        expires_at: Instant::now() + ttl,
                    }),
                );
            }
            Err(e) => {
                tracing::warn!(issuer = %self.issuer, error = %e, "JWKS fetch failed; keeping the last good keys within max_stale");
            }
        }
    }

    async fn fetch_keys(&self) -> Result<(KeySet, Duration), String> {
        let url = match &self.source {
            KeySource::JwksUrl(u) => u.clone(),
            KeySource::Discovery(d) => match read(&self.jwks_url) {
                Some(u) => u,
                None => {
                    let u = self.discover(d).await?;
                    write(&self.jwks_url, Some(u.clone()));
                    u
                }
            },
            KeySource::Static(_) => return Err("static keys are not fetched".into()),
        };
        let Fetched { body, max_age } = self.fetch.get(&url).await.map_err(|e| e.to_string())?;
        let keys = parse_jwks(&body, &self.allowed).map_err(|e| e.to_string())?;
        let keys = {
            let revoked = self.revoked.read().unwrap_or_else(|p| p.into_inner());
            if revoked.is_empty() {
                keys
            } else {
                keys.without(&revoked)
            }
        };
        let ttl = max_age
            .unwrap_or(self.timing.default_ttl)
            .clamp(self.timing.min_ttl, self.timing.max_ttl);
        Ok((keys, ttl))
    }

    async fn discover(&self, url: &str) -> Result<String, String> {
        let doc = self.fetch.get(url).await.map_err(|e| e.to_string())?;
        let doc: serde_json::Value =
            serde_json::from_slice(&doc.body).map_err(|_| "discovery document is not JSON")?;
        // RFC 8414 section 3.3 / OIDC Discovery 4.3: the document's issuer must be ours exactly.
        if doc.get("issuer").and_then(|v| v.as_str()) != Some(self.issuer.as_str()) {
            return Err("discovery document names another issuer".into());
        }
        doc.get("jwks_uri")
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or_else(|| "discovery document has no jwks_uri".into())
    }
}
