//! Which network an address belongs to, for rules that ask "was this seen from another
//! network": the new-network detectors (a credential or refresh family used from a network it
//! was never seen on) and the hygiene report's `many_networks`. One rule, so an address the
//! detectors call "known" is never "another network" in the report, or the other way round.
//!
//! The network is an IPv4 /24 or an IPv6 /64 (the prefix the detectors document: a /64 is one
//! subscriber's allocation, the same unit the sign-in and client-authentication throttles count
//! a source by), written as a network (`198.51.100.0/24`, `2001:db8:9::/64`). An IPv4 address
//! mapped into IPv6 is the IPv4 address.
//!
//! This module must never decide anything itself (whether a network is new, whether a source is
//! throttled): it only names the network.

use std::net::{IpAddr, Ipv6Addr};

/// The /24 (IPv4) or /64 (IPv6) `ip` belongs to, written as a network. See the module docs.
pub fn network_of(ip: IpAddr) -> String {
    match network_base(ip) {
        base @ IpAddr::V4(_) => format!("{base}/24"),
        base @ IpAddr::V6(_) => format!("{base}/64"),
    }
}

/// The first address of the network `ip` belongs to (an IPv4-mapped address as IPv4): what
/// [`network_of`] names, kept as an address where a string per use would cost an allocation.
pub fn network_base(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(ip: &str) -> String {
        network_of(ip.parse().expect("address"))
    }

    #[test]
    fn addresses_group_by_ipv4_24_and_ipv6_64() {
        assert_eq!(net("10.1.2.3"), "10.1.2.0/24");
        assert_eq!(net("10.1.2.250"), "10.1.2.0/24");
        assert_ne!(net("10.1.3.3"), net("10.1.2.3"));
        assert_eq!(net("::ffff:10.1.2.3"), "10.1.2.0/24", "mapped IPv4 is IPv4");
        assert_eq!(net("2001:db8:1:2::5"), "2001:db8:1:2::/64");
        assert_eq!(net("2001:db8:1:2:ffff::1"), net("2001:db8:1:2::5"));
        // Not a /48: two /64s of one site are two networks.
        assert_ne!(net("2001:db8:1:3::5"), net("2001:db8:1:2::5"));
        assert_eq!(net("2001:db8:9::1"), "2001:db8:9::/64");
        // The base address is the network's first address, and names the same network.
        for ip in ["10.1.2.3", "::ffff:10.1.2.3", "2001:db8:1:2:ffff::1"] {
            let ip: IpAddr = ip.parse().expect("address");
            assert_eq!(network_of(network_base(ip)), network_of(ip));
        }
        assert_eq!(
            network_base("::ffff:10.1.2.3".parse().expect("address")),
            IpAddr::from([10, 1, 2, 0])
        );
    }
}
