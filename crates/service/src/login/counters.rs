//! The throttle's counts on this node: failures per source (an IPv4 address or an IPv6 /64)
//! and per account key, bounded in size. When a table is full, entries whose failures are past
//! the window are dropped first; if it is still full, the whole table starts over (a flood of
//! made-up names can cost the throttle its memory of older failures, never memory without bound
//! and never the owner's access).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use portcullis_core::sign_in_throttle::{Failures, ThrottlePolicy};
use portcullis_core::time::Timestamp;

/// A source: the address, or the first 64 bits of an IPv6 one; `None` when unknown.
pub(crate) fn source_key(ip: Option<IpAddr>) -> String {
    match ip {
        Some(IpAddr::V4(a)) => a.to_string(),
        Some(IpAddr::V6(a)) => {
            let s = a.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => "unknown".to_owned(),
    }
}

#[derive(Debug, Default)]
struct Tables {
    sources: HashMap<String, Failures>,
    accounts: HashMap<String, Failures>,
}

#[derive(Debug)]
pub(crate) struct Counters {
    max_entries: usize,
    tables: Mutex<Tables>,
}

impl Counters {
    pub(crate) fn new(max_entries: usize) -> Self {
        Self {
            max_entries,
            tables: Mutex::new(Tables::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The source's and the account's failures.
    pub(crate) fn get(&self, ip: Option<IpAddr>, account: &str) -> (Failures, Failures) {
        let t = self.lock();
        (
            t.sources.get(&source_key(ip)).copied().unwrap_or_default(),
            t.accounts.get(account).copied().unwrap_or_default(),
        )
    }

    pub(crate) fn fail(
        &self,
        ip: Option<IpAddr>,
        account: &str,
        policy: &ThrottlePolicy,
        now: Timestamp,
    ) {
        let mut t = self.lock();
        let max = self.max_entries;
        bump(&mut t.sources, source_key(ip), policy, now, max);
        bump(&mut t.accounts, account.to_owned(), policy, now, max);
    }

    /// A correct password: the source's and the account's failures are forgotten.
    pub(crate) fn succeeded(&self, ip: Option<IpAddr>, account: &str) {
        let mut t = self.lock();
        t.sources.remove(&source_key(ip));
        t.accounts.remove(account);
    }
}

fn bump(
    table: &mut HashMap<String, Failures>,
    key: String,
    policy: &ThrottlePolicy,
    now: Timestamp,
    max: usize,
) {
    if table.len() >= max && !table.contains_key(&key) {
        table.retain(|_, f| f.current(policy, now).count > 0);
        if table.len() >= max {
            table.clear();
        }
    }
    let f = table.entry(key).or_default();
    *f = f.add(policy, now);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_source_is_its_slash_64_and_tables_stay_bounded() {
        let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().expect("ip");
        assert_eq!(source_key(Some(a)), source_key(Some(b)));
        let c = Counters::new(3);
        let p = ThrottlePolicy::default();
        for n in 0..10 {
            c.fail(None, &format!("acct{n}"), &p, Timestamp::from_secs(n));
        }
        assert!(c.lock().accounts.len() <= 3);
        assert_eq!(c.get(None, "acct9").1.count, 1);
    }
}
