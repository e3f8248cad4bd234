//! The revocation feed over real HTTP (each node is the real router served on a loopback port):
//! snapshot paging and authentication, tenant filtering, the SSE stream's order, resumption
//! and heartbeats, API key operations writing to the log, and propagation between nodes that
//! share a database, on SQLite (one file, found by the head poll) and PostgreSQL (two nodes on
//! one schema, pushed by `LISTEN/NOTIFY`).
//!
//! Waits have generous deadlines so a broken build fails instead of hanging; nothing asserts
//! how fast a step was.

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::audit::AuditEvent;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{Clock, ManualClock, Timestamp};
use portcullis_server::config::AuditConfig;
use portcullis_server::serve::{Assembled, BackgroundTasks};
use portcullis_service::state::AppState;
use portcullis_store::{NewRevocation, PgStore, RevocationKind, SqliteStore, Store};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::task::JoinHandle;

const DEADLINE: Duration = Duration::from_secs(15);
/// The harness clock: entries expiring before it are expired.
const NOW_SECS: i64 = 1_800_000_000;

/// One server node: its own store handle, verifier and follower, assembled as `serve` does and
/// served on a loopback port.
struct Node {
    url: String,
    state: AppState,
    /// The node's background tasks (the revocation follower among them); stopping them drains
    /// the audit log.
    tasks: Option<BackgroundTasks>,
    server: JoinHandle<()>,
}

impl Node {
    /// A node on `store`, keeping its KEK in `dir` (shared by the nodes of one cluster).
    async fn start(
        store: Arc<dyn Store>,
        dir: &std::path::Path,
        clock: Arc<ManualClock>,
        heartbeat: Duration,
    ) -> Self {
        let mut config = common::config(dir);
        config.audit = AuditConfig {
            batch_size: 256,
            flush_interval_ms: 10,
            queue_capacity: 100_000,
            ..AuditConfig::default()
        };
        config.revocations.heartbeat_interval_ms =
            u64::try_from(heartbeat.as_millis()).expect("heartbeat");
        let Assembled {
            state,
            router: app,
            tasks,
            ..
        } = common::assemble(&config, common::ISSUER, store, clock).await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await;
        });
        Self {
            url,
            state,
            tasks: Some(tasks),
            server,
        }
    }

    fn client() -> reqwest::Client {
        reqwest::Client::new()
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Self::client()
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
            serde_json::from_str(&text).expect("json body")
        };
        (status, v)
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(reqwest::Method::GET, path, token, None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    /// Opens the stream; `last_event_id` and `query` as given.
    async fn stream(&self, token: &str, last_event_id: Option<&str>, query: &str) -> Sse {
        let resp = self.open_stream(token, last_event_id, query).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(
            resp.headers()["content-type"],
            "text/event-stream",
            "content type"
        );
        Sse {
            resp,
            buf: String::new(),
        }
    }

    async fn open_stream(
        &self,
        token: &str,
        last_event_id: Option<&str>,
        query: &str,
    ) -> reqwest::Response {
        let mut req = Self::client()
            .get(format!("{}/v1/revocations/stream{query}", self.url))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        req.send().await.expect("stream request")
    }

    /// Creates an acme key; returns (id, key).
    async fn acme_key(&self, token: &str, owner: &str) -> (String, String) {
        let (s, v) = self
            .post(
                "/admin/v1/tenants/acme/api-keys",
                token,
                json!({"name": "feed test", "owner": owner, "expires_in": "30d"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        (
            v["id"].as_str().expect("id").to_owned(),
            v["key"].as_str().expect("key").to_owned(),
        )
    }

    /// What this node's verify endpoint says about `key`.
    async fn verify(&self, token: &str, key: &str) -> Verdict {
        let (s, v) = self
            .post("/v1/api-keys/verify", token, json!({"key": key}))
            .await;
        if s == StatusCode::OK && v == json!({"valid": false}) {
            Verdict::Refused
        } else if s == StatusCode::OK && v["valid"] == true {
            Verdict::Valid
        } else {
            Verdict::Other(s, v)
        }
    }

    async fn stop(mut self) {
        self.server.abort();
        if let Some(tasks) = self.tasks.take() {
            tasks.shutdown(&self.state.api_keys.verifier).await;
        }
    }
}

/// Nodes sharing one database, with admin tokens for the system (global), acme and globex.
struct Cluster {
    nodes: Vec<Node>,
    clock: Arc<ManualClock>,
    global: String,
    acme: String,
    globex: String,
    pg: Option<(sqlx::PgPool, String)>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// One SQLite node.
    async fn sqlite() -> Self {
        Self::sqlite_nodes(1, Duration::from_secs(1)).await
    }

    /// `n` nodes on one SQLite file: each has its own store handle, so only the head poll
    /// (set short here) tells a node of another's appends.
    async fn sqlite_nodes(n: usize, heartbeat: Duration) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut stores: Vec<Arc<dyn Store>> = Vec::new();
        for _ in 0..n {
            let s = SqliteStore::open(&dir.path().join("db"))
                .await
                .expect("open");
            s.set_revocation_poll_interval(Duration::from_millis(100));
            stores.push(Arc::new(s));
        }
        Self::with_stores(stores, dir, None, heartbeat).await
    }

    /// Two PostgreSQL nodes on one fresh schema. Their head polls are an hour apart, so what
    /// reaches a node from the other came through `LISTEN/NOTIFY`. `None` (with a notice) when
    /// `PORTCULLIS_TEST_DATABASE_URL` is unset; a failure under CI.
    async fn postgres(name: &str, n: usize) -> Option<Self> {
        let Ok(url) = std::env::var("PORTCULLIS_TEST_DATABASE_URL") else {
            assert!(
                std::env::var("CI").is_err(),
                "PORTCULLIS_TEST_DATABASE_URL must be set in CI"
            );
            eprintln!("notice: PORTCULLIS_TEST_DATABASE_URL is unset; skipping `{name}`");
            return None;
        };
        let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut stores: Vec<Arc<dyn Store>> = Vec::new();
        let mut pool = None;
        for _ in 0..n {
            let s = PgStore::connect_in_schema(&url, &schema)
                .await
                .expect("PostgreSQL named by PORTCULLIS_TEST_DATABASE_URL must be reachable");
            s.set_revocation_poll_interval(Duration::from_secs(3_600));
            pool.get_or_insert_with(|| s.pool().clone());
            stores.push(Arc::new(s));
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let pg = pool.map(|p| (p, schema));
        Some(Self::with_stores(stores, dir, pg, Duration::from_secs(1)).await)
    }

    async fn with_stores(
        stores: Vec<Arc<dyn Store>>,
        dir: tempfile::TempDir,
        pg: Option<(sqlx::PgPool, String)>,
        heartbeat: Duration,
    ) -> Self {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(NOW_SECS)));
        let first = stores[0].clone();
        let common::Admins {
            global,
            acme,
            globex,
        } = common::seed(first.as_ref(), clock.now()).await;
        let mut nodes = Vec::new();
        for s in stores {
            nodes.push(Node::start(s, dir.path(), clock.clone(), heartbeat).await);
        }
        Self {
            nodes,
            clock,
            global,
            acme,
            globex,
            pg,
            _dir: dir,
        }
    }

    fn node(&self) -> &Node {
        &self.nodes[0]
    }

    fn store(&self) -> &Arc<dyn Store> {
        &self.nodes[0].state.store
    }

    /// Appends straight to the log (what the token service and admin API do).
    async fn append(
        &self,
        tenant: &str,
        kind: RevocationKind,
        subject: &str,
        expires_secs: Option<i64>,
    ) -> i64 {
        self.store()
            .append_revocation(
                &NewRevocation {
                    tenant: TenantId::parse(tenant).expect("tenant"),
                    kind,
                    subject: subject.into(),
                    revoked_before: None,
                    expires_at: expires_secs.map(Timestamp::from_secs),
                    reason: Some("internal, never sent".into()),
                },
                self.clock.now(),
            )
            .await
            .expect("append")
            .seq
    }

    /// Appends `total` token entries of acme, every `expired_every`th one expired longer ago
    /// than the longest leeway (left out), and the second after each expired within it (still
    /// handed over: a verifier may accept its token for that long); returns the positions of
    /// the live ones.
    async fn append_tokens(&self, total: i64, expired_every: i64) -> Vec<i64> {
        let leeway = i64::try_from(portcullis_core::time::MAX_LEEWAY.as_secs()).expect("secs");
        let mut live = Vec::new();
        for i in 1..=total {
            let expired = i % expired_every == 0;
            let expires = if expired {
                NOW_SECS - leeway - 1
            } else if i % expired_every == 2 {
                NOW_SECS - 1
            } else {
                NOW_SECS + 60
            };
            let seq = self
                .append(
                    "acme",
                    RevocationKind::Token,
                    &format!("j{i}"),
                    Some(expires),
                )
                .await;
            if !expired {
                live.push(seq);
            }
        }
        live
    }

    /// Stops the nodes (draining audit) and returns the events of `tenant`, oldest first.
    async fn finish(mut self, tenant: &str) -> Vec<AuditEvent> {
        let store = self.store().clone();
        for node in self.nodes.drain(..) {
            node.stop().await;
        }
        let events = common::audit_events(store.as_ref(), tenant).await;
        if let Some((pool, schema)) = self.pg.take() {
            let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(&pool)
                .await;
        }
        events
    }
}

/// One server-sent event.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    id: Option<String>,
    event: String,
    data: Value,
}

impl Event {
    fn is_heartbeat(&self) -> bool {
        self.event == "heartbeat"
    }
}

/// Reads events off an open stream.
struct Sse {
    resp: reqwest::Response,
    buf: String,
}

impl Sse {
    /// The next event; panics if the stream ends or nothing comes within the deadline.
    async fn next(&mut self) -> Event {
        tokio::time::timeout(DEADLINE, self.read())
            .await
            .expect("an event within the deadline")
            .expect("the stream is still open")
    }

    /// The next event, or `None` when the server closed the stream.
    async fn read(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                return Some(parse_event(&block));
            }
            let chunk = self.resp.chunk().await.expect("stream chunk")?;
            self.buf
                .push_str(std::str::from_utf8(&chunk).expect("utf-8 stream"));
        }
    }

    /// Records up to and including the next heartbeat; returns (records, heartbeat).
    async fn until_heartbeat(&mut self) -> (Vec<Event>, Event) {
        let mut records = Vec::new();
        loop {
            let e = self.next().await;
            if e.is_heartbeat() {
                return (records, e);
            }
            records.push(e);
        }
    }

    /// The next record, skipping heartbeats; panics if none comes within the deadline.
    async fn next_record(&mut self) -> Event {
        tokio::time::timeout(DEADLINE, async {
            loop {
                let e = self.read().await.expect("the stream is still open");
                if !e.is_heartbeat() {
                    return e;
                }
            }
        })
        .await
        .expect("a record within the deadline")
    }
}

fn parse_event(block: &str) -> Event {
    let mut e = Event {
        id: None,
        event: String::new(),
        data: Value::Null,
    };
    for line in block.lines().filter(|l| !l.is_empty()) {
        let (field, value) = line.split_once(": ").expect("field: value");
        match field {
            "id" => e.id = Some(value.to_owned()),
            "event" => e.event = value.to_owned(),
            "data" => e.data = serde_json::from_str(value).expect("data is JSON"),
            other => panic!("unexpected field {other:?} in {block:?}"),
        }
    }
    e
}

/// Checks a record event's framing and returns its seq.
fn record_seq(e: &Event) -> i64 {
    assert_eq!(e.event, "revocation", "{e:?}");
    let seq = e.data["seq"].as_i64().expect("seq");
    assert_eq!(
        e.id.as_deref(),
        Some(seq.to_string().as_str()),
        "id is the seq"
    );
    assert!(
        e.data.get("reason").is_none(),
        "the reason never leaves: {e:?}"
    );
    seq
}

fn seqs(records: &[Event]) -> Vec<i64> {
    records.iter().map(record_seq).collect()
}

fn snapshot_seqs(v: &Value) -> Vec<i64> {
    v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["seq"].as_i64().expect("seq"))
        .collect()
}

#[tokio::test]
async fn both_endpoints_require_an_admin_token_and_audit_the_failure() {
    let c = Cluster::sqlite().await;
    c.append("acme", RevocationKind::Token, "j1", None).await;
    let node = c.node();
    let (_, api_key) = node.acme_key(&c.acme, "p").await;
    for path in ["/v1/revocations", "/v1/revocations/stream"] {
        let url = format!("{}{path}", node.url);
        let missing = Node::client().get(&url).send().await.expect("send");
        assert_eq!(missing.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(
            missing.headers()["www-authenticate"],
            "Bearer realm=\"portcullis\"",
            "no error attribute without a credential"
        );
        assert_eq!(
            missing.json::<Value>().await.expect("json"),
            json!({"error": "unauthorized"}),
            "the missing-credential answer of the gateway and the admin API"
        );
        for bad in [
            "nonsense",
            api_key.as_str(),
            &c.acme.replace("pcl_adm", "pcl_key"),
        ] {
            let resp = Node::client()
                .get(&url)
                .bearer_auth(bad)
                .send()
                .await
                .expect("send");
            assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{path} {bad}");
            assert_eq!(
                resp.headers()["www-authenticate"],
                "Bearer realm=\"portcullis\", error=\"invalid_token\""
            );
            let body = resp.text().await.expect("body");
            assert_eq!(body, r#"{"error":"invalid_token"}"#, "nothing about why");
        }
    }
    let events = c.finish("system").await;
    let reasons: Vec<_> = events
        .iter()
        .filter(|e| e.action == "admin.authenticate")
        .filter_map(|e| e.reason.clone())
        .collect();
    assert_eq!(reasons.len(), 6, "{reasons:?}");
    assert!(
        reasons.iter().any(|r| r == "credential_wrong_kind"),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn the_snapshot_pages_through_the_log_and_its_position_covers_expired_entries() {
    let c = Cluster::sqlite().await;
    // 25 entries; every fifth expired before the harness clock.
    let expected = c.append_tokens(25, 5).await;
    let node = c.node();
    let mut after = 0;
    let mut pages = Vec::new();
    let mut seen = Vec::new();
    loop {
        let (s, v) = node
            .get(
                &format!("/v1/revocations?after={after}&limit=10"),
                &c.global,
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        let position = v["position"].as_i64().expect("position");
        pages.push(position);
        seen.extend(snapshot_seqs(&v));
        if position == after {
            assert!(v["entries"].as_array().expect("entries").is_empty());
            break;
        }
        after = position;
    }
    assert_eq!(pages, [10, 20, 25, 25]);
    assert_eq!(seen, expected, "in order, expired ones left out");

    // The wire record: exactly the documented fields, times in Unix milliseconds.
    let (_, v) = node.get("/v1/revocations?limit=1", &c.global).await;
    assert_eq!(
        v,
        json!({"entries": [{
            "seq": 1,
            "tenant": "acme",
            "kind": "token",
            "subject": "j1",
            "expires_at": (NOW_SECS + 60) * 1000,
            "created_at": NOW_SECS * 1000,
        }], "position": 1})
    );
    // Default page size covers everything here.
    let (_, v) = node.get("/v1/revocations", &c.global).await;
    assert_eq!(v["position"], 25);

    for bad in [
        "after=-1",
        "after=x",
        "limit=0",
        "limit=10001",
        "after=26",
        "cursor=3",
    ] {
        let (s, v) = node.get(&format!("/v1/revocations?{bad}"), &c.global).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad}: {v}");
        assert_eq!(v["error"], "invalid_request", "{bad}");
    }
    c.finish("system").await;
}

#[tokio::test]
async fn a_tenant_admin_reads_its_tenant_and_signing_key_entries_only() {
    let c = Cluster::sqlite().await;
    c.append("acme", RevocationKind::Token, "a1", None).await;
    c.append("globex", RevocationKind::Token, "g1", None).await;
    c.append("system", RevocationKind::SigningKey, "k1", None)
        .await;
    c.append("globex", RevocationKind::Client, "g2", None).await;
    c.append("acme", RevocationKind::ApiKey, "a2", None).await;
    let node = c.node();
    for (token, expected) in [
        (&c.acme, vec![1, 3, 5]),
        (&c.globex, vec![2, 3, 4]),
        (&c.global, vec![1, 2, 3, 4, 5]),
    ] {
        let (s, v) = node.get("/v1/revocations", token).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(snapshot_seqs(&v), expected);
        assert_eq!(
            v["position"], 5,
            "the position covers what was filtered out"
        );

        let mut sse = node.stream(token, None, "").await;
        let (records, heartbeat) = sse.until_heartbeat().await;
        assert_eq!(seqs(&records), expected);
        assert_eq!(heartbeat.data["position"], 5);
    }
    c.finish("system").await;
}

#[tokio::test]
async fn the_stream_sends_every_entry_in_order_then_a_heartbeat_with_its_position() {
    let c = Cluster::sqlite().await;
    // More than one page of the stream's catch-up reads, some expired.
    let total = 1_205;
    let expected = c.append_tokens(total, 100).await;
    let mut sse = c.node().stream(&c.global, None, "").await;
    let (records, heartbeat) = sse.until_heartbeat().await;
    assert_eq!(seqs(&records), expected);
    assert_eq!(heartbeat.id, None, "a heartbeat never carries an id");
    assert_eq!(heartbeat.data["position"], total);
    assert_eq!(heartbeat.data["time"], NOW_SECS * 1000);
    assert_eq!(
        heartbeat.data.as_object().expect("object").len(),
        2,
        "{heartbeat:?}"
    );
    // Heartbeats keep coming while nothing happens.
    let next = sse.next().await;
    assert!(next.is_heartbeat());
    assert_eq!(next.data["position"], total);
    c.finish("system").await;
}

#[tokio::test]
async fn the_stream_resumes_after_last_event_id_without_loss_or_duplicates() {
    let c = Cluster::sqlite().await;
    for i in 1..=10 {
        c.append("acme", RevocationKind::Token, &format!("j{i}"), None)
            .await;
    }
    let node = c.node();
    let mut first = node.stream(&c.acme, None, "").await;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(record_seq(&first.next_record().await));
    }
    drop(first);
    for i in 11..=15 {
        c.append("acme", RevocationKind::Token, &format!("j{i}"), None)
            .await;
    }
    // The header wins over the query parameter, as on an EventSource reconnect.
    let last = got.last().expect("some").to_string();
    let mut second = node.stream(&c.acme, Some(&last), "?after=0").await;
    let (records, heartbeat) = second.until_heartbeat().await;
    got.extend(seqs(&records));
    assert_eq!(got, (1..=15).collect::<Vec<_>>(), "no loss, no duplicate");
    assert_eq!(heartbeat.data["position"], 15);

    // `after` when there is no header; a reader already current gets just the heartbeat.
    let mut third = node.stream(&c.acme, None, "?after=12").await;
    let (records, _) = third.until_heartbeat().await;
    assert_eq!(seqs(&records), [13, 14, 15]);
    let mut current = node.stream(&c.acme, Some("15"), "").await;
    let (records, heartbeat) = current.until_heartbeat().await;
    assert!(records.is_empty());
    assert_eq!(heartbeat.data["position"], 15);
    c.finish("system").await;
}

#[tokio::test]
async fn a_malformed_or_impossible_resume_point_is_refused() {
    let c = Cluster::sqlite().await;
    c.append("acme", RevocationKind::Token, "j1", None).await;
    let node = c.node();
    for (header, query) in [
        (Some("abc"), ""),
        (Some("-1"), ""),
        (Some("+1"), ""),
        (Some("1.0"), ""),
        (Some(""), ""),
        (Some("99999999999999999999"), ""),
        (None, "?after=abc"),
        (None, "?after=-3"),
        // Past the end of the log: the reader followed another log and must start over.
        (Some("2"), ""),
        (None, "?after=2"),
        (None, "?since=0"),
    ] {
        let resp = node.open_stream(&c.global, header, query).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{header:?} {query}");
        let v: Value = resp.json().await.expect("json");
        assert_eq!(v["error"], "invalid_request", "{header:?} {query}");
    }
    c.finish("system").await;
}

#[tokio::test]
async fn a_new_append_reaches_an_open_stream() {
    let c = Cluster::sqlite_nodes(1, Duration::from_millis(200)).await;
    let node = c.node();
    let mut sse = node.stream(&c.acme, None, "").await;
    let (records, heartbeat) = sse.until_heartbeat().await;
    assert!(records.is_empty());
    assert_eq!(heartbeat.data["position"], 0);
    let (id, _) = node.acme_key(&c.acme, "p").await;
    let (s, _) = node
        .post(
            &format!("/admin/v1/tenants/acme/api-keys/{id}/revoke"),
            &c.acme,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let e = sse.next_record().await;
    assert_eq!(record_seq(&e), 1);
    assert_eq!(e.data["kind"], "api_key");
    assert_eq!(e.data["subject"], id.as_str());
    assert_eq!(e.data["tenant"], "acme");
    assert_eq!(
        e.data["expires_at"],
        (NOW_SECS + 30 * 86_400) * 1000,
        "bounded by the key's expiry"
    );
    // The following heartbeat covers the new entry.
    let (more, heartbeat) = sse.until_heartbeat().await;
    assert!(more.is_empty());
    assert_eq!(heartbeat.data["position"], 1);
    c.finish("system").await;
}

#[tokio::test]
async fn streams_end_when_the_server_shuts_down() {
    let c = Cluster::sqlite().await;
    let node = c.node();
    let mut sse = node.stream(&c.global, None, "").await;
    assert!(sse.next().await.is_heartbeat());
    node.state.revocations.shutdown();
    let ended = tokio::time::timeout(DEADLINE, async { while sse.read().await.is_some() {} }).await;
    assert!(ended.is_ok(), "the stream closed");
    c.finish("system").await;
}

#[tokio::test]
async fn every_api_key_operation_writes_the_log() {
    let c = Cluster::sqlite().await;
    let node = c.node();
    let acme = &c.acme;
    let base = "/admin/v1/tenants/acme/api-keys";
    let (k1, _) = node.acme_key(acme, "p1").await;
    let (k2, k2_key) = node.acme_key(acme, "p2").await;
    let (k3, _) = node.acme_key(acme, "leaver").await;
    let (k4, _) = node.acme_key(acme, "leaver").await;
    let (s, _) = node
        .call(
            reqwest::Method::PATCH,
            &format!("{base}/{k1}"),
            acme,
            Some(json!({"name": "renamed"})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    for action in ["disable", "enable"] {
        let (s, _) = node
            .post(&format!("{base}/{k1}/{action}"), acme, json!({}))
            .await;
        assert_eq!(s, StatusCode::OK, "{action}");
    }
    let (s, v) = node
        .post(
            &format!("{base}/{k1}/rotate"),
            acme,
            json!({"overlap": "1h"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (s, _) = node
        .post(&format!("{base}/{k1}/revoke"), acme, json!({}))
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, _) = node
        .post(
            &format!("{base}/revoke-by-owner"),
            acme,
            json!({"owner": "leaver"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let resp = Node::client()
        .post(format!("{}/v1/api-keys/leaks", node.url))
        .json(&json!([{"token": k2_key, "source": "content"}]))
        .send()
        .await
        .expect("leak report");
    assert_eq!(resp.status(), StatusCode::OK);

    let (_, v) = node.get("/v1/revocations", acme).await;
    let log: Vec<(String, String)> = v["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().expect("kind").to_owned(),
                e["subject"].as_str().expect("subject").to_owned(),
            )
        })
        .collect();
    let (owner_first, owner_second) = if k3 < k4 { (&k3, &k4) } else { (&k4, &k3) };
    let expected: Vec<(String, String)> = [
        ("api_key_changed", &k1),
        ("api_key_changed", &k1),
        ("api_key_changed", &k1),
        ("api_key_changed", &k1),
        ("api_key", &k1),
        ("api_key", owner_first),
        ("api_key", owner_second),
        ("api_key", &k2),
    ]
    .into_iter()
    .map(|(k, s)| (k.to_owned(), s.clone()))
    .collect();
    assert_eq!(log, expected);
    let entries = v["entries"].as_array().expect("entries");
    let hour_later = (NOW_SECS + 3_600) * 1000;
    assert_eq!(
        entries[3]["expires_at"], hour_later,
        "a rotated key's entry lasts until its window ends"
    );
    assert_eq!(
        entries[4]["expires_at"], hour_later,
        "so does the revocation of a key inside its window"
    );
    c.finish("system").await;
}

/// A key verified (and cached) on node B; revoked through node A's admin API. The revocation
/// reaches an SSE reader on B and B's verifier drops the cached key.
async fn revoke_on_a_reaches_b(c: &Cluster) {
    let (a, b) = (&c.nodes[0], &c.nodes[1]);
    let (id, key) = a.acme_key(&c.acme, "p").await;
    assert_eq!(b.verify(&c.acme, &key).await, Verdict::Valid);
    assert!(
        b.state.api_keys.verifier.cached_len() >= 1,
        "the key is cached on B"
    );
    let mut sse = b.stream(&c.global, None, "").await;
    let (_, heartbeat) = sse.until_heartbeat().await;
    let start = heartbeat.data["position"].as_i64().expect("position");

    // Disable on A: B refuses, enable on A: B accepts again (not a revocation set, a cache).
    let path = format!("/admin/v1/tenants/acme/api-keys/{id}");
    assert_eq!(
        a.post(&format!("{path}/disable"), &c.acme, json!({}))
            .await
            .0,
        StatusCode::OK
    );
    let e = sse.next_record().await;
    assert_eq!(
        (e.data["kind"].as_str(), e.data["subject"].as_str()),
        (Some("api_key_changed"), Some(id.as_str()))
    );
    assert_eq!(record_seq(&e), start + 1);
    b_answers(b, c, &key, Verdict::Refused).await;
    assert_eq!(
        a.post(&format!("{path}/enable"), &c.acme, json!({}))
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(sse.next_record().await.data["kind"], "api_key_changed");
    b_answers(b, c, &key, Verdict::Valid).await;

    assert_eq!(
        a.post(&format!("{path}/revoke"), &c.acme, json!({}))
            .await
            .0,
        StatusCode::OK
    );
    let e = sse.next_record().await;
    assert_eq!(e.data["kind"], "api_key");
    assert_eq!(e.data["subject"], id.as_str());
    assert_eq!(record_seq(&e), start + 3);
    b_answers(b, c, &key, Verdict::Refused).await;
}

/// The verify endpoint's answer about a key: valid, refused (200 `{"valid": false}`, whatever
/// the reason), or anything else (an error about the request or the caller).
#[derive(Debug, PartialEq)]
enum Verdict {
    Valid,
    Refused,
    Other(StatusCode, Value),
}

/// Polls B's verify endpoint until it answers `expected` (the change arrived), within the
/// deadline.
async fn b_answers(b: &Node, c: &Cluster, key: &str, expected: Verdict) {
    let start = tokio::time::Instant::now();
    loop {
        let got = b.verify(&c.acme, key).await;
        if got == expected {
            return;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "node B still answers {got:?} instead of {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn postgres_a_revoke_on_node_a_reaches_node_b_stream_and_verifier() {
    let Some(c) = Cluster::postgres("two nodes", 2).await else {
        return;
    };
    revoke_on_a_reaches_b(&c).await;
    c.finish("system").await;
}

#[tokio::test]
async fn sqlite_a_revoke_on_node_a_reaches_node_b_sharing_the_file() {
    let c = Cluster::sqlite_nodes(2, Duration::from_secs(1)).await;
    revoke_on_a_reaches_b(&c).await;
    c.finish("system").await;
}

#[tokio::test]
async fn postgres_single_node_snapshot_and_stream() {
    let Some(c) = Cluster::postgres("single node", 1).await else {
        return;
    };
    for i in 1..=3 {
        c.append("acme", RevocationKind::Token, &format!("j{i}"), None)
            .await;
    }
    let node = c.node();
    let (_, v) = node.get("/v1/revocations?after=1", &c.acme).await;
    assert_eq!(snapshot_seqs(&v), [2, 3]);
    let mut sse = node.stream(&c.acme, Some("1"), "").await;
    let (records, heartbeat) = sse.until_heartbeat().await;
    assert_eq!(seqs(&records), [2, 3]);
    assert_eq!(heartbeat.data["position"], 3);
    c.append("acme", RevocationKind::Token, "j4", None).await;
    assert_eq!(record_seq(&sse.next_record().await), 4);
    c.finish("system").await;
}
