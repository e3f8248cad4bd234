//! Live reload: a new configuration applies to the next request on an already open keep-alive
//! connection; an invalid one, or one changing restart-only settings, keeps the old one.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use portcullis_gateway::{Gateway, GatewayConfig};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn config(up: SocketAddr, routes: &str, extra: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{extra}\n[upstreams.app]\nurl = \"http://{up}\"\n{routes}"
    )
}

const V1: &str = r#"
[[routes]]
path = "/a/*"
upstream = "app"
public = true
"#;

const V2: &str = r#"
[[routes]]
path = "/a/*"
upstream = "app"
accept = ["access_token"]

[[routes]]
path = "/b/*"
upstream = "app"
public = true
"#;

async fn on(s: &mut TcpStream, path: &str) -> u16 {
    tokio::time::timeout(DEADLINE, async {
        s.write_all(request("GET", path, &[], false).as_bytes())
            .await
            .expect("write on the kept-alive connection");
        read_response(s).await.status
    })
    .await
    .expect("deadline")
}

async fn started(text: &str, path: &std::path::Path) -> Gateway {
    std::fs::write(path, text).expect("write");
    let issuer = Issuer::default();
    let v = verifier(&issuer, Arc::new(Keys::default()));
    let config = GatewayConfig::load(path).expect("config");
    Gateway::start(config, v, Some(path.to_owned()))
        .await
        .expect("start")
}

#[tokio::test]
async fn reload_applies_on_open_connections_and_refuses_bad_configs() {
    let up = echo_upstream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gateway.toml");
    let gw = started(&config(up, V1, ""), &path).await;
    let mut conn = TcpStream::connect(gw.addr).await.expect("connect");
    assert_eq!(on(&mut conn, "/a/x").await, 200);
    assert_eq!(on(&mut conn, "/b/x").await, 404);

    std::fs::write(&path, config(up, V2, "")).expect("write");
    gw.reload().expect("valid config reloads");
    assert_eq!(
        on(&mut conn, "/a/x").await,
        401,
        "same connection, new policy"
    );
    assert_eq!(on(&mut conn, "/b/x").await, 200);

    // A route without a policy: refused, the running configuration stays.
    let bad = V2.replace("accept = [\"access_token\"]\n", "");
    std::fs::write(&path, config(up, &bad, "")).expect("write");
    let e = gw.reload().expect_err("refused");
    assert!(e.0.contains("no policy"), "{e}");
    // Unparseable, and restart-only changes: refused too.
    std::fs::write(&path, "listen = ").expect("write");
    assert!(gw.reload().is_err());
    std::fs::write(
        &path,
        config(up, V2, "").replace("admin_listen = \"127.0.0.1:0\"", ""),
    )
    .expect("write");
    let e = gw.reload().expect_err("restart-only");
    assert!(e.0.contains("restart"), "{e}");

    assert_eq!(on(&mut conn, "/a/x").await, 401);
    assert_eq!(on(&mut conn, "/b/x").await, 200);
    let m = metrics(&gw).await;
    assert!(
        m.contains("portcullis_gateway_config_reloads_total{result=\"ok\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("portcullis_gateway_config_reloads_total{result=\"refused\"} 3"),
        "{m}"
    );
}

#[tokio::test]
async fn a_watched_file_reloads_when_it_changes() {
    let up = echo_upstream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("gateway.toml");
    let watch = "[reload]\nwatch_interval = \"100ms\"\n";
    let gw = started(&config(up, V1, watch), &path).await;
    assert_eq!(raw(gw.addr, "GET", "/b/x", &[]).await.status, 404);
    std::fs::write(&path, config(up, V2, watch)).expect("write");
    let changed = tokio::time::timeout(DEADLINE, async {
        loop {
            if raw(gw.addr, "GET", "/b/x", &[]).await.status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(changed.is_ok(), "the change was not picked up");
}
