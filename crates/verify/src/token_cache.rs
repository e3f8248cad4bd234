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
