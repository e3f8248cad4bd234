//! Webhook delivery of alerts end to end (issue 19): a node assembled by `serve::assemble` and
//! served on a loopback port, alerts raised through its real endpoints, and receivers on
//! 127.0.0.1:0 that check every signature with an HMAC independent of the server's (RustCrypto's
//! against aws-lc-rs). Covers delivery of a failed-auth spike (tenant and installation
//! endpoints), a forged signature refused, a receiver answering 500 then 200 (retried under the
//! same id), one that is down (dead-lettered after `max_attempts`, then redelivered from the
//! dead-letter list), one that hangs (the token endpoint and the audit log carry on), a shadow
//! rule (recorded, never sent), secret rotation, and bad input to the admin routes.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxStatus};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use portcullis_core::detect::Mode;
use portcullis_core::time::Clock;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::alerts::Node;

/// How a receiver answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    Ok,
    /// 500 to the first attempt of each message, 200 after.
    FailFirst,
    /// Never answers.
    Hang,
}

/// One request as received.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: String,
    signature: String,
    content_type: String,
    body: Vec<u8>,
}

impl Received {
    fn event(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

#[derive(Debug)]
struct Inbox {
    behaviour: Behaviour,
    got: Mutex<Vec<Received>>,
    seen: Mutex<HashMap<String, u32>>,
    arrived: tokio::sync::Notify,
}

struct Receiver {
    url: String,
    inbox: Arc<Inbox>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start(behaviour: Behaviour) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        Self::on(listener, behaviour)
    }

    fn on(listener: tokio::net::TcpListener, behaviour: Behaviour) -> Self {
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let inbox = Arc::new(Inbox {
            behaviour,
            got: Mutex::new(Vec::new()),
            seen: Mutex::new(HashMap::new()),
            arrived: tokio::sync::Notify::new(),
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(inbox.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, inbox, server }
    }

    fn received(&self) -> Vec<Received> {
        self.inbox.got.lock().expect("lock").clone()
    }

    /// Waits (bounded) until `n` requests matching `pred` have arrived.
    async fn wait_for(&self, n: usize, pred: impl Fn(&Received) -> bool) -> Vec<Received> {
        for _ in 0..1_500 {
            let got: Vec<_> = self.received().into_iter().filter(&pred).collect();
            if got.len() >= n {
                return got;
            }
            let _ = tokio::time::timeout(Duration::from_millis(20), self.inbox.arrived.notified())
                .await;
        }
        panic!(
            "fewer than {n} matching webhooks arrived: {:?}",
            self.received()
        );
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn receive(State(inbox): State<Arc<Inbox>>, headers: HeaderMap, body: Bytes) -> AxStatus {
    let h = |k: &str| {
        headers
            .get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let r = Received {
        id: h("webhook-id"),
        timestamp: h("webhook-timestamp"),
        signature: h("webhook-signature"),
        content_type: h("content-type"),
        body: body.to_vec(),
    };
    let attempt = {
        let mut seen = inbox.seen.lock().expect("lock");
        let n = seen.entry(r.id.clone()).or_default();
        *n += 1;
        *n
    };
    inbox.got.lock().expect("lock").push(r);
    inbox.arrived.notify_waiters();
    match inbox.behaviour {
        Behaviour::Ok => AxStatus::NO_CONTENT,
        Behaviour::FailFirst if attempt == 1 => AxStatus::INTERNAL_SERVER_ERROR,
        Behaviour::FailFirst => AxStatus::OK,
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3_600)).await;
            AxStatus::OK
        }
    }
}

/// The receiver's check, written from the convention and not from the server's code: the key
/// is the base64 after `whsec_`, the signed content `id.timestamp.body`, and the header a
/// space-separated list of `v1,<base64>` of which one must match (compared in constant time
/// by `verify_slice`).
fn verify(secret: &str, r: &Received) -> bool {
    let Some(key) = secret
        .strip_prefix("whsec_")
        .and_then(|b| STANDARD.decode(b).ok())
    else {
        return false;
    };
    r.signature.split(' ').any(|sig| {
        let Some(b64) = sig.strip_prefix("v1,") else {
            return false;
        };
        let Ok(expected) = STANDARD.decode(b64) else {
            return false;
        };
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
        mac.update(r.id.as_bytes());
        mac.update(b".");
        mac.update(r.timestamp.as_bytes());
        mac.update(b".");
        mac.update(&r.body);
        mac.verify_slice(&expected).is_ok()
    })
}

fn test_settings(c: &mut portcullis_server::config::Config) {
    c.webhooks.insecure_allow_http = true;
    c.webhooks.insecure_allow_private_addresses = true;
    c.webhooks.poll_interval_ms = 20;
    c.webhooks.retry_base_ms = 1_000;
    c.webhooks.retry_max_ms = 1_000;
    c.webhooks.max_attempts = 3;
    c.webhooks.timeout_ms = 5_000;
}

impl Node {
    async fn webhook(&self, base: &str, url: &str) -> Value {
        let (s, v) = self
            .call(
                Method::POST,
                &format!("/admin/v1{base}/webhooks"),
                Some(json!({"url": url, "description": "on-call"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        v
    }

    async fn deliveries(&self, query: &str) -> Vec<Value> {
        let (s, v) = self
            .call(
                Method::GET,
                &format!("/admin/v1/webhook-deliveries{query}"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["items"].as_array().expect("list").clone()
    }

    /// Waits (bounded) for a delivery with this id to reach `status`, stepping the clock past
    /// any backoff meanwhile.
    async fn delivery_becomes(&self, id: &str, status: &str) -> Value {
        for _ in 0..1_500 {
            if let Some(d) = self
                .deliveries("")
                .await
                .into_iter()
                .find(|d| d["id"] == id && d["status"] == status)
            {
                return d;
            }
            self.clock.advance(Duration::from_millis(200));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "delivery {id} never became {status}: {:?}",
            self.deliveries("").await
        );
    }

    /// Presents a revoked API key once: one `inactive_credential_use` alert for `api_key:<id>`.
    async fn revoked_key_used(&self) -> String {
        let (id, key) = self.api_key().await;
        let (s, v) = self
            .call(
                Method::POST,
                &format!("/admin/v1/tenants/acme/api-keys/{id}/revoke"),
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert!(!self.verify(&key).await);
        format!("api_key:{id}")
    }
}

fn subject_is(subject: &str) -> impl Fn(&Received) -> bool + '_ {
    move |r| r.event()["subject"] == subject
}

/// The brief's end-to-end case: failed client authentications over the threshold, through the
/// running server, reach a tenant endpoint and an installation-wide one, signed, as
/// CloudEvents; a forged body or signature does not verify.
#[tokio::test]
async fn a_failed_auth_spike_is_delivered_signed_to_tenant_and_installation_endpoints() {
    let node = Node::start_with(test_settings).await;
    let (client, _) = node.seed().await;
    let tenant_rx = Receiver::start(Behaviour::Ok).await;
    let global_rx = Receiver::start(Behaviour::Ok).await;
    let tenant_hook = node.webhook("/tenants/acme", &tenant_rx.url).await;
    let global_hook = node.webhook("", &global_rx.url).await;
    let tenant_secret = tenant_hook["secret"].as_str().expect("secret").to_owned();
    let global_secret = global_hook["secret"].as_str().expect("secret").to_owned();
    assert!(tenant_secret.starts_with("whsec_"));
    assert_eq!(global_hook["tenant"], "system");
    // The secret is shown once: never again by show or list.
    let (s, shown) = node
        .call(
            Method::GET,
            &format!(
                "/admin/v1/tenants/acme/webhooks/{}",
                tenant_hook["id"].as_str().expect("id")
            ),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert!(shown.get("secret").is_none(), "{shown}");

    for _ in 0..25 {
        // 401, then 429 once the failure throttle refuses the client (still counted).
        assert_ne!(node.token(&client, "not-the-secret").await, StatusCode::OK);
    }
    let subject = format!("client:{client}");
    let got = tenant_rx.wait_for(1, subject_is(&subject)).await;
    let r = &got[0];
    assert!(verify(&tenant_secret, r), "signature must verify: {r:?}");
    assert!(
        !verify(&global_secret, r),
        "another endpoint's secret must not verify"
    );
    let mut forged = r.clone();
    forged.body = r
        .body
        .iter()
        .map(|b| if *b == b'5' { b'6' } else { *b })
        .collect();
    assert!(
        !verify(&tenant_secret, &forged),
        "an edited body must not verify"
    );
    let mut forged = r.clone();
    forged.signature = "v1,AAAA".into();
    assert!(!verify(&tenant_secret, &forged));
    let mut forged = r.clone();
    forged.timestamp = "1".into();
    assert!(!verify(&tenant_secret, &forged), "the timestamp is signed");

    assert_eq!(r.content_type, "application/cloudevents+json");
    assert_eq!(r.timestamp, node.clock.now().as_secs().to_string());
    let e = r.event();
    assert_eq!(e["specversion"], "1.0");
    assert_eq!(e["id"], r.id.as_str());
    assert_eq!(e["source"], crate::common::ISSUER);
    assert_eq!(e["type"], "dev.portcullis.alert.opened");
    assert_eq!(e["datacontenttype"], "application/json");
    assert_eq!(e["data"]["rule"], "failed_auth_spike");
    assert_eq!(e["data"]["tenant"], "acme");
    assert_eq!(e["data"]["shadow"], false);
    assert!(e["data"]["evidence"]["count"].as_u64().expect("count") >= 20);
    assert!(e["time"].as_str().is_some_and(|t| t.ends_with('Z')));

    // The installation-wide endpoint gets the same alert under its own id and secret.
    let got = global_rx.wait_for(1, subject_is(&subject)).await;
    assert!(verify(&global_secret, &got[0]));
    assert_ne!(got[0].id, r.id);

    let d = node.delivery_becomes(&r.id, "delivered").await;
    assert_eq!(d["attempts"], 1);
    assert_eq!(d["endpoint_tenant"], "acme");
    let scrape = node.metrics.render().await;
    assert!(
        scrape.contains(
            "portcullis_webhook_deliveries_total{rule=\"failed_auth_spike\",outcome=\"delivered\"}"
        ),
        "{scrape}"
    );
    node.stop().await;
}

#[tokio::test]
async fn a_receiver_answering_500_then_200_gets_the_same_message_on_a_retry() {
    let node = Node::start_with(test_settings).await;
    node.seed().await;
    let rx = Receiver::start(Behaviour::FailFirst).await;
    let hook = node.webhook("/tenants/acme", &rx.url).await;
    let secret = hook["secret"].as_str().expect("secret").to_owned();
    let subject = node.revoked_key_used().await;

    let first = rx.wait_for(1, subject_is(&subject)).await;
    let id = first[0].id.clone();
    let pending = node.delivery_becomes(&id, "pending").await;
    assert!(pending["attempts"].as_i64().expect("attempts") >= 1);
    let delivered = node.delivery_becomes(&id, "delivered").await;
    assert_eq!(delivered["attempts"], 2);
    assert_eq!(delivered["last_status"], 200);
    let both = rx.wait_for(2, subject_is(&subject)).await;
    assert!(both.iter().all(|r| r.id == id && verify(&secret, r)));
    assert_eq!(
        both[0].body, both[1].body,
        "every attempt sends the same bytes"
    );
    let m = &node.metrics.render().await;
    assert!(m.contains(
        "portcullis_webhook_deliveries_total{rule=\"inactive_credential_use\",outcome=\"retried\"} 1"
    ), "{m}");
    assert!(m.contains(
        "portcullis_webhook_deliveries_total{rule=\"inactive_credential_use\",outcome=\"delivered\"} 1"
    ), "{m}");
    node.stop().await;
}

#[tokio::test]
async fn a_receiver_that_is_down_is_dead_lettered_and_redelivered_once_it_is_back() {
    let node = Node::start_with(test_settings).await;
    node.seed().await;
    // A port with nobody listening: connections are refused.
    let parked = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr: SocketAddr = parked.local_addr().expect("addr");
    drop(parked);
    let url = format!("http://{addr}/hook");
    node.webhook("/tenants/acme", &url).await;
    node.revoked_key_used().await;

    let mut queued = None;
    for _ in 0..1_000 {
        queued = node.deliveries("").await.into_iter().next();
        if queued.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let queued = queued.expect("a delivery was queued");
    let id = queued["id"].as_str().expect("id").to_owned();
    let dead = node.delivery_becomes(&id, "dead").await;
    assert_eq!(dead["attempts"], 3);
    assert_eq!(dead["last_error"], "could not connect");
    let (s, v) = node
        .call(
            Method::GET,
            "/admin/v1/tenants/acme/webhook-deliveries?status=dead",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["items"][0]["id"], id.as_str());
    assert!(node
        .metrics
        .render()
        .await
        .contains("portcullis_webhook_deliveries_total{rule=\"inactive_credential_use\",outcome=\"dead_lettered\"} 1"));

    // Back up on the same port; redelivery from the dead-letter list gets it there.
    let listener = tokio::net::TcpListener::bind(addr).await.expect("rebind");
    let rx = Receiver::on(listener, Behaviour::Ok);
    let (s, v) = node
        .call(
            Method::POST,
            &format!("/admin/v1/tenants/acme/webhook-deliveries/{id}/redeliver"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "pending");
    assert_eq!(v["attempts"], 0);
    let got = rx.wait_for(1, |r| r.id == id).await;
    assert_eq!(got[0].id, id);
    node.delivery_becomes(&id, "delivered").await;
    // Only a dead delivery is redelivered; unknown ids are not found.
    let (s, _) = node
        .call(
            Method::POST,
            &format!("/admin/v1/webhook-deliveries/{id}/redeliver"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT);
    let (s, _) = node
        .call(
            Method::POST,
            "/admin/v1/webhook-deliveries/msg_nosuch/redeliver",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    node.stop().await;
}

/// While a receiver holds the delivery open, tokens are still issued and their audit events
/// still written: nothing on the request path or the audit queue waits for the receiver.
#[tokio::test]
async fn a_hanging_receiver_slows_neither_the_token_endpoint_nor_the_audit_log() {
    let node = Node::start_with(|c| {
        test_settings(c);
        c.webhooks.timeout_ms = 60_000;
        c.webhooks.lease_secs = 120;
    })
    .await;
    let (client, secret) = node.seed().await;
    let rx = Receiver::start(Behaviour::Hang).await;
    node.webhook("/tenants/acme", &rx.url).await;
    let subject = node.revoked_key_used().await;
    // The receiver has the request and is not answering.
    rx.wait_for(1, subject_is(&subject)).await;
    for _ in 0..20 {
        assert_eq!(node.token(&client, &secret).await, StatusCode::OK);
    }
    let mut written = 0;
    for _ in 0..500 {
        let (s, v) = node
            .call(
                Method::GET,
                "/admin/v1/tenants/acme/audit-events?action=oauth.token.issue&limit=100",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        written = v["items"].as_array().map_or(0, Vec::len);
        if written >= 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        written >= 20,
        "audit events of the tokens were written: {written}"
    );
    // Still in flight, not failed: the lease holds it.
    let d = node.deliveries("").await;
    assert_eq!(d[0]["status"], "pending");
    node.stop().await;
}

/// A rule in shadow mode records its alert, marked, and never sends it. The detectors and the
/// writer keep event order, so once a later (live) alert's webhook has arrived, the shadow one
/// would have been queued before it.
#[tokio::test]
async fn a_shadow_rule_is_recorded_but_never_delivered() {
    let node = Node::start_with(|c| {
        test_settings(c);
        c.detect.rules.failed_auth_spike = Mode::Shadow;
    })
    .await;
    let (client, _) = node.seed().await;
    let rx = Receiver::start(Behaviour::Ok).await;
    node.webhook("/tenants/acme", &rx.url).await;
    for _ in 0..25 {
        // 401, then 429 once the failure throttle refuses the client (still counted).
        assert_ne!(node.token(&client, "not-the-secret").await, StatusCode::OK);
    }
    let shadow = node.alert_for(&format!("client:{client}")).await;
    assert_eq!(shadow["shadow"], true);
    let live = node.revoked_key_used().await;
    rx.wait_for(1, subject_is(&live)).await;
    let rules: Vec<Value> = rx
        .received()
        .iter()
        .map(|r| r.event()["data"]["rule"].clone())
        .collect();
    assert!(
        rules.iter().all(|r| r == "inactive_credential_use"),
        "{rules:?}"
    );
    assert!(node
        .deliveries("")
        .await
        .iter()
        .all(|d| d["rule"] == "inactive_credential_use"));
    node.stop().await;
}

#[tokio::test]
async fn a_rotated_secret_signs_what_follows_and_the_old_one_no_longer_verifies() {
    let node = Node::start_with(test_settings).await;
    node.seed().await;
    let rx = Receiver::start(Behaviour::Ok).await;
    let hook = node.webhook("/tenants/acme", &rx.url).await;
    let id = hook["id"].as_str().expect("id");
    let old = hook["secret"].as_str().expect("secret").to_owned();
    let (s, rotated) = node
        .call(
            Method::POST,
            &format!("/admin/v1/tenants/acme/webhooks/{id}/rotate-secret"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{rotated}");
    let new = rotated["secret"].as_str().expect("secret").to_owned();
    assert_ne!(new, old);
    // Another tenant's path never finds it.
    let (s, _) = node
        .call(
            Method::POST,
            &format!("/admin/v1/tenants/globex/webhooks/{id}/rotate-secret"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let subject = node.revoked_key_used().await;
    let got = rx.wait_for(1, subject_is(&subject)).await;
    assert!(verify(&new, &got[0]));
    assert!(!verify(&old, &got[0]));
    node.stop().await;
}

#[tokio::test]
async fn bad_webhook_input_is_refused_and_changes_nothing() {
    // Safe defaults: no http, no private addresses.
    let node = Node::start().await;
    node.seed().await;
    for body in [
        json!({"url": "http://hooks.example.com/in"}),
        json!({"url": "https://127.0.0.1/in"}),
        json!({"url": "https://10.0.0.7/in"}),
        json!({"url": "https://[::1]/in"}),
        json!({"url": "https://localhost/in"}),
        json!({"url": "https://user:pw@hooks.example.com/in"}),
        json!({"url": "not a url"}),
        json!({"url": "https://hooks.example.com/in", "description": "x".repeat(201)}),
        json!({"url": "https://hooks.example.com/in", "extra": 1}),
        json!({}),
    ] {
        let (s, v) = node
            .call(
                Method::POST,
                "/admin/v1/tenants/acme/webhooks",
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} -> {v}");
    }
    let (s, v) = node
        .call(Method::GET, "/admin/v1/tenants/acme/webhooks", None)
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["items"].as_array().map(Vec::len), Some(0), "{v}");
    // A public https endpoint is accepted (nothing is sent until an alert).
    let hook = node
        .webhook("/tenants/acme", "https://hooks.example.com/in")
        .await;
    let id = hook["id"].as_str().expect("id");
    for (method, path, want) in [
        (
            Method::GET,
            format!("/admin/v1/tenants/globex/webhooks/{id}"),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            format!("/admin/v1/webhooks/{id}"),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::DELETE,
            format!("/admin/v1/webhooks/{id}"),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/admin/v1/tenants/acme/webhooks/wh_nosuch".to_owned(),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            format!("/admin/v1/tenants/acme/webhooks/{}", "x".repeat(100)),
            StatusCode::NOT_FOUND,
        ),
        (
            Method::GET,
            "/admin/v1/webhook-deliveries?status=lost".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/admin/v1/webhook-deliveries?tenant=Not_A_Tenant".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
        (
            Method::GET,
            "/admin/v1/tenants/acme/webhook-deliveries?bogus=1".to_owned(),
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (s, v) = node.call(method.clone(), &path, None).await;
        assert_eq!(s, want, "{method} {path} -> {v}");
    }
    let (s, _) = node
        .call(
            Method::DELETE,
            &format!("/admin/v1/tenants/acme/webhooks/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, _) = node
        .call(
            Method::DELETE,
            &format!("/admin/v1/tenants/acme/webhooks/{id}"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    node.stop().await;
}

/// Use of a revoked API key through the running server: a signed `inactive_credential_use`
/// webhook at the receiver; the same events are in the audit chain, which verifies, and in the
/// tenant's streamed JSON Lines export (oldest first, only the tenant's).
#[tokio::test]
async fn a_revoked_key_use_is_delivered_and_the_audit_chain_verifies_and_exports() {
    let node = Node::start_with(test_settings).await;
    node.seed().await;
    let rx = Receiver::start(Behaviour::Ok).await;
    let hook = node.webhook("/tenants/acme", &rx.url).await;
    let secret = hook["secret"].as_str().expect("secret").to_owned();
    let subject = node.revoked_key_used().await;
    let got = rx.wait_for(1, subject_is(&subject)).await;
    assert!(verify(&secret, &got[0]), "signature must verify");
    assert_eq!(got[0].event()["data"]["rule"], "inactive_credential_use");

    // Wait (bounded) for the audit writer to store the verify event.
    let mut lines = Vec::new();
    for _ in 0..200 {
        let (s, body) = node
            .call(
                Method::GET,
                "/admin/v1/tenants/acme/audit-events/export?since=24h&format=jsonl",
                None,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{body}");
        let text = body
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{body}\n"));
        lines = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("a JSON line"))
            .collect();
        if lines.iter().any(|e| e["action"] == "api_key.verify") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        lines.iter().any(|e| e["action"] == "api_key.verify"),
        "{lines:?}"
    );
    assert!(lines.iter().all(|e| e["tenant"] == "acme"), "{lines:?}");
    let times: Vec<_> = lines.iter().map(|e| e["occurred_at"].as_i64()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "oldest first");
    let (s, bad) = node
        .call(
            Method::GET,
            "/admin/v1/tenants/acme/audit-events/export?format=csv",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}");

    let (s, report) = node.call(Method::GET, "/admin/v1/audit/verify", None).await;
    assert_eq!(s, StatusCode::OK, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["checked"].as_u64().expect("checked") >= lines.len() as u64);
    node.stop().await;
}
