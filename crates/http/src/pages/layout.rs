//! What every page shares: the tenant's branding as the layout shows it ([`Chrome`]), the one
//! style sheet (inline, allowed by its hash in the CSP, so no style can be injected and no
//! stylesheet request is needed), and the answer with its security headers ([`render`]).
//!
//! Headers on every page: a Content-Security-Policy that loads nothing but the hashed style and
//! the tenant's logo origin, runs no script, posts forms only to Portcullis and the client's
//! redirect target, and forbids framing (`frame-ancestors 'none'`, plus `X-Frame-Options: DENY`
//! for old browsers); `Referrer-Policy: no-referrer`; `X-Content-Type-Options: nosniff`;
//! `Cache-Control: no-store`. This module must never put an unchecked value into the CSS or the
//! CSP (only `portcullis_core::branding` types go there).

use crate::state::SignInPages;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use portcullis_core::branding::Branding;
use portcullis_core::tenant::TenantId;
use sha2::{Digest, Sha256};

use super::messages::Text;

/// The accent colour when a tenant sets none (WCAG AA contrast with white text).
pub const DEFAULT_ACCENT: &str = "#1f4fbf";

/// The style sheet of every page; the accent colour is appended as a custom property.
const BASE_CSS: &str = include_str!("../../templates/pages.css");

/// The branded frame of a page.
#[derive(Debug, Clone)]
pub struct Chrome {
    pub lang: &'static str,
    /// The tenant's display name, else its id.
    pub brand: String,
    pub logo_url: Option<String>,
    /// The inline style, exactly as hashed into the CSP.
    pub style: String,
    logo_origin: Option<String>,
}

impl Chrome {
    pub fn new(tenant: Option<&TenantId>, branding: &Branding, text: &Text) -> Self {
        let accent = branding
            .accent_colour
            .as_ref()
            .map_or(DEFAULT_ACCENT, |c| c.as_str());
        Self {
            lang: text.lang,
            brand: branding
                .display_name
                .as_ref()
                .map(|d| d.as_str().to_owned())
                .or_else(|| tenant.map(|t| t.as_str().to_owned()))
                .unwrap_or_else(|| "Portcullis".to_owned()),
            logo_url: branding.logo_url.as_ref().map(|l| l.as_str().to_owned()),
            logo_origin: branding.logo_url.as_ref().map(|l| l.origin()),
            style: format!("{BASE_CSS}:root{{--accent:{accent}}}\n"),
        }
    }

    /// The tenant's stored branding (none when unset, unreadable or the store fails: a page is
    /// never refused for its decoration); without a branded name, the tenant's display name.
    pub async fn load(state: &SignInPages, tenant: &TenantId, text: &Text) -> Self {
        let mut branding = match state.store.get_branding(tenant).await {
            Ok(Some(b)) => Branding::parse(
                b.display_name.as_deref(),
                b.logo_url.as_deref(),
                b.accent_colour.as_deref(),
            )
            .unwrap_or_default(),
            Ok(None) => Branding::default(),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the tenant's branding");
                Branding::default()
            }
        };
        if branding.display_name.is_none() {
            if let Ok(Some(t)) = state.store.get_tenant(tenant).await {
                branding.display_name =
                    portcullis_core::branding::DisplayName::parse(&t.display_name).ok();
            }
        }
        Self::new(Some(tenant), &branding, text)
    }

    /// The page's Content-Security-Policy. `form_target`: the CSP source of where the page's
    /// forms may end up besides Portcullis (the client's redirect URI after sign-in).
    pub fn content_security_policy(&self, form_target: Option<&str>) -> String {
        let style_hash = STANDARD.encode(Sha256::digest(self.style.as_bytes()));
        let img = self.logo_origin.as_deref().unwrap_or("'none'");
        let form = match form_target {
            Some(t) => format!("'self' {t}"),
            None => "'self'".to_owned(),
        };
        format!(
            "default-src 'none'; style-src 'sha256-{style_hash}'; img-src {img}; \
             form-action {form}; frame-ancestors 'none'; base-uri 'none'"
        )
    }
}

/// The CSP source for a redirect URI: its origin for http(s), its scheme for a private-use
/// scheme of a native app; `None` if it cannot be written safely as a source.
pub fn form_target_source(redirect_uri: &str) -> Option<String> {
    let uri = portcullis_core::uri::Uri::parse(redirect_uri).ok()?;
    let safe = |s: &str| {
        !s.is_empty()
            && s.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+' | b'[' | b']' | b':')
            })
    };
    match (uri.scheme, uri.authority) {
        (scheme @ ("http" | "https"), Some(a)) if safe(a.host) => Some(match a.port {
            Some(p) => format!("{scheme}://{}:{p}", a.host),
            None => format!("{scheme}://{}", a.host),
        }),
        (scheme, _) if safe(scheme) && !matches!(scheme, "http" | "https") => {
            Some(format!("{scheme}:"))
        }
        _ => None,
    }
}

/// Sets the headers every page carries.
pub fn security_headers(headers: &mut HeaderMap, csp: &str) {
    let pairs: [(header::HeaderName, &str); 6] = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ];
    for (name, value) in pairs {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if let Ok(v) = HeaderValue::from_str(csp) {
        headers.insert(header::CONTENT_SECURITY_POLICY, v);
    }
}

/// A rendered page as an answer with its security headers. A template that fails to render
/// (it cannot, short of a bug) is a bare 500.
pub fn render(
    status: StatusCode,
    chrome: &Chrome,
    page: &impl askama::Template,
    form_target: Option<&str>,
) -> Response {
    let html = match page.render() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "a page template failed to render");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut res = (status, html).into_response();
    security_headers(
        res.headers_mut(),
        &chrome.content_security_policy(form_target),
    );
    res
}
