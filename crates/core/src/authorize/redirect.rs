//! Matching the `redirect_uri` of an authorization request against a client's registered list.
//!
//! Exact string comparison (RFC 9700 section 4.1.3, RFC 6749 section 3.1.2.3 as tightened by the
//! BCP), with one exception: a native app's loopback redirect (`http://127.0.0.1/...` or
//! `http://[::1]/...`, RFC 8252 section 7.3) matches whatever port the request names, because
//! the app picks a free port when it starts listening. Host, path and query must still be
//! exactly the registered ones; `localhost` never gets the exception (registration refuses it).
//! This module must never match on a prefix, a pattern, or a normalised form.

use crate::client::{loopback_parts, ApplicationType, RedirectUri};

/// Whether `requested` is one of `registered` under the rule above.
pub fn matches(requested: &str, registered: &[RedirectUri], app: ApplicationType) -> bool {
    if registered.iter().any(|r| r.as_str() == requested) {
        return true;
    }
    if app != ApplicationType::Native {
        return false;
    }
    let Some(wanted) = loopback_parts(requested) else {
        return false;
    };
    registered
        .iter()
        .filter_map(RedirectUri::loopback_parts)
        .any(|r| r == wanted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ApplicationType::{Native, Web};

    fn reg(app: ApplicationType, uris: &[&str]) -> Vec<RedirectUri> {
        uris.iter()
            .map(|u| RedirectUri::parse(u, app).expect("registrable"))
            .collect()
    }

    /// The redirect-URI items of the "Bad input" list, one by one, against a web app.
    #[test]
    fn only_the_exact_registered_string_matches_a_web_client() {
        let r = reg(
            Web,
            &[
                "https://app.example.com/cb",
                "https://app.example.com/q?x=1",
            ],
        );
        assert!(matches("https://app.example.com/cb", &r, Web));
        assert!(matches("https://app.example.com/q?x=1", &r, Web));
        for (bad, what) in [
            ("https://app.example.com/cb/extra", "added path"),
            ("https://app.example.com/cbx", "suffix"),
            ("https://app.example.com/c", "prefix"),
            ("https://app.example.com/", "prefix (root)"),
            ("https://app.example.com/cb?", "added empty query"),
            ("https://app.example.com/cb?x=1", "added query"),
            ("https://app.example.com/q?x=1&y=2", "extended query"),
            ("https://app.example.com/q", "dropped query"),
            ("https://app.example.com/cb#frag", "fragment"),
            ("https://app.example.com/cb#", "empty fragment"),
            ("https://user@app.example.com/cb", "user-info"),
            ("https://app.example.com@evil.example/cb", "user-info trick"),
            ("https://app.example.com:443/cb", "explicit default port"),
            ("https://app.example.com:8443/cb", "other port"),
            ("http://app.example.com/cb", "other scheme"),
            ("HTTPS://app.example.com/cb", "scheme case"),
            ("https://APP.example.com/cb", "host case"),
            ("https://evil-app.example.com/cb", "host prefix"),
            ("https://app.example.com.evil.example/cb", "host suffix"),
            ("https://app.example.com/CB", "path case"),
            ("https://app.example.com/%63b", "percent-encoded path"),
            ("https://app.example.com/./cb", "dot segment"),
            ("https://app.example.com//cb", "double slash"),
            (" https://app.example.com/cb", "leading space"),
            ("https://app.example.com/cb ", "trailing space"),
            ("", "empty"),
        ] {
            assert!(!matches(bad, &r, Web), "{what}: {bad}");
        }
    }

    #[test]
    fn a_native_loopback_redirect_may_change_only_its_port() {
        let r = reg(
            Native,
            &[
                "http://127.0.0.1/cb",
                "http://[::1]:8000/v6?x=1",
                "com.example.app:/oauth2redirect",
                "https://app.example.com/claimed",
            ],
        );
        for ok in [
            "http://127.0.0.1/cb",
            "http://127.0.0.1:51004/cb",
            "http://127.0.0.1:1/cb",
            "http://[::1]:8000/v6?x=1",
            "http://[::1]/v6?x=1",
            "http://[::1]:65535/v6?x=1",
            "com.example.app:/oauth2redirect",
            "https://app.example.com/claimed",
        ] {
            assert!(matches(ok, &r, Native), "{ok}");
        }
        for (bad, what) in [
            (
                "http://localhost:51004/cb",
                "localhost instead of the IP literal",
            ),
            ("http://localhost/cb", "localhost without port"),
            ("http://127.0.0.1:51004/cb/x", "added path"),
            ("http://127.0.0.1:51004/c", "prefix"),
            ("http://127.0.0.1:51004/cb?x=1", "added query"),
            ("http://127.0.0.1:51004/cb#f", "fragment"),
            ("http://u@127.0.0.1:51004/cb", "user-info"),
            ("https://127.0.0.1:51004/cb", "other scheme"),
            ("http://127.0.0.2:51004/cb", "other loopback address"),
            ("http://[::1]:51004/cb", "other address family"),
            ("http://127.0.0.1:0/cb", "port 0"),
            ("http://127.0.0.1:65536/cb", "port out of range"),
            ("http://127.0.0.1:/cb", "empty port"),
            ("http://127.0.0.1:051004/cb", "leading zero"),
            (
                "com.example.app:/oauth2redirect/x",
                "private-use scheme, added path",
            ),
            (
                "com.example.evil:/oauth2redirect",
                "other private-use scheme",
            ),
            (
                "https://app.example.com:8443/claimed",
                "other port (not loopback)",
            ),
        ] {
            assert!(!matches(bad, &r, Native), "{what}: {bad}");
        }
    }

    #[test]
    fn the_port_exception_is_for_native_apps_only() {
        // Registration never lets a web client hold an http loopback URI; if one were stored,
        // it would still match exactly only.
        let stored = vec![RedirectUri::parse("http://127.0.0.1/cb", Native).expect("native")];
        assert!(matches("http://127.0.0.1/cb", &stored, Web));
        assert!(!matches("http://127.0.0.1:5000/cb", &stored, Web));
        assert!(matches("http://127.0.0.1:5000/cb", &stored, Native));
    }
}
