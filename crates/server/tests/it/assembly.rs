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
use portcullis_server::serve::{
    assemble, load_or_create_keyring, open_store, prepare_data_dir, Assembled, Hooks,
};
use portcullis_verify::SystemClock;
use tower::ServiceExt;

/// A fresh data directory assembled exactly as `serve` does it.
async fn fresh(dir: &tempfile::TempDir) -> (Config, Arc<dyn portcullis_store::Store>, Assembled) {
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
        Hooks::new(clock),
    )
    .await
    .expect("assemble");
    (config, store, app)
}

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
    let (config, store, app) = fresh(&dir).await;

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

/// One call through the router: method, path, bearer or basic credential, JSON or form body.
async fn call(
    router: &Router,
    method: &str,
    path: &str,
    auth: Option<String>,
    body: Option<(&str, String)>,
) -> (StatusCode, serde_json::Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let req = match body {
        Some((content_type, b)) => req.header("content-type", content_type).body(Body::from(b)),
        None => req.body(Body::empty()),
    }
    .expect("request");
    let resp = router.clone().oneshot(req).await.expect("response");
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

fn json(v: serde_json::Value) -> Option<(&'static str, String)> {
    Some(("application/json", v.to_string()))
}

fn basic(id: &str, secret: &str) -> Option<String> {
    use base64::Engine as _;
    Some(format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    ))
}

/// Parses a Prometheus text exposition (format 0.0.4) strictly: every sample belongs to the
/// family whose `# TYPE` line came last (histograms: its `_bucket`, `_sum` and `_count`), no
/// family is declared twice, names and label names are valid, label values are quoted with
/// only the three escapes, and values are numbers. Returns each series (name and labels as
/// written) with its value.
fn parse_exposition(text: &str) -> Vec<(String, f64)> {
    fn valid_name(s: &str) -> bool {
        let mut chars = s.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }
    let mut families = std::collections::HashSet::new();
    let mut current: Option<(String, String)> = None;
    let mut series = Vec::new();
    assert!(text.ends_with('\n'), "exposition must end with a newline");
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP has text");
            assert!(valid_name(name) && !help.is_empty(), "{line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE has a kind");
            assert!(valid_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(families.insert(name.to_owned()), "family twice: {name}");
            current = Some((name.to_owned(), kind.to_owned()));
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line {line:?}"
        );
        let (family, kind) = current.clone().expect("sample before any TYPE");
        let name_end = line.find(['{', ' ']).expect("sample has a value");
        let name = &line[..name_end];
        let allowed = if kind == "histogram" {
            ["_bucket", "_sum", "_count"]
                .iter()
                .any(|s| name == format!("{family}{s}"))
        } else {
            name == family
        };
        assert!(allowed, "sample {name} outside its family {family}");
        let mut rest = &line[name_end..];
        if let Some(labels) = rest.strip_prefix('{') {
            let mut chars = labels.char_indices().peekable();
            let end = loop {
                let (start, _) = *chars.peek().expect("unterminated labels");
                let eq = labels[start..].find('=').expect("label has =") + start;
                assert!(valid_name(&labels[start..eq]), "label name in {line}");
                while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                    chars.next();
                }
                assert_eq!(chars.next().map(|c| c.1), Some('"'), "{line}");
                loop {
                    match chars.next().expect("unterminated value").1 {
                        '\\' => {
                            let e = chars.next().expect("escape").1;
                            assert!(['\\', '"', 'n'].contains(&e), "bad escape in {line}");
                        }
                        '"' => break,
                        '\n' => panic!("raw newline in {line}"),
                        _ => {}
                    }
                }
                match chars.next().expect("after value") {
                    (_, ',') => continue,
                    (i, '}') => break i,
                    (_, c) => panic!("unexpected {c} in {line}"),
                }
            };
            rest = &labels[end + 1..];
        }
        let value = rest.strip_prefix(' ').expect("space before value");
        let v: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value in {line}")),
        };
        series.push((line[..line.len() - value.len() - 1].to_owned(), v));
    }
    series
}

fn value(series: &[(String, f64)], key: &str) -> f64 {
    series
        .iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("no series {key}"))
        .1
}

#[tokio::test]
async fn metrics_count_grants_failures_and_key_checks_with_bounded_labels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, store, app) = fresh(&dir).await;
    let r = &app.router;
    let admin = std::fs::read_to_string(config.data_dir.join(BOOTSTRAP_FILE)).expect("bootstrap");
    let admin = Some(format!("Bearer {}", admin.trim()));

    let (s, v) = call(
        r,
        "POST",
        "/admin/v1/tenants",
        admin.clone(),
        json(serde_json::json!({"id": "acme"})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = call(
        r,
        "POST",
        "/admin/v1/tenants/acme/resource-servers",
        admin.clone(),
        json(serde_json::json!({"audience": "payments-api", "scopes": ["payments:read"]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = call(
        r,
        "POST",
        "/admin/v1/tenants/acme/clients",
        admin.clone(),
        json(serde_json::json!({"name": "m", "scopes": ["payments:read"], "audiences": ["payments-api"]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let id = v["client_id"].as_str().expect("id").to_owned();
    let secret = v["client_secret"].as_str().expect("secret").to_owned();
    let form = || {
        Some((
            "application/x-www-form-urlencoded",
            "grant_type=client_credentials".to_owned(),
        ))
    };

    // A grant, a wrong secret, and an API key verification.
    let (s, v) = call(r, "POST", "/oauth2/token", basic(&id, &secret), form()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let (s, _) = call(
        r,
        "POST",
        "/oauth2/token",
        basic(&id, "pcl_cs_live_wrong"),
        form(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, v) = call(
        r,
        "POST",
        "/admin/v1/tenants/acme/api-keys",
        admin.clone(),
        json(serde_json::json!({"name": "k", "owner": "o", "scopes": ["orders:read"]})),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let key = v["key"].as_str().expect("key").to_owned();
    let v_key_id = v["id"].as_str().expect("id").to_owned();
    let (s, v) = call(
        r,
        "POST",
        "/v1/api-keys/verify",
        admin.clone(),
        json(serde_json::json!({"key": key})),
    )
    .await;
    assert_eq!(
        (s, &v["valid"]),
        (StatusCode::OK, &serde_json::json!(true)),
        "{v}"
    );

    let scrape = parse_exposition(&app.metrics.render().await);
    let at = |k: &str| value(&scrape, k);
    assert_eq!(
        at("portcullis_tokens_issued_total{grant=\"client_credentials\"}"),
        1.0
    );
    assert_eq!(
        at("portcullis_client_auth_failures_total{reason=\"bad_secret\"}"),
        1.0
    );
    assert_eq!(
        at("portcullis_client_auth_failures_total{reason=\"unknown_client\"}"),
        0.0
    );
    assert_eq!(
        at("portcullis_api_key_verifications_total{outcome=\"valid\"}"),
        1.0
    );
    assert_eq!(
        at("portcullis_http_requests_total{surface=\"oauth\",route=\"/oauth2/token\",status=\"2xx\"}"),
        1.0
    );
    assert_eq!(
        at("portcullis_http_requests_total{surface=\"oauth\",route=\"/oauth2/token\",status=\"4xx\"}"),
        1.0
    );
    assert_eq!(
        at("portcullis_oauth_errors_total{route=\"/oauth2/token\",error=\"invalid_client\"}"),
        1.0
    );
    assert_eq!(
        at("portcullis_http_requests_total{surface=\"admin\",route=\"/admin/v1/tenants/{tenant}/clients\",status=\"2xx\"}"),
        1.0
    );
    assert_eq!(
        at("portcullis_http_request_duration_seconds_count{surface=\"oauth\"}"),
        2.0
    );
    assert_eq!(at("portcullis_revocation_feed_subscribers"), 0.0);
    assert_eq!(at("portcullis_database_up"), 1.0);
    assert!(at("portcullis_db_pool_max_connections") >= 1.0);

    // A client id and a path a caller made up: counted, under labels that already exist.
    let (s, _) = call(
        r,
        "POST",
        "/oauth2/token",
        basic("made_up_client_1", &secret),
        form(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call(r, "GET", "/made/up/path/1", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let before = parse_exposition(&app.metrics.render().await);
    let (s, _) = call(
        r,
        "POST",
        "/oauth2/token",
        basic("made_up_client_2", &secret),
        form(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = call(r, "GET", "/made/up/path/2", None, None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let text = app.metrics.render().await;
    let after = parse_exposition(&text);
    let names = |s: &[(String, f64)]| s.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&before),
        names(&after),
        "a made-up id or path added a series"
    );
    assert!(!text.contains("made_up") && !text.contains("/made/") && !text.contains(&id));
    assert_eq!(
        at("portcullis_client_auth_failures_total{reason=\"unknown_client\"}") + 2.0,
        value(
            &after,
            "portcullis_client_auth_failures_total{reason=\"unknown_client\"}"
        )
    );
    assert_eq!(
        value(
            &after,
            "portcullis_http_requests_total{surface=\"other\",route=\"unmatched\",status=\"4xx\"}"
        ),
        2.0
    );

    // Revoking the key appends to the revocation log: the head moves at once, the node's key
    // cache applies it (the lag returns to 0), and the revoked key counts as rejected.
    let key_id = v_key_id;
    let (s, v) = call(
        r,
        "POST",
        &format!("/admin/v1/tenants/acme/api-keys/{key_id}/revoke"),
        admin.clone(),
        None,
    )
    .await;
    assert!(s.is_success(), "{s} {v}");
    let scrape = parse_exposition(&app.metrics.render().await);
    assert!(value(&scrape, "portcullis_revocation_log_head") >= 1.0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let scrape = parse_exposition(&app.metrics.render().await);
        if value(&scrape, "portcullis_revocation_log_lag") == 0.0
            && value(&scrape, "portcullis_revocation_log_applied") >= 1.0
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the key cache never applied the revocation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (s, v) = call(
        r,
        "POST",
        "/v1/api-keys/verify",
        admin.clone(),
        json(serde_json::json!({"key": key})),
    )
    .await;
    assert_eq!(
        (s, &v["valid"]),
        (StatusCode::OK, &serde_json::json!(false)),
        "{v}"
    );
    let scrape = parse_exposition(&app.metrics.render().await);
    assert_eq!(
        value(
            &scrape,
            "portcullis_api_key_verifications_total{outcome=\"rejected\"}"
        ),
        1.0
    );

    // The listener's router serves the same text with the Prometheus content type.
    let resp = portcullis_server::metrics::router(app.metrics.clone())
        .oneshot(
            Request::get("/metrics")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        portcullis_server::metrics::CONTENT_TYPE
    );
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    parse_exposition(std::str::from_utf8(&bytes).expect("utf-8"));

    app.tasks.shutdown(&app.verifier).await;
    store.close().await;
}

/// Regression (found by schemathesis): signing-key rotation answers 202 Accepted, and the OpenAPI
/// document must list that status, or every client generated from it treats success as an error.
#[tokio::test]
async fn signing_key_rotation_answers_a_status_the_openapi_document_lists() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (config, store, app) = fresh(&dir).await;
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
