//! Credential stuffing and password spraying, recognised from failed sign-ins on this node:
//!
//! * stuffing: one source fails on many different accounts within the window;
//! * spraying: one password fails on many different accounts within the window. The password is
//!   compared as an HMAC-SHA256 digest under a key derived from the KEK file, never kept or
//!   compared in plaintext, and the digest never leaves memory.
//!
//! Each pattern is reported once when its count of distinct accounts reaches the threshold (and
//! again if it starts over after a quiet window). The tables are bounded like the throttle's.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use portcullis_core::secret::Secret;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;

use super::counters::source_key;

#[derive(Debug, Default)]
struct Seen {
    accounts: HashSet<String>,
    last: Option<Timestamp>,
}

/// What a failure completed.
#[derive(Debug, Default)]
pub(crate) struct Found {
    pub stuffing: Option<usize>,
    pub spraying: Option<usize>,
}

pub(crate) struct Patterns {
    key: aws_lc_rs::hmac::Key,
    stuffing_at: usize,
    spraying_at: usize,
    window: Duration,
    max_entries: usize,
    by_source: Mutex<HashMap<String, Seen>>,
    by_password: Mutex<HashMap<[u8; 32], Seen>>,
}

impl std::fmt::Debug for Patterns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Patterns")
            .field("stuffing_at", &self.stuffing_at)
            .field("spraying_at", &self.spraying_at)
            .finish_non_exhaustive()
    }
}

impl Patterns {
    pub(crate) fn new(
        key: aws_lc_rs::hmac::Key,
        stuffing_at: u32,
        spraying_at: u32,
        window: Duration,
        max_entries: usize,
    ) -> Self {
        Self {
            key,
            stuffing_at: usize::try_from(stuffing_at).unwrap_or(usize::MAX),
            spraying_at: usize::try_from(spraying_at).unwrap_or(usize::MAX),
            window,
            max_entries,
            by_source: Mutex::new(HashMap::new()),
            by_password: Mutex::new(HashMap::new()),
        }
    }

    /// Notes a failed sign-in; returns the patterns it just completed.
    pub(crate) fn failed(
        &self,
        tenant: &TenantId,
        ip: Option<IpAddr>,
        account: &str,
        password: &Secret<String>,
        now: Timestamp,
    ) -> Found {
        let mut found = Found::default();
        if ip.is_some() {
            let mut t = self.by_source.lock().unwrap_or_else(|p| p.into_inner());
            let n = self.note(&mut t, source_key(ip), account, now);
            found.stuffing = (n == self.stuffing_at).then_some(n);
        }
        let digest = self.digest(tenant, password);
        let mut t = self.by_password.lock().unwrap_or_else(|p| p.into_inner());
        let n = self.note(&mut t, digest, account, now);
        found.spraying = (n == self.spraying_at).then_some(n);
        found
    }

    fn digest(&self, tenant: &TenantId, password: &Secret<String>) -> [u8; 32] {
        let normal = portcullis_core::password::normalize(password);
        let mut input = tenant.as_str().as_bytes().to_vec();
        input.push(0);
        input.extend_from_slice(normal.expose().as_bytes());
        let tag = aws_lc_rs::hmac::sign(&self.key, &input);
        let mut out = [0u8; 32];
        out.copy_from_slice(tag.as_ref());
        out
    }

    /// Adds `account` to the key's set; returns the set's size.
    fn note<K: std::hash::Hash + Eq>(
        &self,
        table: &mut HashMap<K, Seen>,
        key: K,
        account: &str,
        now: Timestamp,
    ) -> usize {
        let fresh = |s: &Seen| s.last.is_some_and(|l| now.saturating_sub(self.window) < l);
        if table.len() >= self.max_entries && !table.contains_key(&key) {
            table.retain(|_, s| fresh(s));
            if table.len() >= self.max_entries {
                table.clear();
            }
        }
        let seen = table.entry(key).or_default();
        if !fresh(seen) {
            seen.accounts.clear();
        }
        seen.last = Some(now);
        if seen.accounts.len() < 10_000 {
            seen.accounts.insert(account.to_owned());
        }
        seen.accounts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns() -> Patterns {
        Patterns::new(
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &[7; 32]),
            3,
            3,
            Duration::from_secs(900),
            100,
        )
    }

    #[test]
    fn many_accounts_from_one_source_and_one_password_over_many_accounts_are_found_once() {
        let p = patterns();
        let t = TenantId::parse("acme").expect("tenant");
        let ip: Option<IpAddr> = Some("198.51.100.7".parse().expect("ip"));
        let pw = Secret::new("Summer2024!".to_owned());
        let now = Timestamp::from_secs(1000);
        let mut stuffing = Vec::new();
        let mut spraying = Vec::new();
        for a in ["a", "b", "b", "c", "d"] {
            let f = p.failed(&t, ip, a, &pw, now);
            stuffing.push(f.stuffing);
            spraying.push(f.spraying);
        }
        assert_eq!(stuffing, [None, None, None, Some(3), None]);
        assert_eq!(spraying, [None, None, None, Some(3), None]);
        // Different passwords from unknown sources: neither pattern.
        let q = patterns();
        for (a, pw) in [("a", "x1"), ("b", "x2"), ("c", "x3")] {
            let f = q.failed(&t, None, a, &Secret::new(pw.to_owned()), now);
            assert!(f.stuffing.is_none() && f.spraying.is_none());
        }
    }
}
