//! Test harness: runs the real `portcullis` binary on a loopback port with its own data directory.

#![allow(dead_code)]

/// The gateway tests' real-proxy fixture (nginx, Caddy), shared rather than copied.
#[path = "../../../../gateway/tests/it/common/proxy_process.rs"]
pub mod proxy_process;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_portcullis");

/// A `portcullis` command with no inherited `PORTCULLIS_*` settings.
pub fn command() -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("PORTCULLIS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

pub struct Server {
    pub child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `portcullis serve` and waits until it listens. Panics if it exits first.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Self {
        Self::try_start(data_dir, extra, &[])
            .unwrap_or_else(|log| panic!("server did not start:\n{log}"))
    }

    pub fn try_start(
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, String> {
        let mut cmd = command();
        cmd.args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--data-dir",
        ])
        .arg(data_dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn portcullis");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let listening = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .filter(|v| v["message"] == "listening")
                    .map(|v| v["addr"].as_str().unwrap_or_default().to_owned());
                // Store the line before announcing it, so a caller woken by the announcement
                // finds it in the log.
                sink.lock().expect("log lock").push(line);
                if let Some(addr) = listening {
                    let _ = tx.send(addr);
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(addr) = rx.recv_timeout(Duration::from_millis(50)) {
                return Ok(Self {
                    child,
                    url: format!("http://{addr}"),
                    data_dir: data_dir.to_owned(),
                    log,
                });
            }
            if let Ok(Some(_)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err(log.lock().expect("log lock").join("\n"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err("timed out waiting for the listening line".into());
            }
        }
    }

    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("bootstrap-admin-token"))
            .expect("bootstrap token file")
            .trim()
            .to_owned()
    }

    /// Runs a CLI admin command against this server.
    pub fn cli(&self, args: &[&str]) -> Output {
        command()
            .args(args)
            .args(["--url", &self.url, "--data-dir"])
            .arg(&self.data_dir)
            .output()
            .expect("run cli")
    }

    /// Runs a CLI command and parses its `--output json`.
    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        let out = self.cli(&all);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json output")
    }

    pub fn sigterm(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        self.wait(Duration::from_secs(30))
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() > deadline {
                self.kill9();
                panic!("server did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().expect("log lock").join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `portcullis serve` expecting it to fail; returns its stderr.
pub fn serve_fails(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = command();
    cmd.arg("serve").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let out = child.wait_with_output().expect("output");
            assert!(!status.success(), "serve should have failed");
            return String::from_utf8_lossy(&out.stderr).into_owned();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve kept running although it should have refused to start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// The claims of a compact JWT, unverified (tests check signatures where that is the point).
pub fn claims(jwt: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).expect("a compact JWT");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("claims JSON")
}

/// `POST /oauth2/introspect` at `server_url` with a resource server's own credential `rs`
/// (id, secret); the answer's JSON.
pub fn introspect(server_url: &str, rs: (&str, &str), token: &str) -> serde_json::Value {
    http()
        .post(format!("{server_url}/oauth2/introspect"))
        .basic_auth(rs.0, Some(rs.1))
        .header("content-type", "application/x-www-form-urlencoded")
        // A JWT is base64url and dots: nothing to escape in a form.
        .body(format!("token={token}"))
        .send()
        .expect("introspect")
        .json()
        .expect("json")
}

/// A fresh PostgreSQL schema for an end-to-end test, from `PORTCULLIS_TEST_DATABASE_URL`.
pub struct PgSchema {
    pub pool: sqlx::PgPool,
    pub name: String,
    /// The database URL a server should use: every session's `search_path` is this schema.
    pub database_url: String,
}

impl PgSchema {
    /// `None`, with a notice naming `test`, when `PORTCULLIS_TEST_DATABASE_URL` is unset; a
    /// failure under CI or when the server cannot be reached.
    pub async fn create(test: &str) -> Option<Self> {
        const PG_ENV: &str = "PORTCULLIS_TEST_DATABASE_URL";
        let Ok(url) = std::env::var(PG_ENV) else {
            assert!(
                std::env::var("CI").is_err(),
                "{PG_ENV} must be set in CI: PostgreSQL end-to-end tests may not be skipped"
            );
            eprintln!("notice: {PG_ENV} is unset; skipping `{test}`");
            return None;
        };
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let name = format!("e2e_{}_{nanos}", std::process::id());
        let pool = sqlx::PgPool::connect(&url)
            .await
            .expect("PostgreSQL named by PORTCULLIS_TEST_DATABASE_URL must be reachable");
        sqlx::query(&format!("CREATE SCHEMA {name}"))
            .execute(&pool)
            .await
            .expect("create schema");
        let sep = if url.contains('?') { '&' } else { '?' };
        let database_url = format!("{url}{sep}options=-c%20search_path%3D{name}");
        Some(Self {
            pool,
            name,
            database_url,
        })
    }

    /// Best effort: a failed test leaves its schema for inspection.
    pub async fn drop_schema(&self) {
        let _ = sqlx::query(&format!("DROP SCHEMA {} CASCADE", self.name))
            .execute(&self.pool)
            .await;
    }
}

/// What [`seed_payments`] created.
#[derive(Debug)]
pub struct Seeded {
    pub client_id: String,
    pub client_secret: String,
    pub api_key: String,
    pub api_key_id: String,
}

/// Through the admin CLI: tenant `acme`, its resource server `payments-api` (scopes
/// `payments:read`, `payments:write`), a client `billing-sync` allowed `payments:read` on it,
/// and an API key of owner `partner-co` with `payments:read`.
pub fn seed_payments(server: &Server) -> Seeded {
    let text = |v: &serde_json::Value| v.as_str().expect("string").to_owned();
    server.cli_json(&["tenant", "create", "acme"]);
    server.cli_json(&[
        "resource-server",
        "create",
        "--tenant",
        "acme",
        "--audience",
        "payments-api",
        "--scopes",
        "payments:read,payments:write",
    ]);
    let client = server.cli_json(&[
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
    ]);
    let key = server.cli_json(&[
        "api-key",
        "create",
        "--tenant",
        "acme",
        "--name",
        "partner",
        "--owner",
        "partner-co",
        "--scope",
        "payments:read",
    ]);
    Seeded {
        client_id: text(&client["client_id"]),
        client_secret: text(&client["client_secret"]),
        api_key: text(&key["key"]),
        api_key_id: text(&key["id"]),
    }
}
