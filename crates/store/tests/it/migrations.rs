//! Migrations on databases that already hold data. 0004 (revocation feed): every entry
//! survives with its position, the subject index survives, the new `api_key_changed` kind is
//! accepted and an unknown kind is still refused. 0007 (admin roles): every admin credential
//! survives column for column, the tenant index and foreign key survive, the new roles are
//! accepted and an unknown role is still refused. 0009 (app clients): a machine client stored
//! before it reads back unchanged, as a confidential web client without URIs, and an unknown
//! client type is refused.

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
    let Some(url) = crate::pg::url("postgres_upgrade_keeps_entries_and_accepts_the_new_kind")
    else {
        return;
    };
    let schema = crate::pg::fresh_schema();
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

/// A migrator holding only the migrations of `backend` before `version`, from copies in `dir`.
async fn migrator_before(backend: &str, version: &str, dir: &Path) -> sqlx::migrate::Migrator {
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
        if name.as_str() < version {
            std::fs::copy(&path, dir.join(&name)).expect("copy");
        }
    }
    sqlx::migrate::Migrator::new(dir).await.expect("migrator")
}

/// Two credentials as 0006 stores them: every column set on one, the optional ones empty on the
/// other.
const OLD_ADMIN_ROWS: &str = "INSERT INTO tenants (id, display_name, status, created_at, \
     updated_at) VALUES ('acme', 'Acme', 'active', 1, 1); \
     INSERT INTO admin_credentials (id, tenant_id, role, name, display_prefix, secret_digest, \
     created_at, created_by, revoked_at, last_used_at) VALUES \
     ('g1', 'system', 'global_admin', 'ops', 'pcl_adm_live_g1', X'0707', 5, 'bootstrap', NULL, 9), \
     ('a1', 'acme', 'tenant_admin', 'ci', 'pcl_adm_live_a1', X'0808', 6, NULL, 7, NULL)";

fn insert_admin_role(id: &str, tenant: &str, role: &str) -> String {
    format!(
        "INSERT INTO admin_credentials (id, tenant_id, role, name, display_prefix, \
         secret_digest, created_at) VALUES ('{id}', '{tenant}', '{role}', 'n', 'p', X'00', 1)"
    )
}

async fn check_admin_rows_after_upgrade(store: &dyn Store) {
    use portcullis_core::admin::AdminRole;
    let g1 = store
        .get_admin_credential("g1")
        .await
        .expect("get")
        .expect("g1 kept");
    assert_eq!(
        (
            g1.tenant.as_str(),
            g1.role,
            g1.name.as_str(),
            g1.display_prefix.as_str()
        ),
        ("system", AdminRole::GlobalAdmin, "ops", "pcl_adm_live_g1")
    );
    assert_eq!(g1.secret_digest, vec![7, 7]);
    assert_eq!(g1.created_at, Timestamp::from_millis(5));
    assert_eq!(g1.created_by.as_deref(), Some("bootstrap"));
    assert_eq!(
        (g1.revoked_at, g1.last_used_at),
        (None, Some(Timestamp::from_millis(9)))
    );
    let a1 = store
        .get_admin_credential("a1")
        .await
        .expect("get")
        .expect("a1 kept");
    assert_eq!(
        (a1.tenant.as_str(), a1.role),
        ("acme", AdminRole::TenantAdmin)
    );
    assert_eq!(a1.secret_digest, vec![8, 8]);
    assert_eq!(
        (a1.created_by, a1.revoked_at, a1.last_used_at),
        (None, Some(Timestamp::from_millis(7)), None)
    );
    assert_eq!(store.count_active_global_admins().await.expect("count"), 1);
}

#[tokio::test]
async fn sqlite_0007_keeps_admin_credentials_index_and_foreign_key_and_accepts_new_roles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = tempfile::tempdir().expect("old migrations");
    let path = dir.path().join("db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    {
        let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
        migrator_before("sqlite", "0007", old.path())
            .await
            .run(&pool)
            .await
            .expect("migrate to 0006");
        sqlx::raw_sql(OLD_ADMIN_ROWS)
            .execute(&pool)
            .await
            .expect("old rows");
        let refused = sqlx::query(&insert_admin_role("s0", "acme", "service"))
            .execute(&pool)
            .await;
        assert!(refused.is_err(), "0006 refuses the new roles");
        pool.close().await;
    }
    let store = SqliteStore::open(&path).await.expect("upgrade");
    check_admin_rows_after_upgrade(&store).await;
    store.close().await;

    let options: sqlx::sqlite::SqliteConnectOptions = url.parse().expect("url");
    let pool = sqlx::SqlitePool::connect_with(options.foreign_keys(true))
        .await
        .expect("connect");
    for (i, role) in ["auditor", "api_key_manager", "service"].iter().enumerate() {
        sqlx::query(&insert_admin_role(&format!("n{i}"), "acme", role))
            .execute(&pool)
            .await
            .expect(role);
    }
    let refused = sqlx::query(&insert_admin_role("x1", "acme", "root"))
        .execute(&pool)
        .await;
    assert!(refused.is_err(), "unknown roles are still refused");
    let refused = sqlx::query(&insert_admin_role("x2", "nobody", "service"))
        .execute(&pool)
        .await;
    assert!(refused.is_err(), "the tenant foreign key is kept");
    let index: Option<String> = sqlx::query_scalar(
        "SELECT sql FROM sqlite_master WHERE type = 'index' \
         AND name = 'admin_credentials_tenant' AND tbl_name = 'admin_credentials'",
    )
    .fetch_optional(&pool)
    .await
    .expect("index");
    assert!(
        index.is_some_and(|sql| sql.contains("(tenant_id)")),
        "the tenant index is rebuilt"
    );
    let leftover: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE name = 'admin_credentials_new'")
            .fetch_optional(&pool)
            .await
            .expect("leftover");
    assert_eq!(leftover, None);
}

#[tokio::test]
async fn postgres_0007_keeps_admin_credentials_and_accepts_new_roles() {
    let Some(url) = crate::pg::url("postgres_0007_keeps_admin_credentials_and_accepts_new_roles")
    else {
        return;
    };
    let schema = crate::pg::fresh_schema();
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
    migrator_before("postgres", "0007", old.path())
        .await
        .run(&pool)
        .await
        .expect("migrate to 0006");
    sqlx::raw_sql(
        &OLD_ADMIN_ROWS
            .replace("X'07", "'\\x07")
            .replace("X'08", "'\\x08"),
    )
    .execute(&pool)
    .await
    .expect("old rows");
    let store = PgStore::connect_in_schema(&url, &schema)
        .await
        .expect("upgrade");
    check_admin_rows_after_upgrade(&store).await;
    for (i, role) in ["auditor", "api_key_manager", "service"].iter().enumerate() {
        sqlx::query(&insert_admin_role(&format!("n{i}"), "acme", role).replace("X'00'", "'\\x00'"))
            .execute(&pool)
            .await
            .expect(role);
    }
    let refused = sqlx::query(&insert_admin_role("x1", "acme", "root").replace("X'00'", "'\\x00'"))
        .execute(&pool)
        .await;
    assert!(refused.is_err(), "unknown roles are still refused");
    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await;
}

/// The tables an import checks, plus those it deliberately leaves, are every table the
/// migrations create. A migration that adds a table must decide (in `export::IMPORT_TABLES`)
/// whether an import refuses to merge into it; forgetting fails here, on both backends.
#[tokio::test]
async fn the_import_checks_every_table_the_migrations_create() {
    use std::collections::BTreeSet;
    let expected: BTreeSet<String> = portcullis_store::export::IMPORT_TABLES
        .iter()
        .map(|(t, _)| t.to_string())
        .chain(
            portcullis_store::export::NOT_IMPORT_CHECKED
                .iter()
                .map(|t| t.to_string()),
        )
        .collect();

    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("p.db");
    SqliteStore::open(&path).await.expect("open").close().await;
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("connect");
    let sqlite: BTreeSet<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_all(&pool)
    .await
    .expect("tables")
    .into_iter()
    .collect();
    assert_eq!(sqlite, expected, "SQLite schema vs export::IMPORT_TABLES");

    let Some(url) = crate::pg::url("the_import_checks_every_table_the_migrations_create") else {
        return;
    };
    let schema = crate::pg::fresh_schema();
    let store = PgStore::connect_in_schema(&url, &schema)
        .await
        .expect("PostgreSQL named by PORTCULLIS_TEST_DATABASE_URL must be reachable");
    store.close().await;
    let pool = sqlx::PgPool::connect(&url).await.expect("connect");
    let postgres: BTreeSet<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
    )
    .bind(&schema)
    .fetch_all(&pool)
    .await
    .expect("tables")
    .into_iter()
    .collect();
    assert_eq!(
        postgres, expected,
        "PostgreSQL schema vs export::IMPORT_TABLES"
    );
}

/// A machine client as 0008 and before store it.
const OLD_CLIENT_ROWS: &str = "INSERT INTO tenants (id, display_name, status, created_at, \
     updated_at) VALUES ('acme', 'Acme', 'active', 1, 1); \
     INSERT INTO oauth_clients (id, tenant_id, name, environment, auth_method, grant_types, \
     scopes, audiences, access_token_ttl_secs, can_introspect, jwks, jwks_uri, status, \
     created_at, updated_at, last_used_at) VALUES ('cl_old', 'acme', 'sync', 'live', \
     'client_secret_basic', 'client_credentials', 'payments:read', 'payments-api', 600, 1, \
     NULL, NULL, 'active', 2, 3, 4)";

async fn check_old_client(store: &dyn Store) {
    use portcullis_store::{ApplicationType, ClientStatus, ClientType};
    let c = store
        .get_client("cl_old")
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(
        (
            c.name.as_str(),
            c.auth_method.as_str(),
            c.grant_types.clone(),
            c.audiences.clone(),
            c.can_introspect,
            c.status,
            c.last_used_at,
        ),
        (
            "sync",
            "client_secret_basic",
            vec!["client_credentials".to_owned()],
            vec!["payments-api".to_owned()],
            true,
            ClientStatus::Active,
            Some(Timestamp::from_millis(4)),
        )
    );
    assert_eq!(
        (c.client_type, c.application_type, c.first_party),
        (ClientType::Confidential, ApplicationType::Web, false)
    );
    assert!(c.redirect_uris.is_empty());
    assert!(c.post_logout_redirect_uris.is_empty());
    assert!(c.allowed_web_origins.is_empty());
}

const BAD_CLIENT_TYPE: &str =
    "UPDATE oauth_clients SET client_type = 'trusted' WHERE id = 'cl_old'";

#[tokio::test]
async fn sqlite_0009_keeps_machine_clients_as_they_were() {
    let dir = tempfile::tempdir().expect("tempdir");
    let old = tempfile::tempdir().expect("old migrations");
    let path = dir.path().join("db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    {
        let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
        migrator_before("sqlite", "0009", old.path())
            .await
            .run(&pool)
            .await
            .expect("migrate to 0008");
        sqlx::raw_sql(OLD_CLIENT_ROWS)
            .execute(&pool)
            .await
            .expect("old rows");
        pool.close().await;
    }
    let store = SqliteStore::open(&path).await.expect("upgrade");
    check_old_client(&store).await;
    store.close().await;
    let pool = sqlx::SqlitePool::connect(&url).await.expect("connect");
    let refused = sqlx::query(BAD_CLIENT_TYPE).execute(&pool).await;
    assert!(refused.is_err(), "an unknown client type is refused");
}

#[tokio::test]
async fn postgres_0009_keeps_machine_clients_as_they_were() {
    let Some(url) = crate::pg::url("postgres_0009_keeps_machine_clients_as_they_were") else {
        return;
    };
    let schema = crate::pg::fresh_schema();
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
    migrator_before("postgres", "0009", old.path())
        .await
        .run(&pool)
        .await
        .expect("migrate to 0008");
    sqlx::raw_sql(OLD_CLIENT_ROWS)
        .execute(&pool)
        .await
        .expect("old rows");
    let store = PgStore::connect_in_schema(&url, &schema)
        .await
        .expect("upgrade");
    check_old_client(&store).await;
    let refused = sqlx::query(BAD_CLIENT_TYPE).execute(&pool).await;
    assert!(refused.is_err(), "an unknown client type is refused");
    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await;
}
