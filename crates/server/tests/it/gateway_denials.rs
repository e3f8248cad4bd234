//! Standalone gateways' denials reach the detectors (issue 19, deliverable 3): a node assembled
//! by `serve::assemble` on a loopback port, and a `portcullis gateway` started in process from
//! its file with `[audit.report]` and a tenant's `service` credential. Failed requests through
//! the gateway open a `failed_auth_spike` alert on the node, recorded as the gateway's; with the
//! node unreachable the gateway still answers and counts its drops. The endpoint refuses a
//! credential without `report_denials`, a report for a tenant the credential does not reach,
//! and a bad batch, recording nothing.

use std::time::Duration;

use portcullis_gateway::Gateway;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::alerts::Node;

/// A `service` credential of `tenant`: (id, token).
async fn service_credential(node: &Node, tenant: &str) -> (String, String) {
    let (s, v) = node
        .call(
            Method::POST,
            &format!("/admin/v1/tenants/{tenant}/admin-tokens"),
            Some(json!({"name": "edge", "role": "service"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    (
        v["id"].as_str().expect("id").to_owned(),
        v["token"].as_str().expect("token").to_owned(),
    )
}

async fn tenant(node: &Node, id: &str) {
    let (s, v) = node
        .call(Method::POST, "/admin/v1/tenants", Some(json!({"id": id})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
}

/// A gateway in front of a dead upstream whose one route takes access tokens, reporting its
/// denials to `report_url` as tenant `acme` with `token`.
async fn gateway(dir: &std::path::Path, node: &Node, report_url: &str, token: &str) -> Gateway {
    let path = dir.join("gateway.toml");
    std::fs::write(
        &path,
        format!(
            r#"listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
workers = 1

[verifier]
audience = "payments-api"
[[verifier.issuers]]
issuer = "{issuer}"
jwks_url = "{url}/oauth2/jwks"
[verifier.revocation]
insecure_none = true

[audit.report]
url = "{report_url}"
token = "{token}"
tenant = "acme"
interval = "100ms"
retries = 0

[upstreams.app]
url = "http://127.0.0.1:9"
connect_timeout = "1s"

[[routes]]
name = "payments"
path = "/payments/*"
upstream = "app"
accept = ["access_token"]
"#,
            issuer = crate::common::ISSUER,
            url = node.url,
        ),
    )
    .expect("write");
    Gateway::start_from_file(&path).await.expect("gateway")
}

async fn through(gw: &Gateway) -> StatusCode {
    reqwest::Client::new()
        .get(format!("http://{}/payments/1", gw.addr))
        .bearer_auth("not-a-token")
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("gateway answers")
        .status()
}

async fn scrape(gw: &Gateway) -> String {
    let admin = gw.admin_addr.expect("admin listener");
    reqwest::get(format!("http://{admin}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_auth_spike_at_a_standalone_gateway_opens_an_alert_on_serve() {
    let node = Node::start().await;
    tenant(&node, "acme").await;
    // The installation's own edge: a system-tenant service credential, whose reports keep
    // their source addresses (a tenant's own credential reports none; service unit tests).
    let (cred_id, token) = service_credential(&node, "system").await;
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = gateway(dir.path(), &node, &node.url, &token).await;

    // The default floor is 20 failures in a window.
    for _ in 0..25 {
        assert_eq!(through(&gw).await, StatusCode::UNAUTHORIZED);
    }
    let spike = node.alert_for("tenant:acme").await;
    assert_eq!(spike["rule"], "failed_auth_spike");
    assert_eq!(spike["tenant"], "acme");
    // The address is the gateway's client, counted as for any other failure.
    let by_address = node.alert_for("address:127.0.0.1").await;
    assert_eq!(by_address["rule"], "failed_auth_spike");

    // The audit log says which gateway saw them, with the local event's shape.
    let mut v = Value::Null;
    for _ in 0..200 {
        let (s, page) = node
            .call(
                Method::GET,
                "/admin/v1/tenants/acme/audit-events?action=gateway.denied&limit=100",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        v = page;
        if v["items"].as_array().map_or(0, Vec::len) == 25 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let events = v["items"].as_array().expect("items");
    assert_eq!(events.len(), 25, "{v}");
    let e = &events[0];
    assert_eq!(e["actor"], format!("gateway:{cred_id}"));
    assert_eq!(e["outcome"], "denied");
    assert_eq!(e["target"], "payments");
    assert_eq!(e["client_ip"], "127.0.0.1");
    assert!(
        e["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("invalid_token:")),
        "{e}"
    );
    let metrics = scrape(&gw).await;
    assert!(
        metrics.contains("portcullis_gateway_denial_reports_sent_total 25"),
        "{metrics}"
    );
    drop(gw);
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_serve_unreachable_the_gateway_still_answers_and_counts_its_drops() {
    let node = Node::start().await;
    tenant(&node, "acme").await;
    let (_, token) = service_credential(&node, "acme").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr");
    let dir = tempfile::tempdir().expect("tempdir");
    let gw = gateway(dir.path(), &node, &format!("http://{dead}"), &token).await;
    for _ in 0..5 {
        assert_eq!(through(&gw).await, StatusCode::UNAUTHORIZED);
    }
    let want = "portcullis_gateway_denial_reports_dropped_total{reason=\"unreachable\"} 5";
    let mut metrics = String::new();
    for _ in 0..200 {
        metrics = scrape(&gw).await;
        if metrics.contains(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(metrics.contains(want), "{metrics}");
    assert!(metrics.contains("portcullis_gateway_denial_reports_sent_total 0"));
    // Still answering.
    assert_eq!(through(&gw).await, StatusCode::UNAUTHORIZED);
    drop(gw);
    node.stop().await;
}

fn denial(tenant: Option<&str>) -> Value {
    let mut d = json!({
        "type": "denied", "route": "payments", "method": "GET", "class": "invalid_token",
        "reason": "token_malformed", "status": 401, "client_ip": "198.51.100.4", "mode": "proxy"
    });
    if let Some(t) = tenant {
        d["tenant"] = json!(t);
    }
    d
}

#[tokio::test]
async fn the_endpoint_refuses_callers_without_the_permission_other_tenants_and_bad_batches() {
    let node = Node::start().await;
    tenant(&node, "acme").await;
    tenant(&node, "globex").await;
    let (_, acme) = service_credential(&node, "acme").await;
    let count = |v: &Value| v["items"].as_array().map_or(0, Vec::len);
    let recorded = |t: &'static str| {
        let node = &node;
        async move {
            // Nothing is written synchronously: give the audit writer its flush interval.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let (s, v) = node
                .call(
                    Method::GET,
                    &format!("/admin/v1/tenants/{t}/audit-events?action=gateway.denied"),
                    None,
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{v}");
            count(&v)
        }
    };
    let path = "/v1/gateway/denials";

    // A global admin, a tenant admin: not gateways.
    let (s, v) = node
        .call(Method::POST, path, Some(json!({"events": [denial(None)]})))
        .await;
    assert_eq!(
        (s, &v["error"]),
        (StatusCode::FORBIDDEN, &json!("insufficient_scope"))
    );
    let (s, v) = node
        .call(
            Method::POST,
            "/admin/v1/tenants/acme/admin-tokens",
            Some(json!({"name": "ops", "role": "tenant_admin"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let tenant_admin = v["token"].as_str().expect("token").to_owned();
    let (s, _) = node
        .call_as(
            &tenant_admin,
            Method::POST,
            path,
            Some(json!({"events": [denial(Some("acme"))]})),
        )
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    // No credential, a bad one.
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", node.url))
        .json(&json!({"events": [denial(None)]}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (s, _) = node
        .call_as(
            "pcl_adm_nope",
            Method::POST,
            path,
            Some(json!({"events": [denial(None)]})),
        )
        .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // acme's gateway reporting for globex: the whole batch is refused.
    let (s, v) = node
        .call_as(
            &acme,
            Method::POST,
            path,
            Some(json!({"events": [denial(Some("acme")), denial(Some("globex"))]})),
        )
        .await;
    assert_eq!(
        (s, &v["error"]),
        (StatusCode::FORBIDDEN, &json!("insufficient_scope"))
    );

    // Bad batches: 400 invalid_request.
    let mut bad_class = denial(None);
    bad_class["class"] = json!("server_error");
    let mut with_header = denial(None);
    with_header["authorization"] = json!("Bearer pcl_adm_secret");
    let too_many: Vec<Value> = (0..=portcullis_core::denial_report::MAX_EVENTS)
        .map(|_| denial(None))
        .collect();
    for body in [
        json!({"events": []}),
        json!({"events": [denial(None), bad_class]}),
        json!({"events": [with_header]}),
        json!({"events": too_many}),
        json!([denial(None)]),
        json!("not a batch"),
    ] {
        let (s, v) = node.call_as(&acme, Method::POST, path, Some(body)).await;
        assert_eq!(
            (s, &v["error"]),
            (StatusCode::BAD_REQUEST, &json!("invalid_request")),
            "{v}"
        );
    }
    let huge = "x".repeat(portcullis_core::denial_report::MAX_BATCH_BYTES + 1);
    let resp = reqwest::Client::new()
        .post(format!("{}{path}", node.url))
        .bearer_auth(&acme)
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(recorded("acme").await, 0);
    assert_eq!(recorded("globex").await, 0);

    // A good batch is taken.
    let (s, v) = node
        .call_as(
            &acme,
            Method::POST,
            path,
            Some(json!({"events": [denial(None), denial(Some("acme"))]})),
        )
        .await;
    assert_eq!((s, &v["accepted"]), (StatusCode::ACCEPTED, &json!(2)));
    assert_eq!(recorded("acme").await, 2);
    assert_eq!(recorded("globex").await, 0);
    node.stop().await;
}
