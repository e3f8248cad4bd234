//! Per-route bindings through the reverse proxy on 127.0.0.1: a route's own audience and API key
//! environment, and an API key's own rate limit (429, counted in metrics as `rate_limited`).

use crate::common;

use common::*;
use portcullis_core::api_key::RateLimit;
use portcullis_core::credential::{Credential, CredentialKind, Environment};
use portcullis_core::tenant::TenantId;
use portcullis_verify::ApiKeyIdentity;
use serde_json::json;

const ROUTES: &str = r#"
[upstreams.app]
url = "http://{up}"

[[routes]]
name = "orders"
path = "/orders/*"
upstream = "app"
accept = ["access_token", "api_key"]

[[routes]]
name = "ledger"
path = "/ledger/*"
upstream = "app"
accept = ["access_token", "api_key"]
audience = "ledger-api"
api_key_environment = "live"
"#;

/// Adds a key of `environment` to the test backend; returns its text.
fn issue(ctx: &Ctx, environment: &str, rate_limit: Option<RateLimit>) -> String {
    let c = Credential::generate(
        CredentialKind::ApiKey,
        Environment::parse(environment).expect("env"),
        &mut rand::thread_rng(),
    );
    ctx.keys.keys.lock().expect("lock").push((
        c.expose().to_owned(),
        ApiKeyIdentity {
            key_id: c.id().to_owned(),
            tenant: TenantId::parse("acme").expect("tenant"),
            environment: environment.into(),
            owner: "partner-co".into(),
            scopes: vec![],
            expires_at: None,
            rate_limit,
        },
    ));
    c.expose().to_owned()
}

#[tokio::test]
async fn a_route_binds_its_own_audience_and_api_key_environment() {
    let ctx = start(ROUTES).await;
    let orders_token = bearer(&ctx.issuer.token(json!({})));
    let ledger_token = bearer(&ctx.issuer.token(json!({"aud": "ledger-api", "jti": "t-2"})));
    let test_key = issue(&ctx, "test", None);
    let live_key = issue(&ctx, "live", None);
    let status = |path: &'static str, header: (&'static str, String)| {
        let addr = ctx.gw.addr;
        async move {
            raw(addr, "GET", path, &[(header.0, &header.1)])
                .await
                .status
        }
    };
    // Twice each: the second answer comes from the verifier's caches.
    for _ in 0..2 {
        assert_eq!(
            status("/orders/1", ("authorization", orders_token.clone())).await,
            200
        );
        assert_eq!(
            status("/ledger/1", ("authorization", ledger_token.clone())).await,
            200
        );
        assert_eq!(
            status("/ledger/1", ("authorization", orders_token.clone())).await,
            401
        );
        assert_eq!(
            status("/orders/1", ("authorization", ledger_token.clone())).await,
            401
        );
        // The gateway's environment is `test`; the ledger route takes `live` keys only.
        assert_eq!(
            status("/orders/1", ("x-api-key", test_key.clone())).await,
            200
        );
        assert_eq!(
            status("/ledger/1", ("x-api-key", live_key.clone())).await,
            200
        );
        assert_eq!(
            status("/ledger/1", ("x-api-key", test_key.clone())).await,
            401
        );
        assert_eq!(
            status("/orders/1", ("x-api-key", live_key.clone())).await,
            401
        );
    }
}

#[tokio::test]
async fn a_route_binding_that_cannot_apply_is_refused_at_load() {
    for (extra, why, ok) in [
        (
            "accept = [\"api_key\"]\naudience = \"x\"\napi_key_environment = \"live\"",
            "control: both bindings on a key route",
            true,
        ),
        (
            "public = true\naudience = \"x\"",
            "public route with an audience",
            false,
        ),
        (
            "accept = [\"access_token\"]\napi_key_environment = \"live\"",
            "no api keys",
            false,
        ),
        (
            "accept = [\"api_key\"]\napi_key_environment = \"Live!\"",
            "bad environment",
            false,
        ),
        (
            "accept = [\"access_token\"]\naudience = \" x\"",
            "padded audience",
            false,
        ),
    ] {
        let text = format!(
            "listen = \"127.0.0.1:0\"\n[upstreams.app]\nurl = \"http://127.0.0.1:1\"\n\
             [[routes]]\npath = \"/a\"\nupstream = \"app\"\n{extra}\n"
        );
        let config = portcullis_gateway::GatewayConfig::from_toml(&text).expect("parses");
        let issuer = Issuer::default();
        let v = verifier(&issuer, std::sync::Arc::new(Keys::default()));
        let started = portcullis_gateway::Gateway::start(config, v, None).await;
        assert_eq!(started.is_ok(), ok, "{why}");
    }
}

#[tokio::test]
async fn an_api_key_over_its_own_limit_gets_429_and_is_counted_as_rate_limited() {
    let ctx = start(ROUTES).await;
    let limited = issue(
        &ctx,
        "test",
        Some(RateLimit {
            requests: 2,
            window_secs: 3600,
        }),
    );
    let other = issue(&ctx, "test", None);
    for _ in 0..2 {
        assert_eq!(
            raw(ctx.gw.addr, "GET", "/orders/1", &[("x-api-key", &limited)])
                .await
                .status,
            200
        );
    }
    let r = raw(ctx.gw.addr, "GET", "/orders/1", &[("x-api-key", &limited)]).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("1800"));
    assert!(r.header("www-authenticate").is_none());
    assert_eq!(r.json(), json!({"error": "rate_limited"}));
    assert_eq!(
        raw(ctx.gw.addr, "GET", "/orders/1", &[("x-api-key", &other)])
            .await
            .status,
        200
    );
    let m = metrics(&ctx.gw).await;
    for want in [
        "portcullis_gateway_requests_total{route=\"orders\",outcome=\"rate_limited\"} 1",
        "portcullis_gateway_auth_failures_total{class=\"rate_limited\",reason=\"api_key_rate_limited\"} 1",
    ] {
        assert!(m.contains(want), "missing {want}\n{m}");
    }
}
