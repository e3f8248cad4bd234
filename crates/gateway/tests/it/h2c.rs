//! HTTP/2 with prior knowledge (h2c) on the plain-text listener: the same proxy and policy as
//! HTTP/1.1, and a connection that stalls in the preface is closed.

use crate::common;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ROUTES: &str = r#"
[limits]
header_read_timeout = "500ms"

[upstreams.app]
url = "http://{up}"

[[routes]]
name = "orders"
path = "/orders/*"
upstream = "app"
accept = ["access_token"]
"#;

async fn h2c(addr: std::net::SocketAddr) -> http2::SendRequest<Empty<Bytes>> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .expect("h2c handshake");
    tokio::spawn(conn);
    sender
}

fn get(auth: Option<&str>) -> http::Request<Empty<Bytes>> {
    let mut b =
        http::Request::get("http://api.test/orders/1").header("x-portcullis-subject", "root");
    if let Some(a) = auth {
        b = b.header("authorization", a);
    }
    b.body(Empty::new()).expect("request")
}

#[tokio::test]
async fn h2c_clients_get_the_same_proxy_and_policy() {
    let ctx = start(ROUTES).await;
    let mut h2 = h2c(ctx.gw.addr).await;
    let auth = bearer(&ctx.issuer.token(json!({})));
    let resp = tokio::time::timeout(DEADLINE, h2.send_request(get(Some(&auth))))
        .await
        .expect("answer before the deadline")
        .expect("response");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let seen: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(seen["uri"], "/orders/1");
    assert_eq!(seen["headers"]["x-portcullis-subject"], json!(["user-1"]));
    assert_eq!(seen["headers"]["x-portcullis-tenant"], json!(["acme"]));
    assert_eq!(seen["headers"]["x-forwarded-proto"], json!(["http"]));
    // The route was chosen by :authority, and that is the host the upstream is told.
    assert_eq!(seen["headers"]["x-forwarded-host"], json!(["api.test"]));
    assert!(seen["headers"]["authorization"].is_null());

    // The same connection, without a credential.
    let resp = tokio::time::timeout(DEADLINE, h2.send_request(get(None)))
        .await
        .expect("answer before the deadline")
        .expect("response");
    assert_eq!(resp.status(), 401);
    assert!(resp.headers().contains_key("www-authenticate"));
}

/// `:authority` and a `Host` naming another host: which one the route was chosen for would be
/// anyone's guess upstream, so the request is refused (RFC 9113 section 8.3.1).
#[tokio::test]
async fn an_authority_and_a_host_that_differ_are_refused() {
    let ctx = start(ROUTES).await;
    let mut h2 = h2c(ctx.gw.addr).await;
    let auth = bearer(&ctx.issuer.token(json!({})));
    for (host, want) in [("api.test", 200), ("API.test", 200), ("admin.test", 400)] {
        let req = http::Request::get("http://api.test/orders/1")
            .header("host", host)
            .header("authorization", &auth)
            .body(Empty::new())
            .expect("request");
        let resp = tokio::time::timeout(DEADLINE, h2.send_request(req))
            .await
            .expect("answer before the deadline")
            .expect("response");
        assert_eq!(resp.status(), want, "host: {host}");
    }
}

#[tokio::test]
async fn a_stalled_preface_is_closed() {
    let ctx = start(ROUTES).await;
    let mut s = TcpStream::connect(ctx.gw.addr).await.expect("connect");
    s.write_all(b"PRI * HTTP/2.0\r\n").await.expect("write");
    // The header read timeout is 500 ms; the gateway must close the connection on its own.
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, s.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "connection still open past the deadline");
}

#[tokio::test]
async fn a_silent_connection_is_closed() {
    let ctx = start(ROUTES).await;
    let mut s = TcpStream::connect(ctx.gw.addr).await.expect("connect");
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(DEADLINE, s.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "connection still open past the deadline");
}
