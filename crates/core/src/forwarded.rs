//! Which address a request came from when it may have passed through reverse proxies: the one
//! rule for reading a forwarding header (`X-Forwarded-For` and headers written like it, or
//! `Forwarded`, RFC 7239), for every Portcullis listener: `serve`'s HTTP edge and the gateway's
//! forward-auth endpoint alike.
//!
//! A forwarding header is believed only when the connecting peer is a configured trusted proxy.
//! Each proxy appends the address it saw, so the entries to the right were written by proxies we
//! trust and everything to their left by whoever sent the request. The client is therefore the
//! rightmost entry that is not itself a trusted proxy; the walk stops there, so entries a client
//! puts on the left (a spoofed "original" address, garbage, an unbalanced quote) are never read.
//! When every entry is a trusted proxy the leftmost one is the client (a request that started
//! inside the proxy tier).
//!
//! The answer is unknown (`None`), never a guess, when the entry where the walk stops is not an
//! address (`unknown`, an obfuscated `_hidden` node, an empty or malformed entry) and when a
//! trusted proxy sends no entry at all. Answering the proxy's own address instead would let an
//! allowlist naming the proxy admit every client behind it, and would write the proxy into the
//! audit log as if it were the client. Callers fail closed on unknown: an API key with an IP
//! allowlist is refused, the audit log records no address, and throttles count every unknown
//! request as one shared source.
//!
//! Only one header is read, chosen by configuration ([`ForwardedHeader`]): a proxy that writes
//! `X-Forwarded-For` passes a client's `Forwarded` header through untouched (and the reverse), so
//! believing whichever is present would let any client choose its address. `Forwarded` is read
//! as RFC 7239 (a `,` or `;` inside a quoted string separates nothing); any other header as a
//! comma-separated list of addresses.
//!
//! This module must never do I/O, never believe a header from a peer outside the trusted set,
//! and never read an entry left of the one where the walk stops.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// The forwarding header a deployment's proxies write, which also says how it is read.
///
/// Deserialises from the two standard names only (`x-forwarded-for`, `forwarded`: what `serve`'s
/// `http.forwarded_header` takes); [`ForwardedHeader::named`] also takes any other header name,
/// read like `X-Forwarded-For` (the gateway's `forward_auth.client_ip_header`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StandardHeader", into = "String")]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: <client>, <proxy1>, ...` (nginx, HAProxy `option forwardfor`, Envoy,
    /// Traefik, Caddy, cloud load balancers).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=<client>;proto=https, for=<proxy1>` (RFC 7239).
    Forwarded,
    /// Another header written like `X-Forwarded-For` (`X-Real-IP`, `True-Client-IP`, ...).
    AddressList(HeaderName),
}

/// The lowercase name of a forwarding header other than `x-forwarded-for` and `forwarded`; made
/// only by [`ForwardedHeader::named`], so it is never one of those two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderName(Box<str>);

impl HeaderName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a forwarding header name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a header name")]
pub struct NotAHeaderName(pub String);

impl ForwardedHeader {
    /// The header called `name` (any case): `forwarded` is read as RFC 7239, every other header
    /// as a list of addresses like `X-Forwarded-For`.
    pub fn named(name: &str) -> Result<Self, NotAHeaderName> {
        if name.is_empty() || !name.bytes().all(is_tchar) {
            return Err(NotAHeaderName(name.to_owned()));
        }
        let name = name.to_ascii_lowercase();
        Ok(match name.as_str() {
            "x-forwarded-for" => Self::XForwardedFor,
            "forwarded" => Self::Forwarded,
            _ => Self::AddressList(HeaderName(name.into())),
        })
    }

    /// The header's name, lowercase.
    pub fn name(&self) -> &str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
            Self::AddressList(name) => name.as_str(),
        }
    }
}

/// What a configuration value may name when it deserialises a [`ForwardedHeader`].
#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum StandardHeader {
    XForwardedFor,
    Forwarded,
}

impl From<StandardHeader> for ForwardedHeader {
    fn from(h: StandardHeader) -> Self {
        match h {
            StandardHeader::XForwardedFor => Self::XForwardedFor,
            StandardHeader::Forwarded => Self::Forwarded,
        }
    }
}

impl From<ForwardedHeader> for String {
    fn from(h: ForwardedHeader) -> Self {
        h.name().to_owned()
    }
}

/// The proxies whose forwarding headers are believed. Empty (the default): none are. One type
/// for every configuration that names them (`serve`'s `http.trusted_proxies`, the gateway's
/// `trusted_proxies`).
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
/// values (in the order they arrived) say by the rule in the module documentation, `None` when
/// that is unknown. IPv4-mapped IPv6 addresses are answered as IPv4.
///
/// A caller whose peer is never the client (forward-auth: the peer is the proxy asking) answers
/// `None` itself for an untrusted peer; for a trusted one this reads only the header.
pub fn client_address<'a, I>(
    peer: IpAddr,
    trusted: &TrustedProxies,
    header: &ForwardedHeader,
    values: I,
) -> Option<IpAddr>
where
    I: IntoIterator<Item = &'a [u8]>,
    I::IntoIter: DoubleEndedIterator,
{
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return Some(peer);
    }
    let rfc7239 = matches!(header, ForwardedHeader::Forwarded);
    // `None` until an entry is read: a trusted proxy that names nobody leaves the client unknown.
    let mut leftmost_proxy = None;
    for line in values.into_iter().rev() {
        let mut rest = Some(line);
        while let Some(text) = rest {
            let (left, entry) = if rfc7239 {
                split_last_element(text)
            } else {
                split_last_entry(text)
            };
            rest = left;
            let entry = std::str::from_utf8(entry).ok()?;
            let parsed = if rfc7239 {
                forwarded_element(entry)
            } else {
                x_forwarded_for_entry(entry)
            };
            // Not an address where the walk stops: unknown, never the entry left of it.
            let ip = parsed?.to_canonical();
            if !trusted.contains(ip) {
                return Some(ip);
            }
            leftmost_proxy = Some(ip);
        }
    }
    leftmost_proxy
}

/// Splits the last entry of an address list off: (what is left of its `,`, the entry).
fn split_last_entry(line: &[u8]) -> (Option<&[u8]>, &[u8]) {
    match line.iter().rposition(|b| *b == b',') {
        // `i` is an index into `line`, so both ranges are in bounds.
        Some(i) => (Some(&line[..i]), &line[i + 1..]),
        None => (None, line),
    }
}

/// Splits the last element of a `Forwarded` line off: (what is left of its `,`, the element). A
/// `,` inside a quoted string separates nothing. The line is read from the right, so text a
/// client wrote on the left (an unbalanced quote) cannot change where the elements that proxies
/// appended begin; an unbalanced quote makes the rest of the line one (malformed) element.
fn split_last_element(line: &[u8]) -> (Option<&[u8]>, &[u8]) {
    let mut end = line.len();
    loop {
        // Indices come from searching `line[..end]`, so every range is in bounds.
        let Some(i) = line[..end].iter().rposition(|b| *b == b',' || *b == b'"') else {
            return (None, line);
        };
        if line[i] == b',' {
            return (Some(&line[..i]), &line[i + 1..]);
        }
        match opening_quote(&line[..i]) {
            Some(open) => end = open,
            None => return (None, line),
        }
    }
}

/// Where the quoted string whose closing `"` follows `before` opens: the last `"` in `before`
/// that a backslash does not escape (an odd run of backslashes before it does: RFC 9110
/// `quoted-pair`; an even run is escaped backslashes).
fn opening_quote(before: &[u8]) -> Option<usize> {
    let mut end = before.len();
    loop {
        let q = before[..end].iter().rposition(|b| *b == b'"')?;
        let backslashes = before[..q]
            .iter()
            .rev()
            .take_while(|b| **b == b'\\')
            .count();
        if backslashes % 2 == 0 {
            return Some(q);
        }
        end = q;
    }
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

/// The `for` address of one `Forwarded` element (`for=192.0.2.60;proto=http;by=...`, RFC 7239
/// section 4). The element must be well formed (pairs of `token=token` or `token="quoted"`,
/// separated by `;` outside quotes) and name exactly one `for`, which must be an address.
fn forwarded_element(element: &str) -> Option<IpAddr> {
    let mut found = None;
    let mut rest = element;
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            return found;
        }
        // An empty pair (`a=b;;c=d`) is allowed by the grammar.
        if let Some(after) = rest.strip_prefix(';') {
            rest = after;
            continue;
        }
        // tchars are ASCII, so the count is a character boundary.
        let (name, after) = rest.split_at(rest.bytes().take_while(|b| is_tchar(*b)).count());
        if name.is_empty() {
            return None;
        }
        let (value, after) = forwarded_value(after.strip_prefix('=')?)?;
        if name.eq_ignore_ascii_case("for") {
            if found.is_some() {
                return None;
            }
            found = Some(forwarded_node(&value)?);
        }
        rest = after.trim_start_matches([' ', '\t']);
        if !rest.is_empty() {
            rest = rest.strip_prefix(';')?;
        }
    }
}

/// A `token` or a `quoted-string` (RFC 9110 section 5.6) at the start of `s`, unquoted, and
/// what follows it.
fn forwarded_value(s: &str) -> Option<(String, &str)> {
    let Some(quoted) = s.strip_prefix('"') else {
        let len = s.bytes().take_while(|b| is_tchar(*b)).count();
        let (token, rest) = s.split_at(len);
        return (!token.is_empty()).then(|| (token.to_owned(), rest));
    };
    let mut out = String::new();
    let mut chars = quoted.char_indices();
    while let Some((i, c)) = chars.next() {
        let c = match c {
            '"' => return Some((out, &quoted[i + 1..])),
            '\\' => chars.next()?.1,
            c => c,
        };
        if c.is_control() && c != '\t' {
            return None;
        }
        out.push(c);
    }
    None
}

/// RFC 7239 `node` as an address: `192.0.2.43`, `192.0.2.43:47011`, `[2001:db8::17]`,
/// `[2001:db8::17]:47011`, also with an obfuscated port (`192.0.2.43:_a1`). `unknown` and
/// obfuscated identifiers (`_hidden`) are not addresses.
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
        Some(p) if is_node_port(p) => Some(host),
        Some(_) => None,
    }
}

/// `node-port`: 1 to 5 digits, or `_` and at least one of `ALPHA / DIGIT / "." / "_" / "-"`.
fn is_node_port(p: &str) -> bool {
    match p.strip_prefix('_') {
        Some(obf) => {
            !obf.is_empty()
                && obf
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        }
        None => (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()),
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

    fn some(s: &str) -> Option<IpAddr> {
        Some(ip(s))
    }

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(list.iter().copied()).expect("proxies")
    }

    /// The answer for `peer` sending these header lines, behind proxies in 10.0.0.0/8 and
    /// 2001:db8:ffff::/48.
    fn resolve(header: &ForwardedHeader, peer: &str, lines: &[&str]) -> Option<IpAddr> {
        client_address(
            ip(peer),
            &proxies(&["10.0.0.0/8", "2001:db8:ffff::/48"]),
            header,
            lines.iter().map(|l| l.as_bytes()),
        )
    }

    fn xff(peer: &str, lines: &[&str]) -> Option<IpAddr> {
        resolve(&ForwardedHeader::XForwardedFor, peer, lines)
    }

    fn fwd(peer: &str, lines: &[&str]) -> Option<IpAddr> {
        resolve(&ForwardedHeader::Forwarded, peer, lines)
    }

    fn named(name: &str, lines: &[&str]) -> Option<IpAddr> {
        let header = ForwardedHeader::named(name).expect("header name");
        resolve(&header, "10.0.0.2", lines)
    }

    #[test]
    fn a_header_from_an_untrusted_peer_is_ignored() {
        assert_eq!(xff("198.51.100.7", &["203.0.113.9"]), some("198.51.100.7"));
        assert_eq!(
            fwd("198.51.100.7", &["for=203.0.113.9"]),
            some("198.51.100.7")
        );
        assert_eq!(named("x-real-ip", &["203.0.113.7"]), some("203.0.113.7"));
        let real_ip = ForwardedHeader::named("x-real-ip").expect("name");
        assert_eq!(
            resolve(&real_ip, "198.51.100.1", &["203.0.113.7"]),
            some("198.51.100.1")
        );
        // No proxies configured: nobody's header is read.
        let none = TrustedProxies::none();
        let got = client_address(
            ip("10.0.0.1"),
            &none,
            &ForwardedHeader::XForwardedFor,
            [b"203.0.113.9".as_slice()],
        );
        assert_eq!(got, some("10.0.0.1"));
    }

    #[test]
    fn a_trusted_peer_forwards_the_rightmost_untrusted_entry() {
        assert_eq!(xff("10.0.0.5", &["203.0.113.9"]), some("203.0.113.9"));
        // A chain of trusted proxies is walked through.
        assert_eq!(
            xff("10.0.0.5", &["203.0.113.9, 10.0.0.7,10.0.0.6"]),
            some("203.0.113.9")
        );
        assert_eq!(
            xff("10.0.0.2", &["1.1.1.1, 203.0.113.7, 10.0.0.1"]),
            some("203.0.113.7")
        );
        // Several header lines are one list, in order.
        assert_eq!(
            xff("10.0.0.5", &["198.51.100.1", "203.0.113.9, 10.0.0.7"]),
            some("203.0.113.9")
        );
        assert_eq!(
            xff("10.0.0.2", &["1.1.1.1", "203.0.113.7, 10.0.0.1"]),
            some("203.0.113.7")
        );
    }

    #[test]
    fn a_trusted_peer_that_names_nobody_leaves_the_client_unknown() {
        // The proxy's own address is not the client's: an allowlist naming the proxy would
        // admit everyone behind it. (This answered the peer before the gateway's rule and this
        // one became one.)
        assert_eq!(xff("10.0.0.5", &[]), None);
        assert_eq!(fwd("10.0.0.5", &[]), None);
        assert_eq!(named("x-real-ip", &[]), None);
    }

    #[test]
    fn a_spoofed_leftmost_entry_is_ignored() {
        // The client sent "X-Forwarded-For: 192.0.2.1"; the proxy appended what it saw.
        assert_eq!(
            xff("10.0.0.5", &["192.0.2.1, 203.0.113.9"]),
            some("203.0.113.9")
        );
        assert_eq!(
            xff("10.0.0.5", &["192.0.2.1", "203.0.113.9"]),
            some("203.0.113.9")
        );
        // Even a spoofed trusted address on the left is never reached.
        assert_eq!(
            xff("10.0.0.5", &["10.0.0.9, 203.0.113.9"]),
            some("203.0.113.9")
        );
        assert_eq!(
            xff("10.0.0.2", &["10.9.9.9, 203.0.113.7"]),
            some("203.0.113.7")
        );
        assert_eq!(
            fwd("10.0.0.5", &["for=192.0.2.1, for=203.0.113.9;proto=https"]),
            some("203.0.113.9")
        );
        assert_eq!(
            fwd("10.0.0.2", &["for=10.9.9.9, for=203.0.113.7"]),
            some("203.0.113.7")
        );
    }

    #[test]
    fn garbage_where_the_walk_reads_leaves_the_client_unknown() {
        // These answered the peer before the rule became one; unknown fails closed.
        for line in [
            "",
            " ",
            ",",
            " , ",
            "203.0.113.9,",
            "203.0.113.9, unknown",
            "203.0.113.9, not-an-address",
            "203.0.113.9, garbage, 10.0.0.1",
            "203.0.113.9, 999.1.1.1",
            "203.0.113.9, fe80::1%eth0",
            "203.0.113.9, 10.0.0.7 10.0.0.8",
            "203.0.113.9, [2001:db8::1",
            "203.0.113.9, 203.0.113.10:99999",
            "203.0.113.9, , 10.0.0.1",
        ] {
            assert_eq!(xff("10.0.0.5", &[line]), None, "{line:?}");
        }
        // Bytes that are not text.
        let got = client_address(
            ip("10.0.0.5"),
            &proxies(&["10.0.0.0/8"]),
            &ForwardedHeader::XForwardedFor,
            [b"203.0.113.9, \xff\xfe".as_slice()],
        );
        assert_eq!(got, None);
    }

    #[test]
    fn garbage_left_of_the_answer_is_never_read() {
        assert_eq!(
            xff("10.0.0.5", &["\"quoted\";junk, unknown, 203.0.113.9"]),
            some("203.0.113.9")
        );
        assert_eq!(
            xff("10.0.0.2", &["garbage, 203.0.113.7"]),
            some("203.0.113.7")
        );
        let got = client_address(
            ip("10.0.0.5"),
            &proxies(&["10.0.0.0/8"]),
            &ForwardedHeader::XForwardedFor,
            [b"\xff\xfe".as_slice(), b"203.0.113.9".as_slice()],
        );
        assert_eq!(got, some("203.0.113.9"));
        assert_eq!(
            fwd("10.0.0.5", &["for=\"unbalanced, for=203.0.113.9"]),
            some("203.0.113.9")
        );
        // A client's open quote cannot swallow the quoted element a proxy appended.
        assert_eq!(
            fwd(
                "10.0.0.5",
                &["for=192.0.2.1;x=\", for=\"[2001:db8:cafe::17]:4711\""]
            ),
            some("2001:db8:cafe::17")
        );
        // An escaped quote does not end a quoted string: its `, for=` stays inside it.
        assert_eq!(
            fwd("10.0.0.5", &["for=\"x\\\", for=192.0.2.1\", for=10.0.0.7"]),
            None
        );
        assert_eq!(
            fwd(
                "10.0.0.5",
                &["for=203.0.113.9;ext=\"a\\\",b\", for=10.0.0.7"]
            ),
            some("203.0.113.9")
        );
    }

    #[test]
    fn when_every_entry_is_a_trusted_proxy_the_leftmost_is_the_client() {
        assert_eq!(xff("10.0.0.5", &["10.0.0.8, 10.0.0.7"]), some("10.0.0.8"));
        assert_eq!(fwd("10.0.0.5", &["for=10.0.0.7"]), some("10.0.0.7"));
    }

    #[test]
    fn x_forwarded_for_entries_may_carry_ports_and_brackets() {
        for (entry, want) in [
            ("203.0.113.9:4711", "203.0.113.9"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("[2001:db8::1]:4711", "2001:db8::1"),
            ("[2001:db8::7]:80", "2001:db8::7"),
            ("  203.0.113.9\t", "203.0.113.9"),
        ] {
            assert_eq!(xff("10.0.0.5", &[entry]), some(want), "{entry}");
        }
    }

    #[test]
    fn any_other_header_name_is_read_like_x_forwarded_for() {
        assert_eq!(
            named("X-Real-IP", &["198.51.100.7, 203.0.113.9, 10.0.0.1"]),
            some("203.0.113.9")
        );
        assert_eq!(
            named("true-client-ip", &["203.0.113.9:80"]),
            some("203.0.113.9")
        );
        assert_eq!(named("x-real-ip", &["203.0.113.7, unknown"]), None);
        // `for=` is not an address in a list header.
        assert_eq!(named("x-real-ip", &["for=203.0.113.9"]), None);
        assert_eq!(
            ForwardedHeader::named("X-Forwarded-For"),
            Ok(ForwardedHeader::XForwardedFor)
        );
        assert_eq!(
            ForwardedHeader::named("Forwarded"),
            Ok(ForwardedHeader::Forwarded)
        );
        let real = ForwardedHeader::named("X-Real-IP").expect("name");
        assert_eq!(real.name(), "x-real-ip");
        for bad in ["", "x real ip", "x-real-ip:", "é"] {
            assert_eq!(
                ForwardedHeader::named(bad),
                Err(NotAHeaderName(bad.to_owned())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        // A dual-stack listener reports an IPv4 proxy as ::ffff:10.0.0.5.
        assert_eq!(
            xff("::ffff:10.0.0.5", &["203.0.113.9"]),
            some("203.0.113.9")
        );
        assert_eq!(
            xff("10.0.0.5", &["::ffff:203.0.113.9"]),
            some("203.0.113.9")
        );
        assert_eq!(xff("::ffff:198.51.100.7", &[]), some("198.51.100.7"));
        assert_eq!(
            fwd("10.0.0.5", &["for=\"[::ffff:203.0.113.9]\""]),
            some("203.0.113.9")
        );
        // A mapped trusted proxy inside the header is walked through.
        assert_eq!(
            xff("10.0.0.5", &["203.0.113.9, ::ffff:10.0.0.7"]),
            some("203.0.113.9")
        );
        // IPv6 proxies are matched by their own blocks.
        assert_eq!(
            xff("2001:db8:ffff::1", &["2001:db8:1::9"]),
            some("2001:db8:1::9")
        );
    }

    #[test]
    fn forwarded_elements_are_read_strictly() {
        for (line, want) in [
            ("for=203.0.113.9", "203.0.113.9"),
            ("For=203.0.113.9;proto=https;by=10.0.0.5", "203.0.113.9"),
            ("proto=https;for=\"203.0.113.9:4711\"", "203.0.113.9"),
            ("for=\"192.0.2.60:80\"", "192.0.2.60"),
            ("for=\"[2001:db8:cafe::17]\"", "2001:db8:cafe::17"),
            ("for=\"[2001:db8:cafe::17]:4711\"", "2001:db8:cafe::17"),
            ("for=\"[2001:db8::1]:4711\"", "2001:db8::1"),
            ("for=\"192.0.2.43:_abc\"", "192.0.2.43"),
            ("for=203.0.113.9, for=10.0.0.7", "203.0.113.9"),
            ("for=203.0.113.9;;host=\"example.com\"", "203.0.113.9"),
            ("for=203.0.113.9 ; proto=https", "203.0.113.9"),
            ("for=\"203.0.113.\\9\"", "203.0.113.9"),
            (
                "for=192.0.2.1;proto=https, For=\"[2001:db8:cafe::17]:4711\";by=10.0.0.1",
                "2001:db8:cafe::17",
            ),
            // A quoted `,` or `;` separates nothing.
            (
                "for=203.0.113.9;host=\"a,b;c\", for=10.0.0.7",
                "203.0.113.9",
            ),
            (
                "for=\"10.0.0.5, for=10.0.0.6\", for=203.0.113.7",
                "203.0.113.7",
            ),
            ("for=\"[2001:db8::1]:4711\";ext=\"x\\\"y,z\"", "2001:db8::1"),
        ] {
            assert_eq!(fwd("10.0.0.5", &[line]), some(want), "{line}");
        }
        // Several lines are one list.
        assert_eq!(
            fwd("10.0.0.5", &["for=\"203.0.113.7:80\"", "for=10.0.0.1"]),
            some("203.0.113.7")
        );
        for line in [
            "for=unknown",
            "for=_hidden",
            "for=\"_hidden:_port\"",
            "for=203.0.113.7, for=unknown",
            "for=203.0.113.7, for=_hidden",
            "proto=https",
            "for=203.0.113.7, proto=http",
            "for=203.0.113.9;for=203.0.113.10",
            "for=203.0.113.7, for=1.1.1.1;for=10.0.0.1",
            "for=203.0.113.7, junk",
            "for=\"x,y\", for=10.0.0.1",
            "for=\"2001:db8::17\"",
            "for=[2001:db8::17]",
            // RFC 7239 section 6: a port makes a node a quoted-string.
            "for=192.0.2.60:80",
            "for=\"203.0.113.9",
            "for=\"203.0.\"113.9\"",
            "for=203.0.113.9;proto",
            "for=203.0.113.9;=x",
            "for=203.0.113.9;pr oto=x",
            "for =203.0.113.9",
            "for= 203.0.113.9",
            "for=",
            "for=203.0.113.9:",
            "for=\"203.0.113.9:\"",
            "for=\"203.0.113.9:_\"",
            "for=\"203.0.113.9:http\"",
            "for=\"203.0.113.9:123456\"",
            "for=\"203.0.113.9\u{1}\"",
            "for=203.0.113.9 proto=https",
            "203.0.113.9",
        ] {
            assert_eq!(fwd("10.0.0.5", &[line]), None, "{line:?}");
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
        for bad in ["example.com", ""] {
            assert!(
                matches!(err(bad), TrustedProxyError::NotAnAddress(_)),
                "{bad:?}"
            );
        }
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
        assert_eq!(
            serde_json::to_value(ForwardedHeader::Forwarded).expect("json"),
            serde_json::json!("forwarded")
        );
    }
}
