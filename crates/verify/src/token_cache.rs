//! Tokens that passed every check, keyed by a SHA-256 digest of the token, kept until `exp`, so
//! a repeated token costs a digest and a map lookup instead of a signature check.
//!
//! Revocation is not cached: the caller checks the revocation set on every hit. The map is
//! bounded; when full, expired entries go first, then arbitrary ones (an attacker can only
//! fill it with tokens that are valid, which they would need to have been issued).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;

use crate::principal::Principal;

/// What a hit needs for its revocation check and its answer.
#[derive(Debug)]
pub struct CachedToken {
    pub principal: Arc<Principal>,
    pub tenant: TenantId,
    pub kid: String,
    /// The token's `sid` (user tokens): a session revocation names it.
    pub sid: Option<Box<str>>,
    /// The token's refresh-token family (`family_id`, user tokens): a family revocation names it.
    pub family: Option<Box<str>>,
    /// The `jti`s of the tokens it was exchanged from (`exchanged_from`): revoking any of them
    /// revokes it.
    pub exchanged_from: Box<[String]>,
    pub issued_at: Timestamp,
    pub expires_at: Timestamp,
    /// The token's `aud` values: a hit is checked against the audience of the route at hand.
    pub audiences: Box<[String]>,
}

pub type Digest = [u8; 32];

pub fn digest(token: &str) -> Digest {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[derive(Debug)]
pub struct TokenCache {
    map: RwLock<HashMap<Digest, Arc<CachedToken>>>,
    capacity: usize,
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    /// The key `token` is cached under, or `None` when the cache is off: a verifier without a
    /// cache does not hash every token for nothing (the digest is a tenth of the work around
    /// the signature check: bench/BENCHMARKS.md, instruction profile).
    pub fn key_of(&self, token: &str) -> Option<Digest> {
        (self.capacity > 0).then(|| digest(token))
    }

    /// A cached token that has not expired at `now`.
    pub fn get(&self, d: &Digest, now: Timestamp) -> Option<Arc<CachedToken>> {
        if self.capacity == 0 {
            return None;
        }
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(d).filter(|c| c.expires_at > now).cloned()
    }

    pub fn insert(&self, d: Digest, entry: CachedToken, now: Timestamp) {
        if self.capacity == 0 {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.capacity {
            map.retain(|_, c| c.expires_at > now);
        }
        if map.len() >= self.capacity {
            // Still full of live tokens: drop about a quarter, in map order (arbitrary).
            let drop: Vec<Digest> = map.keys().take(self.capacity / 4 + 1).copied().collect();
            for k in drop {
                map.remove(&k);
            }
        }
        map.insert(d, Arc::new(entry));
    }

    /// Drops every cached token signed by this key (it was revoked).
    pub fn forget_kid(&self, kid: &str) {
        if self.capacity == 0 {
            return;
        }
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, c| c.kid != kid);
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::CredentialKind;

    fn entry(exp: i64) -> CachedToken {
        CachedToken {
            principal: Arc::new(Principal::new(CredentialKind::AccessToken, "s", "j")),
            tenant: TenantId::system(),
            kid: "k".into(),
            sid: None,
            family: None,
            exchanged_from: Box::new([]),
            issued_at: Timestamp::from_secs(0),
            expires_at: Timestamp::from_secs(exp),
            audiences: Box::new([]),
        }
    }

    #[test]
    fn a_disabled_cache_hashes_nothing_and_holds_nothing() {
        let off = TokenCache::new(0);
        assert_eq!(off.key_of("a.b.c"), None);
        off.insert(digest("a.b.c"), entry(100), Timestamp::from_secs(1));
        assert!(off.is_empty());
        assert!(off.get(&digest("a.b.c"), Timestamp::from_secs(1)).is_none());
    }

    #[test]
    fn an_enabled_cache_keys_by_the_whole_tokens_digest() {
        let on = TokenCache::new(10);
        let key = on.key_of("a.b.c").expect("enabled");
        assert_eq!(key, digest("a.b.c"));
        assert_ne!(on.key_of("a.b.d"), Some(key));
        on.insert(key, entry(100), Timestamp::from_secs(1));
        assert!(on.get(&key, Timestamp::from_secs(99)).is_some());
        assert!(on.get(&key, Timestamp::from_secs(100)).is_none(), "expired");
    }
}
