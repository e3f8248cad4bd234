//! Test fixtures: an ES256 issuer signing with the `p256` crate (not Portcullis's signer), an
//! in-process API key backend, an echo upstream, a gateway started on 127.0.0.1:0, and a raw
//! HTTP/1.1 client (so paths reach the gateway exactly as written, without a client library
//! normalising them first).
#![allow(dead_code)]

pub mod proxied;
pub mod proxy_process;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use p256::ecdsa::signature::Signer as _;
use portcullis_core::api_key::IpAllowlist;
use portcullis_core::credential::{Credential, CredentialKind, Environment};
use portcullis_core::tenant::TenantId;
use portcullis_gateway::{Gateway, GatewayConfig};
use portcullis_verify::{
    ApiKeyBackend, ApiKeyConfig, ApiKeyFailure, ApiKeyIdentity, ApiKeyQuery, ApiKeySource,
    IssuerConfig, KeySource, RevocationSource, Verifier, VerifierConfig,
};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const ISSUER: &str = "https://auth.test.example";
pub const AUDIENCE: &str = "orders-api";
/// Generous bound against hangs; never a performance assertion.
pub const DEADLINE: Duration = Duration::from_secs(20);

fn b64(b: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

pub struct Issuer {
    key: p256::ecdsa::SigningKey,
}

impl Default for Issuer {
    fn default() -> Self {
        let mut bytes = [7u8; 32];
        bytes[0] = 1;
        Self {
            key: p256::ecdsa::SigningKey::from_bytes(&bytes.into()).expect("key"),
        }
    }
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

impl Issuer {
    pub fn jwks(&self) -> String {
        let p = self.key.verifying_key().to_encoded_point(false);
        json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "kid": "k1", "use": "sig",
            "x": b64(p.x().expect("x")), "y": b64(p.y().expect("y")),
        }]})
        .to_string()
    }

    /// A valid access token; `extra` overrides claims (`null` removes one).
    pub fn token(&self, extra: Value) -> String {
        let mut claims = json!({
            "iss": ISSUER, "sub": "user-1", "aud": AUDIENCE,
            "exp": now() + 600, "iat": now() - 5, "nbf": now() - 5,
            "jti": format!("jti-{}", rand::random::<u64>()), "client_id": "cl_app",
            "scope": "orders:read", "tenant": "acme",
        });
        if let (Some(c), Some(e)) = (claims.as_object_mut(), extra.as_object()) {
            for (k, v) in e {
                if v.is_null() {
                    c.remove(k);
                } else {
                    c.insert(k.clone(), v.clone());
                }
            }
        }
        let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": "k1"});
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let sig: p256::ecdsa::Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", b64(sig.to_bytes()))
    }
}

/// API keys known to the fake backend: key text -> identity, and the IP allowlists of some.
#[derive(Debug, Default)]
pub struct Keys {
    pub keys: Mutex<Vec<(String, ApiKeyIdentity)>>,
    pub allowlists: Mutex<Vec<(String, IpAllowlist)>>,
    pub calls: AtomicUsize,
}

#[async_trait]
impl ApiKeyBackend for Keys {
    async fn verify(&self, q: &ApiKeyQuery<'_>) -> Result<ApiKeyIdentity, ApiKeyFailure> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let keys = self.keys.lock().expect("lock");
        let (_, id) = keys
            .iter()
            .find(|(k, _)| k == q.key)
            .ok_or(ApiKeyFailure::Rejected)?;
        if q.tenant.is_some_and(|t| *t != id.tenant) {
            return Err(ApiKeyFailure::Rejected);
        }
        let allowlists = self.allowlists.lock().expect("lock");
        if let Some((_, allow)) = allowlists.iter().find(|(k, _)| k == q.key) {
            // As the server does: no known client address fails an allowlist.
            if !q.client_ip.is_some_and(|ip| allow.allows(ip)) {
                return Err(ApiKeyFailure::Rejected);
            }
        }
        Ok(id.clone())
    }
}

impl Keys {
    /// Issues a key for `tenant` with `scopes`; returns (key text, key id).
    pub fn issue(&self, tenant: &str, scopes: &[&str]) -> (String, String) {
        let c = Credential::generate(
            CredentialKind::ApiKey,
            Environment::parse("test").expect("env"),
            &mut rand::thread_rng(),
        );
        let id = c.id().to_owned();
        self.keys.lock().expect("lock").push((
            c.expose().to_owned(),
            ApiKeyIdentity {
                key_id: id.clone(),
                tenant: TenantId::parse(tenant).expect("tenant"),
                environment: "test".into(),
                owner: "partner-co".into(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                expires_at: None,
                rate_limit: None,
            },
        ));
        (c.expose().to_owned(), id)
    }

    /// [`Keys::issue`], usable only from `cidrs`.
    pub fn issue_allowlisted(&self, tenant: &str, scopes: &[&str], cidrs: &[&str]) -> String {
        let (key, _) = self.issue(tenant, scopes);
        self.allowlists
            .lock()
            .expect("lock")
            .push((key.clone(), IpAllowlist::parse_list(cidrs).expect("cidrs")));
        key
    }
}

/// A verifier trusting [`Issuer`], with revocations applied by the test and API keys from
/// `keys` (environment `test`).
pub fn verifier(issuer: &Issuer, keys: Arc<Keys>) -> Verifier {
    verifier_with(issuer, keys, |_| {})
}

/// [`verifier`] with its configuration changed by `tweak` first.
pub fn verifier_with(
    issuer: &Issuer,
    keys: Arc<Keys>,
    tweak: impl FnOnce(&mut VerifierConfig),
) -> Verifier {
    let mut cfg = VerifierConfig::new(
        IssuerConfig::new(ISSUER, KeySource::Static(issuer.jwks())),
        AUDIENCE,
        RevocationSource::Embedded {
            staleness_bound: Duration::from_secs(3600),
        },
    );
    cfg.api_keys = Some(ApiKeyConfig::new(ApiKeySource::Backend(keys), "test"));
    tweak(&mut cfg);
    let v = Verifier::new(cfg).expect("verifier");
    v.revocations().touch(0);
    v
}

/// An upstream that answers every request with what it received, as JSON:
/// `{"method", "uri", "headers": {name: [values]}, "body_len"}`.
pub async fn echo_upstream() -> SocketAddr {
    use axum::extract::Request;
    let app = axum::Router::new().fallback(|req: Request| async move {
        let (parts, body) = req.into_parts();
        let body = axum::body::to_bytes(body, 64 << 20)
            .await
            .map(|b| b.len())
            .unwrap_or(0);
        let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in &parts.headers {
            headers
                .entry(k.as_str().to_owned())
                .or_default()
                .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
        }
        axum::Json(json!({
            "method": parts.method.as_str(),
            "uri": parts.uri.to_string(),
            "headers": headers,
            "body_len": body,
        }))
    });
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    addr
}

/// A 127.0.0.1 port that refuses connections for as long as the returned socket lives: bound
/// but never listening, so no other process can start listening on it mid-test.
pub fn dead_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("bind");
    let port = socket.local_addr().expect("addr").port();
    (socket, port)
}

pub struct Ctx {
    pub gw: Gateway,
    pub issuer: Issuer,
    pub keys: Arc<Keys>,
    pub upstream: SocketAddr,
}

/// Starts a gateway on 127.0.0.1:0 whose config is `routes_toml`, with `{up}` replaced by the
/// echo upstream's address.
pub async fn start(routes_toml: &str) -> Ctx {
    start_with(routes_toml, echo_upstream().await).await
}

/// [`start`] with `{up}` replaced by `upstream` (a stub of the test's own).
pub async fn start_with(routes_toml: &str, upstream: SocketAddr) -> Ctx {
    start_tweaked(routes_toml, upstream, |_| {}).await
}

/// [`start_with`], the verifier's configuration changed by `tweak`.
pub async fn start_tweaked(
    routes_toml: &str,
    upstream: SocketAddr,
    tweak: impl FnOnce(&mut VerifierConfig),
) -> Ctx {
    let text = format!(
        "listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"\n{}",
        routes_toml.replace("{up}", &upstream.to_string())
    );
    let config = GatewayConfig::from_toml(&text).expect("config");
    let issuer = Issuer::default();
    let keys = Arc::new(Keys::default());
    let v = verifier_with(&issuer, keys.clone(), tweak);
    let gw = Gateway::start(config, v, None).await.expect("start");
    Ctx {
        gw,
        issuer,
        keys,
        upstream,
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// Values of `name` as the echo upstream received them.
    pub fn upstream_header(&self, name: &str) -> Vec<String> {
        self.json()["headers"][name]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Reads one response from `s` (content-length or chunked body), over TCP or TLS.
pub async fn read_response<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Resp {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed before a response: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut rest = buf[head_end..].to_vec();
    let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let body = if let Some(len) = get("content-length") {
        let len: usize = len.parse().expect("length");
        while rest.len() < len {
            let mut chunk = [0u8; 65536];
            let n = s.read(&mut chunk).await.expect("read");
            assert!(n > 0, "closed mid-body");
            rest.extend_from_slice(&chunk[..n]);
        }
        rest.truncate(len);
        rest
    } else if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        let mut out = Vec::new();
        loop {
            while !rest.windows(2).any(|w| w == b"\r\n") {
                let mut chunk = [0u8; 65536];
                let n = s.read(&mut chunk).await.expect("read");
                assert!(n > 0, "closed mid-chunk");
                rest.extend_from_slice(&chunk[..n]);
            }
            let i = rest.windows(2).position(|w| w == b"\r\n").expect("crlf");
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..i])
                    .split(';')
                    .next()
                    .unwrap_or("0")
                    .trim(),
                16,
            )
            .expect("chunk size");
            while rest.len() < i + 2 + size + 2 {
                let mut chunk = [0u8; 65536];
                let n = s.read(&mut chunk).await.expect("read");
                assert!(n > 0, "closed mid-chunk");
                rest.extend_from_slice(&chunk[..n]);
            }
            out.extend_from_slice(&rest[i + 2..i + 2 + size]);
            rest.drain(..i + 2 + size + 2);
            if size == 0 {
                break;
            }
        }
        out
    } else {
        Vec::new()
    };
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// Sends one request with `Connection: close` and reads the answer.
pub async fn raw(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Resp {
    tokio::time::timeout(DEADLINE, async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(request(method, target, headers, true).as_bytes())
            .await
            .expect("write");
        read_response(&mut s).await
    })
    .await
    .expect("response before the deadline")
}

/// Sends `text` as it is (request line, headers and all) and reads the answer.
pub async fn raw_text(addr: SocketAddr, text: &str) -> Resp {
    tokio::time::timeout(DEADLINE, async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(text.as_bytes()).await.expect("write");
        read_response(&mut s).await
    })
    .await
    .expect("response before the deadline")
}

pub fn request(method: &str, target: &str, headers: &[(&str, &str)], close: bool) -> String {
    let mut r = format!("{method} {target} HTTP/1.1\r\nhost: api.test\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if close {
        r.push_str("connection: close\r\n");
    }
    r.push_str("\r\n");
    r
}

pub fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

/// The admin listener's `/metrics` text.
pub async fn metrics(gw: &Gateway) -> String {
    raw(gw.admin_addr.expect("admin"), "GET", "/metrics", &[])
        .await
        .body
}
