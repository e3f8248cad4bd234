//! The accept loop shared by the main and admin listeners: HTTP/1.1 on hyper with the header
//! limits (431 past `max_header_bytes` or `max_headers`) and the header read timeout (a client
//! that does not finish its headers in time, or idles on a keep-alive connection that long, is
//! disconnected). With TLS, the handshake runs in the connection's own task under the same
//! timeout, so a slow or failing handshake costs only that connection, and a client that
//! negotiates `h2` by ALPN is served HTTP/2: its header list is bounded by `max_header_bytes`
//! (431 past it), at most [`H2_MAX_STREAMS`] requests run at once per connection, and a
//! connection that stops answering pings for the header read timeout is closed.
//!
//! Without TLS, a connection whose first bytes are the HTTP/2 preface (h2c with prior
//! knowledge) is served HTTP/2 with those same settings, any other HTTP/1.1. Those first bytes
//! must arrive within the header read timeout, like a TLS handshake: a connection that sends
//! nothing, or stops part-way through the preface, is closed. (An HTTP/1.1 client that stalls
//! inside its first method name can so take up to twice the timeout.) HTTP/1.1 connections are
//! served with upgrades enabled, for the proxy's WebSocket routes; whether a request is
//! upgraded is the proxy's decision, never this module's.
//!
//! This module must never let one connection's failure stop the loop.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use portcullis_core::confirmation::ClientCertificate;

use crate::config::Limits;
use crate::tls::Tls;

/// Most requests one HTTP/2 connection may have in flight.
pub const H2_MAX_STREAMS: u32 = 100;
/// How often an idle HTTP/2 connection is pinged; a peer that does not answer within the
/// header read timeout is disconnected.
const H2_PING_INTERVAL: Duration = Duration::from_secs(20);
/// The HTTP/2 connection preface (RFC 9113 section 3.4): what an h2c client with prior
/// knowledge opens with.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What the gateway knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct Conn {
    pub peer: SocketAddr,
    /// The connection is TLS.
    pub tls: bool,
    /// The [`crate::tls::fingerprint`] of the client certificate rustls verified, if any.
    pub client_cert_sha256: Option<Arc<str>>,
    /// That certificate with its thumbprint, for certificate-bound tokens (RFC 8705 section 3).
    pub client_certificate: Option<ClientCertificate>,
    /// The peer's address as an `X-Forwarded-For` value, made once per connection.
    pub forwarded_for: http::HeaderValue,
}

impl Conn {
    pub fn new(peer: SocketAddr, tls: bool, client_certificate: Option<ClientCertificate>) -> Self {
        let forwarded_for = http::HeaderValue::try_from(peer.ip().to_string())
            .unwrap_or_else(|_| http::HeaderValue::from_static("unknown"));
        Self {
            peer,
            tls,
            client_cert_sha256: client_certificate
                .as_ref()
                .map(|c| Arc::from(c.thumbprint().as_str())),
            client_certificate,
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
    let protocols = Arc::new(Protocols::new(&limits));
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
        let protocols = protocols.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                None => serve_plain(&protocols, stream, peer, handler).await,
                Some(a) => serve_tls(&protocols, a, stream, peer, handler).await,
            }
        });
    }
}

/// The HTTP/1.1 and HTTP/2 settings every connection of a listener is served with.
struct Protocols {
    h1: hyper::server::conn::http1::Builder,
    h2: hyper::server::conn::http2::Builder<TokioExecutor>,
    /// Bounds the TLS handshake and the wait for the first bytes of a plain-text connection.
    handshake_timeout: Duration,
}

impl Protocols {
    fn new(limits: &Limits) -> Self {
        let mut h1 = hyper::server::conn::http1::Builder::new();
        h1.timer(TokioTimer::new())
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
        Self {
            h1,
            h2,
            handshake_timeout: limits.header_read_timeout,
        }
    }
}

/// A plain-text connection: HTTP/2 when it opens with the h2 preface (h2c with prior
/// knowledge), else HTTP/1.1.
async fn serve_plain<F, Fut>(p: &Protocols, mut stream: TcpStream, peer: SocketAddr, handler: F)
where
    F: Fn(http::Request<Incoming>, Arc<Conn>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = http::Response<Body>> + Send + 'static,
{
    let (h2, read) = match tokio::time::timeout(p.handshake_timeout, sniff_h2(&mut stream)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, %peer, "connection failed before its first request");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "connection sent no request in time");
            return;
        }
    };
    let io = TokioIo::new(Replay {
        read: Bytes::from(read),
        inner: stream,
    });
    let conn = Arc::new(Conn::new(peer, false, None));
    if h2 {
        serve_h2(&p.h2, io, conn, handler).await;
    } else {
        serve_h1(&p.h1, io, conn, handler).await;
    }
}

async fn serve_tls<F, Fut>(
    p: &Protocols,
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    handler: F,
) where
    F: Fn(http::Request<Incoming>, Arc<Conn>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = http::Response<Body>> + Send + 'static,
{
    let stream = match tokio::time::timeout(p.handshake_timeout, acceptor.accept(stream)).await {
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
    // rustls reports peer certificates only once its verifier accepted the chain. The gateway
    // checks bindings (the end-entity certificate's thumbprint), so intermediates are not kept.
    let client_certificate = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| ClientCertificate::from_der(c.as_ref()));
    let negotiated_h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let conn = Arc::new(Conn::new(peer, true, client_certificate));
    if negotiated_h2 {
        serve_h2(&p.h2, TokioIo::new(stream), conn, handler).await;
    } else {
        serve_h1(&p.h1, TokioIo::new(stream), conn, handler).await;
    }
}

/// Reads for as long as what arrives could still be the HTTP/2 preface; returns whether it was
/// and the bytes read, which the connection's server reads again ([`Replay`]). An HTTP/1.1
/// request differs from the preface at its first byte, or its third (`POST`, `PUT`, `PATCH`).
async fn sniff_h2(stream: &mut TcpStream) -> std::io::Result<(bool, Vec<u8>)> {
    let mut read = Vec::with_capacity(H2_PREFACE.len());
    let mut chunk = [0u8; H2_PREFACE.len()];
    while read.len() < H2_PREFACE.len() {
        let n = stream
            .read(&mut chunk[..H2_PREFACE.len() - read.len()])
            .await?;
        read.extend_from_slice(&chunk[..n]);
        if n == 0 || !H2_PREFACE.starts_with(&read) {
            return Ok((false, read));
        }
    }
    Ok((true, read))
}

async fn serve_h1<I, F, Fut>(
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
    // Upgrades are enabled so that the proxy can tunnel the routes that allow them; the proxy
    // decides, per request, whether there is anything to upgrade to.
    let served = builder
        .serve_connection(io, service(conn, handler))
        .with_upgrades()
        .await;
    if let Err(e) = served {
        tracing::debug!(error = %e, %peer, "connection ended with an error");
    }
}

async fn serve_h2<I, F, Fut>(
    builder: &hyper::server::conn::http2::Builder<TokioExecutor>,
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
        tracing::debug!(error = %e, %peer, "h2 connection ended with an error");
    }
}

/// A TCP stream with the bytes already read from it ([`sniff_h2`]) put back in front.
struct Replay {
    read: Bytes,
    inner: TcpStream,
}

impl AsyncRead for Replay {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.read.is_empty() {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        let n = this.read.len().min(buf.remaining());
        buf.put_slice(&this.read.split_to(n));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
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
