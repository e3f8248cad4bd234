//! The authorization request (RFC 6749 section 4.1.1, RFC 7636, OpenID Connect Core section
//! 3.1.2.1): from the query or form parameters to a typed [`AuthorizationRequest`], or to the
//! error that must be shown or sent back.
//!
//! Validation has two stages, and the type of the error says which:
//!
//! 1. Until the client and its redirect URI are established, nothing may be sent to the redirect
//!    URI (it could be an attacker's: RFC 6749 section 4.1.2.1, RFC 9700 section 4.11.1). A
//!    missing, malformed or unknown `client_id`, a client that is disabled or not registered for
//!    the code flow, a missing or unregistered `redirect_uri`, or either parameter repeated, is
//!    an [`ErrorPage`]: Portcullis shows it to the user and never redirects.
//! 2. After, every error is an [`AuthorizationError`]: sent to the established redirect URI
//!    (in the request's response mode when that parameter itself is valid) with `error`,
//!    `error_description`, `state` and `iss` (RFC 9207).
//!
//! What is checked in stage 2, in order: `response_mode`; `state`; no other parameter repeated
//! (RFC 6749 section 3.1); `request`, `request_uri` and `registration` are refused
//! (`request_not_supported`, `request_uri_not_supported`, `registration_not_supported`: a
//! pushed request's `request_uri` is resolved by the endpoint before validation, see
//! [`pushed`]); a client that must push its requests sent this one directly (`invalid_request`);
//! `response_type` is `code` (anything else is `unsupported_response_type`); PKCE with `S256`
//! for every client (`code_challenge` required, `code_challenge_method` required and `S256`;
//! `plain` refused); `scope` present and within the client's allowed scopes (`invalid_scope`);
//! `prompt` values known, `none` alone; `max_age`, `nonce`, `login_hint`, `ui_locales` and
//! `dpop_jkt` (RFC 9449 section 10) well formed. Parameters sent empty count as omitted (RFC 6749 section 3.1); unknown parameters
//! are ignored.
//!
//! This module decides; looking the client up, sessions, consent and issuing the code are the
//! endpoint's. It must never let a stage-1 failure produce a redirect.

pub mod pkce;
pub mod pushed;
pub mod redirect;
pub mod response;

use std::collections::BTreeMap;

use crate::client::{ApplicationType, ClientId, RedirectUri};
use crate::confirmation::Thumbprint;
use crate::oauth::{GrantType, ScopeSet};
use crate::tenant::TenantId;

pub use pkce::{CodeChallenge, CodeVerifier, PkceError};
pub use response::{AuthorizationResponse, FormPost, ResponseMode};

/// Most distinct parameters read from one request; the HTTP edge bounds the request size too.
pub const MAX_PARAMETERS: usize = 64;
/// Longest `state` echoed back.
pub const MAX_STATE_LEN: usize = 2048;
/// Longest `nonce` carried into the ID token.
pub const MAX_NONCE_LEN: usize = 512;
/// Longest `login_hint`, in characters.
pub const MAX_LOGIN_HINT_LEN: usize = 256;
/// Most language tags in `ui_locales`.
pub const MAX_UI_LOCALES: usize = 16;

/// The client as the authorization endpoint needs it, built by the service from the stored
/// client and its tenant.
#[derive(Debug, Clone)]
pub struct AppClient {
    pub client_id: ClientId,
    pub tenant: TenantId,
    pub application_type: ApplicationType,
    pub grant_types: Vec<GrantType>,
    pub redirect_uris: Vec<RedirectUri>,
    /// Every scope the client may ask for (its audiences' and the OpenID Connect ones).
    pub scopes: ScopeSet,
    pub first_party: bool,
    /// The client and its tenant are both active.
    pub active: bool,
    /// Every request must come through the PAR endpoint (RFC 9126 section 6).
    pub require_pushed_requests: bool,
}

/// A stage-1 failure: shown on a Portcullis page, never redirected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPage {
    MissingClientId,
    MalformedClientId,
    RepeatedClientId,
    /// No such client (also a client id of another tenant where the endpoint is per tenant).
    UnknownClient,
    ClientDisabled,
    /// The client is not registered for `authorization_code`.
    ClientNotForCodeFlow,
    MissingRedirectUri,
    RepeatedRedirectUri,
    /// Not one of the client's redirect URIs under the matching rule (`redirect::matches`).
    UnregisteredRedirectUri,
    /// More distinct parameters than [`MAX_PARAMETERS`].
    TooManyParameters,
}

impl ErrorPage {
    /// The internal reason, for the audit log.
    pub fn reason(self) -> &'static str {
        match self {
            Self::MissingClientId => "client_id_missing",
            Self::MalformedClientId => "client_id_malformed",
            Self::RepeatedClientId => "client_id_repeated",
            Self::UnknownClient => "client_unknown",
            Self::ClientDisabled => "client_disabled",
            Self::ClientNotForCodeFlow => "client_not_for_code_flow",
            Self::MissingRedirectUri => "redirect_uri_missing",
            Self::RepeatedRedirectUri => "redirect_uri_repeated",
            Self::UnregisteredRedirectUri => "redirect_uri_unregistered",
            Self::TooManyParameters => "too_many_parameters",
        }
    }

    /// The RFC 6749 error code the page may show.
    pub fn error(self) -> &'static str {
        match self {
            Self::UnknownClient | Self::ClientDisabled => "invalid_client",
            Self::ClientNotForCodeFlow => "unauthorized_client",
            _ => "invalid_request",
        }
    }
}

/// Error codes of an authorization response (RFC 6749 section 4.1.2.1, OpenID Connect Core
/// section 3.1.2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    UnauthorizedClient,
    AccessDenied,
    UnsupportedResponseType,
    InvalidScope,
    ServerError,
    TemporarilyUnavailable,
    InteractionRequired,
    LoginRequired,
    ConsentRequired,
    RequestNotSupported,
    RequestUriNotSupported,
    RegistrationNotSupported,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::AccessDenied => "access_denied",
            Self::UnsupportedResponseType => "unsupported_response_type",
            Self::InvalidScope => "invalid_scope",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
            Self::InteractionRequired => "interaction_required",
            Self::LoginRequired => "login_required",
            Self::ConsentRequired => "consent_required",
            Self::RequestNotSupported => "request_not_supported",
            Self::RequestUriNotSupported => "request_uri_not_supported",
            Self::RegistrationNotSupported => "registration_not_supported",
        }
    }
}

/// Where an established request's response goes: the redirect URI as the request named it
/// (matched against the registration) and the response mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectTarget {
    pub redirect_uri: String,
    pub mode: ResponseMode,
}

impl RedirectTarget {
    /// The success response: `code`, then `state` if the request had one, then `iss`.
    pub fn success(&self, code: &str, state: Option<&str>, issuer: &str) -> AuthorizationResponse {
        let mut params = vec![("code", code)];
        params.extend(state.map(|s| ("state", s)));
        params.push(("iss", issuer));
        response::build(&self.redirect_uri, self.mode, &params)
    }
}

/// A stage-2 failure: sent to the established redirect URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationError {
    pub target: RedirectTarget,
    pub error: ErrorCode,
    /// Says what the client must change; never anything about users or sessions.
    pub description: Option<String>,
    /// The request's `state`, when it had exactly one well-formed value.
    pub state: Option<String>,
}

impl AuthorizationError {
    /// The error response: `error`, `error_description`, `state`, `iss`.
    pub fn response(&self, issuer: &str) -> AuthorizationResponse {
        let mut params = vec![("error", self.error.as_str())];
        params.extend(
            self.description
                .as_deref()
                .map(|d| ("error_description", d)),
        );
        params.extend(self.state.as_deref().map(|s| ("state", s)));
        params.push(("iss", issuer));
        response::build(&self.target.redirect_uri, self.target.mode, &params)
    }
}

/// A validation failure of either stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    Page(ErrorPage),
    Redirect(Box<AuthorizationError>),
}

impl From<ErrorPage> for AuthorizeError {
    fn from(p: ErrorPage) -> Self {
        Self::Page(p)
    }
}

/// The `prompt` values asked for (OpenID Connect Core section 3.1.2.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prompt {
    /// No page may be shown: fail with `login_required` / `consent_required` instead.
    pub none: bool,
    /// Sign in again even with a session.
    pub login: bool,
    /// Ask for consent even if it was given.
    pub consent: bool,
}

/// A valid authorization request from an established client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationRequest {
    pub client_id: ClientId,
    pub tenant: TenantId,
    pub target: RedirectTarget,
    pub scope: ScopeSet,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: CodeChallenge,
    pub prompt: Prompt,
    /// Seconds; a session older than this must sign in again (`0` = always).
    pub max_age: Option<u64>,
    pub login_hint: Option<String>,
    /// Language tags, most preferred first.
    pub ui_locales: Vec<String>,
    /// Consent is skipped for first-party clients.
    pub first_party: bool,
    /// The DPoP key the code is bound to (RFC 9449 section 10, `dpop_jkt`): the token request
    /// that redeems it must carry a proof signed by this key.
    pub dpop_jkt: Option<Thumbprint>,
}

impl AuthorizationRequest {
    /// Whether the request asks for an OpenID Connect ID token.
    pub fn is_openid(&self) -> bool {
        self.scope.iter().any(|s| s.as_str() == "openid")
    }
}

/// The parameters of one request: every value of every name, as sent (already
/// percent-decoded by the HTTP edge).
#[derive(Debug, Clone, Default)]
pub struct AuthorizeParams {
    values: BTreeMap<String, Vec<String>>,
    too_many: bool,
    /// The parameters came from a pushed request (RFC 9126), resolved by its request_uri.
    pushed: bool,
}

enum One<'a> {
    Absent,
    Value(&'a str),
    Repeated,
}

impl AuthorizeParams {
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut params = Self::default();
        for (k, v) in pairs {
            let k = k.into();
            if !params.values.contains_key(&k) && params.values.len() >= MAX_PARAMETERS {
                params.too_many = true;
                continue;
            }
            params.values.entry(k).or_default().push(v.into());
        }
        params
    }

    /// Marks the parameters as a pushed request's (RFC 9126), resolved from its `request_uri`
    /// by the caller: what a client that must push its requests needs.
    pub fn pushed(mut self) -> Self {
        self.pushed = true;
        self
    }

    /// One parameter: absent (or only empty values: RFC 6749 section 3.1 treats a parameter
    /// without a value as omitted), one value, or repeated.
    fn one(&self, name: &str) -> One<'_> {
        match self.values.get(name).map(Vec::as_slice) {
            None => One::Absent,
            Some([v]) if v.is_empty() => One::Absent,
            Some([v]) => One::Value(v),
            Some(_) => One::Repeated,
        }
    }

    /// The value of a single, non-empty parameter; `Err(())` if repeated.
    fn get(&self, name: &str) -> Result<Option<&str>, ()> {
        match self.one(name) {
            One::Absent => Ok(None),
            One::Value(v) => Ok(Some(v)),
            One::Repeated => Err(()),
        }
    }

    /// The client id, for the caller to look the client up (stage 1).
    pub fn client_id(&self) -> Result<ClientId, ErrorPage> {
        if self.too_many {
            return Err(ErrorPage::TooManyParameters);
        }
        match self.one("client_id") {
            One::Absent => Err(ErrorPage::MissingClientId),
            One::Repeated => Err(ErrorPage::RepeatedClientId),
            One::Value(v) => ClientId::parse(v).ok_or(ErrorPage::MalformedClientId),
        }
    }

    /// Validates the request against `client` (what the lookup of [`Self::client_id`] found;
    /// `None` if nothing). See the module documentation for the order of the checks.
    pub fn validate(
        &self,
        client: Option<&AppClient>,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        let client_id = self.client_id()?;
        let client = client
            .filter(|c| c.client_id == client_id)
            .ok_or(ErrorPage::UnknownClient)?;
        if !client.active {
            return Err(ErrorPage::ClientDisabled.into());
        }
        if !client.grant_types.contains(&GrantType::AuthorizationCode) {
            return Err(ErrorPage::ClientNotForCodeFlow.into());
        }
        let redirect_uri = match self.one("redirect_uri") {
            One::Absent => return Err(ErrorPage::MissingRedirectUri.into()),
            One::Repeated => return Err(ErrorPage::RepeatedRedirectUri.into()),
            One::Value(v) => v,
        };
        if !redirect::matches(redirect_uri, &client.redirect_uris, client.application_type) {
            return Err(ErrorPage::UnregisteredRedirectUri.into());
        }
        // Stage 2: the redirect URI is the client's own from here on.
        let mut target = RedirectTarget {
            redirect_uri: redirect_uri.to_owned(),
            mode: ResponseMode::Query,
        };
        let mut state = None;
        let fail = |target: &RedirectTarget,
                    state: &Option<String>,
                    error: ErrorCode,
                    description: &str| {
            AuthorizeError::Redirect(Box::new(AuthorizationError {
                target: target.clone(),
                error,
                description: Some(description.to_owned()),
                state: state.clone(),
            }))
        };
        use ErrorCode::*;
        match self.get("response_mode") {
            Ok(None) => {}
            Ok(Some(m)) => match ResponseMode::parse(m) {
                Some(mode) => target.mode = mode,
                None => {
                    return Err(fail(
                        &target,
                        &state,
                        InvalidRequest,
                        "response_mode must be query or form_post",
                    ))
                }
            },
            Err(()) => {
                return Err(fail(
                    &target,
                    &state,
                    InvalidRequest,
                    "response_mode is repeated",
                ))
            }
        }
        match self.get("state") {
            Ok(None) => {}
            Ok(Some(s)) if s.len() <= MAX_STATE_LEN && is_vschar(s) => state = Some(s.to_owned()),
            Ok(Some(_)) => {
                return Err(fail(
                    &target,
                    &state,
                    InvalidRequest,
                    "state must be at most 2048 printable ASCII characters",
                ))
            }
            Err(()) => return Err(fail(&target, &state, InvalidRequest, "state is repeated")),
        }
        if let Some(name) = self
            .values
            .iter()
            .find(|(_, v)| v.len() > 1)
            .map(|(k, _)| k)
        {
            let shown: String = name.chars().take(40).filter(|c| !c.is_control()).collect();
            return Err(fail(
                &target,
                &state,
                InvalidRequest,
                &format!("parameter {shown:?} is repeated"),
            ));
        }
        let sent = |name: &str| matches!(self.one(name), One::Value(_));
        if sent("request") {
            return Err(fail(
                &target,
                &state,
                RequestNotSupported,
                "request objects are not supported",
            ));
        }
        if sent("request_uri") {
            return Err(fail(
                &target,
                &state,
                RequestUriNotSupported,
                "request_uri is not supported",
            ));
        }
        if sent("registration") {
            return Err(fail(
                &target,
                &state,
                RegistrationNotSupported,
                "the registration parameter is not supported",
            ));
        }
        if client.require_pushed_requests && !self.pushed {
            return Err(fail(
                &target,
                &state,
                InvalidRequest,
                "this client must push its authorization requests (RFC 9126)",
            ));
        }
        let v = |name: &str| self.get(name).ok().flatten();
        match v("response_type") {
            None => {
                return Err(fail(
                    &target,
                    &state,
                    InvalidRequest,
                    "response_type is required",
                ))
            }
            Some("code") => {}
            Some(_) => {
                return Err(fail(
                    &target,
                    &state,
                    UnsupportedResponseType,
                    "response_type must be code",
                ))
            }
        }
        let code_challenge = match (v("code_challenge"), v("code_challenge_method")) {
            (None, _) => {
                return Err(fail(
                    &target,
                    &state,
                    InvalidRequest,
                    "code_challenge is required (PKCE with S256)",
                ))
            }
            (Some(_), m) if m != Some(pkce::S256) => {
                return Err(fail(
                    &target,
                    &state,
                    InvalidRequest,
                    "code_challenge_method must be S256",
                ))
            }
            (Some(c), _) => CodeChallenge::parse(c)
                .map_err(|e| fail(&target, &state, InvalidRequest, &e.to_string()))?,
        };
        let scope = match v("scope").map(ScopeSet::parse_delimited) {
            None => return Err(fail(&target, &state, InvalidScope, "scope is required")),
            Some(Ok(s)) if !s.is_empty() && s.is_subset(&client.scopes) => s,
            Some(_) => {
                return Err(fail(
                    &target,
                    &state,
                    InvalidScope,
                    "the scope asked for is not allowed for this client",
                ))
            }
        };
        let prompt =
            parse_prompt(v("prompt")).map_err(|d| fail(&target, &state, InvalidRequest, d))?;
        let max_age = match v("max_age") {
            None => None,
            Some(s) => Some(parse_max_age(s).ok_or_else(|| {
                fail(
                    &target,
                    &state,
                    InvalidRequest,
                    "max_age must be a number of seconds",
                )
            })?),
        };
        let nonce = match v("nonce") {
            None => None,
            Some(n) if n.len() <= MAX_NONCE_LEN && is_vschar(n) => Some(n.to_owned()),
            Some(_) => {
                return Err(fail(
                    &target,
                    &state,
                    InvalidRequest,
                    "nonce must be at most 512 printable ASCII characters",
                ))
            }
        };
        let login_hint = match v("login_hint") {
            None => None,
            Some(h)
                if h.chars().count() <= MAX_LOGIN_HINT_LEN && !h.chars().any(char::is_control) =>
            {
                Some(h.to_owned())
            }
            Some(_) => {
                return Err(fail(
                    &target,
                    &state,
                    InvalidRequest,
                    "login_hint must be at most 256 characters without control characters",
                ))
            }
        };
        let ui_locales = parse_ui_locales(v("ui_locales")).ok_or_else(|| {
            fail(
                &target,
                &state,
                InvalidRequest,
                "ui_locales must be up to 16 space-separated language tags",
            )
        })?;
        let dpop_jkt = match v("dpop_jkt") {
            None => None,
            Some(t) => Some(Thumbprint::parse(t).map_err(|_| {
                fail(
                    &target,
                    &state,
                    InvalidRequest,
                    "dpop_jkt must be a base64url SHA-256 JWK thumbprint",
                )
            })?),
        };
        Ok(AuthorizationRequest {
            client_id,
            tenant: client.tenant.clone(),
            target,
            scope,
            state,
            nonce,
            code_challenge,
            prompt,
            max_age,
            login_hint,
            ui_locales,
            first_party: client.first_party,
            dpop_jkt,
        })
    }
}

/// RFC 6749 Appendix A `VSCHAR` (printable ASCII and space), one or more.
fn is_vschar(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x20..=0x7E).contains(&b))
}

fn parse_prompt(s: Option<&str>) -> Result<Prompt, &'static str> {
    let mut p = Prompt::default();
    let Some(s) = s else { return Ok(p) };
    for v in s.split(' ').filter(|v| !v.is_empty()) {
        match v {
            "none" => p.none = true,
            "login" => p.login = true,
            "consent" => p.consent = true,
            _ => return Err("prompt values supported: none, login, consent"),
        }
    }
    if p.none && (p.login || p.consent) {
        return Err("prompt none cannot be combined with another value");
    }
    Ok(p)
}

/// Decimal seconds, no sign, at most ten digits (over 300 years).
fn parse_max_age(s: &str) -> Option<u64> {
    (s.len() <= 10 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn parse_ui_locales(s: Option<&str>) -> Option<Vec<String>> {
    let Some(s) = s else { return Some(Vec::new()) };
    let tags: Vec<&str> = s.split(' ').filter(|t| !t.is_empty()).collect();
    let ok = tags.len() <= MAX_UI_LOCALES
        && tags.iter().all(|t| {
            (1..=35).contains(&t.len())
                && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !t.starts_with('-')
        });
    ok.then(|| tags.into_iter().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests;
