//! End to end: the real binary, started as the README says, administered through its CLI.

mod common;

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
    assert_eq!(ids, ["acme", "system"]);
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
    let keys = server.cli_json(&["keys", "list"]);
    assert_eq!(keys.as_array().expect("array").len(), 1);
    assert_eq!(keys[0]["state"], "active");
    assert_eq!(keys[0]["algorithm"], "ES256");

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
    assert_eq!(events[0]["action"], "tenant.create", "{events}");
    // The restart reused the bootstrap admin, key and KEK: nothing new was generated.
    assert!(!server.log_text().contains("generated"));
    assert_eq!(
        server
            .cli_json(&["keys", "list"])
            .as_array()
            .expect("array")
            .len(),
        1
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

#[test]
fn every_signing_algorithm_starts() {
    for alg in ["RS256", "EdDSA"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let server = Server::try_start(&data, &[], &[("PORTCULLIS_SIGNING__ALGORITHM", alg)])
            .unwrap_or_else(|log| panic!("{alg}: {log}"));
        let keys = server.cli_json(&["keys", "list"]);
        assert_eq!(keys[0]["algorithm"], alg);
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
