//! `portcullis serve` with `[gateway]`: the gateway runs in the server process and verifies
//! against it in process (signing keys through its own router, API keys through its store,
//! revocations from its log). A real token and API key pass to an upstream with identity
//! headers; spoofed identity headers never reach it; revocations reach the gateway; a gateway
//! file with its own `[verifier]` is refused at start.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{serve_fails, Server};
use serde_json::Value;

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// An upstream on 127.0.0.1 that answers every request with its request head as the body.
fn echo_upstream() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().map_while(Result::ok) {
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                head.len()
            );
            let _ = conn.write_all(reply.as_bytes());
            let _ = conn.write_all(&head);
        }
    });
    port
}

fn s(v: &Value) -> String {
    v.as_str().expect("string").to_owned()
}

/// A client-credentials token response for `payments:read`.
fn access_token(server: &Server, client_id: &str, secret: &str) -> Value {
    common::http()
        .post(format!("{}/oauth2/token", server.url))
        .basic_auth(client_id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=payments%3Aread")
        .send()
        .expect("token request")
        .json()
        .expect("json")
}

fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut req = common::http().get(format!("http://127.0.0.1:{port}{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().unwrap_or_default())
}

/// Polls until a request answers `want`, for at most 10 s (a guard against hanging, not a timing
/// claim). Returns how long it took.
fn answered_within(want: u16, mut status: impl FnMut() -> u16) -> Duration {
    let start = Instant::now();
    loop {
        let got = status();
        if got == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still {got} after 10 s, want {want}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_embedded_gateway_verifies_against_its_own_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, upstream) = (free_port(), echo_upstream());
    let gateway_toml = dir.path().join("gateway.toml");
    std::fs::write(
        &gateway_toml,
        format!(
            r#"listen = "127.0.0.1:{port}"

[upstreams.app]
url = "http://127.0.0.1:{upstream}"

[[routes]]
name = "payments"
path = "/t/{{tenant}}/payments/*"
upstream = "app"
accept = ["access_token", "api_key"]
scopes_any = ["payments:read"]
tenant_from_path = "tenant"
"#
        ),
    )
    .expect("write");
    let config = gateway_toml.to_str().expect("utf-8 path");
    let server = Server::try_start(
        &dir.path().join("data"),
        &[],
        &[
            ("PORTCULLIS_GATEWAY__CONFIG", config),
            ("PORTCULLIS_GATEWAY__AUDIENCE", "payments-api"),
        ],
    )
    .unwrap_or_else(|log| panic!("server did not start:\n{log}"));
    let common::Seeded {
        client_id,
        client_secret: secret,
        api_key,
        api_key_id,
    } = common::seed_payments(&server);
    let second = s(&server.cli_json(&[
        "api-key",
        "create",
        "--tenant",
        "acme",
        "--name",
        "second",
        "--owner",
        "partner-co",
        "--scope",
        "payments:read",
    ])["key"]);
    let token = access_token(&server, &client_id, &secret);
    let bearer = format!("Bearer {}", s(&token["access_token"]));

    // No credential, then a real token (with a spoofed identity header) and a real API key.
    assert_eq!(get(port, "/t/acme/payments/1", &[]).0, 401);
    let (status, seen) = get(
        port,
        "/t/acme/payments/1",
        &[
            ("authorization", &bearer),
            ("x-portcullis-subject", "admin"),
        ],
    );
    assert_eq!(status, 200, "{seen}");
    let seen = seen.to_ascii_lowercase();
    assert!(
        seen.contains(&format!(
            "x-portcullis-subject: {}",
            client_id.to_ascii_lowercase()
        )),
        "{seen}"
    );
    assert!(!seen.contains("x-portcullis-subject: admin"), "{seen}");
    assert!(seen.contains("x-portcullis-tenant: acme"), "{seen}");
    assert!(
        !seen.contains("authorization:"),
        "credentials are not forwarded"
    );
    assert_eq!(
        get(port, "/t/globex/payments/1", &[("authorization", &bearer)]).0,
        403,
        "another tenant's path"
    );

    // Both denials reach the server's audit log, read back through the admin API: the denial
    // class and precise reason, the route name and the client's address, never the credential.
    let mut denials = Vec::new();
    for _ in 0..100 {
        let events: Value = common::http()
            .get(format!(
                "{}/admin/v1/tenants/system/audit-events?action=gateway.denied",
                server.url
            ))
            .bearer_auth(server.token())
            .send()
            .expect("audit events")
            .json()
            .expect("json");
        denials = events["items"].as_array().expect("array").clone();
        if denials.len() >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(denials.len(), 2, "{denials:?}");
    for e in &denials {
        assert_eq!(e["actor"], "gateway", "{e}");
        assert_eq!(e["outcome"], "denied", "{e}");
        assert_eq!(e["target"], "payments", "{e}");
        assert_eq!(e["client_ip"], "127.0.0.1", "{e}");
        assert!(
            e["request_id"].as_str().is_some_and(|r| !r.is_empty()),
            "{e}"
        );
        let reason = s(&e["reason"]);
        assert!(
            reason
                .split_once(':')
                .is_some_and(|(class, why)| !class.is_empty() && !why.is_empty()),
            "{e}"
        );
        assert!(!e.to_string().contains(&s(&token["access_token"])), "{e}");
    }
    let reasons: Vec<String> = denials.iter().map(|e| s(&e["reason"])).collect();
    eprintln!("embedded gateway denials in the audit log: {reasons:?}");
    assert_ne!(
        reasons[0], reasons[1],
        "no credential, then another tenant: {reasons:?}"
    );
    let (status, seen) = get(port, "/t/acme/payments/1", &[("x-api-key", &api_key)]);
    assert_eq!(status, 200, "{seen}");
    assert!(
        seen.contains("x-portcullis-credential-kind: api_key"),
        "{seen}"
    );

    // The client revokes its token; the API key is revoked through the admin CLI. Both reach
    // the embedded gateway through the server's own revocation log.
    let resp = common::http()
        .post(format!("{}/oauth2/revoke", server.url))
        .basic_auth(&client_id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        // A JWT is made of URL-safe characters only.
        .body(format!("token={}", s(&token["access_token"])))
        .send()
        .expect("revoke");
    assert_eq!(resp.status(), 200);
    let took = answered_within(401, || {
        get(port, "/t/acme/payments/1", &[("authorization", &bearer)]).0
    });
    eprintln!("token revocation reached the embedded gateway in {took:?}");
    server.cli_json(&["api-key", "revoke", "--tenant", "acme", &api_key_id]);
    let took = answered_within(401, || {
        get(port, "/t/acme/payments/1", &[("x-api-key", &api_key)]).0
    });
    eprintln!("API key revocation reached the embedded gateway in {took:?}");

    // Disabling the tenant stops its other key at once (the embedded gateway asks the server's
    // verifier on every request, and the disable clears that verifier's cache) and its tokens
    // through the revocation log.
    let token = access_token(&server, &client_id, &secret);
    let bearer = format!("Bearer {}", s(&token["access_token"]));
    assert_eq!(
        get(port, "/t/acme/payments/1", &[("authorization", &bearer)]).0,
        200
    );
    assert_eq!(
        get(port, "/t/acme/payments/1", &[("x-api-key", &second)]).0,
        200
    );
    server.cli_json(&["tenant", "disable", "acme"]);
    assert_eq!(
        get(port, "/t/acme/payments/1", &[("x-api-key", &second)]).0,
        401
    );
    let took = answered_within(401, || {
        get(port, "/t/acme/payments/1", &[("authorization", &bearer)]).0
    });
    eprintln!("tenant disable reached the embedded gateway's token checks in {took:?}");
}

#[test]
fn an_embedded_gateway_file_with_its_own_verifier_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let gateway_toml = dir.path().join("gateway.toml");
    std::fs::write(
        &gateway_toml,
        "listen = \"127.0.0.1:0\"\n[verifier]\naudience = \"x\"\n[verifier.revocation]\ninsecure_none = true\n",
    )
    .expect("write");
    let data = dir.path().join("data");
    let config = gateway_toml.to_str().expect("utf-8 path");
    let args = [
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        data.to_str().expect("utf-8"),
    ];
    let log = serve_fails(
        &args,
        &[
            ("PORTCULLIS_GATEWAY__CONFIG", config),
            ("PORTCULLIS_GATEWAY__AUDIENCE", "x"),
        ],
    );
    assert!(log.contains("remove its [verifier] section"), "{log}");
    let log = serve_fails(&args, &[("PORTCULLIS_GATEWAY__CONFIG", config)]);
    assert!(log.contains("gateway.audience is required"), "{log}");
}

/// The signing key of `kid` (or the active one), decrypted from a running server's data
/// directory as a thief with a copy of it would: the KEK file and the sealed key in the
/// database.
fn steal_signing_key(
    rt: &tokio::runtime::Runtime,
    data_dir: &std::path::Path,
    kid: Option<&str>,
) -> (String, jsonwebtoken::EncodingKey) {
    let ring = portcullis_service::kek::Keyring::read(&data_dir.join("kek")).expect("kek");
    let rows = rt.block_on(async {
        use portcullis_store::SigningKeyStore;
        let store = portcullis_store::SqliteStore::open(&data_dir.join("portcullis.db"))
            .await
            .expect("db");
        store.list_signing_keys().await.expect("keys")
    });
    let row = rows
        .iter()
        .find(|r| match kid {
            Some(k) => r.kid == k,
            None => {
                r.state == portcullis_core::signing::KeyState::Active
                    && r.algorithm != portcullis_core::signing::SigningAlgorithm::RS256
            }
        })
        .expect("the key's row");
    let key = portcullis_service::keys::open_row(row, &ring).expect("decrypt");
    (
        key.kid.clone(),
        jsonwebtoken::EncodingKey::from_ec_der(key.private_pkcs8()),
    )
}

/// An access token for `payments:read` in `acme`, signed with a stolen key, issued at `iat`
/// and living `lifetime` seconds.
fn forge(
    issuer: &str,
    client_id: &str,
    (kid, key): &(String, jsonwebtoken::EncodingKey),
    iat: i64,
    lifetime: i64,
) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid.clone());
    let claims = serde_json::json!({
        "iss": issuer, "sub": client_id, "client_id": client_id, "aud": "payments-api",
        "iat": iat, "nbf": iat, "exp": iat + lifetime, "jti": format!("forged-{iat}-{lifetime}"),
        "scope": "payments:read", "tenant": "acme",
    });
    jsonwebtoken::encode(&header, &claims, key).expect("sign")
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

/// Three verifiers of one token: the embedded gateway, a standalone gateway (proxy and
/// forward-auth) and the verify library.
struct Verifiers<'a> {
    embedded: u16,
    standalone: u16,
    library: &'a portcullis_verify::Verifier,
    rt: &'a tokio::runtime::Runtime,
}

impl Verifiers<'_> {
    /// Each verifier's answer: HTTP status for the gateways, 200 or 401 for the library.
    fn answers(&self, token: &str) -> [u16; 4] {
        let bearer = format!("Bearer {token}");
        // 0 while a gateway is not listening yet.
        let status = |port: u16, path: &str, forward_auth: bool| {
            let mut req = common::http()
                .get(format!("http://127.0.0.1:{port}{path}"))
                .header("authorization", &bearer);
            if forward_auth {
                req = req
                    .header("x-original-uri", "/t/acme/payments/1")
                    .header("x-original-method", "GET");
            }
            req.send().map_or(0, |r| r.status().as_u16())
        };
        let library = match self.rt.block_on(self.library.verify_access_token(token)) {
            Ok(_) => 200,
            Err(_) => 401,
        };
        [
            status(self.embedded, "/t/acme/payments/1", false),
            status(self.standalone, "/t/acme/payments/1", false),
            status(self.standalone, "/_portcullis/auth/nginx", true),
            library,
        ]
    }

    fn wait_for(&self, token: &str, want: u16) {
        let start = Instant::now();
        loop {
            let got = self.answers(token);
            if got.iter().all(|s| *s == want) {
                eprintln!("all verifiers answered {want} after {:?}", start.elapsed());
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "embedded, standalone proxy, forward-auth, library: {got:?}, want {want}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[test]
fn a_revoked_signing_key_mints_nothing_any_verifier_accepts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, upstream) = (free_port(), echo_upstream());
    let routes = format!(
        r#"[upstreams.app]
url = "http://127.0.0.1:{upstream}"

[[routes]]
name = "payments"
path = "/t/{{tenant}}/payments/*"
upstream = "app"
accept = ["access_token"]
scopes_any = ["payments:read"]
tenant_from_path = "tenant"
"#
    );
    let embedded_toml = dir.path().join("embedded.toml");
    std::fs::write(
        &embedded_toml,
        format!("listen = \"127.0.0.1:{port}\"\n\n{routes}"),
    )
    .expect("write");
    let data_dir = dir.path().join("data");
    let server = Server::try_start(
        &data_dir,
        &[],
        &[
            (
                "PORTCULLIS_GATEWAY__CONFIG",
                embedded_toml.to_str().expect("utf-8"),
            ),
            ("PORTCULLIS_GATEWAY__AUDIENCE", "payments-api"),
        ],
    )
    .unwrap_or_else(|log| panic!("server did not start:\n{log}"));
    let seeded = common::seed_payments(&server);
    // Verifiers hold a service credential (revocation feed and API key checks only), never an
    // admin one: least privilege for machines too.
    let service = s(&server.cli_json(&[
        "admin-token",
        "create",
        "--tenant",
        "acme",
        "--name",
        "verifiers",
        "--role",
        "service",
    ])["token"]);

    // A standalone gateway following the server's discovery document and revocation feed.
    let standalone = free_port();
    let standalone_toml = dir.path().join("standalone.toml");
    std::fs::write(
        &standalone_toml,
        format!(
            r#"listen = "127.0.0.1:{standalone}"

[verifier]
audience = "payments-api"
[[verifier.issuers]]
issuer = "{url}"
discovery_url = "{url}/.well-known/oauth-authorization-server"
[verifier.revocation]
feed_url = "{url}"
token = "{service}"

[forward_auth]
enabled = true

{routes}"#,
            url = server.url
        ),
    )
    .expect("write");
    let mut gateway = common::command()
        .args(["gateway", "--config"])
        .arg(&standalone_toml)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn gateway");
    struct Kill<'a>(&'a mut std::process::Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _gateway = Kill(&mut gateway);

    // A service embedding the verify library.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let library = {
        let _enter = rt.enter();
        portcullis_verify::Verifier::new(portcullis_verify::VerifierConfig::new(
            portcullis_verify::IssuerConfig::new(
                server.url.clone(),
                portcullis_verify::KeySource::Discovery(format!(
                    "{}/.well-known/oauth-authorization-server",
                    server.url
                )),
            ),
            "payments-api",
            portcullis_verify::RevocationSource::Feed(portcullis_verify::FeedConfig::new(
                server.url.clone(),
                service,
            )),
        ))
        .expect("verifier")
    };
    let verifiers = Verifiers {
        embedded: port,
        standalone,
        library: &library,
        rt: &rt,
    };

    // A real token is accepted everywhere (and so cached everywhere).
    let issued =
        s(&access_token(&server, &seeded.client_id, &seeded.client_secret)["access_token"]);
    verifiers.wait_for(&issued, 200);
    let stolen = steal_signing_key(&rt, &data_dir, None);
    let before = forge(&server.url, &seeded.client_id, &stolen, now_s(), 600);
    assert_eq!(
        verifiers.answers(&before),
        [200; 4],
        "the key is good so far"
    );

    // The operator learns of the theft and revokes the key.
    let out = server.cli(&["keys", "revoke", &stolen.0]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    verifiers.wait_for(&issued, 401);
    verifiers.wait_for(&before, 401);
    // The thief mints fresh tokens, dated after the revocation, short and long.
    std::thread::sleep(Duration::from_millis(1_100));
    for lifetime in [600, 30 * 24 * 3600] {
        let after = forge(&server.url, &seeded.client_id, &stolen, now_s(), lifetime);
        assert_eq!(verifiers.answers(&after), [401; 4], "lifetime {lifetime}");
    }

    // The new key signs; a month-long token with it (a thief of the new key, or a bug) is
    // refused for its lifetime alone, while the server's own tokens are accepted.
    let fresh = s(&access_token(&server, &seeded.client_id, &seeded.client_secret)["access_token"]);
    verifiers.wait_for(&fresh, 200);
    let current = steal_signing_key(&rt, &data_dir, None);
    assert_ne!(current.0, stolen.0);
    let hour = forge(&server.url, &seeded.client_id, &current, now_s(), 3600);
    assert_eq!(
        verifiers.answers(&hour),
        [200; 4],
        "the hard maximum itself"
    );
    let month = forge(
        &server.url,
        &seeded.client_id,
        &current,
        now_s(),
        30 * 24 * 3600,
    );
    assert_eq!(
        verifiers.answers(&month),
        [401; 4],
        "longer than the hard maximum"
    );
}
