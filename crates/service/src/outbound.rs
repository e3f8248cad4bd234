//! The one rule for where this server may connect on its own initiative (webhook deliveries,
//! back-channel logout requests): which addresses count as public, and a DNS resolver that
//! drops every address a policy does not allow, so a name that resolves (now or after a DNS
//! change) to an internal address is refused when connecting, not only when registered.
//!
//! This module must never let a non-public address through unless its [`AddressPolicy`] says
//! so, and must never depend on another module of this crate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Whether an address is reachable on the public internet: not loopback, private, link-local,
/// shared (CGNAT), unspecified, broadcast, multicast, documentation, benchmarking or reserved;
/// IPv4-mapped and IPv4-compatible IPv6 addresses are judged as the IPv4 address they carry.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            is_public_v6(v6)
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] == 0 && s[1..6].iter().all(|x| *x == 0)))
}

/// Which non-public addresses a connection may still reach (both off: public only).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    /// Private, loopback, link-local and other non-public addresses (closed networks).
    pub private: bool,
    /// Loopback addresses only (tests and local development).
    pub loopback: bool,
}

impl AddressPolicy {
    pub fn allows(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.private || (self.loopback && ip.is_loopback())
    }
}

/// A resolver answering only the addresses its policy allows; a name with none left fails.
#[derive(Debug, Clone, Copy)]
pub struct FilteringResolver(pub AddressPolicy);

impl reqwest::dns::Resolve for FilteringResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0;
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| policy.allows(a.ip()))
                .collect();
            if found.is_empty() {
                return Err("the host resolves to no address this server may connect to".into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "198.18.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "::10.0.0.1",
            "fc00::1",
            "fd00::1",
            "fe80::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().expect("ip")), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "2606:2800:220:1:248:1893:25c8:1946",
        ] {
            assert!(is_public(ip.parse().expect("ip")), "{ip}");
        }
    }

    /// The rule holds at connection time: a name that resolves only to loopback (as `localhost`
    /// does) yields no address under the strict policy, and only loopback ones when allowed.
    #[tokio::test]
    async fn the_resolver_drops_what_the_policy_does_not_allow() {
        use reqwest::dns::Resolve;
        let name = |n: &str| n.parse::<reqwest::dns::Name>().expect("name");
        let strict = FilteringResolver(AddressPolicy::default());
        assert!(strict.resolve(name("localhost")).await.is_err());
        let loopback = FilteringResolver(AddressPolicy {
            private: false,
            loopback: true,
        });
        let found: Vec<SocketAddr> = loopback
            .resolve(name("localhost"))
            .await
            .expect("loopback allowed")
            .collect();
        assert!(!found.is_empty());
        assert!(found.iter().all(|a| a.ip().is_loopback()), "{found:?}");
    }

    #[test]
    fn a_policy_opens_only_what_it_names() {
        let lo: IpAddr = "127.0.0.1".parse().expect("ip");
        let private: IpAddr = "10.0.0.1".parse().expect("ip");
        let public: IpAddr = "1.1.1.1".parse().expect("ip");
        let strict = AddressPolicy::default();
        assert!(strict.allows(public) && !strict.allows(lo) && !strict.allows(private));
        let loopback = AddressPolicy {
            private: false,
            loopback: true,
        };
        assert!(loopback.allows(lo) && !loopback.allows(private));
        let closed = AddressPolicy {
            private: true,
            loopback: false,
        };
        assert!(closed.allows(lo) && closed.allows(private));
    }
}
