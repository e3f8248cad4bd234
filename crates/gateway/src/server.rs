//! The accept loop shared by the main and admin listeners: HTTP/1.1 on hyper with the header
//! limits (431 past `max_header_bytes` or `max_headers`) and the header read timeout (a client
//! that does not finish its headers in time, or idles on a keep-alive connection that long, is
//! disconnected). With TLS, the handshake runs in the connection's own task under the same
//! timeout, so a slow or failing handshake costs only that connection, and a client that
//! negotiates `h2` by ALPN is served HTTP/2: its header list is bounded by `max_header_bytes`
//! (431 past it), at most [`H2_MAX_STREAMS`] requests run at once per connection, and a
//! connection that stops answering pings for the header read timeout is closed.
//!
//! This module must never let one connection's failure stop the loop.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::config::Limits;
use crate::tls::Tls;

/// Most requests one HTTP/2 connection may have in flight.
pub const H2_MAX_STREAMS: u32 = 100;
/// How often an idle HTTP/2 connection is pinged; a peer that does not answer within the
/// header read timeout is disconnected.
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);

/// What the gateway knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct Conn {
    pub peer: SocketAddr,
    /// The connection is TLS.
    pub tls: bool,
    /// The [`crate::tls::fingerprint`] of the client certificate rustls verified, if any.
    pub client_cert_sha256: Option<Arc<str>>,
    /// The peer's address as an `X-Forwarded-For` value, made once per connection.
    pub forwarded_for: http::HeaderValue,
}

impl Conn {
    pub fn new(peer: SocketAddr, tls: bool, client_cert_sha256: Option<Arc<str>>) -> Self {
        let forwarded_for = http::HeaderValue::try_from(peer.ip().to_string())
            .unwrap_or_else(|_| http::HeaderValue::from_static("unknown"));
        Self {
            peer,
            tls,
            client_cert_sha256,
            forwarded_for,
        }
    }
}

pub(crate) async fn serve<F, Fut>(
    listener: TcpListener,
    limits: Limits,
    tls: Option<Arc<Tls>>,
    handler: F,
) where
    F: Fn(http::Request<Incoming>, Arc<Conn>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = http::Response<Body>> + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_header_size(limits.max_header_bytes)
        .keep_alive(true);
    let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    h2.timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(H2_MAX_STREAMS)
        .keep_alive_interval(Some(H2_PING_INTERVAL))
        .keep_alive_timeout(limits.header_read_timeout);
    let acceptor = tls.map(|t| t.acceptor());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let builder = builder.clone();
        let h2 = h2.clone();
        let acceptor = acceptor.clone();
        let handshake_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let Some(acceptor) = acceptor else {
                let conn = Arc::new(Conn::new(peer, false, None));
                return serve_connection(&builder, TokioIo::new(stream), conn, handler).await;
            };
            let stream =
                match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, %peer, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            // rustls reports peer certificates only once its verifier accepted the chain.
            let client_cert_sha256 = stream
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| Arc::from(crate::tls::fingerprint(c)));
            let negotiated_h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            let conn = Arc::new(Conn::new(peer, true, client_cert_sha256));
            if negotiated_h2 {
                let svc = service(conn, handler);
                if let Err(e) = h2.serve_connection(TokioIo::new(stream), svc).await {
                    tracing::debug!(error = %e, %peer, "h2 connection ended with an error");
                }
            } else {
                serve_connection(&builder, TokioIo::new(stream), conn, handler).await;
            }
        });
    }
}

async fn serve_connection<I, F, Fut>(
    builder: &hyper::server::conn::http1::Builder,
    io: I,
    conn: Arc<Conn>,
    handler: F,
) where
    I: Read + Write + Unpin + Send + 'static,
    F: Fn(http::Request<Incoming>, Arc<Conn>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = http::Response<Body>> + Send + 'static,
{
    let peer = conn.peer;
    if let Err(e) = builder.serve_connection(io, service(conn, handler)).await {
        tracing::debug!(error = %e, %peer, "connection ended with an error");
    }
}

/// The hyper service for one connection: every request goes to `handler` with the connection.
fn service<F, Fut>(
    conn: Arc<Conn>,
    handler: F,
) -> impl hyper::service::Service<
    http::Request<Incoming>,
    Response = http::Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<http::Response<Body>, Infallible>> + Send,
> + Clone
where
    F: Fn(http::Request<Incoming>, Arc<Conn>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = http::Response<Body>> + Send + 'static,
{
    service_fn(move |req| {
        let fut = handler(req, conn.clone());
        async move { Ok::<_, Infallible>(fut.await) }
    })
}
