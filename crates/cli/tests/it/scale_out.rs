//! The operating model the README advertises, end to end: two `portcullis serve` nodes on one
//! PostgreSQL schema, one explicit issuer (the proxy's URL), `http.trusted_proxies` naming the
//! proxy, behind a real nginx balancing round-robin (issue 15, "Done when").
//!
//! Sources are real peer addresses, not headers the test writes: the attacker's client binds
//! 127.0.0.2 and the real client 127.0.0.3 (all of 127.0.0.0/8 is loopback), so nginx sees two
//! peers and appends each one's address to `X-Forwarded-For` with the stock
//! `$proxy_add_x_forwarded_for`, exactly as an edge proxy in front of clients on the internet
//! does. The nodes trust 127.0.0.1 (nginx) alone. The attacker also sends its own
//! `X-Forwarded-For` naming the real client's address, which the nodes must not believe.
//!
//! Checked: both nodes advertise the same issuer, a token issued by one is active at the other's
//! introspection; many failed authentications naming the real client's id from the attacker's
//! source get the attacker throttled on both nodes, never the real client; and a node on
//! PostgreSQL without `oauth.issuer` refuses to start, saying why.
//!
//! Skipped with a notice when `PORTCULLIS_TEST_DATABASE_URL` is unset or nginx is missing;
//! under CI both are failures. Every listener is on a 127.0.0.1 ephemeral port.

use crate::common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use common::proxy_process::{free_port, ProxyProcess};
use common::{claims, introspect, seed_payments, serve_fails, PgSchema, Server};
use serde_json::Value;

const ATTACKER: [u8; 4] = [127, 0, 0, 2];
const CLIENT: [u8; 4] = [127, 0, 0, 3];

/// An HTTP client whose connections come from `source`.
fn client_from(source: [u8; 4]) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .local_address(IpAddr::from(source))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// nginx balancing round-robin over the nodes, telling the test which node answered.
fn balancer(port: u16, nodes: &[&Server]) -> String {
    let servers: String = nodes
        .iter()
        .map(|n| format!("    server {};\n", n.url.trim_start_matches("http://")))
        .collect();
    format!(
        r#"  upstream portcullis {{
{servers}  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://portcullis;
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      add_header X-Test-Node $upstream_addr always;
    }}
  }}"#
    )
}

/// A client-credentials request through `url`: (status, answering node, body).
fn token_request(
    http: &reqwest::blocking::Client,
    url: &str,
    id: &str,
    secret: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Value) {
    let mut req = http
        .post(format!("{url}/oauth2/token"))
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=payments%3Aread");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().expect("token request");
    let status = r.status().as_u16();
    let node = r
        .headers()
        .get("x-test-node")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    if status == 429 {
        assert!(r.headers().contains_key("retry-after"), "429 says when");
    }
    (status, node, r.json().unwrap_or(Value::Null))
}

#[test]
fn two_postgres_nodes_behind_nginx_share_one_issuer_and_no_source_can_lock_a_client_out() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(schema) = rt.block_on(PgSchema::create("two nodes behind nginx")) else {
        return;
    };
    let db = ("PORTCULLIS_DATABASE_URL", schema.database_url.as_str());
    let dir = tempfile::tempdir().expect("tempdir");

    // Without an explicit issuer a PostgreSQL node would present its own address: refused.
    let lonely = dir.path().join("lonely").display().to_string();
    let refused = serve_fails(&["--listen", "127.0.0.1:0", "--data-dir", &lonely], &[db]);
    assert!(
        refused.contains("oauth.issuer") && refused.contains("required on PostgreSQL"),
        "{refused}"
    );

    // One configuration for both nodes: the public URL is the proxy's, and only it is trusted.
    let port = free_port();
    let issuer = format!("http://127.0.0.1:{port}");
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!("[http]\ntrusted_proxies = [\"127.0.0.1/32\"]\n\n[oauth]\nissuer = \"{issuer}\"\n"),
    )
    .expect("write config");
    let config = config.display().to_string();
    let a = Server::try_start(&dir.path().join("a"), &["--config", &config], &[db])
        .unwrap_or_else(|log| panic!("node A: {log}"));
    let kek = a.data_dir.join("kek").display().to_string();
    let b = Server::try_start(
        &dir.path().join("b"),
        &["--config", &config],
        &[db, ("PORTCULLIS_KEK_FILE", &kek)],
    )
    .unwrap_or_else(|log| panic!("node B: {log}"));
    let Some(nginx) = ProxyProcess::nginx(port, |_, port| balancer(port, &[&a, &b])) else {
        rt.block_on(schema.drop_schema());
        return;
    };
    let proxied = nginx.url();
    let nodes: BTreeSet<String> = [&a, &b]
        .iter()
        .map(|n| n.url.trim_start_matches("http://").to_owned())
        .collect();

    // One issuer, whichever node is asked, directly or through the proxy.
    let http = common::http();
    for url in [&a.url, &b.url, &proxied, &proxied] {
        let meta: Value = http
            .get(format!("{url}/.well-known/oauth-authorization-server"))
            .send()
            .expect("metadata")
            .json()
            .expect("json");
        assert_eq!(meta["issuer"], issuer.as_str(), "{url}: {meta}");
        assert_eq!(
            meta["token_endpoint"],
            format!("{issuer}/oauth2/token").as_str()
        );
    }

    let seeded = seed_payments(&a);
    let rs: Value = a.cli_json(&["resource-server", "list", "--tenant", "acme"]);
    let rs_id = rs[0]["id"].as_str().expect("resource server id").to_owned();
    let rs_secret = a.cli_json(&[
        "resource-server",
        "rotate-secret",
        "--tenant",
        "acme",
        &rs_id,
    ]);
    let rs_secret = rs_secret["client_secret"]
        .as_str()
        .expect("secret")
        .to_owned();

    // The attacker knows the client id (it is in every token) and fails with it, over and over,
    // from its own address, claiming the real client's address in a header of its own.
    let attacker = client_from(ATTACKER);
    let spoof = [("x-forwarded-for", "127.0.0.3")];
    let mut throttled_on = BTreeSet::new();
    for _ in 0..30 {
        let (status, node, body) =
            token_request(&attacker, &proxied, &seeded.client_id, "wrong", &spoof);
        assert!(status == 401 || status == 429, "{status} {body}");
        assert_eq!(body["error"], "invalid_client", "{body}");
        if status == 429 {
            throttled_on.insert(node);
        }
    }
    assert_eq!(
        throttled_on, nodes,
        "the attacker's source is throttled on both nodes (failures are counted per source \
         behind the trusted proxy)"
    );
    // Its own source is refused for that id even with the right secret: the throttle answers
    // before any check.
    let (status, _, _) = token_request(
        &attacker,
        &proxied,
        &seeded.client_id,
        &seeded.client_secret,
        &[],
    );
    assert_eq!(status, 429);

    // The real client, from its own address, gets tokens through both nodes all the while.
    let real = client_from(CLIENT);
    let mut tokens = Vec::new();
    for _ in 0..4 {
        let (status, node, body) = token_request(
            &real,
            &proxied,
            &seeded.client_id,
            &seeded.client_secret,
            &[],
        );
        assert_eq!(status, 200, "the real client is never locked out: {body}");
        let token = body["access_token"].as_str().expect("token").to_owned();
        assert_eq!(claims(&token)["iss"], issuer.as_str());
        tokens.push((node, token));
    }
    let issuing: BTreeSet<String> = tokens.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(issuing, nodes, "round-robin: both nodes issued");

    // A token issued by one node is active at the other node's introspection.
    for (issued_by, token) in &tokens {
        let other = [&a, &b]
            .into_iter()
            .find(|n| !n.url.ends_with(issued_by.as_str()))
            .expect("the other node");
        let r = introspect(&other.url, (&rs_id, &rs_secret), token);
        assert_eq!(
            r["active"], true,
            "issued by {issued_by}, asked {}: {r}",
            other.url
        );
        assert_eq!(r["iss"], issuer.as_str(), "{r}");
        assert_eq!(r["client_id"], seeded.client_id.as_str(), "{r}");
    }

    drop(nginx);
    drop((a, b));
    rt.block_on(schema.drop_schema());
}

/// A browser's cookies kept by hand (the blocking client has no cookie store here): enough for
/// the sign-in pages' pre-session, CSRF and session cookies.
#[derive(Default)]
struct Jar(std::collections::BTreeMap<String, String>);

impl Jar {
    fn keep(&mut self, r: &reqwest::blocking::Response) {
        for v in r.headers().get_all("set-cookie") {
            let Some((name, rest)) = v.to_str().ok().and_then(|v| v.split_once('=')) else {
                continue;
            };
            let value = rest.split(';').next().unwrap_or_default().to_owned();
            self.0.insert(name.to_owned(), value);
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// An `application/x-www-form-urlencoded` body.
fn form_body<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())))
        .finish()
}

/// The hidden fields of a page's form, entities of values decoded.
fn hidden_fields(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .filter_map(|part| {
            let (name, rest) = part.split_once('"')?;
            let (value, _) = rest.strip_prefix(" value=\"")?.split_once('"')?;
            let value = value
                .replace("&#34;", "\"")
                .replace("&quot;", "\"")
                .replace("&#39;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&");
            Some((name.to_owned(), value))
        })
        .collect()
}

/// Codes live in the store (issue 16 item 11): a user signs in and consents on node A, and the
/// app redeems the code at node B's token endpoint over HTTP; the same code presented again at
/// node A is a replay, refused. Two nodes on one PostgreSQL schema, no proxy needed.
#[test]
fn a_code_issued_by_one_node_is_redeemed_on_the_other_once() {
    const VERIFIER: &str = "browser-test-verifier-0123456789abcdefghijklmnopqrstuvwxyz";
    const CHALLENGE: &str = "WOE_wViglE6hbmmOUa5CGKCpMXaWyuM7JideCytp9yI";
    const REDIRECT: &str = "http://127.0.0.1/callback";
    const PASSWORD: &str = "velvet orbit lantern quiz 42";
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(schema) = rt.block_on(PgSchema::create("a code redeemed on another node")) else {
        return;
    };
    let db = ("PORTCULLIS_DATABASE_URL", schema.database_url.as_str());
    let dir = tempfile::tempdir().expect("tempdir");
    let issuer = format!("http://127.0.0.1:{}", free_port());
    let config = dir.path().join("portcullis.toml");
    std::fs::write(&config, format!("[oauth]\nissuer = \"{issuer}\"\n")).expect("config");
    let config = config.display().to_string();
    let a = Server::try_start(&dir.path().join("a"), &["--config", &config], &[db])
        .unwrap_or_else(|log| panic!("node A: {log}"));
    let kek = a.data_dir.join("kek").display().to_string();
    let b = Server::try_start(
        &dir.path().join("b"),
        &["--config", &config],
        &[db, ("PORTCULLIS_KEK_FILE", &kek)],
    )
    .unwrap_or_else(|log| panic!("node B: {log}"));

    a.cli_json(&["tenant", "create", "shop", "--name", "Shop"]);
    let pw = dir.path().join("pw");
    std::fs::write(&pw, PASSWORD).expect("password file");
    a.cli_json(&[
        "users",
        "create",
        "--tenant",
        "shop",
        "--username",
        "alice",
        "--email",
        "alice@example.com",
        "--password-file",
        pw.to_str().expect("utf-8"),
    ]);
    let client = a.cli_json(&[
        "client",
        "create",
        "--tenant",
        "shop",
        "--name",
        "App",
        "--application-type",
        "native",
        "--redirect-uri",
        REDIRECT,
        "--scope",
        "openid",
    ]);
    let client_id = client["client_id"].as_str().expect("client_id").to_owned();

    // The browser, on node A: authorize, sign in, consent.
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let mut jar = Jar::default();
    let authorize = format!(
        "{}/oauth2/authorize?response_type=code&client_id={client_id}&redirect_uri={}\
         &scope=openid&state=st-1&nonce=n-1&code_challenge={CHALLENGE}&code_challenge_method=S256",
        a.url,
        form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let r = http.get(&authorize).send().expect("authorize");
    jar.keep(&r);
    assert_eq!(r.status().as_u16(), 200);
    let mut fields = hidden_fields(&r.text().expect("page"));
    fields.push(("login".into(), "alice".into()));
    fields.push(("password".into(), PASSWORD.into()));
    let r = http
        .post(format!("{}/oauth2/authorize/sign-in", a.url))
        .header("cookie", jar.header())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&fields))
        .send()
        .expect("sign in");
    jar.keep(&r);
    assert_eq!(r.status().as_u16(), 200);
    let mut fields = hidden_fields(&r.text().expect("consent page"));
    fields.push(("decision".into(), "allow".into()));
    let r = http
        .post(format!("{}/oauth2/authorize/consent", a.url))
        .header("cookie", jar.header())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(&fields))
        .send()
        .expect("consent");
    assert_eq!(r.status().as_u16(), 303);
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .expect("location")
        .to_owned();
    let code = form_urlencoded::parse(location.split_once('?').expect("query").1.as_bytes())
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");

    // The app, at node B.
    let redeem = |node: &Server| {
        http.post(format!("{}/oauth2/token", node.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form_body(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("client_id", client_id.as_str()),
                ("code_verifier", VERIFIER),
            ]))
            .send()
            .expect("token")
    };
    let r = redeem(&b);
    assert_eq!(r.status().as_u16(), 200);
    let tokens: Value = r.json().expect("json");
    let id = claims(tokens["id_token"].as_str().expect("id token"));
    assert_eq!(id["aud"], client_id.as_str());
    assert_eq!(id["iss"], issuer.as_str());
    // Back at node A, the same code is a replay.
    let r = redeem(&a);
    assert_eq!(r.status().as_u16(), 400);
    let err: Value = r.json().expect("json");
    assert_eq!(err["error"], "invalid_grant");

    drop((a, b));
    rt.block_on(schema.drop_schema());
}

/// A DPoP key (P-256) made with rcgen, proofs signed with jsonwebtoken: neither is Portcullis's
/// JOSE code.
struct DpopKey {
    signing: jsonwebtoken::EncodingKey,
    jwk: Value,
}

impl DpopKey {
    fn new() -> Self {
        use base64::Engine as _;
        let pair = rcgen::KeyPair::generate().expect("P-256 key");
        let raw = pair.public_key_raw();
        assert_eq!((raw.len(), raw[0]), (65, 4), "an uncompressed P-256 point");
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        Self {
            signing: jsonwebtoken::EncodingKey::from_ec_der(&pair.serialize_der()),
            jwk: serde_json::json!({"kty": "EC", "crv": "P-256",
                                    "x": b64(&raw[1..33]), "y": b64(&raw[33..])}),
        }
    }

    /// A proof for `POST htu`, now, with `jti` and (when given) `nonce`.
    fn proof(&self, htu: &str, jti: &str, nonce: Option<&str>) -> String {
        use base64::Engine as _;
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let iat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let mut claims = serde_json::json!({"jti": jti, "htm": "POST", "htu": htu, "iat": iat});
        if let Some(n) = nonce {
            claims["nonce"] = serde_json::json!(n);
        }
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk});
        let input = format!("{}.{}", b64(&header), b64(&claims));
        let sig = jsonwebtoken::crypto::sign(
            input.as_bytes(),
            &self.signing,
            jsonwebtoken::Algorithm::ES256,
        )
        .expect("sign");
        format!("{input}.{sig}")
    }
}

/// RFC 9449 across nodes on one PostgreSQL schema, with `oauth.dpop_require_nonce`: the nonce
/// node A hands out is accepted by node B (both derive it from the shared KEK, no shared state),
/// and a proof used on B is refused as a replay on A (its `jti` is recorded in the database).
#[test]
fn dpop_nonces_and_proof_ids_hold_across_two_postgres_nodes() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(schema) = rt.block_on(PgSchema::create("DPoP across two nodes")) else {
        return;
    };
    let db = ("PORTCULLIS_DATABASE_URL", schema.database_url.as_str());
    let dir = tempfile::tempdir().expect("tempdir");
    let issuer = format!("http://127.0.0.1:{}", free_port());
    let config = dir.path().join("portcullis.toml");
    std::fs::write(
        &config,
        format!("[oauth]\nissuer = \"{issuer}\"\ndpop_require_nonce = true\n"),
    )
    .expect("config");
    let config = config.display().to_string();
    let a = Server::try_start(&dir.path().join("a"), &["--config", &config], &[db])
        .unwrap_or_else(|log| panic!("node A: {log}"));
    let kek = a.data_dir.join("kek").display().to_string();
    let b = Server::try_start(
        &dir.path().join("b"),
        &["--config", &config],
        &[db, ("PORTCULLIS_KEK_FILE", &kek)],
    )
    .unwrap_or_else(|log| panic!("node B: {log}"));
    let seeded = seed_payments(&a);
    let http = common::http();
    // The proof names the token endpoint under the issuer, whichever node it is sent to.
    let htu = format!("{issuer}/oauth2/token");
    let key = DpopKey::new();
    let token = |node: &Server, proof: &str| {
        let r = http
            .post(format!("{}/oauth2/token", node.url))
            .basic_auth(&seeded.client_id, Some(&seeded.client_secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("dpop", proof)
            .body("grant_type=client_credentials&scope=payments%3Aread")
            .send()
            .expect("token request");
        let status = r.status().as_u16();
        let nonce = r
            .headers()
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        (status, nonce, r.json::<Value>().unwrap_or(Value::Null))
    };

    // No nonce at A: use_dpop_nonce, with the nonce to use.
    let (st, nonce, v) = token(&a, &key.proof(&htu, "two-nodes-1", None));
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("use_dpop_nonce")),
        "{v}"
    );
    let nonce = nonce.expect("DPoP-Nonce from node A");

    // A's nonce at B: a token bound to the key.
    let used_on_b = key.proof(&htu, "two-nodes-2", Some(&nonce));
    let (st, _, v) = token(&b, &used_on_b);
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["token_type"], "DPoP");
    let bound = claims(v["access_token"].as_str().expect("access token"));
    assert!(bound["cnf"]["jkt"].is_string(), "{bound}");

    // The proof B accepted, replayed at A: refused.
    let (st, _, v) = token(&a, &used_on_b);
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("invalid_dpop_proof")),
        "{v}"
    );
    // A nonce no node issued: use_dpop_nonce again, on either node.
    let (st, _, v) = token(&b, &key.proof(&htu, "two-nodes-3", Some("made-up")));
    assert_eq!(
        (st, v["error"].as_str()),
        (400, Some("use_dpop_nonce")),
        "{v}"
    );
    // A fresh proof with the same nonce at A: accepted.
    let (st, _, v) = token(&a, &key.proof(&htu, "two-nodes-4", Some(&nonce)));
    assert_eq!(st, 200, "{v}");

    drop((a, b));
    rt.block_on(schema.drop_schema());
}
