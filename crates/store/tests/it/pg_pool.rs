//! The PostgreSQL pool's liveness rule: connections are not pinged before every statement (a
//! second round trip each), but one that sat idle is, so a connection the server closed
//! meanwhile (a restart, a failover, an idle timeout) is replaced instead of failing a request.
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
