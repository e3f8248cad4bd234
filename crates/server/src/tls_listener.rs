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

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl TlsListener {
    pub fn new(listener: TcpListener, tls: &Tls) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        // HTTP/1.1 only: what axum's server speaks here.
        let acceptor = tls.acceptor_with_alpn(&[b"http/1.1"]);
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
                    // The end-entity certificate, then what the client sent to chain it.
                    let certificate = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.split_first())
                        .map(|(end_entity, intermediates)| {
                            ClientCertificate::from_chain(
                                end_entity.as_ref(),
                                intermediates.iter().map(|c| c.to_vec()),
                            )
                        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use axum::Router;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    type Ca = CertifiedIssuer<'static, KeyPair>;

    fn ca() -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        // Not rcgen's default name, which its leaves share: OpenSSL (curl) would take a leaf
        // whose issuer is its own subject for a self-signed certificate.
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "portcullis test ca");
        CertifiedIssuer::self_signed(p, KeyPair::generate().expect("key")).expect("ca")
    }

    /// A certificate for 127.0.0.1 from `ca`: (PEM, key PEM, DER, key DER).
    fn leaf(ca: &Ca) -> (String, String, Vec<u8>, Vec<u8>) {
        let mut p = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
        p.subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        p.distinguished_name = rcgen::DistinguishedName::new();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let key = KeyPair::generate().expect("key");
        let cert = p.signed_by(&key, ca).expect("sign");
        (
            cert.pem(),
            key.serialize_pem(),
            cert.der().to_vec(),
            key.serialize_der(),
        )
    }

    fn client(ca: &Ca, cert: Option<(&[u8], &[u8])>) -> tokio_rustls::TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).expect("root");
        let b = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
        let mut c = match cert {
            None => b.with_no_client_auth(),
            Some((der, key)) => b
                .with_client_auth_cert(
                    vec![CertificateDer::from(der.to_vec())],
                    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec())),
                )
                .expect("client auth"),
        };
        c.resumption = rustls::client::Resumption::disabled();
        tokio_rustls::TlsConnector::from(Arc::new(c))
    }

    /// One GET on an open connection: (served certificate DER, body).
    async fn get_on(s: &mut tokio_rustls::client::TlsStream<TcpStream>) -> String {
        s.write_all(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .expect("write");
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        loop {
            let n = s.read(&mut chunk).await.expect("read");
            assert!(n > 0, "connection closed early");
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.trim().parse().expect("length"))
                    })
                    .expect("content-length");
                if body.len() >= len {
                    return body[..len].to_owned();
                }
            }
        }
    }

    async fn connect(
        addr: SocketAddr,
        c: &tokio_rustls::TlsConnector,
    ) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        c.connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
            .expect("handshake")
    }

    fn served(s: &tokio_rustls::client::TlsStream<TcpStream>) -> Vec<u8> {
        s.get_ref().1.peer_certificates().expect("server cert")[0].to_vec()
    }

    #[tokio::test]
    async fn a_client_certificate_reaches_handlers_and_a_reload_keeps_open_connections() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server_ca = ca();
        let (cert_pem, key_pem, first, _) = leaf(&server_ca);
        let section = portcullis_gateway::config::TlsSection {
            cert_file: dir.path().join("cert.pem"),
            key_file: dir.path().join("key.pem"),
            client_ca_file: None,
        };
        std::fs::write(&section.cert_file, &cert_pem).expect("write");
        std::fs::write(&section.key_file, &key_pem).expect("write");
        let tls = Tls::with_deferred_client_certificates(&section).expect("tls");
        let app = Router::new()
            .route(
                "/",
                get(|req: axum::extract::Request| async move {
                    let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().is_some();
                    let cert = req
                        .extensions()
                        .get::<ClientCertificate>()
                        .map_or("none".to_owned(), |c| c.thumbprint().to_string());
                    format!("{peer}|{cert}")
                }),
            )
            .layer(axum::middleware::from_fn(tls_request_extensions));
        let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = tcp.local_addr().expect("addr");
        let listener = TlsListener::new(tcp, &tls).expect("listener");
        tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<TlsPeer>(),
            )
            .await;
        });

        // A certificate from a CA nobody configured: accepted at the handshake (its key signed
        // it), and handed to the handler with its thumbprint.
        let client_ca = ca();
        let (client_pem, client_key_pem, client_der, client_key) = leaf(&client_ca);
        let with = client(&server_ca, Some((&client_der, &client_key)));
        let mut kept = connect(addr, &with).await;
        assert_eq!(served(&kept), first);
        let want = format!(
            "true|{}",
            portcullis_core::confirmation::Thumbprint::sha256_of(&client_der)
        );
        assert_eq!(get_on(&mut kept).await, want);
        // No certificate: served all the same, with none.
        let mut without = connect(addr, &client(&server_ca, None)).await;
        assert_eq!(get_on(&mut without).await, "true|none");

        // curl, with the client certificate, agrees.
        let curl = std::process::Command::new("curl").arg("--version").output();
        if curl.is_ok_and(|o| o.status.success()) {
            for (name, text) in [
                ("ca.pem", server_ca.pem()),
                ("client.pem", client_pem),
                ("client.key", client_key_pem),
            ] {
                std::fs::write(dir.path().join(name), text).expect("write");
            }
            let d = dir.path().to_owned();
            let out = tokio::task::spawn_blocking(move || {
                std::process::Command::new("curl")
                    .args(["-sS", "--max-time", "10", "--cacert"])
                    .arg(d.join("ca.pem"))
                    .arg("--cert")
                    .arg(d.join("client.pem"))
                    .arg("--key")
                    .arg(d.join("client.key"))
                    .arg(format!("https://127.0.0.1:{}/", addr.port()))
                    .output()
                    .expect("curl")
            })
            .await
            .expect("join");
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                want,
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        } else {
            eprintln!("curl not found; skipping its half of the test");
        }

        // Reload: new connections get the new certificate, the open one keeps working.
        let (cert_pem, key_pem, second, _) = leaf(&server_ca);
        std::fs::write(&section.cert_file, cert_pem).expect("write");
        std::fs::write(&section.key_file, key_pem).expect("write");
        tls.reload().expect("reload");
        let fresh = connect(addr, &with).await;
        assert_eq!(served(&fresh), second);
        assert_eq!(get_on(&mut kept).await, want);
        // A broken pair is refused and the served one stays.
        std::fs::write(&section.key_file, "not a key").expect("write");
        assert!(tls.reload().is_err());
        assert_eq!(served(&connect(addr, &with).await), second);
    }
}
