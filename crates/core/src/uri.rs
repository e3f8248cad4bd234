//! A strict reader for the absolute URIs that OAuth registers and compares: redirect URIs,
//! post-logout redirect URIs and web origins.
//!
//! Redirect URIs are compared as strings, character for character (RFC 9700 section 4.1.3), so
//! the string that is checked must be the string that is compared. A WHATWG URL parser (the
//! `url` crate, browsers) rewrites what it reads: it drops tabs and newlines, turns `\` into
//! `/`, lowercases hosts, removes default ports and resolves `..`. Checking the rewritten form
//! and comparing the raw one would let the two disagree. This reader rewrites nothing: it splits
//! an RFC 3986 `absolute-URI [ "#" fragment ]` into its parts and refuses any character outside
//! RFC 3986's sets (spaces, controls, non-ASCII, `\ " < > ^ ` { | }`), malformed
//! percent-encodings and brackets outside an IP-literal host.
//!
//! It only splits; what a part may hold for a given use (scheme, host, no user-info, no
//! fragment) is for [`crate::client`] to rule. This module must never normalise its input.

/// Longest URI accepted anywhere a client registers or sends one.
pub const MAX_URI_LEN: usize = 2048;

/// Why a string is not an absolute URI this reader accepts. Client-facing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    #[error("a URI is 1 to 2048 characters")]
    Length,
    #[error("a URI may hold only RFC 3986 characters (no spaces, controls, non-ASCII, backslashes, quotes, <, >, ^, `, {{, |, }})")]
    Character,
    #[error("a URI has a percent sign not followed by two hexadecimal digits")]
    PercentEncoding,
    #[error("a URI must be absolute: it starts with a scheme such as https:")]
    NoScheme,
    #[error("a URI's port must be a number from 1 to 65535")]
    Port,
    #[error("a URI's host is malformed")]
    Host,
}

/// The authority of a URI (`//userinfo@host:port`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authority<'a> {
    pub userinfo: Option<&'a str>,
    /// As written: a name, an IPv4 address, or an IP literal in brackets (`[::1]`).
    pub host: &'a str,
    /// The digits after `:`, if any (checked: 1 to 65535, no leading zero).
    pub port: Option<&'a str>,
}

/// An absolute URI split into its parts, borrowing the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Uri<'a> {
    /// As written (case is kept; RFC 3986 scheme characters only).
    pub scheme: &'a str,
    pub authority: Option<Authority<'a>>,
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub fragment: Option<&'a str>,
}

impl<'a> Uri<'a> {
    /// Splits `s`; see the module documentation for what is refused.
    pub fn parse(s: &'a str) -> Result<Self, UriError> {
        if s.is_empty() || s.len() > MAX_URI_LEN {
            return Err(UriError::Length);
        }
        check_characters(s)?;
        let (scheme, rest) = s.split_once(':').ok_or(UriError::NoScheme)?;
        let mut chars = scheme.bytes();
        let scheme_ok = chars.next().is_some_and(|b| b.is_ascii_alphabetic())
            && chars.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !scheme_ok {
            return Err(UriError::NoScheme);
        }
        let (rest, fragment) = match rest.split_once('#') {
            Some((r, f)) => (r, Some(f)),
            None => (rest, None),
        };
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q)),
            None => (rest, None),
        };
        let (authority, path) = match rest.strip_prefix("//") {
            Some(after) => {
                let end = after.find('/').unwrap_or(after.len());
                let (auth, path) = after.split_at(end);
                (Some(parse_authority(auth)?), path)
            }
            None => (None, rest),
        };
        // Brackets belong to an IP-literal host only.
        let outside_host = [Some(path), query, fragment];
        if outside_host
            .iter()
            .flatten()
            .any(|p| p.contains(['[', ']']))
        {
            return Err(UriError::Character);
        }
        Ok(Self {
            scheme,
            authority,
            path,
            query,
            fragment,
        })
    }

    /// Whether the path has a `.` or `..` segment (browsers resolve them, so the URI a browser
    /// visits would differ from the one registered).
    pub fn has_dot_segment(&self) -> bool {
        self.path.split('/').any(|seg| seg == "." || seg == "..")
    }
}

fn check_characters(s: &str) -> Result<(), UriError> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return Err(UriError::PercentEncoding);
            }
            i += 3;
            continue;
        }
        let allowed = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b':'
                    | b'/'
                    | b'?'
                    | b'#'
                    | b'['
                    | b']'
                    | b'@'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        if !allowed {
            return Err(UriError::Character);
        }
        i += 1;
    }
    Ok(())
}

fn parse_authority(auth: &str) -> Result<Authority<'_>, UriError> {
    let (userinfo, hostport) = match auth.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, auth),
    };
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        let close = inner.find(']').ok_or(UriError::Host)?;
        let host = &hostport[..close + 2];
        let after = &inner[close + 1..];
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or(UriError::Host)?),
        };
        let literal = &inner[..close];
        let ip_ok = literal.parse::<std::net::Ipv6Addr>().is_ok();
        if !ip_ok {
            return Err(UriError::Host);
        }
        (host, port)
    } else {
        if hostport.contains(['[', ']']) {
            return Err(UriError::Character);
        }
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    if userinfo.is_some_and(|u| u.contains(['[', ']'])) {
        return Err(UriError::Character);
    }
    if let Some(p) = port {
        let ok = !p.is_empty()
            && p.len() <= 5
            && p.bytes().all(|b| b.is_ascii_digit())
            && !p.starts_with('0')
            && p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n));
        if !ok {
            return Err(UriError::Port);
        }
    }
    Ok(Authority {
        userinfo,
        host,
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_without_rewriting() {
        let u = Uri::parse("https://u:p@Example.com:8443/a/b?x=1&y=2#frag").expect("uri");
        assert_eq!(u.scheme, "https");
        let a = u.authority.expect("authority");
        assert_eq!(
            (a.userinfo, a.host, a.port),
            (Some("u:p"), "Example.com", Some("8443"))
        );
        assert_eq!(u.path, "/a/b");
        assert_eq!(u.query, Some("x=1&y=2"));
        assert_eq!(u.fragment, Some("frag"));

        let n = Uri::parse("com.example.app:/oauth2redirect").expect("private-use");
        assert_eq!(n.scheme, "com.example.app");
        assert_eq!(n.authority, None);
        assert_eq!(n.path, "/oauth2redirect");

        let v6 = Uri::parse("http://[::1]:5000/cb").expect("v6");
        let a = v6.authority.expect("authority");
        assert_eq!((a.host, a.port), ("[::1]", Some("5000")));
        assert_eq!(Uri::parse("https://a.example").expect("no path").path, "");
        assert_eq!(
            Uri::parse("https://a.example/cb?")
                .expect("empty query")
                .query,
            Some("")
        );
    }

    #[test]
    fn refuses_what_a_browser_would_rewrite_or_misread() {
        for (bad, why) in [
            ("", UriError::Length),
            ("https://a.example/\tcb", UriError::Character),
            ("https://a.example/c b", UriError::Character),
            ("https://a.example\\@evil.example/", UriError::Character),
            ("https://a.example/é", UriError::Character),
            ("https://a.example/\"", UriError::Character),
            ("https://a.example/%zz", UriError::PercentEncoding),
            ("https://a.example/%4", UriError::PercentEncoding),
            ("/relative/path", UriError::NoScheme),
            ("a.example/cb", UriError::NoScheme),
            ("1http://a.example/", UriError::NoScheme),
            ("https://a.example:0/", UriError::Port),
            ("https://a.example:65536/", UriError::Port),
            ("https://a.example:080/", UriError::Port),
            ("https://a.example:/", UriError::Port),
            ("https://a.example:8x/", UriError::Port),
            ("http://[::1/cb", UriError::Host),
            ("http://[nope]/cb", UriError::Host),
            ("http://[::1]x/cb", UriError::Host),
            ("https://a.example/[x]", UriError::Character),
        ] {
            assert_eq!(Uri::parse(bad), Err(why), "{bad:?}");
        }
        let long = format!("https://a.example/{}", "a".repeat(MAX_URI_LEN));
        assert_eq!(Uri::parse(&long), Err(UriError::Length));
    }

    #[test]
    fn dot_segments_are_noticed() {
        for (uri, dots) in [
            ("https://a.example/a/../b", true),
            ("https://a.example/./b", true),
            ("https://a.example/a/..", true),
            ("https://a.example/a..b/.c", false),
        ] {
            assert_eq!(
                Uri::parse(uri).expect("uri").has_dot_segment(),
                dots,
                "{uri}"
            );
        }
    }
}
