//! DPoP (RFC 9449) through the reverse proxy on 127.0.0.1: a DPoP-bound access token passes
//! only as `Authorization: DPoP` with a proof of its key for this very request; every refusal
//! answers with a `WWW-Authenticate: DPoP` challenge naming the accepted algorithms; server
//! nonces, when required, are accepted by every gateway sharing the nonce secret. Proofs are
//! made here with the `p256` crate (and, when installed, with oauth4webapi), never with
//! Portcullis's own JOSE code.

use crate::common;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use p256::ecdsa::signature::Signer as _;
use portcullis_core::secret::Secret;
use serde_json::{json, Value};

const ROUTES: &str = r#"
[upstreams.app]
url = "http://{up}"

[[routes]]
name = "orders"
path = "/orders/*"
upstream = "app"
accept = ["access_token"]
"#;

/// What the proxy sees as the request's origin: `http://` and the test client's `Host`.
const ORIGIN: &str = "http://api.test";

fn b64(b: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(b)
}

fn sha256_b64(b: &[u8]) -> String {
    b64(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b))
}

/// A client's DPoP key (P-256) and its RFC 7638 thumbprint.
struct ProofKey {
    key: p256::ecdsa::SigningKey,
    jwk: Value,
    jkt: String,
}

/// What a proof says; `None` fields are left out.
#[derive(Clone, Copy)]
struct Claims<'a> {
    htm: &'a str,
    htu: &'a str,
    /// The access token whose hash goes in `ath`.
    token: Option<&'a str>,
    nonce: Option<&'a str>,
    iat_offset: i64,
}

impl<'a> Claims<'a> {
    fn get(path: &str, token: &'a str) -> Self {
        // Leaked: test-only, a few short strings.
        let htu: &'static str = Box::leak(format!("{ORIGIN}{path}").into_boxed_str());
        Self {
            htm: "GET",
            htu,
            token: Some(token),
            nonce: None,
            iat_offset: 0,
        }
    }
}

impl ProofKey {
    fn new() -> Self {
        let key = loop {
            if let Ok(k) = p256::ecdsa::SigningKey::from_bytes(&rand::random::<[u8; 32]>().into()) {
                break k;
            }
        };
        let p = key.verifying_key().to_encoded_point(false);
        let (x, y) = (b64(p.x().expect("x")), b64(p.y().expect("y")));
        // RFC 7638: the required members, in lexicographic order, no whitespace.
        let jkt =
            sha256_b64(format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#).as_bytes());
        Self {
            key,
            jwk: json!({"kty": "EC", "crv": "P-256", "x": x, "y": y}),
            jkt,
        }
    }

    fn sign_with_header(&self, header: Value, c: Claims<'_>) -> String {
        let mut claims = json!({
            "jti": format!("jti-{}", rand::random::<u64>()),
            "htm": c.htm,
            "htu": c.htu,
            "iat": now() + c.iat_offset,
        });
        if let Some(t) = c.token {
            claims["ath"] = json!(sha256_b64(t.as_bytes()));
        }
        if let Some(n) = c.nonce {
            claims["nonce"] = json!(n);
        }
        let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
        let sig: p256::ecdsa::Signature = self.key.sign(input.as_bytes());
        format!("{input}.{}", b64(sig.to_bytes()))
    }

    fn proof(&self, c: Claims<'_>) -> String {
        self.sign_with_header(
            json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk}),
            c,
        )
    }
}

/// A DPoP request for `path` with `token` and, when given, `proof`.
async fn send(addr: std::net::SocketAddr, path: &str, auth: &str, proof: Option<&str>) -> Resp {
    let mut h = vec![("authorization", auth)];
    if let Some(p) = proof {
        h.push(("dpop", p));
    }
    raw(addr, "GET", path, &h).await
}

/// Every `WWW-Authenticate` value of a response.
fn challenges(r: &Resp) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("www-authenticate"))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// 401 with a `DPoP` challenge carrying `error` and the algorithms proofs may use.
#[track_caller]
fn refused_with(r: &Resp, error: &str, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.body);
    let dpop = challenges(r)
        .into_iter()
        .find(|c| c.starts_with("DPoP "))
        .unwrap_or_else(|| panic!("{what}: no DPoP challenge in {:?}", r.headers));
    assert!(
        dpop.contains(&format!("error=\"{error}\"")),
        "{what}: {dpop}"
    );
    assert!(
        dpop.contains("algs=\"ES256 ES384 RS256 PS256 EdDSA\""),
        "{what}: {dpop}"
    );
}

#[tokio::test]
async fn a_dpop_bound_token_passes_only_with_a_proof_of_its_key_for_this_request() {
    let ctx = start(ROUTES).await;
    let addr = ctx.gw.addr;
    let k = ProofKey::new();
    let token = ctx.issuer.token(json!({"cnf": {"jkt": k.jkt}}));
    let dpop = format!("DPoP {token}");

    // The right key, method, URI (the query is not part of `htu`) and token hash.
    let good = k.proof(Claims::get("/orders/1", &token));
    let r = send(addr, "/orders/1?page=2", &dpop, Some(&good)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.upstream_header("dpop").is_empty() && r.upstream_header("authorization").is_empty(),
        "the credential does not reach the upstream"
    );

    // The same proof again: a replay.
    let r = send(addr, "/orders/1", &dpop, Some(&good)).await;
    refused_with(&r, "invalid_dpop_proof", "replayed jti");

    // The bound token as a bearer token: both challenges, the DPoP one first to tell how.
    let r = send(addr, "/orders/1", &bearer(&token), None).await;
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(
        challenges(&r).iter().any(|c| c.starts_with("Bearer ")),
        "{:?}",
        r.headers
    );
    refused_with(&r, "invalid_token", "bound token as Bearer");

    let other_token = ctx.issuer.token(json!({}));
    let other_key = ProofKey::new();
    let mut private = k.jwk.clone();
    private["d"] = json!(b64(k.key.to_bytes()));
    let base = Claims::get("/orders/1", &token);
    let unsigned = |header: Value| {
        let claims = json!({"jti": "u-1", "htm": "GET", "htu": base.htu, "iat": now(),
                            "ath": sha256_b64(token.as_bytes())});
        format!(
            "{}.{}.c2ln",
            b64(header.to_string()),
            b64(claims.to_string())
        )
    };
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("no proof", None, "invalid_dpop_proof"),
        (
            "htm of another request",
            Some(k.proof(Claims {
                htm: "POST",
                ..base
            })),
            "invalid_dpop_proof",
        ),
        (
            "htu of another request",
            Some(k.proof(Claims::get("/orders/2", &token))),
            "invalid_dpop_proof",
        ),
        (
            "ath of another token",
            Some(k.proof(Claims::get("/orders/1", &other_token))),
            "invalid_dpop_proof",
        ),
        (
            "no ath",
            Some(k.proof(Claims {
                token: None,
                ..base
            })),
            "invalid_dpop_proof",
        ),
        (
            "iat far in the past",
            Some(k.proof(Claims {
                iat_offset: -3_600,
                ..base
            })),
            "invalid_dpop_proof",
        ),
        (
            "iat far in the future",
            Some(k.proof(Claims {
                iat_offset: 3_600,
                ..base
            })),
            "invalid_dpop_proof",
        ),
        (
            "signed by another key than cnf.jkt",
            Some(other_key.proof(base)),
            "invalid_token",
        ),
        (
            "alg none",
            Some(
                unsigned(json!({"typ": "dpop+jwt", "alg": "none", "jwk": k.jwk}))
                    .trim_end_matches("c2ln")
                    .to_owned(),
            ),
            "invalid_dpop_proof",
        ),
        (
            "HS256",
            Some(unsigned(
                json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": k.jwk}),
            )),
            "invalid_dpop_proof",
        ),
        (
            "a private key in jwk",
            Some(k.sign_with_header(
                json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private}),
                base,
            )),
            "invalid_dpop_proof",
        ),
        (
            "typ of a plain JWT",
            Some(k.sign_with_header(json!({"typ": "JWT", "alg": "ES256", "jwk": k.jwk}), base)),
            "invalid_dpop_proof",
        ),
    ];
    for (what, proof, error) in cases {
        let r = send(addr, "/orders/1", &dpop, proof.as_deref()).await;
        refused_with(&r, error, what);
        assert!(
            !r.body.contains("ath") && !r.body.contains("htu"),
            "{what}: {}",
            r.body
        );
    }

    // A fresh, correct proof still passes after all that.
    let r = send(
        addr,
        "/orders/1",
        &dpop,
        Some(&k.proof(Claims::get("/orders/1", &token))),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn nonces_required_by_one_gateway_are_accepted_by_every_gateway_sharing_the_secret() {
    let secret = |b: u8| Some(Secret::new(vec![b; 32]));
    let with = |s: Option<Secret<Vec<u8>>>| {
        move |cfg: &mut portcullis_verify::VerifierConfig| {
            cfg.dpop.require_nonce = true;
            cfg.dpop.nonce_secret = s;
        }
    };
    let up = echo_upstream().await;
    let a = start_tweaked(ROUTES, up, with(secret(1))).await;
    let b = start_tweaked(ROUTES, up, with(secret(1))).await;
    let c = start_tweaked(ROUTES, up, with(secret(2))).await;
    let k = ProofKey::new();
    // Every gateway's issuer signs with the same fixed key: one token is good at all three.
    let token = a.issuer.token(json!({"cnf": {"jkt": k.jkt}}));
    let dpop = format!("DPoP {token}");
    let base = Claims::get("/orders/1", &token);

    // No nonce: use_dpop_nonce, with the nonce to use.
    let r = send(a.gw.addr, "/orders/1", &dpop, Some(&k.proof(base))).await;
    refused_with(&r, "use_dpop_nonce", "no nonce");
    let nonce = r.header("dpop-nonce").expect("DPoP-Nonce").to_owned();
    assert_eq!(r.header("cache-control"), Some("no-store"));

    // A made-up nonce is stale.
    let made_up = k.proof(Claims {
        nonce: Some("not-a-nonce-we-issued"),
        ..base
    });
    let r = send(b.gw.addr, "/orders/1", &dpop, Some(&made_up)).await;
    refused_with(&r, "use_dpop_nonce", "made-up nonce");
    assert!(r.header("dpop-nonce").is_some());

    // A's nonce on B (same secret): accepted; on C (another secret): refused.
    let with_nonce = |k: &ProofKey| {
        k.proof(Claims {
            nonce: Some(&nonce),
            ..base
        })
    };
    let r = send(b.gw.addr, "/orders/1", &dpop, Some(&with_nonce(&k))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(a.gw.addr, "/orders/1", &dpop, Some(&with_nonce(&k))).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(c.gw.addr, "/orders/1", &dpop, Some(&with_nonce(&k))).await;
    refused_with(&r, "use_dpop_nonce", "nonce of another secret");
    // C's own nonce then works at C.
    let c_nonce = r.header("dpop-nonce").expect("DPoP-Nonce").to_owned();
    assert_ne!(c_nonce, nonce);
    let r = send(
        c.gw.addr,
        "/orders/1",
        &dpop,
        Some(&k.proof(Claims {
            nonce: Some(&c_nonce),
            ..base
        })),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Runs `crates/cli/tests/discovery/dpop_proof.mjs` (oauth4webapi) with `args`; `None` when node
/// or the library is not installed (CI installs it; elsewhere the check is skipped).
fn oauth4webapi(args: &[&str]) -> Option<Value> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../cli/tests/discovery");
    if !dir.join("node_modules/oauth4webapi").is_dir() {
        assert!(
            std::env::var("CI").is_err(),
            "oauth4webapi must be installed in CI (npm ci in crates/cli/tests/discovery)"
        );
        eprintln!("notice: oauth4webapi is not installed; skipping the independent DPoP client");
        return None;
    }
    let out = std::process::Command::new("node")
        .arg(dir.join("dpop_proof.mjs"))
        .arg(now().to_string())
        .args(args)
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "oauth4webapi failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("json"))
}

#[tokio::test]
async fn proofs_made_by_oauth4webapi_pass_the_gateway() {
    let url = format!("{ORIGIN}/orders/1");
    let Some(made) = oauth4webapi(&["new", &url, "GET"]) else {
        return;
    };
    let ctx = start(ROUTES).await;
    let jkt = made["jkt"].as_str().expect("jkt");
    let token = ctx.issuer.token(json!({"cnf": {"jkt": jkt}}));
    let key = made["key"].to_string();
    let proof = oauth4webapi(&["with", &key, &url, "GET", &token]).expect("proof");
    let dpop = format!("DPoP {token}");
    let r = send(ctx.gw.addr, "/orders/1", &dpop, proof["proof"].as_str()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    // The library's proof for another URI is refused.
    let elsewhere =
        oauth4webapi(&["with", &key, &format!("{ORIGIN}/orders/2"), "GET", &token]).expect("proof");
    let r = send(ctx.gw.addr, "/orders/1", &dpop, elsewhere["proof"].as_str()).await;
    refused_with(
        &r,
        "invalid_dpop_proof",
        "oauth4webapi proof for another URI",
    );
}

#[tokio::test]
async fn proofs_for_tokens_that_fail_record_nothing_so_they_cannot_fill_the_replay_record() {
    let up = echo_upstream().await;
    // Room for one proof id only: a proof recorded for a refused token would lock out the next.
    let ctx = start_tweaked(ROUTES, up, |cfg| cfg.dpop.replay_capacity = 1).await;
    let addr = ctx.gw.addr;
    let k = ProofKey::new();

    // Valid proofs (right key, request and `ath`) for tokens this gateway refuses: another
    // audience, an expired one, a made-up one.
    for (what, token) in [
        (
            "another audience",
            ctx.issuer
                .token(json!({"cnf": {"jkt": k.jkt}, "aud": "someone-else"})),
        ),
        (
            "expired",
            ctx.issuer
                .token(json!({"cnf": {"jkt": k.jkt}, "exp": now() - 600})),
        ),
        (
            "made up",
            "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln".to_owned(),
        ),
    ] {
        let proof = k.proof(Claims::get("/orders/1", &token));
        let r = send(addr, "/orders/1", &format!("DPoP {token}"), Some(&proof)).await;
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        assert!(
            challenges(&r).iter().any(|c| c.contains("invalid_token")),
            "{what}: {:?}",
            r.headers
        );
    }

    // The real client still gets through, and its proof is then recorded: a replay is refused.
    let token = ctx.issuer.token(json!({"cnf": {"jkt": k.jkt}}));
    let dpop = format!("DPoP {token}");
    let good = k.proof(Claims::get("/orders/1", &token));
    let r = send(addr, "/orders/1", &dpop, Some(&good)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = send(addr, "/orders/1", &dpop, Some(&good)).await;
    refused_with(
        &r,
        "invalid_dpop_proof",
        "replayed jti after a good request",
    );
}
