//! The keys of a trusted issuer, from its key source: an uploaded JWKS or SPIFFE trust bundle
//! (stored with the issuer), or fetched from its OpenID discovery document or a fixed
//! `jwks_uri`. Fetching is `crate::remote_jwks`'s (bounded in time and size, no redirect,
//! no proxy, cached with a TTL, one refetch per interval on an unknown `kid`, fetches of one URI
//! serialised) with the outbound address rule of `crate::outbound` applied when a name is
//! resolved: no private, loopback or link-local address unless an `insecure_*` setting of the
//! `[federation]` section allows it.
//!
//! Must never: read a key location from the token, follow a discovery document to a `jwks_uri`
//! that is not https (unless allowed) or an issuer other than the one trusted, or use a SPIFFE
//! bundle's X.509 keys to verify a JWT.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_core::time::Timestamp;
use portcullis_jose::ClientKeys;
use portcullis_store::KeySourceRecord;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::MAX_UPLOADED_KEYS;
use crate::outbound::AddressPolicy;
use crate::remote_jwks::{validate_jwks_uri, RemoteJwks, RemoteJwksSettings};

/// The `[federation]` section of the configuration (`docs/workload-identity.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FederationSettings {
    /// How long fetched issuer keys (and a discovered `jwks_uri`) are used, in seconds
    /// (default 300).
    pub jwks_cache_ttl_secs: u64,
    /// Fewest seconds between two fetches of one issuer's keys, an unknown `kid` included
    /// (default 30).
    pub jwks_min_refetch_secs: u64,
    /// Allow `http://` issuers and key URLs, and connections to loopback addresses. For tests
    /// and local development only.
    pub insecure_allow_http_loopback: bool,
    /// Allow fetching keys from private, loopback and link-local addresses. For closed networks
    /// only (a cluster's discovery endpoint on an internal address).
    pub insecure_allow_private_addresses: bool,
}

impl Default for FederationSettings {
    fn default() -> Self {
        Self {
            jwks_cache_ttl_secs: 300,
            jwks_min_refetch_secs: 30,
            insecure_allow_http_loopback: false,
            insecure_allow_private_addresses: false,
        }
    }
}

impl FederationSettings {
    pub fn validate(&self) -> Result<(), String> {
        if !(10..=86_400).contains(&self.jwks_cache_ttl_secs) {
            return Err("federation.jwks_cache_ttl_secs: 10 to 86400".into());
        }
        if self.jwks_min_refetch_secs > self.jwks_cache_ttl_secs {
            return Err("federation.jwks_min_refetch_secs: at most jwks_cache_ttl_secs".into());
        }
        Ok(())
    }
}

/// Longest time of one fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(3);
/// Largest key or discovery document read.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// Issuers whose discovered `jwks_uri` is remembered at most (then forgotten, each refetches).
const MAX_DISCOVERED: usize = 10_000;

/// Issuer keys, fetched and cached. One per token service.
#[derive(Debug)]
pub struct IssuerKeys {
    remote: RemoteJwks,
    ttl: Duration,
    allow_http: bool,
    /// issuer -> (when discovered, its `jwks_uri`).
    discovered: Mutex<HashMap<String, (Timestamp, String)>>,
    /// Discovery fetches are serialised: concurrent exchanges wait for the one in flight.
    discovering: tokio::sync::Mutex<()>,
}

impl IssuerKeys {
    pub fn new(settings: &FederationSettings) -> Self {
        let allow_http = settings.insecure_allow_http_loopback;
        Self {
            remote: RemoteJwks::new(RemoteJwksSettings {
                ttl: Duration::from_secs(settings.jwks_cache_ttl_secs),
                min_refetch: Duration::from_secs(settings.jwks_min_refetch_secs),
                timeout: FETCH_TIMEOUT,
                max_bytes: MAX_DOCUMENT_BYTES,
                allow_http,
                addresses: Some(AddressPolicy {
                    private: settings.insecure_allow_private_addresses,
                    loopback: settings.insecure_allow_http_loopback,
                }),
            }),
            ttl: Duration::from_secs(settings.jwks_cache_ttl_secs),
            allow_http,
            discovered: Mutex::new(HashMap::new()),
            discovering: tokio::sync::Mutex::new(()),
        }
    }

    /// Whether `http://` issuers may be trusted (the same setting).
    pub fn allows_http(&self) -> bool {
        self.allow_http
    }

    /// The keys of `issuer` from `source`, for a token naming `kid`. The error is the audit
    /// reason.
    pub async fn keys(
        &self,
        source: &KeySourceRecord,
        issuer: &str,
        kid: Option<&str>,
        now: Timestamp,
    ) -> Result<Arc<ClientKeys>, &'static str> {
        match source {
            KeySourceRecord::Jwks(_) | KeySourceRecord::SpiffeBundle(_) => uploaded(source),
            KeySourceRecord::JwksUri(uri) => self.remote.keys(uri, kid, now).await,
            KeySourceRecord::Discovery => {
                let uri = self.jwks_uri_of(issuer, now).await?;
                self.remote.keys(&uri, kid, now).await
            }
        }
    }

    fn fresh_discovered(&self, issuer: &str, now: Timestamp) -> Option<String> {
        let known = self.discovered.lock().unwrap_or_else(|p| p.into_inner());
        let ttl = i64::try_from(self.ttl.as_millis()).unwrap_or(i64::MAX);
        known
            .get(issuer)
            .filter(|(at, _)| (0..ttl).contains(&now.as_millis().saturating_sub(at.as_millis())))
            .map(|(_, uri)| uri.clone())
    }

    /// The issuer's `jwks_uri`, from `{issuer}/.well-known/openid-configuration`, whose
    /// `issuer` must be exactly the trusted one (OpenID Connect Discovery section 4.3).
    async fn jwks_uri_of(&self, issuer: &str, now: Timestamp) -> Result<String, &'static str> {
        if let Some(uri) = self.fresh_discovered(issuer, now) {
            return Ok(uri);
        }
        let _one = self.discovering.lock().await;
        if let Some(uri) = self.fresh_discovered(issuer, now) {
            return Ok(uri);
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let doc = self
            .remote
            .fetch_json(&url)
            .await
            .map_err(|_| "discovery_unavailable")?;
        if doc.get("issuer").and_then(Value::as_str) != Some(issuer) {
            return Err("discovery_issuer_mismatch");
        }
        let uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or("discovery_without_jwks_uri")?;
        let uri = validate_jwks_uri(uri, self.allow_http)
            .map_err(|_| "discovery_jwks_uri_not_allowed")?;
        let mut known = self.discovered.lock().unwrap_or_else(|p| p.into_inner());
        if known.len() >= MAX_DISCOVERED {
            known.clear();
        }
        known.insert(issuer.to_owned(), (now, uri.clone()));
        Ok(uri)
    }
}

/// An uploaded key set; for a SPIFFE bundle, only its `jwt-svid` keys (RFC 7517 `use` of the
/// SPIFFE Trust Domain and Bundle format), read as signature keys. A remote source is
/// `key_source_unavailable` here.
pub fn uploaded(source: &KeySourceRecord) -> Result<Arc<ClientKeys>, &'static str> {
    let (doc, spiffe) = match source {
        KeySourceRecord::Jwks(doc) => (doc, false),
        KeySourceRecord::SpiffeBundle(doc) => (doc, true),
        KeySourceRecord::Discovery | KeySourceRecord::JwksUri(_) => {
            return Err("key_source_unavailable")
        }
    };
    let mut doc: Value = serde_json::from_str(doc).map_err(|_| "trusted_issuer_keys_unreadable")?;
    if spiffe {
        doc = spiffe_jwt_keys(&doc);
    }
    ClientKeys::parse(&doc, MAX_UPLOADED_KEYS)
        .map(Arc::new)
        .map_err(|_| "trusted_issuer_keys_unreadable")
}

/// The `jwt-svid` keys of a SPIFFE bundle as a JWKS of signature keys.
pub fn spiffe_jwt_keys(bundle: &Value) -> Value {
    let keys: Vec<Value> = bundle
        .get("keys")
        .and_then(Value::as_array)
        .map(|keys| {
            keys.iter()
                .filter(|k| k.get("use").and_then(Value::as_str) == Some("jwt-svid"))
                .filter_map(|k| {
                    let mut k = k.as_object()?.clone();
                    k.insert("use".into(), Value::from("sig"));
                    Some(Value::Object(k))
                })
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({ "keys": keys })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_spiffe_bundle_yields_only_its_jwt_svid_keys() {
        let bundle = json!({"spiffe_sequence": 3, "keys": [
            {"kty": "EC", "crv": "P-256", "x": "a", "y": "b", "use": "x509-svid", "x5c": ["c"]},
            {"kty": "EC", "crv": "P-256", "x": "d", "y": "e", "use": "jwt-svid", "kid": "k1"}]});
        let jwks = spiffe_jwt_keys(&bundle);
        assert_eq!(
            jwks,
            json!({"keys": [{"kty": "EC", "crv": "P-256", "x": "d", "y": "e", "use": "sig",
                             "kid": "k1"}]})
        );
        assert_eq!(spiffe_jwt_keys(&json!({})), json!({"keys": []}));
    }

    #[test]
    fn settings_are_bounded() {
        assert!(FederationSettings::default().validate().is_ok());
        let s = FederationSettings {
            jwks_cache_ttl_secs: 5,
            ..Default::default()
        };
        assert!(s.validate().is_err());
        let s = FederationSettings {
            jwks_min_refetch_secs: 600,
            ..Default::default()
        };
        assert!(s.validate().is_err());
    }
}
