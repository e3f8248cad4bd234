//! An independent workload client in another language (issue 17): Python requests-oauth2client
//! (`tests/workload/oauth2client_workload.py`) performs the RFC 8693 token exchange and the
//! RFC 7523 JWT-bearer grant against the `portcullis` binary with tokens from a local test
//! issuer (GitHub Actions' claim set, ES256), and authlib's JOSE validates each issued token
//! against the published JWKS. One server and one tenant serve both grants; this suite judges
//! the script's report.
//!
//! requests-oauth2client and authlib are installed by `.ci/run`; in CI their absence fails the
//! test, elsewhere the test prints a notice and passes without them.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

fn libraries_present() -> bool {
    let present = Command::new("python3")
        .args(["-c", "import authlib, requests, requests_oauth2client"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        assert!(
            std::env::var("CI").is_err(),
            "Python requests-oauth2client and authlib must be installed in CI (.ci/run installs them)"
        );
        eprintln!("notice: Python requests-oauth2client is not installed; skipping the workload client test");
    }
    present
}

#[test]
fn python_requests_oauth2client_exchanges_and_presents_workload_tokens_validated_by_authlib() {
    if !libraries_present() {
        return;
    }
    let data = tempfile::tempdir().expect("tempdir");
    let server = crate::common::Server::start(data.path(), &[]);
    server.cli_json(&["tenant", "create", "acme", "--name", "Acme"]);
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workload/oauth2client_workload.py");
    let out = Command::new("python3")
        .arg(&script)
        .args([&server.url, &server.token(), "acme"])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "the workload client failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let report: Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .expect("a JSON report");
    for grant in ["exchange", "jwt_bearer"] {
        let c = &report[grant];
        assert_eq!(c["sub"], "workload:deploy-main", "{grant}: {c}");
        assert_eq!(c["aud"], "deploy-api", "{grant}");
        assert_eq!(c["scope"], "deploy", "{grant}");
        assert_eq!(c["tenant"], "acme", "{grant}");
        assert_eq!(c["workload"]["rule"], "deploy-main", "{grant}");
        assert_eq!(
            c["workload"]["sub"], "repo:acme/deploy:ref:refs/heads/main",
            "{grant}"
        );
        assert!(c["exp"].as_i64().expect("exp") - c["iat"].as_i64().expect("iat") <= 300);
    }
    assert!(report["exchange_expires_in"]
        .as_i64()
        .is_some_and(|s| s > 0 && s <= 300));
    assert_eq!(
        report["refresh_token"],
        Value::Null,
        "no refresh token, ever"
    );
    // The rule pins the ref and the event: nothing to warn about.
    assert_eq!(report["rule_warnings"], serde_json::json!([]));
}
