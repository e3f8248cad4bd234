//! Migration 0004 (revocation feed) on a database that already holds revocations: every entry
//! survives with its position, the subject index survives, the new `api_key_changed` kind is
//! accepted and an unknown kind is still refused.

use std::path::{Path, PathBuf};

use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_store::{
    NewRevocation, PgStore, RevocationKind, RevocationStore, SqliteStore, Store,
};

/// A migrator holding only the migrations before 0004 of `backend`, from copies in `dir`.
async fn migrator_before_0004(backend: &str, dir: &Path) -> sqlx::migrate::Migrator {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(backend);
    for entry in std::fs::read_dir(&source).expect("migrations") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        if name.as_str() < "0004" {
            std::fs::copy(&path, dir.join(&name)).expect("copy");
        }
    }
    sqlx::migrate::Migrator::new(dir).await.expect("migrator")
}

const OLD_ROWS: &str = "INSERT INTO revocations (seq, tenant_id, kind, subject, revoked_before, \
     expires_at, reason, created_at) VALUES \
     (1, 'acme', 'token', 'j1', NULL, 100, 'r1', 10), \
     (2, 'system', 'signing_key', 'k1', 20, NULL, NULL, 11); \
     UPDATE revocation_log_head SET last_seq = 2 WHERE id = 1";

/// Migrates `pool` up to 0003 with `backend`'s migrations (copied to `dir`) and stores two
/// entries the way 0003 would.
async fn at_0003_with_old_rows<DB>(pool: &sqlx::Pool<DB>, backend: &str, dir: &Path)
where
    DB: sqlx::Database,
    DB::Connection: sqlx::migrate::Migrate,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
{
    migrator_before_0004(backend, dir)
        .await
        .run(pool)
        .await
        .expect("migrate to 0003");
    sqlx::raw_sql(OLD_ROWS)
        .execute(pool)
        .await
        .expect("old rows");
}

/// SQL inserting an entry of `kind` directly, past the store's own checks.
fn insert_kind(kind: &str) -> String {
    format!(
        "INSERT INTO revocations (seq, tenant_id, kind, subject, created_at) \
         VALUES (9, 'acme', '{kind}', 'x', 1)"
    )
}

fn changed(subject: &str) -> NewRevocation {
    NewRevocation {
        tenant: TenantId::parse("acme").expect("tenant"),
        kind: RevocationKind::ApiKeyChanged,
        subject: subject.into(),
        revoked_before: None,
        expires_at: None,
        reason: None,
    }
}

async fn check_after_upgrade(store: &dyn RevocationStore) {
    let all = store.revocations_after(0, 10).await.expect("read");
    let kept: Vec<_> = all
        .iter()
        .map(|e| (e.seq, e.tenant.as_str(), e.kind, e.subject.as_str()))
        .collect();
    assert_eq!(
        kept,
        [
            (1, "acme", RevocationKind::Token, "j1"),
            (2, "system", RevocationKind::SigningKey, "k1")
        ]
    );
    assert_eq!(all[0].expires_at, Some(Timestamp::from_millis(100)));
    assert_eq!(all[0].reason.as_deref(), Some("r1"));
    assert_eq!(all[1].revoked_before, Some(Timestamp::from_millis(20)));
    let e = store
        .append_revocation(&changed("a1"), Timestamp::from_millis(12))
        .await
        .expect("api_key_changed accepted after the upgrade");
    assert_eq!(e.seq, 3, "positions continue after the kept entries");
}

#[tokio::test]
async fn sqlite_upgrade_keeps_entries_and_index_and_accepts_the_new_kind() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = tempfile::tempdir().expect("old migrations");
    let path = dir.path().join("db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    {
        let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
        at_0003_with_old_rows(&pool, "sqlite", old.path()).await;
        let refused = sqlx::query(&insert_kind("api_key_changed"))
            .execute(&pool)
            .await;
        assert!(refused.is_err(), "0003 refuses the new kind");
        pool.close().await;
    }
    let store = SqliteStore::open(&path).await.expect("upgrade");
    check_after_upgrade(&store).await;
    store.close().await;
    let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
    let index: Option<String> = sqlx::query_scalar(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND name = 'revocations_subject'",
    )
    .fetch_optional(&pool)
    .await
    .expect("index");
    assert!(
        index.is_some_and(|sql| sql.contains("(tenant_id, kind, subject)")),
        "the subject index is rebuilt"
    );
    let refused = sqlx::query(&insert_kind("nonsense")).execute(&pool).await;
    assert!(refused.is_err(), "unknown kinds are still refused");
}

#[tokio::test]
async fn postgres_upgrade_keeps_entries_and_accepts_the_new_kind() {
    let Ok(url) = std::env::var("PORTCULLIS_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("CI").is_err(),
            "PORTCULLIS_TEST_DATABASE_URL must be set in CI"
        );
        eprintln!("notice: PORTCULLIS_TEST_DATABASE_URL is unset; skipping PostgreSQL case");
        return;
    };
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let old = tempfile::tempdir().expect("old migrations");
    let options: sqlx::postgres::PgConnectOptions = url.parse().expect("url");
    let options = options.options([("search_path", schema.as_str())]);
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("PostgreSQL named by PORTCULLIS_TEST_DATABASE_URL must be reachable");
    sqlx::query(&format!("CREATE SCHEMA {schema}"))
        .execute(&pool)
        .await
        .expect("schema");
    at_0003_with_old_rows(&pool, "postgres", old.path()).await;
    let store = PgStore::connect_in_schema(&url, &schema)
        .await
        .expect("upgrade");
    check_after_upgrade(&store).await;
    let refused = sqlx::query(&insert_kind("nonsense")).execute(&pool).await;
    assert!(refused.is_err(), "unknown kinds are still refused");
    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await;
}
