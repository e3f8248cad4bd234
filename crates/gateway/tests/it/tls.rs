//! TLS on the main listener and per-route client certificates, against certificates made at
//! test time (rcgen) and a rustls client: the served certificate, its reload (explicit and on
//! file change; an invalid pair keeps the old one), `client_cert = "required"` (no certificate,
//! another CA's, a good one), the fingerprint header, and a stalled handshake next to a good one.

use crate::common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use portcullis_gateway::{Gateway, GatewayConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

type Ca = CertifiedIssuer<'static, KeyPair>;

fn ca(name: &str) -> Ca {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(p, KeyPair::generate().expect("key")).expect("ca")
}

/// A leaf certificate from `ca`: (certificate PEM, key PEM, certificate DER, key DER).
struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

fn leaf(ca: &Ca, server: bool) -> Leaf {
    let mut p = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    p.distinguished_name.push(
        DnType::CommonName,
        if server { "localhost" } else { "client-1" },
    );
    if server {
        p.subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
    }
    p.extended_key_usages = vec![if server {
        ExtendedKeyUsagePurpose::ServerAuth
    } else {
        ExtendedKeyUsagePurpose::ClientAuth
    }];
    let key = KeyPair::generate().expect("key");
    let cert = p.signed_by(&key, ca).expect("sign");
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
        key_der: key.serialize_der(),
    }
}

/// SHA-256 of a DER certificate, base64url: what the gateway reports, computed independently.
fn sha256_b64(der: &[u8]) -> String {
    use base64::Engine;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d)
}

struct Files {
    _dir: tempfile::TempDir,
    cert: PathBuf,
    key: PathBuf,
    client_ca: PathBuf,
    config: PathBuf,
}

fn write_pair(files: &Files, l: &Leaf) {
    std::fs::write(&files.cert, &l.cert_pem).expect("write cert");
    std::fs::write(&files.key, &l.key_pem).expect("write key");
}

const ROUTES: &str = r#"
[[routes]]
name = "open"
path = "/open/*"
upstream = "app"
public = true

[[routes]]
name = "mtls"
path = "/mtls/*"
upstream = "app"
public = true
client_cert = "required"

[[routes]]
name = "api"
path = "/api/*"
upstream = "app"
accept = ["access_token"]
client_cert = "required"

[[routes]]
name = "bound"
path = "/bound/*"
upstream = "app"
accept = ["access_token"]
"#;

fn files(server: &Leaf, client_ca: &Ca) -> Files {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = Files {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
        client_ca: dir.path().join("clients.pem"),
        config: dir.path().join("gateway.toml"),
        _dir: dir,
    };
    write_pair(&f, server);
    std::fs::write(&f.client_ca, client_ca.pem()).expect("write ca");
    f
}

/// A server CA and its server certificate, a client CA, and the files a gateway reads.
struct Pki {
    server_ca: Ca,
    client_ca: Ca,
    server: Leaf,
    f: Files,
}

fn pki() -> Pki {
    let server_ca = ca("server ca");
    let client_ca = ca("client ca");
    let server = leaf(&server_ca, true);
    let f = files(&server, &client_ca);
    Pki {
        server_ca,
        client_ca,
        server,
        f,
    }
}

fn config_text(f: &Files, up: SocketAddr, extra: &str) -> String {
    format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{extra}\n[tls]\ncert_file = '{}'\nkey_file = '{}'\nclient_ca_file = '{}'\n\n[upstreams.app]\nurl = \"http://{up}\"\n{ROUTES}",
        f.cert.display(),
        f.key.display(),
        f.client_ca.display()
    )
}

async fn start(f: &Files, extra: &str) -> (Gateway, Issuer) {
    let up = echo_upstream().await;
    std::fs::write(&f.config, config_text(f, up, extra)).expect("write config");
    let issuer = Issuer::default();
    let v = verifier(&issuer, Arc::new(Keys::default()));
    let config = GatewayConfig::load(&f.config).expect("config");
    let gw = Gateway::start(config, v, Some(f.config.clone()))
        .await
        .expect("start");
    (gw, issuer)
}

fn client_config(
    roots: &[&CertificateDer<'static>],
    client: Option<&Leaf>,
) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add((*r).clone()).expect("root");
    }
    let b = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(store);
    let mut c = match client {
        None => b.with_no_client_auth(),
        Some(l) => b
            .with_client_auth_cert(
                vec![l.der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(l.key_der.clone())),
            )
            .expect("client auth"),
    };
    c.alpn_protocols = vec![b"http/1.1".to_vec()];
    // Every connection a full handshake: a resumed session reports the certificate of the
    // session it resumes, which would hide which certificate is served now.
    c.resumption = rustls::client::Resumption::disabled();
    Arc::new(c)
}

async fn connect(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    tokio::time::timeout(DEADLINE, async {
        let tcp = TcpStream::connect(addr).await?;
        tokio_rustls::TlsConnector::from(cfg)
            .connect(ServerName::try_from("localhost").expect("name"), tcp)
            .await
    })
    .await
    .expect("handshake before the deadline")
}

/// The fingerprint of the certificate the server presented on `s`.
fn served(s: &TlsStream<TcpStream>) -> String {
    let certs = s
        .get_ref()
        .1
        .peer_certificates()
        .expect("server certificate");
    sha256_b64(&certs[0])
}

async fn send(s: &mut TlsStream<TcpStream>, path: &str, headers: &[(&str, &str)]) -> Resp {
    tokio::time::timeout(DEADLINE, async {
        s.write_all(request("GET", path, headers, false).as_bytes())
            .await
            .expect("write");
        read_response(s).await
    })
    .await
    .expect("response before the deadline")
}

/// One request on a new connection; `None` when the connection fails before an answer (a
/// refused handshake surfaces here under TLS 1.3, after the client's side completed).
async fn once(
    addr: SocketAddr,
    cfg: Arc<rustls::ClientConfig>,
    path: &str,
    headers: &[(&str, &str)],
) -> Option<Resp> {
    let mut s = connect(addr, cfg).await.ok()?;
    tokio::time::timeout(DEADLINE, async {
        s.write_all(request("GET", path, headers, true).as_bytes())
            .await
            .ok()?;
        let mut buf = Vec::new();
        match s.read_to_end(&mut buf).await {
            Ok(_) if buf.starts_with(b"HTTP/1.1 ") => {
                let mut cursor = std::io::Cursor::new(buf);
                Some(read_response(&mut cursor).await)
            }
            _ => None,
        }
    })
    .await
    .expect("deadline")
}

#[tokio::test]
async fn tls_listener_serves_the_certificate_and_plain_http_gets_no_answer() {
    let Pki {
        server_ca,
        server,
        f,
        ..
    } = pki();
    let (gw, _) = start(&f, "").await;
    let roots = client_config(&[server_ca.der()], None);

    let mut s = connect(gw.addr, roots.clone()).await.expect("handshake");
    assert_eq!(served(&s), sha256_b64(&server.der));
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let r = send(&mut s, "/open/x", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.upstream_header("x-forwarded-proto"), ["https"]);
    // A second request on the same TLS connection (keep-alive works over TLS).
    assert_eq!(send(&mut s, "/open/y", &[]).await.status, 200);

    // A client that does not trust the server's CA refuses the handshake.
    let other = ca("other");
    assert!(connect(gw.addr, client_config(&[other.der()], None))
        .await
        .is_err());

    // Plain HTTP on the TLS port: never an HTTP answer.
    let mut tcp = TcpStream::connect(gw.addr).await.expect("connect");
    tcp.write_all(request("GET", "/open/x", &[], true).as_bytes())
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, tcp.read_to_end(&mut buf)).await;
    assert!(!buf.starts_with(b"HTTP/"), "{buf:?}");
}

#[tokio::test]
async fn reload_serves_a_new_certificate_to_new_connections_and_keeps_the_old_one_when_invalid() {
    let Pki {
        server_ca,
        server: first,
        f,
        ..
    } = pki();
    let (gw, _) = start(&f, "").await;
    let roots = client_config(&[server_ca.der()], None);
    let mut old = connect(gw.addr, roots.clone()).await.expect("handshake");
    assert_eq!(served(&old), sha256_b64(&first.der));

    let second = leaf(&server_ca, true);
    write_pair(&f, &second);
    gw.reload().expect("reload");
    let s = connect(gw.addr, roots.clone()).await.expect("handshake");
    assert_eq!(
        served(&s),
        sha256_b64(&second.der),
        "new connection, new cert"
    );
    // The connection opened before the reload keeps working.
    assert_eq!(send(&mut old, "/open/x", &[]).await.status, 200);

    // A key that does not fit the certificate: refused, the second pair stays.
    let third = leaf(&server_ca, true);
    std::fs::write(&f.cert, &third.cert_pem).expect("write");
    assert!(gw.shared.reload_tls().is_err());
    let s = connect(gw.addr, roots.clone()).await.expect("handshake");
    assert_eq!(served(&s), sha256_b64(&second.der));
    // Not PEM at all: same.
    std::fs::write(&f.cert, "not a certificate").expect("write");
    std::fs::write(&f.key, "not a key").expect("write");
    assert!(gw.shared.reload_tls().is_err());
    let s = connect(gw.addr, roots.clone()).await.expect("handshake");
    assert_eq!(served(&s), sha256_b64(&second.der));
    let m = metrics(&gw).await;
    assert!(
        m.contains("portcullis_gateway_tls_reloads_total{result=\"refused\"} 2"),
        "{m}"
    );

    // The [tls] section itself is fixed at start: a file changing it is refused on reload.
    let text = std::fs::read_to_string(&f.config).expect("read");
    let changed: String = text
        .lines()
        .filter(|l| !l.starts_with("client_ca_file"))
        .map(|l| format!("{l}\n"))
        .collect::<String>()
        .replace("client_cert = \"required\"\n", "");
    std::fs::write(&f.config, changed).expect("write");
    let e = gw.reload().expect_err("restart-only");
    assert!(e.to_string().contains("tls"), "{e}");
}

/// A certificate or key file missing (mid-replace, or gone) must not stop the watcher from
/// applying a changed configuration; the old certificate keeps serving.
#[tokio::test]
async fn a_missing_key_file_does_not_stop_config_reloads() {
    let Pki {
        server_ca,
        server,
        f,
        ..
    } = pki();
    let (gw, _) = start(&f, "[reload]\nwatch_interval = \"100ms\"\n").await;
    let roots = client_config(&[server_ca.der()], None);
    assert_eq!(
        once(gw.addr, roots.clone(), "/later/x", &[])
            .await
            .map(|r| r.status),
        Some(404)
    );
    std::fs::remove_file(&f.key).expect("remove key");
    let text = std::fs::read_to_string(&f.config).expect("read config");
    std::fs::write(
        &f.config,
        format!("{text}\n[[routes]]\npath = \"/later/*\"\nupstream = \"app\"\npublic = true\n"),
    )
    .expect("write config");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let r = once(gw.addr, roots.clone(), "/later/x", &[]).await;
        if r.as_ref().map(|r| r.status) == Some(200) {
            break;
        }
        assert!(Instant::now() < deadline, "the new route was never applied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = connect(gw.addr, roots).await.expect("handshake");
    assert_eq!(
        served(&s),
        sha256_b64(&server.der),
        "the old pair keeps serving"
    );
}

#[tokio::test]
async fn a_changed_certificate_file_is_picked_up_by_the_watcher() {
    let Pki { server_ca, f, .. } = pki();
    let (gw, _) = start(&f, "[reload]\nwatch_interval = \"100ms\"\n").await;
    let roots = client_config(&[server_ca.der()], None);

    let second = leaf(&server_ca, true);
    write_pair(&f, &second);
    let want = sha256_b64(&second.der);
    let deadline = Instant::now() + DEADLINE;
    loop {
        let s = connect(gw.addr, roots.clone()).await.expect("handshake");
        if served(&s) == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn client_cert_required_routes_refuse_connections_without_a_verified_certificate() {
    let Pki {
        server_ca,
        client_ca,
        f,
        ..
    } = pki();
    // With an identity JWT, whose cnf claim carries the certificate too.
    let identity_key = f.cert.with_file_name("identity.pem");
    std::fs::write(
        &identity_key,
        KeyPair::generate_for(&rcgen::PKCS_ED25519)
            .expect("key")
            .serialize_pem(),
    )
    .expect("write");
    let identity = format!(
        "[identity_jwt]\nsigning_key_file = '{}'\nissuer = \"https://gw.test\"\n",
        identity_key.display()
    );
    let (gw, issuer) = start(&f, &identity).await;
    let token = issuer.token(serde_json::json!({}));
    let auth = bearer(&token);
    let forged = ("x-portcullis-client-cert-sha256", "forged");

    // No certificate: the connection is accepted (allow_unauthenticated), the route refuses.
    let none = client_config(&[server_ca.der()], None);
    let r = once(gw.addr, none.clone(), "/mtls/x", &[])
        .await
        .expect("answer");
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "access_denied");
    assert!(r.header("www-authenticate").is_none());
    let r = once(gw.addr, none.clone(), "/api/x", &[("authorization", &auth)])
        .await
        .expect("answer");
    assert_eq!(
        r.status, 403,
        "a valid token does not replace the certificate"
    );
    // Routes without the requirement pass, and a client-sent fingerprint never reaches the
    // upstream.
    let r = once(gw.addr, none.clone(), "/open/x", &[forged])
        .await
        .expect("answer");
    assert_eq!(r.status, 200);
    assert!(r
        .upstream_header("x-portcullis-client-cert-sha256")
        .is_empty());

    // A certificate from a CA the gateway does not trust: the handshake is refused.
    let stranger = leaf(&ca("stranger ca"), false);
    let bad = client_config(&[server_ca.der()], Some(&stranger));
    assert!(once(gw.addr, bad, "/open/x", &[]).await.is_none());

    // A good certificate: passes, and the upstream sees its fingerprint (not the forged one).
    let good = leaf(&client_ca, false);
    let cfg = client_config(&[server_ca.der()], Some(&good));
    let want = sha256_b64(&good.der);
    let r = once(gw.addr, cfg.clone(), "/mtls/x", &[forged])
        .await
        .expect("answer");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.upstream_header("x-portcullis-client-cert-sha256"),
        std::slice::from_ref(&want)
    );
    let r = once(gw.addr, cfg.clone(), "/api/x", &[("authorization", &auth)])
        .await
        .expect("answer");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.upstream_header("x-portcullis-client-cert-sha256"),
        std::slice::from_ref(&want)
    );
    assert_eq!(r.upstream_header("x-portcullis-subject"), ["user-1"]);
    let jwt = r.upstream_header("x-portcullis-identity");
    let claims = jwt
        .first()
        .and_then(|t| t.split('.').nth(1))
        .and_then(|p| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .expect("identity JWT claims");
    assert_eq!(claims["cnf"]["x5t#S256"].as_str(), Some(want.as_str()));
    // Certificate, but no token on a protected route: the credential is still required.
    let r = once(gw.addr, cfg, "/api/x", &[]).await.expect("answer");
    assert_eq!(r.status, 401);

    let m = metrics(&gw).await;
    assert!(
        m.contains("class=\"access_denied\",reason=\"client_cert_missing\"} 2"),
        "{m}"
    );
}

#[tokio::test]
async fn a_stalled_or_failed_handshake_does_not_affect_other_connections() {
    let Pki { server_ca, f, .. } = pki();
    let (gw, _) = start(&f, "").await;
    let roots = client_config(&[server_ca.der()], None);

    // One connection that never says hello, one that sends garbage.
    let _stalled = TcpStream::connect(gw.addr).await.expect("connect");
    let mut garbage = TcpStream::connect(gw.addr).await.expect("connect");
    garbage
        .write_all(b"\x16\x03\x01\xff\xffnot a client hello")
        .await
        .expect("write");
    let r = once(gw.addr, roots, "/open/x", &[]).await.expect("answer");
    assert_eq!(r.status, 200);
}

fn config_error(text: &str) -> String {
    let c = GatewayConfig::from_toml(text).expect("parses");
    portcullis_gateway::Snapshot::build(c, None)
        .expect_err("refused")
        .to_string()
}

#[test]
fn client_cert_required_without_client_cas_is_refused_at_load() {
    let route = "[upstreams.app]\nurl = \"http://127.0.0.1:9\"\n[[routes]]\nname = \"m\"\npath = \"/m/*\"\nupstream = \"app\"\npublic = true\nclient_cert = \"required\"\n";
    // No [tls] at all.
    let e = config_error(&format!("listen = \"127.0.0.1:0\"\n{route}"));
    assert!(e.contains("client_ca_file"), "{e}");
    // [tls] without client_ca_file.
    let e = config_error(&format!(
        "listen = \"127.0.0.1:0\"\n[tls]\ncert_file = \"/c\"\nkey_file = \"/k\"\n{route}"
    ));
    assert!(e.contains("client_ca_file"), "{e}");
    // Unknown values and keys are refused by the parser.
    assert!(GatewayConfig::from_toml(&format!(
        "listen = \"127.0.0.1:0\"\n{}",
        route.replace("\"required\"", "\"sometimes\"")
    ))
    .is_err());
    assert!(GatewayConfig::from_toml(
        "listen = \"127.0.0.1:0\"\n[tls]\ncert_file = \"/c\"\nkey_file = \"/k\"\nverify = false\n"
    )
    .is_err());
}

#[tokio::test]
async fn start_refuses_unreadable_or_mismatched_certificates() {
    let Pki { server_ca, f, .. } = pki();
    std::fs::write(&f.key, leaf(&server_ca, true).key_pem).expect("write");
    let up = echo_upstream().await;
    let text = config_text(&f, up, "");
    let issuer = Issuer::default();
    let v = verifier(&issuer, Arc::new(Keys::default()));
    let e = Gateway::start(GatewayConfig::from_toml(&text).expect("config"), v, None)
        .await
        .expect_err("mismatched key refused");
    assert!(e.to_string().contains("does not fit"), "{e}");
    assert!(!e.to_string().contains("PRIVATE KEY"), "{e}");
}

/// One request over an HTTP/2 connection: (status, body).
async fn h2_get(
    sender: &mut hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    use http_body_util::BodyExt;
    let mut req = http::Request::get(format!("https://localhost{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = tokio::time::timeout(
        DEADLINE,
        sender.send_request(req.body(http_body_util::Empty::new()).expect("request")),
    )
    .await
    .expect("deadline")
    .expect("response");
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn h2_clients_are_served_over_tls_under_the_same_rules() {
    let Pki {
        server_ca,
        client_ca,
        f,
        ..
    } = pki();
    let client = leaf(&client_ca, false);
    let (gw, issuer) = start(&f, "[limits]\nmax_header_bytes = 4096\n").await;
    let mut cfg = (*client_config(&[server_ca.der()], Some(&client))).clone();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let tls = connect(gw.addr, Arc::new(cfg)).await.expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);

    // Proxied as HTTP/1.1 to the upstream, with the forwarded facts and no spoofed identity.
    let (status, body) = h2_get(&mut sender, "/open/x", &[("x-portcullis-subject", "admin")]).await;
    assert_eq!(status, 200, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).expect("echo json");
    assert_eq!(seen["uri"], "/open/x");
    assert_eq!(seen["headers"]["x-forwarded-proto"][0], "https");
    assert_eq!(seen["headers"]["x-forwarded-host"][0], "localhost");
    assert!(
        seen["headers"].get("x-portcullis-subject").is_none(),
        "{seen}"
    );
    assert_eq!(
        seen["headers"]["x-portcullis-client-cert-sha256"][0],
        sha256_b64(&client.der)
    );
    // Policies apply as on HTTP/1.1: no credential is 401, a token passes, path tricks are
    // normalised, and several requests share the connection.
    assert_eq!(h2_get(&mut sender, "/api/x", &[]).await.0, 401);
    let token = format!("Bearer {}", issuer.token(serde_json::json!({})));
    assert_eq!(
        h2_get(&mut sender, "/api/x", &[("authorization", &token)])
            .await
            .0,
        200
    );
    assert_eq!(
        h2_get(&mut sender, "/open/../api/x", &[]).await.0,
        401,
        "normalised to /api/x before matching"
    );
    // A header list past max_header_bytes is refused with 431.
    let big = "a".repeat(8_000);
    assert_eq!(
        h2_get(&mut sender, "/open/x", &[("x-big", &big)]).await.0,
        431
    );
}

/// RFC 8705 section 3 at the gateway's TLS listener: a token bound to a certificate
/// (`cnf.x5t#S256`) passes only on a connection that presented that certificate; without a
/// certificate, or with another one from the same trusted CA, it is refused as invalid.
#[tokio::test]
async fn a_certificate_bound_token_is_refused_without_its_certificate() {
    let Pki {
        server_ca,
        client_ca,
        f,
        ..
    } = pki();
    let (gw, issuer) = start(&f, "").await;
    let mine = leaf(&client_ca, false);
    let other = leaf(&client_ca, false);
    let token = issuer.token(serde_json::json!({"cnf": {"x5t#S256": sha256_b64(&mine.der)}}));
    let auth = bearer(&token);
    let call = |client: Option<&Leaf>| {
        let cfg = client_config(&[server_ca.der()], client);
        let auth = auth.clone();
        async move {
            once(gw.addr, cfg, "/bound/x", &[("authorization", &auth)])
                .await
                .expect("answer")
        }
    };
    let r = call(Some(&mine)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.upstream_header("x-portcullis-subject"), ["user-1"]);
    for (client, what) in [
        (None, "no certificate"),
        (Some(&other), "another certificate"),
    ] {
        let r = call(client).await;
        assert_eq!(r.status, 401, "{what}");
        assert_eq!(r.json()["error"], "invalid_token", "{what}");
    }
    // An unbound token needs no certificate on this route.
    let plain = bearer(&issuer.token(serde_json::json!({})));
    let cfg = client_config(&[server_ca.der()], None);
    let r = once(gw.addr, cfg, "/bound/x", &[("authorization", &plain)])
        .await
        .expect("answer");
    assert_eq!(r.status, 200);
    let m = metrics(&gw).await;
    assert!(m.contains("certificate_missing"), "{m}");
    assert!(m.contains("certificate_mismatch"), "{m}");
}
