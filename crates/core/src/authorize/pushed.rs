//! Pushed authorization requests (RFC 9126): the `request_uri` a push returns, how long it
//! lives, and which pushed parameters are kept.
//!
//! A `request_uri` is `urn:ietf:params:oauth:request_uri:` followed by 32 random bytes in
//! base64url; the server keeps only the SHA-256 of those bytes. It must be opened at the
//! authorization endpoint within [`PUSHED_LIFETIME`] of the push; once opened it stays good for
//! [`OPENED_LIFETIME`] (a person signs in meanwhile, and reloads must work: section 4 allows
//! that) and is used up when a code is issued. This module must never accept a `request_uri`
//! inside a pushed request, nor keep a client's authentication parameters with the request.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// The URN prefix of every `request_uri` this server issues (RFC 9126 section 2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";
/// How long after the push the request must be opened (`expires_in`).
pub const PUSHED_LIFETIME: Duration = Duration::from_secs(60);
/// How long an opened request stays good for the sign-in it started.
pub const OPENED_LIFETIME: Duration = Duration::from_secs(600);

/// Client authentication parameters (RFC 9126 section 2.1): relied on for authentication only,
/// never stored with the request.
pub const CLIENT_AUTH_PARAMS: [&str; 3] =
    ["client_secret", "client_assertion", "client_assertion_type"];

/// A `request_uri` of this server: its random part.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestUri([u8; 32]);

impl std::fmt::Debug for RequestUri {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestUri([redacted])")
    }
}

impl RequestUri {
    /// A new `request_uri` from 32 random bytes (the caller's CSPRNG: core has no I/O).
    pub fn from_random(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses a `request_uri` this server could have issued; anything else is `None`.
    pub fn parse(s: &str) -> Option<Self> {
        let tail = s.strip_prefix(REQUEST_URI_PREFIX)?;
        if tail.len() != 43 {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(tail).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// The URI as sent to the client.
    pub fn as_uri(&self) -> String {
        format!("{REQUEST_URI_PREFIX}{}", URL_SAFE_NO_PAD.encode(self.0))
    }

    /// What the store keeps.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(self.0).into()
    }
}

/// Why a push is refused before the request itself is validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// RFC 9126 section 2.1: `request_uri` must not be pushed.
    #[error("request_uri must not be pushed")]
    RequestUriPushed,
    /// A parameter other than the authentication ones appears twice.
    #[error("a parameter is repeated")]
    Repeated,
}

/// The authorization request's pairs from a push: client authentication removed, refused when
/// it names a `request_uri`.
pub fn request_pairs(
    pairs: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<(String, String)>, PushError> {
    let mut kept: Vec<(String, String)> = Vec::new();
    for (k, v) in pairs {
        if CLIENT_AUTH_PARAMS.contains(&k.as_str()) {
            continue;
        }
        if k == "request_uri" {
            return Err(PushError::RequestUriPushed);
        }
        if kept.iter().any(|(seen, _)| *seen == k) {
            return Err(PushError::Repeated);
        }
        kept.push((k, v));
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_uri_round_trips_and_nothing_else_parses() {
        let uri = RequestUri::from_random([7; 32]);
        let text = uri.as_uri();
        assert!(text.starts_with(REQUEST_URI_PREFIX));
        assert_eq!(RequestUri::parse(&text), Some(uri.clone()));
        assert_eq!(uri.digest(), <[u8; 32]>::from(Sha256::digest([7; 32])));
        assert_ne!(uri.digest(), RequestUri::from_random([8; 32]).digest());
        for bad in [
            "",
            REQUEST_URI_PREFIX,
            &text[REQUEST_URI_PREFIX.len()..],
            &format!("{text}A"),
            &text.replace("urn:ietf", "urn:other"),
            &format!("{REQUEST_URI_PREFIX}{}", "*".repeat(43)),
            "https://as.example/request/1",
        ] {
            assert_eq!(RequestUri::parse(bad), None, "{bad}");
        }
        assert_eq!(format!("{uri:?}"), "RequestUri([redacted])");
    }

    #[test]
    fn pushed_pairs_drop_authentication_and_refuse_request_uri_or_repeats() {
        let p = |pairs: &[(&str, &str)]| {
            request_pairs(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            )
        };
        assert_eq!(
            p(&[
                ("client_id", "cl_a"),
                ("client_secret", "s"),
                ("client_assertion_type", "t"),
                ("client_assertion", "a"),
                ("response_type", "code"),
            ]),
            Ok(vec![
                ("client_id".to_owned(), "cl_a".to_owned()),
                ("response_type".to_owned(), "code".to_owned())
            ])
        );
        assert_eq!(
            p(&[("client_id", "cl_a"), ("request_uri", "urn:x")]),
            Err(PushError::RequestUriPushed)
        );
        assert_eq!(
            p(&[("scope", "a"), ("scope", "b")]),
            Err(PushError::Repeated)
        );
    }
}
