//! Fetching key documents over HTTP: bounded in time and size, HTTPS only (plain HTTP is
//! accepted for loopback addresses, or anywhere with `insecure_allow_http`).
//!
//! Behind the [`Fetch`] trait so the JWKS cache can be tested without a network. This module
//! must never follow a URL that came from a token.

use std::time::Duration;

use async_trait::async_trait;

/// Largest key document read.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// A fetched document and how long the server says it may be cached.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: Vec<u8>,
    pub max_age: Option<Duration>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("refusing a non-HTTPS URL (set insecure_allow_http to allow)")]
    InsecureUrl,
    #[error("invalid URL")]
    BadUrl,
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("document larger than {MAX_DOCUMENT_BYTES} bytes")]
    TooLarge,
    #[error("request failed: {0}")]
    Transport(String),
}

#[async_trait]
pub trait Fetch: Send + Sync + std::fmt::Debug {
    async fn get(&self, url: &str) -> Result<Fetched, FetchError>;
}

/// The `max-age` of a `Cache-Control` value; `no-store`/`no-cache` mean zero (the caller's
/// minimum TTL then applies).
pub fn max_age(cache_control: &str) -> Option<Duration> {
    let mut age = None;
    for directive in cache_control.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-store" || lower == "no-cache" {
            return Some(Duration::ZERO);
        }
        if let Some(v) = lower.strip_prefix("max-age=") {
            age = v
                .trim_matches('"')
                .parse::<u64>()
                .ok()
                .map(Duration::from_secs);
        }
    }
    age
}

/// Whether a URL may be fetched: HTTPS, or HTTP to a loopback host, or any HTTP when allowed.
pub fn url_allowed(url: &reqwest::Url, insecure_allow_http: bool) -> bool {
    match url.scheme() {
        "https" => true,
        "http" if insecure_allow_http => true,
        "http" => match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        },
        _ => false,
    }
}

/// [`Fetch`] over reqwest (rustls), with a total timeout and a size limit.
#[derive(Debug, Clone)]
pub struct HttpFetch {
    client: reqwest::Client,
    insecure_allow_http: bool,
}

impl HttpFetch {
    pub fn new(timeout: Duration, insecure_allow_http: bool) -> Result<Self, FetchError> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect could leave HTTPS or the issuer's host: refuse them.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        Ok(Self {
            client,
            insecure_allow_http,
        })
    }
}

#[async_trait]
impl Fetch for HttpFetch {
    async fn get(&self, url: &str) -> Result<Fetched, FetchError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| FetchError::BadUrl)?;
        if !url_allowed(&parsed, self.insecure_allow_http) {
            return Err(FetchError::InsecureUrl);
        }
        let mut resp = self
            .client
            .get(parsed)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(FetchError::Status(resp.status().as_u16()));
        }
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let max_age = resp
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .and_then(max_age);
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| FetchError::Transport(e.to_string()))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Fetched { body, max_age })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("max-age=\"60\""), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-store"), Some(Duration::ZERO));
        assert_eq!(max_age("max-age=600, no-cache"), Some(Duration::ZERO));
        assert_eq!(max_age("public"), None);
        assert_eq!(max_age("max-age=-1"), None);
    }

    #[test]
    fn only_https_or_loopback_http_by_default() {
        let u = |s: &str| reqwest::Url::parse(s).expect("url");
        assert!(url_allowed(&u("https://id.example.com/jwks"), false));
        assert!(url_allowed(&u("http://127.0.0.1:8080/jwks"), false));
        assert!(url_allowed(&u("http://[::1]/jwks"), false));
        assert!(url_allowed(&u("http://localhost/jwks"), false));
        assert!(!url_allowed(&u("http://id.example.com/jwks"), false));
        assert!(!url_allowed(&u("http://10.0.0.1/jwks"), false));
        assert!(!url_allowed(&u("file:///etc/passwd"), false));
        assert!(url_allowed(&u("http://id.example.com/jwks"), true));
        assert!(!url_allowed(&u("ftp://id.example.com/jwks"), true));
    }
}
