//! An independent relying party in another language (issue 16): Python authlib
//! (`tests/rp/authlib_rp.py`) runs the authorization code flow with PKCE and a nonce against
//! the `portcullis` binary over HTTP, posting the real sign-in and consent forms with their CSRF
//! tokens, validates the ID token with authlib's JOSE against the JWKS, and refreshes. This
//! suite judges the script's report and checks, from outside, that the rotated refresh token
//! is refused.
//!
//! authlib is installed by `.ci/run`; in CI its absence fails the test, elsewhere the test
//! prints a notice and passes without it.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

const PASSWORD: &str = "velvet orbit lantern quiz 42";
const REDIRECT: &str = "http://127.0.0.1/callback";

fn authlib_present() -> bool {
    let present = Command::new("python3")
        .args(["-c", "import authlib, requests"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        assert!(
            std::env::var("CI").is_err(),
            "Python authlib and requests must be installed in CI (.ci/run installs them)"
        );
        eprintln!("notice: Python authlib is not installed; skipping the relying-party test");
    }
    present
}

#[test]
fn python_authlib_signs_in_with_pkce_and_nonce_validates_the_id_token_and_refreshes() {
    if !authlib_present() {
        return;
    }
    let data = tempfile::tempdir().expect("tempdir");
    // No grace window: a rotated refresh token presented again is a replay at once.
    let server = crate::common::Server::try_start(
        data.path(),
        &[],
        &[("PORTCULLIS_SIGN_IN__REFRESH_GRACE_SECS", "0")],
    )
    .unwrap_or_else(|log| panic!("server did not start:\n{log}"));
    server.cli_json(&["tenant", "create", "shop", "--name", "Shop"]);
    let password_file = data.path().join("alice.pw");
    std::fs::write(&password_file, PASSWORD).expect("password file");
    let user = server.cli_json(&[
        "users",
        "create",
        "--tenant",
        "shop",
        "--username",
        "alice",
        "--email",
        "alice@example.com",
        "--password-file",
        password_file.to_str().expect("utf-8 path"),
    ]);
    let user_id = user["id"].as_str().expect("id").to_owned();
    let client = server.cli_json(&[
        "client",
        "create",
        "--tenant",
        "shop",
        "--name",
        "Python app",
        "--application-type",
        "native",
        "--redirect-uri",
        REDIRECT,
        "--grant-type",
        "authorization_code,refresh_token",
        "--scope",
        "openid,profile,offline_access",
    ]);
    let client_id = client["client_id"].as_str().expect("client_id").to_owned();

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rp/authlib_rp.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([&server.url, &client_id, REDIRECT, "alice", PASSWORD])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "the relying party failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let report: Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .expect("a JSON report");
    assert_eq!(report["sub"], user_id.as_str());
    assert_eq!(report["aud"], client_id.as_str());
    assert!(report["sid"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(
        report["alg"], "ES256",
        "the installation's default algorithm"
    );

    // From outside the script: the rotated-away refresh token is a replay now, refused (and
    // its family revoked, so the successor is refused too).
    let refresh = |token: &str| {
        crate::common::http()
            .post(format!("{}/oauth2/token", server.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs([
                        ("grant_type", "refresh_token"),
                        ("refresh_token", token),
                        ("client_id", client_id.as_str()),
                    ])
                    .finish(),
            )
            .send()
            .expect("token request")
    };
    let replay = refresh(report["first_refresh_token"].as_str().expect("first"));
    assert_eq!(replay.status().as_u16(), 400);
    let body: Value = replay.json().expect("json");
    assert_eq!(body["error"], "invalid_grant");
    let after = refresh(
        report["refreshed_refresh_token"]
            .as_str()
            .expect("successor"),
    );
    assert_eq!(after.status().as_u16(), 400, "the family is revoked");
}
