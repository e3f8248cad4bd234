//! End to end: the real binary, started as the README says, administered through its CLI.

use crate::common;

use std::time::Duration;

use common::*;

#[test]
fn fresh_start_is_ready_and_the_cli_administers_tenants_with_json_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]);

    let ready = http()
        .get(format!("{}/readyz", server.url))
        .send()
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    let health = http()
        .get(format!("{}/healthz", server.url))
        .send()
        .expect("healthz");
    assert_eq!(health.status(), 200);

    // The data directory was created private, with a private KEK and bootstrap token.
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("kek")), 0o600);
    assert_eq!(mode(&data.join("bootstrap-admin-token")), 0o600);

    let created = server.cli_json(&["tenant", "create", "acme", "--name", "Acme Corp"]);
    assert_eq!(created["id"], "acme");
    assert_eq!(created["display_name"], "Acme Corp");
    let list = server.cli_json(&["tenant", "list"]);
    let ids: Vec<_> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    assert_eq!(ids, ["system", "acme"], "oldest first");
    assert_eq!(
        server.cli_json(&["tenant", "show", "acme"])["status"],
        "active"
    );
    assert_eq!(
        server.cli_json(&["tenant", "disable", "acme"])["status"],
        "disabled"
    );
    assert_eq!(
        server.cli_json(&["tenant", "enable", "acme"])["status"],
        "active"
    );

    // A tenant admin token from the CLI works for its tenant only.
    let made = server.cli_json(&["admin-token", "create", "--tenant", "acme", "--name", "ci"]);
    let tenant_token = made["token"].as_str().expect("token").to_owned();
    let out = command()
        .args([
            "tenant",
            "show",
            "acme",
            "--url",
            &server.url,
            "--output",
            "json",
        ])
        .env("PORTCULLIS_ADMIN_TOKEN", &tenant_token)
        .output()
        .expect("cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = command()
        .args(["tenant", "list", "--url", &server.url])
        .env("PORTCULLIS_ADMIN_TOKEN", &tenant_token)
        .output()
        .expect("cli");
    assert!(!out.status.success(), "tenant admin listed all tenants");
    assert!(String::from_utf8_lossy(&out.stderr).contains("403"));

    let tokens = server.cli_json(&["admin-token", "list", "--tenant", "acme"]);
    assert_eq!(tokens.as_array().expect("array").len(), 1);

    // A verifier's service credential from the CLI; the listing shows each credential's role.
    let made = server.cli_json(&[
        "admin-token",
        "create",
        "--tenant",
        "acme",
        "--name",
        "gateway",
        "--role",
        "service",
    ]);
    assert_eq!(made["role"], "service");
    let tokens = server.cli_json(&["admin-token", "list", "--tenant", "acme"]);
    let roles: Vec<_> = tokens
        .as_array()
        .expect("array")
        .iter()
        .map(|t| t["role"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(roles, ["tenant_admin", "service"]);
    let out = command()
        .args([
            "admin-token",
            "list",
            "--tenant",
            "acme",
            "--url",
            &server.url,
        ])
        .env("PORTCULLIS_ADMIN_TOKEN", &tenant_token)
        .output()
        .expect("cli");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("ROLE") && text.contains("\tservice\t"),
        "{text}"
    );
    // An unknown role is refused before anything is sent.
    let out = command()
        .args([
            "admin-token",
            "create",
            "--tenant",
            "acme",
            "--name",
            "x",
            "--role",
            "root",
            "--url",
            &server.url,
        ])
        .env("PORTCULLIS_ADMIN_TOKEN", &tenant_token)
        .output()
        .expect("cli");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown role"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The ES256 key that signs, and the RS256 companion for ID tokens (OpenID Connect).
    let keys = server.cli_json(&["keys", "list"]);
    let mut algs: Vec<_> = keys
        .as_array()
        .expect("array")
        .iter()
        .map(|k| (k["algorithm"].clone(), k["state"].clone()))
        .collect();
    algs.sort_by_key(|(a, _)| a.to_string());
    assert_eq!(
        algs,
        [
            (serde_json::json!("ES256"), serde_json::json!("active")),
            (serde_json::json!("RS256"), serde_json::json!("active"))
        ]
    );

    // Audit events are readable with --since (after the 200 ms flush interval).
    let mut events = serde_json::Value::Null;
    for _ in 0..100 {
        events = server.cli_json(&["audit", "list", "--tenant", "acme", "--since", "1h"]);
        if events.as_array().map_or(0, Vec::len) >= 4 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let actions: Vec<_> = events
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default().to_owned())
        .collect();
    for want in [
        "tenant.create",
        "tenant.disable",
        "tenant.enable",
        "admin_token.create",
    ] {
        assert!(
            actions.iter().any(|a| a == want),
            "{want} missing from {actions:?}"
        );
    }

    // Text output works too, and an unknown tenant is a clean error.
    let out = server.cli(&["tenant", "list"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("acme\tactive"));
    let out = server.cli(&["tenant", "show", "nobody"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));

    // Secrets never reach the log.
    let log = server.log_text();
    assert!(!log.contains(&server.token()), "bootstrap token logged");
    assert!(!log.contains(&tenant_token), "admin token logged");
    assert!(
        log.contains("bootstrap-admin-token"),
        "bootstrap path is logged"
    );
}

#[test]
fn sigterm_drains_and_flushes_the_audit_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let config = dir.path().join("portcullis.toml");
    // A flush interval far longer than the test: only the shutdown flush can write the event.
    std::fs::write(&config, "[audit]\nflush_interval_ms = 600000\n").expect("config");
    let config = config.to_string_lossy().into_owned();
    let mut server = Server::start(&data, &["--config", &config]);
    server.cli_json(&["tenant", "create", "acme"]);
    let status = server.sigterm();
    assert!(status.success(), "graceful stop exits 0, got {status:?}");
    assert!(server.log_text().contains("draining"));

    let server = Server::start(&data, &[]);
    let events = server.cli_json(&["audit", "list", "--tenant", "acme"]);
    // The tenant's creation and its built-in CLI client's, both flushed at shutdown.
    let actions: Vec<&str> = events
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        ["oauth_client.create", "tenant.create"],
        "{events}"
    );
    // The restart reused the bootstrap admin, key and KEK: nothing new was generated.
    assert!(!server.log_text().contains("generated"));
    assert_eq!(
        server
            .cli_json(&["keys", "list"])
            .as_array()
            .expect("array")
            .len(),
        2
    );
}

#[test]
fn revoking_every_global_admin_then_restarting_writes_a_new_bootstrap_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]);
    let first = server.token();
    let tokens = server.cli_json(&["admin-token", "list", "--tenant", "system"]);
    let id = tokens[0]["id"].as_str().expect("id").to_owned();
    assert!(server
        .cli(&["admin-token", "revoke", "--tenant", "system", &id])
        .status
        .success());
    assert!(
        !server.cli(&["tenant", "list"]).status.success(),
        "revoked token still works"
    );
    server.sigterm();

    let server = Server::start(&data, &[]);
    let second = server.token();
    assert_ne!(first, second);
    assert!(
        server.cli(&["tenant", "list"]).status.success(),
        "new bootstrap token works"
    );
}

#[test]
fn config_check_prints_the_effective_config_with_secrets_redacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("c.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:9999\"\ndatabase_url = \"postgres://u:hunter2@db/x\"\n[signing]\nalgorithm = \"EdDSA\"\n",
    )
    .expect("write");
    let out = command()
        .args(["config", "check", "--config"])
        .arg(&file)
        .env("PORTCULLIS_LOG__LEVEL", "debug")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("listen = \"127.0.0.1:9999\""), "{text}");
    assert!(text.contains("algorithm = \"EdDSA\""), "{text}");
    assert!(
        text.contains("level = \"debug\""),
        "env layer applied: {text}"
    );
    assert!(
        text.contains("[redacted]") && !text.contains("hunter2"),
        "{text}"
    );
}

/// Invariant 11 through the real binary: with `http.trusted_proxies` naming the loopback (where
/// this test connects from, playing the proxy) the audit log records the address the proxy
/// appended, never the client's own leftmost entry; without it, the peer. The replaced
/// throttle keys stop start-up with their replacement named.
#[test]
fn serve_reads_forwarded_addresses_only_from_trusted_proxies() {
    for (env, want) in [
        (
            vec![("PORTCULLIS_HTTP__TRUSTED_PROXIES", "127.0.0.1")],
            "203.0.113.9",
        ),
        (vec![], "127.0.0.1"),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let mut server =
            Server::try_start(&data, &[], &env).unwrap_or_else(|log| panic!("{env:?}: {log}"));
        let resp = http()
            .post(format!("{}/oauth2/token", server.url))
            .basic_auth("cl_behindaproxy", Some("wrong"))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-forwarded-for", "192.0.2.1, 203.0.113.9")
            .body("grant_type=client_credentials")
            .send()
            .expect("token request");
        assert_eq!(resp.status(), 401);
        // A graceful stop writes every audit event; the restarted server reads them.
        assert!(server.sigterm().success());
        let server = Server::start(&data, &[]);
        let events = server.cli_json(&["audit", "list", "--tenant", "system"]);
        let event = events
            .as_array()
            .expect("events")
            .iter()
            .find(|e| e["credential_id"] == "cl_behindaproxy")
            .unwrap_or_else(|| panic!("no audit event: {events}"));
        assert_eq!(event["client_ip"], want, "{env:?}: {event}");
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data").to_string_lossy().into_owned();
    let err = serve_fails(
        &["--listen", "127.0.0.1:0", "--data-dir", &data],
        &[("PORTCULLIS_OAUTH__MAX_FAILURES_PER_CLIENT", "3")],
    );
    assert!(
        err.contains("oauth.max_failures_per_client_id_and_source"),
        "{err}"
    );
}

/// `[metrics] listen` starts a second listener serving `GET /metrics` in the Prometheus text
/// format, apart from the API; a grant through the API shows there. An address already in use
/// stops start-up with the key named, before anything is created.
#[test]
fn serve_exposes_metrics_on_its_own_listener() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::try_start(&data, &[], &[("PORTCULLIS_METRICS__LISTEN", "127.0.0.1:0")])
        .unwrap_or_else(|log| panic!("{log}"));
    let addr = server
        .log_text()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "metrics listening")
        .and_then(|v| v["addr"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no metrics address in:\n{}", server.log_text()));
    let seeded = seed_payments(&server);
    client_token(&server.url, &seeded.client_id, &seeded.client_secret).expect("token");
    let resp = http()
        .get(format!("http://{addr}/metrics"))
        .send()
        .expect("scrape");
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = resp.text().expect("text");
    assert!(
        text.contains("portcullis_tokens_issued_total{grant=\"client_credentials\"} 1\n"),
        "{text}"
    );
    // The API's listener does not serve the scrape, and the metrics listener nothing else.
    assert_eq!(
        http()
            .get(format!("{}/metrics", server.url))
            .send()
            .expect("api")
            .status(),
        404
    );
    assert_eq!(
        http()
            .get(format!("http://{addr}/healthz"))
            .send()
            .expect("other path")
            .status(),
        404
    );

    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = taken.local_addr().expect("addr").to_string();
    let data = dir.path().join("other").to_string_lossy().into_owned();
    let err = serve_fails(
        &["--listen", "127.0.0.1:0", "--data-dir", &data],
        &[("PORTCULLIS_METRICS__LISTEN", &taken)],
    );
    assert!(
        err.contains(&format!("could not listen on {taken} for metrics")),
        "{err}"
    );
    assert!(
        !std::path::Path::new(&data).exists(),
        "data directory created: {err}"
    );
}

#[test]
fn every_signing_algorithm_starts() {
    for alg in ["RS256", "EdDSA"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let server = Server::try_start(&data, &[], &[("PORTCULLIS_SIGNING__ALGORITHM", alg)])
            .unwrap_or_else(|log| panic!("{alg}: {log}"));
        let keys = server.cli_json(&["keys", "list"]);
        let algs: Vec<_> = keys
            .as_array()
            .expect("array")
            .iter()
            .map(|k| k["algorithm"].as_str().expect("algorithm").to_owned())
            .collect();
        // EdDSA signs, with an RS256 companion for ID tokens; RS256 needs none.
        let want: &[&str] = if alg == "RS256" {
            &["RS256"]
        } else {
            &[alg, "RS256"]
        };
        let mut sorted = algs.clone();
        sorted.sort();
        let mut want: Vec<_> = want.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(sorted, want, "{alg}");
    }
}

#[test]
fn postgres_backend_serves_too() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(schema) = rt.block_on(PgSchema::create("postgres_backend_serves_too")) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    // Without an issuer, each node would present its own listen address: refused, clearly.
    let log = common::serve_fails(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().expect("utf-8"),
        ],
        &[("PORTCULLIS_DATABASE_URL", &schema.database_url)],
    );
    assert!(log.contains("oauth.issuer"), "{log}");
    assert!(log.contains("required on PostgreSQL"), "{log}");
    let server = Server::try_start(
        &data,
        &[],
        &[
            ("PORTCULLIS_DATABASE_URL", &schema.database_url),
            ("PORTCULLIS_OAUTH__ISSUER", "https://auth.e2e.test"),
        ],
    )
    .unwrap_or_else(|log| panic!("{log}"));
    assert!(server.log_text().contains("\"backend\":\"postgres\""));
    let ready = http()
        .get(format!("{}/readyz", server.url))
        .send()
        .expect("readyz");
    assert_eq!(ready.status(), 200);
    assert_eq!(server.cli_json(&["tenant", "create", "acme"])["id"], "acme");
    drop(server);
    rt.block_on(async {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {}.tenants", schema.name))
            .fetch_one(&schema.pool)
            .await
            .expect("count");
        assert_eq!(n, 2, "acme and system stored in PostgreSQL");
        schema.drop_schema().await;
    });
}

/// A client-credentials token for `payments:read`, or the failed response's status.
fn client_token(server_url: &str, client_id: &str, secret: &str) -> Result<String, u16> {
    let resp = http()
        .post(format!("{server_url}/oauth2/token"))
        .basic_auth(client_id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=payments%3Aread")
        .send()
        .expect("token request");
    if resp.status() != 200 {
        return Err(resp.status().as_u16());
    }
    let body: serde_json::Value = resp.json().expect("json");
    Ok(body["access_token"].as_str().expect("token").to_owned())
}

/// Whether introspection by the resource server's own credential says `token` is active.
fn introspect_active(server_url: &str, rs: &(String, String), token: &str) -> bool {
    let body = introspect(server_url, (&rs.0, &rs.1), token);
    assert!(body["active"].is_boolean(), "{body}");
    body["active"] == true
}

/// Whether `POST /v1/api-keys/verify` (called with `admin_token`) finds `key` valid.
fn api_key_valid(server_url: &str, admin_token: &str, key: &str) -> bool {
    let resp = http()
        .post(format!("{server_url}/v1/api-keys/verify"))
        .bearer_auth(admin_token)
        .json(&serde_json::json!({"key": key, "tenant": "acme"}))
        .send()
        .expect("verify");
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value = resp.json().expect("json");
    body["valid"] == true
}

/// The resource server `payments-api` gets an introspection credential: (id, secret).
fn rs_credential(server: &Server) -> (String, String) {
    let list = server.cli_json(&["resource-server", "list", "--tenant", "acme"]);
    let id = list[0]["id"].as_str().expect("id").to_owned();
    let cred = server.cli_json(&["resource-server", "rotate-secret", "--tenant", "acme", &id]);
    (
        id,
        cred["client_secret"].as_str().expect("secret").to_owned(),
    )
}

/// A new data directory holding copies of `from`'s KEK and bootstrap token (0600, in a 0700
/// directory), as an operator restoring or moving an installation prepares it.
fn data_dir_with_secrets_of(from: &std::path::Path, to: &std::path::Path) {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(to)
        .expect("data dir");
    for name in ["kek", "bootstrap-admin-token"] {
        std::fs::copy(from.join(name), to.join(name)).expect("copy");
        std::fs::set_permissions(to.join(name), std::fs::Permissions::from_mode(0o600))
            .expect("chmod");
    }
}

fn run_ok(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// docs/operations.md, "Backup" and "Restore": `portcullis backup` while tokens are issued and
/// API keys created, then the documented restore (stop, put the file in place with the same
/// KEK, start). What was issued before the backup works on the restored server, and the file
/// is a consistent snapshot.
#[test]
fn an_online_backup_under_write_load_restores_with_every_credential() {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]);
    let seeded = seed_payments(&server);
    let rs = rs_credential(&server);
    let token = client_token(&server.url, &seeded.client_id, &seeded.client_secret).expect("token");

    let backup = dir.path().join("portcullis-backup.db");
    let stop = AtomicBool::new(false);
    let writes = AtomicU32::new(0);
    std::thread::scope(|scope| {
        let load = || {
            while !stop.load(Ordering::Relaxed) {
                client_token(&server.url, &seeded.client_id, &seeded.client_secret)
                    .expect("token under load");
                server.cli_json(&[
                    "api-key",
                    "create",
                    "--tenant",
                    "acme",
                    "--name",
                    "load",
                    "--owner",
                    "load-co",
                    "--scope",
                    "payments:read",
                ]);
                writes.fetch_add(1, Ordering::Relaxed);
            }
        };
        let workers = [scope.spawn(load), scope.spawn(load)];
        // Let the load start before the backup, and keep it going throughout.
        while writes.load(Ordering::Relaxed) < 2 {
            std::thread::sleep(Duration::from_millis(10));
        }
        let out = run_ok(
            command()
                .arg("backup")
                .arg(&backup)
                .arg("--data-dir")
                .arg(&data),
        );
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(said.contains("backup written to"), "{said}");
        assert!(said.contains("KEK"), "the KEK retention reminder: {said}");
        // A second backup to the same name is refused, the first left alone.
        let again = command()
            .arg("backup")
            .arg(&backup)
            .arg("--data-dir")
            .arg(&data)
            .output()
            .expect("run");
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().expect("load thread");
        }
    });
    assert!(writes.load(Ordering::Relaxed) >= 2);
    assert!(server.sigterm().success());

    // Consistent: SQLite's integrity check passes and every revocation has its log entry.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let check = rt
        .block_on(portcullis_store::SqliteStore::check_file(&backup))
        .expect("check");
    assert!(check.problems.is_empty(), "{:?}", check.problems);
    assert!(!dir.path().join("portcullis-backup.db.partial").exists());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&backup)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the backup holds digests and sealed keys");

    // Restore: a fresh data directory with the same KEK, the backup as its database.
    let restored = dir.path().join("restored");
    data_dir_with_secrets_of(&data, &restored);
    std::fs::copy(&backup, restored.join("portcullis.db")).expect("put the backup in place");
    // The same issuer too: in production the same `oauth.issuer` (or listen address); here the
    // first server's URL, since this one listens on another port.
    let issuer = server.url.clone();
    let server = Server::try_start(&restored, &[], &[("PORTCULLIS_OAUTH__ISSUER", &issuer)])
        .unwrap_or_else(|log| panic!("{log}"));
    client_token(&server.url, &seeded.client_id, &seeded.client_secret)
        .expect("the client secret still authenticates");
    assert!(api_key_valid(&server.url, &server.token(), &seeded.api_key));
    assert!(
        introspect_active(&server.url, &rs, &token),
        "a token issued before the backup is still active"
    );
    let keys = server.cli_json(&["api-key", "list", "--tenant", "acme"]);
    let n = keys.as_array().expect("keys").len();
    assert!(n >= 2, "the seeded key and some made under load: {n}");

    // On PostgreSQL the command points at pg_dump instead.
    let out = command()
        .arg("backup")
        .arg(dir.path().join("pg.db"))
        .arg("--data-dir")
        .arg(&restored)
        .env(
            "PORTCULLIS_DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("pg_dump") && err.contains("docs/operations.md"),
        "{err}"
    );
}

/// docs/operations.md, "Moving from SQLite to PostgreSQL": a populated SQLite installation is
/// exported, imported into PostgreSQL and served there with the same KEK and issuer; nothing
/// is re-issued and every credential behaves as before.
#[test]
fn a_sqlite_installation_moves_to_postgres_without_reissuing_anything() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(schema) = rt.block_on(PgSchema::create(
        "a_sqlite_installation_moves_to_postgres_without_reissuing_anything",
    )) else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]);
    let issuer = server.url.clone();
    let seeded = seed_payments(&server);
    let rs = rs_credential(&server);
    server.cli_json(&["tenant", "create", "globex"]);
    let second_key = server.cli_json(&[
        "api-key",
        "create",
        "--tenant",
        "acme",
        "--name",
        "second",
        "--owner",
        "other-co",
        "--scope",
        "payments:read",
    ]);
    let second_key = second_key["key"].as_str().expect("key").to_owned();
    let kept = client_token(&server.url, &seeded.client_id, &seeded.client_secret).expect("token");
    let revoked =
        client_token(&server.url, &seeded.client_id, &seeded.client_secret).expect("token");
    let resp = http()
        .post(format!("{}/oauth2/revoke", server.url))
        .basic_auth(&seeded.client_id, Some(&seeded.client_secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={revoked}"))
        .send()
        .expect("revoke");
    assert_eq!(resp.status(), 200);
    assert!(!introspect_active(&server.url, &rs, &revoked));
    server.cli_json(&["keys", "rotate"]);
    let keys_before = server.cli_json(&["keys", "list"]);
    // Each lane (ES256 and the RS256 companion): active and pending.
    assert_eq!(keys_before.as_array().expect("keys").len(), 4);
    assert!(server.sigterm().success());

    let export = dir.path().join("portcullis.export");
    let out = run_ok(
        command()
            .arg("export")
            .arg(&export)
            .arg("--data-dir")
            .arg(&data),
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("exported"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&export)
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&export).expect("read");
    assert!(!text.contains(&seeded.client_secret) && !text.contains(&seeded.api_key));

    let moved = dir.path().join("moved");
    data_dir_with_secrets_of(&data, &moved);
    let import = |target: &std::path::Path| {
        command()
            .arg("import")
            .arg(&export)
            .arg("--data-dir")
            .arg(target)
            .env("PORTCULLIS_DATABASE_URL", &schema.database_url)
            .output()
            .expect("run")
    };
    let out = import(&moved);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(
        progress.contains("imported 2 api_key records"),
        "{progress}"
    );
    assert!(
        !progress.contains("warning"),
        "the KEK was in place: {progress}"
    );
    // A second import finds the database populated and changes nothing.
    let out = import(&moved);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let server = Server::try_start(
        &moved,
        &[],
        &[
            ("PORTCULLIS_DATABASE_URL", &schema.database_url),
            ("PORTCULLIS_OAUTH__ISSUER", &issuer),
        ],
    )
    .unwrap_or_else(|log| panic!("{log}"));
    assert!(server.log_text().contains("\"backend\":\"postgres\""));
    assert_eq!(server.cli_json(&["keys", "list"]), keys_before);
    client_token(&server.url, &seeded.client_id, &seeded.client_secret)
        .expect("the client secret authenticates on PostgreSQL");
    assert!(api_key_valid(&server.url, &server.token(), &seeded.api_key));
    assert!(api_key_valid(&server.url, &server.token(), &second_key));
    assert!(
        introspect_active(&server.url, &rs, &kept),
        "an unexpired token issued on SQLite is active"
    );
    assert!(
        !introspect_active(&server.url, &rs, &revoked),
        "the revoked token stays revoked"
    );
    let tenants = server.cli_json(&["tenant", "list"]);
    assert_eq!(tenants.as_array().expect("tenants").len(), 3);
    drop(server);
    rt.block_on(schema.drop_schema());
}

/// `list` commands follow the admin API's cursors: more rows than one page (1000) are all
/// printed, once each. Archiving from the CLI is final and hides the object from lists unless
/// `--include-archived` is given.
#[test]
fn cli_lists_follow_cursors_past_one_page_and_archiving_is_final() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("data"), &[]);
    server.cli_json(&["tenant", "create", "acme"]);
    let client = http();
    for i in 0..1_001 {
        let resp = client
            .post(format!("{}/admin/v1/tenants/acme/api-keys", server.url))
            .bearer_auth(server.token())
            .json(&serde_json::json!({"name": format!("k{i}"), "owner": "o"}))
            .send()
            .expect("create key");
        assert_eq!(resp.status(), 201);
    }
    let keys = server.cli_json(&["api-key", "list", "--tenant", "acme"]);
    let ids: std::collections::BTreeSet<_> = keys
        .as_array()
        .expect("array")
        .iter()
        .map(|k| k["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(ids.len(), 1_001, "every key once");
    // The audit log is written in batches behind the requests: wait (bounded) for the last one.
    let mut events = Vec::new();
    for _ in 0..100 {
        events = server
            .cli_json(&["audit", "list", "--tenant", "acme", "--limit", "1001"])
            .as_array()
            .expect("array")
            .clone();
        if events.len() >= 1_001 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(events.len(), 1_001);
    let events = server.cli_json(&["audit", "list", "--tenant", "acme", "--limit", "3"]);
    assert_eq!(events.as_array().expect("array").len(), 3);

    let rs = server.cli_json(&[
        "resource-server",
        "create",
        "--tenant",
        "acme",
        "--audience",
        "old-api",
    ]);
    let rs_id = rs["id"].as_str().expect("id").to_owned();
    let archived = server.cli_json(&["resource-server", "archive", "--tenant", "acme", &rs_id]);
    assert!(archived["archived_at"].is_string(), "{archived}");
    let live = server.cli_json(&["resource-server", "list", "--tenant", "acme"]);
    assert_eq!(live, serde_json::json!([]));
    let all = server.cli_json(&[
        "resource-server",
        "list",
        "--tenant",
        "acme",
        "--include-archived",
    ]);
    assert_eq!(all.as_array().expect("array").len(), 1);

    let archived = server.cli_json(&["tenant", "archive", "acme"]);
    assert_eq!(archived["status"], "disabled");
    assert!(archived["archived_at"].is_string());
    let ids = |v: serde_json::Value| -> Vec<String> {
        v.as_array()
            .expect("array")
            .iter()
            .map(|t| t["id"].as_str().expect("id").to_owned())
            .collect()
    };
    assert_eq!(ids(server.cli_json(&["tenant", "list"])), ["system"]);
    assert_eq!(
        ids(server.cli_json(&["tenant", "list", "--include-archived"])),
        ["system", "acme"]
    );
    let out = server.cli(&["tenant", "enable", "acme"]);
    assert!(!out.status.success(), "an archived tenant was enabled");
    assert!(String::from_utf8_lossy(&out.stderr).contains("409"));
}
