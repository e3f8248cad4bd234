//! Mutual TLS end to end (RFC 8705) against the real binary: `serve` with `[tls]` asking for
//! client certificates; a tenant's CA set and mTLS clients registered through the CLI; tokens
//! from curl and from a rustls client (reqwest) with test certificates made by rcgen; each bad
//! certificate refused; a certificate issued by an intermediate CA accepted when the client sends
//! the intermediate; the token's `cnf.x5t#S256` checked against openssl's own digest of the
//! certificate; and, without TLS, the certificate header of a TLS-terminating proxy honoured
//! only from a trusted address.

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use portcullis_core::confirmation::{Confirmation, Possession, Scheme, Thumbprint};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use serde_json::Value;

use crate::common::{claims, command, Server};

type Ca = CertifiedIssuer<'static, KeyPair>;

const SPIFFE: &str = "spiffe://acme.test/payments";

fn ca_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p
}

fn ca(name: &str) -> Ca {
    CertifiedIssuer::self_signed(ca_params(name), KeyPair::generate().expect("key")).expect("ca")
}

/// A client certificate for `uri` signed by `ca` (or self-signed), written as `<name>.pem`
/// (certificate), `<name>.key` and `<name>.both.pem` (both, for reqwest). Returns its DER.
fn client_cert(dir: &Path, name: &str, ca: Option<&Ca>, uri: &str) -> (Vec<u8>, KeyPair) {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(DnType::CommonName, name);
    p.subject_alt_names = vec![SanType::URI(uri.try_into().expect("uri"))];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let key = KeyPair::generate().expect("key");
    let cert = match ca {
        Some(ca) => p.signed_by(&key, ca).expect("sign"),
        None => p.self_signed(&key).expect("self-signed"),
    };
    std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).expect("write");
    std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).expect("write");
    std::fs::write(
        dir.join(format!("{name}.both.pem")),
        format!("{}{}", cert.pem(), key.serialize_pem()),
    )
    .expect("write");
    (cert.der().to_vec(), key)
}

/// The files of one run: the server's CA, certificate and key, the clients' CA, and client
/// certificates good and bad.
struct Pki {
    dir: PathBuf,
    good: Vec<u8>,
    self_signed: Vec<u8>,
}

impl Pki {
    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn new(dir: &Path) -> Self {
        let server_ca = ca("server ca");
        let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
        p.subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        let key = KeyPair::generate().expect("key");
        let server = p.signed_by(&key, &server_ca).expect("sign");
        std::fs::write(dir.join("server-ca.pem"), server_ca.pem()).expect("write");
        std::fs::write(dir.join("server.pem"), server.pem()).expect("write");
        std::fs::write(dir.join("server.key"), key.serialize_pem()).expect("write");
        let clients = ca("acme clients");
        let other = ca("someone else");
        std::fs::write(dir.join("clients-ca.pem"), clients.pem()).expect("write");
        let (good, _) = client_cert(dir, "good", Some(&clients), SPIFFE);
        // Issued by an intermediate of the clients' CA: `chained.pem` holds the certificate and
        // the intermediate (what curl sends), `leaf-only.pem` the certificate alone.
        let intermediate = CertifiedIssuer::signed_by(
            ca_params("acme issuing"),
            KeyPair::generate().expect("key"),
            &clients,
        )
        .expect("intermediate");
        client_cert(dir, "leaf-only", Some(&intermediate), SPIFFE);
        let leaf = std::fs::read_to_string(dir.join("leaf-only.pem")).expect("read");
        std::fs::write(
            dir.join("chained.pem"),
            format!("{leaf}{}", intermediate.pem()),
        )
        .expect("write");
        std::fs::copy(dir.join("leaf-only.key"), dir.join("chained.key")).expect("copy");
        client_cert(dir, "wrong-san", Some(&clients), "spiffe://acme.test/other");
        client_cert(dir, "stranger", Some(&other), SPIFFE);
        let (self_signed, key) = client_cert(dir, "self", None, "spiffe://acme.test/self");
        let raw = key.public_key_raw();
        let jwks = serde_json::json!({"keys": [{"kty": "EC", "crv": "P-256",
            "x": URL_SAFE_NO_PAD.encode(&raw[1..33]), "y": URL_SAFE_NO_PAD.encode(&raw[33..])}]});
        std::fs::write(dir.join("self.jwks"), jwks.to_string()).expect("write");
        client_cert(dir, "self-other", None, "spiffe://acme.test/self");
        Self {
            dir: dir.to_owned(),
            good,
            self_signed,
        }
    }
}

/// The admin CLI against an HTTPS server, trusting its CA.
fn cli(server: &Server, url: &str, pki: &Pki, args: &[&str]) -> Value {
    let out = command()
        .args(args)
        .args(["--url", url, "--output", "json", "--data-dir"])
        .arg(&server.data_dir)
        .env("SSL_CERT_FILE", pki.path("server-ca.pem"))
        .output()
        .expect("run cli");
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json output")
}

/// A client-credentials request with curl, presenting `cert` (a name in the PKI) or none.
/// Returns the status and the body.
fn curl_token(url: &str, pki: &Pki, client_id: &str, cert: Option<&str>) -> (u16, Value) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-w", "\n%{http_code}", "--cacert"])
        .arg(pki.path("server-ca.pem"));
    if let Some(name) = cert {
        cmd.arg("--cert")
            .arg(pki.path(&format!("{name}.pem")))
            .arg("--key")
            .arg(pki.path(&format!("{name}.key")));
    }
    let out = cmd
        .args([
            "-d",
            "grant_type=client_credentials",
            "-d",
            &format!("client_id={client_id}"),
            &format!("{url}/oauth2/token"),
        ])
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').expect("status line");
    (
        status.trim().parse().expect("status"),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

/// `openssl x509 -outform der | sha256`, base64url: the RFC 8705 thumbprint computed by a tool
/// that is not ours.
fn openssl_x5t(pem: &str) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in '{pem}' -outform der | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=\\n'"
        ))
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl failed");
    String::from_utf8(out.stdout).expect("utf-8")
}

fn x5t(jwt: &str) -> Option<String> {
    claims(jwt)["cnf"]["x5t#S256"].as_str().map(str::to_owned)
}

#[test]
fn mtls_clients_get_certificate_bound_tokens_and_bad_certificates_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!(
            "[tls]\ncert_file = '{}'\nkey_file = '{}'\nclient_certificates = \"request\"\n",
            pki.path("server.pem"),
            pki.path("server.key")
        ),
    )
    .expect("write");
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--config", &config.display().to_string()]);
    let url = server.url.replacen("http://", "https://", 1);

    cli(&server, &url, &pki, &["tenant", "create", "acme"]);
    cli(
        &server,
        &url,
        &pki,
        &[
            "resource-server",
            "create",
            "--tenant",
            "acme",
            "--audience",
            "payments-api",
            "--scopes",
            "payments:read",
        ],
    );
    let set = cli(
        &server,
        &url,
        &pki,
        &[
            "tenant",
            "ca-sets",
            "create",
            "acme",
            "--name",
            "clients",
            "--pem-file",
            &pki.path("clients-ca.pem"),
        ],
    );
    assert_eq!(set["certificates"], 1, "{set}");
    let listed = cli(&server, &url, &pki, &["tenant", "ca-sets", "list", "acme"]);
    assert_eq!(listed["items"][0]["name"], "clients", "{listed}");
    let tls = cli(
        &server,
        &url,
        &pki,
        &[
            "client",
            "create",
            "--tenant",
            "acme",
            "--name",
            "payments",
            "--auth-method",
            "tls_client_auth",
            "--tls-san-uri",
            SPIFFE,
            "--scope",
            "payments:read",
            "--audience",
            "payments-api",
        ],
    );
    assert_eq!(tls["tls_client_auth_san_uri"], SPIFFE, "{tls}");
    assert!(tls.get("client_secret").is_none(), "no secret: {tls}");
    let tls_id = tls["client_id"].as_str().expect("id").to_owned();
    let selfie = cli(
        &server,
        &url,
        &pki,
        &[
            "client",
            "create",
            "--tenant",
            "acme",
            "--name",
            "self",
            "--auth-method",
            "self_signed_tls_client_auth",
            "--jwks-file",
            &pki.path("self.jwks"),
            "--scope",
            "payments:read",
            "--audience",
            "payments-api",
        ],
    );
    let self_id = selfie["client_id"].as_str().expect("id").to_owned();

    // Discovery says so: the one listener serves mTLS, so there are no aliases.
    let http = reqwest::blocking::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(
            std::fs::read(pki.path("server-ca.pem"))
                .expect("read")
                .as_slice(),
        )
        .expect("ca")])
        .build()
        .expect("client");
    let meta: Value = http
        .get(format!("{url}/.well-known/oauth-authorization-server"))
        .send()
        .expect("discovery")
        .json()
        .expect("json");
    assert_eq!(meta["tls_client_certificate_bound_access_tokens"], true);
    assert!(meta["token_endpoint_auth_methods_supported"]
        .as_array()
        .is_some_and(|a| a.contains(&"tls_client_auth".into())
            && a.contains(&"self_signed_tls_client_auth".into())));
    assert!(meta.get("mtls_endpoint_aliases").is_none());

    // curl with the right certificate: a token bound to it, by openssl's own digest.
    let (status, body) = curl_token(&url, &pki, &tls_id, Some("good"));
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().expect("token").to_owned();
    assert_eq!(body["token_type"], "Bearer");
    let bound = x5t(&token).expect("cnf.x5t#S256");
    assert_eq!(bound, openssl_x5t(&pki.path("good.pem")));
    assert_eq!(bound, Thumbprint::sha256_of(&pki.good).as_str());
    // The rule the verify library and the gateway apply: this certificate passes, another
    // certificate or none does not.
    let cnf: Confirmation = serde_json::from_value(claims(&token)["cnf"].clone()).expect("cnf");
    let with = |cert: Option<&Thumbprint>| {
        cnf.check(&Possession {
            scheme: Scheme::Bearer,
            dpop_key: None,
            client_certificate: cert,
        })
    };
    assert!(with(Some(&Thumbprint::sha256_of(&pki.good))).is_ok());
    assert!(with(Some(&Thumbprint::sha256_of(&pki.self_signed))).is_err());
    assert!(with(None).is_err());

    // A certificate from an intermediate CA, sent with the intermediate: the chain is built to
    // the tenant's CA.
    let (status, body) = curl_token(&url, &pki, &tls_id, Some("chained"));
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().expect("token");
    assert_eq!(
        x5t(token),
        Some(openssl_x5t(&pki.path("leaf-only.pem"))),
        "bound to the end-entity certificate"
    );

    // Each bad certificate is refused alike: another CA, the right CA with another SAN, no
    // certificate at all, an intermediate's certificate sent without the intermediate.
    for cert in [Some("stranger"), Some("wrong-san"), None, Some("leaf-only")] {
        let (status, body) = curl_token(&url, &pki, &tls_id, cert);
        assert_eq!(status, 401, "{cert:?}: {body}");
        assert_eq!(body["error"], "invalid_client", "{cert:?}: {body}");
    }

    // A rustls client (reqwest) with the self-signed certificate whose key is registered.
    let with_identity = |name: &str| {
        reqwest::blocking::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(
                std::fs::read(pki.path("server-ca.pem"))
                    .expect("read")
                    .as_slice(),
            )
            .expect("ca")])
            .identity(
                reqwest::Identity::from_pem(
                    &std::fs::read(pki.path(&format!("{name}.both.pem"))).expect("read"),
                )
                .expect("identity"),
            )
            .build()
            .expect("client")
    };
    let r = with_identity("self")
        .post(format!("{url}/oauth2/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("grant_type=client_credentials&client_id={self_id}"))
        .send()
        .expect("token");
    assert_eq!(r.status(), 200);
    let body: Value = r.json().expect("json");
    let token = body["access_token"].as_str().expect("token");
    assert_eq!(
        x5t(token).as_deref(),
        Some(Thumbprint::sha256_of(&pki.self_signed).as_str())
    );
    // A self-signed certificate whose key is not in the JWKS; the tls_client_auth client's
    // good certificate presented for the self-signed client.
    for (name, id) in [
        ("self-other", &self_id),
        ("good", &self_id),
        ("self", &tls_id),
    ] {
        let r = with_identity(name)
            .post(format!("{url}/oauth2/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("grant_type=client_credentials&client_id={id}"))
            .send()
            .expect("token");
        assert_eq!(r.status(), 401, "{name} for {id}");
    }

    // Removing the CA set: the good certificate no longer authenticates.
    let set_id = set["id"].as_str().expect("id");
    let out = command()
        .args([
            "tenant",
            "ca-sets",
            "delete",
            "acme",
            set_id,
            "--url",
            &url,
            "--data-dir",
        ])
        .arg(&server.data_dir)
        .env("SSL_CERT_FILE", pki.path("server-ca.pem"))
        .output()
        .expect("run cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, _) = curl_token(&url, &pki, &tls_id, Some("good"));
    assert_eq!(status, 401);
}

/// Without TLS on `serve`, the certificate a TLS-terminating proxy forwards in
/// `http.client_certificate_header` authenticates an mTLS client only when the request comes
/// from an address in `http.trusted_proxies`.
#[test]
fn a_forwarded_certificate_counts_only_from_a_trusted_proxy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = Pki::new(dir.path());
    let good_pem = std::fs::read_to_string(pki.path("good.pem")).expect("read");
    let escaped: String = good_pem
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    for (trusted, want) in [("127.0.0.1", 200), ("10.0.0.0/8", 401)] {
        let config = dir.path().join(format!("{want}.toml"));
        std::fs::write(
            &config,
            format!(
                "[http]\ntrusted_proxies = [\"{trusted}\"]\nclient_certificate_header = \"x-ssl-client-cert\"\n"
            ),
        )
        .expect("write");
        let data = dir.path().join(format!("data-{want}"));
        let server = Server::start(&data, &["--config", &config.display().to_string()]);
        server.cli_json(&["tenant", "create", "acme"]);
        server.cli_json(&[
            "resource-server",
            "create",
            "--tenant",
            "acme",
            "--audience",
            "payments-api",
            "--scopes",
            "payments:read",
        ]);
        server.cli_json(&[
            "tenant",
            "ca-sets",
            "create",
            "acme",
            "--name",
            "clients",
            "--pem-file",
            &pki.path("clients-ca.pem"),
        ]);
        let client = server.cli_json(&[
            "client",
            "create",
            "--tenant",
            "acme",
            "--name",
            "payments",
            "--auth-method",
            "tls_client_auth",
            "--tls-san-uri",
            SPIFFE,
            "--scope",
            "payments:read",
            "--audience",
            "payments-api",
        ]);
        let id = client["client_id"].as_str().expect("id");
        let r = reqwest::blocking::Client::new()
            .post(format!("{}/oauth2/token", server.url))
            .header("x-ssl-client-cert", &escaped)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("grant_type=client_credentials&client_id={id}"))
            .send()
            .expect("token");
        assert_eq!(r.status().as_u16(), want, "trusted proxies {trusted}");
        if want == 200 {
            let body: Value = r.json().expect("json");
            let token = body["access_token"].as_str().expect("token");
            assert_eq!(
                x5t(token).as_deref(),
                Some(Thumbprint::sha256_of(&pki.good).as_str())
            );
        }
    }
}
