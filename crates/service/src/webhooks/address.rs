//! Where a webhook may be sent: the URL rules checked when an endpoint is registered and again
//! before every attempt. Which addresses are public, and the resolver that drops the others at
//! connection time, are `crate::outbound`'s (the one rule for every outgoing request).
//!
//! What this module must never do: let a private address through without
//! `webhooks.insecure_allow_private_addresses`, or plain `http` without
//! `webhooks.insecure_allow_http`.

use std::net::IpAddr;

use crate::outbound::is_public;

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

#[cfg(test)]
mod tests {
    use super::*;

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
