//! The top-level router: health, readiness, the admin API, the API key, OAuth and revocation
//! feed endpoints, and the layers every request passes (request id, tracing, body limit, how the
//! client's address is read), with the `[http]` configuration section. This module must never
//! serve a route outside these routers, and readiness must read the live signer, not a snapshot.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::json;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::ApiError;
use crate::extract::ClientAddressRule;
use crate::metrics::HttpMetrics;
use crate::state::RouterState;
use portcullis_core::forwarded::{ForwardedHeader, TrustedProxies};
use portcullis_service::oauth::OAuthService;
use portcullis_service::state::AppState;
use serde::{Deserialize, Serialize};

/// The `[http]` configuration section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    pub shutdown_grace_secs: u64,
    /// Reverse proxies (CIDR blocks or addresses) whose forwarding header names the client.
    /// Empty (the default): the client is always the connecting peer and forwarding headers
    /// are ignored.
    pub trusted_proxies: TrustedProxies,
    /// The header those proxies write: `x-forwarded-for` or `forwarded` (RFC 7239). The other
    /// one is ignored, since a proxy passes on whatever a client put in it.
    pub forwarded_header: ForwardedHeader,
    /// A header those proxies set to the client certificate they verified, as URL-encoded PEM
    /// (nginx `$ssl_client_escaped_cert`): read only from a trusted proxy, ignored from anyone
    /// else, never when the connection itself presented a certificate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate_header: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 64 * 1024,
            shutdown_grace_secs: 20,
            trusted_proxies: TrustedProxies::none(),
            forwarded_header: ForwardedHeader::XForwardedFor,
            client_certificate_header: None,
        }
    }
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The router with default HTTP settings but this body limit: no trusted proxies, so the client
/// address is always the peer's.
pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    router_for(
        state,
        &HttpConfig {
            max_body_bytes,
            ..HttpConfig::default()
        },
    )
}

/// The router with the `[http]` settings, counting into metrics nobody reads.
pub fn router_for(state: AppState, http: &HttpConfig) -> Router {
    router_with_metrics(state, http, Arc::new(HttpMetrics::new()))
}

/// The router with the `[http]` settings, counting requests into `metrics`.
pub fn router_with_metrics(
    state: AppState,
    http: &HttpConfig,
    metrics: Arc<HttpMetrics>,
) -> Router {
    let client_address = Arc::new(ClientAddressRule {
        trusted_proxies: http.trusted_proxies.clone(),
        header: http.forwarded_header.clone(),
        certificate_header: http
            .client_certificate_header
            .as_deref()
            .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
    });
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .nest(crate::admin::PREFIX, crate::admin::router())
        // Each surface below holds only its subsystem's state.
        .merge(crate::api_keys::router().with_state(state.api_key_service()))
        .merge(crate::revocations::router().with_state(state.feed_service()))
        .merge(crate::gateway_denials::router().with_state(state.denial_ingest()))
        .merge(crate::oauth::router().with_state(state.oauth_service()))
        .merge(crate::openapi::router())
        // The admin API, the sign-in pages and readiness: each handler takes its subsystem's
        // state, made from this router's (`crate::state`).
        .merge(crate::pages::router())
        .fallback(not_found)
        .with_state(RouterState::new(state))
        // Innermost of the router-wide layers: runs after routing, so it sees the route template.
        .layer(axum::middleware::from_fn_with_state(
            metrics,
            crate::metrics::track,
        ))
        .layer(DefaultBodyLimit::max(http.max_body_bytes))
        .layer(axum::middleware::from_fn(
            crate::extract::client_certificate_from_proxy,
        ))
        .layer(Extension(client_address))
        .layer(
            ServiceBuilder::new()
                // A client-sent id is replaced: request ids in the audit log are ours.
                .layer(axum::middleware::from_fn(strip_client_request_id))
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(
                    TraceLayer::new_for_http().make_span_with(|req: &Request<_>| {
                        let id = req
                            .headers()
                            .get(&REQUEST_ID)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("");
                        tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = id)
                    }),
                )
                .layer(PropagateRequestIdLayer::new(REQUEST_ID)),
        )
}

async fn strip_client_request_id(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    req.headers_mut().remove(&REQUEST_ID);
    next.run(req).await
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Ready when the database answers and the token endpoint has a signer.
async fn readyz(State(state): State<OAuthService>) -> impl IntoResponse {
    let db = matches!(
        tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await,
        Ok(Ok(()))
    );
    // The signer the token endpoint uses now (rotation replaces it), not the keys loaded at
    // start.
    let keys = state.oauth.signer().is_some();
    let status = if db && keys {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "status": if status == StatusCode::OK { "ready" } else { "not_ready" },
            "database": db,
            "signing_keys": keys,
        })),
    )
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}
