//! The gateway's upstream connection pool against a hand-written HTTP/1.1 upstream that counts
//! its connections: keep-alive reuse, the request line and `Host` the upstream sees, connections
//! the upstream closed, a response body that stalls past the read timeout, and a response body
//! the client abandoned.

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// What the stub upstream saw.
#[derive(Default)]
struct Seen {
    connections: AtomicUsize,
    heads: Mutex<Vec<String>>,
}

/// An upstream that answers by path: `/ok` a 2-byte body; `/close` the same, then closes the
/// connection without saying so; `/stall` 2 of 10 promised bytes, then nothing; `/big` 10 of a
/// million promised bytes, then reports on `gone` when the gateway closes the connection.
async fn stub_upstream(gone: mpsc::UnboundedSender<()>) -> (SocketAddr, Arc<Seen>) {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = l.local_addr().expect("addr");
    let seen = Arc::new(Seen::default());
    let s = seen.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = l.accept().await {
            s.connections.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(conn, s.clone(), gone.clone()));
        }
    });
    (addr, seen)
}

async fn serve(mut conn: TcpStream, seen: Arc<Seen>, gone: mpsc::UnboundedSender<()>) {
    let mut buf = Vec::new();
    loop {
        let head = loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                buf.drain(..end + 4);
                break head;
            }
            let mut chunk = [0u8; 4096];
            match conn.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let path = head.split(' ').nth(1).unwrap_or("").to_owned();
        seen.heads.lock().expect("lock").push(head);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
        match path.as_str() {
            "/close" => {
                let _ = conn.write_all(ok).await;
                return;
            }
            "/stall" => {
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nab")
                    .await;
                tokio::time::sleep(Duration::from_secs(3600)).await;
            }
            "/big" => {
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n0123456789")
                    .await;
                let mut rest = [0u8; 64];
                while matches!(conn.read(&mut rest).await, Ok(n) if n > 0) {}
                let _ = gone.send(());
                return;
            }
            _ => {
                if conn.write_all(ok).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn gateway(up: SocketAddr) -> Ctx {
    // One worker: the reuse test counts connections, and each worker keeps its own.
    start(&format!(
        r#"
workers = 1

[upstreams.app]
url = "http://{up}"
read_timeout = "300ms"

[[routes]]
name = "open"
path = "/*"
upstream = "app"
public = true
"#
    ))
    .await
}

#[tokio::test]
async fn connections_are_reused_and_requests_carry_origin_form_and_the_upstream_host() {
    let (tx, _rx) = mpsc::unbounded_channel();
    let (up, seen) = stub_upstream(tx).await;
    let ctx = gateway(up).await;
    for _ in 0..20 {
        let r = raw(ctx.gw.addr, "GET", "/ok", &[]).await;
        assert_eq!((r.status, r.body.as_str()), (200, "ok"));
    }
    assert_eq!(
        seen.connections.load(Ordering::SeqCst),
        1,
        "one kept-alive connection"
    );
    let heads = seen.heads.lock().expect("lock");
    let first = heads.first().expect("a request").to_ascii_lowercase();
    assert!(first.starts_with("get /ok http/1.1\r\n"), "{first}");
    assert!(first.contains(&format!("\r\nhost: {up}")), "{first}");
    assert!(first.contains("\r\nx-forwarded-host: api.test"), "{first}");
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_not_reused() {
    let (tx, _rx) = mpsc::unbounded_channel();
    let (up, seen) = stub_upstream(tx).await;
    let ctx = gateway(up).await;
    for i in 1..=3 {
        let r = raw(ctx.gw.addr, "GET", "/close", &[]).await;
        assert_eq!(r.status, 200);
        assert_eq!(seen.connections.load(Ordering::SeqCst), i);
        // Give the connection's task a moment to see the close before the next request.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_stalled_body_is_cut_off_after_the_read_timeout_and_its_connection_dropped() {
    let (tx, _rx) = mpsc::unbounded_channel();
    let (up, seen) = stub_upstream(tx).await;
    let ctx = gateway(up).await;
    let started = std::time::Instant::now();
    let mut s = TcpStream::connect(ctx.gw.addr).await.expect("connect");
    s.write_all(request("GET", "/stall", &[], true).as_bytes())
        .await
        .expect("write");
    let mut got = Vec::new();
    // The gateway ends the response early (the promised 10 bytes never come): the read ends
    // with EOF or a reset, not by the test's deadline.
    let _ = tokio::time::timeout(DEADLINE, s.read_to_end(&mut got))
        .await
        .expect("the gateway gave up on the stalled body");
    assert!(started.elapsed() >= Duration::from_millis(300));
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(!text.ends_with("ab\0\0\0\0\0\0\0\0"));
    // The stalled connection is not lent again.
    let r = raw(ctx.gw.addr, "GET", "/ok", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_body_the_client_abandoned_closes_its_upstream_connection() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (up, seen) = stub_upstream(tx).await;
    let ctx = gateway(up).await;
    let mut s = TcpStream::connect(ctx.gw.addr).await.expect("connect");
    s.write_all(request("GET", "/big", &[], false).as_bytes())
        .await
        .expect("write");
    let mut first = [0u8; 16];
    let n = s.read(&mut first).await.expect("read");
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    drop(s);
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("the gateway closed the abandoned upstream connection");
    let r = raw(ctx.gw.addr, "GET", "/ok", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(seen.connections.load(Ordering::SeqCst), 2);
}
