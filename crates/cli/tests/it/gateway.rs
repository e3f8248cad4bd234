//! `portcullis gateway --config gateway.toml` as a process: it starts from the file, SIGHUP
//! applies a valid change, an invalid file keeps the running configuration, and SIGTERM stops
//! it cleanly; with `[tls]` it serves HTTPS and SIGHUP picks up a replaced certificate.

use crate::common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

fn config(port: u16, admin: u16, dead: u16, routes: &str) -> String {
    format!(
        r#"listen = "127.0.0.1:{port}"
admin_listen = "127.0.0.1:{admin}"

[verifier]
audience = "orders-api"
[verifier.revocation]
insecure_none = true
[verifier.api_keys]
url = "http://127.0.0.1:{dead}"
token = "not-used-here"
environment = "test"

[upstreams.app]
url = "http://127.0.0.1:{dead}"
connect_timeout = "1s"
{routes}"#
    )
}

const V1: &str = "[[routes]]\npath = \"/a/*\"\nupstream = \"app\"\npublic = true\n";

fn status(port: u16, path: &str) -> Option<u16> {
    reqwest::blocking::Client::new()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .timeout(Duration::from_secs(5))
        .send()
        .ok()
        .map(|r| r.status().as_u16())
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn signal(child: &std::process::Child, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(ok.success());
}

#[test]
fn gateway_subcommand_reloads_on_sighup_and_keeps_the_old_config_when_the_new_one_is_bad() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gateway.toml");
    let (port, admin, dead) = (free_port(), free_port(), free_port());
    std::fs::write(&path, config(port, admin, dead, V1)).expect("write");
    let mut child = command()
        .args(["gateway", "--log-format", "json", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    // The upstream is down: a matched route answers 502, an unmatched one 404.
    wait_for("the gateway to listen", || {
        status(port, "/a/x") == Some(502)
    });
    assert_eq!(status(port, "/b/x"), Some(404));

    let v2 = format!("{V1}[[routes]]\npath = \"/b/*\"\nupstream = \"app\"\npublic = true\n");
    std::fs::write(&path, config(port, admin, dead, &v2)).expect("write");
    signal(&child, "-HUP");
    wait_for("the reload", || status(port, "/b/x") == Some(502));

    // No policy on the new route: refused, and /b keeps working.
    let bad = format!("{v2}[[routes]]\npath = \"/c/*\"\nupstream = \"app\"\n");
    std::fs::write(&path, config(port, admin, dead, &bad)).expect("write");
    signal(&child, "-HUP");
    wait_for("the refused reload to be counted", || {
        reqwest::blocking::get(format!("http://127.0.0.1:{admin}/metrics"))
            .and_then(|r| r.text())
            .is_ok_and(|t| {
                t.contains("portcullis_gateway_config_reloads_total{result=\"refused\"} 1")
            })
    });
    assert_eq!(status(port, "/b/x"), Some(502));
    assert_eq!(status(port, "/c/x"), Some(404));
    assert!(child.try_wait().expect("wait").is_none(), "still running");

    signal(&child, "-TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}");
}

#[test]
fn gateway_subcommand_refuses_a_route_without_a_policy_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gateway.toml");
    let routes = "[[routes]]\npath = \"/a/*\"\nupstream = \"app\"\n";
    std::fs::write(&path, config(free_port(), free_port(), free_port(), routes)).expect("write");
    let out = command()
        .args(["gateway", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no policy"), "{err}");
}

/// A server certificate for 127.0.0.1 signed by `ca`: (cert PEM, key PEM, cert DER).
fn server_cert(ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>) -> (String, String, Vec<u8>) {
    let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    p.subject_alt_names
        .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = p.signed_by(&key, ca).expect("sign");
    (cert.pem(), key.serialize_pem(), cert.der().to_vec())
}

/// Status and served certificate (DER) of one HTTPS request on a fresh client (no pooled
/// connection, no resumed session).
fn https(ca_pem: &str, port: u16, path: &str) -> Option<(u16, Vec<u8>)> {
    let client = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).expect("ca")])
        .tls_info(true)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let r = client
        .get(format!("https://127.0.0.1:{port}{path}"))
        .send()
        .ok()?;
    let cert = r
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .map(<[u8]>::to_vec)?;
    Some((r.status().as_u16(), cert))
}

#[test]
fn gateway_subcommand_serves_tls_and_picks_up_a_new_certificate_on_sighup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gateway.toml");
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca =
        rcgen::CertifiedIssuer::self_signed(ca_params, rcgen::KeyPair::generate().expect("key"))
            .expect("ca");
    let ca_pem = ca.pem();
    let (cert, key, first) = server_cert(&ca);
    std::fs::write(&cert_file, cert).expect("write");
    std::fs::write(&key_file, key).expect("write");
    let (port, admin, dead) = (free_port(), free_port(), free_port());
    let tls = format!(
        "[tls]\ncert_file = '{}'\nkey_file = '{}'\n{V1}",
        cert_file.display(),
        key_file.display()
    );
    std::fs::write(&path, config(port, admin, dead, &tls)).expect("write");
    let mut child = Killed(
        command()
            .args(["gateway", "--config"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    wait_for("the gateway to serve HTTPS", || {
        https(&ca_pem, port, "/a/x").is_some_and(|(s, c)| s == 502 && c == first)
    });
    assert_eq!(
        status(port, "/a/x"),
        None,
        "no plain HTTP on the TLS listener"
    );

    let (cert, key, second) = server_cert(&ca);
    std::fs::write(&cert_file, cert).expect("write");
    std::fs::write(&key_file, key).expect("write");
    signal(&child.0, "-HUP");
    wait_for("the new certificate", || {
        https(&ca_pem, port, "/a/x").is_some_and(|(_, c)| c == second)
    });

    signal(&child.0, "-TERM");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.0.try_wait().expect("wait").is_none() {
        assert!(Instant::now() < deadline, "did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills the child if the test fails before stopping it.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
