//! WebSocket pass-through end to end on 127.0.0.1: a route with `websocket = true` tunnels an
//! authorized upgrade to a raw-socket stub upstream that does the 101 handshake and echoes;
//! unauthorized upgrades never reach it, other routes strip `Upgrade`, refusals pass through.

use crate::common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::*;
use portcullis_gateway::{Gateway, GatewayConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ROUTES: &str = r#"
[upstreams.ws]
url = "http://{up}"

[[routes]]
name = "ws"
path = "/ws/*"
upstream = "ws"
accept = ["access_token"]
websocket = true

[[routes]]
name = "plain"
path = "/plain/*"
upstream = "ws"
accept = ["access_token"]
"#;

/// Request heads the stub received, lowercased.
type Heads = Arc<Mutex<Vec<String>>>;

/// A raw-socket upstream: `/ws/refuse` gets 403; an `Upgrade: websocket` request (or any to
/// `/plain/switch`, which switches unasked) gets 101 and then every byte echoed; else 200 `ok`.
async fn ws_upstream() -> (SocketAddr, Heads) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let heads = Heads::default();
    let seen = heads.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(answer(s, seen.clone()));
        }
    });
    (addr, heads)
}

async fn answer(mut s: TcpStream, seen: Heads) {
    let mut buf = Vec::new();
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    seen.lock().expect("lock").push(head.clone());
    let switch =
        head.contains("\r\nupgrade: websocket\r\n") || head.starts_with("get /plain/switch");
    let reply: &[u8] = if head.starts_with("get /ws/refuse") {
        b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
    } else if switch {
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    } else {
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
    };
    if s.write_all(reply).await.is_err() || !reply.starts_with(b"HTTP/1.1 101") {
        return;
    }
    let (mut r, mut w) = s.split();
    let _ = tokio::io::copy(&mut r, &mut w).await;
}

/// Sends a WebSocket upgrade request for `target` and reads the answer's head.
async fn upgrade(addr: SocketAddr, target: &str, auth: Option<&str>) -> (TcpStream, Resp) {
    let mut h = vec![
        ("connection", "Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    if let Some(a) = auth {
        h.push(("authorization", a));
    }
    tokio::time::timeout(DEADLINE, async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(request("GET", target, &h, false).as_bytes())
            .await
            .expect("write");
        let r = read_response(&mut s).await;
        (s, r)
    })
    .await
    .expect("answer before the deadline")
}

#[tokio::test]
async fn an_authorized_upgrade_is_tunnelled_both_ways() {
    let (up, heads) = ws_upstream().await;
    let ctx = start_with(ROUTES, up).await;
    let auth = bearer(&ctx.issuer.token(json!({})));
    let (mut s, r) = upgrade(ctx.gw.addr, "/ws/chat", Some(&auth)).await;
    assert_eq!(r.status, 101, "{r:?}");
    assert!(r
        .header("upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket")));
    assert!(r
        .header("connection")
        .is_some_and(|v| v.eq_ignore_ascii_case("upgrade")));
    assert_eq!(
        r.header("sec-websocket-accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
    );
    assert!(r.header("x-request-id").is_some());

    // Enough bytes that both directions have to stream at once.
    let payload: Vec<u8> = (0..256 * 1024).map(|i| (i % 251) as u8).collect();
    let mut back = vec![0u8; payload.len()];
    let (mut rd, mut wr) = s.split();
    let (sent, got) = tokio::time::timeout(DEADLINE, async {
        tokio::join!(wr.write_all(&payload), rd.read_exact(&mut back))
    })
    .await
    .expect("echo before the deadline");
    sent.expect("write");
    got.expect("read");
    assert!(back == payload, "echoed bytes differ");

    let heads = heads.lock().expect("lock").clone();
    assert_eq!(heads.len(), 1);
    let head = &heads[0];
    assert!(head.starts_with("get /ws/chat http/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nupgrade: websocket\r\n"), "{head}");
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
    assert!(head.contains("\r\nsec-websocket-key: "), "{head}");
    assert!(
        head.contains("\r\nx-portcullis-subject: user-1\r\n"),
        "{head}"
    );
    assert!(!head.contains("\r\nauthorization:"), "{head}");
    // The upgraded upstream connection is the tunnel's, never the pool's.
    let snap = ctx.gw.shared.snapshot();
    assert_eq!(snap.upstreams["ws"].idle_connections(), 0);
    assert!(metrics(&ctx.gw)
        .await
        .contains("portcullis_gateway_requests_total{route=\"ws\",outcome=\"upgraded\"} 1"));
}

#[tokio::test]
async fn an_unauthorized_upgrade_never_reaches_the_upstream() {
    let (up, heads) = ws_upstream().await;
    let ctx = start_with(ROUTES, up).await;
    let (_, r) = upgrade(ctx.gw.addr, "/ws/chat", None).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert!(r.header("upgrade").is_none());
    let (_, r) = upgrade(ctx.gw.addr, "/ws/chat", Some("Bearer not-a-token")).await;
    assert_eq!(r.status, 401, "{r:?}");
    assert!(heads.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn routes_without_websocket_forward_a_plain_request() {
    let (up, heads) = ws_upstream().await;
    let ctx = start_with(ROUTES, up).await;
    let auth = bearer(&ctx.issuer.token(json!({})));
    let (_, r) = upgrade(ctx.gw.addr, "/plain/chat", Some(&auth)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body, "ok");
    let heads = heads.lock().expect("lock").clone();
    assert_eq!(heads.len(), 1);
    assert!(!heads[0].contains("\r\nupgrade:"), "{}", heads[0]);
    assert!(
        !heads[0].contains("\r\nconnection: upgrade"),
        "{}",
        heads[0]
    );
}

#[tokio::test]
async fn an_upstream_switching_unasked_is_a_502() {
    let (up, _) = ws_upstream().await;
    let ctx = start_with(ROUTES, up).await;
    let auth = bearer(&ctx.issuer.token(json!({})));
    let (_, r) = upgrade(ctx.gw.addr, "/plain/switch", Some(&auth)).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r.header("upgrade").is_none());
}

#[tokio::test]
async fn an_upstream_refusal_is_passed_through() {
    let (up, heads) = ws_upstream().await;
    let ctx = start_with(ROUTES, up).await;
    let auth = bearer(&ctx.issuer.token(json!({})));
    let (_, r) = upgrade(ctx.gw.addr, "/ws/refuse", Some(&auth)).await;
    assert_eq!(r.status, 403, "{r:?}");
    assert!(r.header("upgrade").is_none());
    assert_eq!(heads.lock().expect("lock").len(), 1);
    assert!(metrics(&ctx.gw)
        .await
        .contains("portcullis_gateway_requests_total{route=\"ws\",outcome=\"proxied\"} 1"));
}

#[tokio::test]
async fn websocket_routes_need_an_http1_upstream() {
    let text = r#"
listen = "127.0.0.1:0"

[upstreams.h2]
url = "http://127.0.0.1:9"
http2 = true

[[routes]]
path = "/ws/*"
upstream = "h2"
public = true
websocket = true
"#;
    let config = GatewayConfig::from_toml(text).expect("config parses");
    let issuer = Issuer::default();
    let v = verifier(&issuer, Arc::new(Keys::default()));
    let err = Gateway::start(config, v, None)
        .await
        .expect_err("refused at load");
    assert!(err.to_string().contains("websocket"), "{err}");
}
