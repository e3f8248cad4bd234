//! The one mapping from failures to HTTP answers.
//!
//! An [`ApiError`] carries two messages: the standard error code (and, only where it cannot
//! help an attacker, a short description) for the client, and an internal reason for the log.
//! Domain and storage errors know nothing of HTTP; they are turned into an `ApiError` here.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use portcullis_service::api_keys::VerifyError;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    /// Standard code (RFC 6749 / 6750 style): `invalid_request`, `invalid_token`, ...
    pub code: &'static str,
    /// Safe, client-facing detail (validation messages only).
    pub description: Option<String>,
    /// Internal reason: logged, never sent.
    pub reason: Option<String>,
    /// Bearer challenge for 401s: `Some(None)` = challenge without `error` (no credential sent).
    pub challenge: Option<Option<&'static str>>,
    /// Whether the route takes API keys, so the challenge says so ([`Self::accepting_api_keys`]).
    pub api_key_challenge: bool,
    /// `Retry-After` seconds, for 429s.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str) -> Self {
        Self {
            status,
            code,
            description: None,
            reason: None,
            challenge: None,
            api_key_challenge: false,
            retry_after_secs: None,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "invalid_request");
        e.description = Some(description.into());
        e
    }

    /// 400 with another standard code than `invalid_request`, such as RFC 7591's
    /// `invalid_redirect_uri` and `invalid_client_metadata` for a refused client registration.
    pub fn bad_request(code: &'static str, description: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, code);
        e.description = Some(description.into());
        e
    }

    /// 401 for a request that sent no credential (or one in a scheme the route does not take),
    /// the same answer the gateway and the verify library give: `WWW-Authenticate: Bearer
    /// realm="portcullis"` without an `error` (RFC 6750 section 3.1: no error code when no
    /// credential was sent) and the body `{"error":"unauthorized"}`.
    pub fn missing_credential() -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "unauthorized");
        e.reason = Some("no_credential".into());
        e.challenge = Some(None);
        e
    }

    /// 401 for a bad credential; `reason` goes to the log only.
    pub fn invalid_token(reason: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::UNAUTHORIZED, "invalid_token");
        e.reason = Some(reason.into());
        e.challenge = Some(Some("invalid_token"));
        e
    }

    /// The answer of a route that takes API keys: its challenge says so, with an `ApiKey`
    /// challenge after the `Bearer` one, as the gateway's (`ApiKey realm="portcullis",
    /// header="X-API-Key"`).
    pub fn accepting_api_keys(mut self) -> Self {
        self.api_key_challenge = true;
        self
    }

    pub fn forbidden(reason: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::FORBIDDEN, "insufficient_scope");
        e.reason = Some(reason.into());
        e
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found")
    }

    pub fn conflict(description: impl Into<String>) -> Self {
        let mut e = Self::new(StatusCode::CONFLICT, "conflict");
        e.description = Some(description.into());
        e
    }

    /// 429 `rate_limited`: the credential is good but over its limit.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        e.reason = Some("rate_limited".into());
        e.retry_after_secs = Some(retry_after_secs.max(1));
        e
    }

    /// 503 `temporarily_unavailable` with `Retry-After`: a bounded resource (the password
    /// hashing pool) is full; come back shortly.
    pub fn busy(retry_after_secs: u64) -> Self {
        let mut e = Self::new(StatusCode::SERVICE_UNAVAILABLE, "temporarily_unavailable");
        e.reason = Some("busy".into());
        e.retry_after_secs = Some(retry_after_secs.max(1));
        e
    }

    pub fn payload_too_large() -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request")
    }

    /// 500 with nothing of the cause in the body; the cause is logged.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        let mut e = Self::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error");
        e.reason = Some(cause.to_string());
        e
    }
}

impl From<portcullis_store::StoreError> for ApiError {
    fn from(e: portcullis_store::StoreError) -> Self {
        use portcullis_store::StoreError;
        match e {
            StoreError::NotFound => Self::not_found(),
            StoreError::Conflict => Self::conflict("already exists"),
            other => Self::internal(other),
        }
    }
}

impl From<VerifyError> for ApiError {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::Rejected(r) if r.is_insufficient_scope() => {
                ApiError::forbidden(r.reason())
            }
            VerifyError::Rejected(r) => ApiError::invalid_token(r.reason()),
            VerifyError::RateLimited { retry_after_secs } => {
                ApiError::rate_limited(retry_after_secs)
            }
            VerifyError::Internal(e) => ApiError::internal(e),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(status = %self.status, reason = self.reason.as_deref().unwrap_or(""), "request failed");
        } else {
            tracing::info!(status = %self.status, code = self.code, reason = self.reason.as_deref().unwrap_or(""), "request refused");
        }
        let body = match &self.description {
            Some(d) => json!({"error": self.code, "error_description": d}),
            None => json!({"error": self.code}),
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(challenge) = self.challenge {
            let params = match challenge {
                None => "realm=\"portcullis\"".to_owned(),
                Some(code) => format!("realm=\"portcullis\", error=\"{code}\""),
            };
            let mut values = vec![format!("Bearer {params}")];
            if self.api_key_challenge {
                values.push(portcullis_core::api_key::api_key_challenge(&params));
            }
            for value in values {
                if let Ok(v) = HeaderValue::from_str(&value) {
                    response.headers_mut().append(header::WWW_AUTHENTICATE, v);
                }
            }
        }
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}
