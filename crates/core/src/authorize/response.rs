//! The authorization response on the wire (RFC 6749 section 4.1.2, RFC 9207, OAuth 2.0 Form Post
//! Response Mode): a redirect whose query carries the parameters, or an HTML page that posts
//! them.
//!
//! Query mode appends the parameters, `application/x-www-form-urlencoded`, to the redirect URI,
//! keeping the URI's own query (RFC 6749 section 3.1.2: it "MUST be retained"); registration
//! refuses a query that names a response parameter, so none appears twice.
//!
//! Form-post mode answers an HTML page holding a form whose action is the redirect URI and whose
//! hidden fields are the parameters, every value HTML-escaped. The form submits itself with one
//! fixed script, [`FORM_POST_SCRIPT`], allowed by its hash in the page's Content-Security-Policy
//! ([`FormPost::content_security_policy`]: `script-src 'sha256-...'`, nothing else may load or
//! run), not by `'unsafe-inline'`: an injected script would not run even if escaping failed.
//! Without JavaScript the page shows a button that submits the same form. This module must never
//! put an unescaped value into the page, and never build a Location from anything but a
//! validated redirect URI.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// The whole script of a form-post page.
pub const FORM_POST_SCRIPT: &str = "document.forms[0].submit();";

/// How the response reaches the client (`response_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMode {
    /// Parameters in the redirect URI's query; the default for `code`.
    Query,
    /// An auto-submitting HTML form posted to the redirect URI.
    FormPost,
}

impl ResponseMode {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "query" => Some(Self::Query),
            "form_post" => Some(Self::FormPost),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Query => "query",
            Self::FormPost => "form_post",
        }
    }
}

/// What the endpoint sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationResponse {
    /// `303 See Other` to this `Location`.
    Redirect { location: String },
    /// `200` with this page.
    FormPost(FormPost),
}

/// A form-post page and the headers it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormPost {
    /// `text/html; charset=utf-8`.
    pub html: String,
}

impl FormPost {
    /// The Content-Security-Policy to send with the page: nothing loads, only
    /// [`FORM_POST_SCRIPT`] runs (by its hash), no framing, no `<base>`.
    pub fn content_security_policy() -> String {
        format!(
            "default-src 'none'; script-src '{}'; base-uri 'none'; frame-ancestors 'none'",
            script_hash()
        )
    }
}

/// `sha256-<base64>` of [`FORM_POST_SCRIPT`], as CSP writes a hash source.
pub fn script_hash() -> String {
    format!(
        "sha256-{}",
        STANDARD.encode(Sha256::digest(FORM_POST_SCRIPT.as_bytes()))
    )
}

/// Builds the response to `redirect_uri` (already validated) with `params` in order.
pub fn build(
    redirect_uri: &str,
    mode: ResponseMode,
    params: &[(&str, &str)],
) -> AuthorizationResponse {
    match mode {
        ResponseMode::Query => AuthorizationResponse::Redirect {
            location: append_query(redirect_uri, params),
        },
        ResponseMode::FormPost => AuthorizationResponse::FormPost(FormPost {
            html: form_post_page(redirect_uri, params),
        }),
    }
}

/// `uri` with `params` added to its query, keeping what is there.
pub fn append_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut encoded = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        encoded.append_pair(k, v);
    }
    let encoded = encoded.finish();
    let sep = match uri.rfind('?') {
        None => "?",
        Some(i) if i + 1 == uri.len() || uri.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{uri}{sep}{encoded}")
}

/// Escapes text for an HTML attribute value or element content.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

fn form_post_page(action: &str, params: &[(&str, &str)]) -> String {
    let mut fields = String::new();
    for (k, v) in params {
        fields.push_str(&format!(
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">\n",
            html_escape(k),
            html_escape(v)
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n<title>Continue</title>\n</head>\n<body>\n\
         <form method=\"post\" action=\"{}\">\n{fields}\
         <noscript><p>JavaScript is off. Press Continue to return to the application.</p>\
         <button type=\"submit\">Continue</button></noscript>\n</form>\n\
         <script>{FORM_POST_SCRIPT}</script>\n</body>\n</html>\n",
        html_escape(action)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_form_encoded_and_the_uri_query_is_kept() {
        let p = [
            ("code", "a b&c=d"),
            ("state", "x/y?z#"),
            ("iss", "https://auth.example"),
        ];
        let encoded = "code=a+b%26c%3Dd&state=x%2Fy%3Fz%23&iss=https%3A%2F%2Fauth.example";
        for (uri, want) in [
            (
                "https://app.example/cb",
                format!("https://app.example/cb?{encoded}"),
            ),
            (
                "https://app.example/cb?t=1",
                format!("https://app.example/cb?t=1&{encoded}"),
            ),
            (
                "https://app.example/cb?",
                format!("https://app.example/cb?{encoded}"),
            ),
            (
                "https://app.example/cb?t=1&",
                format!("https://app.example/cb?t=1&{encoded}"),
            ),
            (
                "com.example.app:/cb",
                format!("com.example.app:/cb?{encoded}"),
            ),
        ] {
            assert_eq!(
                build(uri, ResponseMode::Query, &p),
                AuthorizationResponse::Redirect { location: want },
                "{uri}"
            );
        }
    }

    #[test]
    fn a_form_post_page_escapes_every_value_and_runs_only_the_hashed_script() {
        let AuthorizationResponse::FormPost(page) = build(
            "https://app.example/cb?a=1&b=\"2\"",
            ResponseMode::FormPost,
            &[
                ("code", "c0de"),
                ("state", "\"><script>alert(1)</script>'&"),
            ],
        ) else {
            panic!("form post expected");
        };
        let html = &page.html;
        assert!(
            html.contains("action=\"https://app.example/cb?a=1&amp;b=&quot;2&quot;\""),
            "{html}"
        );
        assert!(html.contains(
            "name=\"state\" value=\"&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&#x27;&amp;\""
        ), "{html}");
        assert_eq!(
            html.matches("<script>").count(),
            1,
            "only the fixed script: {html}"
        );
        assert!(html.contains(&format!("<script>{FORM_POST_SCRIPT}</script>")));
        assert!(html.contains("<noscript>"), "works without JavaScript");
        // The CSP hash is the hash of exactly that script (computed independently here).
        let csp = FormPost::content_security_policy();
        let hash = STANDARD.encode(Sha256::digest(b"document.forms[0].submit();"));
        assert!(
            csp.contains(&format!("script-src 'sha256-{hash}'")),
            "{csp}"
        );
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    }

    #[test]
    fn escaping_covers_the_five_html_specials() {
        assert_eq!(
            html_escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#x27;x&#x27;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(html_escape("plain é"), "plain é");
    }

    #[test]
    fn response_modes_parse() {
        assert_eq!(ResponseMode::parse("query"), Some(ResponseMode::Query));
        assert_eq!(
            ResponseMode::parse("form_post"),
            Some(ResponseMode::FormPost)
        );
        for bad in ["fragment", "QUERY", "", "web_message"] {
            assert_eq!(ResponseMode::parse(bad), None, "{bad}");
        }
    }
}
