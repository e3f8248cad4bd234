//! What a client registration may hold, for machines and for browser and native apps: client
//! ids, client types (RFC 6749 section 2.1), application types, redirect URIs, post-logout
//! redirect URIs and web origins, and the rules that tie them together
//! ([`check_app_registration`]). The admin API calls these rules on create and on update, and
//! the authorization endpoint trusts what they let through.
//!
//! Redirect URIs (RFC 6749 section 3.1.2, RFC 8252, RFC 9700 section 2.1):
//! - absolute, read by the strict reader of [`crate::uri`], at most 2048 characters, no
//!   fragment, no user-info, no wildcard (`*`), no `.`/`..` path segment, scheme and host in
//!   lowercase (they are compared character for character);
//! - web clients (confidential web apps and single-page apps): `https` only;
//! - native apps: `https` (claimed URLs), a private-use scheme in reverse-domain form
//!   (`com.example.app:/callback`, RFC 8252 section 7.1), or plain `http` to a loopback IP
//!   literal, `http://127.0.0.1/...` or `http://[::1]/...` (RFC 8252 section 7.3), whose port
//!   may vary at authorization time. `localhost` is refused for `http`: RFC 8252 section 8.3
//!   calls it NOT RECOMMENDED (a name can resolve to a non-loopback interface, or be captured by
//!   another process listening on the other address family); the IP literal works everywhere;
//! - the query may not name a parameter of the authorization response (`code`, `state`, `iss`,
//!   `error`, ...): the response would carry it twice.
//!
//! This module decides; it never does I/O. It must never accept a redirect URI it could not
//! compare exactly.

use serde::{Deserialize, Serialize};

use crate::oauth::{AuthMethod, GrantType};
use crate::tenant::TenantId;
use crate::uri::{Uri, UriError};

/// Longest client id accepted (ids issued here are `cl_` and 22 base62 characters; the longest
/// built-in one, [`cli_client_id`] of a 63-character tenant id, is 78).
pub const MAX_CLIENT_ID_LEN: usize = 80;

/// The built-in public client `portcullis login` signs the system tenant's people in with (RFC
/// 8628 device authorization grant).
pub const CLI_CLIENT_ID: &str = "portcullis-cli";

/// The built-in CLI client of `tenant`: [`CLI_CLIENT_ID`] in the system tenant,
/// `portcullis-cli-<tenant>` in every other, so a tenant's people sign in as users of their own
/// tenant. Issued ids (`cl_` and base62) never take this form.
pub fn cli_client_id(tenant: &TenantId) -> String {
    if tenant.is_system() {
        CLI_CLIENT_ID.to_owned()
    } else {
        format!("{CLI_CLIENT_ID}-{}", tenant.as_str())
    }
}

/// Whether `id` is the form of a built-in CLI client's id (of any tenant).
pub fn is_cli_client_id(id: &str) -> bool {
    id.strip_prefix(CLI_CLIENT_ID)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
}
/// Most redirect URIs (and post-logout redirect URIs, and web origins) one client may register.
pub const MAX_REGISTERED_URIS: usize = 20;

/// Parameters of an authorization response; a registered redirect URI's query may not use them.
pub const RESPONSE_PARAMETERS: &[&str] = &[
    "code",
    "state",
    "iss",
    "error",
    "error_description",
    "error_uri",
    "session_state",
    "id_token",
    "access_token",
];

/// A client id as sent by a client: 1 to 80 characters of `A-Z a-z 0-9 _ -`. Whether it names
/// a client is for the store to say.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ClientId(String);

impl ClientId {
    pub fn parse(s: &str) -> Option<Self> {
        let ok = (1..=MAX_CLIENT_ID_LEN).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        ok.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// RFC 6749 section 2.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientType {
    /// Can keep a credential: machine clients and web apps with a server side.
    Confidential,
    /// Cannot: single-page apps and native apps. Authentication method `none`, no secret.
    Public,
}

impl ClientType {
    pub const ALL: [Self; 2] = [Self::Confidential, Self::Public];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Confidential => "confidential",
            Self::Public => "public",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Where the client runs (OpenID Connect Dynamic Client Registration `application_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplicationType {
    /// A server or a browser: redirect URIs are `https`.
    Web,
    /// An app on a device (RFC 8252): claimed `https` URLs, a private-use scheme, or a loopback
    /// redirect. Always a public client.
    Native,
}

impl ApplicationType {
    pub const ALL: [Self; 2] = [Self::Web, Self::Native];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::Native => "native",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Why a redirect URI (or post-logout redirect URI) cannot be registered. Client-facing text:
/// it says what the operator must change.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectUriError {
    #[error("{0}")]
    Malformed(UriError),
    #[error("a redirect URI may not have a fragment (#...)")]
    Fragment,
    #[error("a redirect URI may not hold user or password information (user@host)")]
    UserInfo,
    #[error("a redirect URI may not contain a wildcard (*): redirect URIs are compared exactly")]
    Wildcard,
    #[error("write the scheme and host of a redirect URI in lowercase: redirect URIs are compared character for character")]
    Uppercase,
    #[error("a redirect URI may not have . or .. path segments")]
    DotSegment,
    #[error("a redirect URI needs a host")]
    NoHost,
    #[error("web clients redirect to https URIs only")]
    WebNeedsHttps,
    #[error("plain http is allowed only for a native app's loopback redirect to http://127.0.0.1 or http://[::1] (RFC 8252 section 7.3); use https")]
    HttpNotLoopback,
    #[error("use the loopback IP literal http://127.0.0.1 or http://[::1] instead of localhost (RFC 8252 section 8.3)")]
    Localhost,
    #[error("a native app's own scheme must be a reverse domain name it controls, such as com.example.app:/callback (RFC 8252 section 7.1)")]
    PrivateScheme,
    #[error("a redirect URI's query may not use the response parameter {0}")]
    ReservedParameter(&'static str),
}

/// A redirect URI that passed the registration rules for its application type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct RedirectUri(String);

impl RedirectUri {
    /// Applies the rules of the module documentation for a client of `app` type.
    pub fn parse(s: &str, app: ApplicationType) -> Result<Self, RedirectUriError> {
        use RedirectUriError as E;
        let uri = Uri::parse(s).map_err(E::Malformed)?;
        if uri.fragment.is_some() {
            return Err(E::Fragment);
        }
        if s.contains('*') {
            return Err(E::Wildcard);
        }
        if uri.authority.is_some_and(|a| a.userinfo.is_some()) {
            return Err(E::UserInfo);
        }
        let host = uri.authority.map(|a| a.host);
        if uri.scheme.bytes().any(|b| b.is_ascii_uppercase())
            || host.is_some_and(|h| h.bytes().any(|b| b.is_ascii_uppercase()))
        {
            return Err(E::Uppercase);
        }
        if uri.has_dot_segment() {
            return Err(E::DotSegment);
        }
        match (uri.scheme, app) {
            ("https", _) => {
                if host.is_none() {
                    return Err(E::NoHost);
                }
            }
            ("http", ApplicationType::Native) => match host {
                Some("127.0.0.1" | "[::1]") => {}
                Some("localhost") => return Err(E::Localhost),
                _ => return Err(E::HttpNotLoopback),
            },
            ("http", ApplicationType::Web) => return Err(E::WebNeedsHttps),
            (_, ApplicationType::Web) => return Err(E::WebNeedsHttps),
            (scheme, ApplicationType::Native) => {
                let labels: Vec<&str> = scheme.split('.').collect();
                let reverse_domain = labels.len() >= 2
                    && labels.iter().all(|l| {
                        !l.is_empty()
                            && l.bytes()
                                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    });
                let has_target = uri.authority.is_some() || !uri.path.is_empty();
                if !reverse_domain || !has_target {
                    return Err(E::PrivateScheme);
                }
            }
        }
        if let Some(host) = host {
            let name_ok = host.starts_with('[')
                || (!host.is_empty()
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.'));
            if !name_ok {
                return Err(E::NoHost);
            }
        }
        if let Some(query) = uri.query {
            for pair in query.split('&') {
                let name = pair.split('=').next().unwrap_or("");
                if let Some(reserved) = RESPONSE_PARAMETERS.iter().find(|p| **p == name) {
                    return Err(E::ReservedParameter(reserved));
                }
            }
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For a loopback redirect (`http` to `127.0.0.1` or `[::1]`): the host and everything
    /// after the authority, which must match exactly while the port may vary.
    pub(crate) fn loopback_parts(&self) -> Option<(&str, &str)> {
        loopback_parts(&self.0)
    }
}

/// Host and the text after the authority of an `http` URI to a loopback IP literal, with no
/// user-info and no fragment; `None` for anything else.
pub(crate) fn loopback_parts(s: &str) -> Option<(&str, &str)> {
    let uri = Uri::parse(s).ok()?;
    let a = uri.authority?;
    if uri.scheme != "http" || a.userinfo.is_some() || uri.fragment.is_some() {
        return None;
    }
    if !matches!(a.host, "127.0.0.1" | "[::1]") {
        return None;
    }
    let rest_start = s.len() - uri.path.len() - uri.query.map_or(0, |q| q.len() + 1);
    Some((a.host, &s[rest_start..]))
}

/// Why a web origin cannot be registered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a web origin is https://host or https://host:port, in lowercase, with no path, query, fragment, user or wildcard")]
pub struct WebOriginError;

/// An exact browser origin (RFC 6454 serialisation) allowed to call the token endpoint from
/// script, for single-page apps.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct WebOrigin(String);

impl WebOrigin {
    pub fn parse(s: &str) -> Result<Self, WebOriginError> {
        let uri = Uri::parse(s).map_err(|_| WebOriginError)?;
        let Some(a) = uri.authority else {
            return Err(WebOriginError);
        };
        let host_ok = !a.host.is_empty()
            && (a.host.starts_with('[')
                || a.host.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                }));
        let ok = uri.scheme == "https"
            && a.userinfo.is_none()
            && host_ok
            && uri.path.is_empty()
            && uri.query.is_none()
            && uri.fragment.is_none();
        ok.then(|| Self(s.to_owned())).ok_or(WebOriginError)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// OpenID Connect scopes an app client may be allowed besides its resource servers' scopes.
pub const OIDC_SCOPES: &[&str] = &["openid", "profile", "email", "offline_access"];

/// A registration as the admin API received it, defaults applied, before the rules.
#[derive(Debug, Clone)]
pub struct AppRegistration<'a> {
    pub client_type: ClientType,
    pub application_type: ApplicationType,
    pub auth_method: AuthMethod,
    pub grant_types: &'a [GrantType],
    pub redirect_uris: &'a [String],
    pub post_logout_redirect_uris: &'a [String],
    pub allowed_web_origins: &'a [String],
    pub first_party: bool,
    pub can_introspect: bool,
    /// Whether a JWKS or JWKS URI is registered.
    pub has_keys: bool,
    /// How many audiences the client is allowed.
    pub audiences: usize,
    /// Scopes asked for that none of the client's audiences define.
    pub undefined_scopes: &'a [&'a str],
}

/// A registration that passed: the parsed lists, deduplicated, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedApp {
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub allowed_web_origins: Vec<WebOrigin>,
}

/// Why a registration is refused. `field` names the member to change; the text says how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    /// A redirect URI or post-logout redirect URI breaks a rule (RFC 7591 `invalid_redirect_uri`).
    #[error("{field}: {uri:?}: {error}")]
    RedirectUri {
        field: &'static str,
        uri: String,
        error: RedirectUriError,
    },
    /// Any other inconsistency (RFC 7591 `invalid_client_metadata`).
    #[error("{0}")]
    Metadata(String),
}

impl RegistrationError {
    /// The RFC 7591 section 3.2.2 error code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::RedirectUri { .. } => "invalid_redirect_uri",
            Self::Metadata(_) => "invalid_client_metadata",
        }
    }
}

fn meta(s: &str) -> RegistrationError {
    RegistrationError::Metadata(s.to_owned())
}

fn uris(
    field: &'static str,
    given: &[String],
    app: ApplicationType,
) -> Result<Vec<RedirectUri>, RegistrationError> {
    if given.len() > MAX_REGISTERED_URIS {
        return Err(RegistrationError::Metadata(format!(
            "{field}: at most {MAX_REGISTERED_URIS}"
        )));
    }
    let mut out: Vec<RedirectUri> = Vec::new();
    for s in given {
        let uri = RedirectUri::parse(s, app).map_err(|error| RegistrationError::RedirectUri {
            field,
            uri: s.chars().take(200).collect(),
            error,
        })?;
        if !out.contains(&uri) {
            out.push(uri);
        }
    }
    Ok(out)
}

/// The rules that tie a client's type, grants, URIs and credentials together. Machine clients
/// (client credentials only) pass unchanged: they have no URIs and stay confidential.
///
/// - a native app is a public client; a public client authenticates with `none` and has no
///   secret, no keys, no `client_credentials` grant and no introspection; a confidential client
///   keeps a real authentication method;
/// - `authorization_code` needs at least one redirect URI, and redirect URIs, post-logout
///   redirect URIs and `first_party` need `authorization_code`; `refresh_token` needs
///   `authorization_code`;
/// - web origins are for single-page apps (public web clients) only: a confidential client's
///   secret must never be in a browser;
/// - `client_credentials` needs an audience; a scope no audience defines must be an OpenID
///   Connect scope of a client with `authorization_code`, and `offline_access` needs
///   `refresh_token`.
pub fn check_app_registration(r: &AppRegistration<'_>) -> Result<CheckedApp, RegistrationError> {
    let public = r.client_type == ClientType::Public;
    let code = r.grant_types.contains(&GrantType::AuthorizationCode);
    // RFC 8628: a device (a CLI, a TV) signs its user in through a browser elsewhere.
    let device = r.grant_types.contains(&GrantType::DeviceCode);
    if r.application_type == ApplicationType::Native && !public {
        return Err(meta(
            "a native app is a public client (RFC 8252 section 8.4): set client_type to public",
        ));
    }
    if public != (r.auth_method == AuthMethod::None) {
        return Err(meta(if public {
            "a public client authenticates with auth_method none"
        } else {
            "auth_method none is for public clients; a confidential client needs client_secret_basic, client_secret_post, private_key_jwt, tls_client_auth or self_signed_tls_client_auth"
        }));
    }
    if public {
        if r.grant_types.contains(&GrantType::ClientCredentials) {
            return Err(meta(
                "a public client may not use the client_credentials grant",
            ));
        }
        if r.can_introspect {
            return Err(meta("a public client may not introspect tokens"));
        }
        if r.has_keys {
            return Err(meta("a public client has no jwks or jwks_uri"));
        }
        if !code && !device {
            return Err(meta(
                "a public client needs the authorization_code or the device_code grant",
            ));
        }
    }
    if r.grant_types.contains(&GrantType::RefreshToken) && !code && !device {
        return Err(meta(
            "refresh_token needs the authorization_code or the device_code grant",
        ));
    }
    let redirect_uris = uris("redirect_uris", r.redirect_uris, r.application_type)?;
    let post_logout_redirect_uris = uris(
        "post_logout_redirect_uris",
        r.post_logout_redirect_uris,
        r.application_type,
    )?;
    if code && redirect_uris.is_empty() {
        return Err(meta(
            "the authorization_code grant needs at least one redirect URI",
        ));
    }
    if !code
        && (!redirect_uris.is_empty() || !post_logout_redirect_uris.is_empty() || r.first_party)
    {
        return Err(meta(
            "redirect_uris, post_logout_redirect_uris and first_party need the authorization_code grant",
        ));
    }
    if r.allowed_web_origins.len() > MAX_REGISTERED_URIS {
        return Err(RegistrationError::Metadata(format!(
            "allowed_web_origins: at most {MAX_REGISTERED_URIS}"
        )));
    }
    let mut allowed_web_origins: Vec<WebOrigin> = Vec::new();
    for o in r.allowed_web_origins {
        let origin = WebOrigin::parse(o).map_err(|e| {
            RegistrationError::Metadata(format!(
                "allowed_web_origins: {:?}: {e}",
                o.chars().take(200).collect::<String>()
            ))
        })?;
        if !allowed_web_origins.contains(&origin) {
            allowed_web_origins.push(origin);
        }
    }
    let spa = public && r.application_type == ApplicationType::Web;
    if !allowed_web_origins.is_empty() && !spa {
        return Err(meta(
            "allowed_web_origins are for single-page apps (public web clients) only",
        ));
    }
    if r.grant_types.contains(&GrantType::ClientCredentials) && r.audiences == 0 {
        return Err(meta(
            "the client_credentials grant needs at least one audience",
        ));
    }
    for s in r.undefined_scopes {
        let oidc = OIDC_SCOPES.contains(s);
        if !oidc || !(code || device) {
            return Err(meta(
                "every scope must be defined by one of the client's audiences (or, for clients with the authorization_code grant, be openid, profile, email or offline_access)",
            ));
        }
        if *s == "offline_access" && !r.grant_types.contains(&GrantType::RefreshToken) {
            return Err(meta("offline_access needs the refresh_token grant"));
        }
    }
    Ok(CheckedApp {
        redirect_uris,
        post_logout_redirect_uris,
        allowed_web_origins,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ApplicationType::{Native, Web};

    fn web(s: &str) -> Result<RedirectUri, RedirectUriError> {
        RedirectUri::parse(s, Web)
    }

    fn native(s: &str) -> Result<RedirectUri, RedirectUriError> {
        RedirectUri::parse(s, Native)
    }

    #[test]
    fn each_tenant_has_its_own_cli_client_id_and_issued_ids_never_look_like_one() {
        let longest = TenantId::parse(&format!("t{}", "x".repeat(62))).expect("63 characters");
        for (tenant, id) in [
            (TenantId::system(), "portcullis-cli".to_owned()),
            (
                TenantId::parse("acme").expect("tenant"),
                "portcullis-cli-acme".to_owned(),
            ),
            (
                longest.clone(),
                format!("portcullis-cli-{}", longest.as_str()),
            ),
        ] {
            assert_eq!(cli_client_id(&tenant), id);
            assert!(is_cli_client_id(&id));
            assert!(ClientId::parse(&id).is_some(), "{id} is a valid client id");
        }
        for other in ["portcullis-clix", "portcullis-cl", "cl_portcullis-cli", ""] {
            assert!(!is_cli_client_id(other), "{other}");
        }
    }

    #[test]
    fn client_ids_are_short_and_plain() {
        assert!(ClientId::parse("cl_0123456789abcdefABCDEF").is_some());
        for bad in ["", "a b", "cl_é", "a/b", &"a".repeat(MAX_CLIENT_ID_LEN + 1)] {
            assert_eq!(ClientId::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn web_redirect_uris_are_https_and_exact() {
        for ok in [
            "https://app.example.com/callback",
            "https://app.example.com",
            "https://app.example.com:8443/cb?tenant=acme",
            "https://127.0.0.1/cb",
            "https://xn--bcher-kva.example/cb",
        ] {
            assert!(web(ok).is_ok(), "{ok}");
        }
        use RedirectUriError as E;
        for (bad, why) in [
            ("http://app.example.com/cb", E::WebNeedsHttps),
            ("http://127.0.0.1/cb", E::WebNeedsHttps),
            ("com.example.app:/cb", E::WebNeedsHttps),
            ("javascript:alert(1)", E::WebNeedsHttps),
            ("data:text/html,x", E::WebNeedsHttps),
            ("https://app.example.com/cb#x", E::Fragment),
            ("https://app.example.com/cb#", E::Fragment),
            ("https://*.example.com/cb", E::Wildcard),
            ("https://app.example.com/*", E::Wildcard),
            ("https://user@app.example.com/cb", E::UserInfo),
            ("https://user:pw@app.example.com/cb", E::UserInfo),
            ("https://App.example.com/cb", E::Uppercase),
            ("HTTPS://app.example.com/cb", E::Uppercase),
            ("https://app.example.com/a/../cb", E::DotSegment),
            ("https:/cb", E::NoHost),
            ("https:///cb", E::NoHost),
            ("https://a_b!.example/cb", E::NoHost),
            (
                "https://app.example.com/cb?code=1",
                E::ReservedParameter("code"),
            ),
            (
                "https://app.example.com/cb?x=1&state",
                E::ReservedParameter("state"),
            ),
            (
                "https://app.example.com/cb?iss=x",
                E::ReservedParameter("iss"),
            ),
            ("/callback", E::Malformed(crate::uri::UriError::NoScheme)),
        ] {
            assert_eq!(web(bad), Err(why), "{bad}");
        }
    }

    #[test]
    fn native_redirect_uris_follow_rfc8252() {
        for ok in [
            "com.example.app:/oauth2redirect",
            "com.example.app://callback",
            "http://127.0.0.1/callback",
            "http://127.0.0.1:8080/callback",
            "http://[::1]/callback",
            "https://app.example.com/claimed",
        ] {
            assert!(native(ok).is_ok(), "{ok}");
        }
        use RedirectUriError as E;
        for (bad, why) in [
            ("http://localhost/cb", E::Localhost),
            ("http://localhost:5000/cb", E::Localhost),
            ("http://127.0.0.2/cb", E::HttpNotLoopback),
            ("http://app.example.com/cb", E::HttpNotLoopback),
            ("http://[::2]/cb", E::HttpNotLoopback),
            ("myapp:/cb", E::PrivateScheme),
            ("com.example.app:", E::PrivateScheme),
            ("com..app:/cb", E::PrivateScheme),
            ("Com.Example.App:/cb", E::Uppercase),
            ("javascript:alert(1)", E::PrivateScheme),
            ("file:///etc/passwd", E::PrivateScheme),
            ("com.example.app:/cb#f", E::Fragment),
            ("http://user@127.0.0.1/cb", E::UserInfo),
        ] {
            assert_eq!(native(bad), Err(why), "{bad}");
        }
    }

    #[test]
    fn loopback_parts_split_host_and_path() {
        let r = native("http://127.0.0.1:8080/cb?x=1").expect("loopback");
        assert_eq!(r.loopback_parts(), Some(("127.0.0.1", "/cb?x=1")));
        let r = native("http://[::1]/cb").expect("loopback");
        assert_eq!(r.loopback_parts(), Some(("[::1]", "/cb")));
        assert_eq!(
            native("com.example.app:/cb")
                .expect("private")
                .loopback_parts(),
            None
        );
        assert_eq!(loopback_parts("https://127.0.0.1/cb"), None);
        assert_eq!(loopback_parts("http://localhost/cb"), None);
    }

    #[test]
    fn web_origins_are_exact_https_origins() {
        for ok in ["https://app.example.com", "https://app.example.com:8443"] {
            assert!(WebOrigin::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://app.example.com/",
            "https://app.example.com/x",
            "http://app.example.com",
            "https://*.example.com",
            "https://App.example.com",
            "https://u@app.example.com",
            "https://app.example.com?x",
            "null",
            "",
        ] {
            assert_eq!(WebOrigin::parse(bad), Err(WebOriginError), "{bad:?}");
        }
    }

    fn reg<'a>(
        client_type: ClientType,
        application_type: ApplicationType,
        auth_method: AuthMethod,
        grant_types: &'a [GrantType],
        redirect_uris: &'a [String],
    ) -> AppRegistration<'a> {
        AppRegistration {
            client_type,
            application_type,
            auth_method,
            grant_types,
            redirect_uris,
            post_logout_redirect_uris: &[],
            allowed_web_origins: &[],
            first_party: false,
            can_introspect: false,
            has_keys: false,
            audiences: 0,
            undefined_scopes: &[],
        }
    }

    const CODE: &[GrantType] = &[GrantType::AuthorizationCode];
    const CODE_REFRESH: &[GrantType] = &[GrantType::AuthorizationCode, GrantType::RefreshToken];

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_three_app_kinds_register() {
        use ClientType::*;
        let web_uris = strings(&["https://app.example.com/cb", "https://app.example.com/cb"]);
        let ok = check_app_registration(&reg(
            Confidential,
            Web,
            AuthMethod::ClientSecretBasic,
            CODE_REFRESH,
            &web_uris,
        ))
        .expect("web app");
        assert_eq!(ok.redirect_uris.len(), 1, "duplicates are dropped");

        let mut spa = reg(Public, Web, AuthMethod::None, CODE_REFRESH, &web_uris);
        let origins = strings(&["https://app.example.com"]);
        spa.allowed_web_origins = &origins;
        let scopes = ["openid", "offline_access"];
        spa.undefined_scopes = &scopes;
        spa.first_party = true;
        let ok = check_app_registration(&spa).expect("spa");
        assert_eq!(
            ok.allowed_web_origins[0].as_str(),
            "https://app.example.com"
        );

        let native_uris = strings(&["com.example.app:/cb", "http://127.0.0.1/cb"]);
        check_app_registration(&reg(Public, Native, AuthMethod::None, CODE, &native_uris))
            .expect("native");

        // A machine client is untouched by the new rules.
        let mut machine = reg(
            Confidential,
            Web,
            AuthMethod::PrivateKeyJwt,
            &[GrantType::ClientCredentials],
            &[],
        );
        machine.audiences = 1;
        machine.can_introspect = true;
        machine.has_keys = true;
        check_app_registration(&machine).expect("machine");
    }

    #[test]
    fn inconsistent_registrations_are_refused_with_the_reason() {
        use ClientType::*;
        let web_uris = strings(&["https://app.example.com/cb"]);
        let refused = |r: AppRegistration<'_>, needle: &str| {
            let e = check_app_registration(&r).expect_err(needle);
            assert_eq!(e.code(), "invalid_client_metadata", "{e}");
            assert!(e.to_string().contains(needle), "{e} should say {needle}");
        };
        refused(
            reg(
                Confidential,
                Native,
                AuthMethod::ClientSecretBasic,
                CODE,
                &web_uris,
            ),
            "native app is a public client",
        );
        refused(
            reg(Public, Web, AuthMethod::ClientSecretBasic, CODE, &web_uris),
            "auth_method none",
        );
        refused(
            reg(Confidential, Web, AuthMethod::None, CODE, &web_uris),
            "auth_method none is for public clients",
        );
        let cc = [GrantType::AuthorizationCode, GrantType::ClientCredentials];
        refused(
            reg(Public, Web, AuthMethod::None, &cc, &web_uris),
            "client_credentials",
        );
        let mut r = reg(Public, Web, AuthMethod::None, CODE, &web_uris);
        r.can_introspect = true;
        refused(r, "may not introspect");
        let mut r = reg(Public, Web, AuthMethod::None, CODE, &web_uris);
        r.has_keys = true;
        refused(r, "no jwks");
        refused(
            reg(
                Public,
                Web,
                AuthMethod::None,
                &[GrantType::RefreshToken],
                &web_uris,
            ),
            "needs the authorization_code or the device_code grant",
        );
        refused(
            reg(
                Confidential,
                Web,
                AuthMethod::ClientSecretBasic,
                &[GrantType::ClientCredentials, GrantType::RefreshToken],
                &[],
            ),
            "refresh_token needs",
        );
        refused(
            reg(Public, Web, AuthMethod::None, CODE, &[]),
            "at least one redirect URI",
        );
        let mut machine = reg(
            Confidential,
            Web,
            AuthMethod::ClientSecretBasic,
            &[GrantType::ClientCredentials],
            &web_uris,
        );
        machine.audiences = 1;
        refused(machine.clone(), "need the authorization_code grant");
        machine.redirect_uris = &[];
        machine.first_party = true;
        refused(machine.clone(), "need the authorization_code grant");
        machine.first_party = false;
        machine.audiences = 0;
        refused(machine, "needs at least one audience");
        let origins = strings(&["https://app.example.com"]);
        let mut r = reg(
            Confidential,
            Web,
            AuthMethod::ClientSecretBasic,
            CODE,
            &web_uris,
        );
        r.allowed_web_origins = &origins;
        refused(r, "single-page apps");
        let bad_origin = strings(&["https://app.example.com/"]);
        let mut r = reg(Public, Web, AuthMethod::None, CODE, &web_uris);
        r.allowed_web_origins = &bad_origin;
        refused(r, "allowed_web_origins");
        let mut r = reg(Public, Web, AuthMethod::None, CODE, &web_uris);
        r.undefined_scopes = &["payments:admin"];
        refused(r, "defined by one of the client's audiences");
        let mut r = reg(Public, Web, AuthMethod::None, CODE, &web_uris);
        r.undefined_scopes = &["offline_access"];
        refused(r, "offline_access needs the refresh_token grant");
        let too_many: Vec<String> = (0..21).map(|i| format!("https://a.example/{i}")).collect();
        refused(
            reg(Public, Web, AuthMethod::None, CODE, &too_many),
            "at most 20",
        );
    }

    #[test]
    fn bad_redirect_uris_name_the_field_and_the_rule() {
        let bad = strings(&["http://localhost:3000/cb"]);
        let e = check_app_registration(&reg(
            ClientType::Public,
            Native,
            AuthMethod::None,
            CODE,
            &bad,
        ))
        .expect_err("localhost");
        assert_eq!(e.code(), "invalid_redirect_uri");
        assert!(e.to_string().starts_with("redirect_uris: "), "{e}");
        assert!(e.to_string().contains("RFC 8252 section 8.3"), "{e}");
        let mut r = reg(ClientType::Public, Web, AuthMethod::None, CODE, &[]);
        let uris = strings(&["https://app.example.com/cb"]);
        let logout = strings(&["https://app.example.com/bye#x"]);
        r.redirect_uris = &uris;
        r.post_logout_redirect_uris = &logout;
        let e = check_app_registration(&r).expect_err("fragment");
        assert_eq!(e.code(), "invalid_redirect_uri");
        assert!(
            e.to_string().starts_with("post_logout_redirect_uris: "),
            "{e}"
        );
    }
}
