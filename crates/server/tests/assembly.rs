//! `serve::assemble`, the one function that builds the app `serve` runs: on a fresh data
//! directory it makes the first signing key and the bootstrap admin, mounts every surface, and
//! its background tasks stop cleanly.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use portcullis_core::time::Clock;
use portcullis_server::bootstrap::BOOTSTRAP_FILE;
use portcullis_server::config::Config;
use portcullis_server::serve::{assemble, load_or_create_keyring, open_store, prepare_data_dir};
use portcullis_verify::SystemClock;
use tower::ServiceExt;

async fn status(router: &Router, path: &str) -> StatusCode {
    router
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).expect("request"))
        .await
        .expect("response")
        .status()
}

#[tokio::test]
async fn assemble_builds_the_app_serve_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    prepare_data_dir(&config.data_dir).expect("data dir");
    let store = open_store(&config).await.expect("store");
    let keyring = load_or_create_keyring(&config, store.as_ref())
        .await
        .expect("keyring");
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let app = assemble(
        &config,
        "http://127.0.0.1:8080".into(),
        store.clone(),
        keyring,
        clock,
    )
    .await
    .expect("assemble");

    // Ready: the database answers and the token endpoint has the signer made at first start.
    assert_eq!(status(&app.router, "/readyz").await, StatusCode::OK);
    assert!(app.state.oauth.signer().is_some());
    // Every surface is mounted: OAuth metadata, the admin API (refusing an anonymous caller),
    // the revocation feed (likewise), and the fallback for anything else.
    assert_eq!(
        status(&app.router, "/.well-known/oauth-authorization-server").await,
        StatusCode::OK
    );
    assert_eq!(
        status(&app.router, "/admin/v1/tenants").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&app.router, "/v1/revocations").await,
        StatusCode::UNAUTHORIZED
    );
    // The OpenAPI document, without a credential.
    assert_eq!(
        status(&app.router, portcullis_http::openapi::PATH).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&app.router, "/no-such-path").await,
        StatusCode::NOT_FOUND
    );
    // The bootstrap global admin was created on the fresh installation.
    assert!(config.data_dir.join(BOOTSTRAP_FILE).exists());

    app.tasks.shutdown(&app.verifier).await;
    store.close().await;
}

/// Regression (found by schemathesis): signing-key rotation answers 202 Accepted, and the OpenAPI
/// document must list that status, or every client generated from it treats success as an error.
#[tokio::test]
async fn signing_key_rotation_answers_a_status_the_openapi_document_lists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config {
        data_dir: dir.path().join("data"),
        ..Config::default()
    };
    prepare_data_dir(&config.data_dir).expect("data dir");
    let store = open_store(&config).await.expect("store");
    let keyring = load_or_create_keyring(&config, store.as_ref())
        .await
        .expect("keyring");
    let app = assemble(
        &config,
        "http://127.0.0.1:8080".into(),
        store.clone(),
        keyring,
        Arc::new(SystemClock),
    )
    .await
    .expect("assemble");
    let token = std::fs::read_to_string(config.data_dir.join(BOOTSTRAP_FILE)).expect("token");
    let response = app
        .router
        .clone()
        .oneshot(
            Request::post("/admin/v1/signing-keys/rotate")
                .header("authorization", format!("Bearer {}", token.trim()))
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let doc = serde_json::to_value(portcullis_http::openapi::document()).expect("json");
    let documented = &doc["paths"]["/admin/v1/signing-keys/rotate"]["post"]["responses"];
    assert!(
        documented.get("202").is_some(),
        "POST /admin/v1/signing-keys/rotate answers 202, which the OpenAPI document does not list"
    );

    app.tasks.shutdown(&app.verifier).await;
    store.close().await;
}
