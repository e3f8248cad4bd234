//! The browser-facing pages of sign-in: server-rendered HTML that works without JavaScript.
//!
//! * `templates/*.html` are askama templates, compiled into the binary and checked at build
//!   time; every value is HTML-escaped unless a template says `|safe` (only the inline style,
//!   built from a constant and a checked colour, is).
//! * [`messages`] is the catalogue of every user-facing string, with the language choice.
//! * [`layout`] is the branded frame and the security headers every page carries.
//! * [`cookies`] are the session and pre-session cookies; [`Csrf`] binds each form's token to
//!   the browser's session (or, before sign-in, pre-session) cookie, checked in constant time.
//! * [`authorize`] is the authorization endpoint with its sign-in and consent pages.
//! * [`logout`] is RP-initiated logout with its confirmation and signed-out pages.
//! * [`device`] is the device verification page (RFC 8628, `portcullis login`).
//! * [`account`] is invitation acceptance, password reset and the signed-in user's account page.
//!
//! * [`Fields`] is the one way a page reads a form body or query string: bounded in pairs, and
//!   a field the page reads refused when repeated (which of two values was meant is ambiguous).
//!
//! Handlers here stay thin: the sign-in decision is `portcullis_service::login`, sessions and
//! codes are `portcullis_service::sign_in`, request validation is `portcullis_core::authorize`.
//! They take the pages' own state (`crate::state::SignInPages`), never the app's whole state.
//! This module must never redirect to an unvalidated URI, render a value unescaped, or accept a
//! form whose CSRF token does not match the browser's cookie.

pub mod account;
pub mod authorize;
pub mod cookies;
pub mod device;
pub mod layout;
pub mod logout;
pub mod messages;

use crate::state::{RouterState, SignInPages};
use askama::Template;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use portcullis_core::tenant::TenantId;

pub use cookies::CookiePolicy;
pub use layout::{render, Chrome};
pub use messages::Text;

/// The pages' routes.
/// The username a confirmation page (consent, device approval) shows for the signed-in person;
/// empty if the user is gone, and the page still renders.
pub(crate) async fn signed_in_username(
    state: &SignInPages,
    tenant: &TenantId,
    user: &portcullis_core::user::UserId,
) -> Result<String, portcullis_store::StoreError> {
    Ok(state
        .store
        .get_user(tenant, user)
        .await?
        .map(|u| u.username.as_str().to_owned())
        .unwrap_or_default())
}

pub fn router() -> Router<RouterState> {
    authorize::router()
        .merge(logout::router())
        .merge(account::router())
        .merge(device::router())
}

/// A form body or query string as every page reads it (see [`Fields::parse`]). It holds
/// passwords (sign-in, account, device pages), so its `Debug` names the fields only.
pub struct Fields(Vec<(String, String)>);

impl std::fmt::Debug for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| format!("{k}=[redacted]")))
            .finish()
    }
}

/// Why a form or query was refused: a 400 page with `invalid_request`, the reason logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldsRefused {
    /// More pairs than the page accepts.
    TooMany,
    /// A field the page reads came more than once.
    Repeated,
}

impl FieldsRefused {
    /// The reason logged (and, on the logout page, shown as before).
    pub fn reason(self) -> &'static str {
        match self {
            Self::TooMany => "too_many_parameters",
            Self::Repeated => "repeated_parameter",
        }
    }
}

impl Fields {
    /// Reads `raw` (`application/x-www-form-urlencoded`) strictly: more than `max` pairs, or any
    /// of `singles` (the fields the page reads) more than once, is refused. Other fields may
    /// repeat: the authorization endpoint hands them on to core's rules, which refuse a repeated
    /// OAuth parameter in their own way.
    pub fn parse(raw: &str, max: usize, singles: &[&str]) -> Result<Self, FieldsRefused> {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(raw.as_bytes())
            .take(max.saturating_add(1))
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if pairs.len() > max {
            return Err(FieldsRefused::TooMany);
        }
        for name in singles {
            if pairs.iter().filter(|(k, _)| k == name).nth(1).is_some() {
                return Err(FieldsRefused::Repeated);
            }
        }
        Ok(Self(pairs))
    }

    /// The value of `name` (the only one, for a field named in `singles`).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every pair, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub fn into_pairs(self) -> Vec<(String, String)> {
        self.0
    }
}

/// The page for a refused form or query, before anything about the request is known: 400,
/// `invalid_request`, in the language the browser asks for.
pub fn fields_refused(headers: &HeaderMap, refused: FieldsRefused) -> Response {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let t = messages::pick(&[], accept);
    fields_refused_in(&Chrome::new(None, &Default::default(), t), t, refused)
}

/// [`fields_refused`] in a frame the page already has (a tenant's branding).
pub fn fields_refused_in(chrome: &Chrome, t: &Text, refused: FieldsRefused) -> Response {
    tracing::info!(
        reason = refused.reason(),
        "a page's form or query was refused"
    );
    error_page(
        StatusCode::BAD_REQUEST,
        chrome,
        t,
        t.error_bad_request,
        Some("invalid_request"),
    )
}

/// The error page.
#[derive(Debug, Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub chrome: &'a Chrome,
    pub t: &'a Text,
    pub message: &'a str,
    /// A standard error code shown for support (`invalid_request`, ...), never a secret.
    pub code: Option<&'a str>,
}

/// An error page answer.
pub fn error_page(
    status: StatusCode,
    chrome: &Chrome,
    t: &Text,
    message: &str,
    code: Option<&str>,
) -> Response {
    render(
        status,
        chrome,
        &ErrorPage {
            chrome,
            t,
            message,
            code,
        },
        None,
    )
}

/// The browser's CSRF binding for one tenant's pages: its session cookie for that tenant if it
/// has one, else its pre-session cookie (made now if it has none: [`Csrf::set_cookie`] then
/// says what to send).
#[derive(Debug, Clone)]
pub struct Csrf {
    binding: String,
    new_pre_session: Option<String>,
    policy: CookiePolicy,
}

impl Csrf {
    /// The binding of a page about to be shown (a fresh pre-session value if the browser has
    /// neither cookie).
    pub fn for_page(headers: &HeaderMap, policy: CookiePolicy, tenant: &TenantId) -> Self {
        match Self::presented(headers, policy, tenant) {
            Some(c) => c,
            None => {
                let v = cookies::new_pre_session();
                Self {
                    binding: v.clone(),
                    new_pre_session: Some(v),
                    policy,
                }
            }
        }
    }

    /// The binding a posted form must match; `None` if the browser has neither cookie.
    pub fn presented(headers: &HeaderMap, policy: CookiePolicy, tenant: &TenantId) -> Option<Self> {
        let binding = cookies::read(headers, &policy.session_name(tenant))
            .filter(|v| !v.is_empty())
            .or_else(|| {
                cookies::read(headers, &policy.pre_session_name())
                    .filter(|v| cookies::valid_pre_session(v))
            })?;
        Some(Self {
            binding,
            new_pre_session: None,
            policy,
        })
    }

    /// A binding to a session just started (the session cookie's new value).
    pub fn for_session(secret: &str, policy: CookiePolicy) -> Self {
        Self {
            binding: secret.to_owned(),
            new_pre_session: None,
            policy,
        }
    }

    /// The token for the form `purpose`.
    pub fn token(&self, state: &SignInPages, purpose: &str) -> String {
        state.login.csrf_token(&self.binding, purpose)
    }

    /// Whether `presented` is this browser's token for `purpose` (constant time).
    pub fn check(&self, state: &SignInPages, purpose: &str, presented: Option<&str>) -> bool {
        presented.is_some_and(|p| state.login.csrf_valid(&self.binding, purpose, p))
    }

    /// Adds the pre-session cookie to `res` if this binding made one.
    pub fn set_cookie(&self, res: &mut Response) {
        if let Some(v) = &self.new_pre_session {
            if let Some(h) = self.policy.set(&self.policy.pre_session_name(), v) {
                res.headers_mut().append(header::SET_COOKIE, h);
            }
        }
    }
}

/// Sets `Retry-After` to `wait` in whole seconds, rounded up (at least 1).
pub fn with_retry_after(mut res: Response, wait: std::time::Duration) -> Response {
    let secs = wait.as_secs().max(1) + u64::from(wait.subsec_millis() > 0);
    if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
        res.headers_mut().insert(header::RETRY_AFTER, v);
    }
    res
}

/// Appends a `Set-Cookie` header.
pub fn add_cookie(res: &mut Response, value: Option<HeaderValue>) {
    if let Some(v) = value {
        res.headers_mut().append(header::SET_COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_refuse_too_many_pairs_and_repeated_fields_the_page_reads() {
        let f = Fields::parse("a=1&b=2&b=3&c=", 4, &["a", "c"]).expect("reads");
        assert_eq!(f.get("a"), Some("1"));
        assert_eq!(f.get("c"), Some(""));
        assert_eq!(
            f.get("b"),
            Some("2"),
            "fields the page does not read may repeat"
        );
        assert_eq!(f.get("d"), None);
        assert_eq!(f.into_pairs().len(), 4);
        assert_eq!(
            Fields::parse("a=1&b=2&c=3", 2, &[]).map(|_| ()),
            Err(FieldsRefused::TooMany)
        );
        assert_eq!(
            Fields::parse("a=1&a=1", 4, &["a"]).map(|_| ()),
            Err(FieldsRefused::Repeated),
            "even with the same value"
        );
        assert_eq!(
            Fields::parse("user_code=A&x=1&user_code=B", 16, &["user_code"]).map(|_| ()),
            Err(FieldsRefused::Repeated)
        );
        assert!(Fields::parse("", 0, &["a"]).is_ok());
    }

    #[test]
    fn debug_names_the_fields_and_never_prints_a_value() {
        let f = Fields::parse("username=ann&password=hunter2-secret", 4, &[]).expect("reads");
        let shown = format!("{f:?}");
        assert!(
            !shown.contains("hunter2-secret") && !shown.contains("ann"),
            "{shown}"
        );
        assert!(shown.contains("password=[redacted]"), "{shown}");
    }
}
