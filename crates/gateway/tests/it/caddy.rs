//! End to end with a real Caddy (from Debian: `apt-get install caddy`) in front of an echo
//! upstream, asking the gateway through `forward_auth` (the Traefik endpoint). The Caddyfile is
//! the one `docs/gateway.md` documents ("Caddy `forward_auth`"), read from the document and
//! given this test's addresses, so the documented setup and the tested one cannot drift. The
//! Caddy is the test's own (`common::proxy_process`); it never touches a system Caddy.
//!
//! Without Caddy the test prints a notice and passes, except under CI (`CI` set), where it fails.

use crate::common;

use std::path::Path;

use common::proxy_process::{free_port, ProxyProcess};
use common::*;
use serde_json::json;

/// The documented site block (`docs/gateway.md`), with the addresses it names in place of the
/// ones this test listens on.
fn documented_caddyfile(port: u16, gateway: u16, upstream: u16) -> String {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/gateway.md");
    let text = std::fs::read_to_string(&doc).expect("read docs/gateway.md");
    let section = text
        .split_once("### Caddy `forward_auth`")
        .expect("the Caddy section of docs/gateway.md")
        .1;
    let block = section
        .split_once("```caddyfile\n")
        .and_then(|(_, rest)| rest.split_once("\n```"))
        .expect("a caddyfile block in the Caddy section")
        .0;
    let mut out = block.to_owned();
    for (documented, here) in [
        // The raw client's `Host` (Caddy matches sites by host name).
        ("api.example.com", format!("http://api.test:{port}")),
        ("127.0.0.1:8081", format!("127.0.0.1:{gateway}")),
        ("orders-backend:8080", format!("127.0.0.1:{upstream}")),
    ] {
        assert!(out.contains(documented), "the block names {documented}");
        out = out.replace(documented, &here);
    }
    out
}

#[tokio::test]
async fn caddy_forward_auth_as_documented_in_front_of_an_upstream() {
    let ctx = start(
        r#"
[forward_auth]
enabled = true

[[routes]]
name = "public"
path = "/public/*"
public = true

[[routes]]
name = "orders"
path = "/t/{tenant}/orders/*"
accept = ["access_token", "api_key"]
scopes_any = ["orders:read"]
tenant_from_path = "tenant"
"#,
    )
    .await;
    let (gateway, upstream) = (ctx.gw.addr.port(), ctx.upstream.port());
    let Some(caddy) = ProxyProcess::caddy(free_port(), |port| {
        documented_caddyfile(port, gateway, upstream)
    }) else {
        return;
    };
    let addr = caddy.addr();
    let auth = bearer(&ctx.issuer.token(json!({"sub": "user-9"})));
    let (key, _) = ctx.keys.issue("acme", &["orders:read"]);

    // Allowed: the upstream sees the identity, never the token, nor the client's forgery.
    let r = raw(
        addr,
        "GET",
        "/t/acme/orders/1?x=1",
        &[("authorization", &auth), ("X-Portcullis-Subject", "root")],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}\n{}", caddy.log());
    assert_eq!(r.json()["uri"], "/t/acme/orders/1?x=1", "{r:?}");
    assert_eq!(r.upstream_header("x-portcullis-subject"), vec!["user-9"]);
    assert_eq!(r.upstream_header("x-portcullis-tenant"), vec!["acme"]);
    assert_eq!(
        r.upstream_header("x-portcullis-scopes"),
        vec!["orders:read"]
    );
    assert_eq!(
        r.upstream_header("x-portcullis-credential-kind"),
        vec!["access_token"]
    );
    assert!(
        r.upstream_header("authorization").is_empty(),
        "the bearer token stays at the proxy: {}",
        r.body
    );

    let r = raw(addr, "GET", "/t/acme/orders/2", &[("x-api-key", &key)]).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        r.upstream_header("x-api-key").is_empty(),
        "the API key stays at the proxy: {}",
        r.body
    );
    assert_eq!(
        r.upstream_header("x-portcullis-subject"),
        vec!["partner-co"]
    );
    assert_eq!(
        r.upstream_header("x-portcullis-credential-kind"),
        vec!["api_key"]
    );

    // Public: passes, and the client's identity headers are overwritten with the gateway's
    // empty answers, so none of its values reach the upstream.
    let r = raw(
        addr,
        "GET",
        "/public/x",
        &[
            ("X-Portcullis-Subject", "root"),
            ("X-Portcullis-Tenant", "globex"),
            ("X-Portcullis-Identity", "forged"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    for h in [
        "x-portcullis-subject",
        "x-portcullis-tenant",
        "x-portcullis-identity",
    ] {
        let seen = r.upstream_header(h);
        assert!(seen.iter().all(String::is_empty), "{h}: {}", r.body);
    }

    // Refusals never reach the upstream (its echo would carry "headers"), and the client gets
    // the gateway's answer.
    let refused = |r: &Resp, status: u16| {
        assert_eq!(r.status, status, "{r:?}");
        assert!(r.json().get("headers").is_none(), "proxied: {r:?}");
    };
    let r = raw(addr, "GET", "/t/acme/orders/1", &[]).await;
    refused(&r, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"api\""));
    let r = raw(
        addr,
        "GET",
        "/t/acme/orders/1",
        &[("authorization", "Bearer not-a-token")],
    )
    .await;
    refused(&r, 401);
    let r = raw(
        addr,
        "GET",
        "/t/globex/orders/1",
        &[("authorization", &auth)],
    )
    .await;
    refused(&r, 403);
    let r = raw(addr, "GET", "/nowhere", &[("authorization", &auth)]).await;
    refused(&r, 404);
    let r = raw(addr, "GET", "/t/acme/orders/1", &[("x-api-key", "pcl_bad")]).await;
    refused(&r, 401);
    drop(caddy);
}
