//! End to end with a real nginx (from Debian: `apt-get install nginx-light`) in front of an echo
//! upstream, asking the gateway through `auth_request`. The nginx is the test's own
//! (`common::proxy_process`: foreground, single-process, everything in a temporary directory, a
//! free 127.0.0.1 port); it never touches a system nginx.
//!
//! Without nginx the test prints a notice and passes, except under CI (`CI` set), where it fails.

use crate::common;

use common::proxy_process::{free_port, ProxyProcess};
use common::*;
use serde_json::json;

const IDENTITY: [(&str, &str); 8] = [
    ("subject", "X-Portcullis-Subject"),
    ("client", "X-Portcullis-Client"),
    ("tenant", "X-Portcullis-Tenant"),
    ("scopes", "X-Portcullis-Scopes"),
    ("credential_kind", "X-Portcullis-Credential-Kind"),
    ("credential_id", "X-Portcullis-Credential-Id"),
    ("client_cert", "X-Portcullis-Client-Cert-Sha256"),
    ("identity", "X-Portcullis-Identity"),
];

/// The `server` block: the documented `auth_request` setup (docs/gateway.md).
fn server(port: u16, gateway: u16, upstream: u16) -> String {
    let mut set = String::new();
    for (var, header) in IDENTITY {
        let lower = header.to_ascii_lowercase().replace('-', "_");
        set.push_str(&format!(
            "      auth_request_set $pc_{var} $upstream_http_{lower};\n      proxy_set_header {header} $pc_{var};\n"
        ));
    }
    format!(
        r#"  server {{
    listen 127.0.0.1:{port};
    location = /_portcullis_auth {{
      internal;
      proxy_pass http://127.0.0.1:{gateway}/_portcullis/auth/nginx;
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
      proxy_set_header X-Original-URI $request_uri;
      proxy_set_header X-Original-Method $request_method;
      proxy_set_header Host $host;
    }}
    location / {{
      auth_request /_portcullis_auth;
{set}      # The credential was for the gateway's decision; the upstream gets the identity.
      proxy_set_header Authorization "";
      proxy_set_header X-API-Key "";
      proxy_pass http://127.0.0.1:{upstream};
    }}
  }}"#
    )
}

#[tokio::test]
async fn nginx_auth_request_in_front_of_an_upstream() {
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
    let Some(nginx) = ProxyProcess::nginx(free_port(), |_, port| server(port, gateway, upstream))
    else {
        return;
    };
    let addr = nginx.addr();
    let auth = bearer(&ctx.issuer.token(json!({"sub": "user-9"})));
    let (key, _) = ctx.keys.issue("acme", &["orders:read"]);

    // Allowed, with identity from the gateway and the client's spoofed header replaced.
    let r = raw(
        addr,
        "GET",
        "/t/acme/orders/1?x=1",
        &[("authorization", &auth), ("X-Portcullis-Subject", "root")],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}\n{}", nginx.log());
    assert_eq!(r.json()["uri"], "/t/acme/orders/1?x=1");
    assert_eq!(r.upstream_header("x-portcullis-subject"), vec!["user-9"]);
    assert_eq!(r.upstream_header("x-portcullis-tenant"), vec!["acme"]);
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
    assert_eq!(r.status, 200);
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

    // Public: passes, and a spoofed identity does not reach the upstream.
    let r = raw(
        addr,
        "GET",
        "/public/x",
        &[
            ("X-Portcullis-Subject", "root"),
            ("X-Portcullis-Client-Cert-Sha256", "forged"),
            ("X-Portcullis-Identity", "forged"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    for h in [
        "x-portcullis-subject",
        "x-portcullis-client-cert-sha256",
        "x-portcullis-identity",
    ] {
        assert!(r.upstream_header(h).is_empty(), "{h}: {}", r.body);
    }

    // Refusals never reach the upstream.
    let r = raw(addr, "GET", "/t/acme/orders/1", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"api\""));
    let r = raw(
        addr,
        "GET",
        "/t/globex/orders/1",
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 403);
    let r = raw(addr, "GET", "/nowhere", &[("authorization", &auth)]).await;
    assert_eq!(r.status, 403);
    let r = raw(addr, "GET", "/public/../t/acme/orders/1", &[]).await;
    assert_ne!(r.status, 200, "dot segments cannot dodge the policy");
    let r = raw(addr, "GET", "/public/..%2ft/acme/orders/1", &[]).await;
    assert_ne!(r.status, 200, "an encoded slash cannot dodge the policy");
    drop(nginx);
}
