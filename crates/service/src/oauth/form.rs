//! The request edge of the OAuth endpoints: `application/x-www-form-urlencoded` POST bodies only,
//! bounded in size, each parameter at most once (RFC 6749 section 3.1), and client credentials
//! taken from exactly one place (Basic header or body).

use std::collections::HashMap;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use http::{header, HeaderMap};
use portcullis_core::confirmation::ClientCertificate;
use portcullis_core::secret::Secret;

use super::error::{AssertionFault, OAuthError, Refusal};

/// Largest OAuth request body: far above any legitimate request (an RS256 client assertion is
/// under 2 KiB), far below the admin API's limit.
pub const MAX_FORM_BYTES: usize = 16 * 1024;

/// Parameters of one OAuth request.
#[derive(Debug, Default)]
pub struct Params {
    single: HashMap<String, String>,
    multi: HashMap<String, Vec<String>>,
}

impl Params {
    /// A single-valued parameter. Empty values count as absent (RFC 6749 section 3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.single.get(name).map(String::as_str)
    }

    /// Every single-valued parameter sent with a value, in no particular order.
    pub fn singles(&self) -> impl Iterator<Item = (&str, &str)> {
        self.single.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Every value of a parameter that may repeat.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.multi
            .get(name)
            .map(|v| v.iter().map(String::as_str).collect())
            .unwrap_or_default()
    }
}

pub fn parse(bytes: &[u8], repeatable: &[&str]) -> Result<Params, OAuthError> {
    let mut params = Params::default();
    let mut seen = std::collections::HashSet::new();
    for (k, v) in form_urlencoded::parse(bytes) {
        if repeatable.contains(&k.as_ref()) {
            if !v.is_empty() {
                params
                    .multi
                    .entry(k.into_owned())
                    .or_default()
                    .push(v.into_owned());
            }
            continue;
        }
        if !seen.insert(k.clone().into_owned()) {
            return Err(Refusal::RepeatedParameter.into());
        }
        if !v.is_empty() {
            params.single.insert(k.into_owned(), v.into_owned());
        }
    }
    Ok(params)
}

/// Client credentials as presented, before any lookup.
#[derive(Debug)]
pub struct Presented {
    pub client_id: String,
    pub proof: Proof,
    pub method: PresentedMethod,
    /// The client certificate of the request (TLS handshake or trusted proxy), if any: what a
    /// `tls_client_auth` or `self_signed_tls_client_auth` client authenticates with when it
    /// sends only its `client_id` (RFC 8705 section 2), and what certificate-bound tokens are
    /// bound to.
    pub certificate: Option<ClientCertificate>,
}

impl Presented {
    /// The same credentials, with the request's client certificate.
    pub fn with_certificate(mut self, certificate: Option<&ClientCertificate>) -> Self {
        self.certificate = certificate.cloned();
        self
    }
}

/// What the client offered as proof of identity.
#[derive(Debug)]
pub enum Proof {
    None,
    Secret(Secret<String>),
    /// An RFC 7523 client assertion (a JWT; not secret once used, but kept out of logs).
    Assertion(Secret<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresentedMethod {
    Basic,
    Post,
    Assertion,
}

impl PresentedMethod {
    /// The registered method this presentation is an instance of.
    pub fn auth_method(self) -> portcullis_core::oauth::AuthMethod {
        use portcullis_core::oauth::AuthMethod;
        match self {
            Self::Basic => AuthMethod::ClientSecretBasic,
            Self::Post => AuthMethod::ClientSecretPost,
            Self::Assertion => AuthMethod::PrivateKeyJwt,
        }
    }
}

/// Finds the client credentials in the Basic header (RFC 6749 section 2.3.1: form-encoded id
/// and secret, joined by `:`, base64) or the body. Using both is `invalid_request`.
pub fn presented_credentials(
    headers: &HeaderMap,
    params: &Params,
) -> Result<Presented, OAuthError> {
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    let first = authorization.next();
    if authorization.next().is_some() {
        // Two proxies or two libraries would each pick a different one (RFC 9110 section
        // 5.3: Authorization is not a list header).
        return Err(Refusal::TwoAuthorizationHeaders.into());
    }
    let basic = match first {
        None => None,
        Some(v) => Some(parse_basic(v.as_bytes()).ok_or(Refusal::NotBasic)?),
    };
    let assertion = params.get("client_assertion");
    let assertion_type = params.get("client_assertion_type");
    if assertion.is_some() || assertion_type.is_some() {
        if basic.is_some() || params.get("client_secret").is_some() {
            return Err(Refusal::TwoAuthMethods.into());
        }
        if assertion_type != Some(portcullis_core::oauth::JWT_BEARER_ASSERTION) {
            return Err(Refusal::WrongAssertionType.into());
        }
        let assertion = assertion.ok_or(Refusal::NoAssertion)?;
        // The client id is `client_id` if sent, else the assertion's (unverified) `sub`, used
        // only to find the key that must then verify the assertion.
        let id = match params.get("client_id") {
            Some(id) => id.to_owned(),
            None => unverified_subject(assertion)
                .ok_or(Refusal::Assertion(AssertionFault::Malformed))?,
        };
        return Ok(Presented {
            client_id: id,
            proof: Proof::Assertion(Secret::new(assertion.to_owned())),
            method: PresentedMethod::Assertion,
            certificate: None,
        });
    }
    match basic {
        Some((id, secret)) => {
            if params.get("client_secret").is_some()
                || params.get("client_id").is_some_and(|b| b != id)
            {
                return Err(Refusal::TwoAuthMethods.into());
            }
            Ok(Presented {
                client_id: id,
                proof: Proof::Secret(secret),
                method: PresentedMethod::Basic,
                certificate: None,
            })
        }
        None => {
            let id = params.get("client_id").ok_or(Refusal::NoCredentials)?;
            Ok(Presented {
                client_id: id.to_owned(),
                proof: match params.get("client_secret") {
                    Some(s) => Proof::Secret(Secret::new(s.to_owned())),
                    None => Proof::None,
                },
                method: PresentedMethod::Post,
                certificate: None,
            })
        }
    }
}

fn unverified_subject(jwt: &str) -> Option<String> {
    unverified_claim(jwt, "sub")
}

/// A string claim of a JWT whose signature nobody has checked: only ever used to choose which
/// checks to run, never believed.
pub fn unverified_claim(jwt: &str, name: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v.get(name)?.as_str().map(str::to_owned)
}

fn parse_basic(value: &[u8]) -> Option<(String, Secret<String>)> {
    let value = std::str::from_utf8(value).ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = STANDARD.decode(encoded.trim()).ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let id = form_decode(id)?;
    let secret = form_decode(secret)?;
    (!id.is_empty() && !secret.is_empty()).then(|| (id, Secret::new(secret)))
}

/// Undoes `application/x-www-form-urlencoded` encoding of one value.
fn form_decode(s: &str) -> Option<String> {
    let joined = format!("v={s}");
    form_urlencoded::parse(joined.as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn repeated_parameters_are_refused_except_repeatable_ones() {
        assert!(parse(b"grant_type=a&grant_type=a", &[]).is_err());
        assert!(parse(b"scope=a&scope=", &[]).is_err(), "empty repeat too");
        let p = parse(b"resource=x&resource=y&scope=", &["resource"]).expect("ok");
        assert_eq!(p.all("resource"), vec!["x", "y"]);
        assert_eq!(p.get("scope"), None, "empty means absent");
    }

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut h = HeaderMap::new();
        let enc = STANDARD.encode("cl%3A1:p%40ss+word");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {enc}")).expect("header"),
        );
        let p = presented_credentials(&h, &Params::default()).expect("basic");
        assert_eq!(p.client_id, "cl:1");
        match p.proof {
            Proof::Secret(s) => assert_eq!(s.expose(), "p@ss word"),
            other => panic!("{other:?}"),
        }
        assert_eq!(p.method, PresentedMethod::Basic);
    }

    #[test]
    fn two_methods_at_once_or_garbage_are_refused() {
        let mut h = HeaderMap::new();
        let enc = STANDARD.encode("cl:s");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {enc}")).expect("header"),
        );
        let body = parse(b"client_secret=s", &[]).expect("form");
        assert_eq!(
            presented_credentials(&h, &body).expect_err("both").code,
            "invalid_request"
        );
        for bad in ["Bearer x", "Basic !!!", "Basic Y2w=", "Basic"] {
            h.insert(header::AUTHORIZATION, HeaderValue::from_static(bad));
            assert_eq!(
                presented_credentials(&h, &Params::default())
                    .expect_err(bad)
                    .code,
                "invalid_client"
            );
        }
    }
}
