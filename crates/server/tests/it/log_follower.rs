//! The in-process revocation log follower against a real SQLite file: it hands over every entry
//! in order and reports contact, and when the log is replaced underneath it (a restored
//! database reusing positions already read) it notices, says so, and reads the new log from 0
//! instead of skipping the reused positions.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_core::revocation::RevocationKind;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_service::revocations::follow::{follow, LogFollower, OnReadError, Start};
use portcullis_store::{NewRevocation, RevocationEntry, SqliteStore, Store, StoreError};

#[derive(Debug, Default)]
struct Seen {
    subjects: Vec<String>,
    caught_up: Vec<i64>,
    replaced: usize,
}

#[derive(Debug, Clone, Default)]
struct Recorder(Arc<Mutex<Seen>>);

impl Recorder {
    fn seen<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.0.lock().expect("lock"))
    }
}

impl LogFollower for Recorder {
    fn apply(&mut self, entries: Vec<RevocationEntry>, _through: i64) {
        let mut s = self.0.lock().expect("lock");
        s.subjects.extend(entries.into_iter().map(|e| e.subject));
    }

    fn read_failed(&mut self, _: &StoreError) -> OnReadError {
        OnReadError::Retry
    }

    fn caught_up(&mut self, position: i64) {
        self.0.lock().expect("lock").caught_up.push(position);
    }

    fn log_replaced(&mut self) {
        let mut s = self.0.lock().expect("lock");
        s.replaced += 1;
        s.subjects.clear();
    }
}

async fn append(store: &dyn Store, subject: &str) {
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
            Timestamp::from_secs(1_800_000_000),
        )
        .await
        .expect("append");
}

/// Waits (at most 10 s: a guard against hanging, not a timing claim) until `f` holds.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_replaced_log_is_noticed_and_read_again_from_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(&path).await.expect("open"));
    for s in ["a", "b", "c"] {
        append(store.as_ref(), s).await;
    }
    let recorder = Recorder::default();
    let head = store.watch_revocation_head();
    let task = tokio::spawn(follow(
        store.clone(),
        head,
        Start::After(0),
        Some(Duration::from_millis(50)),
        recorder.clone(),
    ));
    until("the whole log", || {
        recorder.seen(|s| s.subjects == ["a", "b", "c"] && s.caught_up.contains(&3))
    })
    .await;

    // A restore from a backup taken after "a": the log is cut back to position 1, and two new
    // revocations take positions 2 and 3 again, so the head is where the follower already is.
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("second connection");
    sqlx::query("DELETE FROM revocations WHERE seq > 1")
        .execute(&pool)
        .await
        .expect("cut the log");
    sqlx::query("UPDATE revocation_log_head SET last_seq = 1")
        .execute(&pool)
        .await
        .expect("cut the head");
    for s in ["x", "y"] {
        append(store.as_ref(), s).await;
    }
    until("the new log, read from the start", || {
        recorder.seen(|s| s.replaced >= 1 && s.subjects == ["a", "x", "y"])
    })
    .await;
    task.abort();
}
