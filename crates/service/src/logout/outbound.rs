//! Where this server may send a back-channel logout request: the rules for a registered
//! `backchannel_logout_uri` ([`validate_backchannel_uri`]) and the HTTP client that delivers
//! ([`client`]): HTTPS only, no redirect followed, no proxy from the environment, a short time
//! limit, and no connection to a private, loopback or link-local address, however the name
//! resolves at delivery time (a resolver that drops such addresses, so a name re-pointed after
//! registration cannot reach the internal network), unless an `insecure_*` setting allows it.
//!
//! This module must never follow a redirect or read a response body beyond a few bytes.

use std::net::IpAddr;
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

impl Outbound {
    /// Whether a connection to `ip` is allowed.
    pub fn address_allowed(&self, ip: IpAddr) -> bool {
        self.policy().allows(ip)
    }

    /// The shared outbound address policy these allowances make.
    pub fn policy(&self) -> crate::outbound::AddressPolicy {
        crate::outbound::AddressPolicy {
            private: self.allow_private,
            loopback: self.allow_http_loopback,
        }
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

/// The delivering HTTP client: `timeout` for connect, request and response.
pub fn client(rules: Outbound, timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .https_only(!rules.allow_http_loopback)
        .dns_resolver(Arc::new(crate::outbound::FilteringResolver(rules.policy())))
        .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

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
