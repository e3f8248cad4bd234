//! Fault injection: the real binary is killed (abort at a debug-only crash point, or SIGKILL)
//! in the middle of a signing-key rotation, then restarted. JWKS must still hold every key that
//! signed a live token, and the rotation must complete.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jwt_compact::alg::Es256;
use jwt_compact::jwk::JsonWebKey;
use jwt_compact::{Algorithm, AlgorithmExt, UntrustedToken};
use serde_json::Value;

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

fn spawn(data: &Path, port: u16, crash_point: Option<&str>) -> Server {
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data)
        .env_remove("PORTCULLIS_DATABASE_URL")
        .env("PORTCULLIS_SIGNING__PREPUBLISH_SECS", "2")
        .env("PORTCULLIS_SIGNING__CHECK_INTERVAL_SECS", "1")
        .env("PORTCULLIS_SIGNING__ROTATION_INTERVAL_SECS", "0")
        .env_remove("PORTCULLIS_INSECURE_CRASH_POINT")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(point) = crash_point {
        cmd.env("PORTCULLIS_INSECURE_CRASH_POINT", point);
    }
    Server {
        child: cmd.spawn().expect("spawn server"),
        url: format!("http://127.0.0.1:{port}"),
    }
}

async fn ready(server: &mut Server) {
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{}/readyz", server.url)).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            server.child.try_wait().expect("wait").is_none(),
            "server exited before it was ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("server did not become ready");
}

/// Waits for the server to die at its crash point.
async fn crashed(server: &mut Server) {
    for _ in 0..600 {
        if let Some(status) = server.child.try_wait().expect("wait") {
            assert!(
                !status.success(),
                "server exited cleanly instead of crashing"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the crash point was never reached");
}

fn cli(server: &Server, data: &Path, args: &[&str]) -> Result<Value, String> {
    let out = Command::new(BIN)
        .args(args)
        .args(["--url", &server.url, "--output", "json"])
        .arg("--data-dir")
        .arg(data)
        .env_remove("PORTCULLIS_ADMIN_TOKEN")
        .output()
        .expect("run cli");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

async fn token(server: &Server, id: &str, secret: &str) -> String {
    let v: Value = reqwest::Client::new()
        .post(format!("{}/oauth2/token", server.url))
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("json");
    v["access_token"].as_str().expect("access_token").to_owned()
}

fn kid_of(token: &str) -> String {
    let header = token.split('.').next().expect("header");
    let v: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("b64")).expect("json");
    v["kid"].as_str().expect("kid").to_owned()
}

async fn jwks(server: &Server) -> Vec<Value> {
    let v: Value = reqwest::get(format!("{}/oauth2/jwks", server.url))
        .await
        .expect("jwks")
        .json()
        .await
        .expect("json");
    // The installation's lane (ES256); the RS256 ID-token companion is not in question here.
    v["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["alg"] != "RS256")
        .cloned()
        .collect()
}

/// Verifies the token's signature with jwt-compact against the published JWKS.
async fn verifies_against_jwks(server: &Server, token: &str) -> bool {
    let kid = kid_of(token);
    let Some(jwk) = jwks(server)
        .await
        .into_iter()
        .find(|k| k["kid"] == kid.as_str())
    else {
        return false;
    };
    let jwk: JsonWebKey<'_> = serde_json::from_value(jwk).expect("jwk");
    let key = <Es256 as Algorithm>::VerifyingKey::try_from(&jwk).expect("key");
    let untrusted = UntrustedToken::new(token).expect("parse");
    Es256.validator::<Value>(&key).validate(&untrusted).is_ok()
}

/// New tokens are signed by `kid` (the key task may need a tick or two after start).
async fn signing_with(server: &Server, id: &str, secret: &str, kid: &str) -> String {
    for _ in 0..100 {
        let t = token(server, id, secret).await;
        if kid_of(&t) == kid {
            return t;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("rotation never completed: still not signing with {kid}");
}

#[tokio::test]
async fn kill_during_rotation_then_restart_keeps_jwks_correct_and_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();

    // Phase 1: crash right after the pending key is stored.
    let mut server = spawn(&data, port, Some("after-rotation-key-stored"));
    ready(&mut server).await;
    cli(&server, &data, &["tenant", "create", "acme"]).expect("tenant");
    cli(
        &server,
        &data,
        &[
            "resource-server",
            "create",
            "--tenant",
            "acme",
            "--audience",
            "api",
            "--scopes",
            "read",
        ],
    )
    .expect("api");
    let client = cli(
        &server,
        &data,
        &[
            "client",
            "create",
            "--tenant",
            "acme",
            "--name",
            "job",
            "--scopes",
            "read",
            "--audience",
            "api",
        ],
    )
    .expect("client");
    let id = client["client_id"].as_str().expect("id").to_owned();
    let secret = client["client_secret"].as_str().expect("secret").to_owned();
    let t1 = token(&server, &id, &secret).await;
    let k1 = kid_of(&t1);
    assert!(
        cli(&server, &data, &["keys", "rotate"]).is_err(),
        "the server died mid-request"
    );
    crashed(&mut server).await;
    drop(server);

    let mut server = spawn(&data, port, None);
    ready(&mut server).await;
    let kids: Vec<String> = jwks(&server)
        .await
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect();
    assert_eq!(
        kids.len(),
        2,
        "old key and the stored pending key: {kids:?}"
    );
    assert!(kids.contains(&k1));
    let k2 = kids.iter().find(|k| **k != k1).expect("new key").clone();
    assert!(verifies_against_jwks(&server, &t1).await);
    // The interrupted rotation completes after the pre-publication window.
    let t2 = signing_with(&server, &id, &secret, &k2).await;
    assert!(
        verifies_against_jwks(&server, &t1).await,
        "retired key stays published"
    );
    assert!(verifies_against_jwks(&server, &t2).await);

    // Phase 2: SIGKILL the server, restart it to crash right after the next activation commits.
    server.child.kill().expect("kill -9");
    server.child.wait().expect("wait");
    drop(server);
    let mut server = spawn(&data, port, Some("after-key-activated"));
    ready(&mut server).await;
    let rotated = cli(&server, &data, &["keys", "rotate"]).expect("rotate");
    let k3 = rotated["kid"].as_str().expect("kid").to_owned();
    crashed(&mut server).await;
    drop(server);

    let mut server = spawn(&data, port, None);
    ready(&mut server).await;
    let t3 = signing_with(&server, &id, &secret, &k3).await;
    for (name, t) in [("t1", &t1), ("t2", &t2), ("t3", &t3)] {
        assert!(
            verifies_against_jwks(&server, t).await,
            "{name} no longer verifies against JWKS"
        );
    }
    let keys = cli(&server, &data, &["keys", "list"]).expect("list");
    let active: Vec<&Value> = keys
        .as_array()
        .expect("keys")
        .iter()
        .filter(|k| k["state"] == "active" && k["algorithm"] != "RS256")
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["kid"], k3.as_str());
}
