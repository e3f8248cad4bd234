//! Request-path normalisation, done once before route matching; the normalised path is also the
//! one forwarded upstream, so the upstream sees exactly the path the policy was chosen for.
//!
//! Rules, in order:
//! 1. The path must start with `/` (origin form). `*` and anything else: refused.
//! 2. Path parameters (`;` in a segment, RFC 3986 section 3.3): refused by default, because
//!    Java servers (Tomcat, Jetty, Spring) drop them before they resolve the path, so
//!    `/public/..;/admin` is `/admin` to them. With [`Rules::strip_parameters`] each segment is
//!    cut at its first `;` instead (Tomcat's reading), before anything else, and the stripped
//!    path is what is matched and forwarded. An encoded `;` (`%3B`) is refused either way.
//! 3. Percent-escapes of unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, so
//!    `%2e%2E` is `..` and `%61dmin` is `admin`. Other escapes stay encoded, hex uppercased.
//! 4. Refused outright (400): an encoded slash `%2F`/`%2f` or backslash `%5C`, a raw backslash,
//!    an encoded NUL or control character, and a malformed escape (`%`, `%4`, `%zz`). An encoded
//!    slash would let `/public%2F..%2Fadmin` be one segment here and three upstream.
//! 5. Strict segments (unless [`Rules::insecure_allow_windows_forms`]): a segment other than
//!    `.` and `..` that ends in a dot or a space (raw or encoded: `admin.`, `admin%20`,
//!    `..%20`, `...`) is refused, because Windows and IIS ignore trailing dots and spaces and
//!    would serve `/admin./x` as `/admin/x`.
//! 6. Empty segments (`//`) are dropped; `.` is dropped; `..` removes the previous segment
//!    (never climbing above the root). A trailing slash is kept.
//!
//! Matching is case-sensitive and this module never changes case: `/ADMIN` is a different path
//! from `/admin`. This module must never decode twice (a `%252e` stays `%252e`, which is the
//! literal text `%2e` to an RFC 3986 upstream), and never hand on a path that an upstream could
//! resolve to another one by rules of its own it knows of (parameters, trailing dots).

/// Why a path was refused. All answer 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path is not in origin form")]
    NotOriginForm,
    #[error("path contains an encoded slash or backslash")]
    EncodedSeparator,
    #[error("path contains a backslash")]
    Backslash,
    #[error("path contains an encoded control character")]
    EncodedControl,
    #[error("path contains a malformed percent-escape")]
    BadEscape,
    #[error("path contains a ';' path parameter")]
    Parameter,
    #[error("path segment ends in a dot or a space")]
    TrailingDotOrSpace,
}

/// How lenient normalisation is; the default is the safe one. From `[paths]` in the
/// configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rules {
    /// Cut every segment at its first `;` (matched and forwarded without its parameters)
    /// instead of refusing the request.
    pub strip_parameters: bool,
    /// Let segments end in a dot or a space (unsafe in front of Windows/IIS upstreams).
    pub insecure_allow_windows_forms: bool,
}

/// A normalised path: its segments (no empty ones) and whether it ended with a slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalPath {
    pub segments: Vec<String>,
    pub trailing_slash: bool,
}

impl NormalPath {
    /// The path as forwarded: `/` joined segments, with the trailing slash if there was one.
    pub fn to_path(&self) -> String {
        let mut out = String::with_capacity(64);
        for s in &self.segments {
            out.push('/');
            out.push_str(s);
        }
        if self.segments.is_empty() || self.trailing_slash {
            out.push('/');
        }
        out
    }
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Decodes unreserved escapes in one segment and refuses the dangerous ones (module docs).
fn decode_segment(raw: &str) -> Result<String, PathError> {
    let b = raw.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let (Some(&h), Some(&l)) = (b.get(i + 1), b.get(i + 2)) else {
                    return Err(PathError::BadEscape);
                };
                let (Some(h), Some(l)) = (hex(h), hex(l)) else {
                    return Err(PathError::BadEscape);
                };
                let v = h * 16 + l;
                if v == b'/' || v == b'\\' {
                    return Err(PathError::EncodedSeparator);
                }
                if v < 0x20 || v == 0x7f {
                    return Err(PathError::EncodedControl);
                }
                if v == b';' {
                    return Err(PathError::Parameter);
                }
                if is_unreserved(v) {
                    out.push(char::from(v));
                } else {
                    out.push('%');
                    out.push(char::from(b"0123456789ABCDEF"[usize::from(h)]));
                    out.push(char::from(b"0123456789ABCDEF"[usize::from(l)]));
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            c => {
                // The URI parser has already refused non-ASCII and controls in the raw path;
                // anything else passes through as sent.
                out.push(char::from(c));
                i += 1;
            }
        }
    }
    Ok(out)
}

/// A raw segment without its `;` parameters, or the refusal `rules` ask for.
fn without_parameters(raw: &str, rules: Rules) -> Result<&str, PathError> {
    match raw.split_once(';') {
        None => Ok(raw),
        Some((kept, _)) if rules.strip_parameters => Ok(kept),
        Some(_) => Err(PathError::Parameter),
    }
}

/// Whether a decoded segment is one Windows would read as another: a trailing dot or space
/// (`.` and `..` are dot-segments, resolved here).
fn is_windows_form(seg: &str) -> bool {
    seg != "." && seg != ".." && (seg.ends_with('.') || seg.ends_with("%20"))
}

/// Normalises a request path (without its query) under `rules`. See the module docs.
pub fn normalize(raw: &str, rules: Rules) -> Result<NormalPath, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotOriginForm);
    }
    let mut segments: Vec<String> = Vec::new();
    let mut trailing_slash = false;
    for raw_seg in raw[1..].split('/') {
        let seg = decode_segment(without_parameters(raw_seg, rules)?)?;
        if !rules.insecure_allow_windows_forms && is_windows_form(&seg) {
            return Err(PathError::TrailingDotOrSpace);
        }
        trailing_slash = false;
        match seg.as_str() {
            "" => trailing_slash = true,
            "." => trailing_slash = true,
            ".." => {
                segments.pop();
                trailing_slash = true;
            }
            _ => segments.push(seg),
        }
    }
    Ok(NormalPath {
        segments,
        trailing_slash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(p: &str) -> Result<String, PathError> {
        normalize(p, Rules::default()).map(|p| p.to_path())
    }

    fn stripped(p: &str) -> Result<String, PathError> {
        let rules = Rules {
            strip_parameters: true,
            ..Rules::default()
        };
        normalize(p, rules).map(|p| p.to_path())
    }

    #[test]
    fn table() {
        let ok = [
            ("/", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("//a///b", "/a/b"),
            ("/public/../admin", "/admin"),
            ("/public/./x", "/public/x"),
            ("/public/%2e%2e/admin", "/admin"),
            ("/public/%2E%2E/admin", "/admin"),
            ("/public/.%2e/admin", "/admin"),
            ("/public/%2e/x", "/public/x"),
            ("/../../etc", "/etc"),
            ("/a/..", "/"),
            ("/a/b/..", "/a/"),
            ("/%61dmin", "/admin"),
            ("/a%7eb", "/a~b"),
            ("/a%20b", "/a%20b"),
            ("/a%3fb", "/a%3Fb"),
            ("/a%252e%252e", "/a%252e%252e"),
            ("/ADMIN", "/ADMIN"),
        ];
        for (input, want) in ok {
            assert_eq!(n(input).as_deref(), Ok(want), "{input}");
        }
        let bad = [
            ("*", PathError::NotOriginForm),
            ("a/b", PathError::NotOriginForm),
            ("/public%2f..%2fadmin", PathError::EncodedSeparator),
            ("/public%2F..%2Fadmin", PathError::EncodedSeparator),
            ("/a%5cb", PathError::EncodedSeparator),
            ("/a\\..\\admin", PathError::Backslash),
            ("/a%00", PathError::EncodedControl),
            ("/a%0a", PathError::EncodedControl),
            ("/a%", PathError::BadEscape),
            ("/a%4", PathError::BadEscape),
            ("/a%zz", PathError::BadEscape),
            ("/public/..;/admin/secret", PathError::Parameter),
            ("/admin;jsessionid=x/secret", PathError::Parameter),
            ("/a;", PathError::Parameter),
            ("/a%3bb", PathError::Parameter),
            ("/a%3Bb", PathError::Parameter),
            ("/admin./x", PathError::TrailingDotOrSpace),
            ("/admin%2e/x", PathError::TrailingDotOrSpace),
            ("/admin%20/x", PathError::TrailingDotOrSpace),
            ("/admin.%20/x", PathError::TrailingDotOrSpace),
            ("/..%20/admin", PathError::TrailingDotOrSpace),
            ("/.%20/admin", PathError::TrailingDotOrSpace),
            ("/.../admin", PathError::TrailingDotOrSpace),
            ("/a/b.", PathError::TrailingDotOrSpace),
        ];
        for (input, want) in bad {
            assert_eq!(n(input), Err(want), "{input}");
        }
    }

    #[test]
    fn parameters_are_stripped_only_when_asked() {
        for (input, want) in [
            ("/public/..;/admin/secret", "/admin/secret"),
            ("/admin;jsessionid=x/secret", "/admin/secret"),
            ("/a;x/b;y=1;z/", "/a/b/"),
            ("/;x/a", "/a"),
            ("/a/.;x/b", "/a/b"),
        ] {
            assert_eq!(stripped(input).as_deref(), Ok(want), "{input}");
        }
        // Stripping cannot produce a Windows form or hide an encoded ';'.
        assert_eq!(stripped("/admin.;x/y"), Err(PathError::TrailingDotOrSpace));
        assert_eq!(stripped("/a%3Bb"), Err(PathError::Parameter));
        // Windows forms pass only when asked, and `.`/`..` are still resolved.
        let lenient = Rules {
            insecure_allow_windows_forms: true,
            ..Rules::default()
        };
        let l = |p: &str| normalize(p, lenient).map(|p| p.to_path());
        assert_eq!(l("/admin./x").as_deref(), Ok("/admin./x"));
        assert_eq!(l("/a/../admin%20").as_deref(), Ok("/admin%20"));
        assert_eq!(l("/a;b"), Err(PathError::Parameter));
    }

    #[test]
    fn normalising_twice_changes_nothing() {
        for p in ["/a/./b/../c//d/", "/x%41y/%2e%2e/z", "/a%20b/c"] {
            let once = n(p).expect("ok");
            assert_eq!(n(&once).expect("ok"), once, "{p}");
        }
    }
}
