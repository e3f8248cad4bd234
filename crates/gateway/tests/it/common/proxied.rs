//! What every real proxy in front of the forward-auth endpoints (nginx, Caddy) must achieve, as
//! one check its test runs after starting the proxy: allowed requests reach the upstream with
//! the gateway's identity and without the credential, a client's forged identity headers never
//! do, and refusals get the gateway's answer without reaching the upstream. The answers that
//! differ between proxies (nginx's `auth_request` turns every refusal but 401 into 403) are
//! parameters.

use std::net::SocketAddr;

use serde_json::json;

use super::{bearer, raw, Ctx, Resp};

/// The gateway configuration of these tests: a public route and a tenant's orders.
pub const ROUTES: &str = r#"
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
"#;

/// The status a proxy gives the client for refusals other than 401.
#[derive(Debug, Clone, Copy)]
pub struct Refusals {
    pub wrong_tenant: u16,
    pub no_route: u16,
}

/// Runs the checks through the proxy at `addr`; `log` is the proxy's log, shown on failure.
pub async fn check(ctx: &Ctx, addr: SocketAddr, refusals: Refusals, log: impl Fn() -> String) {
    let auth = bearer(&ctx.issuer.token(json!({"sub": "user-9"})));
    let (key, _) = ctx.keys.issue("acme", &["orders:read"]);

    // Allowed, with identity from the gateway and the client's forged header replaced.
    let r = raw(
        addr,
        "GET",
        "/t/acme/orders/1?x=1",
        &[("authorization", &auth), ("X-Portcullis-Subject", "root")],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}\n{}", log());
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

    // Public: passes, and no forged identity value reaches the upstream (nginx drops the
    // header, Caddy sets the gateway's empty answer).
    let r = raw(
        addr,
        "GET",
        "/public/x",
        &[
            ("X-Portcullis-Subject", "root"),
            ("X-Portcullis-Tenant", "globex"),
            ("X-Portcullis-Client-Cert-Sha256", "forged"),
            ("X-Portcullis-Identity", "forged"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    for h in [
        "x-portcullis-subject",
        "x-portcullis-tenant",
        "x-portcullis-client-cert-sha256",
        "x-portcullis-identity",
    ] {
        let seen = r.upstream_header(h);
        assert!(seen.iter().all(String::is_empty), "{h}: {}", r.body);
    }

    // Refusals never reach the upstream (its echo would carry "headers").
    let refused = |r: Resp, status: u16| {
        assert_eq!(r.status, status, "{r:?}");
        assert!(r.json().get("headers").is_none(), "proxied: {r:?}");
        r
    };
    let r = refused(raw(addr, "GET", "/t/acme/orders/1", &[]).await, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"api\""));
    let bad = [("authorization", "Bearer not-a-token")];
    refused(raw(addr, "GET", "/t/acme/orders/1", &bad).await, 401);
    let bad = [("x-api-key", "pcl_bad")];
    refused(raw(addr, "GET", "/t/acme/orders/1", &bad).await, 401);
    let token = [("authorization", auth.as_str())];
    refused(
        raw(addr, "GET", "/t/globex/orders/1", &token).await,
        refusals.wrong_tenant,
    );
    refused(
        raw(addr, "GET", "/nowhere", &token).await,
        refusals.no_route,
    );
    for dodge in ["/public/../t/acme/orders/1", "/public/..%2ft/acme/orders/1"] {
        let r = raw(addr, "GET", dodge, &[]).await;
        assert_ne!(r.status, 200, "{dodge} cannot dodge the policy");
    }
}
