//! `serve`'s Prometheus metrics: the `[metrics]` section, the scrape of one node (what the HTTP
//! surfaces, the OAuth endpoints, the API key verifier, the audit queue, the revocation log and
//! feed, and the database pool count) and the separate listener that serves it at `/metrics`.
//!
//! The listener is off by default and meant for a private address: the scrape tells an observer
//! how busy the node is and how its clients fail, though never who they are. This module only
//! reads values that their owners count; it must never count anything itself, never label a
//! series with something a client chose (client ids, keys, paths), and never serve anything but
//! the scrape on that listener.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use portcullis_core::metrics::{Kind, Text};
use portcullis_http::metrics::HttpMetrics;
use portcullis_service::api_keys::ApiKeyVerifier;
use portcullis_service::state::AppState;
use serde::{Deserialize, Serialize};

/// The `[metrics]` configuration section.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address of the metrics listener (`GET /metrics`); none (the default): no listener.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
}

/// The Prometheus text content type (format 0.0.4).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long a scrape waits for the database's revocation log head.
const HEAD_TIMEOUT: Duration = Duration::from_secs(2);

/// Everything one node's scrape reads.
#[derive(Debug, Clone)]
pub struct NodeMetrics {
    pub http: Arc<HttpMetrics>,
    pub state: AppState,
    pub verifier: Arc<ApiKeyVerifier>,
    /// The detectors' counters, when they run.
    pub detect: Option<Arc<portcullis_service::detect::DetectMetrics>>,
}

impl NodeMetrics {
    /// The Prometheus text exposition of this node.
    pub async fn render(&self) -> String {
        let mut t = Text::new();
        self.http.write(&mut t);
        self.state.oauth.metrics.write(&mut t);
        self.verifier.metrics().write(&mut t);
        if let Some(d) = &self.detect {
            d.write(&mut t);
        }
        self.state.webhooks.metrics.write(&mut t);

        let audit = &self.state.audit;
        let (queued, capacity) = audit.queued();
        t.single(
            "portcullis_audit_queue_depth",
            "Audit events waiting to be written.",
            Kind::Gauge,
            queued,
        );
        t.single(
            "portcullis_audit_queue_capacity",
            "Audit events the queue holds before new ones are dropped.",
            Kind::Gauge,
            capacity,
        );
        t.single(
            "portcullis_audit_dropped_total",
            "Audit events dropped (queue full or database unavailable).",
            Kind::Counter,
            audit.dropped(),
        );

        let store = &self.state.store;
        let head = match tokio::time::timeout(HEAD_TIMEOUT, store.revocation_head()).await {
            Ok(Ok(head)) => Some(head),
            _ => None,
        };
        t.single(
            "portcullis_database_up",
            "1 when the database answered this scrape's revocation log read.",
            Kind::Gauge,
            u8::from(head.is_some()),
        );
        let applied = self.verifier.metrics().applied();
        if let Some(head) = head {
            t.single(
                "portcullis_revocation_log_head",
                "Last position of the revocation log in the database.",
                Kind::Gauge,
                head,
            );
        }
        t.single(
            "portcullis_revocation_log_applied",
            "Last revocation log position this node applied to its API key cache (-1: not yet read).",
            Kind::Gauge,
            applied.unwrap_or(-1),
        );
        if let (Some(head), Some(applied)) = (head, applied) {
            t.single(
                "portcullis_revocation_log_lag",
                "Revocation log entries written but not yet applied on this node.",
                Kind::Gauge,
                head.saturating_sub(applied).max(0),
            );
        }
        t.single(
            "portcullis_revocation_feed_subscribers",
            "Open revocation feed streams (GET /v1/revocations/stream).",
            Kind::Gauge,
            self.state.revocations.subscribers(),
        );

        let pool = store.pool_stats();
        let name = "portcullis_db_pool_connections";
        t.header(name, "Database connections open, by state.", Kind::Gauge);
        t.sample(name, &[("state", "idle")], pool.idle);
        t.sample(name, &[("state", "in_use")], pool.in_use());
        t.single(
            "portcullis_db_pool_max_connections",
            "The most connections the pool opens.",
            Kind::Gauge,
            pool.max,
        );
        t.finish()
    }
}

/// The metrics listener's router: `GET /metrics`, and 404 for anything else.
pub fn router(metrics: Arc<NodeMetrics>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move { scrape(&metrics).await }
            }),
        )
        .fallback(|| async { StatusCode::NOT_FOUND })
}

async fn scrape(metrics: &NodeMetrics) -> Response {
    let mut response = metrics.render().await.into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}

/// Serves the scrape on `listener` until the returned task is aborted.
pub fn spawn(
    listener: tokio::net::TcpListener,
    metrics: Arc<NodeMetrics>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(metrics)).await {
            tracing::error!(error = %e, "metrics listener failed");
        }
    })
}
