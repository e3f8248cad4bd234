//! One configured upstream: its validated address (scheme, authority, base path), the `Host`
//! header its HTTP/1.1 requests carry, and the pool of connections to it ([`crate::pool`]).
//! Built by [`crate::state::Snapshot::build`] and kept across reloads while its section is
//! unchanged; used by the reverse proxy ([`crate::proxy`]) to send a request.
//!
//! This module must never accept an upstream URL it cannot forward to exactly (no TLS, user
//! information or query), and never build a URI with another path than the base path followed
//! by the normalised request path.

use std::sync::Arc;

use http::{HeaderValue, Uri};

use crate::config::{ConfigError, UpstreamSection};
use crate::pool::Pool;

/// One upstream: where it is and the pool of connections to it.
#[derive(Debug)]
pub struct Upstream {
    pub name: Arc<str>,
    pub section: UpstreamSection,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// The `Host` header every HTTP/1.1 request to this upstream carries.
    pub(crate) host: HeaderValue,
    /// Prepended to every forwarded path; empty or `/base` (no trailing slash).
    base_path: String,
    pub(crate) pool: Arc<Pool>,
}

impl Upstream {
    /// `shards`: how many idle-connection lists to keep (one per worker thread, plus one for
    /// any other thread), see [`Pool`].
    pub fn new(name: &str, section: UpstreamSection, shards: usize) -> Result<Self, ConfigError> {
        let bad = |m: &str| ConfigError(format!("upstream {name}: {m}"));
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(bad("name may only hold letters, digits, '-', '_', '.'"));
        }
        let uri: Uri = section.url.parse().map_err(|_| bad("url is not a URL"))?;
        let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned())
        else {
            return Err(bad("url needs a scheme and a host"));
        };
        if scheme != http::uri::Scheme::HTTP {
            return Err(bad(
                "only http:// upstreams are supported (TLS to upstreams is not implemented)",
            ));
        }
        if authority.as_str().contains('@') {
            return Err(bad("url may not hold a user name or password"));
        }
        if uri.query().is_some() {
            return Err(bad("url may not have a query"));
        }
        if section.connect_timeout.is_zero() || section.read_timeout.is_zero() {
            return Err(bad("timeouts must be > 0"));
        }
        let host = HeaderValue::from_str(authority.as_str()).map_err(|_| bad("bad host"))?;
        let address = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let pool = Pool::new(
            address,
            section.connect_timeout,
            section.read_timeout,
            section.http2,
            shards,
        );
        Ok(Self {
            name: name.into(),
            scheme,
            authority,
            host,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            pool: Arc::new(pool),
            section,
        })
    }

    /// The URI to send: origin-form (`/path?query`) over HTTP/1.1, absolute over HTTP/2 (whose
    /// `:scheme` and `:authority` come from it).
    pub(crate) fn uri(&self, path: &str, query: Option<&str>) -> Result<Uri, http::Error> {
        let mut pq = String::with_capacity(
            self.base_path.len() + path.len() + query.map_or(0, |q| q.len() + 1),
        );
        pq.push_str(&self.base_path);
        pq.push_str(path);
        if let Some(q) = query {
            pq.push('?');
            pq.push_str(q);
        }
        let b = Uri::builder();
        let b = if self.section.http2 {
            b.scheme(self.scheme.clone())
                .authority(self.authority.clone())
        } else {
            b
        };
        b.path_and_query(pq).build()
    }

    /// Idle HTTP/1.1 connections to this upstream right now.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_are_checked() {
        let s = |url: &str| UpstreamSection {
            url: url.into(),
            connect_timeout: std::time::Duration::from_secs(1),
            read_timeout: std::time::Duration::from_secs(1),
            http2: false,
            identity_jwt: None,
            identity_audience: None,
        };
        assert!(Upstream::new("a", s("https://x.example"), 1).is_err());
        assert!(Upstream::new("a", s("/relative"), 1).is_err());
        assert!(Upstream::new("a b", s("http://x.example"), 1).is_err());
        assert!(Upstream::new("a", s("http://x.example/?q=1"), 1).is_err());
        assert!(Upstream::new("a", s("http://user:pw@x.example"), 1).is_err());
    }

    #[test]
    fn base_paths_are_prepended() {
        let s = |http2| UpstreamSection {
            url: "http://127.0.0.1:9/api/".into(),
            connect_timeout: std::time::Duration::from_secs(1),
            read_timeout: std::time::Duration::from_secs(1),
            http2,
            identity_jwt: None,
            identity_audience: None,
        };
        // HTTP/1.1 gets origin-form plus a Host header; HTTP/2 an absolute URI.
        let h1 = Upstream::new("a", s(false), 1).expect("upstream");
        assert_eq!(h1.uri("/x/y", Some("a=1")).expect("uri"), "/api/x/y?a=1");
        assert_eq!(h1.host, "127.0.0.1:9");
        let h2 = Upstream::new("a", s(true), 1).expect("upstream");
        assert_eq!(
            h2.uri("/x/y", None).expect("uri").to_string(),
            "http://127.0.0.1:9/api/x/y"
        );
    }
}
