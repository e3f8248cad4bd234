//! The host a request is for, parsed once at the edge into a [`RequestHost`]: the one value routes
//! are matched by *and* the one the upstream is told (`X-Forwarded-Host`), so the two cannot
//! differ.
//!
//! Reverse proxy ([`of_request`]): the URI's authority (an absolute-form request line, HTTP/2's
//! `:authority`) or the `Host` header; when both are present they must name the same host and
//! port. Forward-auth ([`from_header`]): the one header the proxy describes the original request
//! with (`Host`, or Traefik's `X-Forwarded-Host`).
//!
//! Refused ([`HostError`], answered 400): two `Host` headers or a list in one; userinfo
//! (`user@host`); a trailing dot (`admin.example.com.` is the same host to DNS and to most
//! upstreams, but not to an exact route match); an empty label; anything but letters, digits,
//! `-`, `_` and `.` in a name; an IPv6 literal that does not parse; a port that is not 1 to 5
//! digits below 65536; an authority and a `Host` that disagree. An empty `Host` (allowed by
//! RFC 9112 when there is no authority) is no host.
//!
//! This module must never return a host other than the exact text the upstream is told.

use std::net::Ipv6Addr;

use http::header::HOST;
use http::{HeaderMap, HeaderValue, Uri};

/// Why a request's host was refused. All answer 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("more than one host header, or a list")]
    Multiple,
    #[error("the request URI's authority and the Host header differ")]
    Conflict,
    #[error("malformed host")]
    Malformed,
}

/// A validated `host[:port]`, kept as the header value it arrived in (cloning it does not copy
/// the text).
#[derive(Debug, Clone)]
pub struct RequestHost {
    value: HeaderValue,
    /// Bytes of `value` before the port.
    name_len: usize,
}

impl RequestHost {
    /// Parses one header value; `Ok(None)` when it is empty.
    pub fn parse(value: HeaderValue) -> Result<Option<Self>, HostError> {
        if value.is_empty() {
            return Ok(None);
        }
        let name_len = name_len(value.as_bytes())?;
        Ok(Some(Self { value, name_len }))
    }

    /// The host without its port, as sent (routes compare it ignoring case).
    pub fn name(&self) -> &str {
        // Validated ASCII, so `to_str` cannot fail and `name_len` is a character boundary.
        self.value
            .to_str()
            .ok()
            .and_then(|s| s.get(..self.name_len))
            .unwrap_or_default()
    }

    /// `host[:port]` exactly as received: what `X-Forwarded-Host` carries.
    pub fn value(&self) -> &HeaderValue {
        &self.value
    }
}

/// The host a request received by the reverse proxy is for (module docs).
pub fn of_request(uri: &Uri, headers: &HeaderMap) -> Result<Option<RequestHost>, HostError> {
    let host = match single(headers, &HOST)? {
        Some(v) => RequestHost::parse(v.clone())?,
        None => None,
    };
    let Some(authority) = uri.authority() else {
        return Ok(host);
    };
    let a = authority.as_str();
    name_len(a.as_bytes())?;
    match host {
        Some(h) if h.value.as_bytes().eq_ignore_ascii_case(a.as_bytes()) => Ok(Some(h)),
        Some(_) => Err(HostError::Conflict),
        // HTTP/2 without a Host header (the usual case there): the authority is the host.
        None => RequestHost::parse(HeaderValue::from_str(a).map_err(|_| HostError::Malformed)?),
    }
}

/// The host named by the one `name` header (forward-auth); none when absent or empty.
pub fn from_header(headers: &HeaderMap, name: &str) -> Result<Option<RequestHost>, HostError> {
    match single(headers, name)? {
        Some(v) => RequestHost::parse(v.clone()),
        None => Ok(None),
    }
}

/// The value of a header that may appear at most once.
fn single<K: http::header::AsHeaderName>(
    headers: &HeaderMap,
    name: K,
) -> Result<Option<&HeaderValue>, HostError> {
    let mut values = headers.get_all(name).into_iter();
    match (values.next(), values.next()) {
        (first, None) => Ok(first),
        (_, Some(_)) => Err(HostError::Multiple),
    }
}

/// Checks `host[:port]` and returns the length of `host`.
fn name_len(b: &[u8]) -> Result<usize, HostError> {
    let end = if b.first() == Some(&b'[') {
        let close = b
            .iter()
            .position(|&c| c == b']')
            .ok_or(HostError::Malformed)?;
        let inner = std::str::from_utf8(&b[1..close]).map_err(|_| HostError::Malformed)?;
        inner
            .parse::<Ipv6Addr>()
            .map_err(|_| HostError::Malformed)?;
        close + 1
    } else {
        let end = b.iter().position(|&c| c == b':').unwrap_or(b.len());
        check_reg_name(&b[..end])?;
        end
    };
    match &b[end..] {
        [] => Ok(end),
        [b':', port @ ..] if is_port(port) => Ok(end),
        _ => Err(if b.contains(&b',') {
            HostError::Multiple
        } else {
            HostError::Malformed
        }),
    }
}

/// A DNS-style name or an IPv4 address: dot-separated, non-empty labels of letters, digits, `-`
/// and `_`, 253 bytes at most.
fn check_reg_name(n: &[u8]) -> Result<(), HostError> {
    let ok = !n.is_empty()
        && n.len() <= 253
        && n.split(|&c| c == b'.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .iter()
                    .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        });
    if ok {
        Ok(())
    } else if n.contains(&b',') {
        Err(HostError::Multiple)
    } else {
        Err(HostError::Malformed)
    }
}

fn is_port(p: &[u8]) -> bool {
    (1..=5).contains(&p.len())
        && p.iter().all(u8::is_ascii_digit)
        && std::str::from_utf8(p).is_ok_and(|s| s.parse::<u16>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(hosts: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in hosts {
            h.append(HOST, HeaderValue::from_static(v));
        }
        h
    }

    fn of(uri: &str, hosts: &[&'static str]) -> Result<Option<(String, String)>, HostError> {
        let uri: Uri = uri.parse().expect("uri");
        of_request(&uri, &headers(hosts)).map(|h| {
            h.map(|h| {
                (
                    h.name().to_owned(),
                    h.value().to_str().expect("ascii").to_owned(),
                )
            })
        })
    }

    fn ok(name: &str, value: &str) -> Result<Option<(String, String)>, HostError> {
        Ok(Some((name.to_owned(), value.to_owned())))
    }

    #[test]
    fn hosts_are_parsed_once_and_named_as_sent() {
        assert_eq!(of("/x", &["api.test"]), ok("api.test", "api.test"));
        assert_eq!(
            of("/x", &["API.example.com:8443"]),
            ok("API.example.com", "API.example.com:8443")
        );
        assert_eq!(of("/x", &["[::1]:80"]), ok("[::1]", "[::1]:80"));
        assert_eq!(of("/x", &["10.0.0.1"]), ok("10.0.0.1", "10.0.0.1"));
        assert_eq!(
            of("/x", &["my_host.internal"]),
            ok("my_host.internal", "my_host.internal")
        );
        assert_eq!(of("/x", &[]), Ok(None));
        assert_eq!(of("/x", &[""]), Ok(None));
        // The authority (absolute form, HTTP/2) alone, or agreeing with Host in any case.
        assert_eq!(of("http://a.example/x", &[]), ok("a.example", "a.example"));
        assert_eq!(
            of("http://A.example:81/x", &["a.EXAMPLE:81"]),
            ok("a.EXAMPLE", "a.EXAMPLE:81")
        );
    }

    #[test]
    fn ambiguous_and_malformed_hosts_are_refused() {
        use HostError::*;
        for (uri, hosts, want) in [
            ("http://admin.example/x", &["public.example"][..], Conflict),
            ("http://a.example:81/x", &["a.example"][..], Conflict),
            ("http://a.example/x", &["a.example:80"][..], Conflict),
            ("http://user@a.example/x", &["a.example"][..], Malformed),
            ("http://user@a.example/x", &[][..], Malformed),
            ("/x", &["admin.example.com."][..], Malformed),
            ("/x", &["admin.example.com.:80"][..], Malformed),
            ("/x", &["user@admin.example.com"][..], Malformed),
            ("/x", &["a..example"][..], Malformed),
            ("/x", &[".example"][..], Malformed),
            ("/x", &["a.example:"][..], Malformed),
            ("/x", &["a.example:99999"][..], Malformed),
            ("/x", &["a.example:8a"][..], Malformed),
            ("/x", &["a.example:80:80"][..], Malformed),
            ("/x", &["a example"][..], Malformed),
            ("/x", &["a%2eexample"][..], Malformed),
            ("/x", &["[::1"][..], Malformed),
            ("/x", &["[zz::1]"][..], Malformed),
            ("/x", &["[::1]x"][..], Malformed),
            ("/x", &["a.example, b.example"][..], Multiple),
            ("/x", &["a.example:80,b.example"][..], Multiple),
            ("/x", &["a.example", "b.example"][..], Multiple),
            ("/x", &["a.example", "a.example"][..], Multiple),
        ] {
            assert_eq!(of(uri, hosts), Err(want), "{uri} {hosts:?}");
        }
    }

    #[test]
    fn forward_auth_headers_are_checked_the_same_way() {
        let mut h = HeaderMap::new();
        assert!(matches!(from_header(&h, "x-forwarded-host"), Ok(None)));
        h.insert(
            "x-forwarded-host",
            HeaderValue::from_static("api.example.com"),
        );
        let got = from_header(&h, "x-forwarded-host")
            .expect("ok")
            .expect("some");
        assert_eq!(got.name(), "api.example.com");
        h.append(
            "x-forwarded-host",
            HeaderValue::from_static("other.example"),
        );
        assert_eq!(
            from_header(&h, "x-forwarded-host").map(|_| ()),
            Err(HostError::Multiple)
        );
        h.insert(
            "x-forwarded-host",
            HeaderValue::from_static("api.example.com."),
        );
        assert_eq!(
            from_header(&h, "x-forwarded-host").map(|_| ()),
            Err(HostError::Malformed)
        );
    }
}
