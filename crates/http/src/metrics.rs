//! Request metrics of the HTTP surfaces: requests by surface, route template and status class,
//! RFC 6749 error codes by route, and a latency histogram per surface. The layer ([`track`])
//! wraps every route of the app; `portcullis-server` renders the values on its metrics listener.
//!
//! A route is its template as registered (`/admin/v1/tenants/{tenant}`), read from axum's
//! `MatchedPath`; a request that matched no route counts as `unmatched`. This module must never
//! label a series with the raw path, a client id or anything else a client chose: the route
//! templates are fixed at build time, so the number of series is bounded. Counting a request is a
//! read-locked lookup by `&str` and relaxed atomic adds, with no allocation once a route has been
//! seen.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use portcullis_core::metrics::{Family, Histogram, Kind, Text};

use crate::oauth::reply::OAuthErrorCode;

/// The surface a route belongs to, from its template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    OAuth,
    Admin,
    ApiKeys,
    Revocations,
    Health,
    /// A route outside the surfaces above, or no route at all.
    Other,
}

impl Surface {
    pub const ALL: [Surface; 6] = [
        Self::OAuth,
        Self::Admin,
        Self::ApiKeys,
        Self::Revocations,
        Self::Health,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OAuth => "oauth",
            Self::Admin => "admin",
            Self::ApiKeys => "api_keys",
            Self::Revocations => "revocations",
            Self::Health => "health",
            Self::Other => "other",
        }
    }

    /// The surface of a route template, by the prefixes the routers mount.
    pub fn of_route(route: &str) -> Self {
        if route.starts_with(crate::admin::PREFIX) {
            Self::Admin
        } else if route.starts_with("/oauth2/") || route.starts_with("/.well-known/") {
            Self::OAuth
        } else if route.starts_with("/v1/revocations") {
            Self::Revocations
        } else if route.starts_with("/v1/api-keys/") || route.contains("/api-keys/") {
            Self::ApiKeys
        } else if route == "/healthz" || route == "/readyz" {
            Self::Health
        } else {
            Self::Other
        }
    }
}

/// The label of the route that matched nothing.
pub const UNMATCHED: &str = "unmatched";

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn class_index(status: StatusCode) -> usize {
    usize::from(status.as_u16() / 100)
        .saturating_sub(1)
        .min(CLASSES.len() - 1)
}

#[derive(Debug)]
struct RouteCounters {
    surface: Surface,
    by_class: [AtomicU64; CLASSES.len()],
    oauth_errors: Family<&'static str>,
}

impl RouteCounters {
    fn new(surface: Surface) -> Self {
        Self {
            surface,
            by_class: Default::default(),
            oauth_errors: Family::new(),
        }
    }
}

/// The request counters and latency histograms of one app.
#[derive(Debug)]
pub struct HttpMetrics {
    routes: RwLock<HashMap<Arc<str>, Arc<RouteCounters>>>,
    latency: [Histogram; Surface::ALL.len()],
}

impl Default for HttpMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpMetrics {
    pub fn new() -> Self {
        Self {
            routes: RwLock::new(HashMap::new()),
            latency: Default::default(),
        }
    }

    fn route(&self, route: &str) -> Arc<RouteCounters> {
        // A poisoned lock only means a panic elsewhere mid-insert; counts stay usable.
        if let Some(c) = self
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(route)
        {
            return c.clone();
        }
        let surface = if route == UNMATCHED {
            Surface::Other
        } else {
            Surface::of_route(route)
        };
        self.routes
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .entry(Arc::from(route))
            .or_insert_with(|| Arc::new(RouteCounters::new(surface)))
            .clone()
    }

    /// One finished request: its route template (`None`: no route matched), status, RFC 6749
    /// error code if any, and time to the response head.
    pub fn record(
        &self,
        route: Option<&str>,
        status: StatusCode,
        oauth_error: Option<&'static str>,
        took: Duration,
    ) {
        let counters = self.route(route.unwrap_or(UNMATCHED));
        counters.by_class[class_index(status)].fetch_add(1, Ordering::Relaxed);
        if let Some(code) = oauth_error {
            counters.oauth_errors.add(&code, 1);
        }
        self.latency[counters.surface as usize].observe(took);
    }

    /// Requests counted so far for a route template and status class (`"2xx"`), for tests.
    pub fn requests(&self, route: &str, class: &str) -> u64 {
        let Some(i) = CLASSES.iter().position(|c| *c == class) else {
            return 0;
        };
        self.routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(route)
            .map_or(0, |c| c.by_class[i].load(Ordering::Relaxed))
    }

    pub fn write(&self, t: &mut Text) {
        let mut routes: Vec<(Arc<str>, Arc<RouteCounters>)> = self
            .routes
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        routes.sort_by(|a, b| a.0.cmp(&b.0));
        let name = "portcullis_http_requests_total";
        t.header(
            name,
            "Requests by surface, route template and status class.",
            Kind::Counter,
        );
        for (route, c) in &routes {
            for (i, class) in CLASSES.iter().enumerate() {
                let n = c.by_class[i].load(Ordering::Relaxed);
                if n > 0 {
                    t.sample(
                        name,
                        &[
                            ("surface", c.surface.as_str()),
                            ("route", route),
                            ("status", class),
                        ],
                        n,
                    );
                }
            }
        }
        let name = "portcullis_oauth_errors_total";
        t.header(
            name,
            "RFC 6749 error answers by route template and error code.",
            Kind::Counter,
        );
        for (route, c) in &routes {
            for (code, n) in c.oauth_errors.snapshot() {
                t.sample(name, &[("route", route), ("error", code)], n);
            }
        }
        let name = "portcullis_http_request_duration_seconds";
        t.header(
            name,
            "Time from request to response head, by surface.",
            Kind::Histogram,
        );
        for s in Surface::ALL {
            t.histogram(name, &[("surface", s.as_str())], &self.latency[s as usize]);
        }
    }
}

/// The layer function: times the request and counts it under its route template.
pub async fn track(State(metrics): State<Arc<HttpMetrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    // `MatchedPath` holds an `Arc<str>`: cloning it does not allocate.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let response = next.run(req).await;
    let oauth_error = response.extensions().get::<OAuthErrorCode>().map(|c| c.0);
    metrics.record(
        route.as_ref().map(MatchedPath::as_str),
        response.status(),
        oauth_error,
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn surfaces_follow_the_mounted_prefixes() {
        assert_eq!(Surface::of_route("/oauth2/token"), Surface::OAuth);
        assert_eq!(
            Surface::of_route("/.well-known/oauth-authorization-server"),
            Surface::OAuth
        );
        assert_eq!(
            Surface::of_route("/admin/v1/tenants/{tenant}"),
            Surface::Admin
        );
        assert_eq!(Surface::of_route("/v1/api-keys/verify"), Surface::ApiKeys);
        assert_eq!(
            Surface::of_route("/v1/tenants/{tenant}/api-keys/self"),
            Surface::ApiKeys
        );
        assert_eq!(
            Surface::of_route("/v1/revocations/stream"),
            Surface::Revocations
        );
        assert_eq!(Surface::of_route("/readyz"), Surface::Health);
    }

    #[test]
    fn status_classes_cover_every_status() {
        assert_eq!(CLASSES[class_index(StatusCode::OK)], "2xx");
        assert_eq!(CLASSES[class_index(StatusCode::TOO_MANY_REQUESTS)], "4xx");
        assert_eq!(CLASSES[class_index(StatusCode::SERVICE_UNAVAILABLE)], "5xx");
        assert_eq!(CLASSES[class_index(StatusCode::CONTINUE)], "1xx");
    }
}
