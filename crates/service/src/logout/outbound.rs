//! Where this server may send a back-channel logout request: the rules for a registered
//! `backchannel_logout_uri` ([`validate_backchannel_uri`]) and the HTTP client that delivers
//! ([`client`]): HTTPS only, no redirect followed, no proxy from the environment, a short time
//! limit, and no connection to a private, loopback or link-local address, however the name
//! resolves at delivery time (a resolver that drops such addresses, so a name re-pointed after
//! registration cannot reach the internal network), unless an `insecure_*` setting allows it.
//!
//! This module must never follow a redirect or read a response body beyond a few bytes.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Longest URI accepted at registration.
const MAX_URI_LEN: usize = 2_048;

/// The outbound allowances (from the `[logout]` section).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outbound {
    /// `http://` to a loopback host (`127.0.0.0/8`, `[::1]`, `localhost`) and loopback
    /// addresses: tests and local development only.
    pub allow_http_loopback: bool,
    /// Private, loopback and link-local addresses over HTTPS: closed networks only.
    pub allow_private: bool,
}

/// Whether `ip` is an address on the public internet (not loopback, private, link-local,
/// carrier-grade NAT, unique-local, multicast, unspecified or documentation).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64)
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8))
        }
    }
}

impl Outbound {
    /// Whether a connection to `ip` is allowed.
    pub fn address_allowed(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.allow_private || (self.allow_http_loopback && ip.is_loopback())
    }
}

/// The address a URL's host names literally, if it does.
fn host_ip(url: &reqwest::Url) -> Option<IpAddr> {
    let host = url.host_str()?;
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
        .parse()
        .ok()
}

fn loopback_host(url: &reqwest::Url) -> bool {
    host_ip(url).is_some_and(|ip| ip.is_loopback())
        || url
            .host_str()
            .is_some_and(|h| h.eq_ignore_ascii_case("localhost"))
}

/// Checks a `backchannel_logout_uri` a client registers (section 2.2 of Back-Channel Logout):
/// an absolute `https://` URL with a host, no credentials, no fragment (a query is allowed);
/// `http://` only to a loopback host with `allow_http_loopback`; an address literal only if it
/// may be connected to. Returns it normalised.
pub fn validate_backchannel_uri(uri: &str, rules: Outbound) -> Result<String, &'static str> {
    if uri.len() > MAX_URI_LEN {
        return Err("backchannel_logout_uri is at most 2048 characters");
    }
    let url =
        reqwest::Url::parse(uri).map_err(|_| "backchannel_logout_uri must be an absolute URL")?;
    match url.scheme() {
        "https" => {}
        "http" if rules.allow_http_loopback && loopback_host(&url) => {}
        _ => {
            return Err("backchannel_logout_uri must be an https URL (http only to a loopback host with logout.insecure_allow_http_loopback)")
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("backchannel_logout_uri must name a host");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("backchannel_logout_uri must not carry credentials");
    }
    if url.fragment().is_some() {
        return Err("backchannel_logout_uri must not have a fragment");
    }
    let literal = host_ip(&url);
    if literal.is_some_and(|ip| !rules.address_allowed(ip)) {
        return Err(
            "backchannel_logout_uri must not name a private, loopback or link-local address",
        );
    }
    Ok(url.into())
}

/// A resolver that drops addresses the rules do not allow (a name with none left fails).
#[derive(Debug, Clone, Copy)]
struct Filtered(Outbound);

impl reqwest::dns::Resolve for Filtered {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let rules = self.0;
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let allowed: Vec<SocketAddr> =
                found.filter(|a| rules.address_allowed(a.ip())).collect();
            if allowed.is_empty() {
                return Err("the host resolves to no address deliveries may reach".into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The delivering HTTP client: `timeout` for connect, request and response.
pub fn client(rules: Outbound, timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .https_only(!rules.allow_http_loopback)
        .dns_resolver(Arc::new(Filtered(rules)))
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
        .build()
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
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "224.0.0.1",
        ] {
            assert!(!is_public(ip.parse().expect("ip")), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "2606:2800:220:1:248:1893:25c8:1946",
            "1.1.1.1",
        ] {
            assert!(is_public(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[test]
    fn registered_uris_follow_the_outbound_rules() {
        let strict = Outbound::default();
        let tests = Outbound {
            allow_http_loopback: true,
            allow_private: false,
        };
        assert!(validate_backchannel_uri("https://app.example/bcl?x=1", strict).is_ok());
        for bad in [
            "http://app.example/bcl",
            "http://127.0.0.1:9/bcl",
            "https://127.0.0.1/bcl",
            "https://10.0.0.1/bcl",
            "https://[::1]/bcl",
            "https://169.254.169.254/latest",
            "https://u:p@app.example/bcl",
            "https://app.example/bcl#f",
            "ftp://app.example/bcl",
            "/bcl",
        ] {
            assert!(validate_backchannel_uri(bad, strict).is_err(), "{bad}");
        }
        assert!(validate_backchannel_uri("http://127.0.0.1:9/bcl", tests).is_ok());
        assert!(validate_backchannel_uri("http://localhost:9/bcl", tests).is_ok());
        // The loopback allowance is not a licence for plain HTTP elsewhere or private ranges.
        assert!(validate_backchannel_uri("http://app.example/bcl", tests).is_err());
        assert!(validate_backchannel_uri("https://10.0.0.1/bcl", tests).is_err());
        let private = Outbound {
            allow_http_loopback: false,
            allow_private: true,
        };
        assert!(validate_backchannel_uri("https://10.0.0.1/bcl", private).is_ok());
        assert!(validate_backchannel_uri("http://10.0.0.1/bcl", private).is_err());
    }
}
