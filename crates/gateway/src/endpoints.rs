//! The answers the gateway gives itself rather than an upstream: the admin listener
//! (`/metrics`, `/healthz`, `/readyz`) and the identity JWT public key set, which is served on
//! the admin listener and on the main one.
//!
//! This module must never serve anything secret (metrics carry no credentials, the key set only
//! public keys) and never answer ready while verification is failing closed.

use std::sync::Arc;

use axum::body::Body;
use http::{HeaderValue, Response, StatusCode};

use crate::decision::simple;
use crate::identity;
use crate::state::{Shared, Snapshot};

pub(crate) async fn admin_handle(
    shared: Arc<Shared>,
    req: http::Request<hyper::body::Incoming>,
) -> Response<Body> {
    match req.uri().path() {
        "/metrics" => {
            let text = shared.metrics.render(&shared.verifier);
            let mut r = Response::new(Body::from(text));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        "/healthz" => Response::new(Body::from("ok\n")),
        identity::JWKS_PATH => jwks_response(&shared.snapshot()),
        // Ready when verification is not failing closed on a stale revocation feed.
        "/readyz" => {
            if shared.verifier.revocations().check_fresh().is_ok() {
                Response::new(Body::from("ready\n"))
            } else {
                simple(StatusCode::SERVICE_UNAVAILABLE, "not_ready")
            }
        }
        _ => simple(StatusCode::NOT_FOUND, "not_found"),
    }
}

/// The identity JWT public key set (`/_portcullis/identity/jwks.json`); 404 when identity JWTs
/// are not configured.
pub fn jwks_response(snap: &Snapshot) -> Response<Body> {
    let Some(signer) = &snap.identity else {
        return simple(StatusCode::NOT_FOUND, "not_found");
    };
    let mut r = Response::new(Body::from(signer.jwks().to_owned()));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/jwk-set+json"),
    );
    // Short: a rotated key must reach upstreams within an identity JWT's lifetime or so.
    r.headers_mut().insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60"),
    );
    r
}
