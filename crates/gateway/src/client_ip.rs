//! The client's address as the proxies in front of the gateway report it, for API-key IP
//! allowlists, rate limits and audit.
//!
//! Forwarding headers are lists every proxy appends to: `X-Forwarded-For: client, proxy1` (the
//! rightmost entry added by the proxy the gateway talks to), or RFC 7239's
//! `Forwarded: for=client, for=proxy1`. Whatever stands left of what a trusted proxy appended is
//! whatever the client sent, so the list is read from the right: the client is the rightmost
//! entry that is not itself a trusted proxy (every entry right of it was written by one). When
//! every entry is a trusted proxy, the leftmost. An entry that is not an address (`unknown`, an
//! obfuscated `_node`, garbage) where the reading stops leaves the address unknown (`None`),
//! never a guess. Headers are read at all only when the connecting peer is a trusted proxy; from
//! anyone else they are ignored. IPv4-mapped IPv6 addresses count as the IPv4 address they are.
//!
//! This module must never take an address from a request whose peer is not a trusted proxy, or
//! from left of an entry that no trusted proxy vouches for.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;
use serde::Deserialize;

/// `trusted_proxies`: the addresses (CIDRs or single addresses) of the proxies in front of the
/// gateway. Empty by default: no forwarding header is trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses `10.0.0.0/8`, `2001:db8::/32` and bare addresses. `/0` (everyone) is refused: it
    /// would let any client write its own address.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        items
            .iter()
            .map(|s| {
                let s = s.as_ref();
                let net = s
                    .parse::<IpNet>()
                    .ok()
                    .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
                    .map(|n| n.trunc())
                    .ok_or_else(|| format!("trusted_proxies: {s:?} is not an address or a CIDR"))?;
                if net.prefix_len() == 0 {
                    return Err(format!(
                        "trusted_proxies: {s:?} trusts every address; list the proxies"
                    ));
                }
                Ok(net)
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|n| n.contains(&ip))
    }
}

impl<'de> Deserialize<'de> for TrustedProxies {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<String>::deserialize(d)?;
        Self::parse(&items).map_err(serde::de::Error::custom)
    }
}

/// The client's address from the `name` header of a request whose connection came from `peer`
/// (module docs). `Forwarded` is read as RFC 7239 (`for=`), any other header as a
/// comma-separated list of addresses (`X-Forwarded-For`, `X-Real-IP`).
pub fn from_headers(
    headers: &HeaderMap,
    name: &str,
    peer: IpAddr,
    trusted: &TrustedProxies,
) -> Option<IpAddr> {
    if !trusted.contains(peer) {
        return None;
    }
    let rfc7239 = name.eq_ignore_ascii_case("forwarded");
    let mut walk = Walk::default();
    for value in headers.get_all(name) {
        let Ok(value) = value.to_str() else {
            walk.push(None, trusted);
            continue;
        };
        if rfc7239 {
            forwarded_elements(value, |node| walk.push(node, trusted));
        } else {
            value
                .split(',')
                .filter(|e| !e.trim().is_empty())
                .for_each(|e| walk.push(node(e), trusted));
        }
    }
    walk.result()
}

/// The rightmost-untrusted reading of a list, kept left to right so that a quoted `,` in a
/// `Forwarded` value is never mistaken for a separator.
#[derive(Default)]
struct Walk {
    /// The leftmost entry: the answer when every entry is trusted.
    first: Option<Option<IpAddr>>,
    /// The rightmost entry so far that is not a trusted address (`None` inside: not an address).
    last_untrusted: Option<Option<IpAddr>>,
}

impl Walk {
    fn push(&mut self, entry: Option<IpAddr>, trusted: &TrustedProxies) {
        self.first.get_or_insert(entry);
        if !entry.is_some_and(|ip| trusted.contains(ip)) {
            self.last_untrusted = Some(entry);
        }
    }

    fn result(self) -> Option<IpAddr> {
        self.last_untrusted.or(self.first).flatten()
    }
}

/// One node: an address, with or without a port (`192.0.2.1:80`, `[2001:db8::1]:80`), or a
/// bracketed IPv6 address. Anything else is not an address.
fn node(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    let ip = s
        .parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| {
            s.strip_prefix('[')
                .and_then(|r| r.strip_suffix(']'))
                .and_then(|r| r.parse::<Ipv6Addr>().ok())
                .map(IpAddr::V6)
        })?;
    Some(ip.to_canonical())
}

/// Calls `f` with the `for=` node of each element of a `Forwarded` value (RFC 7239 section 4);
/// `None` for an element without exactly one `for=` address.
fn forwarded_elements(value: &str, mut f: impl FnMut(Option<IpAddr>)) {
    let b = value.as_bytes();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for i in 0..=b.len() {
        if let Some(&c) = b.get(i) {
            if escaped {
                escaped = false;
            } else if quoted {
                match c {
                    b'\\' => escaped = true,
                    b'"' => quoted = false,
                    _ => {}
                }
            } else if c == b'"' {
                quoted = true;
            }
            if quoted || escaped || c != b',' {
                continue;
            }
        }
        let element = &value[start..i];
        start = i + 1;
        if !element.trim().is_empty() {
            f(for_node(element));
        }
    }
}

/// The `for=` node of one element; `None` when it is missing, repeated or not an address.
fn for_node(element: &str) -> Option<IpAddr> {
    let mut found = None;
    for pair in element.split(';') {
        let (k, v) = pair.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("for") {
            continue;
        }
        if found.is_some() {
            return None;
        }
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(v);
        found = Some(node(v)?);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn trusted(items: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(items).expect("parse")
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().expect("ip"))
    }

    fn read(name: &'static str, values: &[&'static str], t: &TrustedProxies) -> Option<IpAddr> {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name, HeaderValue::from_static(v));
        }
        from_headers(&h, name, "10.0.0.2".parse().expect("ip"), t)
    }

    #[test]
    fn trusted_proxies_parse_and_refuse_everyone() {
        let t = trusted(&["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]);
        assert!(t.contains("10.1.2.3".parse().expect("ip")));
        assert!(t.contains("::ffff:10.1.2.3".parse().expect("ip")));
        assert!(t.contains("192.0.2.7".parse().expect("ip")));
        assert!(!t.contains("192.0.2.8".parse().expect("ip")));
        assert!(t.contains("2001:db8::5".parse().expect("ip")));
        for bad in ["0.0.0.0/0", "::/0", "10.0.0.0/33", "example.com", ""] {
            assert!(TrustedProxies::parse(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn x_forwarded_for_is_read_from_the_right() {
        let t = trusted(&["10.0.0.0/8"]);
        let xff = "x-forwarded-for";
        // The client's own first entry is ignored: the proxy appended the real address.
        assert_eq!(read(xff, &["10.9.9.9, 203.0.113.7"], &t), ip("203.0.113.7"));
        assert_eq!(
            read(xff, &["1.1.1.1, 203.0.113.7, 10.0.0.1"], &t),
            ip("203.0.113.7")
        );
        assert_eq!(
            read(xff, &["1.1.1.1", "203.0.113.7, 10.0.0.1"], &t),
            ip("203.0.113.7")
        );
        assert_eq!(read(xff, &["203.0.113.7:4711"], &t), ip("203.0.113.7"));
        assert_eq!(read(xff, &["[2001:db8::7]:80"], &t), ip("2001:db8::7"));
        assert_eq!(read(xff, &["::ffff:203.0.113.7"], &t), ip("203.0.113.7"));
        // Every entry trusted: the leftmost.
        assert_eq!(read(xff, &["10.0.0.9, 10.0.0.1"], &t), ip("10.0.0.9"));
        // Not an address where the reading stops: unknown, not the entry left of it.
        assert_eq!(read(xff, &["203.0.113.7, unknown"], &t), None);
        assert_eq!(read(xff, &["203.0.113.7, garbage, 10.0.0.1"], &t), None);
        assert_eq!(read(xff, &["garbage, 203.0.113.7"], &t), ip("203.0.113.7"));
        assert_eq!(read(xff, &[], &t), None);
        assert_eq!(read(xff, &[" , "], &t), None);
    }

    #[test]
    fn only_a_trusted_peer_is_listened_to() {
        let mut h = HeaderMap::new();
        h.insert("x-real-ip", HeaderValue::from_static("203.0.113.7"));
        let t = trusted(&["10.0.0.0/8"]);
        let from = |peer: &str| from_headers(&h, "x-real-ip", peer.parse().expect("ip"), &t);
        assert_eq!(from("10.0.0.2"), ip("203.0.113.7"));
        assert_eq!(from("::ffff:10.0.0.2"), ip("203.0.113.7"));
        assert_eq!(from("198.51.100.1"), None);
        let nobody = TrustedProxies::default();
        assert_eq!(
            from_headers(&h, "x-real-ip", "10.0.0.2".parse().expect("ip"), &nobody),
            None
        );
    }

    #[test]
    fn forwarded_is_read_as_rfc7239() {
        let t = trusted(&["10.0.0.0/8"]);
        let fwd = "forwarded";
        assert_eq!(
            read(fwd, &["for=10.9.9.9, for=203.0.113.7"], &t),
            ip("203.0.113.7")
        );
        assert_eq!(
            read(
                fwd,
                &["for=192.0.2.1;proto=https, For=\"[2001:db8:cafe::17]:4711\";by=10.0.0.1"],
                &t
            ),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(
            read(fwd, &["for=\"203.0.113.7:80\"", "for=10.0.0.1"], &t),
            ip("203.0.113.7")
        );
        // A quoted ',' is not a separator: the client's one element stays one element.
        assert_eq!(
            read(
                fwd,
                &["for=\"10.0.0.5, for=10.0.0.6\", for=203.0.113.7"],
                &t
            ),
            ip("203.0.113.7")
        );
        assert_eq!(read(fwd, &["for=\"x,y\", for=10.0.0.1"], &t), None);
        assert_eq!(read(fwd, &["for=203.0.113.7, for=unknown"], &t), None);
        assert_eq!(read(fwd, &["for=203.0.113.7, for=_hidden"], &t), None);
        assert_eq!(read(fwd, &["for=203.0.113.7, proto=http"], &t), None);
        assert_eq!(
            read(fwd, &["for=203.0.113.7, for=1.1.1.1;for=10.0.0.1"], &t),
            None
        );
        assert_eq!(read(fwd, &["for=203.0.113.7, junk"], &t), None);
        assert_eq!(read(fwd, &["for=10.0.0.7"], &t), ip("10.0.0.7"));
    }
}
