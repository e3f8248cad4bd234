//! A database migrated by a newer Portcullis must be refused, not half-used.

use portcullis_store::{PgStore, SqliteStore, StoreError};

#[tokio::test]
async fn sqlite_database_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db.sqlite");
    let store = SqliteStore::open(&path).await.expect("first open");
    drop(store);
    let newer = SqliteStore::supported_schema_version() + 1_000;
    {
        let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
            .await
            .expect("raw connect");
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, installed_on, success, \
             checksum, execution_time) VALUES ($1, 'from the future', CURRENT_TIMESTAMP, 1, \
             x'00', 0)",
        )
        .bind(newer)
        .execute(&pool)
        .await
        .expect("fake newer migration");
        pool.close().await;
    }
    let err = SqliteStore::open(&path).await.expect_err("must refuse");
    assert!(
        matches!(err, StoreError::SchemaTooNew { found, .. } if found == newer),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer than this binary"), "{err}");
}

#[tokio::test]
async fn postgres_database_from_a_newer_version_is_refused() {
    let Some(url) = crate::pg::url("postgres_database_from_a_newer_version_is_refused") else {
        return;
    };
    let schema = crate::pg::fresh_schema();
    let store = PgStore::connect_in_schema(&url, &schema)
        .await
        .expect("connect");
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99999999, 'from the future', true, '\\x00', 0)",
    )
    .execute(store.pool())
    .await
    .expect("fake newer migration");
    let pool = store.pool().clone();
    let err = PgStore::connect_in_schema(&url, &schema)
        .await
        .expect_err("must refuse");
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99999999,
                ..
            }
        ),
        "{err:?}"
    );
    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await;
}
