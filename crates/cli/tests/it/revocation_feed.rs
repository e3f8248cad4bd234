//! The revocation feed end to end with the real binary: two `portcullis serve` nodes sharing a
//! PostgreSQL schema (and the KEK). An API key revoked through node A's admin API reaches an SSE
//! reader connected to node B and node B's `/v1/api-keys/verify`, with B's head poll set to an
//! hour so only `LISTEN/NOTIFY` can carry it; and SIGTERM ends B's open stream instead of
//! holding the shutdown for its grace period.
//!
//! Waits have generous deadlines; nothing asserts how fast a step was.

use crate::common;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use common::{http, PgSchema, Server};
use serde_json::{json, Value};

/// Reads SSE lines until one satisfies `want`; returns it.
fn read_until(
    lines: &mut impl Iterator<Item = std::io::Result<String>>,
    want: impl Fn(&str) -> bool,
) -> String {
    for line in lines {
        let line = line.expect("stream line (the client times out after 30 s)");
        if want(&line) {
            return line;
        }
    }
    panic!("the stream ended before the expected line");
}

#[test]
fn a_revoke_on_one_postgres_node_reaches_the_other_nodes_stream_and_verifier() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(schema) = rt.block_on(PgSchema::create("two-node revocation feed")) else {
        return;
    };
    let db_url = schema.database_url.clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let (data_a, data_b) = (dir.path().join("a"), dir.path().join("b"));
    // Nodes sharing PostgreSQL present one issuer (the public URL in front of them).
    let issuer = ("PORTCULLIS_OAUTH__ISSUER", "https://auth.e2e.test");
    let a = Server::try_start(
        &data_a,
        &[],
        &[("PORTCULLIS_DATABASE_URL", &db_url), issuer],
    )
    .unwrap_or_else(|log| panic!("node A: {log}"));
    let kek = data_a.join("kek").display().to_string();
    let mut b = Server::try_start(
        &data_b,
        &[],
        &[
            ("PORTCULLIS_DATABASE_URL", &db_url),
            issuer,
            ("PORTCULLIS_KEK_FILE", &kek),
            ("PORTCULLIS_REVOCATIONS__POLL_INTERVAL_MS", "3600000"),
            ("PORTCULLIS_HTTP__SHUTDOWN_GRACE_SECS", "120"),
        ],
    )
    .unwrap_or_else(|log| panic!("node B: {log}"));
    let token = a.token();
    a.cli_json(&["tenant", "create", "acme"]);
    let created: Value = http()
        .post(format!("{}/admin/v1/tenants/acme/api-keys", a.url))
        .bearer_auth(&token)
        .json(&json!({"name": "e2e", "owner": "partner"}))
        .send()
        .expect("create key")
        .json()
        .expect("json");
    let id = created["id"].as_str().expect("id").to_owned();
    let key = created["key"].as_str().expect("key").to_owned();
    // B's answer about the key: `valid` (true or false); any other answer fails the test.
    let verify_on_b = || {
        let r = http()
            .post(format!("{}/v1/api-keys/verify", b.url))
            .bearer_auth(&token)
            .json(&json!({"key": key}))
            .send()
            .expect("verify");
        assert_eq!(r.status(), 200, "B's verify answer");
        let v: Value = r.json().expect("json");
        assert!(
            v == json!({"valid": false}) || (v["valid"] == true && v["active"] == true),
            "{v}"
        );
        v["valid"] == true
    };
    assert!(verify_on_b(), "valid, and now cached on B");

    let stream = http()
        .get(format!("{}/v1/revocations/stream", b.url))
        .bearer_auth(&token)
        .send()
        .expect("stream");
    assert_eq!(stream.status(), 200);
    let mut lines = BufReader::new(stream).lines();
    read_until(&mut lines, |l| l == "event: heartbeat");

    let revoked = http()
        .post(format!(
            "{}/admin/v1/tenants/acme/api-keys/{id}/revoke",
            a.url
        ))
        .bearer_auth(&token)
        .send()
        .expect("revoke on A");
    assert_eq!(revoked.status(), 200);
    read_until(&mut lines, |l| l.starts_with("id: "));
    assert_eq!(
        read_until(&mut lines, |l| l.starts_with("event: ")),
        "event: revocation"
    );
    let data = read_until(&mut lines, |l| l.starts_with("data: "));
    let record: Value = serde_json::from_str(&data["data: ".len()..]).expect("record");
    assert_eq!(record["kind"], "api_key");
    assert_eq!(record["subject"], id.as_str());

    let deadline = Instant::now() + Duration::from_secs(15);
    while verify_on_b() {
        assert!(
            Instant::now() < deadline,
            "node B still accepts the revoked key"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // B's grace period is two minutes and `sigterm` waits 30 s: B exits because it ends its
    // streams, and the reader sees the end of the stream.
    assert!(b.sigterm().success());
    for line in lines {
        if line.is_err() {
            break;
        }
    }
    drop(a);
    rt.block_on(schema.drop_schema());
}
