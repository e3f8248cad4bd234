//! Where a webhook may be sent: the URL rules checked when an endpoint is registered and again
//! before every attempt, and the DNS resolver that drops private, loopback and link-local
//! addresses from every lookup (so a public name that resolves to an internal address, now or
//! after a DNS change, is refused at connection time, not only at registration).
//!
//! What this module must never do: let a private address through without
//! `webhooks.insecure_allow_private_addresses`, or plain `http` without
//! `webhooks.insecure_allow_http`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Longest endpoint URL accepted.
pub const MAX_URL_LEN: usize = 2_048;

/// What the URL rules allow beyond the safe default (public HTTPS only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Allow {
    pub http: bool,
    pub private_addresses: bool,
}

/// Checks an endpoint URL: absolute `https://` (or `http://` when allowed), a host, no
/// credentials or fragment, and no IP literal that is not public (unless allowed). Returns it
/// normalised.
pub fn validate_url(url: &str, allow: Allow) -> Result<reqwest::Url, &'static str> {
    if url.len() > MAX_URL_LEN {
        return Err("url is at most 2048 characters");
    }
    let parsed = reqwest::Url::parse(url).map_err(|_| "url must be an absolute URL")?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow.http => {}
        "http" => return Err("url must use https (http only with webhooks.insecure_allow_http)"),
        _ => return Err("url must be an https URL"),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("url must not carry credentials");
    }
    if parsed.fragment().is_some() {
        return Err("url must not have a fragment");
    }
    let host = parsed.host_str().unwrap_or_default();
    if host.is_empty() {
        return Err("url must name a host");
    }
    if !allow.private_addresses {
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        let internal = match literal.parse::<IpAddr>() {
            Ok(ip) => !is_public(ip),
            Err(_) => host.eq_ignore_ascii_case("localhost") || host.ends_with(".localhost"),
        };
        if internal {
            return Err("url must not name a private, loopback or link-local address");
        }
    }
    Ok(parsed)
}

/// Whether an address is reachable on the public internet: not loopback, private, link-local,
/// shared (CGNAT), unspecified, broadcast, multicast, documentation or reserved; IPv4-mapped and
/// -compatible IPv6 addresses are judged as the IPv4 address they carry.
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
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || first == 0x2001 && ip.segments()[1] == 0x0db8
        || (first == 0 && ip.segments()[1..6].iter().all(|s| *s == 0)))
}

/// A resolver that answers only public addresses (all of them with private ones allowed).
#[derive(Debug, Clone, Copy)]
pub struct PublicResolver {
    pub allow_private: bool,
}

impl reqwest::dns::Resolve for PublicResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow_private || is_public(a.ip()))
                .collect();
            if found.is_empty() {
                return Err("the host has no public address".into());
            }
            Ok(Box::new(found.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses_only_by_default() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(is_public(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn url_rules() {
        let strict = Allow::default();
        assert!(validate_url("https://hooks.example.com/in", strict).is_ok());
        for bad in [
            "http://hooks.example.com/in",
            "ftp://hooks.example.com/in",
            "https://user:pw@hooks.example.com/in",
            "https://hooks.example.com/in#frag",
            "https://127.0.0.1/in",
            "https://[::1]/in",
            "https://169.254.169.254/latest",
            "https://localhost/in",
            "not a url",
            "/relative",
        ] {
            assert!(validate_url(bad, strict).is_err(), "{bad}");
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert!(validate_url(&long, strict).is_err());
        let loose = Allow {
            http: true,
            private_addresses: true,
        };
        assert!(validate_url("http://127.0.0.1:9/in", loose).is_ok());
        assert!(validate_url("https://user:pw@127.0.0.1/in", loose).is_err());
    }
}
