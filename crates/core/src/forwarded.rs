//! Which address a request came from when it may have passed through reverse proxies: the one
//! rule for reading `X-Forwarded-For` or `Forwarded` (RFC 7239), for every Portcullis listener.
//!
//! A forwarding header is believed only when the connecting peer is a configured trusted proxy.
//! Each proxy appends the address it saw, so the entries to the right were written by proxies we
//! trust and everything to their left by whoever sent the request. The client is therefore the
//! rightmost entry that is not itself a trusted proxy; the walk stops there, so entries a client
//! puts on the left (a spoofed "original" address, garbage) are never read. An entry the walk
//! must read that is not an address (`unknown`, an obfuscated identifier, malformed text) makes
//! the answer the peer: garbage is never trusted. When every entry is a trusted proxy the
//! leftmost one is the client (a request that started inside the proxy tier).
//!
//! Only one header kind is read, chosen by configuration ([`ForwardedHeader`]): a proxy that
//! writes `X-Forwarded-For` passes a client's `Forwarded` header through untouched (and the
//! reverse), so believing whichever is present would let any client choose its address.
//!
//! This module must never do I/O, and never believe a header from a peer outside the trusted
//! set; the HTTP edge hands it the peer and the raw header values.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The forwarding header a deployment's proxies write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: <client>, <proxy1>, ...` (nginx, HAProxy `option forwardfor`, Envoy,
    /// Traefik, Caddy, cloud load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=<client>;proto=https, for=<proxy1>` (RFC 7239).
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name, lowercase.
    pub fn name(self) -> &'static str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
        }
    }
}

/// The proxies whose forwarding headers are believed. Empty (the default): none are.
///
/// Written as CIDR blocks or single addresses. A block with host bits set (`10.1.2.3/8`) and a
/// block that holds every address (`0.0.0.0/0`, `::/0`) are refused: the first is usually a
/// typo, the second would let anyone choose their address.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ProxyList", into = "Vec<String>")]
pub struct TrustedProxies(Vec<IpNet>);

/// Why a trusted-proxy entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustedProxyError {
    #[error("{0:?} is not an IP address or CIDR block")]
    NotAnAddress(String),
    #[error("{entry:?} has host bits set; did you mean {network}?")]
    HostBits { entry: String, network: IpNet },
    #[error("{0:?} holds every address: forwarding headers from anyone would be believed")]
    Everything(String),
}

impl TrustedProxies {
    /// No trusted proxies: forwarding headers are never read.
    pub const fn none() -> Self {
        Self(Vec::new())
    }

    /// Parses CIDR blocks and addresses.
    pub fn parse<'a>(
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, TrustedProxyError> {
        entries
            .into_iter()
            .map(|raw| {
                let entry = raw.trim();
                let net = IpNet::from_str(entry)
                    .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                    .map_err(|_| TrustedProxyError::NotAnAddress(entry.to_owned()))?;
                if net.prefix_len() == 0 {
                    return Err(TrustedProxyError::Everything(entry.to_owned()));
                }
                if net.trunc() != net {
                    return Err(TrustedProxyError::HostBits {
                        entry: entry.to_owned(),
                        network: net.trunc(),
                    });
                }
                Ok(net)
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `ip` (an IPv4-mapped IPv6 address counts as its IPv4 address) is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How trusted proxies are written in configuration: a list, or one string of entries separated
/// by commas or spaces (convenient in an environment variable).
#[derive(Deserialize)]
#[serde(untagged)]
enum ProxyList {
    Many(Vec<String>),
    One(String),
}

impl TryFrom<ProxyList> for TrustedProxies {
    type Error = TrustedProxyError;

    fn try_from(list: ProxyList) -> Result<Self, Self::Error> {
        match &list {
            ProxyList::Many(v) => Self::parse(v.iter().map(String::as_str)),
            ProxyList::One(s) => Self::parse(
                s.split(|c: char| c == ',' || c.is_ascii_whitespace())
                    .filter(|e| !e.is_empty()),
            ),
        }
    }
}

impl From<TrustedProxies> for Vec<String> {
    fn from(t: TrustedProxies) -> Self {
        t.0.iter().map(IpNet::to_string).collect()
    }
}

/// The client's address: `peer` itself unless `peer` is a trusted proxy, then what the `header`
/// values (in the order they arrived) say, by the rule in the module documentation. IPv4-mapped
/// IPv6 addresses are answered as IPv4.
pub fn client_address<'a, I>(
    peer: IpAddr,
    trusted: &TrustedProxies,
    header: ForwardedHeader,
    values: I,
) -> IpAddr
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: DoubleEndedIterator,
{
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let mut leftmost_proxy = peer;
    for line in values.into_iter().rev() {
        for entry in line.rsplit(|b| *b == b',') {
            let parsed = std::str::from_utf8(entry).ok().and_then(|e| match header {
                ForwardedHeader::XForwardedFor => x_forwarded_for_entry(e),
                ForwardedHeader::Forwarded => forwarded_element(e),
            });
            let Some(ip) = parsed.map(|ip| ip.to_canonical()) else {
                return peer;
            };
            if !trusted.contains(ip) {
                return ip;
            }
            leftmost_proxy = ip;
        }
    }
    leftmost_proxy
}

/// Optional whitespace (RFC 9110 section 5.6.3).
fn trim_ows(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

/// One `X-Forwarded-For` entry: an address, optionally with a port (`192.0.2.1:4711`,
/// `[2001:db8::1]:4711`) or in brackets (`[2001:db8::1]`), as proxies write them.
fn x_forwarded_for_entry(entry: &str) -> Option<IpAddr> {
    let entry = trim_ows(entry);
    if let Ok(ip) = IpAddr::from_str(entry) {
        return Some(ip);
    }
    if let Ok(addr) = SocketAddr::from_str(entry) {
        return Some(addr.ip());
    }
    entry
        .strip_prefix('[')?
        .strip_suffix(']')
        .and_then(|v6| Ipv6Addr::from_str(v6).ok())
        .map(IpAddr::V6)
}

/// The `for` address of one `Forwarded` element (`for=192.0.2.60;proto=http;by=...`). The
/// element must be well formed and name exactly one `for`, and it must be an address.
fn forwarded_element(element: &str) -> Option<IpAddr> {
    let mut found = None;
    for pair in element.split(';') {
        let pair = trim_ows(pair);
        if pair.is_empty() {
            continue;
        }
        let (name, value) = pair.split_once('=')?;
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return None;
        }
        let value = forwarded_value(value)?;
        if name.eq_ignore_ascii_case("for") {
            if found.is_some() {
                return None;
            }
            found = Some(forwarded_node(&value)?);
        }
    }
    found
}

/// A `token` or a `quoted-string` (RFC 9110 section 5.6), unquoted.
fn forwarded_value(value: &str) -> Option<String> {
    let Some(quoted) = value.strip_prefix('"') else {
        return (!value.is_empty() && value.bytes().all(is_tchar)).then(|| value.to_owned());
    };
    let inner = quoted.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c if c.is_control() && c != '\t' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

/// RFC 7239 `node` as an address: `192.0.2.43`, `192.0.2.43:47011`, `[2001:db8::17]`,
/// `[2001:db8::17]:47011`. `unknown` and obfuscated identifiers (`_hidden`) are not addresses.
fn forwarded_node(node: &str) -> Option<IpAddr> {
    let (host, port) = match node.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':')?),
            };
            (IpAddr::V6(Ipv6Addr::from_str(v6).ok()?), port)
        }
        None => {
            let (v4, port) = match node.split_once(':') {
                Some((v4, p)) => (v4, Some(p)),
                None => (node, None),
            };
            (IpAddr::V4(Ipv4Addr::from_str(v4).ok()?), port)
        }
    };
    match port {
        None => Some(host),
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) => {
            Some(host)
        }
        Some(_) => None,
    }
}

/// `tchar` (RFC 9110 section 5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(list.iter().copied()).expect("proxies")
    }

    /// The answer for `peer` sending these header lines, behind proxies in 10.0.0.0/8.
    fn resolve(header: ForwardedHeader, peer: &str, lines: &[&str]) -> IpAddr {
        client_address(
            ip(peer),
            &proxies(&["10.0.0.0/8", "2001:db8:ffff::/48"]),
            header,
            lines.iter().map(|l| l.as_bytes()),
        )
    }

    fn xff(peer: &str, lines: &[&str]) -> IpAddr {
        resolve(ForwardedHeader::XForwardedFor, peer, lines)
    }

    fn fwd(peer: &str, lines: &[&str]) -> IpAddr {
        resolve(ForwardedHeader::Forwarded, peer, lines)
    }

    #[test]
    fn a_header_from_an_untrusted_peer_is_ignored() {
        assert_eq!(xff("198.51.100.7", &["203.0.113.9"]), ip("198.51.100.7"));
        assert_eq!(
            fwd("198.51.100.7", &["for=203.0.113.9"]),
            ip("198.51.100.7")
        );
        // No proxies configured: nobody's header is read.
        let none = TrustedProxies::none();
        let got = client_address(
            ip("10.0.0.1"),
            &none,
            ForwardedHeader::XForwardedFor,
            [b"203.0.113.9".as_slice()],
        );
        assert_eq!(got, ip("10.0.0.1"));
    }

    #[test]
    fn a_trusted_peer_forwards_the_rightmost_untrusted_entry() {
        assert_eq!(xff("10.0.0.5", &["203.0.113.9"]), ip("203.0.113.9"));
        // A chain of trusted proxies is walked through.
        assert_eq!(
            xff("10.0.0.5", &["203.0.113.9, 10.0.0.7,10.0.0.6"]),
            ip("203.0.113.9")
        );
        // Several header lines are one list, in order.
        assert_eq!(
            xff("10.0.0.5", &["198.51.100.1", "203.0.113.9, 10.0.0.7"]),
            ip("203.0.113.9")
        );
        // No header: the peer.
        assert_eq!(xff("10.0.0.5", &[]), ip("10.0.0.5"));
    }

    #[test]
    fn a_spoofed_leftmost_entry_is_ignored() {
        // The client sent "X-Forwarded-For: 192.0.2.1"; the proxy appended what it saw.
        assert_eq!(
            xff("10.0.0.5", &["192.0.2.1, 203.0.113.9"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            xff("10.0.0.5", &["192.0.2.1", "203.0.113.9"]),
            ip("203.0.113.9")
        );
        // Even a spoofed trusted address on the left is never reached.
        assert_eq!(
            xff("10.0.0.5", &["10.0.0.9, 203.0.113.9"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            fwd("10.0.0.5", &["for=192.0.2.1, for=203.0.113.9;proto=https"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn garbage_where_the_walk_reads_falls_back_to_the_peer() {
        for line in [
            "",
            " ",
            ",",
            "203.0.113.9,",
            "203.0.113.9, unknown",
            "203.0.113.9, not-an-address",
            "203.0.113.9, 999.1.1.1",
            "203.0.113.9, fe80::1%eth0",
            "203.0.113.9, 10.0.0.7 10.0.0.8",
            "203.0.113.9, [2001:db8::1",
            "203.0.113.9, 203.0.113.10:99999",
        ] {
            assert_eq!(xff("10.0.0.5", &[line]), ip("10.0.0.5"), "{line:?}");
        }
        // Bytes that are not text.
        let got = client_address(
            ip("10.0.0.5"),
            &proxies(&["10.0.0.0/8"]),
            ForwardedHeader::XForwardedFor,
            [b"203.0.113.9, \xff\xfe".as_slice()],
        );
        assert_eq!(got, ip("10.0.0.5"));
    }

    #[test]
    fn garbage_left_of_the_answer_is_never_read() {
        assert_eq!(
            xff("10.0.0.5", &["\"quoted\";junk, unknown, 203.0.113.9"]),
            ip("203.0.113.9")
        );
        let got = client_address(
            ip("10.0.0.5"),
            &proxies(&["10.0.0.0/8"]),
            ForwardedHeader::XForwardedFor,
            [b"\xff\xfe".as_slice(), b"203.0.113.9".as_slice()],
        );
        assert_eq!(got, ip("203.0.113.9"));
        assert_eq!(
            fwd("10.0.0.5", &["for=\"unbalanced, for=203.0.113.9"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn when_every_entry_is_a_trusted_proxy_the_leftmost_is_the_client() {
        assert_eq!(xff("10.0.0.5", &["10.0.0.8, 10.0.0.7"]), ip("10.0.0.8"));
    }

    #[test]
    fn x_forwarded_for_entries_may_carry_ports_and_brackets() {
        for (entry, want) in [
            ("203.0.113.9:4711", "203.0.113.9"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
            ("  203.0.113.9\t", "203.0.113.9"),
        ] {
            assert_eq!(xff("10.0.0.5", &[entry]), ip(want), "{entry}");
        }
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        // A dual-stack listener reports an IPv4 proxy as ::ffff:10.0.0.5.
        assert_eq!(xff("::ffff:10.0.0.5", &["203.0.113.9"]), ip("203.0.113.9"));
        assert_eq!(xff("10.0.0.5", &["::ffff:203.0.113.9"]), ip("203.0.113.9"));
        assert_eq!(xff("::ffff:198.51.100.7", &[]), ip("198.51.100.7"));
        // IPv6 proxies are matched by their own blocks.
        assert_eq!(
            xff("2001:db8:ffff::1", &["2001:db8:1::9"]),
            ip("2001:db8:1::9")
        );
    }

    #[test]
    fn forwarded_elements_are_read_strictly() {
        for (line, want) in [
            ("for=203.0.113.9", "203.0.113.9"),
            ("For=203.0.113.9;proto=https;by=10.0.0.5", "203.0.113.9"),
            ("proto=https;for=\"203.0.113.9:4711\"", "203.0.113.9"),
            ("for=\"[2001:db8:cafe::17]\"", "2001:db8:cafe::17"),
            ("for=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17"),
            ("for=203.0.113.9, for=10.0.0.7", "203.0.113.9"),
            ("for=203.0.113.9;;host=\"example.com\"", "203.0.113.9"),
            ("for=\"203.0.113.\\9\"", "203.0.113.9"),
        ] {
            assert_eq!(fwd("10.0.0.5", &[line]), ip(want), "{line}");
        }
        for line in [
            "for=unknown",
            "for=_hidden",
            "for=\"_hidden:_port\"",
            "proto=https",
            "for=203.0.113.9;for=203.0.113.10",
            "for=\"2001:db8::17\"",
            "for=[2001:db8::17]",
            "for=\"203.0.113.9",
            "for=\"203.0.\"113.9\"",
            "for=203.0.113.9;proto",
            "for=203.0.113.9;=x",
            "for=203.0.113.9;pr oto=x",
            "for=",
            "for=203.0.113.9:",
            "for=\"203.0.113.9:http\"",
            "203.0.113.9",
        ] {
            assert_eq!(fwd("10.0.0.5", &[line]), ip("10.0.0.5"), "{line:?}");
        }
    }

    #[test]
    fn trusted_proxies_parse_blocks_and_addresses_and_refuse_mistakes() {
        let t = proxies(&["10.0.0.0/8", " 192.0.2.7 ", "2001:db8::/32"]);
        assert!(t.contains(ip("10.255.0.1")));
        assert!(t.contains(ip("192.0.2.7")));
        assert!(!t.contains(ip("192.0.2.8")));
        assert!(t.contains(ip("2001:db8::5")));
        assert!(t.contains(ip("::ffff:10.0.0.1")));
        assert!(!TrustedProxies::none().contains(ip("10.0.0.1")));
        assert!(TrustedProxies::none().is_empty());

        let err = |e: &str| TrustedProxies::parse([e]).expect_err(e);
        assert_eq!(
            err("nonsense"),
            TrustedProxyError::NotAnAddress("nonsense".into())
        );
        assert_eq!(
            err("10.0.0.0/33"),
            TrustedProxyError::NotAnAddress("10.0.0.0/33".into())
        );
        assert_eq!(
            err("10.1.2.3/8").to_string(),
            "\"10.1.2.3/8\" has host bits set; did you mean 10.0.0.0/8?"
        );
        assert!(matches!(err("0.0.0.0/0"), TrustedProxyError::Everything(_)));
        assert!(matches!(err("::/0"), TrustedProxyError::Everything(_)));
    }

    #[test]
    fn trusted_proxies_deserialize_from_a_list_or_one_string() {
        let from_list: TrustedProxies =
            serde_json::from_str(r#"["10.0.0.0/8", "192.0.2.7"]"#).expect("list");
        let from_string: TrustedProxies =
            serde_json::from_str(r#""10.0.0.0/8, 192.0.2.7""#).expect("string");
        assert_eq!(from_list, from_string);
        assert_eq!(
            serde_json::to_value(&from_list).expect("json"),
            serde_json::json!(["10.0.0.0/8", "192.0.2.7/32"])
        );
        let e = serde_json::from_str::<TrustedProxies>(r#"["10.0.0.0/8", "x"]"#)
            .expect_err("bad entry");
        assert!(e.to_string().contains("\"x\" is not an IP address"), "{e}");
        assert_eq!(
            serde_json::from_str::<ForwardedHeader>(r#""x-forwarded-for""#).expect("xff"),
            ForwardedHeader::XForwardedFor
        );
        assert_eq!(
            serde_json::from_str::<ForwardedHeader>(r#""forwarded""#).expect("fwd"),
            ForwardedHeader::Forwarded
        );
        assert!(serde_json::from_str::<ForwardedHeader>(r#""x-real-ip""#).is_err());
    }
}
