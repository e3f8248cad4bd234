//! A small invoices API protected by Portcullis: access tokens (and API keys) verified in
//! process, revocations followed live, tenant taken from the path.
//!
//! Start Portcullis (`portcullis serve`), create a tenant, a resource server with audience
//! `invoices-api` and scopes `invoices:read invoices:write`, and a client allowed them (see
//! docs/verify.md). Then:
//!
//! ```sh
//! PORTCULLIS_URL=http://127.0.0.1:8080 \
//! PORTCULLIS_FEED_TOKEN=$(cat data/bootstrap-admin-token) \
//! cargo run -p portcullis-verify --example protected_api
//! curl -H "Authorization: Bearer $ACCESS_TOKEN" http://127.0.0.1:3000/t/acme/invoices
//! ```
//!
//! Environment: `PORTCULLIS_URL` (issuer and feed, default `http://127.0.0.1:8080`),
//! `PORTCULLIS_FEED_TOKEN` (admin token for the revocation feed and API key checks, required),
//! `AUDIENCE` (default `invoices-api`), `LISTEN` (default `127.0.0.1:3000`),
//! `API_KEY_ENVIRONMENT` (default `live`).

use std::net::SocketAddr;

use axum::extract::Path;
use axum::routing::get;
use axum::{Json, Router};
use portcullis_verify::{
    ApiKeyConfig, ApiKeySource, FeedConfig, IssuerConfig, KeySource, Policy, Principal,
    RevocationSource, Verifier, VerifierConfig,
};
use serde_json::{json, Value};

fn env(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let base = env("PORTCULLIS_URL", "http://127.0.0.1:8080");
    let token = std::env::var("PORTCULLIS_FEED_TOKEN")
        .map_err(|_| "set PORTCULLIS_FEED_TOKEN to an admin token allowed to read the feed")?;
    let audience = env("AUDIENCE", "invoices-api");
    let listen: SocketAddr = env("LISTEN", "127.0.0.1:3000").parse()?;

    let issuer = IssuerConfig::new(
        base.clone(),
        KeySource::Discovery(format!("{base}/.well-known/oauth-authorization-server")),
    );
    let mut cfg = VerifierConfig::new(
        issuer,
        audience,
        RevocationSource::Feed(FeedConfig::new(base.clone(), token.clone())),
    );
    cfg.realm = "invoices".into();
    cfg.api_keys = Some(ApiKeyConfig::new(
        ApiKeySource::Http {
            base_url: base,
            token: portcullis_core::secret::Secret::new(token),
        },
        env("API_KEY_ENVIRONMENT", "live"),
    ));
    let verifier = Verifier::new(cfg)?;

    let read = Policy::access_token()
        .also_api_keys()
        .all_scopes(["invoices:read"])
        .tenant_from_path("tenant");
    let write = Policy::access_token()
        .all_scopes(["invoices:write"])
        .tenant_from_path("tenant");
    let app = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/t/{tenant}/invoices",
            get(list).route_layer(verifier.require(read)),
        )
        .route(
            "/t/{tenant}/invoices/new",
            axum::routing::post(create).route_layer(verifier.require(write)),
        );
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "protected API listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}

async fn list(Path(tenant): Path<String>, caller: Principal) -> Json<Value> {
    Json(json!({
        "tenant": tenant,
        "caller": caller.subject,
        "credential": caller.kind.as_str(),
        "invoices": [{"id": "inv_1", "amount": 1200}],
    }))
}

async fn create(Path(tenant): Path<String>, caller: Principal) -> Json<Value> {
    Json(json!({"tenant": tenant, "created_by": caller.subject, "id": "inv_2"}))
}
