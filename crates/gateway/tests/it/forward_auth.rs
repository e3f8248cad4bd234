//! Forward-auth endpoints in process: nginx `auth_request`, Traefik `forwardAuth` and Envoy
//! `ext_authz` (HTTP) descriptions of the original request get the same decisions as the proxy.

use crate::common;

use common::*;
use serde_json::json;

const ROUTES: &str = r#"
[forward_auth]
enabled = true

[[routes]]
name = "public"
path = "/public/*"
public = true

[[routes]]
name = "admin"
path = "/admin/*"
accept = ["access_token"]
scopes_all = ["admin"]

[[routes]]
name = "orders"
path = "/t/{tenant}/orders/*"
accept = ["access_token", "api_key"]
tenant_from_path = "tenant"
"#;

fn nginx<'a>(method: &'a str, uri: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![("x-original-method", method), ("x-original-uri", uri)]
}

#[tokio::test]
async fn nginx_auth_request_answers_2xx_401_403_only() {
    let ctx = start(ROUTES).await;
    let auth = bearer(&ctx.issuer.token(json!({})));
    let ep = "/_portcullis/auth/nginx";

    let mut h = nginx("GET", "/t/acme/orders/1?page=2");
    h.push(("authorization", &auth));
    h.push(("x-portcullis-subject", "root"));
    let r = raw(ctx.gw.addr, "GET", ep, &h).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("x-portcullis-subject"), Some("user-1"));
    assert_eq!(r.header("x-portcullis-tenant"), Some("acme"));
    assert_eq!(
        r.header("x-portcullis-credential-kind"),
        Some("access_token")
    );
    assert_eq!(r.header("x-portcullis-scopes"), Some("orders:read"));

    let cases: Vec<(Vec<(&str, &str)>, u16)> = vec![
        (nginx("GET", "/t/acme/orders/1"), 401),
        (
            [
                nginx("GET", "/t/globex/orders/1"),
                vec![("authorization", auth.as_str())],
            ]
            .concat(),
            403,
        ),
        (
            [
                nginx("GET", "/admin/x"),
                vec![("authorization", auth.as_str())],
            ]
            .concat(),
            403,
        ),
        (nginx("GET", "/public/../admin/x"), 401),
        (nginx("GET", "/public/%2e%2e/admin/x"), 401),
        // Not 400 or 404: nginx's auth_request understands only 2xx, 401 and 403.
        (nginx("GET", "/public/..%2fadmin/x"), 403),
        // A Java upstream would read these as /admin/x; refused (400, so 403 here).
        (nginx("GET", "/public/..;/admin/x"), 403),
        (nginx("GET", "/public/..%20/admin/x"), 403),
        (nginx("GET", "/nowhere"), 403),
        (
            [
                nginx("GET", "/t/acme/orders/1?access_token=x"),
                vec![("authorization", auth.as_str())],
            ]
            .concat(),
            403,
        ),
        (vec![("x-original-method", "GET")], 403),
        (vec![("x-original-uri", "/public/x")], 403),
    ];
    for (i, (h, want)) in cases.into_iter().enumerate() {
        let r = raw(ctx.gw.addr, "GET", ep, &h).await;
        assert_eq!(r.status, want, "case {i}: {}", r.body);
        assert!(r.header("x-portcullis-subject").is_none(), "case {i}");
    }
    let r = raw(ctx.gw.addr, "GET", ep, &nginx("GET", "/t/acme/orders/1")).await;
    assert_eq!(r.header("www-authenticate"), Some("Bearer realm=\"api\""));

    // A public route passes with every identity header present and empty, so the proxy
    // overwrites whatever the client sent.
    let r = raw(ctx.gw.addr, "GET", ep, &nginx("GET", "/public/x")).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-portcullis-subject"), Some(""));
    assert_eq!(r.header("x-portcullis-credential-id"), Some(""));
    // Never set in forward-auth, always answered empty so a client's copies are overwritten.
    assert_eq!(r.header("x-portcullis-client-cert-sha256"), Some(""));
    assert_eq!(r.header("x-portcullis-identity"), Some(""));
}

/// The proxy in front overwrites the dashed identity names only; an underscore spelling would
/// pass it and reach a CGI, WSGI, PHP or Rack upstream as the real header, so it is refused.
#[tokio::test]
async fn underscore_spellings_of_identity_headers_are_refused() {
    let ctx = start(ROUTES).await;
    let auth = bearer(&ctx.issuer.token(json!({})));
    for (ep, mut h, want) in [
        ("/_portcullis/auth/nginx", nginx("GET", "/public/x"), 403),
        (
            "/_portcullis/auth/traefik",
            vec![
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", "/t/acme/orders/1"),
            ],
            400,
        ),
        ("/_portcullis/auth/envoy/public/x", vec![], 400),
    ] {
        h.push(("authorization", &auth));
        let r = raw(ctx.gw.addr, "GET", ep, &h).await;
        assert_eq!(r.status, 200, "{ep} without the spoof: {}", r.body);
        h.push(("X_Portcullis_Subject", "root"));
        let r = raw(ctx.gw.addr, "GET", ep, &h).await;
        assert_eq!(r.status, want, "{ep}: {}", r.body);
        assert!(r.header("x-portcullis-subject").is_none(), "{ep}");
    }
}

#[tokio::test]
async fn traefik_forward_auth_uses_x_forwarded_headers() {
    let ctx = start(ROUTES).await;
    let (key, _) = ctx.keys.issue("acme", &["orders:read"]);
    let ep = "/_portcullis/auth/traefik";
    let fwd = |m: &'static str, u: &'static str| {
        vec![
            ("x-forwarded-method", m),
            ("x-forwarded-uri", u),
            ("x-forwarded-host", "api.example.com"),
            ("x-forwarded-proto", "https"),
        ]
    };
    let mut h = fwd("POST", "/t/acme/orders/7");
    h.push(("x-api-key", &key));
    let r = raw(ctx.gw.addr, "GET", ep, &h).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-portcullis-credential-kind"), Some("api_key"));
    assert_eq!(r.header("x-portcullis-subject"), Some("partner-co"));
    // Traefik returns the answer to the client as is: real status codes.
    assert_eq!(
        raw(ctx.gw.addr, "GET", ep, &fwd("GET", "/nowhere"))
            .await
            .status,
        404
    );
    assert_eq!(
        raw(ctx.gw.addr, "GET", ep, &fwd("GET", "/a%2fb"))
            .await
            .status,
        400
    );
    assert_eq!(
        raw(ctx.gw.addr, "GET", ep, &fwd("GET", "/admin/x"))
            .await
            .status,
        401
    );
    assert_eq!(
        raw(ctx.gw.addr, "GET", ep, &[("x-forwarded-uri", "/public/x")])
            .await
            .status,
        400,
        "missing method"
    );
}

/// The host the proxy reports is checked like the reverse proxy's: a well-formed one picks its
/// route, a malformed or doubled one is refused rather than matched as some other host.
#[tokio::test]
async fn forward_auth_hosts_are_checked() {
    let ctx = start(
        r#"
[forward_auth]
enabled = true

[[routes]]
name = "admin"
host = "admin.example"
path = "/*"
accept = ["access_token"]

[[routes]]
name = "site"
path = "/*"
public = true
"#,
    )
    .await;
    let ep = "/_portcullis/auth/traefik";
    let traefik = |hosts: &[&'static str]| {
        let mut h = vec![("x-forwarded-method", "GET"), ("x-forwarded-uri", "/x")];
        h.extend(hosts.iter().map(|v| ("x-forwarded-host", *v)));
        h
    };
    for (hosts, want) in [
        (&["admin.example"][..], 401),
        (&["Admin.Example:443"][..], 401),
        (&["www.example"][..], 200),
        (&[][..], 200),
        (&["admin.example."][..], 400),
        (&["user@admin.example"][..], 400),
        (&["www.example, admin.example"][..], 400),
        (&["www.example", "admin.example"][..], 400),
    ] {
        let r = raw(ctx.gw.addr, "GET", ep, &traefik(hosts)).await;
        assert_eq!(r.status, want, "{hosts:?}: {}", r.body);
    }
    // nginx reports the host in Host; a malformed one is 403 there (auth_request's only "no").
    for (host, want) in [("admin.example", 401), ("admin.example.", 403)] {
        let text = format!(
            "GET /_portcullis/auth/nginx HTTP/1.1\r\nhost: {host}\r\nx-original-method: GET\r\nx-original-uri: /x\r\nconnection: close\r\n\r\n"
        );
        let r = raw_text(ctx.gw.addr, &text).await;
        assert_eq!(r.status, want, "{host}: {}", r.body);
    }
}

#[tokio::test]
async fn envoy_ext_authz_takes_method_and_path_from_the_check_request() {
    let ctx = start(ROUTES).await;
    let auth = bearer(&ctx.issuer.token(json!({"scope": "admin"})));
    let ep = "/_portcullis/auth/envoy";
    let r = raw(
        ctx.gw.addr,
        "DELETE",
        &format!("{ep}/admin/users/1?force=1"),
        &[("authorization", &auth)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("x-portcullis-scopes"), Some("admin"));
    let r = raw(ctx.gw.addr, "POST", &format!("{ep}/admin/x"), &[]).await;
    assert_eq!(r.status, 401);
    let r = raw(ctx.gw.addr, "GET", &format!("{ep}/public/../admin/x"), &[]).await;
    assert_eq!(r.status, 401);
    let r = raw(ctx.gw.addr, "GET", &format!("{ep}/public/x"), &[]).await;
    assert_eq!(r.status, 200);
    let r = raw(ctx.gw.addr, "GET", &format!("{ep}x/public/x"), &[]).await;
    assert_eq!(r.status, 404, "not an endpoint, and no route matches");
}

#[tokio::test]
async fn forward_auth_paths_are_not_served_unless_enabled() {
    let ctx = start(
        r#"
[upstreams.app]
url = "http://{up}"
[[routes]]
path = "/*"
upstream = "app"
public = true
"#,
    )
    .await;
    let r = raw(
        ctx.gw.addr,
        "GET",
        "/_portcullis/auth/nginx",
        &nginx("GET", "/x"),
    )
    .await;
    // Proxied to the upstream like any other path: no identity answer from the gateway.
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["uri"], "/_portcullis/auth/nginx");
    assert!(r.header("x-portcullis-subject").is_none());
}

/// `forward_auth.client_ip_header` names who the client is behind the proxy: a public route's
/// rate limit counts per that address (the rightmost that is not a trusted proxy), not per the
/// proxy's connection.
#[tokio::test]
async fn forward_auth_takes_the_client_address_from_the_configured_header() {
    let routes = r#"
trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]

[forward_auth]
enabled = true
client_ip_header = "x-real-ip"

[[routes]]
name = "limited"
path = "/limited"
public = true
rate_limit = { per_second = 0.001, burst = 1 }
"#;
    let ctx = start(routes).await;
    let ep = "/_portcullis/auth/traefik";
    let from = |ip: &'static str| {
        vec![
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/limited"),
            ("x-real-ip", ip),
        ]
    };
    let status = |h: Vec<(&'static str, &'static str)>| {
        let addr = ctx.gw.addr;
        async move { raw(addr, "GET", ep, &h).await.status }
    };
    assert_eq!(status(from("198.51.100.7")).await, 200);
    assert_eq!(status(from("198.51.100.7")).await, 429, "same client");
    assert_eq!(
        status(from("198.51.100.7, 203.0.113.9, 10.0.0.1")).await,
        200,
        "another client: the rightmost that is not a trusted proxy"
    );
    assert_eq!(status(from("203.0.113.9")).await, 429, "the same one");
}

/// The attack corpus's case: `X-Forwarded-For: 10.9.9.9, 203.0.113.7`, the first entry the
/// client's own and the second appended by the proxy, must not pass a key allowlisted for
/// 10.0.0.0/8. The proxy's entry is believed only when the proxy is a trusted one, and
/// `Forwarded` is read by the same rule.
#[tokio::test]
async fn forward_auth_client_addresses_are_read_from_the_right_and_only_from_trusted_proxies() {
    let config = |trusted: &str, header: &str| {
        format!(
            "trusted_proxies = [{trusted}]\n[forward_auth]\nenabled = true\nclient_ip_header = \"{header}\"\n{}",
            ROUTES.replace("[forward_auth]\nenabled = true\n", "")
        )
    };
    let ep = "/_portcullis/auth/traefik";
    let ask = |key: &str, header: &'static str, value: &'static str| {
        vec![
            ("x-forwarded-method".to_owned(), "GET".to_owned()),
            ("x-forwarded-uri".to_owned(), "/t/acme/orders/1".to_owned()),
            ("x-api-key".to_owned(), key.to_owned()),
            (header.to_owned(), value.to_owned()),
        ]
    };
    let status = |addr, h: Vec<(String, String)>| async move {
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        raw(addr, "GET", ep, &h).await.status
    };

    let ctx = start(&config("\"127.0.0.1\"", "x-forwarded-for")).await;
    let key = ctx
        .keys
        .issue_allowlisted("acme", &["orders:read"], &["10.0.0.0/8"]);
    let xff = "x-forwarded-for";
    let a = ctx.gw.addr;
    assert_eq!(
        status(a, ask(&key, xff, "10.9.9.9, 203.0.113.7")).await,
        401
    );
    assert_eq!(
        status(a, ask(&key, xff, "203.0.113.7, 10.9.9.9")).await,
        200
    );
    assert_eq!(status(a, ask(&key, xff, "10.9.9.9")).await, 200);
    assert_eq!(status(a, ask(&key, xff, "10.9.9.9, unknown")).await, 401);

    let ctx = start(&config("\"127.0.0.1\"", "forwarded")).await;
    let key = ctx
        .keys
        .issue_allowlisted("acme", &["orders:read"], &["10.0.0.0/8"]);
    let fwd = "forwarded";
    let a = ctx.gw.addr;
    assert_eq!(
        status(a, ask(&key, fwd, "for=10.9.9.9, for=203.0.113.7")).await,
        401
    );
    assert_eq!(
        status(a, ask(&key, fwd, "for=10.9.9.9;proto=https")).await,
        200
    );
    assert_eq!(
        status(a, ask(&key, fwd, "for=203.0.113.7, for=\"10.9.9.9:4711\"")).await,
        200
    );

    // The peer (127.0.0.1) is not a trusted proxy: its header is ignored, no address is known,
    // and the allowlisted key is refused whatever the header says.
    let ctx = start(&config("\"192.0.2.1\"", "x-forwarded-for")).await;
    let key = ctx
        .keys
        .issue_allowlisted("acme", &["orders:read"], &["10.0.0.0/8"]);
    assert_eq!(status(ctx.gw.addr, ask(&key, xff, "10.9.9.9")).await, 401);
}

#[test]
fn a_client_ip_header_needs_trusted_proxies() {
    let load = |text: &str| {
        let c = portcullis_gateway::GatewayConfig::from_toml(&format!(
            "listen = \"127.0.0.1:0\"\n{text}"
        ))
        .map_err(|e| e.to_string())?;
        portcullis_gateway::Snapshot::build(c, None)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let e = load("[forward_auth]\nenabled = true\nclient_ip_header = \"x-forwarded-for\"\n")
        .expect_err("refused");
    assert!(e.contains("trusted_proxies"), "{e}");
    load("trusted_proxies = [\"10.0.0.0/8\"]\n[forward_auth]\nenabled = true\nclient_ip_header = \"x-forwarded-for\"\n")
        .expect("with trusted proxies");
    for bad in ["\"0.0.0.0/0\"", "\"::/0\"", "\"proxy.internal\""] {
        assert!(
            load(&format!("trusted_proxies = [{bad}]\n")).is_err(),
            "{bad}"
        );
    }
}

/// `trusted_proxies` and `client_ip_header` parse by the same rules as `serve`'s (one type in
/// core): host bits are a mistake named in the message, one string of entries works, and a
/// header name must be one.
#[test]
fn trusted_proxies_and_the_client_ip_header_parse_strictly() {
    let load = |text: &str| {
        portcullis_gateway::GatewayConfig::from_toml(&format!("listen = \"127.0.0.1:0\"\n{text}"))
            .map_err(|e| e.to_string())
    };
    let e = load("trusted_proxies = [\"10.1.2.3/8\"]\n").expect_err("host bits");
    assert!(e.contains("did you mean 10.0.0.0/8"), "{e}");
    let e = load("trusted_proxies = [\"0.0.0.0/0\"]\n").expect_err("everyone");
    assert!(e.contains("holds every address"), "{e}");
    let c = load("trusted_proxies = \"10.0.0.0/8, 192.0.2.7\"\n").expect("one string");
    assert!(c.trusted_proxies.contains("192.0.2.7".parse().expect("ip")));
    assert!(c.trusted_proxies.contains("10.9.9.9".parse().expect("ip")));
    let e = load("[forward_auth]\nclient_ip_header = \"x real ip\"\n").expect_err("name");
    assert!(e.contains("is not a header name"), "{e}");
    let c = load("[forward_auth]\nclient_ip_header = \"X-Real-IP\"\n").expect("name");
    assert_eq!(
        c.forward_auth.client_ip_header.as_ref().map(|h| h.name()),
        Some("x-real-ip")
    );
}

/// A URL-encoded PEM certificate, as nginx's `$ssl_client_escaped_cert` sends it.
fn escaped_pem(der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let pem = format!("-----BEGIN CERTIFICATE-----\n{b64}\n-----END CERTIFICATE-----\n");
    pem.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn sha256_b64(der: &[u8]) -> String {
    use base64::Engine;
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(d)
}

/// RFC 8705 section 3 behind nginx: a certificate-bound token passes forward-auth only with
/// its certificate in `client_cert_header`, and only when a trusted proxy sent that header.
#[tokio::test]
async fn a_certificate_bound_token_needs_its_certificate_from_a_trusted_proxy() {
    let cert = rcgen::generate_simple_self_signed(vec!["client-1".to_owned()]).expect("cert");
    let other = rcgen::generate_simple_self_signed(vec!["client-2".to_owned()]).expect("cert");
    let (good, wrong) = (escaped_pem(cert.cert.der()), escaped_pem(other.cert.der()));
    let cnf = json!({"cnf": {"x5t#S256": sha256_b64(cert.cert.der())}});
    let ep = "/_portcullis/auth/nginx";
    let header = "x-ssl-client-cert";
    for (trusted, want_with_cert) in [("\"127.0.0.1\"", 200), ("\"10.0.0.0/8\"", 401)] {
        let ctx = start(&format!(
            "trusted_proxies = [{trusted}]\n[forward_auth]\nenabled = true\nclient_cert_header = \"{header}\"\n\
             [[routes]]\nname = \"api\"\npath = \"/api/*\"\naccept = [\"access_token\"]\n"
        ))
        .await;
        let bound = bearer(&ctx.issuer.token(cnf.clone()));
        let unbound = bearer(&ctx.issuer.token(json!({})));
        let ask = |auth: &str, cert: Option<&str>| {
            let mut h = nginx("GET", "/api/x");
            h.push(("authorization", auth));
            if let Some(c) = cert {
                h.push((header, c));
            }
            h.into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect::<Vec<_>>()
        };
        let call = |h: Vec<(String, String)>| {
            let addr = ctx.gw.addr;
            async move {
                let h: Vec<(&str, &str)> =
                    h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
                raw(addr, "GET", ep, &h).await.status
            }
        };
        assert_eq!(
            call(ask(&bound, Some(&good))).await,
            want_with_cert,
            "trusted_proxies = {trusted}"
        );
        // Without the certificate, with another one, or with a header that is no certificate.
        for cert in [None, Some(wrong.as_str()), Some("not%20a%20certificate")] {
            assert_eq!(call(ask(&bound, cert)).await, 401, "{cert:?}");
        }
        // An unbound token does not care.
        assert_eq!(call(ask(&unbound, Some(&good))).await, 200);
        assert_eq!(call(ask(&unbound, None)).await, 200);
    }
}

#[test]
fn a_client_cert_header_needs_trusted_proxies() {
    let load = |text: &str| {
        let c = portcullis_gateway::GatewayConfig::from_toml(&format!(
            "listen = \"127.0.0.1:0\"\n{text}"
        ))
        .map_err(|e| e.to_string())?;
        portcullis_gateway::Snapshot::build(c, None)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let e = load("[forward_auth]\nenabled = true\nclient_cert_header = \"x-ssl-client-cert\"\n")
        .expect_err("refused");
    assert!(e.contains("trusted_proxies"), "{e}");
    let e = load("trusted_proxies = [\"10.0.0.0/8\"]\n[forward_auth]\nenabled = true\nclient_cert_header = \"bad header\"\n")
        .expect_err("refused");
    assert!(e.contains("not a header name"), "{e}");
    load("trusted_proxies = [\"10.0.0.0/8\"]\n[forward_auth]\nenabled = true\nclient_cert_header = \"x-ssl-client-cert\"\n")
        .expect("with trusted proxies");
}
