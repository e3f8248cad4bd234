//! Detectors and alerts end to end (issue 19): a node assembled by `serve::assemble`, served on
//! a loopback port, driven over HTTP. Repeated failed client authentications open a failed-auth
//! alert, presenting a revoked API key opens an inactive-credential alert, a normal load opens
//! none; the alert admin API lists, shows, acknowledges and resolves them, and refuses bad
//! input with 4xx without changing anything.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use portcullis_core::time::{ManualClock, Timestamp};
use portcullis_server::bootstrap::BOOTSTRAP_FILE;
use portcullis_server::config::OAuthConfig;
use portcullis_server::serve::{Assembled, BackgroundTasks};
use portcullis_store::{SqliteStore, Store};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

pub(crate) struct Node {
    pub(crate) url: String,
    pub(crate) admin: String,
    pub(crate) http: reqwest::Client,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) tasks: Option<BackgroundTasks>,
    pub(crate) verifier: Arc<portcullis_service::api_keys::ApiKeyVerifier>,
    pub(crate) metrics: Arc<portcullis_server::metrics::NodeMetrics>,
    pub(crate) server: tokio::task::JoinHandle<()>,
    pub(crate) _dir: tempfile::TempDir,
}

impl Node {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(
        change: impl FnOnce(&mut portcullis_server::config::Config),
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("db"))
                .await
                .expect("store"),
        );
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
        let mut config = common::config(dir.path());
        // The default failure throttle stays on: after 10 failures the token endpoint refuses
        // the client from this address unchecked (recorded under the installation's tenant),
        // and the detectors still count those for the client.
        config.oauth = OAuthConfig::default();
        config.audit.flush_interval_ms = 20;
        change(&mut config);
        let Assembled {
            router,
            tasks,
            verifier,
            metrics,
            ..
        } = common::assemble(&config, common::ISSUER, store, clock.clone()).await;
        let admin = std::fs::read_to_string(dir.path().join(BOOTSTRAP_FILE))
            .expect("bootstrap token")
            .trim()
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        Self {
            url,
            admin,
            http: reqwest::Client::new(),
            clock,
            tasks: Some(tasks),
            verifier,
            metrics,
            server,
            _dir: dir,
        }
    }

    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.call_as(&self.admin, method, path, body).await
    }

    pub(crate) async fn call_as(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status();
        let text = resp.text().await.expect("body");
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    pub(crate) async fn token(&self, id: &str, secret: &str) -> StatusCode {
        self.http
            .post(format!("{}/oauth2/token", self.url))
            .header(
                "authorization",
                format!("Basic {}", STANDARD.encode(format!("{id}:{secret}"))),
            )
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .expect("token request")
            .status()
    }

    /// Tenant `acme` with an API and a client; returns the client's id and secret.
    pub(crate) async fn seed(&self) -> (String, String) {
        let (s, v) = self
            .call(
                Method::POST,
                "/admin/v1/tenants",
                Some(json!({"id": "acme"})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, v) = self
            .call(
                Method::POST,
                "/admin/v1/tenants/acme/resource-servers",
                Some(json!({"audience": "payments-api", "scopes": ["payments:read"]})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (s, v) = self
            .call(
                Method::POST,
                "/admin/v1/tenants/acme/clients",
                Some(json!({"name": "sync", "scopes": ["payments:read"], "audiences": ["payments-api"]})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (
            v["client_id"].as_str().expect("id").to_owned(),
            v["client_secret"].as_str().expect("secret").to_owned(),
        )
    }

    pub(crate) async fn api_key(&self) -> (String, String) {
        let (s, v) = self
            .call(
                Method::POST,
                "/admin/v1/tenants/acme/api-keys",
                Some(json!({"name": "orders", "owner": "partner-a", "scopes": ["orders:read"]})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (
            v["id"].as_str().expect("id").to_owned(),
            v["key"].as_str().expect("key").to_owned(),
        )
    }

    /// Whether the verify endpoint found the key valid.
    pub(crate) async fn verify(&self, key: &str) -> bool {
        let (s, v) = self
            .call(
                Method::POST,
                "/v1/api-keys/verify",
                Some(json!({"key": key})),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["valid"] == true
    }

    pub(crate) async fn alerts(&self, query: &str) -> Vec<Value> {
        let (s, v) = self
            .call(Method::GET, &format!("/admin/v1/alerts{query}"), None)
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        v["items"].as_array().expect("list").clone()
    }

    /// Waits (bounded) for an alert whose subject is `subject`.
    pub(crate) async fn alert_for(&self, subject: &str) -> Value {
        for _ in 0..500 {
            if let Some(a) = self
                .alerts("")
                .await
                .into_iter()
                .find(|a| a["subject"] == subject)
            {
                return a;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no alert for {subject}: {:?}", self.alerts("").await);
    }

    pub(crate) async fn stop(mut self) {
        if let Some(t) = self.tasks.take() {
            t.shutdown(&self.verifier).await;
        }
        self.server.abort();
    }
}

/// A normal load, then the two attacks: only the attacks open alerts (the detectors read the
/// bus in order, so once the attacks' alerts are stored the normal load was judged before).
#[tokio::test]
async fn failed_auth_and_revoked_key_use_open_alerts_and_a_normal_load_opens_none() {
    let node = Node::start().await;
    let (client, secret) = node.seed().await;
    let (_, good_key) = node.api_key().await;
    let (dead_id, dead_key) = node.api_key().await;

    // Normal: tokens and key checks that succeed, two typos.
    for _ in 0..30 {
        assert_eq!(node.token(&client, &secret).await, StatusCode::OK);
        assert!(node.verify(&good_key).await);
    }
    for _ in 0..2 {
        assert_eq!(node.token(&client, "wrong").await, StatusCode::UNAUTHORIZED);
    }

    // Attack 1: the revoked key is still presented.
    let (s, v) = node
        .call(
            Method::POST,
            &format!("/admin/v1/tenants/acme/api-keys/{dead_id}/revoke"),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(!node.verify(&dead_key).await);
    let revoked = node.alert_for(&format!("api_key:{dead_id}")).await;
    assert_eq!(revoked["rule"], "inactive_credential_use");
    assert_eq!(revoked["status"], "open");
    assert_eq!(revoked["evidence"]["detail"], "api_key_revoked");
    assert_eq!(
        revoked["evidence"]["sample_event_ids"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    // Attack 2: guessing the client's secret (401, then 429 once throttled).
    for _ in 0..25 {
        assert_ne!(node.token(&client, "guess").await, StatusCode::OK);
    }
    let spike = node.alert_for(&format!("client:{client}")).await;
    assert_eq!(spike["rule"], "failed_auth_spike");
    assert_eq!(spike["tenant"], "acme");
    assert_eq!(spike["evidence"]["threshold"], 20);
    assert_eq!(spike["evidence"]["count"], 20);
    assert_eq!(spike["evidence"]["window_secs"], 300);

    // Nothing else: no alert from the normal load (the loopback address spiked with the
    // client, by the same failures; the tenant's own count stayed under the floor, as the
    // throttled refusals belong to no tenant).
    let mut subjects: Vec<String> = node
        .alerts("")
        .await
        .iter()
        .map(|a| a["subject"].as_str().expect("subject").to_owned())
        .collect();
    subjects.sort();
    let mut want = vec![
        "address:127.0.0.1".to_owned(),
        format!("api_key:{dead_id}"),
        format!("client:{client}"),
    ];
    want.sort();
    assert_eq!(subjects, want);

    // The scrape counts them per rule.
    let scrape = node.metrics.render().await;
    assert!(
        scrape.contains("portcullis_detect_alerts_fired_total{rule=\"failed_auth_spike\"} 2"),
        "{scrape}"
    );
    assert!(scrape.contains("portcullis_detect_events_lost_total 0"));
    node.stop().await;
}

#[tokio::test]
async fn alerts_are_acknowledged_and_resolved_once_and_bad_input_changes_nothing() {
    let node = Node::start().await;
    node.seed().await;
    let (dead_id, dead_key) = node.api_key().await;
    node.call(
        Method::POST,
        &format!("/admin/v1/tenants/acme/api-keys/{dead_id}/revoke"),
        None,
    )
    .await;
    assert!(!node.verify(&dead_key).await);
    let alert = node.alert_for(&format!("api_key:{dead_id}")).await;
    let id = alert["id"].as_str().expect("id").to_owned();
    let base = format!("/admin/v1/tenants/acme/alerts/{id}");

    // Tenant list and show.
    let (s, v) = node
        .call(
            Method::GET,
            "/admin/v1/tenants/acme/alerts?status=open",
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["items"].as_array().map(Vec::len), Some(1), "{v}");
    let (s, v) = node.call(Method::GET, &base, None).await;
    assert_eq!((s, &v["id"]), (StatusCode::OK, &json!(id)));

    // Bad input: 4xx with a standard code, nothing changed.
    for (method, path, status, code) in [
        (
            Method::GET,
            "/admin/v1/tenants/acme/alerts?status=closed".to_owned(),
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            "/admin/v1/tenants/acme/alerts?rule=nope".to_owned(),
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            "/admin/v1/tenants/acme/alerts?colour=red".to_owned(),
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            "/admin/v1/alerts?tenant=Not!".to_owned(),
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            "/admin/v1/tenants/acme/alerts?limit=0".to_owned(),
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            "/admin/v1/tenants/acme/alerts?cursor=not-a-cursor".to_owned(),
            400,
            "invalid_request",
        ),
        (
            Method::GET,
            "/admin/v1/tenants/acme/alerts/nope".to_owned(),
            404,
            "not_found",
        ),
        (
            Method::POST,
            format!("/admin/v1/tenants/acme/alerts/{}/ack", "x".repeat(500)),
            404,
            "not_found",
        ),
        (
            Method::POST,
            "/admin/v1/tenants/acme/alerts/nope/resolve".to_owned(),
            404,
            "not_found",
        ),
    ] {
        let (s, v) = node.call(method, &path, None).await;
        assert_eq!(s.as_u16(), status, "{path}: {v}");
        assert_eq!(v["error"], code, "{path}");
    }
    let (_, v) = node.call(Method::GET, &base, None).await;
    assert_eq!(v["status"], "open");

    // Another tenant's admin neither sees nor changes it (403 on the tenant route), and a
    // tenant admin cannot use the global list.
    let (s, v) = node
        .call(
            Method::POST,
            "/admin/v1/tenants",
            Some(json!({"id": "globex"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, v) = node
        .call(
            Method::POST,
            "/admin/v1/tenants/globex/admin-tokens",
            Some(json!({"name": "g"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let globex = v["token"].as_str().expect("token").to_owned();
    let (s, _) = node
        .call_as(&globex, Method::POST, &format!("{base}/ack"), None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = node
        .call_as(&globex, Method::GET, "/admin/v1/alerts", None)
        .await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, v) = node
        .call_as(
            &globex,
            Method::GET,
            "/admin/v1/tenants/globex/alerts",
            None,
        )
        .await;
    assert_eq!(
        (s, v),
        (StatusCode::OK, json!({"items": [], "next_cursor": null}))
    );

    // Acknowledge once; again is a conflict.
    let (s, v) = node.call(Method::POST, &format!("{base}/ack"), None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["status"], "acknowledged");
    assert!(v["acknowledged_by"]
        .as_str()
        .expect("by")
        .starts_with("admin:"));
    let (s, v) = node.call(Method::POST, &format!("{base}/ack"), None).await;
    assert_eq!((s, &v["error"]), (StatusCode::CONFLICT, &json!("conflict")));
    // Resolve once; then neither ack nor resolve.
    let (s, v) = node
        .call(Method::POST, &format!("{base}/resolve"), None)
        .await;
    assert_eq!((s, &v["status"]), (StatusCode::OK, &json!("resolved")));
    for verb in ["ack", "resolve"] {
        let (s, _) = node
            .call(Method::POST, &format!("{base}/{verb}"), None)
            .await;
        assert_eq!(s, StatusCode::CONFLICT, "{verb}");
    }
    // A new use of the dead key, once the rule's rate-limit interval has passed, opens a new
    // alert.
    node.clock.advance(Duration::from_secs(61));
    assert!(!node.verify(&dead_key).await);
    for _ in 0..500 {
        if node.alerts("?status=open").await.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let open = node.alerts("?status=open").await;
    assert_eq!(open.len(), 1);
    assert_ne!(open[0]["id"], json!(id));
    node.stop().await;
}

/// `detect.enabled = false`: no detector task, no alert, no detector series in the scrape.
#[tokio::test]
async fn with_detection_off_nothing_is_raised() {
    let node = Node::start_with(|c| c.detect.enabled = false).await;
    let (client, _) = node.seed().await;
    for _ in 0..25 {
        assert_ne!(node.token(&client, "guess").await, StatusCode::OK);
    }
    assert!(node.metrics.detect.is_none());
    assert!(!node.metrics.render().await.contains("portcullis_detect_"));
    // The failures were recorded (the audit log has them) and still no alert exists.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(node.alerts("").await.is_empty());
    node.stop().await;
}
