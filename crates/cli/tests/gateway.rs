//! `portcullis gateway --config gateway.toml` as a process: it starts from the file, SIGHUP
//! applies a valid change, an invalid file keeps the running configuration, and SIGTERM stops
//! it cleanly.

mod common;

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
