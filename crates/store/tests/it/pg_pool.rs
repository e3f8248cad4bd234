//! The PostgreSQL pool's liveness rule: connections are not pinged before every statement (a
//! second round trip each), but one that sat idle is, so a connection the server closed
//! meanwhile (a restart, a failover, an idle timeout) is replaced instead of failing a request.
//! A connection given back inside a transaction is closed, never reused.
//! Skipped with a notice when `PORTCULLIS_TEST_DATABASE_URL` is unset (a failure under CI).

use std::time::Duration;

use portcullis_store::{PgStore, RefreshTokenStore};

#[tokio::test]
async fn an_idle_connection_the_server_closed_is_replaced_before_it_is_used() {
    let Some(url) =
        crate::pg::url("an_idle_connection_the_server_closed_is_replaced_before_it_is_used")
    else {
        return;
    };
    let schema = crate::pg::fresh_schema();
    let store = PgStore::connect_in_schema(&url, &schema)
        .await
        .expect("PostgreSQL named by PORTCULLIS_TEST_DATABASE_URL must be reachable");
    assert!(store
        .get_refresh_token(&[1; 32])
        .await
        .expect("read")
        .is_none());
    // Another session closes every connection of this store (they carry the schema as their
    // application name), as a server restart would.
    let admin = sqlx::PgPool::connect(&url).await.expect("admin connection");
    let closed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name = $1) AS t",
    )
    .bind(&schema)
    .fetch_one(&admin)
    .await
    .expect("terminate");
    assert!(closed >= 1, "the store's connection was closed");
    tokio::time::sleep(PgStore::PING_IF_IDLE_FOR + Duration::from_millis(500)).await;
    assert!(store
        .get_refresh_token(&[1; 32])
        .await
        .expect("a read after the server closed the idle connection")
        .is_none());
    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await;
}

/// A connection handed back with a transaction open on it (what sqlx's `BEGIN` leaves when its
/// future is dropped while the server runs it) is closed, not handed out again; one handed back
/// cleanly is kept.
#[tokio::test]
async fn a_connection_given_back_inside_a_transaction_is_closed_and_a_clean_one_kept() {
    let Some(url) = crate::pg::url(
        "a_connection_given_back_inside_a_transaction_is_closed_and_a_clean_one_kept",
    ) else {
        return;
    };
    let schema = crate::pg::fresh_schema();
    let store = PgStore::connect_in_schema(&url, &schema)
        .await
        .expect("PostgreSQL named by PORTCULLIS_TEST_DATABASE_URL must be reachable");
    let leaked = {
        let mut conn = store.pool().acquire().await.expect("connection");
        // A `BEGIN` sqlx does not know about, as a cancelled one leaves it.
        sqlx::Executor::execute(&mut *conn, "BEGIN")
            .await
            .expect("begin");
        backend(&mut conn).await
    };
    let admin = sqlx::PgPool::connect(&url).await.expect("admin connection");
    let alive = |pid: i32| {
        sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)",
        )
        .bind(pid)
        .fetch_one(&admin)
    };
    let mut gone = false;
    for _ in 0..100 {
        if !alive(leaked).await.expect("activity") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(gone, "the connection left inside a transaction was closed");
    let first = {
        let mut conn = store.pool().acquire().await.expect("connection");
        backend(&mut conn).await
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = {
        let mut conn = store.pool().acquire().await.expect("connection");
        backend(&mut conn).await
    };
    assert_ne!(first, leaked);
    assert_eq!(first, again, "a clean connection is reused");
    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&admin)
        .await;
}

async fn backend(conn: &mut sqlx::PgConnection) -> i32 {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .expect("pid")
}
