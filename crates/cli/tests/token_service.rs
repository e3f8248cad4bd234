//! End to end: the real `portcullis` binary serves; the CLI creates a tenant, an API and a
//! client; the `oauth2` crate performs the client-credentials flow; and `jwt-compact`, a JWT
//! library independent of the one the server signs with, validates the token against the
//! published JWKS.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use jwt_compact::alg::Es256;
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm, AlgorithmExt, TimeOptions, UntrustedToken};
use oauth2::basic::BasicClient;
use oauth2::{ClientId, ClientSecret, Scope, TokenResponse, TokenUrl};
use serde::Deserialize;
use serde_json::Value;

use common::PgSchema;

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

async fn start(data_dir: &Path, database_url: Option<&str>) -> Server {
    let port = free_port();
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("PORTCULLIS_DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(url) = database_url {
        // PostgreSQL means possibly many nodes: the issuer must be explicit.
        cmd.env("PORTCULLIS_DATABASE_URL", url).env(
            "PORTCULLIS_OAUTH__ISSUER",
            format!("http://127.0.0.1:{port}"),
        );
    }
    let child = cmd.spawn().expect("spawn server");
    let server = Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{}/readyz", server.url)).send().await {
            if r.status().is_success() {
                return server;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("server did not become ready");
}

fn cli(server: &Server, data_dir: &Path, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(args)
        .args(["--url", &server.url, "--output", "json"])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("PORTCULLIS_ADMIN_TOKEN")
        .output()
        .expect("run cli");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json output")
}

/// The `oauth2` crate's HTTP client interface, backed by reqwest.
async fn http_client(req: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, std::io::Error> {
    let err = |e: reqwest::Error| std::io::Error::other(e.to_string());
    let req = reqwest::Request::try_from(req).map_err(err)?;
    let resp = reqwest::Client::new().execute(req).await.map_err(err)?;
    let mut builder = oauth2::http::Response::builder().status(resp.status());
    for (k, v) in resp.headers() {
        builder = builder.header(k, v);
    }
    let body = resp.bytes().await.map_err(err)?.to_vec();
    builder.body(body).map_err(std::io::Error::other)
}

#[derive(Debug, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    aud: String,
    jti: String,
    client_id: String,
    scope: String,
    tenant: String,
}

#[tokio::test]
async fn oauth2_crate_gets_a_token_that_an_independent_library_validates() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = start(&data, None).await;
    exercise(&server, &data).await;
}

/// The same flow with the server on PostgreSQL (`PORTCULLIS_TEST_DATABASE_URL`), each run in its
/// own schema. Skipped with a notice when unset; required under CI.
#[tokio::test]
async fn the_same_flow_works_on_postgres() {
    let Some(schema) = PgSchema::create("the_same_flow_works_on_postgres").await else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = start(&data, Some(&schema.database_url)).await;
    exercise(&server, &data).await;
    drop(server);
    schema.drop_schema().await;
}

async fn exercise(server: &Server, data: &Path) {
    let data = data.to_path_buf();
    cli(server, &data, &["tenant", "create", "acme"]);
    let api = cli(
        server,
        &data,
        &[
            "resource-server",
            "create",
            "--tenant",
            "acme",
            "--audience",
            "payments-api",
            "--scopes",
            "payments:read,payments:write",
        ],
    );
    let api_id = api["id"].as_str().expect("resource server id").to_owned();
    let client = cli(
        server,
        &data,
        &[
            "client",
            "create",
            "--tenant",
            "acme",
            "--name",
            "billing-sync",
            "--scopes",
            "payments:read",
            "--audience",
            "payments-api",
        ],
    );
    let client_id = client["client_id"].as_str().expect("client_id").to_owned();
    let secret = client["client_secret"].as_str().expect("secret").to_owned();
    let listed = cli(server, &data, &["client", "list", "--tenant", "acme"]);
    assert_eq!(listed[0]["client_id"], client_id.as_str());
    assert!(
        !listed.to_string().contains(&secret),
        "secrets are shown once"
    );

    let oauth = BasicClient::new(ClientId::new(client_id.clone()))
        .set_client_secret(ClientSecret::new(secret.clone()))
        .set_token_uri(TokenUrl::new(format!("{}/oauth2/token", server.url)).expect("url"));
    let token = oauth
        .exchange_client_credentials()
        .add_scope(Scope::new("payments:read".into()))
        .add_extra_param("resource", "payments-api")
        .request_async(&http_client)
        .await
        .expect("client credentials grant");
    assert_eq!(
        token
            .scopes()
            .map(|s| s.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
        Some(vec!["payments:read".to_owned()])
    );
    let access = token.access_token().secret().clone();

    // The oauth2 crate sees a standard error for a scope the client is not allowed.
    let refused = oauth
        .exchange_client_credentials()
        .add_scope(Scope::new("payments:write".into()))
        .request_async(&http_client)
        .await;
    match refused {
        Err(oauth2::RequestTokenError::ServerResponse(e)) => {
            assert_eq!(e.error().as_ref(), "invalid_scope")
        }
        other => panic!("expected invalid_scope, got {other:?}"),
    }

    // Validate with jwt-compact against the published JWKS.
    let metadata: Value = reqwest::get(format!(
        "{}/.well-known/oauth-authorization-server",
        server.url
    ))
    .await
    .expect("metadata")
    .json()
    .await
    .expect("json");
    let jwks: Value = reqwest::get(metadata["jwks_uri"].as_str().expect("jwks_uri"))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    let untrusted = UntrustedToken::new(&access).expect("parse");
    assert_eq!(untrusted.algorithm(), "ES256");
    assert_eq!(untrusted.header().token_type.as_deref(), Some("at+jwt"));
    let kid = untrusted.header().key_id.clone().expect("kid");
    let jwk_value = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .expect("signing key is published")
        .clone();
    let jwk: JsonWebKey<'_> = serde_json::from_value(jwk_value).expect("jwk");
    let key = <Es256 as Algorithm>::VerifyingKey::try_from(&jwk).expect("verifying key");
    let checked = Es256
        .validator::<Claims>(&key)
        .validate(&untrusted)
        .expect("signature valid");
    let claims = checked.claims();
    claims
        .validate_expiration(&TimeOptions::default())
        .expect("not expired");
    claims
        .validate_maturity(&TimeOptions::default())
        .expect("not before");
    assert!(claims.issued_at.is_some());
    let c = &claims.custom;
    assert_eq!(c.iss, metadata["issuer"].as_str().expect("issuer"));
    assert_eq!(c.iss, server.url);
    assert_eq!(c.aud, "payments-api");
    assert_eq!(c.sub, client_id);
    assert_eq!(c.client_id, client_id);
    assert_eq!(c.scope, "payments:read");
    assert_eq!(c.tenant, "acme");
    assert!(!c.jti.is_empty());

    // A tampered token fails the independent check.
    // (A character inside the signature, where every base64url character carries 6 full bits.)
    let mut bytes = access.clone().into_bytes();
    let i = bytes.len() - 10;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).expect("ascii");
    let untrusted = UntrustedToken::new(&tampered).expect("parse");
    assert!(Es256
        .validator::<Claims>(&key)
        .validate(&untrusted)
        .is_err());

    // The resource server gets its own credential through the CLI and introspects the token.
    let credential = cli(
        server,
        &data,
        &[
            "resource-server",
            "rotate-secret",
            "--tenant",
            "acme",
            &api_id,
        ],
    );
    assert_eq!(credential["client_id"], api_id.as_str());
    let introspected: Value = reqwest::Client::new()
        .post(format!("{}/oauth2/introspect", server.url))
        .basic_auth(
            &api_id,
            credential["client_secret"].as_str().map(str::to_owned),
        )
        .header("content-type", "application/x-www-form-urlencoded")
        // A JWT is base64url and dots: nothing to escape in a form.
        .body(format!("token={access}&token_type_hint=access_token"))
        .send()
        .await
        .expect("introspect")
        .json()
        .await
        .expect("json");
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["aud"], "payments-api");
    let shown = cli(
        server,
        &data,
        &["resource-server", "show", "--tenant", "acme", &api_id],
    );
    assert_eq!(shown["secrets"].as_array().expect("secrets").len(), 1);
    assert!(!shown
        .to_string()
        .contains(credential["client_secret"].as_str().expect("secret")));

    // Rotate, show, disable through the CLI.
    let rotated = cli(
        server,
        &data,
        &[
            "client",
            "rotate-secret",
            "--tenant",
            "acme",
            &client_id,
            "--overlap",
            "0",
        ],
    );
    assert!(rotated["client_secret"]
        .as_str()
        .is_some_and(|s| s.starts_with("pcl_cs_live_") && s != secret));
    let old = oauth
        .exchange_client_credentials()
        .request_async(&http_client)
        .await;
    assert!(old.is_err(), "old secret stops at once with overlap 0");
    let shown = cli(
        server,
        &data,
        &["client", "show", "--tenant", "acme", &client_id],
    );
    assert_eq!(shown["secrets"].as_array().expect("secrets").len(), 2);
    let disabled = cli(
        server,
        &data,
        &["client", "disable", "--tenant", "acme", &client_id],
    );
    assert_eq!(disabled["status"], "disabled");
}
