//! End to end: the real `portcullis` binary serves, and the `portcullis api-key ...` commands
//! drive it over HTTP with `--output json`; a service in "another language" (plain HTTP here)
//! verifies keys through `POST /v1/api-keys/verify`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

struct Server {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

async fn start() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let child = Command::new(BIN)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .env_remove("PORTCULLIS_ADMIN_TOKEN")
        .env_remove("PORTCULLIS_DATABASE_URL")
        // Short flush intervals so the audit log and last-used are visible promptly.
        .env("PORTCULLIS_AUDIT__FLUSH_INTERVAL_MS", "20")
        .env("PORTCULLIS_API_KEYS__USAGE_FLUSH_INTERVAL_MS", "50")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn portcullis serve");
    let server = Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
        dir,
    };
    let http = reqwest::Client::new();
    for _ in 0..300 {
        if let Ok(r) = http.get(format!("{}/readyz", server.url)).send().await {
            if r.status().is_success() {
                return server;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("portcullis serve did not become ready");
}

fn cli(server: &Server, args: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(args)
        .args(["--output", "json", "--url", &server.url])
        .arg("--data-dir")
        .arg(server.dir.path())
        .env_remove("PORTCULLIS_ADMIN_TOKEN")
        .output()
        .expect("run portcullis");
    assert!(
        out.status.success(),
        "portcullis {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json output")
}

fn bootstrap_token(dir: &Path) -> String {
    std::fs::read_to_string(PathBuf::from(dir).join("bootstrap-admin-token"))
        .expect("bootstrap token")
        .trim()
        .to_owned()
}

async fn verify(server: &Server, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/v1/api-keys/verify", server.url))
        .bearer_auth(bootstrap_token(server.dir.path()))
        .json(&body)
        .send()
        .await
        .expect("verify request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// What the verify endpoint said about the key: "valid", "refused" (200 `{"valid": false}`,
/// whatever the reason), or the status and body of any other answer.
async fn verdict(server: &Server, body: Value) -> String {
    match verify(server, body).await {
        (200, v) if v == json!({"valid": false}) => "refused".into(),
        (200, v) if v["valid"] == true && v["active"] == true => "valid".into(),
        (status, v) => format!("{status} {v}"),
    }
}

fn s(v: &Value) -> String {
    v.as_str().expect("string").to_owned()
}

#[tokio::test]
async fn api_key_lifecycle_through_the_cli_and_http_verify() {
    let server = start().await;
    cli(&server, &["tenant", "create", "acme"]);

    let created = cli(
        &server,
        &[
            "api-key",
            "create",
            "--tenant",
            "acme",
            "--name",
            "orders sync",
            "--owner",
            "partner-a",
            "--scope",
            "orders:read",
            "--allow-ip",
            "127.0.0.0/8",
            "--rate-limit",
            "100/60",
            "--metadata",
            r#"{"ticket":"OPS-1"}"#,
        ],
    );
    let key = s(&created["key"]);
    let id = s(&created["id"]);
    assert!(key.starts_with("pcl_key_live_"));
    assert_eq!(
        created["rate_limit"],
        json!({"requests": 100, "window_secs": 60})
    );

    let (status, v) = verify(
        &server,
        json!({"key": key, "tenant": "acme", "scopes": ["orders:read"], "client_ip": "127.0.0.1"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (&v["valid"], &v["active"]),
        (&json!(true), &json!(true)),
        "{v}"
    );
    assert_eq!(v["key_id"], id.as_str());

    let listed = cli(
        &server,
        &[
            "api-key",
            "list",
            "--tenant",
            "acme",
            "--owner",
            "partner-a",
        ],
    );
    assert_eq!(listed.as_array().expect("array").len(), 1);
    assert!(
        !listed.to_string().contains(&key[13..]),
        "list shows no secret"
    );
    let shown = cli(&server, &["api-key", "show", "--tenant", "acme", &id]);
    assert!(shown.get("key").is_none());

    // Last use reaches storage within the flush interval, without a write per request.
    let mut last_used = Value::Null;
    for _ in 0..100 {
        last_used =
            cli(&server, &["api-key", "show", "--tenant", "acme", &id])["last_used_at"].clone();
        if last_used.is_string() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(last_used.is_string(), "last_used_at never recorded");

    let updated = cli(
        &server,
        &[
            "api-key",
            "update",
            "--tenant",
            "acme",
            &id,
            "--clear-allow-ip",
            "--scope",
            "orders:write",
        ],
    );
    assert_eq!(updated["ip_allowlist"], Value::Null);
    assert_eq!(updated["scopes"], json!(["orders:write"]));

    // Rotation with overlap: both keys work; both are listed with their expiry.
    let rotated = cli(
        &server,
        &[
            "api-key",
            "rotate",
            "--tenant",
            "acme",
            &id,
            "--overlap",
            "1h",
        ],
    );
    let key2 = s(&rotated["new"]["key"]);
    let id2 = s(&rotated["new"]["id"]);
    assert_eq!(rotated["old"]["status"], "rotating");
    for k in [&key, &key2] {
        assert_eq!(verdict(&server, json!({"key": k})).await, "valid");
    }
    let listed = cli(&server, &["api-key", "list", "--tenant", "acme"]);
    assert_eq!(listed.as_array().expect("array").len(), 2);
    assert!(listed
        .as_array()
        .expect("array")
        .iter()
        .all(|k| k["expires_at"].is_string()));

    // Rotation at once (overlap 0): the replaced key stops immediately.
    let rotated = cli(
        &server,
        &[
            "api-key",
            "rotate",
            "--tenant",
            "acme",
            &id2,
            "--overlap",
            "0",
        ],
    );
    let key3 = s(&rotated["new"]["key"]);
    let id3 = s(&rotated["new"]["id"]);
    assert_eq!(verdict(&server, json!({"key": key2})).await, "refused");
    assert_eq!(verdict(&server, json!({"key": key3})).await, "valid");

    cli(&server, &["api-key", "disable", "--tenant", "acme", &id3]);
    assert_eq!(verdict(&server, json!({"key": key3})).await, "refused");
    let enabled = cli(&server, &["api-key", "enable", "--tenant", "acme", &id3]);
    assert_eq!(enabled["status"], "active");
    assert_eq!(verdict(&server, json!({"key": key3})).await, "valid");

    // A key in the query string is refused even when valid.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/api-keys/verify?api_key={key3}", server.url))
        .bearer_auth(bootstrap_token(server.dir.path()))
        .json(&json!({"key": key3}))
        .send()
        .await
        .expect("request");
    assert_eq!(
        r.status().as_u16(),
        400,
        "a mistake in the request, not in the caller"
    );

    // The caller's own credential refused is 401, never the answer about a bad key.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/api-keys/verify", server.url))
        .bearer_auth("not-a-credential")
        .json(&json!({"key": key3}))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 401);

    // Offboarding: every key of the owner is revoked in one call.
    let out = cli(
        &server,
        &[
            "api-key",
            "revoke",
            "--tenant",
            "acme",
            "--owner",
            "partner-a",
        ],
    );
    assert!(out["revoked"]
        .as_array()
        .expect("array")
        .iter()
        .any(|v| v == &json!(id3)));
    assert_eq!(verdict(&server, json!({"key": key})).await, "refused");
    assert_eq!(verdict(&server, json!({"key": key3})).await, "refused");

    // A leak report revokes a live key at once.
    let leaked = cli(
        &server,
        &[
            "api-key",
            "create",
            "--tenant",
            "acme",
            "--name",
            "leaky",
            "--owner",
            "partner-b",
        ],
    );
    let leaked_key = s(&leaked["key"]);
    let r = reqwest::Client::new()
        .post(format!("{}/v1/api-keys/leaks", server.url))
        .json(&json!([{"token": leaked_key, "type": "portcullis_api_key", "source": "commit"}]))
        .send()
        .await
        .expect("leak report");
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(
        verdict(&server, json!({"key": leaked_key})).await,
        "refused"
    );
    let shown = cli(
        &server,
        &["api-key", "show", "--tenant", "acme", &s(&leaked["id"])],
    );
    assert_eq!(shown["status"], "revoked");
    assert_eq!(shown["revoked_reason"], "leaked");

    // The audit log holds the reasons the HTTP answers never gave.
    let mut reasons = Vec::new();
    for _ in 0..100 {
        let events = cli(
            &server,
            &[
                "audit",
                "list",
                "--tenant",
                "acme",
                "--action",
                "api_key.verify",
            ],
        );
        reasons = events
            .as_array()
            .expect("array")
            .iter()
            .filter_map(|e| e["reason"].as_str().map(str::to_owned))
            .collect();
        if reasons.iter().any(|r| r == "api_key_revoked") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for want in ["api_key_rotated", "api_key_disabled", "api_key_revoked"] {
        assert!(
            reasons.iter().any(|r| r == want),
            "{want} not in {reasons:?}"
        );
    }
}
