//! TLS on `serve`'s main listener: an [`axum::serve::Listener`] that accepts TCP connections,
//! runs each TLS handshake in its own task (a slow or failing handshake costs only that
//! connection, bounded by a timeout), and hands finished connections to axum, so graceful
//! shutdown and everything else `axum::serve` does stay as they are. The rustls configuration
//! and the certificate store (reloaded on SIGHUP without dropping open connections) are the
//! gateway's ([`portcullis_gateway::tls::Tls`]): one listener implementation.
//!
//! The client certificate a connection presented travels with its address ([`TlsPeer`]) and
//! [`tls_request_extensions`] turns it into the request's [`ClientCertificate`] extension,
//! next to the usual `ConnectInfo<SocketAddr>`. This module must never decide whether a
//! certificate is trusted (client authentication does), and must never let a failed
//! connection stop the accept loop.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::serve::IncomingStream;
use portcullis_core::confirmation::ClientCertificate;
use portcullis_gateway::tls::Tls;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

/// How long a client has to finish its handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Finished handshakes waiting for axum to take them.
const BACKLOG: usize = 128;

/// Where a TLS connection came from, and the certificate it presented (if any).
#[derive(Debug, Clone)]
pub struct TlsPeer {
    pub addr: SocketAddr,
    pub certificate: Option<ClientCertificate>,
}

impl Connected<IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// Accepts TLS connections; handshakes run on their own tasks (module docs).
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, TlsPeer)>,
    accept_task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl TlsListener {
    pub fn new(listener: TcpListener, tls: &Tls) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = tls.acceptor();
        let (tx, ready) = mpsc::channel(BACKLOG);
        let accept_task = tokio::spawn(async move {
            loop {
                let (tcp, addr) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let stream =
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, peer = %addr, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(peer = %addr, "TLS handshake timed out");
                                return;
                            }
                        };
                    // rustls reports peer certificates only once its verifier accepted them.
                    let certificate = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| ClientCertificate::from_der(c.as_ref()));
                    let _ = tx.send((stream, TlsPeer { addr, certificate })).await;
                });
            }
        });
        Ok(Self {
            local,
            ready,
            accept_task,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = TlsPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(TlsPeer {
            addr: self.local,
            certificate: None,
        })
    }
}

/// Middleware for the TLS listener: the peer's address as `ConnectInfo<SocketAddr>` (what the
/// rest of the server reads) and its certificate as a [`ClientCertificate`] extension.
pub async fn tls_request_extensions(
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if let Some(ConnectInfo(peer)) = req.extensions_mut().remove::<ConnectInfo<TlsPeer>>() {
        req.extensions_mut().insert(ConnectInfo(peer.addr));
        match peer.certificate {
            Some(c) => {
                req.extensions_mut().insert(c);
            }
            None => {
                req.extensions_mut().remove::<ClientCertificate>();
            }
        }
    }
    next.run(req).await
}
