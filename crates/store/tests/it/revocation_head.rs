//! How a store learns that the revocation log moved when another store (another node, another
//! process) appended: PostgreSQL `LISTEN/NOTIFY` between two stores sharing a schema, the
//! listener's reconnection, and the fallback poll that covers a lost notification, on SQLite as
//! on PostgreSQL.
//!
//! Waits have generous deadlines so a slow machine cannot hang the suite; nothing asserts how
//! fast a step was.

use std::time::Duration;

use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_store::{
    NewRevocation, PgStore, RevocationKind, RevocationStore, SqliteStore, Store,
};
use tokio::sync::watch;

const DEADLINE: Duration = Duration::from_secs(10);

/// Appends a token entry through `store` (one node).
async fn append(store: &dyn RevocationStore, subject: &str) {
    store
        .append_revocation(
            &NewRevocation {
                tenant: TenantId::parse("acme").expect("tenant"),
                kind: RevocationKind::Token,
                subject: subject.into(),
                revoked_before: None,
                expires_at: None,
                reason: None,
            },
            Timestamp::from_secs(1),
        )
        .await
        .expect("append");
}

async fn reaches(watch: &mut watch::Receiver<i64>, seq: i64, what: &str) {
    tokio::time::timeout(DEADLINE, watch.wait_for(|head| *head >= seq))
        .await
        .unwrap_or_else(|_| panic!("{what}: head {seq} not seen within {DEADLINE:?}"))
        .expect("watch open");
}

/// Two PostgreSQL stores on one fresh schema (two nodes), or `None` with a notice when
/// `PORTCULLIS_TEST_DATABASE_URL` is unset (a failure under CI).
async fn two_pg_nodes(name: &str) -> Option<(PgStore, PgStore, String)> {
    let url = crate::pg::url(name)?;
    let schema = crate::pg::fresh_schema();
    let a = PgStore::connect_in_schema(&url, &schema)
        .await
        .expect("PostgreSQL named by PORTCULLIS_TEST_DATABASE_URL must be reachable");
    let b = PgStore::connect_in_schema(&url, &schema)
        .await
        .expect("second node");
    Some((a, b, schema))
}

/// Process ids of the sessions listening in `schema` (sessions are named after their schema),
/// once there is at least one.
async fn listening_sessions(store: &PgStore, schema: &str) -> Vec<i32> {
    let start = tokio::time::Instant::now();
    loop {
        let pids: Vec<i32> = sqlx::query_scalar(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 \
             AND query LIKE 'LISTEN%'",
        )
        .bind(schema)
        .fetch_all(store.pool())
        .await
        .expect("pg_stat_activity");
        if !pids.is_empty() {
            return pids;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no listening session within {DEADLINE:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn drop_schema(store: &PgStore, schema: &str) {
    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(store.pool())
        .await;
}

#[tokio::test]
async fn postgres_appends_on_one_node_wake_the_other_through_notify() {
    let Some((a, b, schema)) = two_pg_nodes("notify").await else {
        return;
    };
    // No poll could explain what B sees: only the notification.
    b.set_revocation_poll_interval(Duration::from_secs(3_600));
    let mut watch = b.watch_revocation_head();
    // The follower reads the head once it listens; wait for that, so the append below
    // happens while B is listening.
    append(&a, "before").await;
    reaches(&mut watch, 1, "initial read").await;
    for i in 2..=4 {
        append(&a, &format!("j{i}")).await;
        reaches(&mut watch, i, "notified append").await;
    }
    drop_schema(&a, &schema).await;
}

#[tokio::test]
async fn postgres_listener_reconnects_after_its_connection_is_killed() {
    let Some((a, b, schema)) = two_pg_nodes("reconnect").await else {
        return;
    };
    b.set_revocation_poll_interval(Duration::from_secs(3_600));
    let mut watch = b.watch_revocation_head();
    append(&a, "j1").await;
    reaches(&mut watch, 1, "before the kill").await;
    // Only B listens in this schema.
    let pids = listening_sessions(&a, &schema).await;
    assert_eq!(pids.len(), 1, "one listening session: {pids:?}");
    let killed: bool = sqlx::query_scalar("SELECT pg_terminate_backend($1)")
        .bind(pids[0])
        .fetch_one(a.pool())
        .await
        .expect("terminate the listener");
    assert!(killed);
    // Notifications sent while B reconnects are lost; the read after re-listening finds them.
    for i in 2..=3 {
        append(&a, &format!("j{i}")).await;
    }
    reaches(&mut watch, 3, "after reconnecting").await;
    append(&a, "j4").await;
    reaches(&mut watch, 4, "notified after reconnecting").await;
    drop_schema(&a, &schema).await;
}

#[tokio::test]
async fn postgres_a_lost_notification_only_waits_for_the_poll() {
    let Some((a, b, schema)) = two_pg_nodes("lost notification").await else {
        return;
    };
    sqlx::query("ALTER TABLE revocations DISABLE TRIGGER revocations_notify")
        .execute(a.pool())
        .await
        .expect("silence notifications in this schema");
    b.set_revocation_poll_interval(Duration::from_millis(100));
    let mut watch = b.watch_revocation_head();
    append(&a, "j1").await;
    reaches(&mut watch, 1, "polled").await;
    drop_schema(&a, &schema).await;
}

#[tokio::test]
async fn sqlite_another_process_appending_is_found_by_the_poll() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let a = SqliteStore::open(&path).await.expect("open a");
    let b = SqliteStore::open(&path).await.expect("open b");
    b.set_revocation_poll_interval(Duration::from_millis(100));
    let mut watch = b.watch_revocation_head();
    append(&a, "j1").await;
    reaches(&mut watch, 1, "polled").await;
}

#[tokio::test]
async fn closing_a_followed_store_does_not_wait_for_the_follower() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("db"))
        .await
        .expect("open");
    let _watch = store.watch_revocation_head();
    tokio::time::timeout(DEADLINE, store.close())
        .await
        .expect("close returned");
    if let Some((a, b, schema)) = two_pg_nodes("close").await {
        let _watch = b.watch_revocation_head();
        listening_sessions(&a, &schema).await;
        tokio::time::timeout(DEADLINE, b.close())
            .await
            .expect("close returned although the listener held a connection");
        drop_schema(&a, &schema).await;
    }
}
