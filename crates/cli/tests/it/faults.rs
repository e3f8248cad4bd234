//! Faults at start-up: crashes during first start, missing or wrong KEKs, ports in use,
//! unwritable data directories, databases from the future, malformed configuration.

use crate::common;

use std::time::Duration;

use common::*;

/// `serve` on a loopback port with `data` as data directory, expected to fail.
fn serve_fails_in(data: &std::path::Path, env: &[(&str, &str)]) -> String {
    serve_fails(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &data.to_string_lossy(),
        ],
        env,
    )
}

/// Signing keys of the installation's algorithm as the admin API reports them (the RS256
/// companion for ID tokens, in a lane of its own, is left out).
fn keys(server: &Server) -> Vec<serde_json::Value> {
    server
        .cli_json(&["keys", "list"])
        .as_array()
        .expect("array")
        .iter()
        .filter(|k| k["algorithm"] != "RS256")
        .cloned()
        .collect()
}

fn assert_one_usable_active_key(server: &Server) {
    let keys = keys(server);
    let active = keys.iter().filter(|k| k["state"] == "active").count();
    assert_eq!(active, 1, "{keys:?}");
    // And one RS256 companion for ID tokens, whichever first-start step was interrupted.
    let all = server.cli_json(&["keys", "list"]);
    let companions = all
        .as_array()
        .expect("array")
        .iter()
        .filter(|k| k["algorithm"] == "RS256" && k["state"] == "active")
        .count();
    assert_eq!(companions, 1, "{all}");
    // The server refuses to start on any undecryptable key, so having started, every key
    // that must sign was opened; readiness confirms one is loaded.
    let ready = http()
        .get(format!("{}/readyz", server.url))
        .send()
        .expect("readyz");
    assert_eq!(ready.status(), 200);
}

#[test]
fn crash_at_each_first_start_step_then_restart_gives_exactly_one_active_key() {
    for point in [
        "after-kek-created",
        "after-signing-key-stored",
        "after-bootstrap-file",
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let crashed = Server::try_start(&data, &[], &[("PORTCULLIS_INSECURE_CRASH_POINT", point)]);
        let log = crashed
            .err()
            .unwrap_or_else(|| panic!("{point}: the server started instead of crashing"));
        assert!(
            log.contains(&format!("crash point {point} reached")),
            "{point}: {log}"
        );
        let server = Server::start(&data, &[]);
        assert_one_usable_active_key(&server);
        // The bootstrap token on disk works, whatever step the crash interrupted.
        assert!(
            server.cli(&["tenant", "list"]).status.success(),
            "{point}: bootstrap token unusable"
        );
    }
}

#[test]
fn kill_9_at_arbitrary_moments_of_first_start_never_leaves_a_broken_installation() {
    for delay_ms in [0u64, 5, 15, 30, 60, 120] {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let mut child = command()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn");
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let server = Server::start(&data, &[]);
        assert_one_usable_active_key(&server);
        assert!(server.cli(&["tenant", "list"]).status.success());
    }
}

#[test]
fn missing_kek_with_existing_keys_refuses_to_start_and_generates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]);
    let before = keys(&server);
    server.sigterm();
    let kek = std::fs::read(data.join("kek")).expect("kek");
    std::fs::remove_file(data.join("kek")).expect("rm");

    let err = serve_fails_in(&data, &[]);
    assert!(err.contains("KEK file") && err.contains("missing"), "{err}");
    assert!(
        !data.join("kek").exists(),
        "a new KEK was generated over existing keys"
    );

    // A wrong KEK (another installation's) is refused as well.
    let other = tempfile::tempdir().expect("tempdir");
    let mut other_server = Server::start(&other.path().join("d"), &[]);
    other_server.sigterm();
    std::fs::copy(other.path().join("d/kek"), data.join("kek")).expect("copy");
    let err = serve_fails_in(&data, &[]);
    assert!(err.contains("KEK"), "{err}");

    // An explicitly configured KEK file that does not exist is an error, not a fresh KEK.
    let err = serve_fails_in(&data, &[("PORTCULLIS_KEK_FILE", "/nonexistent/kek")]);
    assert!(err.contains("/nonexistent/kek"), "{err}");
    // So is a secret file that is not there, with the OS error said once.
    let err = serve_fails_in(
        &data,
        &[("PORTCULLIS_DATABASE_URL_FILE", "/nonexistent/secrets/db")],
    );
    assert!(
        err.contains("could not read /nonexistent/secrets/db: No such file or directory"),
        "{err}"
    );
    assert_eq!(err.matches("os error 2").count(), 1, "{err}");

    // Restoring the right KEK brings back the same keys.
    std::fs::write(data.join("kek"), kek).expect("restore");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(data.join("kek"), std::fs::Permissions::from_mode(0o600))
        .expect("chmod");
    let server = Server::start(&data, &[]);
    assert_eq!(keys(&server)[0]["kid"], before[0]["kid"]);
}

#[test]
fn rotate_kek_reencrypts_with_progress_and_the_server_still_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]);
    let before = keys(&server);
    // Every stored signing key is sealed: the installation's and its RS256 companion.
    let stored = server
        .cli_json(&["keys", "list"])
        .as_array()
        .expect("array")
        .len();
    // A webhook secret is sealed under the KEK too: rotation must carry it over.
    let hook = server.cli_json(&["webhooks", "create", "https://hooks.example.com/in"]);
    let hook_secret = hook["secret"].as_str().expect("secret").to_owned();
    server.sigterm();
    let old_kek = std::fs::read_to_string(data.join("kek")).expect("kek");

    let out = command()
        .args(["keys", "rotate-kek", "--data-dir"])
        .arg(&data)
        .output()
        .expect("rotate");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stored, 2, "the active key and the RS256 companion");
    assert!(
        text.contains(&format!("re-encrypted {stored}/{stored}")),
        "{text}"
    );
    assert!(text.contains("re-encrypted 1 webhook secret(s)"), "{text}");
    let opened = tokio::runtime::Runtime::new()
        .expect("runtime")
        .block_on(async {
            use portcullis_store::WebhookStore as _;
            let store = portcullis_store::SqliteStore::open(&data.join("portcullis.db"))
                .await
                .expect("store");
            let ring = portcullis_service::kek::Keyring::read(&data.join("kek")).expect("kek");
            let all = store.all_webhook_endpoints().await.expect("endpoints");
            assert_eq!(all.len(), 1);
            assert_eq!(all[0].kek_id, ring.primary().id(), "sealed by the new KEK");
            let aad = portcullis_service::webhooks::secret_aad(&all[0].id);
            let plain = ring
                .open(&all[0].kek_id, &all[0].sealed_secret, &aad)
                .expect("opens under the new KEK");
            String::from_utf8(plain.expose().clone()).expect("text")
        });
    assert_eq!(opened, hook_secret, "the same secret, re-sealed");
    let new_kek = std::fs::read_to_string(data.join("kek")).expect("kek");
    assert_ne!(new_kek, old_kek);
    assert_eq!(
        new_kek.lines().count(),
        1,
        "old KEK dropped once nothing uses it"
    );

    // Once more with --output json: progress on stderr, a parseable report on stdout.
    let out = command()
        .args(["keys", "rotate-kek", "--output", "json", "--data-dir"])
        .arg(&data)
        .output()
        .expect("rotate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["resealed"], stored);
    assert_eq!(report["leftover"], 0);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(&format!("re-encrypted {stored}/{stored}"))
    );

    let server = Server::start(&data, &[]);
    let after = keys(&server);
    assert_eq!(
        after[0]["kid"], before[0]["kid"],
        "same signing key, new envelope"
    );
    assert_ne!(after[0]["kek_id"], before[0]["kek_id"]);
    drop(server);

    // The old KEK alone can no longer open the keys.
    std::fs::write(data.join("kek"), old_kek).expect("write old");
    let err = serve_fails_in(&data, &[]);
    assert!(err.contains("KEK"), "{err}");
}

#[test]
fn port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let err = serve_fails(
        &[
            "--listen",
            &addr,
            "--data-dir",
            &dir.path().to_string_lossy(),
        ],
        &[],
    );
    assert!(
        err.contains(&format!("could not listen on {addr}")),
        "{err}"
    );
    assert!(
        err.to_lowercase().contains("address already in use"),
        "{err}"
    );
}

#[test]
fn unwritable_data_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").expect("file");
    // A path below a regular file cannot be created, even by root.
    let below = file.join("data");
    let err = serve_fails_in(&below, &[]);
    assert!(err.contains("could not create data directory"), "{err}");
    let err = serve_fails_in(&file, &[]);
    assert!(err.contains("is not a directory"), "{err}");
}

#[test]
fn database_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut server = Server::start(&data, &[]);
    server.sigterm();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let url = format!("sqlite://{}", data.join("portcullis.db").display());
        let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, \
             execution_time) VALUES (99990101000000, 'future', CURRENT_TIMESTAMP, 1, x'00', 0)",
        )
        .execute(&pool)
        .await
        .expect("insert");
        pool.close().await;
    });
    let err = serve_fails_in(&data, &[]);
    assert!(err.contains("newer than this binary"), "{err}");
}

#[test]
fn malformed_configuration_names_file_key_and_type() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        ("[audit]\nbatch_size = \"many\"\n", "batch_size"),
        ("listen_addr = \"127.0.0.1:1\"\n", "listen_addr"),
        ("[signing]\nalgorithm = \"HS256\"\n", "algorithm"),
        ("this is not toml", "portcullis.toml"),
    ];
    for (body, key) in cases {
        let file = dir.path().join("portcullis.toml");
        std::fs::write(&file, body).expect("write");
        let err = serve_fails(
            &[
                "--config",
                &file.to_string_lossy(),
                "--data-dir",
                &dir.path().join("d").to_string_lossy(),
            ],
            &[],
        );
        assert!(err.contains(key), "{body:?}: {err}");
        assert!(
            err.contains(&file.to_string_lossy().into_owned()),
            "{body:?} does not name the file: {err}"
        );
        assert!(
            !dir.path().join("d").exists(),
            "nothing created on a config error"
        );
    }
    let err = serve_fails(
        &["--data-dir", "/tmp/x"],
        &[("PORTCULLIS_LISTN", "127.0.0.1:1")],
    );
    assert!(err.contains("listn"), "unknown env key named: {err}");
    let out = command()
        .args(["config", "check", "--config", "/nonexistent.toml"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.toml"));
}
