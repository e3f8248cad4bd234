//! End to end with a real nginx (from Debian: `apt-get install nginx-light`) in front of an echo
//! upstream, asking the gateway through `auth_request`. The test starts its own nginx in the
//! foreground, single-process, with a generated config whose pid, logs and temp paths live in a
//! temporary directory, on free 127.0.0.1 ports; it never touches a system nginx.
//!
//! Without nginx the test prints a notice and passes, except under CI (`CI` set), where it fails.

use crate::common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;

fn nginx_binary() -> Option<PathBuf> {
    ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }
}

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

fn config(dir: &std::path::Path, port: u16, gateway: u16, upstream: u16) -> String {
    let d = dir.display();
    let mut set = String::new();
    for (var, header) in IDENTITY {
        let lower = header.to_ascii_lowercase().replace('-', "_");
        set.push_str(&format!(
            "      auth_request_set $pc_{var} $upstream_http_{lower};\n      proxy_set_header {header} $pc_{var};\n"
        ));
    }
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
  access_log off;
  client_body_temp_path {d}/body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  server {{
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
  }}
}}
"#
    )
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

async fn start_nginx(gateway: u16, upstream: u16) -> Option<(Nginx, u16)> {
    let Some(bin) = nginx_binary() else {
        if std::env::var_os("CI").is_some() {
            panic!("nginx is required in CI (apt-get install -y nginx-light)");
        }
        eprintln!("notice: nginx not found; skipping the nginx end-to-end test");
        return None;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, config(dir.path(), port, gateway, upstream)).expect("write conf");
    let child = Command::new(bin)
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf)
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nginx");
    let nginx = Nginx { child, dir };
    let ready = tokio::time::timeout(DEADLINE, async {
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(ready.is_ok(), "nginx did not start: {}", nginx.error_log());
    Some((nginx, port))
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
    let Some((nginx, port)) = start_nginx(ctx.gw.addr.port(), ctx.upstream.port()).await else {
        return;
    };
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
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
    assert_eq!(r.status, 200, "{r:?}\n{}", nginx.error_log());
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
