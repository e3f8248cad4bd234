//! The pages' cookies: the session cookie (its value is the session secret of
//! `portcullis_core::session`) and the pre-session cookie (a random value a browser gets before
//! it signs in, which CSRF tokens are bound to until then).
//!
//! Both are `HttpOnly`, `SameSite=Lax`, `Path=/`, and `Secure` with the `__Host-` prefix (no
//! `Domain`: only this host ever receives them). The one exception is an issuer on plain `http`
//! (a loopback development set-up): browsers drop `Secure` cookies and `__Host-` names there, so
//! the cookies go without both. The session cookie is named per tenant, so signing in to one
//! tenant never replaces the session of another. This module must never log a cookie value.

use axum::http::{header, HeaderMap, HeaderValue};
use portcullis_core::tenant::TenantId;

/// Whether the cookies are `Secure` with the `__Host-` prefix (every `https` issuer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CookiePolicy {
    pub secure: bool,
}

impl CookiePolicy {
    /// `Secure` unless the issuer is plain `http`.
    pub fn for_issuer(issuer: &str) -> Self {
        Self {
            secure: !issuer.starts_with("http://"),
        }
    }

    fn prefix(self) -> &'static str {
        if self.secure {
            "__Host-"
        } else {
            ""
        }
    }

    /// The session cookie's name for `tenant`.
    pub fn session_name(self, tenant: &TenantId) -> String {
        format!("{}pcl-session-{}", self.prefix(), tenant.as_str())
    }

    /// The pre-session cookie's name.
    pub fn pre_session_name(self) -> String {
        format!("{}pcl-pre", self.prefix())
    }

    /// A `Set-Cookie` value setting `name` to `value` for the browser session.
    pub fn set(self, name: &str, value: &str) -> Option<HeaderValue> {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}={value}; Path=/; HttpOnly; SameSite=Lax{secure}"
        ))
        .ok()
    }

    /// A `Set-Cookie` value removing `name`.
    pub fn clear(self, name: &str) -> Option<HeaderValue> {
        let secure = if self.secure { "; Secure" } else { "" };
        HeaderValue::from_str(&format!(
            "{name}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"
        ))
        .ok()
    }
}

/// The value of the cookie `name` the request carries (the first, if repeated).
pub fn read(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then(|| v.trim().to_owned())
        })
}

/// A fresh pre-session value (43 base62 characters, ~256 bits).
pub fn new_pre_session() -> String {
    portcullis_core::base62::random(&mut rand::rngs::OsRng, 43)
}

/// Whether a presented pre-session value has the shape [`new_pre_session`] makes.
pub fn valid_pre_session(v: &str) -> bool {
    v.len() == 43 && portcullis_core::base62::is_base62(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_host_prefixed_and_secure_except_on_a_plain_http_issuer() {
        let t = TenantId::parse("acme").expect("tenant");
        let https = CookiePolicy::for_issuer("https://id.example.com");
        assert_eq!(https.session_name(&t), "__Host-pcl-session-acme");
        let set = https.set("__Host-pcl-pre", "v").expect("header");
        assert_eq!(
            set.to_str().expect("ascii"),
            "__Host-pcl-pre=v; Path=/; HttpOnly; SameSite=Lax; Secure"
        );
        let dev = CookiePolicy::for_issuer("http://127.0.0.1:8080");
        assert_eq!(dev.session_name(&t), "pcl-session-acme");
        assert!(!dev
            .set("pcl-pre", "v")
            .expect("h")
            .to_str()
            .expect("a")
            .contains("Secure"));
    }

    #[test]
    fn a_cookie_is_read_by_exact_name() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("xpcl-pre=bad; pcl-pre=good; other=1"),
        );
        assert_eq!(read(&h, "pcl-pre").as_deref(), Some("good"));
        assert_eq!(read(&h, "missing"), None);
    }
}
