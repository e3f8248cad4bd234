//! Remote JWKS documents: the keys of `private_key_jwt` clients that register a `jwks_uri`
//! (and, with the outbound address rule, of trusted workload issuers, `crate::federation::keys`):
//! fetched over HTTPS, bounded in time and size, cached for `oauth.jwks_uri_cache_ttl_secs`.
//!
//! What this module must never do: follow a redirect (it could lead to plain HTTP or to another
//! host), use a proxy from the environment, read an unbounded body, trust a document that fails
//! the rules of an inline JWKS (public asymmetric keys only), or keep using keys past their TTL
//! because a refetch failed: an unreachable JWKS means `invalid_client`, not stale keys.
//!
//! Refetching: an assertion whose `kid` the cached JWKS lacks (the client rotated its key)
//! triggers one refetch, but at most one fetch per URI happens per
//! `oauth.jwks_uri_min_refetch_secs`, successful or not, so assertions with made-up key ids or an
//! unreachable URI cannot turn this server into a request amplifier. Fetches of one URI are
//! serialised; concurrent requests wait for the one in flight and use its result.
//!
//! Plain `http://` URIs are refused at registration and at fetch unless
//! `oauth.insecure_allow_http_jwks_uri` is set (tests, closed networks). Where the fetch may
//! connect is `crate::outbound`'s rule: a host that is a non-public address, or a name that
//! resolves only to such addresses (now or after a DNS change), is refused at fetch time unless
//! `oauth.insecure_allow_private_jwks_uri` is set, so registering a client cannot make this
//! server read an internal service.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_core::time::Timestamp;
use portcullis_jose::ClientKeys;
use reqwest::header::{HeaderValue, ACCEPT};

use portcullis_jose::profile::client_assertion::MAX_CLIENT_KEYS;

/// Longest JWKS URI accepted at registration.
const MAX_URI_LEN: usize = 2_048;
/// URIs tracked at most; beyond it the table is emptied (every URI refetches once). Only URIs of
/// registered clients ever get here.
const MAX_URIS: usize = 10_000;

/// Settings, from `[oauth]` configuration.
#[derive(Debug, Clone, Copy)]
pub struct RemoteJwksSettings {
    pub ttl: Duration,
    pub min_refetch: Duration,
    pub timeout: Duration,
    pub max_bytes: usize,
    pub allow_http: bool,
    /// Which addresses a fetch may connect to (`crate::outbound`'s rule, applied when the name
    /// is resolved, and to a literal address before connecting). Client `jwks_uri`s and trusted
    /// issuers both set one; `None` (the system resolver, no filter) is for tests of this cache.
    pub addresses: Option<crate::outbound::AddressPolicy>,
}

/// Checks a JWKS URI a client registers: an absolute `https://` URL (or `http://` when allowed)
/// with a host, no credentials and no fragment. Returns it normalised.
pub fn validate_jwks_uri(uri: &str, allow_http: bool) -> Result<String, &'static str> {
    if uri.len() > MAX_URI_LEN {
        return Err("jwks_uri is at most 2048 characters");
    }
    let url = reqwest::Url::parse(uri).map_err(|_| "jwks_uri must be an absolute URL")?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(
                "jwks_uri must use https (http only with oauth.insecure_allow_http_jwks_uri)",
            )
        }
        _ => return Err("jwks_uri must be an https URL"),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("jwks_uri must name a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("jwks_uri must not carry credentials");
    }
    if url.fragment().is_some() {
        return Err("jwks_uri must not have a fragment");
    }
    Ok(url.into())
}

/// What is known about one URI.
#[derive(Debug, Default)]
struct Slot {
    /// The last good document and when it was fetched.
    keys: Option<(Timestamp, Arc<ClientKeys>)>,
    /// When a fetch was last started, whatever its outcome.
    last_attempt: Option<Timestamp>,
    /// Why the last fetch failed, if it did.
    last_failure: Option<&'static str>,
}

/// Fetches and caches client JWKS documents. See the module documentation.
#[derive(Debug)]
pub struct RemoteJwks {
    /// Built on first use: most installations have no `jwks_uri` client and need no TLS client
    /// (or its root store) in memory.
    http: tokio::sync::OnceCell<reqwest::Client>,
    settings: RemoteJwksSettings,
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl RemoteJwks {
    pub fn new(settings: RemoteJwksSettings) -> Self {
        Self {
            http: tokio::sync::OnceCell::new(),
            settings,
            slots: Mutex::new(HashMap::new()),
        }
    }

    async fn http(&self) -> Result<&reqwest::Client, &'static str> {
        let settings = self.settings;
        self.http
            .get_or_try_init(|| async move {
                let builder = match settings.addresses {
                    Some(policy) => reqwest::Client::builder()
                        .dns_resolver(Arc::new(crate::outbound::FilteringResolver(policy))),
                    None => reqwest::Client::builder(),
                };
                builder
                    .timeout(settings.timeout)
                    .connect_timeout(settings.timeout)
                    .redirect(reqwest::redirect::Policy::none())
                    .no_proxy()
                    .https_only(!settings.allow_http)
                    .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
                    .build()
            })
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "could not build the HTTP client for JWKS URIs");
                "jwks_uri_client_unavailable"
            })
    }

    fn slot(&self, uri: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        // Holds only fetched public keys and timestamps; a panic elsewhere cannot leave it worse
        // than empty, which costs one refetch.
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if !slots.contains_key(uri) && slots.len() >= MAX_URIS {
            slots.clear();
        }
        slots.entry(uri.to_owned()).or_default().clone()
    }

    fn age_below(&self, since: Timestamp, now: Timestamp, limit: Duration) -> bool {
        let age = now.as_millis().saturating_sub(since.as_millis());
        (0..i64::try_from(limit.as_millis()).unwrap_or(i64::MAX)).contains(&age)
    }

    /// The client's keys, for an assertion naming `kid`. The error is the reason to refuse the
    /// client (for the audit log).
    pub async fn keys(
        &self,
        uri: &str,
        kid: Option<&str>,
        now: Timestamp,
    ) -> Result<Arc<ClientKeys>, &'static str> {
        let slot = self.slot(uri);
        let mut slot = slot.lock().await;
        let fresh = slot
            .keys
            .as_ref()
            .filter(|(at, _)| self.age_below(*at, now, self.settings.ttl))
            .map(|(_, set)| set.clone());
        let knows_kid = |set: &ClientKeys| kid.is_none_or(|kid| set.contains_kid(kid));
        if let Some(set) = &fresh {
            if knows_kid(set) {
                return Ok(set.clone());
            }
        }
        let may_fetch = slot
            .last_attempt
            .is_none_or(|t| !self.age_below(t, now, self.settings.min_refetch));
        if !may_fetch {
            // A kid the fresh keys lack stays unknown until the interval ends.
            return fresh.ok_or(slot.last_failure.unwrap_or("jwks_uri_unavailable"));
        }
        slot.last_attempt = Some(now);
        match self.fetch(uri).await {
            Ok(set) => {
                let set = Arc::new(set);
                slot.keys = Some((now, set.clone()));
                slot.last_failure = None;
                Ok(set)
            }
            Err(reason) => {
                tracing::warn!(reason, "could not fetch a client's JWKS");
                slot.last_failure = Some(reason);
                // A failed refetch for an unknown kid leaves the still-fresh keys usable.
                fresh.ok_or(reason)
            }
        }
    }

    async fn fetch(&self, uri: &str) -> Result<ClientKeys, &'static str> {
        let value = self.fetch_json(uri).await?;
        // The rules of an inline JWKS, parsed once for every assertion until the TTL ends.
        ClientKeys::parse(&value, MAX_CLIENT_KEYS).map_err(|_| "jwks_uri_invalid")
    }

    /// One bounded GET of a JSON document under this cache's rules (https unless allowed, no
    /// redirect, no proxy, size and time limits, the address policy).
    pub async fn fetch_json(&self, uri: &str) -> Result<serde_json::Value, &'static str> {
        validate_jwks_uri(uri, self.settings.allow_http).map_err(|_| "jwks_uri_not_allowed")?;
        // A literal address never reaches the resolver: judge it here.
        let literal = reqwest::Url::parse(uri).ok().and_then(|u| {
            let host = u.host_str()?;
            let bare = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            bare.parse::<std::net::IpAddr>().ok()
        });
        if let (Some(policy), Some(ip)) = (self.settings.addresses, literal) {
            if !policy.allows(ip) {
                return Err("jwks_uri_address_not_allowed");
            }
        }
        let mut response = self
            .http()
            .await?
            .get(uri)
            .header(
                ACCEPT,
                HeaderValue::from_static("application/jwk-set+json, application/json"),
            )
            .send()
            .await
            .map_err(|_| "jwks_uri_unreachable")?;
        if response.status() != reqwest::StatusCode::OK {
            return Err("jwks_uri_bad_status");
        }
        let max = self.settings.max_bytes;
        if response
            .content_length()
            .is_some_and(|n| n > u64::try_from(max).unwrap_or(u64::MAX))
        {
            return Err("jwks_uri_too_large");
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|_| "jwks_uri_unreachable")? {
            if body.len() + chunk.len() > max {
                return Err("jwks_uri_too_large");
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|_| "jwks_uri_invalid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_uris_must_be_https_without_credentials() {
        assert_eq!(
            validate_jwks_uri("https://keys.example/jwks.json", false).as_deref(),
            Ok("https://keys.example/jwks.json")
        );
        for bad in [
            "http://keys.example/jwks.json",
            "ftp://keys.example/jwks.json",
            "/jwks.json",
            "https://user:pass@keys.example/jwks.json",
            "https://keys.example/jwks.json#frag",
            "file:///etc/passwd",
        ] {
            assert!(validate_jwks_uri(bad, false).is_err(), "{bad}");
        }
        assert!(validate_jwks_uri("http://127.0.0.1:9/jwks", true).is_ok());
        assert!(
            validate_jwks_uri(&format!("https://k.example/{}", "a".repeat(2_048)), false).is_err()
        );
    }
}
