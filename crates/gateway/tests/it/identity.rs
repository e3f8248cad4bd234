//! The signed identity JWT: checked with `jsonwebtoken` (not the gateway's signer) against the
//! JWKS the gateway publishes, for Ed25519 and P-256 keys; audience per upstream, issuer, `typ`,
//! claims, lifetime bounds, opting an upstream out, and a client-sent identity header.

use crate::common;

use common::*;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use portcullis_gateway::GatewayConfig;
use serde_json::Value;

const GW_ISSUER: &str = "https://gateway.test.example";
// Literals, not the crate's constants: the documented contract is what is checked.
const JWKS_PATH: &str = "/_portcullis/identity/jwks.json";
const TYP: &str = "portcullis-identity+jwt";

fn key_pem(alg: &'static rcgen::SignatureAlgorithm) -> String {
    rcgen::KeyPair::generate_for(alg)
        .expect("key")
        .serialize_pem()
}

fn routes(key_file: &std::path::Path, extra: &str) -> String {
    format!(
        r#"
[identity_jwt]
signing_key_file = '{}'
issuer = "{GW_ISSUER}"
{extra}

[upstreams.app]
url = "http://{{up}}"
[upstreams.billing]
url = "http://{{up}}"
identity_audience = "billing-api"
[upstreams.quiet]
url = "http://{{up}}"
identity_jwt = false

[[routes]]
name = "api"
path = "/api/*"
upstream = "app"
accept = ["access_token", "api_key"]

[[routes]]
name = "billing"
path = "/billing/*"
upstream = "billing"
accept = ["access_token"]

[[routes]]
name = "quiet"
path = "/quiet/*"
upstream = "quiet"
accept = ["access_token"]

[[routes]]
name = "open"
path = "/open/*"
upstream = "app"
public = true
"#,
        key_file.display()
    )
}

fn decode(token: &str, jwks: &str, alg: Algorithm, aud: &str) -> Result<Value, String> {
    let set: JwkSet = serde_json::from_str(jwks).map_err(|e| e.to_string())?;
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let jwk = set
        .find(header.kid.as_deref().ok_or("no kid")?)
        .ok_or("kid not in the JWKS")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut v = Validation::new(alg);
    v.set_audience(&[aud]);
    v.set_issuer(&[GW_ISSUER]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    v.leeway = 0;
    jsonwebtoken::decode::<Value>(token, &key, &v)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

async fn check_key(alg: &'static rcgen::SignatureAlgorithm, jose: Algorithm) {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("identity.pem");
    std::fs::write(&key_file, key_pem(alg)).expect("write");
    let ctx = start(&routes(&key_file, "")).await;
    let jwks = raw(ctx.gw.addr, "GET", JWKS_PATH, &[]).await;
    assert_eq!(jwks.status, 200);
    assert_eq!(
        jwks.header("content-type"),
        Some("application/jwk-set+json")
    );
    let admin = raw(ctx.gw.admin_addr.expect("admin"), "GET", JWKS_PATH, &[]).await;
    assert_eq!(
        admin.body, jwks.body,
        "the admin listener publishes the same set"
    );
    assert!(
        !jwks.body.contains("\"d\""),
        "no private part: {}",
        jwks.body
    );

    let token = ctx.issuer.token(serde_json::json!({}));
    let auth = bearer(&token);
    let r = raw(
        ctx.gw.addr,
        "GET",
        "/api/x",
        &[
            ("authorization", &auth),
            ("x-portcullis-identity", "forged"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    let got = r.upstream_header("x-portcullis-identity");
    assert_eq!(got.len(), 1, "exactly the gateway's: {got:?}");
    let jwt = &got[0];
    let header = jsonwebtoken::decode_header(jwt).expect("header");
    assert_eq!(header.typ.as_deref(), Some(TYP));
    assert_eq!(header.alg, jose);
    let claims = decode(jwt, &jwks.body, jose, "app").expect("verifies with the published key");
    assert_eq!(claims["iss"], GW_ISSUER);
    assert_eq!(claims["aud"], "app");
    assert_eq!(claims["sub"], "user-1");
    assert_eq!(claims["client_id"], "cl_app");
    assert_eq!(claims["tenant"], "acme");
    assert_eq!(claims["scope"], "orders:read");
    assert_eq!(claims["credential_kind"], "access_token");
    assert_eq!(
        claims["credential_id"].as_str(),
        r.upstream_header("x-portcullis-credential-id")
            .first()
            .map(String::as_str)
    );
    assert_eq!(
        claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
        30,
        "default lifetime"
    );
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(claims.get("cnf").is_none(), "no client certificate here");

    // Wrong audience, another key: refused.
    assert!(decode(jwt, &jwks.body, jose, "billing-api").is_err());
    let other_dir = tempfile::tempdir().expect("tempdir");
    let other_file = other_dir.path().join("other.pem");
    std::fs::write(&other_file, key_pem(alg)).expect("write");
    let other = start(&routes(&other_file, "")).await;
    let other_jwks = raw(other.gw.addr, "GET", JWKS_PATH, &[]).await.body;
    assert_ne!(other_jwks, jwks.body);
    // Same kid lookup fails; also force the other key under this token's kid.
    assert!(decode(jwt, &other_jwks, jose, "app").is_err());
    let kid = header.kid.clone().expect("kid");
    let mut forced: Value = serde_json::from_str(&other_jwks).expect("json");
    forced["keys"][0]["kid"] = Value::from(kid);
    assert!(decode(jwt, &forced.to_string(), jose, "app").is_err());

    // Audience override, an upstream opted out, a public route, an API key.
    let r = raw(
        ctx.gw.addr,
        "GET",
        "/billing/x",
        &[("authorization", &auth)],
    )
    .await;
    let jwt = r.upstream_header("x-portcullis-identity");
    decode(&jwt[0], &jwks.body, jose, "billing-api").expect("audience override");
    let r = raw(ctx.gw.addr, "GET", "/quiet/x", &[("authorization", &auth)]).await;
    assert_eq!(r.status, 200);
    assert!(r.upstream_header("x-portcullis-identity").is_empty());
    let r = raw(
        ctx.gw.addr,
        "GET",
        "/open/x",
        &[("x-portcullis-identity", "forged")],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.upstream_header("x-portcullis-identity").is_empty());
    let (key, key_id) = ctx.keys.issue("acme", &["orders:read"]);
    let r = raw(ctx.gw.addr, "GET", "/api/x", &[("x-api-key", &key)]).await;
    let claims = decode(
        &r.upstream_header("x-portcullis-identity")[0],
        &jwks.body,
        jose,
        "app",
    )
    .expect("api key identity");
    assert_eq!(claims["credential_kind"], "api_key");
    assert_eq!(claims["credential_id"], key_id.as_str());
    assert!(claims.get("client_id").is_none());
}

#[tokio::test]
async fn ed25519_identity_jwt_verifies_against_the_published_jwks() {
    check_key(&rcgen::PKCS_ED25519, Algorithm::EdDSA).await;
}

#[tokio::test]
async fn p256_identity_jwt_verifies_against_the_published_jwks() {
    check_key(&rcgen::PKCS_ECDSA_P256_SHA256, Algorithm::ES256).await;
}

fn load(text: &str) -> Result<(), String> {
    let c = GatewayConfig::from_toml(text).map_err(|e| e.to_string())?;
    portcullis_gateway::Snapshot::build(c, None)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn identity_jwt_lifetime_and_keys_are_checked_at_load() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key_file = dir.path().join("identity.pem");
    std::fs::write(&key_file, key_pem(&rcgen::PKCS_ED25519)).expect("write");
    let with = |extra: &str| {
        format!("listen = \"127.0.0.1:0\"\n{}", routes(&key_file, extra))
            .replace("{up}", "127.0.0.1:9")
    };
    load(&with("")).expect("default lifetime");
    load(&with("lifetime = \"5m\"")).expect("the maximum");
    for bad in ["0s", "500ms", "301s", "1h"] {
        let e = load(&with(&format!("lifetime = \"{bad}\""))).expect_err(bad);
        assert!(e.contains("lifetime"), "{e}");
    }
    assert!(load(&with("audience = \"x\"")).is_err(), "unknown key");

    // Keys that are not Ed25519/P-256 PKCS#8: refused, without quoting the file.
    let p384 = key_pem(&rcgen::PKCS_ECDSA_P384_SHA384);
    std::fs::write(&key_file, &p384).expect("write");
    let e = load(&with("")).expect_err("P-384 refused");
    assert!(!e.contains("PRIVATE KEY"), "{e}");
    std::fs::write(&key_file, "junk").expect("write");
    assert!(load(&with("")).is_err());
    std::fs::remove_file(&key_file).expect("rm");
    assert!(load(&with("")).is_err());

    // identity_jwt = true on an upstream without the section.
    let e = load("listen = \"127.0.0.1:0\"\n[upstreams.app]\nurl = \"http://127.0.0.1:9\"\nidentity_jwt = true\n")
        .expect_err("refused");
    assert!(e.contains("[identity_jwt]"), "{e}");
}

#[tokio::test]
async fn jwks_is_not_found_without_identity_jwt() {
    let ctx = start("[upstreams.app]\nurl = \"http://{up}\"\n").await;
    assert_eq!(raw(ctx.gw.addr, "GET", JWKS_PATH, &[]).await.status, 404);
}
