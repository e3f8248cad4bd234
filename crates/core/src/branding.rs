//! A tenant's branding on its sign-in pages: the display name, a logo URL and an accent colour,
//! each parsed strictly so that nothing an administrator stores can become markup or CSS.
//!
//! The display name is text (the pages HTML-escape it); the colour is exactly `#rrggbb`, so it
//! can be written into a style sheet without escaping; the logo URL is an `https` URL (or `http`
//! on a loopback host, for development) of RFC 3986 characters without quotes, parentheses,
//! spaces, backslashes, user-info or a fragment, so it is safe in an attribute and a CSP source
//! list alike. This module must never accept a value it has not fully checked.

use crate::uri::Uri;

/// Longest display name, in characters.
pub const MAX_DISPLAY_NAME_CHARS: usize = 80;
/// Longest logo URL.
pub const MAX_LOGO_URL_LEN: usize = 1024;

/// Why a branding value is refused. Client-facing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BrandingError {
    #[error("display_name must be 1 to 80 characters without control characters")]
    DisplayName,
    #[error("accent_colour must be a hex colour #rrggbb")]
    Colour,
    #[error("logo_url must be an https URL (http only on a loopback host) of at most 1024 characters, without user-info, fragment, quotes, parentheses or spaces")]
    LogoUrl,
}

/// A checked display name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(s: &str) -> Result<Self, BrandingError> {
        let n = s.chars().count();
        let ok = (1..=MAX_DISPLAY_NAME_CHARS).contains(&n)
            && !s.chars().any(char::is_control)
            && s.trim() == s;
        ok.then(|| Self(s.to_owned()))
            .ok_or(BrandingError::DisplayName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A checked `#rrggbb` colour (stored lowercase).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccentColour(String);

impl AccentColour {
    pub fn parse(s: &str) -> Result<Self, BrandingError> {
        let ok =
            s.len() == 7 && s.starts_with('#') && s.bytes().skip(1).all(|b| b.is_ascii_hexdigit());
        ok.then(|| Self(s.to_ascii_lowercase()))
            .ok_or(BrandingError::Colour)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A checked logo URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoUrl(String);

impl LogoUrl {
    pub fn parse(s: &str) -> Result<Self, BrandingError> {
        if s.len() > MAX_LOGO_URL_LEN
            || s.bytes()
                .any(|b| matches!(b, b'\'' | b'"' | b'(' | b')' | b';' | b',' | b'*'))
        {
            return Err(BrandingError::LogoUrl);
        }
        let uri = Uri::parse(s).map_err(|_| BrandingError::LogoUrl)?;
        let Some(auth) = uri.authority else {
            return Err(BrandingError::LogoUrl);
        };
        let scheme_ok = match uri.scheme {
            "https" => true,
            "http" => matches!(auth.host, "127.0.0.1" | "[::1]" | "localhost"),
            _ => false,
        };
        if !scheme_ok
            || auth.userinfo.is_some()
            || auth.host.is_empty()
            || uri.fragment.is_some()
            || uri.has_dot_segment()
        {
            return Err(BrandingError::LogoUrl);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `scheme://host[:port]`: the CSP `img-src` source that allows this logo and nothing else
    /// of another origin.
    pub fn origin(&self) -> String {
        match Uri::parse(&self.0) {
            Ok(Uri {
                scheme,
                authority: Some(a),
                ..
            }) => match a.port {
                Some(p) => format!("{scheme}://{}:{p}", a.host),
                None => format!("{scheme}://{}", a.host),
            },
            // Unreachable for a parsed value; allow nothing.
            _ => "'none'".to_owned(),
        }
    }
}

/// A tenant's branding; each field optional (the pages fall back to the tenant id, no logo and
/// the default colour).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Branding {
    pub display_name: Option<DisplayName>,
    pub logo_url: Option<LogoUrl>,
    pub accent_colour: Option<AccentColour>,
}

impl Branding {
    /// Parses stored or submitted text values.
    pub fn parse(
        display_name: Option<&str>,
        logo_url: Option<&str>,
        accent_colour: Option<&str>,
    ) -> Result<Self, BrandingError> {
        Ok(Self {
            display_name: display_name.map(DisplayName::parse).transpose()?,
            logo_url: logo_url.map(LogoUrl::parse).transpose()?,
            accent_colour: accent_colour.map(AccentColour::parse).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_exactly_six_hex_digits() {
        assert_eq!(
            AccentColour::parse("#1A2b3C").map(|c| c.0),
            Ok("#1a2b3c".into())
        );
        for bad in [
            "",
            "#fff",
            "red",
            "#12345g",
            "#1234567",
            "#123456;}",
            "1234567",
            "#12345\u{e9}",
            "#123456 ",
            "expression(1)",
        ] {
            assert_eq!(
                AccentColour::parse(bad),
                Err(BrandingError::Colour),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn logo_urls_are_https_without_anything_that_escapes_an_attribute_or_css() {
        let ok = LogoUrl::parse("https://cdn.example.com/logo.svg?v=2").expect("ok");
        assert_eq!(ok.origin(), "https://cdn.example.com");
        assert_eq!(
            LogoUrl::parse("https://cdn.example.com:8443/l.png").map(|l| l.origin()),
            Ok("https://cdn.example.com:8443".into())
        );
        assert!(LogoUrl::parse("http://127.0.0.1:3000/l.png").is_ok());
        for bad in [
            "javascript:alert(1)",
            "data:image/svg+xml,<svg/>",
            "http://cdn.example.com/l.png",
            "https://cdn.example.com/l.png\" onerror=\"x",
            "https://cdn.example.com/l.png'",
            "https://cdn.example.com/a(b).png",
            "https://cdn.example.com/l.png; script-src *",
            "https://u:p@cdn.example.com/l.png",
            "https://cdn.example.com/l.png#x",
            "https://cdn.example.com/<b>",
            "//cdn.example.com/l.png",
            "https:///l.png",
        ] {
            assert_eq!(LogoUrl::parse(bad), Err(BrandingError::LogoUrl), "{bad:?}");
        }
    }

    #[test]
    fn display_names_are_plain_text_of_bounded_length() {
        assert!(
            DisplayName::parse("Acme <Corp> & \"Sons\"").is_ok(),
            "escaped when shown"
        );
        for bad in ["", " Acme", "Acme\n", "a\u{7}", &"x".repeat(81)] {
            assert_eq!(DisplayName::parse(bad), Err(BrandingError::DisplayName));
        }
    }
}
