//! RFC 6749 section 5.2 error responses, exactly: a standard `error` code, no hint that helps an
//! attacker, `Cache-Control: no-store`, and a `WWW-Authenticate: Basic` challenge on 401.
//! The precise reason travels in `reason`, which is logged (and audited by the caller), never sent.
//!
//! This is the error value; its HTTP form (body and headers) is written by `portcullis-http`'s
//! `oauth::reply`, so nothing here may depend on a web framework.

use http::StatusCode;

#[derive(Debug)]
pub struct OAuthError {
    pub status: StatusCode,
    pub code: &'static str,
    /// Client-facing text; only for malformed requests, never about credentials.
    pub description: Option<&'static str>,
    /// Internal reason: logged, never sent.
    pub reason: String,
    pub retry_after_secs: Option<u64>,
    /// Whether a 401 carries `WWW-Authenticate: Basic` ([`Self::for_method`]).
    pub basic_challenge: bool,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, reason: impl Into<String>) -> Self {
        Self {
            status,
            code,
            description: None,
            reason: reason.into(),
            retry_after_secs: None,
            basic_challenge: true,
        }
    }

    pub fn invalid_request(description: &'static str) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_request", description);
        e.description = Some(description);
        e
    }

    /// 401 (with a Basic challenge unless the client authenticated in the body,
    /// [`Self::for_method`]): the same answer for an unknown client, a wrong secret, a disabled
    /// client and every other authentication failure.
    pub fn invalid_client(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", reason)
    }

    /// The answer for a client that authenticated with `method`: the `WWW-Authenticate: Basic`
    /// challenge goes only to a client that used the `Authorization` header (RFC 6749 section
    /// 5.2: "matching the authentication scheme used by the client") or sent no credentials;
    /// one that authenticated in the body (`client_secret_post`, `private_key_jwt`) is not told
    /// to try Basic.
    pub fn for_method(mut self, method: super::form::PresentedMethod) -> Self {
        if method != super::form::PresentedMethod::Basic {
            self.basic_challenge = false;
        }
        self
    }

    pub fn unauthorized_client(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", reason)
    }

    pub fn grant(e: portcullis_core::oauth::GrantError) -> Self {
        use portcullis_core::oauth::GrantError;
        match e {
            GrantError::InvalidRequest(d) => Self::invalid_request(d),
            other => Self::new(StatusCode::BAD_REQUEST, other.code(), other.code()),
        }
    }

    /// 429 with `Retry-After`: a source refused by the failure throttle before any credential
    /// check. The code is `invalid_client` (the client was not authenticated, RFC 6749 section
    /// 5.2); that the refusal was a throttle is said by the status and `Retry-After`, and the
    /// audit log's reason.
    pub fn throttled(retry_after_secs: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "invalid_client", "throttled");
        e.retry_after_secs = Some(retry_after_secs.max(1));
        e
    }

    pub fn payload_too_large() -> Self {
        let mut e = Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            "body_too_large",
        );
        e.description = Some("request body too large");
        e
    }

    pub fn method_not_allowed() -> Self {
        let mut e = Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "method_not_allowed",
        );
        e.description = Some("use POST with an application/x-www-form-urlencoded body");
        e
    }

    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            cause.to_string(),
        )
    }
}

impl From<portcullis_store::StoreError> for OAuthError {
    fn from(e: portcullis_store::StoreError) -> Self {
        Self::internal(e)
    }
}
