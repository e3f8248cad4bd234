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
    let ctx = start(proxied::ROUTES).await;
    let (gateway, upstream) = (ctx.gw.addr.port(), ctx.upstream.port());
    let Some(caddy) = ProxyProcess::caddy(free_port(), |port| {
        documented_caddyfile(port, gateway, upstream)
    }) else {
        return;
    };
    // Caddy hands the client the gateway's answer as it is.
    let refusals = proxied::Refusals {
        wrong_tenant: 403,
        no_route: 404,
    };
    proxied::check(&ctx, caddy.addr(), refusals, || caddy.log()).await;
}
