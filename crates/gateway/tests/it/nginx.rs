//! End to end with a real nginx (from Debian: `apt-get install nginx-light`) in front of an echo
//! upstream, asking the gateway through `auth_request`. The nginx is the test's own
//! (`common::proxy_process`: foreground, single-process, everything in a temporary directory, a
//! free 127.0.0.1 port); it never touches a system nginx.
//!
//! Without nginx the test prints a notice and passes, except under CI (`CI` set), where it fails.

use crate::common;

use common::proxy_process::{free_port, ProxyProcess};
use common::*;

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
    let ctx = start(proxied::ROUTES).await;
    let (gateway, upstream) = (ctx.gw.addr.port(), ctx.upstream.port());
    let Some(nginx) = ProxyProcess::nginx(free_port(), |_, port| server(port, gateway, upstream))
    else {
        return;
    };
    // `auth_request` understands 2xx, 401 and 403 only: the endpoint answers 403 for the rest.
    let refusals = proxied::Refusals {
        wrong_tenant: 403,
        no_route: 403,
    };
    proxied::check(&ctx, nginx.addr(), refusals, || nginx.log()).await;
}
