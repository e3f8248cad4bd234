//! The accept loop shared by the main and admin listeners: HTTP/1.1 on hyper with the header
//! limits (431 past `max_header_bytes` or `max_headers`) and the header read timeout (a client
//! that does not finish its headers in time, or idles on a keep-alive connection that long, is
//! disconnected). With TLS, the handshake runs in the connection's own task under the same
//! timeout, so a slow or failing handshake costs only that connection.
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
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;

use crate::config::Limits;
use crate::tls::Tls;

/// What the gateway knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct Conn {
    pub peer: SocketAddr,
    /// The connection is TLS.
    pub tls: bool,
    /// The [`crate::tls::fingerprint`] of the client certificate rustls verified, if any.
    pub client_cert_sha256: Option<Arc<str>>,
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
        let acceptor = acceptor.clone();
        let handshake_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let Some(acceptor) = acceptor else {
                let conn = Arc::new(Conn {
                    peer,
                    tls: false,
                    client_cert_sha256: None,
                });
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
            let conn = Arc::new(Conn {
                peer,
                tls: true,
                client_cert_sha256,
            });
            serve_connection(&builder, TokioIo::new(stream), conn, handler).await;
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
    let svc = service_fn(move |req| {
        let fut = handler(req, conn.clone());
        async move { Ok::<_, Infallible>(fut.await) }
    });
    if let Err(e) = builder.serve_connection(io, svc).await {
        tracing::debug!(error = %e, %peer, "connection ended with an error");
    }
}
