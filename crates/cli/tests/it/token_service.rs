//! End to end: the real `portcullis` binary serves; the CLI creates a tenant, an API and a
//! client; the `oauth2` crate performs the client-credentials flow; and `jwt-compact`, a JWT
//! library independent of the one the server signs with, validates the token against the
//! published JWKS.

use crate::common;

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

use common::{claims, PgSchema};

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
    // The tenant's built-in `portcullis-cli-acme` is listed too.
    assert!(
        listed
            .as_array()
            .expect("list")
            .iter()
            .any(|c| c["client_id"] == client_id.as_str()),
        "{listed}"
    );
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
    let enabled = cli(
        server,
        &data,
        &["client", "enable", "--tenant", "acme", &client_id],
    );
    assert_eq!(enabled["status"], "active");
}

// ---- The CLI's own consistency (issue 15 item 11): `portcullis token`, flag spellings,
// ---- durations, and a clear message when `--url` is not Portcullis.

/// Runs `portcullis` with `args` (no inherited settings), feeding `stdin`.
fn portcullis(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut cmd = common::command();
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn portcullis");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("output")
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn portcullis_token_gets_a_token_with_the_secret_from_a_flag_the_environment_or_stdin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::Server::start(dir.path(), &[]);
    let seeded = common::seed_payments(&server);
    let id = seeded.client_id.as_str();
    let secret = seeded.client_secret.as_str();
    let url = server.url.as_str();

    // A flag, text output: the access token alone, ready for `$(...)`.
    let out = portcullis(
        &[
            "token",
            "--url",
            url,
            "--client-id",
            id,
            "--client-secret",
            secret,
        ],
        &[],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let token = stdout(&out);
    let c = claims(&token);
    assert_eq!(c["client_id"], id);
    assert_eq!(c["aud"], "payments-api");
    assert_eq!(c["scope"], "payments:read");

    // The environment, JSON output, scope and audience asked for explicitly.
    let out = portcullis(
        &[
            "token",
            "--url",
            url,
            "--client-id",
            id,
            "--scope",
            "payments:read",
            "--audience",
            "payments-api",
            "--output",
            "json",
        ],
        &[("PORTCULLIS_CLIENT_SECRET", secret)],
        None,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let body: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "payments:read");
    assert!(body["expires_in"].as_u64().is_some_and(|s| s > 0));
    assert_eq!(
        claims(body["access_token"].as_str().expect("token"))["aud"],
        "payments-api"
    );

    // Standard input, piped without a flag and with `--client-secret -`.
    for args in [
        &["token", "--url", url, "--client-id", id][..],
        &[
            "token",
            "--url",
            url,
            "--client-id",
            id,
            "--client-secret",
            "-",
        ][..],
    ] {
        let out = portcullis(args, &[], Some(&format!("{secret}\n")));
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert_eq!(claims(&stdout(&out))["client_id"], id);
    }

    // No secret anywhere: a clear message, not a request.
    let out = portcullis(&["token", "--url", url, "--client-id", id], &[], Some(""));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("client secret is empty"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn portcullis_token_prints_the_oauth_error_code_and_description_and_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::Server::start(dir.path(), &[]);
    let seeded = common::seed_payments(&server);
    let url = server.url.as_str();
    let id = seeded.client_id.as_str();

    let wrong = "pcl_cs_live_0000000000000000000000000000000000000000";
    let out = portcullis(
        &[
            "token",
            "--url",
            url,
            "--client-id",
            id,
            "--client-secret",
            wrong,
        ],
        &[],
        None,
    );
    assert!(!out.status.success(), "a refused client fails");
    assert!(
        stdout(&out).is_empty(),
        "nothing on stdout for a script to mistake for a token"
    );
    let err = stderr(&out);
    assert!(err.starts_with("error: invalid_client"), "{err}");
    assert!(!err.contains(wrong), "the secret is never echoed: {err}");

    let out = portcullis(
        &[
            "token",
            "--url",
            url,
            "--client-id",
            id,
            "--scope",
            "payments:write",
        ],
        &[("PORTCULLIS_CLIENT_SECRET", &seeded.client_secret)],
        None,
    );
    assert!(!out.status.success(), "a scope the client lacks fails");
    let err = stderr(&out);
    assert!(err.starts_with("error: invalid_scope"), "{err}");
}

#[test]
fn scope_has_one_spelling_and_the_old_plural_still_works_hidden() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::Server::start(dir.path(), &[]);
    server.cli_json(&["tenant", "create", "acme"]);
    // `--scope`, comma-separated and repeated, on every command that takes scopes.
    let rs = server.cli_json(&[
        "resource-server",
        "create",
        "--tenant",
        "acme",
        "--audience",
        "payments-api",
        "--scope",
        "payments:read,payments:write",
        "--scope",
        "payments:admin",
    ]);
    assert_eq!(
        rs["scopes"],
        serde_json::json!(["payments:admin", "payments:read", "payments:write"])
    );
    let client = server.cli_json(&[
        "client",
        "create",
        "--tenant",
        "acme",
        "--name",
        "a",
        "--audience",
        "payments-api",
        "--scope",
        "payments:read",
        "--scope",
        "payments:write",
    ]);
    assert_eq!(
        client["scopes"],
        serde_json::json!(["payments:read", "payments:write"])
    );
    let key = server.cli_json(&[
        "api-key",
        "create",
        "--tenant",
        "acme",
        "--name",
        "k",
        "--owner",
        "o",
        "--scope",
        "payments:read,payments:write",
    ]);
    assert_eq!(
        key["scopes"],
        serde_json::json!(["payments:read", "payments:write"])
    );
    // Scripts written for `--scopes` keep working ...
    let old = server.cli_json(&[
        "client",
        "create",
        "--tenant",
        "acme",
        "--name",
        "b",
        "--audience",
        "payments-api",
        "--scopes",
        "payments:read",
    ]);
    assert_eq!(old["scopes"], serde_json::json!(["payments:read"]));
    // ... but help shows one spelling.
    for cmd in [
        &["client", "create", "--help"][..],
        &["resource-server", "create", "--help"][..],
        &["api-key", "create", "--help"][..],
        &["token", "--help"][..],
    ] {
        let help = stdout(&portcullis(cmd, &[], None));
        assert!(help.contains("--scope <"), "{cmd:?}: {help}");
        assert!(!help.contains("--scopes"), "{cmd:?}: {help}");
    }
}

fn rfc3339_secs_from_now(s: &Value) -> i64 {
    let t = humantime::parse_rfc3339_weak(s.as_str().expect("a time")).expect("RFC 3339");
    let now = std::time::SystemTime::now();
    match t.duration_since(now) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

#[test]
fn every_overlap_and_lifetime_flag_takes_a_duration_and_key_rotation_overlaps_by_default() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::Server::start(dir.path(), &[]);
    let seeded = common::seed_payments(&server);
    let id = seeded.client_id.as_str();

    let rotated = server.cli_json(&[
        "client",
        "rotate-secret",
        "--tenant",
        "acme",
        id,
        "--overlap",
        "1h",
    ]);
    let left = rfc3339_secs_from_now(&rotated["previous_secrets_expire_at"]);
    assert!((3500..=3600).contains(&left), "1h overlap, {left} s left");
    // A bare number is still seconds, for scripts written before durations.
    let rotated = server.cli_json(&[
        "client",
        "rotate-secret",
        "--tenant",
        "acme",
        id,
        "--overlap",
        "90",
    ]);
    let left = rfc3339_secs_from_now(&rotated["previous_secrets_expire_at"]);
    assert!((0..=90).contains(&left), "90 s overlap, {left} s left");

    let rs = server.cli_json(&["resource-server", "list", "--tenant", "acme"]);
    let rs_id = rs[0]["id"].as_str().expect("rs id");
    let rotated = server.cli_json(&[
        "resource-server",
        "rotate-secret",
        "--tenant",
        "acme",
        rs_id,
        "--overlap",
        "30m",
    ]);
    assert!(rotated["client_secret"].is_string());

    let ttl = server.cli_json(&[
        "client",
        "create",
        "--tenant",
        "acme",
        "--name",
        "short",
        "--audience",
        "payments-api",
        "--access-token-ttl",
        "5m",
    ]);
    assert_eq!(ttl["access_token_ttl_secs"], 300);

    // API key rotation keeps the old key working for a day unless told otherwise.
    let r = server.cli_json(&["api-key", "rotate", "--tenant", "acme", &seeded.api_key_id]);
    let left = rfc3339_secs_from_now(&r["old"]["rotation_overlap_ends_at"]);
    assert!(
        (86_300..=86_400).contains(&left),
        "default 24h overlap, {left} s left"
    );
    let newer = r["new"]["id"].as_str().expect("new id");
    let r = server.cli_json(&[
        "api-key",
        "rotate",
        "--tenant",
        "acme",
        newer,
        "--overlap",
        "2h",
    ]);
    let left = rfc3339_secs_from_now(&r["old"]["rotation_overlap_ends_at"]);
    assert!((7100..=7200).contains(&left), "2h overlap, {left} s left");

    // A malformed duration is refused before anything is sent, naming the format.
    let out = server.cli(&[
        "client",
        "rotate-secret",
        "--tenant",
        "acme",
        id,
        "--overlap",
        "soon",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a duration; use e.g. `30m`"),
        "{}",
        stderr(&out)
    );
}

/// A stand-in for "something else" at `--url`: answers every request with `status` and `body`.
fn impostor(status: &str, content_type: &str, body: &'static str) -> String {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 65536];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(body.as_bytes());
        }
    });
    format!("http://{addr}")
}

#[test]
fn a_url_that_is_not_portcullis_is_named_as_such() {
    let html = impostor(
        "404 Not Found",
        "text/html",
        "<html><body>Not Found</body></html>",
    );
    let other_json = impostor(
        "404 Not Found",
        "application/json",
        r#"{"message":"no route"}"#,
    );
    let ok_html = impostor("200 OK", "text/html", "<html>welcome</html>");
    let ok_json = impostor("200 OK", "application/json", r#"{"status":"ok"}"#);
    let ok_list = impostor("200 OK", "application/json", r#"[{"name":"x"}]"#);
    // Admin commands that read, create and change, in text and JSON output: none prints the
    // other service's answer or succeeds.
    let commands: [&[&str]; 5] = [
        &["tenant", "list"],
        &["tenant", "show", "acme"],
        &["tenant", "create", "acme", "--output", "json"],
        &["client", "list", "--tenant", "acme"],
        &["keys", "list"],
    ];
    for url in [&html, &other_json, &ok_html, &ok_json, &ok_list] {
        for command in commands {
            let out = portcullis(
                &[command, &["--url", url.as_str()]].concat(),
                &[("PORTCULLIS_ADMIN_TOKEN", "pcl_adm_live_x")],
                None,
            );
            assert!(!out.status.success(), "{command:?} at {url}");
            assert!(out.stdout.is_empty(), "{command:?} printed an answer");
            let err = stderr(&out);
            assert!(
                err.contains(&format!("{url} does not look like a Portcullis server")),
                "{command:?}: {err}"
            );
        }
    }
    for url in [&html, &other_json, &ok_json] {
        let out = portcullis(
            &[
                "token",
                "--url",
                url,
                "--client-id",
                "c",
                "--client-secret",
                "s",
            ],
            &[],
            None,
        );
        assert!(!out.status.success());
        let err = stderr(&out);
        assert!(
            err.contains(&format!("{url} does not look like a Portcullis server")),
            "{err}"
        );
    }
}

// ---- RFC 8414 metadata checked by two independent libraries (issue 15 item 9).

/// A validator that is not installed: CI must have it (`.ci/run` installs it), elsewhere the
/// check is skipped with a notice.
fn validator_missing(what: &str) {
    assert!(
        std::env::var("CI").is_err(),
        "{what} must be installed in CI (.ci/run installs it); the metadata check may not be skipped"
    );
    eprintln!(
        "notice: {what} is not installed; skipping its metadata check (`.ci/run` installs it)"
    );
}

fn discovery_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/discovery")
}

/// authlib's `AuthorizationServerMetadata(...).validate()` on `doc`, or with `oidc`
/// `OpenIDProviderMetadata(...).validate()`, in full: OpenID Connect Discovery's requirement that
/// `id_token_signing_alg_values_supported` lists RS256 is met by the RS256 companion key.
/// `None` when authlib is not installed.
fn authlib_validate(doc: &Value, oidc: bool) -> Option<Result<(), String>> {
    use std::io::Write;
    let present = Command::new("python3")
        .args(["-c", "import authlib"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        return None;
    }
    let mut child = Command::new("python3")
        .arg(discovery_dir().join("check_metadata.py"))
        .args(if oidc { vec!["--oidc"] } else { Vec::new() })
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(doc.to_string().as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("output");
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

#[test]
fn discovery_metadata_is_accepted_by_authlib_and_oauth4webapi() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = common::Server::start(dir.path(), &[]);
    let doc: Value = common::http()
        .get(format!(
            "{}/.well-known/oauth-authorization-server",
            server.url
        ))
        .send()
        .expect("metadata")
        .json()
        .expect("JSON");

    // RFC 8414 section 2: an endpoint that lists a JWT-based client authentication method lists
    // the algorithms it accepts; checked here for every endpoint, whatever the libraries do.
    for endpoint in ["token", "introspection", "revocation"] {
        let methods = &doc[format!("{endpoint}_endpoint_auth_methods_supported")];
        let lists_jwt = methods
            .as_array()
            .is_some_and(|m| m.iter().any(|v| v == "private_key_jwt"));
        assert!(lists_jwt, "{endpoint}: private_key_jwt is offered: {doc}");
        let algs = &doc[format!("{endpoint}_endpoint_auth_signing_alg_values_supported")];
        let algs = algs
            .as_array()
            .unwrap_or_else(|| panic!("{endpoint} lists no algorithms"));
        assert!(
            !algs.is_empty() && !algs.iter().any(|a| a == "none"),
            "{endpoint}: {algs:?}"
        );
    }

    // The OpenID Connect document is the same metadata, at its own well-known path.
    let oidc: Value = common::http()
        .get(format!("{}/.well-known/openid-configuration", server.url))
        .send()
        .expect("request")
        .json()
        .expect("JSON");
    assert_eq!(oidc, doc);
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256", "RS256"])
    );

    // authlib: the document passes, and a copy missing the introspection algorithms does not,
    // so a passing check means something.
    match authlib_validate(&doc, false) {
        None => validator_missing("Python authlib"),
        Some(result) => {
            result.unwrap_or_else(|e| panic!("authlib refused the metadata: {e}"));
            authlib_validate(&oidc, true)
                .expect("still installed")
                .unwrap_or_else(|e| panic!("authlib refused the OpenID Connect metadata: {e}"));
            // The full check runs: without RS256 the OpenID Connect document is refused.
            let mut es256_only = oidc.clone();
            es256_only["id_token_signing_alg_values_supported"] = serde_json::json!(["ES256"]);
            let err = authlib_validate(&es256_only, true)
                .expect("still installed")
                .expect_err("authlib must refuse OpenID Connect metadata without RS256");
            assert!(err.contains("RS256"), "{err}");
            for member in [
                "introspection_endpoint_auth_signing_alg_values_supported",
                "revocation_endpoint_auth_signing_alg_values_supported",
            ] {
                let mut broken = doc.clone();
                broken.as_object_mut().expect("object").remove(member);
                let err = authlib_validate(&broken, false)
                    .expect("still installed")
                    .expect_err("authlib must refuse metadata without the algorithms");
                assert!(err.contains(member), "{err}");
            }
        }
    }

    // oauth4webapi: its own discovery request and processing (issuer match, shape).
    let node_ok = Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !node_ok || !discovery_dir().join("node_modules/oauth4webapi").is_dir() {
        validator_missing("node with oauth4webapi (npm ci in crates/cli/tests/discovery)");
    } else {
        for flavour in ["oauth2", "oidc"] {
            let out = Command::new("node")
                .arg(discovery_dir().join("check.mjs"))
                .arg(&server.url)
                .arg(flavour)
                .output()
                .expect("node");
            assert!(
                out.status.success(),
                "oauth4webapi refused the {flavour} metadata: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
