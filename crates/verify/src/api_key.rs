//! API key verification for the verifier: a cheap local precheck (format, checksum,
//! environment) so garbage never leaves the process, then a backend (Portcullis's HTTP verify
//! endpoint, or an in-process one the embedding program supplies), then a short-lived cache of
//! successful answers.
//!
//! The cache is keyed by a digest of the key together with everything the backend's answer
//! depended on (tenant, client IP, audience). Revocation and changes reach it through the
//! revocation feed: an `api_key`/`api_key_changed` record drops every cached answer for that
//! key id at once, and a revoked key id is refused on every request, cached or not.
//!
//! Each key's own rate limit (from the backend's answer) is counted here for every request
//! admitted, cached or not: per process, so N gateways admit up to N times a key's limit.
//!
//! This module must never cache a refusal as a success or put the key itself in a log.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use portcullis_core::api_key::{parse_presented, RateLimit};
use portcullis_core::credential::Environment;
use portcullis_core::rate_limit::Buckets;
use portcullis_core::secret::Secret;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{Clock, Timestamp};
use serde::Deserialize;

use crate::denial::Reason;
use crate::principal::{CredentialKind, Principal};

/// An API key check's request facts, with the audience and environment the route requires.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ApiKeyRequest<'a> {
    pub tenant: Option<&'a TenantId>,
    pub client_ip: Option<IpAddr>,
    pub audience: &'a str,
    /// `None` = the API key configuration's environment.
    pub environment: Option<&'a Environment>,
}

/// What a backend is asked about a key.
#[derive(Debug, Clone, Copy)]
pub struct ApiKeyQuery<'a> {
    /// The presented key. Never logged.
    pub key: &'a str,
    pub tenant: Option<&'a TenantId>,
    pub environment: &'a Environment,
    pub client_ip: Option<IpAddr>,
    pub audience: Option<&'a str>,
}

/// What a backend knows about a valid key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyIdentity {
    pub key_id: String,
    pub tenant: TenantId,
    pub environment: String,
    pub owner: String,
    pub scopes: Vec<String>,
    pub expires_at: Option<Timestamp>,
    /// The key's own rate limit, enforced by [`ApiKeys`] for every request it admits.
    pub rate_limit: Option<RateLimit>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyFailure {
    /// The key is not acceptable (the backend knows why; we do not need to).
    #[error("api key rejected")]
    Rejected,
    /// The key is good but the backend's own count of it is over the key's rate limit.
    #[error("api key over its rate limit")]
    RateLimited { retry_after_secs: u64 },
    /// The backend could not answer: deny, never allow.
    #[error("api key backend unavailable: {0}")]
    Unavailable(String),
}

/// Something that can verify an API key.
#[async_trait]
pub trait ApiKeyBackend: Send + Sync + std::fmt::Debug {
    async fn verify(&self, q: &ApiKeyQuery<'_>) -> Result<ApiKeyIdentity, ApiKeyFailure>;
}

/// Portcullis's `POST /v1/api-keys/verify`, authenticated with an admin token.
#[derive(Debug)]
pub struct HttpApiKeys {
    client: reqwest::Client,
    url: reqwest::Url,
    token: Secret<String>,
}

impl HttpApiKeys {
    pub fn new(
        base_url: &str,
        token: impl Into<String>,
        insecure_allow_http: bool,
    ) -> Result<Self, crate::ConfigError> {
        let url = reqwest::Url::parse(base_url)
            .and_then(|u| u.join("v1/api-keys/verify"))
            .map_err(|e| crate::ConfigError(format!("API key endpoint URL: {e}")))?;
        if !crate::fetch::url_allowed(&url, insecure_allow_http) {
            return Err(crate::ConfigError(
                "API key endpoint must be https (or loopback http, or insecure_allow_http)".into(),
            ));
        }
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| crate::ConfigError(format!("API key client: {e}")))?;
        Ok(Self {
            client,
            url,
            token: Secret::new(token.into()),
        })
    }
}

/// The verify endpoint's answer, read once: `{"valid": false}` alone for a refused key, the
/// key's identity otherwise (`valid` is absent from servers older than the field).
#[derive(Debug, Deserialize)]
struct VerifyAnswer {
    valid: Option<bool>,
    key_id: Option<String>,
    tenant: Option<TenantId>,
    environment: Option<String>,
    owner: Option<String>,
    #[serde(default)]
    scopes: Vec<String>,
    expires_at: Option<String>,
    rate_limit: Option<RateLimit>,
}

/// A member an identity answer must carry.
fn member<T>(value: Option<T>, name: &str) -> Result<T, ApiKeyFailure> {
    value.ok_or_else(|| ApiKeyFailure::Unavailable(format!("bad answer: missing field `{name}`")))
}

#[async_trait]
impl ApiKeyBackend for HttpApiKeys {
    async fn verify(&self, q: &ApiKeyQuery<'_>) -> Result<ApiKeyIdentity, ApiKeyFailure> {
        let mut body = serde_json::json!({
            "key": q.key,
            "environment": q.environment.as_str(),
        });
        if let Some(t) = q.tenant {
            body["tenant"] = t.as_str().into();
        }
        if let Some(ip) = q.client_ip {
            body["client_ip"] = ip.to_string().into();
        }
        if let Some(a) = q.audience {
            body["audience"] = a.into();
        }
        let resp = self
            .client
            .post(self.url.clone())
            .bearer_auth(self.token.expose())
            .json(&body)
            .send()
            .await
            .map_err(|e| ApiKeyFailure::Unavailable(e.without_url().to_string()))?;
        match resp.status().as_u16() {
            200 => {}
            // The server answers a bad key with 200 `{"valid": false}`; 401/403 mean our own
            // credential was refused (missing, revoked, wrong, or without `verify_api_keys` for
            // this tenant). Fail closed as unavailable, never as a rejected key.
            s @ (401 | 403) => {
                return Err(ApiKeyFailure::Unavailable(format!(
                    "the verifier's own credential was refused by the API key endpoint (status {s})"
                )))
            }
            429 => {
                let retry_after_secs = resp
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(1);
                return Err(ApiKeyFailure::RateLimited { retry_after_secs });
            }
            s => return Err(ApiKeyFailure::Unavailable(format!("status {s}"))),
        }
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ApiKeyFailure::Unavailable(format!("bad answer: {}", e.without_url())))?;
        // `valid: false` is the refusal, whatever the reason; `valid: true` or no `valid` (a
        // server older than the field) is the key's identity.
        let a: VerifyAnswer = serde_json::from_slice(&bytes)
            .map_err(|e| ApiKeyFailure::Unavailable(format!("bad answer: {e}")))?;
        if a.valid == Some(false) {
            return Err(ApiKeyFailure::Rejected);
        }
        // A limit the server could never have stored would mean no limit here: deny instead.
        let rate_limit = a
            .rate_limit
            .map(RateLimit::validate)
            .transpose()
            .map_err(|_| ApiKeyFailure::Unavailable("bad rate_limit in answer".into()))?;
        let expires_at = match a.expires_at {
            None => None,
            Some(s) => Some(
                parse_rfc3339(&s)
                    .ok_or_else(|| ApiKeyFailure::Unavailable("bad expires_at in answer".into()))?,
            ),
        };
        Ok(ApiKeyIdentity {
            key_id: member(a.key_id, "key_id")?,
            tenant: member(a.tenant, "tenant")?,
            environment: member(a.environment, "environment")?,
            owner: member(a.owner, "owner")?,
            scopes: a.scopes,
            expires_at,
            rate_limit,
        })
    }
}

fn parse_rfc3339(s: &str) -> Option<Timestamp> {
    let t = humantime::parse_rfc3339(s).ok()?;
    let ms = t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    Some(Timestamp::from_millis(i64::try_from(ms).ok()?))
}

#[derive(Debug, Clone)]
struct Cached {
    principal: Arc<Principal>,
    rate_limit: Option<RateLimit>,
    key_id: String,
    until: Timestamp,
}

#[derive(Debug, Default)]
struct CacheInner {
    entries: HashMap<[u8; 32], Cached>,
    by_key_id: HashMap<String, HashSet<[u8; 32]>>,
    order: VecDeque<[u8; 32]>,
}

impl CacheInner {
    fn remove(&mut self, digest: &[u8; 32]) {
        if let Some(c) = self.entries.remove(digest) {
            if let Some(set) = self.by_key_id.get_mut(&c.key_id) {
                set.remove(digest);
                if set.is_empty() {
                    self.by_key_id.remove(&c.key_id);
                }
            }
        }
    }
}

/// API key verification with a precheck, a backend and a bounded cache.
#[derive(Debug)]
pub struct ApiKeys {
    backend: Arc<dyn ApiKeyBackend>,
    environment: Environment,
    ttl: Duration,
    capacity: usize,
    clock: Arc<dyn Clock>,
    cache: Mutex<CacheInner>,
    /// Each key's own rate limit, counted in this process.
    limits: Buckets,
}

impl ApiKeys {
    pub fn new(
        backend: Arc<dyn ApiKeyBackend>,
        environment: Environment,
        ttl: Duration,
        capacity: usize,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            backend,
            environment,
            ttl,
            capacity: capacity.max(1),
            clock,
            cache: Mutex::new(CacheInner::default()),
            limits: Buckets::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops every cached answer for a key id (called by the revocation feed).
    pub fn invalidate(&self, key_id: &str) {
        let mut c = self.lock();
        if let Some(digests) = c.by_key_id.remove(key_id) {
            for d in digests {
                c.entries.remove(&d);
            }
        }
    }

    /// Drops every cached answer for a tenant's keys (the tenant was disabled).
    pub fn invalidate_tenant(&self, tenant: &TenantId) {
        let mut c = self.lock();
        let gone: Vec<[u8; 32]> = c
            .entries
            .iter()
            .filter(|(_, e)| e.principal.tenant.as_ref() == Some(tenant))
            .map(|(d, _)| *d)
            .collect();
        for d in gone {
            c.remove(&d);
        }
    }

    /// Verifies a presented key. `revoked` answers whether a key id has been revoked.
    pub(crate) async fn verify(
        &self,
        key: &str,
        request: &ApiKeyRequest<'_>,
        revoked: impl Fn(&str) -> bool,
    ) -> Result<Arc<Principal>, Reason> {
        let ApiKeyRequest {
            tenant,
            client_ip,
            audience,
            environment,
        } = *request;
        let environment = environment.unwrap_or(&self.environment);
        let credential = parse_presented(key).map_err(|_| Reason::ApiKeyFormat)?;
        // Before the cache: the cached answer is for the key, whose environment is part of it.
        if credential.environment() != environment {
            return Err(Reason::ApiKeyWrongEnvironment);
        }
        let audience = Some(audience);
        let key_id = credential.id().to_owned();
        if revoked(&key_id) {
            return Err(Reason::Revoked(
                portcullis_core::revocation::RevokedBy::ApiKey,
            ));
        }
        let digest = cache_key(key, tenant, client_ip, audience);
        let now = self.clock.now();
        let hit = self
            .lock()
            .entries
            .get(&digest)
            .filter(|hit| hit.until > now)
            .map(|hit| (hit.principal.clone(), hit.rate_limit));
        if let Some((principal, rate_limit)) = hit {
            self.within_rate_limit(&key_id, rate_limit, now)?;
            return Ok(principal);
        }
        let q = ApiKeyQuery {
            key,
            tenant,
            environment,
            client_ip,
            audience,
        };
        let id = match self.backend.verify(&q).await {
            Ok(id) => id,
            Err(ApiKeyFailure::Rejected) => return Err(Reason::ApiKeyRejected),
            Err(ApiKeyFailure::RateLimited { retry_after_secs }) => {
                return Err(Reason::ApiKeyRateLimited { retry_after_secs })
            }
            Err(ApiKeyFailure::Unavailable(e)) => {
                tracing::error!(error = %e, "API key backend unavailable; denying");
                return Err(Reason::ApiKeysUnavailable);
            }
        };
        // The backend must answer for the key that was asked about.
        if id.key_id != key_id {
            tracing::error!("API key backend answered for another key id; denying");
            return Err(Reason::ApiKeysUnavailable);
        }
        if tenant.is_some_and(|t| *t != id.tenant) {
            return Err(Reason::TenantMismatch);
        }
        // A revocation may have arrived while the backend answered.
        if revoked(&key_id) {
            return Err(Reason::Revoked(
                portcullis_core::revocation::RevokedBy::ApiKey,
            ));
        }
        let principal = Arc::new(Principal {
            subject: id.owner,
            client_id: None,
            tenant: Some(id.tenant),
            scopes: id.scopes,
            roles: Vec::new(),
            kind: CredentialKind::ApiKey,
            credential_id: id.key_id,
            issuer: None,
            environment: Some(id.environment),
            expires_at: id.expires_at,
            confirmation: None,
        });
        let rate_limit = id.rate_limit;
        if self.ttl.is_zero() {
            // No cache (an in-process backend with its own): nothing to store or evict.
            self.within_rate_limit(&key_id, rate_limit, now)?;
            return Ok(principal);
        }
        let mut until = now.saturating_add(self.ttl);
        if let Some(exp) = id.expires_at {
            until = until.min(exp);
        }
        let mut c = self.lock();
        while c.entries.len() >= self.capacity {
            let Some(old) = c.order.pop_front() else {
                break;
            };
            c.remove(&old);
        }
        c.order.push_back(digest);
        c.by_key_id
            .entry(key_id.clone())
            .or_default()
            .insert(digest);
        c.entries.insert(
            digest,
            Cached {
                principal: principal.clone(),
                rate_limit,
                key_id: key_id.clone(),
                until,
            },
        );
        if c.order.len() > 2 * self.capacity + 16 {
            let CacheInner { entries, order, .. } = &mut *c;
            order.retain(|d| entries.contains_key(d));
        }
        drop(c);
        self.within_rate_limit(&key_id, rate_limit, now)?;
        Ok(principal)
    }

    /// Counts one admitted request against the key's own limit, if it has one.
    fn within_rate_limit(
        &self,
        key_id: &str,
        limit: Option<RateLimit>,
        now: Timestamp,
    ) -> Result<(), Reason> {
        let Some(rate) = limit.and_then(RateLimit::rate) else {
            return Ok(());
        };
        self.limits
            .check(key_id, rate, now)
            .map_err(|l| Reason::ApiKeyRateLimited {
                retry_after_secs: l.retry_after_secs,
            })
    }
}

/// SHA-256 over the key and the request facts the answer depended on, each part tagged and
/// length-prefixed so no two different inputs share an encoding. Built in one buffer and hashed
/// once: this runs on every request the library admits.
fn cache_key(
    key: &str,
    tenant: Option<&TenantId>,
    ip: Option<IpAddr>,
    audience: Option<&str>,
) -> [u8; 32] {
    let (ip_bytes, ip_len) = match ip {
        Some(IpAddr::V4(v4)) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            (b, 4)
        }
        Some(IpAddr::V6(v6)) => (v6.octets(), 16),
        None => ([0u8; 16], 0),
    };
    let parts = [
        Some(key.as_bytes()),
        tenant.map(|t| t.as_str().as_bytes()),
        ip.map(|_| &ip_bytes[..ip_len]),
        audience.map(str::as_bytes),
    ];
    let mut buf =
        Vec::with_capacity(parts.iter().flatten().map(|p| p.len() + 9).sum::<usize>() + 4);
    for part in parts {
        match part {
            Some(p) => {
                buf.push(1);
                buf.extend_from_slice(&(p.len() as u64).to_be_bytes());
                buf.extend_from_slice(p);
            }
            None => buf.push(0),
        }
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &buf);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_differ_for_every_fact_the_answer_depended_on() {
        let t = TenantId::parse("acme").expect("tenant");
        let v4: IpAddr = "10.0.0.1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().expect("ip");
        let keys = [
            cache_key("k", None, None, None),
            cache_key("k", Some(&t), None, None),
            cache_key("k", None, Some(v4), None),
            cache_key("k", None, Some(mapped), None),
            cache_key("k", None, None, Some("acme")),
            cache_key("k", None, None, Some("")),
            cache_key("ka", None, None, None),
            cache_key("k", Some(&t), Some(v4), Some("api")),
        ];
        let distinct: HashSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len());
        assert_eq!(keys[7], cache_key("k", Some(&t), Some(v4), Some("api")));
    }
}
