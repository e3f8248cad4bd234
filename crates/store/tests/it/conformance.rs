//! The storage conformance suite: every case runs against SQLite always and against PostgreSQL
//! when `PORTCULLIS_TEST_DATABASE_URL` is set. Each test gets its own SQLite file or PostgreSQL
//! schema, so tests run in parallel and in any order.
//!
//! Under CI (`CI=true`) a missing `PORTCULLIS_TEST_DATABASE_URL` is a failure, not a skip, and an
//! unreachable server fails the PostgreSQL cases.

use std::future::Future;
use std::sync::Arc;

use portcullis_core::admin::AdminRole;
use portcullis_core::audit::{Action, Actor, AuditEvent, Outcome, Reason};
use portcullis_core::signing::{KeyState, SigningAlgorithm};
use portcullis_core::tenant::{TenantId, TenantStatus};
use portcullis_core::time::Timestamp;
use portcullis_store::export;
use portcullis_store::*;

/// A token as the revocation check sees it.
struct Q {
    tenant: TenantId,
    jti: String,
    client_id: String,
    kid: String,
    issued_at: Timestamp,
}

/// Introspection's check: the entries storage finds for the token's candidates, decided by the
/// one rule in core.
async fn revoked(s: &Arc<dyn Store>, q: &Q) -> Result<bool> {
    let identity = portcullis_core::revocation::TokenIdentity {
        tenant: &q.tenant,
        jti: &q.jti,
        client_id: Some(&q.client_id),
        subject: &q.client_id,
        kid: &q.kid,
        family: None,
        sid: None,
        exchanged_from: &[],
        issued_at: q.issued_at,
    };
    let candidates: Vec<_> = identity.candidates().collect();
    let records: Vec<_> = s
        .revocations_naming(&candidates)
        .await?
        .into_iter()
        .map(RevocationEntry::into_record)
        .collect();
    Ok(
        portcullis_core::revocation::RevocationSet::from_records(&records)
            .token_revoked(&identity)
            .is_some(),
    )
}

pub(crate) async fn with_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    with_sqlite_raw(|store, _| case(store)).await;
}

pub(crate) async fn with_postgres<F, Fut>(name: &str, case: F)
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()>,
{
    with_postgres_raw(name, |store, _| case(store)).await;
}

/// The database under a store, for writes the store would never make (corrupt rows, edits of
/// the audit chain).
pub(crate) enum Raw {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

impl Raw {
    pub(crate) async fn exec(&self, sql: &str) {
        match self {
            Raw::Sqlite(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
            Raw::Pg(p) => sqlx::query(sql).execute(p).await.map(|_| ()),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// [`with_sqlite`] for a case that also writes past the store ([`Raw`]).
pub(crate) async fn with_sqlite_raw<F, Fut>(case: F)
where
    F: FnOnce(Arc<dyn Store>, Raw) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("test.db");
    let store = SqliteStore::open(&path).await.expect("open sqlite");
    let raw = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .expect("raw sqlite");
    case(Arc::new(store), Raw::Sqlite(raw)).await;
}

/// [`with_postgres`] for a case that also writes past the store ([`Raw`]).
pub(crate) async fn with_postgres_raw<F, Fut>(name: &str, case: F)
where
    F: FnOnce(Arc<dyn Store>, Raw) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(url) = crate::pg::url(name) else {
        return;
    };
    let schema = crate::pg::fresh_schema();
    let store = PgStore::connect_in_schema(&url, &schema)
        .await
        .expect("PostgreSQL named by PORTCULLIS_TEST_DATABASE_URL must be reachable");
    let pool = store.pool().clone();
    case(Arc::new(store), Raw::Pg(pool.clone())).await;
    // Best effort: a failed case leaves its schema behind for inspection.
    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await;
}

/// Generates `<name>::sqlite` and `<name>::postgres` tests from one async case function named
/// `<name>` in the invoking module. This file's cases (`cases`, glob-imported below) and every
/// file of `conformance/` use it; [`conformance_raw!`] is the same for the few cases that also
/// write past the store.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::with_sqlite(super::$name).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::with_postgres(stringify!($name), super::$name).await;
            }
        }
    )*};
}

/// [`conformance!`] for cases that take a [`Raw`] handle as well as the store.
macro_rules! conformance_raw {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::with_sqlite_raw(super::$name).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::with_postgres_raw(stringify!($name), super::$name).await;
            }
        }
    )*};
}

use cases::*;

conformance!(
    every_list_pages_by_keyset_without_gaps_or_repeats_under_inserts,
    audit_events_page_newest_first_by_time_then_log_position,
    archiving_a_client_disables_it_expires_its_secrets_and_logs_in_one_step,
    archiving_a_tenant_is_final_and_logged,
    archiving_a_resource_server_hides_its_audience_and_secrets,
    archived_objects_leave_lists_unless_asked_for,
    tenant_lifecycle,
    tenant_ids_are_unique,
    system_tenant_exists_from_the_start,
    status_change_of_unknown_tenant_is_not_found,
    only_one_active_signing_key,
    signing_key_lanes_each_hold_one_active_key_and_activate_apart,
    signing_keys_round_trip_and_reseal_is_compare_and_swap,
    admin_credentials_are_tenant_scoped,
    admin_credential_for_unknown_tenant_is_refused,
    every_admin_role_is_stored_and_read_back,
    audit_batches_are_idempotent_and_filtered_by_tenant_and_time,
    audit_rows_keep_their_stored_strings_including_unknown_ones,
    a_large_audit_batch_is_stored_whole_and_in_order,
    ping_answers,
    api_keys_round_trip_and_are_listed_per_tenant_with_filters,
    api_key_batch_insert_round_trips_and_is_all_or_nothing,
    api_key_state_changes_are_tenant_scoped,
    api_key_bulk_revoke_by_owner,
    api_key_rotation_is_atomic_and_single_shot,
    api_key_uses_are_batched_and_never_move_backwards,
    api_key_policy_upsert,
    resource_servers_are_tenant_scoped_and_audiences_unique_per_tenant,
    resource_server_secrets_rotate_with_an_overlap_and_stay_in_their_tenant,
    clients_round_trip_with_their_first_secret,
    app_clients_round_trip_and_update_within_their_tenant,
    web_origins_match_exactly_and_only_for_active_clients,
    client_status_and_rotation_are_tenant_scoped,
    rotation_sets_the_overlap_end_on_older_secrets_only,
    touch_client_records_last_use,
    assertion_jti_replay_is_detected_until_expiry,
    revocation_log_is_gapless_and_ordered,
    every_revocation_kind_appends_and_reads_back,
    revocation_ranges_filter_expired_entries_and_other_tenants,
    revocation_head_is_read_and_watched,
    token_revocation_matches_jti_client_mark_and_key,
    activation_retires_the_active_key_atomically,
    revoking_a_key_reports_its_previous_state_once,
    export_import_round_trips_into_either_backend,
    import_refuses_a_database_that_is_not_empty,
    a_failed_import_changes_nothing,
    an_export_is_one_snapshot_while_writes_continue,
    alerts_deduplicate_while_live_and_move_only_forward,
    alerts_are_listed_with_filters_and_scoped_by_tenant,
    a_tenant_scope_never_reads_another_tenants_rows,
);

/// A fresh, migrated SQLite store and (when configured) a fresh PostgreSQL one, as import
/// targets: every export is imported into both backends.
async fn import_targets(
    run: impl Fn(Arc<dyn Store>) -> std::pin::Pin<Box<dyn Future<Output = ()>>>,
) {
    with_sqlite(&run).await;
    with_postgres("import target", &run).await;
}

fn tid(s: &str) -> TenantId {
    TenantId::parse(s).expect("valid tenant id")
}

fn uid(s: &str) -> UserId {
    UserId::parse(s).expect("user id")
}

fn cid(s: &str) -> portcullis_core::client::ClientId {
    portcullis_core::client::ClientId::parse(s).expect("client id")
}

fn sesid(s: &str) -> portcullis_core::session::SessionId {
    portcullis_core::session::SessionId::parse(s).expect("session id")
}

fn famid(s: &str) -> portcullis_core::refresh::FamilyId {
    portcullis_core::refresh::FamilyId::parse(s).expect("family id")
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn key(kid: &str, state: KeyState) -> StoredSigningKey {
    StoredSigningKey {
        kid: kid.into(),
        algorithm: SigningAlgorithm::ES256,
        state,
        public_jwk: format!(r#"{{"kid":"{kid}"}}"#),
        kek_id: "kek1".into(),
        sealed_private_key: vec![1, 2, 3, 0, 255],
        created_at: at(10),
        activates_at: at(10),
        retired_at: None,
        publish_until: Some(at(99)),
    }
}

fn admin(id: &str, tenant: &str, role: AdminRole) -> AdminCredentialRecord {
    AdminCredentialRecord {
        id: id.into(),
        tenant: tid(tenant),
        role,
        name: format!("{id}-name"),
        display_prefix: format!("pcl_adm_live_{id}"),
        secret_digest: vec![7; 32],
        created_at: at(5),
        created_by: Some("system".into()),
        revoked_at: None,
        last_used_at: None,
    }
}

fn event(id: &str, tenant: &str, when: i64, action: &str) -> AuditEvent {
    AuditEvent {
        id: id.into(),
        occurred_at: at(when),
        tenant: tid(tenant),
        actor: Actor::admin("x"),
        credential_id: Some("x".into()),
        client_ip: Some("127.0.0.1".into()),
        user_agent: Some("test".into()),
        action: Action::parse(action),
        outcome: Outcome::Success,
        reason: None,
        request_id: Some("req-1".into()),
        target: Some("acme".into()),
    }
}

fn api_key(id: &str, tenant: &str, env: &str, owner: &str) -> ApiKeyRecord {
    ApiKeyRecord {
        id: id.into(),
        tenant: tid(tenant),
        environment: env.into(),
        name: format!("{id}-name"),
        description: "for tests".into(),
        owner: owner.into(),
        scopes: "orders:read orders:write".into(),
        audiences: Some("https://api.example".into()),
        ip_allowlist: Some("10.0.0.0/8 192.0.2.7/32".into()),
        rate_limit_requests: Some(100),
        rate_limit_window_secs: Some(60),
        metadata: r#"{"team":"x"}"#.into(),
        display_prefix: format!("pcl_key_{env}_{id}"),
        digest: vec![id.len() as u8; 32],
        created_at: at(10),
        created_by: Some("admin:a".into()),
        expires_at: Some(at(1_000)),
        disabled_at: None,
        revoked_at: None,
        revoked_reason: None,
        replaced_by: None,
        rotation_overlap_ends_at: None,
        last_used_at: None,
        last_used_ip: None,
    }
}

/// The revocation log as (kind, subject, expires_at), oldest first.
async fn logged(s: &Arc<dyn Store>) -> Vec<(RevocationKind, String, Option<Timestamp>)> {
    s.revocations_after(0, 1_000)
        .await
        .expect("read the log")
        .into_iter()
        .map(|e| (e.kind, e.subject, e.expires_at))
        .collect()
}

/// Every audit event of `tenant`, newest first, read `limit` at a time.
async fn all_audit(s: &Arc<dyn Store>, tenant: &str, limit: u32) -> Vec<AuditEvent> {
    let mut query = AuditQuery {
        tenant: tid(tenant),
        since: None,
        until: None,
        action: None,
        page: PageRequest::first(limit),
    };
    let mut events = Vec::new();
    loop {
        let page = s.query_audit_events(&query).await.expect("audit page");
        events.extend(page.items);
        match page.next {
            Some(next) => query.page.after = Some(next),
            None => return events,
        }
    }
}

async fn tenants(s: &Arc<dyn Store>, ids: &[&str]) {
    for t in ids {
        s.create_tenant(
            &NewTenant {
                id: tid(t),
                display_name: (*t).into(),
            },
            at(1),
        )
        .await
        .expect("tenant");
    }
}

mod cases {
    use super::*;

    /// Reads every page of a list, `limit` rows at a time, running `$between` after the first
    /// page; checks each page's size and returns the rows in order.
    macro_rules! all_pages {
        ($limit:expr, |$page:ident| $fetch:expr, $between:expr) => {{
            let mut $page = PageRequest::first($limit);
            let mut seen = Vec::new();
            let mut first = true;
            loop {
                let got = $fetch.await.expect("page");
                assert!(got.items.len() <= $limit as usize);
                assert!(
                    got.next.is_none() || got.items.len() == $limit as usize,
                    "only the last page is short"
                );
                seen.extend(got.items);
                if first {
                    first = false;
                    $between;
                }
                match got.next {
                    Some(k) => $page.after = Some(k),
                    None => break,
                }
            }
            seen
        }};
    }

    /// Rows ordered by `(created_at, id)`, pages of 3, pairs of rows sharing a millisecond (the
    /// id breaks the tie): every row is seen once and in order, a row inserted before the
    /// cursor after the first page is not seen, one inserted after it is.
    pub async fn every_list_pages_by_keyset_without_gaps_or_repeats_under_inserts(
        s: Arc<dyn Store>,
    ) {
        tenants(&s, &["acme"]).await;
        let when = |i: usize| at(10 + (i as i64) / 2);
        let names: Vec<String> = (0..7).map(|i| format!("x{i}")).collect();
        for (i, n) in names.iter().enumerate() {
            let mut c = client(&format!("cl_{n}"), "acme");
            c.created_at = when(i);
            s.create_client(&c, None).await.expect("client");
            let mut r = rs(&format!("rs_{n}"), "acme", &format!("aud-{n}"));
            r.created_at = when(i);
            s.create_resource_server(&r).await.expect("rs");
            let mut k = api_key(&format!("k_{n}"), "acme", "live", "o");
            k.created_at = when(i);
            s.insert_api_key(&k).await.expect("key");
            let mut a = admin(&format!("a_{n}"), "acme", AdminRole::TenantAdmin);
            a.created_at = when(i);
            s.insert_admin_credential(&a).await.expect("admin");
            let mut sk = key(&format!("kid_{n}"), KeyState::Retired);
            sk.created_at = when(i);
            assert!(s.insert_signing_key(&sk).await.expect("signing key"));
            s.create_tenant(&new_tenant(&format!("t{n}")), when(i))
                .await
                .expect("tenant");
        }
        let expect = |prefix: &str| -> Vec<String> {
            let mut v: Vec<String> = names.iter().map(|n| format!("{prefix}{n}")).collect();
            v.push(format!("{prefix}late"));
            v
        };

        let got = all_pages!(
            3u32,
            |page| s.list_clients(&tid("acme"), &page, ArchivedFilter::Exclude),
            {
                for (id, t) in [("cl_early", 0), ("cl_late", 1_000)] {
                    let mut c = client(id, "acme");
                    c.created_at = at(t);
                    s.create_client(&c, None).await.expect("insert");
                }
            }
        );
        let ids: Vec<_> = got.into_iter().map(|c| c.item.id).collect();
        assert_eq!(ids, expect("cl_"), "clients");

        let got = all_pages!(
            3u32,
            |page| s.list_resource_servers(&tid("acme"), &page, ArchivedFilter::Exclude),
            {
                for (id, t) in [("rs_early", 0), ("rs_late", 1_000)] {
                    let mut r = rs(id, "acme", id);
                    r.created_at = at(t);
                    s.create_resource_server(&r).await.expect("insert");
                }
            }
        );
        let ids: Vec<_> = got.into_iter().map(|r| r.item.id).collect();
        assert_eq!(ids, expect("rs_"), "resource servers");

        let got = all_pages!(
            3u32,
            |page| s.list_api_keys(&tid("acme"), &ApiKeyFilter::default(), &page),
            {
                for (id, t) in [("k_early", 0), ("k_late", 1_000)] {
                    let mut k = api_key(id, "acme", "live", "o");
                    k.created_at = at(t);
                    s.insert_api_key(&k).await.expect("insert");
                }
            }
        );
        let ids: Vec<_> = got.into_iter().map(|k| k.id).collect();
        assert_eq!(ids, expect("k_"), "api keys");

        let got = all_pages!(
            3u32,
            |page| s.list_admin_credentials(&tid("acme"), &page),
            {
                for (id, t) in [("a_early", 0), ("a_late", 1_000)] {
                    let mut a = admin(id, "acme", AdminRole::Auditor);
                    a.created_at = at(t);
                    s.insert_admin_credential(&a).await.expect("insert");
                }
            }
        );
        let ids: Vec<_> = got.into_iter().map(|a| a.id).collect();
        assert_eq!(ids, expect("a_"), "admin credentials");

        let got = all_pages!(3u32, |page| s.page_signing_keys(&page), {
            for (id, t) in [("kid_early", 0), ("kid_late", 1_000)] {
                let mut k = key(id, KeyState::Retired);
                k.created_at = at(t);
                assert!(s.insert_signing_key(&k).await.expect("insert"));
            }
        });
        let ids: Vec<_> = got.into_iter().map(|k| k.kid).collect();
        assert_eq!(ids, expect("kid_"), "signing keys");

        let got = all_pages!(
            3u32,
            |page| s.list_tenants(&page, ArchivedFilter::Exclude),
            {
                s.create_tenant(&new_tenant("tearly"), at(0))
                    .await
                    .expect("insert");
                s.create_tenant(&new_tenant("tlate"), at(1_000))
                    .await
                    .expect("insert");
            }
        );
        let ids: Vec<_> = got.into_iter().map(|t| t.item.id.to_string()).collect();
        let mut want = vec!["system".to_owned(), "acme".to_owned()];
        want.extend(expect("t"));
        assert_eq!(ids, want, "tenants");

        // Another tenant's rows never appear, whatever the cursor says.
        tenants(&s, &["globex"]).await;
        let mut page = PageRequest::first(3);
        page.after = Some(PageKey {
            at: at(0),
            id: KeyId::Text(String::new()),
        });
        assert!(s
            .list_clients(&tid("globex"), &page, ArchivedFilter::Include)
            .await
            .expect("globex")
            .items
            .is_empty());
        // A limit of 0 or above the cap is clamped, never an error nor an unbounded read.
        let one = s
            .list_clients(
                &tid("acme"),
                &PageRequest::first(0),
                ArchivedFilter::Exclude,
            )
            .await
            .expect("limit 0");
        assert_eq!(one.items.len(), 1);
        let capped = s
            .list_clients(
                &tid("acme"),
                &PageRequest::first(u32::MAX),
                ArchivedFilter::Exclude,
            )
            .await
            .expect("huge limit");
        assert_eq!(capped.items.len(), 9);
        assert!(capped.next.is_none());
    }

    /// Audit events page newest first; events of one millisecond are ordered by their log
    /// position, so paging through a burst neither skips nor repeats one.
    pub async fn audit_events_page_newest_first_by_time_then_log_position(s: Arc<dyn Store>) {
        let batch: Vec<AuditEvent> = (0..10)
            .map(|i| event(&format!("e{i}"), "acme", 100 + (i / 4), "tenant.create"))
            .collect();
        s.append_audit_events(&batch).await.expect("append");
        let got = all_pages!(
            3u32,
            |page| s.query_audit_events(&AuditQuery {
                tenant: tid("acme"),
                since: None,
                until: None,
                action: None,
                page: page.clone(),
            }),
            {
                // A newer event arrives meanwhile: it is not on a later page (those are older).
                s.append_audit_events(&[event("new", "acme", 999, "tenant.create")])
                    .await
                    .expect("append");
            }
        );
        let ids: Vec<_> = got.into_iter().map(|e| e.id).collect();
        let want: Vec<String> = (0..10).rev().map(|i| format!("e{i}")).collect();
        assert_eq!(ids, want);
    }

    pub async fn a_tenant_scope_never_reads_another_tenants_rows(s: Arc<dyn Store>) {
        tenants(&s, &["acme", "globex"]).await;
        s.create_client(&client("cl_1", "acme"), None)
            .await
            .expect("client");
        s.insert_api_key(&api_key("k1", "acme", "live", "partner-a"))
            .await
            .expect("key");
        let acme = TenantScope::new(s.clone(), tid("acme"));
        let globex = TenantScope::new(s.clone(), tid("globex"));
        assert_eq!(acme.tenant(), &tid("acme"));
        assert_eq!(
            acme.client("cl_1").await.expect("get").map(|c| c.id),
            Some("cl_1".to_owned())
        );
        assert_eq!(
            acme.api_key("k1").await.expect("get").map(|k| k.id),
            Some("k1".to_owned())
        );
        // The same ids through another tenant's scope are simply not there.
        assert!(globex.client("cl_1").await.expect("get").is_none());
        assert!(globex.api_key("k1").await.expect("get").is_none());
        assert!(globex.resource_server("cl_1").await.expect("get").is_none());
        assert!(globex.alert("k1").await.expect("get").is_none());
        // An id no object could have is not found without a query failing.
        assert!(acme.client(&"x".repeat(65)).await.expect("get").is_none());
        assert!(acme.api_key(&"x".repeat(65)).await.expect("get").is_none());
        // The trait's tenant-bound lookups agree with the handle.
        assert!(s
            .get_tenant_client(&tid("globex"), "cl_1")
            .await
            .expect("get")
            .is_none());
        assert!(s
            .get_tenant_api_key(&tid("acme"), "k1")
            .await
            .expect("get")
            .is_some());
    }

    pub async fn archiving_a_client_disables_it_expires_its_secrets_and_logs_in_one_step(
        s: Arc<dyn Store>,
    ) {
        tenants(&s, &["acme", "globex"]).await;
        s.create_client(&client("cl_1", "acme"), Some(&secret("sec1", "cl_1", 2)))
            .await
            .expect("client");
        let rev = |t: &str| NewRevocation {
            tenant: tid(t),
            kind: RevocationKind::Client,
            subject: "cl_1".into(),
            revoked_before: Some(at(50)),
            expires_at: Some(at(5_000)),
            reason: Some("client_archived".into()),
        };
        // Another tenant's admin cannot archive it: nothing changes, nothing is logged.
        assert_eq!(
            s.archive_client(&tid("globex"), "cl_1", None, &rev("globex"), at(50))
                .await
                .expect("wrong tenant"),
            ArchiveOutcome::NotFound
        );
        assert!(logged(&s).await.is_empty());
        let done = s
            .archive_client(&tid("acme"), "cl_1", Some("adm1"), &rev("acme"), at(50))
            .await
            .expect("archive");
        let ArchiveOutcome::Archived(Some(entry)) = done else {
            panic!("{done:?}")
        };
        assert_eq!(entry.kind, RevocationKind::Client);
        assert_eq!(
            logged(&s).await,
            [(RevocationKind::Client, "cl_1".to_owned(), Some(at(5_000)))]
        );
        let c = s.get_client("cl_1").await.expect("get").expect("kept");
        assert_eq!(c.status, ClientStatus::Disabled);
        // Its registration is frozen here, whatever a handler checks first.
        let mut renamed = c.clone();
        renamed.name = "renamed after archiving".into();
        assert!(!s.update_client(&renamed, at(60)).await.expect("update"));
        assert_eq!(
            s.get_client("cl_1").await.expect("get").expect("kept").name,
            c.name
        );
        let secrets = s.list_client_secrets("cl_1").await.expect("secrets");
        assert_eq!(
            secrets[0].expires_at,
            Some(at(50)),
            "the secret stops at once"
        );
        assert_eq!(
            s.archived_at(ArchivedKind::Client, "cl_1")
                .await
                .expect("at"),
            Some(at(50))
        );
        // Twice: nothing changes and nothing more is logged.
        assert_eq!(
            s.archive_client(&tid("acme"), "cl_1", None, &rev("acme"), at(60))
                .await
                .expect("again"),
            ArchiveOutcome::AlreadyArchived
        );
        assert_eq!(logged(&s).await.len(), 1);
        // It can never be enabled, nor given a new secret.
        assert!(!s
            .set_client_status(&tid("acme"), "cl_1", ClientStatus::Active, at(70))
            .await
            .expect("enable"));
        assert!(!s
            .rotate_client_secret(&tid("acme"), &secret("sec2", "cl_1", 70), at(70))
            .await
            .expect("rotate"));
        assert_eq!(
            s.get_client("cl_1")
                .await
                .expect("get")
                .expect("kept")
                .status,
            ClientStatus::Disabled
        );
        // Its id stays taken.
        assert!(matches!(
            s.create_client(&client("cl_1", "acme"), None).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(
            s.archive_client(&tid("acme"), "cl_none", None, &rev("acme"), at(60))
                .await
                .expect("unknown"),
            ArchiveOutcome::NotFound
        );
    }

    pub async fn archiving_a_tenant_is_final_and_logged(s: Arc<dyn Store>) {
        tenants(&s, &["acme"]).await;
        let rev = NewRevocation {
            tenant: tid("acme"),
            kind: RevocationKind::Tenant,
            subject: "acme".into(),
            revoked_before: Some(at(50)),
            expires_at: Some(at(5_000)),
            reason: Some("tenant_archived".into()),
        };
        let done = s
            .archive_tenant(&tid("acme"), Some("adm"), &rev, at(50))
            .await
            .expect("archive");
        assert!(
            matches!(done, ArchiveOutcome::Archived(Some(_))),
            "{done:?}"
        );
        assert_eq!(
            logged(&s).await,
            [(RevocationKind::Tenant, "acme".to_owned(), Some(at(5_000)))]
        );
        let t = s
            .get_tenant(&tid("acme"))
            .await
            .expect("get")
            .expect("kept");
        assert_eq!(t.status, TenantStatus::Disabled);
        assert_eq!(
            s.archive_tenant(&tid("acme"), None, &rev, at(60))
                .await
                .expect("again"),
            ArchiveOutcome::AlreadyArchived
        );
        assert_eq!(logged(&s).await.len(), 1);
        // Never enabled again, and its id is never reused.
        assert!(matches!(
            s.set_tenant_status(&tid("acme"), TenantStatus::Active, at(70))
                .await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            s.get_tenant(&tid("acme"))
                .await
                .expect("get")
                .expect("kept")
                .status,
            TenantStatus::Disabled
        );
        assert!(matches!(
            s.create_tenant(&new_tenant("acme"), at(80)).await,
            Err(StoreError::Conflict)
        ));
        assert_eq!(
            s.archive_tenant(&tid("nobody"), None, &rev, at(60))
                .await
                .expect("unknown"),
            ArchiveOutcome::NotFound
        );
    }

    pub async fn archiving_a_resource_server_hides_its_audience_and_secrets(s: Arc<dyn Store>) {
        tenants(&s, &["acme", "globex"]).await;
        s.create_resource_server(&rs("rs_a", "acme", "payments-api"))
            .await
            .expect("rs");
        let secret = ResourceServerSecretRecord {
            id: "rss1".into(),
            resource_server_id: "rs_a".into(),
            display_prefix: "pcl_rss_live_rss1".into(),
            secret_digest: vec![4; 32],
            created_at: at(5),
            expires_at: None,
            last_used_at: None,
        };
        assert!(s
            .rotate_resource_server_secret(&tid("acme"), &secret, at(5))
            .await
            .expect("secret"));
        assert_eq!(
            s.archive_resource_server(&tid("globex"), "rs_a", None, at(50))
                .await
                .expect("wrong tenant"),
            ArchiveOutcome::NotFound
        );
        assert_eq!(
            s.archive_resource_server(&tid("acme"), "rs_a", None, at(50))
                .await
                .expect("archive"),
            ArchiveOutcome::Archived(None)
        );
        assert!(logged(&s).await.is_empty(), "no entry names an audience");
        assert!(s
            .find_resource_server_by_audience(&tid("acme"), "payments-api")
            .await
            .expect("by audience")
            .is_none());
        assert!(s
            .find_resource_server("rs_a")
            .await
            .expect("by id")
            .is_none());
        assert!(
            s.get_resource_server(&tid("acme"), "rs_a")
                .await
                .expect("admin view")
                .is_some(),
            "the admin API still shows it"
        );
        let secrets = s
            .list_resource_server_secrets("rs_a")
            .await
            .expect("secrets");
        assert_eq!(secrets[0].expires_at, Some(at(50)));
        let mut again = secret.clone();
        again.id = "rss2".into();
        assert!(!s
            .rotate_resource_server_secret(&tid("acme"), &again, at(60))
            .await
            .expect("rotate"));
        assert_eq!(
            s.archive_resource_server(&tid("acme"), "rs_a", None, at(60))
                .await
                .expect("again"),
            ArchiveOutcome::AlreadyArchived
        );
        // The audience stays reserved: a new resource server cannot inherit its tokens.
        assert!(matches!(
            s.create_resource_server(&rs("rs_b", "acme", "payments-api"))
                .await,
            Err(StoreError::Conflict)
        ));
    }

    pub async fn archived_objects_leave_lists_unless_asked_for(s: Arc<dyn Store>) {
        tenants(&s, &["acme", "globex"]).await;
        s.create_client(&client("cl_1", "acme"), None)
            .await
            .expect("c1");
        let mut c2 = client("cl_2", "acme");
        c2.created_at = at(3);
        s.create_client(&c2, None).await.expect("c2");
        s.create_resource_server(&rs("rs_1", "acme", "a1"))
            .await
            .expect("rs");
        let rev = |kind, subject: &str, t: &str| NewRevocation {
            tenant: tid(t),
            kind,
            subject: subject.into(),
            revoked_before: Some(at(50)),
            expires_at: None,
            reason: None,
        };
        s.archive_client(
            &tid("acme"),
            "cl_1",
            None,
            &rev(RevocationKind::Client, "cl_1", "acme"),
            at(50),
        )
        .await
        .expect("archive client");
        s.archive_resource_server(&tid("acme"), "rs_1", None, at(50))
            .await
            .expect("archive rs");
        s.archive_tenant(
            &tid("globex"),
            None,
            &rev(RevocationKind::Tenant, "globex", "globex"),
            at(50),
        )
        .await
        .expect("archive tenant");

        let page = PageRequest::default();
        let live: Vec<_> = s
            .list_clients(&tid("acme"), &page, ArchivedFilter::Exclude)
            .await
            .expect("live")
            .items;
        assert_eq!(
            live,
            [Archivable {
                item: c2.clone(),
                archived_at: None
            }]
        );
        let all: Vec<_> = s
            .list_clients(&tid("acme"), &page, ArchivedFilter::Include)
            .await
            .expect("all")
            .items
            .into_iter()
            .map(|c| (c.item.id, c.archived_at))
            .collect();
        assert_eq!(
            all,
            [("cl_1".to_owned(), Some(at(50))), ("cl_2".to_owned(), None)]
        );
        assert!(s
            .list_resource_servers(&tid("acme"), &page, ArchivedFilter::Exclude)
            .await
            .expect("rs live")
            .items
            .is_empty());
        assert_eq!(
            s.list_resource_servers(&tid("acme"), &page, ArchivedFilter::Include)
                .await
                .expect("rs all")
                .items[0]
                .archived_at,
            Some(at(50))
        );
        let tenant_ids = |f| {
            let s = s.clone();
            async move {
                s.list_tenants(&PageRequest::default(), f)
                    .await
                    .expect("tenants")
                    .items
                    .into_iter()
                    .map(|t| t.item.id.to_string())
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            tenant_ids(ArchivedFilter::Exclude).await,
            ["system", "acme"]
        );
        assert_eq!(
            tenant_ids(ArchivedFilter::Include).await,
            ["system", "acme", "globex"]
        );
    }

    pub async fn tenant_lifecycle(s: Arc<dyn Store>) {
        let created = s
            .create_tenant(
                &NewTenant {
                    id: tid("acme"),
                    display_name: "Acme Corp".into(),
                },
                at(1_000),
            )
            .await
            .expect("create");
        assert_eq!(created.status, TenantStatus::Active);
        let got = s
            .get_tenant(&tid("acme"))
            .await
            .expect("get")
            .expect("some");
        assert_eq!(got, created);
        assert!(s.get_tenant(&tid("globex")).await.expect("get").is_none());

        let disabled = s
            .set_tenant_status(&tid("acme"), TenantStatus::Disabled, at(2_000))
            .await
            .expect("disable");
        assert_eq!(disabled.status, TenantStatus::Disabled);
        assert_eq!(disabled.updated_at, at(2_000));
        assert_eq!(disabled.created_at, at(1_000));

        let ids: Vec<_> = s
            .list_tenants(&PageRequest::default(), ArchivedFilter::Exclude)
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|t| t.item.id.to_string())
            .collect();
        assert_eq!(ids, ["system", "acme"], "oldest first");
    }

    pub async fn tenant_ids_are_unique(s: Arc<dyn Store>) {
        let t = NewTenant {
            id: tid("acme"),
            display_name: "A".into(),
        };
        s.create_tenant(&t, at(1)).await.expect("first");
        let err = s.create_tenant(&t, at(2)).await.expect_err("second");
        assert!(matches!(err, StoreError::Conflict), "{err:?}");
        // The failed insert changed nothing.
        let got = s
            .get_tenant(&tid("acme"))
            .await
            .expect("get")
            .expect("some");
        assert_eq!(got.created_at, at(1));
    }

    pub async fn system_tenant_exists_from_the_start(s: Arc<dyn Store>) {
        let sys = s
            .get_tenant(&TenantId::system())
            .await
            .expect("get")
            .expect("system tenant present after migration");
        assert_eq!(sys.status, TenantStatus::Active);
    }

    pub async fn status_change_of_unknown_tenant_is_not_found(s: Arc<dyn Store>) {
        let err = s
            .set_tenant_status(&tid("nobody"), TenantStatus::Disabled, at(1))
            .await
            .expect_err("unknown");
        assert!(matches!(err, StoreError::NotFound), "{err:?}");
    }

    pub async fn only_one_active_signing_key(s: Arc<dyn Store>) {
        assert!(s
            .insert_signing_key(&key("k1", KeyState::Active))
            .await
            .expect("first"));
        // A racing second node's active key is refused without error and without change.
        assert!(!s
            .insert_signing_key(&key("k2", KeyState::Active))
            .await
            .expect("second"));
        // Non-active keys can coexist with it.
        assert!(s
            .insert_signing_key(&key("k3", KeyState::Pending))
            .await
            .expect("pending"));
        let keys = s.list_signing_keys().await.expect("list");
        let kids: Vec<_> = keys.iter().map(|k| k.kid.as_str()).collect();
        assert_eq!(kids, ["k1", "k3"]);
        assert_eq!(
            keys.iter().filter(|k| k.state == KeyState::Active).count(),
            1
        );
    }

    pub async fn signing_keys_round_trip_and_reseal_is_compare_and_swap(s: Arc<dyn Store>) {
        let k = key("k1", KeyState::Active);
        s.insert_signing_key(&k).await.expect("insert");
        assert_eq!(s.list_signing_keys().await.expect("list"), vec![k.clone()]);

        assert!(s
            .reseal_signing_key("k1", "kek1", "kek2", &[9, 9])
            .await
            .expect("reseal"));
        // A second reseal that still expects the old KEK must not overwrite the new envelope.
        assert!(!s
            .reseal_signing_key("k1", "kek1", "kek3", &[8])
            .await
            .expect("stale reseal"));
        let stored = &s.list_signing_keys().await.expect("list")[0];
        assert_eq!(stored.kek_id, "kek2");
        assert_eq!(stored.sealed_private_key, vec![9, 9]);
        assert!(
            !format!("{stored:?}").contains("9, 9"),
            "Debug must not dump key bytes"
        );
    }

    pub async fn admin_credentials_are_tenant_scoped(s: Arc<dyn Store>) {
        for t in ["acme", "globex"] {
            s.create_tenant(
                &NewTenant {
                    id: tid(t),
                    display_name: t.into(),
                },
                at(1),
            )
            .await
            .expect("tenant");
        }
        s.insert_admin_credential(&admin("g1", "system", AdminRole::GlobalAdmin))
            .await
            .expect("global");
        s.insert_admin_credential(&admin("a1", "acme", AdminRole::TenantAdmin))
            .await
            .expect("acme");
        s.insert_admin_credential(&admin("b1", "globex", AdminRole::TenantAdmin))
            .await
            .expect("globex");
        let dup = s
            .insert_admin_credential(&admin("a1", "acme", AdminRole::TenantAdmin))
            .await
            .expect_err("duplicate id");
        assert!(matches!(dup, StoreError::Conflict), "{dup:?}");

        assert_eq!(s.count_active_global_admins().await.expect("count"), 1);
        let acme: Vec<_> = s
            .list_admin_credentials(&tid("acme"), &PageRequest::default())
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(acme, ["a1"]);

        // Revoking through the wrong tenant changes nothing.
        assert!(!s
            .revoke_admin_credential(&tid("globex"), "a1", at(50))
            .await
            .expect("wrong tenant"));
        assert!(s
            .get_admin_credential("a1")
            .await
            .expect("get")
            .expect("some")
            .revoked_at
            .is_none());
        assert!(s
            .revoke_admin_credential(&tid("acme"), "a1", at(50))
            .await
            .expect("revoke"));
        assert!(!s
            .revoke_admin_credential(&tid("acme"), "a1", at(60))
            .await
            .expect("again"));
        let a1 = s
            .get_admin_credential("a1")
            .await
            .expect("get")
            .expect("some");
        assert_eq!(a1.revoked_at, Some(at(50)));

        s.touch_admin_credential("b1", at(70)).await.expect("touch");
        s.touch_admin_credential("b1", at(65))
            .await
            .expect("older touch");
        let b1 = s
            .get_admin_credential("b1")
            .await
            .expect("get")
            .expect("some");
        assert_eq!(
            b1.last_used_at,
            Some(at(70)),
            "last-used never moves backwards"
        );
        assert_eq!(b1.secret_digest, vec![7; 32]);
    }

    pub async fn every_admin_role_is_stored_and_read_back(s: Arc<dyn Store>) {
        s.create_tenant(
            &NewTenant {
                id: tid("acme"),
                display_name: "acme".into(),
            },
            at(1),
        )
        .await
        .expect("tenant");
        let mut expected = Vec::new();
        for (i, role) in AdminRole::ALL.into_iter().enumerate() {
            // Storage keeps whatever role it is given; which tenant may hold which role is
            // core's rule, so every role is stored under both kinds of tenant.
            for tenant in ["system", "acme"] {
                let id = format!("{}{i}", &tenant[..1]);
                s.insert_admin_credential(&admin(&id, tenant, role))
                    .await
                    .unwrap_or_else(|e| panic!("{}: {e:?}", role.as_str()));
                let back = s
                    .get_admin_credential(&id)
                    .await
                    .expect("get")
                    .expect("stored");
                assert_eq!(back, admin(&id, tenant, role), "{}", role.as_str());
                if tenant == "acme" {
                    expected.push((id, role));
                }
            }
        }
        let listed: Vec<_> = s
            .list_admin_credentials(&tid("acme"), &PageRequest::default())
            .await
            .expect("list")
            .items
            .into_iter()
            .map(|c| (c.id, c.role))
            .collect();
        assert_eq!(listed, expected);
        assert_eq!(
            s.count_active_global_admins().await.expect("count"),
            2,
            "only global_admin credentials count as global admins"
        );
    }

    pub async fn admin_credential_for_unknown_tenant_is_refused(s: Arc<dyn Store>) {
        let err = s
            .insert_admin_credential(&admin("x1", "nobody", AdminRole::TenantAdmin))
            .await
            .expect_err("unknown tenant");
        assert!(matches!(err, StoreError::NotFound), "{err:?}");
        assert!(s.get_admin_credential("x1").await.expect("get").is_none());
    }

    pub async fn audit_batches_are_idempotent_and_filtered_by_tenant_and_time(s: Arc<dyn Store>) {
        let batch = vec![
            event("e1", "acme", 100, "tenant.create"),
            event("e2", "acme", 200, "admin_token.create"),
            event("e3", "globex", 150, "tenant.create"),
            event("e4", "acme", 300, "tenant.disable"),
        ];
        s.append_audit_events(&batch).await.expect("append");
        // A retried batch (after a timeout, say) does not duplicate events.
        s.append_audit_events(&batch[..2]).await.expect("retry");

        let q = |since: Option<i64>, until: Option<i64>, action: Option<&str>, limit| AuditQuery {
            tenant: tid("acme"),
            since: since.map(at),
            until: until.map(at),
            action: action.map(str::to_owned),
            page: PageRequest::first(limit),
        };
        let ids = |v: Page<AuditEvent>| v.items.into_iter().map(|e| e.id).collect::<Vec<_>>();

        let all = s
            .query_audit_events(&q(None, None, None, 100))
            .await
            .expect("q")
            .items;
        assert_eq!(all[0], batch[3], "every field round-trips");
        assert_eq!(
            all.into_iter().map(|e| e.id).collect::<Vec<_>>(),
            ["e4", "e2", "e1"],
            "newest first, other tenant absent"
        );
        assert_eq!(
            ids(s
                .query_audit_events(&q(Some(200), None, None, 100))
                .await
                .expect("q")),
            ["e4", "e2"]
        );
        assert_eq!(
            ids(s
                .query_audit_events(&q(None, Some(300), None, 100))
                .await
                .expect("q")),
            ["e2", "e1"]
        );
        assert_eq!(
            ids(s
                .query_audit_events(&q(None, None, Some("tenant.create"), 100))
                .await
                .expect("q")),
            ["e1"]
        );
        assert_eq!(
            ids(s
                .query_audit_events(&q(None, None, None, 1))
                .await
                .expect("q")),
            ["e4"]
        );
    }

    /// Typed actions, actors and reasons are stored as the strings they always were, and a row
    /// a newer binary wrote (an action, actor or reason this version does not know) reads back
    /// verbatim instead of failing.
    pub async fn audit_rows_keep_their_stored_strings_including_unknown_ones(s: Arc<dyn Store>) {
        let mut known = event("k1", "acme", 100, "api_key.leak_revoked");
        known.actor = Actor::scanner();
        known.reason = Some(Reason::with_detail("leaked", "github"));
        let mut newer = event("n1", "acme", 200, "user.teleport");
        newer.actor = Actor::from_stored("user:u1".into());
        newer.reason = Some(Reason::from_stored("password_spray:42".into()));
        s.append_audit_events(&[known.clone(), newer.clone()])
            .await
            .expect("append");
        let stored = s
            .query_audit_events(&AuditQuery {
                tenant: tid("acme"),
                since: None,
                until: None,
                action: Some("api_key.leak_revoked".into()),
                page: PageRequest::first(10),
            })
            .await
            .expect("query by stored name")
            .items;
        assert_eq!(stored, [known]);
        assert_eq!(stored[0].action, Action::ApiKeyLeakRevoked);
        assert_eq!(stored[0].actor.as_str(), "scanner");
        let stored = s
            .query_audit_events(&AuditQuery {
                tenant: tid("acme"),
                since: None,
                until: None,
                action: Some("user.teleport".into()),
                page: PageRequest::first(10),
            })
            .await
            .expect("query an unknown name")
            .items;
        assert_eq!(stored, [newer]);
        assert_eq!(stored[0].action, Action::Unknown("user.teleport".into()));
    }

    /// More events than one multi-row statement holds, all at the same instant, with a repeat of
    /// an already stored id inside the batch: every new event is stored once, in batch order.
    pub async fn a_large_audit_batch_is_stored_whole_and_in_order(s: Arc<dyn Store>) {
        let mut batch: Vec<AuditEvent> = (0..1_234)
            .map(|i| event(&format!("big{i:05}"), "acme", 500, "oauth.token.issue"))
            .collect();
        s.append_audit_events(&batch[..10])
            .await
            .expect("first part");
        batch.push(event("big00003", "acme", 500, "oauth.token.issue"));
        s.append_audit_events(&batch).await.expect("append");
        // Paged through (a page is at most MAX_PAGE_LIMIT): every event is seen once, all at
        // the same instant, so the key's second half (the log position) orders them.
        let stored = all_audit(&s, "acme", 500).await;
        let ids: Vec<String> = stored.into_iter().rev().map(|e| e.id).collect();
        let expected: Vec<String> = batch[..1_234].iter().map(|e| e.id.clone()).collect();
        assert_eq!(ids, expected);
    }

    pub async fn ping_answers(s: Arc<dyn Store>) {
        s.ping().await.expect("ping");
        assert!(["sqlite", "postgres"].contains(&s.backend()));
        // The pool after a query: at least one connection, never more in use than open, and
        // never more open than its maximum.
        let pool = s.pool_stats();
        assert!(pool.size >= 1, "{pool:?}");
        assert!(pool.idle <= pool.size && pool.size <= pool.max, "{pool:?}");
        assert_eq!(pool.in_use(), pool.size - pool.idle);
    }

    pub async fn api_keys_round_trip_and_are_listed_per_tenant_with_filters(s: Arc<dyn Store>) {
        tenants(&s, &["acme", "globex"]).await;
        let k1 = api_key("k1", "acme", "live", "partner-a");
        let mut k2 = api_key("k2", "acme", "test", "partner-a");
        k2.created_at = at(20);
        k2.audiences = None;
        k2.ip_allowlist = None;
        k2.rate_limit_requests = None;
        k2.rate_limit_window_secs = None;
        k2.expires_at = None;
        let mut k3 = api_key("k3", "acme", "live", "partner-b");
        k3.created_at = at(30);
        let g1 = api_key("g1", "globex", "live", "partner-a");
        for k in [&k1, &k2, &k3, &g1] {
            s.insert_api_key(k).await.expect("insert");
        }
        let dup = s.insert_api_key(&k1).await.expect_err("duplicate");
        assert!(matches!(dup, StoreError::Conflict), "{dup:?}");
        let orphan = s
            .insert_api_key(&api_key("o1", "nobody", "live", "x"))
            .await
            .expect_err("unknown tenant");
        assert!(matches!(orphan, StoreError::NotFound), "{orphan:?}");

        assert_eq!(s.get_api_key("k1").await.expect("get"), Some(k1.clone()));
        assert_eq!(s.get_api_key("k2").await.expect("get"), Some(k2.clone()));
        assert_eq!(s.get_api_key("zz").await.expect("get"), None);

        let ids = |v: Vec<ApiKeyRecord>| v.into_iter().map(|k| k.id).collect::<Vec<_>>();
        let list = |env: Option<&str>, owner: Option<&str>| ApiKeyFilter {
            environment: env.map(str::to_owned),
            owner: owner.map(str::to_owned),
        };
        assert_eq!(
            ids(s
                .list_api_keys(&tid("acme"), &list(None, None), &PageRequest::default())
                .await
                .expect("list")
                .items),
            ["k1", "k2", "k3"]
        );
        assert_eq!(
            ids(s
                .list_api_keys(
                    &tid("acme"),
                    &list(Some("live"), None),
                    &PageRequest::default()
                )
                .await
                .expect("list")
                .items),
            ["k1", "k3"]
        );
        assert_eq!(
            ids(s
                .list_api_keys(
                    &tid("acme"),
                    &list(Some("live"), Some("partner-a")),
                    &PageRequest::default()
                )
                .await
                .expect("list")
                .items),
            ["k1"]
        );
        assert_eq!(
            ids(s
                .list_api_keys(&tid("globex"), &list(None, None), &PageRequest::default())
                .await
                .expect("list")
                .items),
            ["g1"]
        );

        let mut changed = k1.clone();
        changed.name = "renamed".into();
        changed.scopes = "orders:read".into();
        changed.ip_allowlist = None;
        changed.metadata = "{}".into();
        // Fields outside the mutable set are not written by an attribute update.
        changed.digest = vec![0; 32];
        assert!(s
            .update_api_key_attributes(&changed, at(20))
            .await
            .expect("update"));
        let got = s.get_api_key("k1").await.expect("get").expect("some");
        assert_eq!(got.name, "renamed");
        assert_eq!(got.scopes, "orders:read");
        assert_eq!(got.ip_allowlist, None);
        assert_eq!(got.digest, k1.digest);
        let mut wrong_tenant = changed.clone();
        wrong_tenant.tenant = tid("globex");
        assert!(!s
            .update_api_key_attributes(&wrong_tenant, at(21))
            .await
            .expect("update"));
        // One `api_key_changed` entry, for the change that happened, bounded by the key's
        // expiry.
        assert_eq!(
            logged(&s).await,
            [(RevocationKind::ApiKeyChanged, "k1".into(), Some(at(1_000)))]
        );
    }

    pub async fn api_key_batch_insert_round_trips_and_is_all_or_nothing(s: Arc<dyn Store>) {
        tenants(&s, &["acme", "globex"]).await;
        // More rows than one statement holds, with every optional field both set and unset.
        let keys: Vec<ApiKeyRecord> = (0..1_000)
            .map(|i| {
                let mut k = api_key(&format!("b{i}"), "acme", "live", "partner-a");
                if i % 2 == 0 {
                    k.audiences = None;
                    k.ip_allowlist = None;
                    k.rate_limit_requests = None;
                    k.rate_limit_window_secs = None;
                    k.expires_at = None;
                    k.created_by = None;
                } else {
                    k.disabled_at = Some(at(11));
                    k.revoked_at = Some(at(12));
                    k.revoked_reason = Some("leaked".into());
                    k.replaced_by = Some("b0".into());
                    k.rotation_overlap_ends_at = Some(at(13));
                    k.last_used_at = Some(at(14));
                    k.last_used_ip = Some("192.0.2.1".into());
                }
                k
            })
            .collect();
        s.insert_api_keys(&keys).await.expect("batch insert");
        s.insert_api_keys(&[]).await.expect("empty batch");
        for k in [&keys[0], &keys[1], &keys[399], &keys[400], &keys[999]] {
            assert_eq!(s.get_api_key(&k.id).await.expect("get").as_ref(), Some(k));
        }

        // A duplicate in the last statement undoes the earlier statements too.
        let mut again: Vec<ApiKeyRecord> = (0..500)
            .map(|i| api_key(&format!("c{i}"), "globex", "live", "partner-b"))
            .collect();
        again.push(keys[0].clone());
        let dup = s.insert_api_keys(&again).await.expect_err("duplicate");
        assert!(matches!(dup, StoreError::Conflict), "{dup:?}");
        assert_eq!(s.get_api_key("c0").await.expect("get"), None);
        let orphan = s
            .insert_api_keys(&[api_key("o1", "nobody", "live", "x")])
            .await
            .expect_err("unknown tenant");
        assert!(matches!(orphan, StoreError::NotFound), "{orphan:?}");
        let none = ApiKeyFilter::default();
        assert!(s
            .list_api_keys(&tid("globex"), &none, &PageRequest::default())
            .await
            .expect("list")
            .items
            .is_empty());
    }

    pub async fn api_key_state_changes_are_tenant_scoped(s: Arc<dyn Store>) {
        tenants(&s, &["acme", "globex"]).await;
        s.insert_api_key(&api_key("k1", "acme", "live", "p"))
            .await
            .expect("insert");
        let acme = tid("acme");
        let globex = tid("globex");

        assert!(!s
            .set_api_key_disabled(&globex, "k1", Some(at(50)), at(50))
            .await
            .expect("wrong tenant"));
        assert!(s
            .set_api_key_disabled(&acme, "k1", Some(at(50)), at(50))
            .await
            .expect("disable"));
        assert_eq!(
            s.get_api_key("k1")
                .await
                .expect("get")
                .expect("some")
                .disabled_at,
            Some(at(50))
        );
        // The sweep's compare-and-swap: a disabled key is not disabled again (no second log
        // entry), another tenant's never.
        let log_len = s.revocations_after(0, 1000).await.expect("log").len();
        assert!(!s
            .disable_api_key_if_enabled(&acme, "k1", at(52))
            .await
            .expect("already disabled"));
        assert_eq!(
            s.revocations_after(0, 1000).await.expect("log").len(),
            log_len
        );
        assert!(s
            .set_api_key_disabled(&acme, "k1", None, at(55))
            .await
            .expect("enable"));
        assert!(!s
            .disable_api_key_if_enabled(&globex, "k1", at(56))
            .await
            .expect("wrong tenant"));
        assert!(s
            .disable_api_key_if_enabled(&acme, "k1", at(56))
            .await
            .expect("enabled: disabled once"));
        assert!(!s
            .disable_api_key_if_enabled(&acme, "k1", at(57))
            .await
            .expect("not twice"));
        assert!(s
            .set_api_key_disabled(&acme, "k1", None, at(58))
            .await
            .expect("enable"));
        assert_eq!(
            s.get_api_key("k1")
                .await
                .expect("get")
                .expect("some")
                .disabled_at,
            None
        );

        assert!(!s
            .revoke_api_key(&globex, "k1", "admin", at(60))
            .await
            .expect("wrong tenant"));
        assert!(s
            .revoke_api_key(&acme, "k1", "admin", at(60))
            .await
            .expect("revoke"));
        assert!(!s
            .revoke_api_key(&acme, "k1", "leaked", at(70))
            .await
            .expect("again"));
        let k = s.get_api_key("k1").await.expect("get").expect("some");
        assert_eq!(k.revoked_at, Some(at(60)));
        assert_eq!(k.revoked_reason.as_deref(), Some("admin"));
        // A revoked key cannot be re-enabled.
        assert!(!s
            .set_api_key_disabled(&acme, "k1", None, at(80))
            .await
            .expect("enable revoked"));
        // Disable, enable, the sweep's disable, enable and revoke each logged once; the refused
        // calls logged nothing.
        let bound = Some(at(1_000));
        assert_eq!(
            logged(&s).await,
            [
                (RevocationKind::ApiKeyChanged, "k1".into(), bound),
                (RevocationKind::ApiKeyChanged, "k1".into(), bound),
                (RevocationKind::ApiKeyChanged, "k1".into(), bound),
                (RevocationKind::ApiKeyChanged, "k1".into(), bound),
                (RevocationKind::ApiKey, "k1".into(), bound),
            ]
        );
        let entries = s.revocations_after(0, 10).await.expect("log");
        assert_eq!(
            entries
                .iter()
                .map(|e| (e.tenant.as_str(), e.reason.as_deref(), e.created_at))
                .collect::<Vec<_>>(),
            [
                ("acme", Some("disabled"), at(50)),
                ("acme", Some("enabled"), at(55)),
                ("acme", Some("disabled"), at(56)),
                ("acme", Some("enabled"), at(58)),
                ("acme", Some("admin"), at(60)),
            ]
        );
    }

    pub async fn api_key_bulk_revoke_by_owner(s: Arc<dyn Store>) {
        tenants(&s, &["acme", "globex"]).await;
        for k in [
            api_key("a1", "acme", "live", "leaver"),
            api_key("a2", "acme", "test", "leaver"),
            api_key("a3", "acme", "live", "stayer"),
            api_key("g1", "globex", "live", "leaver"),
        ] {
            s.insert_api_key(&k).await.expect("insert");
        }
        s.revoke_api_key(&tid("acme"), "a2", "admin", at(5))
            .await
            .expect("pre-revoke");
        let revoked = s
            .revoke_api_keys_by_owner(&tid("acme"), "leaver", "owner_offboarded", at(100))
            .await
            .expect("bulk");
        assert_eq!(
            revoked,
            ["a1"],
            "already revoked keys are not counted again"
        );
        assert_eq!(
            logged(&s).await,
            [
                (RevocationKind::ApiKey, "a2".into(), Some(at(1_000))),
                (RevocationKind::ApiKey, "a1".into(), Some(at(1_000))),
            ]
        );
        for (id, revoked_at) in [
            ("a1", Some(at(100))),
            ("a2", Some(at(5))),
            ("a3", None),
            ("g1", None),
        ] {
            assert_eq!(
                s.get_api_key(id)
                    .await
                    .expect("get")
                    .expect("some")
                    .revoked_at,
                revoked_at,
                "{id}"
            );
        }
    }

    pub async fn api_key_rotation_is_atomic_and_single_shot(s: Arc<dyn Store>) {
        tenants(&s, &["acme", "globex"]).await;
        s.insert_api_key(&api_key("old", "acme", "live", "p"))
            .await
            .expect("insert");
        let mut new = api_key("new", "acme", "live", "p");
        new.created_at = at(500);
        assert!(s
            .rotate_api_key("old", at(600), &new)
            .await
            .expect("rotate"));
        let old = s.get_api_key("old").await.expect("get").expect("some");
        assert_eq!(old.replaced_by.as_deref(), Some("new"));
        assert_eq!(old.rotation_overlap_ends_at, Some(at(600)));
        assert_eq!(s.get_api_key("new").await.expect("get"), Some(new.clone()));

        // Rotating the same key again changes nothing and inserts nothing.
        let again = api_key("new2", "acme", "live", "p");
        assert!(!s
            .rotate_api_key("old", at(700), &again)
            .await
            .expect("again"));
        assert!(s.get_api_key("new2").await.expect("get").is_none());
        // Nor can another tenant rotate it.
        let mut foreign = api_key("new3", "globex", "live", "p");
        foreign.tenant = tid("globex");
        assert!(!s
            .rotate_api_key("new", at(700), &foreign)
            .await
            .expect("foreign"));
        assert!(s.get_api_key("new3").await.expect("get").is_none());
        // A failed insert rolls the mark back.
        let clash = api_key("old", "acme", "live", "p");
        let err = s
            .rotate_api_key("new", at(800), &clash)
            .await
            .expect_err("clash");
        assert!(matches!(err, StoreError::Conflict), "{err:?}");
        let new_now = s.get_api_key("new").await.expect("get").expect("some");
        assert_eq!(new_now.replaced_by, None);
        assert_eq!(new_now.rotation_overlap_ends_at, None);
        // Only the rotation that happened is logged, for the old key, bounded by the end of
        // its window (before its expiry), at the new key's creation time.
        assert_eq!(
            logged(&s).await,
            [(RevocationKind::ApiKeyChanged, "old".into(), Some(at(600)))]
        );
        let entry = &s.revocations_after(0, 10).await.expect("log")[0];
        assert_eq!(entry.created_at, at(500));
        assert_eq!(entry.reason.as_deref(), Some("rotated"));
    }

    pub async fn api_key_uses_are_batched_and_never_move_backwards(s: Arc<dyn Store>) {
        tenants(&s, &["acme"]).await;
        for id in ["u1", "u2"] {
            s.insert_api_key(&api_key(id, "acme", "live", "p"))
                .await
                .expect("insert");
        }
        let use_ = |id: &str, ms, ip: &str| ApiKeyUse {
            id: id.into(),
            at: at(ms),
            ip: Some(ip.into()),
        };
        s.record_api_key_uses(&[use_("u1", 100, "10.0.0.1"), use_("u2", 200, "10.0.0.2")])
            .await
            .expect("record");
        s.record_api_key_uses(&[use_("u1", 90, "10.0.0.9"), use_("missing", 5, "x")])
            .await
            .expect("older");
        s.record_api_key_uses(&[]).await.expect("empty");
        let u1 = s.get_api_key("u1").await.expect("get").expect("some");
        assert_eq!(u1.last_used_at, Some(at(100)));
        assert_eq!(u1.last_used_ip.as_deref(), Some("10.0.0.1"));
        let u2 = s.get_api_key("u2").await.expect("get").expect("some");
        assert_eq!(u2.last_used_at, Some(at(200)));
    }

    pub async fn api_key_policy_upsert(s: Arc<dyn Store>) {
        tenants(&s, &["acme"]).await;
        assert_eq!(s.get_api_key_policy(&tid("acme")).await.expect("get"), None);
        let p1 = ApiKeyPolicyRecord {
            default_ttl_secs: Some(3_600),
            max_ttl_secs: Some(86_400),
            allow_never: false,
        };
        s.put_api_key_policy(&tid("acme"), &p1, at(1))
            .await
            .expect("put");
        assert_eq!(
            s.get_api_key_policy(&tid("acme")).await.expect("get"),
            Some(p1)
        );
        let p2 = ApiKeyPolicyRecord {
            default_ttl_secs: None,
            max_ttl_secs: None,
            allow_never: true,
        };
        s.put_api_key_policy(&tid("acme"), &p2, at(2))
            .await
            .expect("replace");
        assert_eq!(
            s.get_api_key_policy(&tid("acme")).await.expect("get"),
            Some(p2)
        );
        let err = s
            .put_api_key_policy(&tid("nobody"), &p1, at(3))
            .await
            .expect_err("unknown tenant");
        assert!(matches!(err, StoreError::NotFound), "{err:?}");
    }

    fn new_tenant(id: &str) -> NewTenant {
        NewTenant {
            id: tid(id),
            display_name: id.into(),
        }
    }

    fn rs(id: &str, tenant: &str, audience: &str) -> ResourceServer {
        ResourceServer {
            id: id.into(),
            tenant: tid(tenant),
            name: format!("{id} name"),
            audience: audience.into(),
            scopes: vec!["payments:read".into(), "payments:write".into()],
            created_at: at(1),
            updated_at: at(1),
        }
    }

    fn client(id: &str, tenant: &str) -> OAuthClient {
        OAuthClient {
            id: id.into(),
            tenant: tid(tenant),
            name: "billing-sync".into(),
            environment: "live".into(),
            auth_method: "client_secret_basic".into(),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["payments:read".into()],
            audiences: vec!["payments-api".into(), "ledger-api".into()],
            access_token_ttl_secs: 600,
            can_introspect: true,
            jwks: Some(r#"{"keys":[]}"#.into()),
            jwks_uri: None,
            status: ClientStatus::Active,
            created_at: at(2),
            updated_at: at(2),
            last_used_at: None,
            client_type: ClientType::Confidential,
            application_type: ApplicationType::Web,
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            allowed_web_origins: vec![],
            first_party: false,
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
            require_pushed_requests: false,
            require_dpop: false,
            id_token_signed_response_alg: None,
            tls_subject: None,
            certificate_bound_tokens: false,
        }
    }

    /// A native app: public, with every app field set.
    fn app_client(id: &str, tenant: &str) -> OAuthClient {
        OAuthClient {
            auth_method: "none".into(),
            grant_types: vec!["authorization_code".into(), "refresh_token".into()],
            scopes: vec!["openid".into(), "offline_access".into()],
            audiences: vec![],
            can_introspect: false,
            jwks: None,
            client_type: ClientType::Public,
            application_type: ApplicationType::Native,
            redirect_uris: vec!["com.example.app:/cb".into(), "http://127.0.0.1/cb".into()],
            post_logout_redirect_uris: vec!["com.example.app:/bye".into()],
            allowed_web_origins: vec!["https://app.example.com".into()],
            backchannel_logout_uri: Some("https://app.example.com/bcl?x=1".into()),
            backchannel_logout_session_required: true,
            require_pushed_requests: false,
            require_dpop: false,
            id_token_signed_response_alg: None,
            tls_subject: None,
            certificate_bound_tokens: false,
            first_party: true,
            ..client(id, tenant)
        }
    }

    fn secret(id: &str, client_id: &str, created: i64) -> ClientSecretRecord {
        ClientSecretRecord {
            id: id.into(),
            client_id: client_id.into(),
            display_prefix: format!("pcl_cs_live_{id}"),
            secret_digest: vec![9; 32],
            created_at: at(created),
            expires_at: None,
            last_used_at: None,
        }
    }

    pub async fn resource_servers_are_tenant_scoped_and_audiences_unique_per_tenant(
        s: Arc<dyn Store>,
    ) {
        s.create_tenant(&new_tenant("acme"), at(0))
            .await
            .expect("acme");
        s.create_tenant(&new_tenant("globex"), at(0))
            .await
            .expect("globex");
        let a = rs("rs_a", "acme", "payments-api");
        s.create_resource_server(&a).await.expect("create");
        // The same audience in another tenant is a different API.
        s.create_resource_server(&rs("rs_b", "globex", "payments-api"))
            .await
            .expect("other tenant");
        assert!(matches!(
            s.create_resource_server(&rs("rs_c", "acme", "payments-api"))
                .await,
            Err(StoreError::Conflict)
        ));
        assert!(matches!(
            s.create_resource_server(&rs("rs_d", "nosuch", "x")).await,
            Err(StoreError::NotFound)
        ));
        assert_eq!(
            s.get_resource_server(&tid("acme"), "rs_a")
                .await
                .expect("get"),
            Some(a.clone())
        );
        assert_eq!(
            s.get_resource_server(&tid("globex"), "rs_a")
                .await
                .expect("get"),
            None,
            "another tenant's id is not found"
        );
        assert_eq!(
            s.find_resource_server_by_audience(&tid("acme"), "payments-api")
                .await
                .expect("find"),
            Some(a.clone())
        );
        assert_eq!(
            s.find_resource_server_by_audience(&tid("acme"), "nope")
                .await
                .expect("find"),
            None
        );
        assert_eq!(
            s.list_resource_servers(
                &tid("acme"),
                &PageRequest::default(),
                ArchivedFilter::Exclude
            )
            .await
            .expect("list")
            .items,
            vec![Archivable {
                item: a,
                archived_at: None
            }]
        );
    }

    pub async fn clients_round_trip_with_their_first_secret(s: Arc<dyn Store>) {
        s.create_tenant(&new_tenant("acme"), at(0))
            .await
            .expect("acme");
        let c = client("cl_1", "acme");
        let sec = secret("sec1", "cl_1", 2);
        s.create_client(&c, Some(&sec)).await.expect("create");
        assert_eq!(s.get_client("cl_1").await.expect("get"), Some(c.clone()));
        assert_eq!(s.get_client("cl_2").await.expect("get"), None);
        assert_eq!(
            s.list_client_secrets("cl_1").await.expect("secrets"),
            vec![sec]
        );
        assert_eq!(
            s.list_clients(
                &tid("acme"),
                &PageRequest::default(),
                ArchivedFilter::Exclude
            )
            .await
            .expect("list")
            .items,
            vec![Archivable {
                item: c.clone(),
                archived_at: None
            }]
        );
        assert!(matches!(
            s.create_client(&c, None).await,
            Err(StoreError::Conflict)
        ));
        // A failed secret insert rolls the client back.
        let c2 = client("cl_2", "acme");
        assert!(s
            .create_client(&c2, Some(&secret("sec1", "cl_2", 3)))
            .await
            .is_err());
        assert_eq!(s.get_client("cl_2").await.expect("get"), None);
        assert!(matches!(
            s.create_client(&client("cl_3", "nosuch"), None).await,
            Err(StoreError::NotFound)
        ));
    }

    /// CORS preflights: an origin an active client registered, character for character; never
    /// a prefix, a suffix, a pattern or a disabled client's.
    pub async fn web_origins_match_exactly_and_only_for_active_clients(s: Arc<dyn Store>) {
        tenants(&s, &["acme"]).await;
        let mut app = app_client("cl_app", "acme");
        app.allowed_web_origins = vec![
            "https://app.example.com".into(),
            "https://b.example.com:8443".into(),
        ];
        s.create_client(&app, None).await.expect("create");
        for yes in ["https://app.example.com", "https://b.example.com:8443"] {
            assert!(s.web_origin_registered(yes).await.expect("read"), "{yes}");
        }
        for no in [
            "https://app.example.co",
            "https://app.example.com.evil",
            "app.example.com",
            "https://app_example.com",
            "https://%.example.com",
            "%",
            "",
            "https://app.example.com https://b.example.com:8443",
            "https://b.example.com",
        ] {
            assert!(!s.web_origin_registered(no).await.expect("read"), "{no:?}");
        }
        // The whole list, for the preflight cache: each registered origin once, sorted.
        let mut other = app_client("cl_other", "acme");
        other.allowed_web_origins = vec!["https://app.example.com".into()];
        s.create_client(&other, None).await.expect("create");
        assert_eq!(
            s.registered_web_origins().await.expect("list"),
            vec![
                "https://app.example.com".to_owned(),
                "https://b.example.com:8443".to_owned()
            ]
        );
        assert!(s
            .set_client_status(&tid("acme"), "cl_app", ClientStatus::Disabled, at(5))
            .await
            .expect("disable"));
        assert!(s
            .set_client_status(&tid("acme"), "cl_other", ClientStatus::Disabled, at(5))
            .await
            .expect("disable"));
        assert!(!s
            .web_origin_registered("https://app.example.com")
            .await
            .expect("read"));
        assert!(s.registered_web_origins().await.expect("list").is_empty());
    }

    pub async fn app_clients_round_trip_and_update_within_their_tenant(s: Arc<dyn Store>) {
        tenants(&s, &["acme", "globex"]).await;
        let app = app_client("cl_app", "acme");
        s.create_client(&app, None).await.expect("create");
        assert_eq!(
            s.get_client("cl_app").await.expect("get"),
            Some(app.clone())
        );
        // A machine client reads back with the machine defaults.
        s.create_client(&client("cl_m", "acme"), None)
            .await
            .expect("machine");
        let m = s.get_client("cl_m").await.expect("get").expect("some");
        assert_eq!(
            (m.client_type, m.application_type, m.first_party),
            (ClientType::Confidential, ApplicationType::Web, false)
        );
        assert!(m.redirect_uris.is_empty() && m.allowed_web_origins.is_empty());

        let mut changed = app.clone();
        changed.name = "renamed".into();
        changed.redirect_uris = vec!["com.example.app:/cb2".into()];
        changed.post_logout_redirect_uris = vec![];
        changed.allowed_web_origins = vec![];
        changed.first_party = false;
        changed.grant_types = vec!["authorization_code".into()];
        changed.scopes = vec!["openid".into()];
        changed.require_dpop = true;
        // What update never changes, even if the record says otherwise.
        let mut attempt = changed.clone();
        attempt.client_type = ClientType::Confidential;
        attempt.auth_method = "client_secret_basic".into();
        attempt.status = ClientStatus::Disabled;
        attempt.created_at = at(99);
        assert!(!s
            .update_client(
                &OAuthClient {
                    tenant: tid("globex"),
                    ..attempt.clone()
                },
                at(9)
            )
            .await
            .expect("other tenant"));
        assert_eq!(
            s.get_client("cl_app").await.expect("get"),
            Some(app.clone()),
            "another tenant changes nothing"
        );
        assert!(!s
            .update_client(&app_client("cl_none", "acme"), at(9))
            .await
            .expect("unknown"));
        assert!(s.update_client(&attempt, at(9)).await.expect("update"));
        let got = s.get_client("cl_app").await.expect("get").expect("some");
        assert_eq!(
            got,
            OAuthClient {
                updated_at: at(9),
                ..changed
            }
        );
    }

    pub async fn client_status_and_rotation_are_tenant_scoped(s: Arc<dyn Store>) {
        s.create_tenant(&new_tenant("acme"), at(0))
            .await
            .expect("acme");
        s.create_tenant(&new_tenant("globex"), at(0))
            .await
            .expect("globex");
        s.create_client(&client("cl_1", "acme"), Some(&secret("sec1", "cl_1", 2)))
            .await
            .expect("create");
        assert!(!s
            .set_client_status(&tid("globex"), "cl_1", ClientStatus::Disabled, at(5))
            .await
            .expect("status"));
        assert!(!s
            .rotate_client_secret(&tid("globex"), &secret("sec2", "cl_1", 5), at(6))
            .await
            .expect("rotate"));
        assert_eq!(
            s.list_client_secrets("cl_1").await.expect("secrets").len(),
            1
        );
        assert!(s
            .set_client_status(&tid("acme"), "cl_1", ClientStatus::Disabled, at(5))
            .await
            .expect("status"));
        let got = s.get_client("cl_1").await.expect("get").expect("some");
        assert_eq!(got.status, ClientStatus::Disabled);
        assert_eq!(got.updated_at, at(5));
        assert!(s
            .list_clients(
                &tid("globex"),
                &PageRequest::default(),
                ArchivedFilter::Include
            )
            .await
            .expect("list")
            .items
            .is_empty());
    }

    pub async fn resource_server_secrets_rotate_with_an_overlap_and_stay_in_their_tenant(
        s: Arc<dyn Store>,
    ) {
        tenants(&s, &["acme", "globex"]).await;
        let a = rs("rs_a", "acme", "payments-api");
        s.create_resource_server(&a).await.expect("create");
        assert_eq!(s.find_resource_server("rs_a").await.expect("find"), Some(a));
        assert_eq!(s.find_resource_server("rs_x").await.expect("find"), None);
        let secret = |id: &str, created: i64| ResourceServerSecretRecord {
            id: id.into(),
            resource_server_id: "rs_a".into(),
            display_prefix: format!("pcl_cs_live_{id}"),
            secret_digest: vec![created as u8; 32],
            created_at: at(created),
            expires_at: None,
            last_used_at: None,
        };
        // Another tenant cannot add a secret to this resource server.
        assert!(!s
            .rotate_resource_server_secret(&tid("globex"), &secret("rsec0", 1), at(1))
            .await
            .expect("rotate"));
        assert!(s
            .rotate_resource_server_secret(&tid("acme"), &secret("rsec1", 2), at(2))
            .await
            .expect("first"));
        assert!(s
            .rotate_resource_server_secret(&tid("acme"), &secret("rsec2", 10), at(100))
            .await
            .expect("rotate"));
        assert!(s
            .rotate_resource_server_secret(&tid("acme"), &secret("rsec3", 20), at(500))
            .await
            .expect("rotate"));
        let listed = s.list_resource_server_secrets("rs_a").await.expect("list");
        let ends: Vec<(&str, Option<Timestamp>)> = listed
            .iter()
            .map(|x| (x.id.as_str(), x.expires_at))
            .collect();
        assert_eq!(
            ends,
            vec![
                ("rsec3", None),
                ("rsec2", Some(at(500))),
                ("rsec1", Some(at(100)))
            ]
        );
        assert_eq!(listed[0].secret_digest, vec![20u8; 32]);
        // A duplicate id fails and changes nothing.
        assert!(s
            .rotate_resource_server_secret(&tid("acme"), &secret("rsec3", 30), at(600))
            .await
            .is_err());
        assert_eq!(
            s.list_resource_server_secrets("rs_a").await.expect("list"),
            listed
        );
        s.touch_resource_server_secret("rsec3", at(50))
            .await
            .expect("touch");
        s.touch_resource_server_secret("rsec3", at(40))
            .await
            .expect("older touch");
        let listed = s.list_resource_server_secrets("rs_a").await.expect("list");
        assert_eq!(
            listed[0].last_used_at,
            Some(at(50)),
            "never moves backwards"
        );
    }

    pub async fn rotation_sets_the_overlap_end_on_older_secrets_only(s: Arc<dyn Store>) {
        s.create_tenant(&new_tenant("acme"), at(0))
            .await
            .expect("acme");
        s.create_client(&client("cl_1", "acme"), Some(&secret("sec1", "cl_1", 2)))
            .await
            .expect("create");
        assert!(s
            .rotate_client_secret(&tid("acme"), &secret("sec2", "cl_1", 10), at(100))
            .await
            .expect("rotate"));
        // A second rotation shortens nothing that already ends sooner.
        assert!(s
            .rotate_client_secret(&tid("acme"), &secret("sec3", "cl_1", 20), at(500))
            .await
            .expect("rotate"));
        let secrets = s.list_client_secrets("cl_1").await.expect("secrets");
        let ends: Vec<(&str, Option<Timestamp>)> = secrets
            .iter()
            .map(|x| (x.id.as_str(), x.expires_at))
            .collect();
        assert_eq!(
            ends,
            vec![
                ("sec3", None),
                ("sec2", Some(at(500))),
                ("sec1", Some(at(100)))
            ]
        );
        assert!(matches!(
            s.rotate_client_secret(&tid("acme"), &secret("sec3", "cl_1", 30), at(600))
                .await,
            Err(StoreError::Conflict)
        ));
        // The failed rotation changed nothing.
        let again = s.list_client_secrets("cl_1").await.expect("secrets");
        assert_eq!(again, secrets);
    }

    pub async fn touch_client_records_last_use(s: Arc<dyn Store>) {
        s.create_tenant(&new_tenant("acme"), at(0))
            .await
            .expect("acme");
        s.create_client(&client("cl_1", "acme"), Some(&secret("sec1", "cl_1", 2)))
            .await
            .expect("create");
        s.touch_client("cl_1", Some("sec1"), at(50))
            .await
            .expect("touch");
        s.touch_client("cl_1", Some("sec1"), at(40))
            .await
            .expect("older touch");
        assert_eq!(
            s.get_client("cl_1")
                .await
                .expect("get")
                .expect("some")
                .last_used_at,
            Some(at(50))
        );
        assert_eq!(
            s.list_client_secrets("cl_1").await.expect("secrets")[0].last_used_at,
            Some(at(50))
        );
    }

    pub async fn assertion_jti_replay_is_detected_until_expiry(s: Arc<dyn Store>) {
        assert!(s
            .record_assertion_jti("cl_1", "j1", at(100), at(10))
            .await
            .expect("first"));
        assert!(!s
            .record_assertion_jti("cl_1", "j1", at(100), at(20))
            .await
            .expect("replay"));
        assert!(s
            .record_assertion_jti("cl_2", "j1", at(100), at(20))
            .await
            .expect("other client"));
        // After expiry the id may be recorded again; the assertion itself is expired by then.
        assert!(s
            .record_assertion_jti("cl_1", "j1", at(300), at(100))
            .await
            .expect("expired"));
        // Expired records of other ids stay until the scheduled prune, which takes only those.
        assert!(s
            .record_assertion_jti("cl_1", "j2", at(150), at(100))
            .await
            .expect("j2"));
        assert_eq!(s.prune_assertion_jtis(at(200)).await.expect("prune"), 2);
        assert!(!s
            .record_assertion_jti("cl_1", "j1", at(400), at(200))
            .await
            .expect("still spent"));
        assert!(s
            .record_assertion_jti("cl_1", "j2", at(400), at(200))
            .await
            .expect("pruned"));
    }

    pub async fn revocation_log_is_gapless_and_ordered(s: Arc<dyn Store>) {
        let mut handles = Vec::new();
        for i in 0..20 {
            let s = s.clone();
            handles.push(tokio::spawn(async move {
                s.append_revocation(
                    &NewRevocation {
                        tenant: tid("acme"),
                        kind: RevocationKind::Token,
                        subject: format!("jti-{i}"),
                        revoked_before: None,
                        expires_at: Some(at(1_000)),
                        reason: Some("test".into()),
                    },
                    at(i),
                )
                .await
                .expect("append")
                .seq
            }));
        }
        let mut seqs = Vec::new();
        for h in handles {
            seqs.push(h.await.expect("join"));
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=20).collect::<Vec<i64>>());
        let all = s.revocations_after(0, 100).await.expect("read");
        assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs);
        let tail = s.revocations_after(15, 2).await.expect("read");
        assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![16, 17]);
        assert_eq!(tail[0].kind, RevocationKind::Token);
        assert_eq!(tail[0].expires_at, Some(at(1_000)));
    }

    pub async fn every_revocation_kind_appends_and_reads_back(s: Arc<dyn Store>) {
        for (i, kind) in RevocationKind::ALL.into_iter().enumerate() {
            let entry = s
                .append_revocation(
                    &NewRevocation {
                        tenant: tid("acme"),
                        kind,
                        subject: format!("subject-{i}"),
                        revoked_before: Some(at(5)),
                        expires_at: Some(at(9)),
                        reason: Some(kind.as_str().into()),
                    },
                    at(7),
                )
                .await
                .unwrap_or_else(|e| panic!("append {kind:?}: {e}"));
            assert_eq!(entry.seq, i as i64 + 1);
        }
        let all = s.revocations_after(0, 100).await.expect("read");
        assert_eq!(
            all.iter().map(|e| e.kind).collect::<Vec<_>>(),
            RevocationKind::ALL
        );
        let changed = all
            .iter()
            .find(|e| e.kind == RevocationKind::ApiKeyChanged)
            .expect("api_key_changed stored");
        assert_eq!(changed.subject, "subject-5");
        assert_eq!(changed.revoked_before, Some(at(5)));
        assert_eq!(changed.expires_at, Some(at(9)));
        assert_eq!(changed.reason.as_deref(), Some("api_key_changed"));
        assert_eq!(changed.created_at, at(7));
        // The wire form leaves the reason behind and keeps everything else.
        let record = changed.clone().into_record();
        assert_eq!(record.seq, changed.seq);
        assert_eq!(record.kind, RevocationKind::ApiKeyChanged);
        assert_eq!(record.expires_at, Some(at(9)));
    }

    pub async fn revocation_ranges_filter_expired_entries_and_other_tenants(s: Arc<dyn Store>) {
        let rev = |tenant: &str, kind, subject: &str, expires_at: Option<i64>| NewRevocation {
            tenant: tid(tenant),
            kind,
            subject: subject.into(),
            revoked_before: None,
            expires_at: expires_at.map(at),
            reason: None,
        };
        for r in [
            rev("acme", RevocationKind::Token, "j1", Some(100)),
            rev("globex", RevocationKind::Token, "j2", None),
            rev("system", RevocationKind::SigningKey, "k1", Some(1_000)),
            rev("acme", RevocationKind::ApiKeyChanged, "a1", Some(500)),
            rev("globex", RevocationKind::ApiKey, "g1", Some(50)),
        ] {
            s.append_revocation(&r, at(1)).await.expect("append");
        }
        let range = |after, through, live_at: Option<i64>, tenant: Option<&str>| RevocationRange {
            after,
            through,
            live_at: live_at.map(at),
            tenant: tenant.map(tid),
        };
        let seqs = |v: Vec<RevocationEntry>| v.into_iter().map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(
            seqs(
                s.revocations_in_range(&range(0, 5, None, None))
                    .await
                    .expect("all")
            ),
            [1, 2, 3, 4, 5]
        );
        assert_eq!(
            seqs(
                s.revocations_in_range(&range(1, 3, None, None))
                    .await
                    .expect("page")
            ),
            [2, 3]
        );
        // Expired at or before `live_at`: left out (100 <= 100, 50 <= 100).
        assert_eq!(
            seqs(
                s.revocations_in_range(&range(0, 5, Some(100), None))
                    .await
                    .expect("live")
            ),
            [2, 3, 4]
        );
        // A tenant sees its own entries and signing-key entries.
        assert_eq!(
            seqs(
                s.revocations_in_range(&range(0, 5, None, Some("acme")))
                    .await
                    .expect("acme")
            ),
            [1, 3, 4]
        );
        assert_eq!(
            seqs(
                s.revocations_in_range(&range(0, 5, Some(100), Some("globex")))
                    .await
                    .expect("globex")
            ),
            [2, 3]
        );
        assert!(s
            .revocations_in_range(&range(5, 10, None, None))
            .await
            .expect("past the head")
            .is_empty());
    }

    pub async fn revocation_head_is_read_and_watched(s: Arc<dyn Store>) {
        assert_eq!(s.revocation_head().await.expect("head"), 0);
        let mut watch = s.watch_revocation_head();
        watch.borrow_and_update();
        let rev = NewRevocation {
            tenant: tid("acme"),
            kind: RevocationKind::Token,
            subject: "j1".into(),
            revoked_before: None,
            expires_at: None,
            reason: None,
        };
        for _ in 0..3 {
            s.append_revocation(&rev, at(1)).await.expect("append");
        }
        // This store's own appends are published before the append returns, not at a poll.
        assert!(watch.has_changed().expect("watch open"));
        assert_eq!(*watch.borrow_and_update(), 3);
        assert_eq!(s.revocation_head().await.expect("head"), 3);
        // An API key change appends too, and is published the same way.
        tenants(&s, &["acme"]).await;
        s.insert_api_key(&api_key("k1", "acme", "live", "p"))
            .await
            .expect("insert");
        assert!(s
            .revoke_api_key(&tid("acme"), "k1", "admin", at(2))
            .await
            .expect("revoke"));
        assert!(watch.has_changed().expect("watch open"));
        assert_eq!(*watch.borrow_and_update(), 4);
        assert_eq!(s.revocation_head().await.expect("head"), 4);
    }

    pub async fn token_revocation_matches_jti_client_mark_and_key(s: Arc<dyn Store>) {
        let q = |jti: &str, client: &str, kid: &str, iat: i64| Q {
            tenant: tid("acme"),
            jti: jti.into(),
            client_id: client.into(),
            kid: kid.into(),
            issued_at: at(iat),
        };
        let rev = |tenant: &str, kind, subject: &str, before: Option<i64>| NewRevocation {
            tenant: tid(tenant),
            kind,
            subject: subject.into(),
            revoked_before: before.map(at),
            expires_at: None,
            reason: None,
        };
        assert!(!revoked(&s, &q("j1", "cl_1", "k1", 10))
            .await
            .expect("check"));
        s.append_revocation(&rev("acme", RevocationKind::Token, "j1", None), at(1))
            .await
            .expect("append");
        s.append_revocation(&rev("globex", RevocationKind::Token, "j2", None), at(1))
            .await
            .expect("append");
        s.append_revocation(
            &rev("acme", RevocationKind::Client, "cl_9", Some(100)),
            at(1),
        )
        .await
        .expect("append");
        s.append_revocation(
            &rev("system", RevocationKind::SigningKey, "k9", None),
            at(1),
        )
        .await
        .expect("append");
        assert!(revoked(&s, &q("j1", "cl_1", "k1", 10)).await.expect("jti"));
        assert!(!revoked(&s, &q("j2", "cl_1", "k1", 10))
            .await
            .expect("other tenant's jti"),);
        assert!(revoked(&s, &q("j3", "cl_9", "k1", 99))
            .await
            .expect("before mark"));
        assert!(revoked(&s, &q("j3", "cl_9", "k1", 100))
            .await
            .expect("at the mark"));
        assert!(!revoked(&s, &q("j3", "cl_9", "k1", 101))
            .await
            .expect("after mark"));
        assert!(revoked(&s, &q("j3", "cl_1", "k9", 10))
            .await
            .expect("revoked key"));
        // A disabled tenant: its tokens issued until then, and no other tenant's.
        s.append_revocation(
            &rev("acme", RevocationKind::Tenant, "acme", Some(200)),
            at(1),
        )
        .await
        .expect("append");
        assert!(revoked(&s, &q("j4", "cl_1", "k1", 200))
            .await
            .expect("tenant mark"));
        assert!(!revoked(&s, &q("j4", "cl_1", "k1", 201))
            .await
            .expect("issued after the tenant mark"));
        // A subject mark (the client acting as itself here): introspection now sees it too.
        s.append_revocation(
            &rev("acme", RevocationKind::Subject, "cl_5", Some(300)),
            at(1),
        )
        .await
        .expect("append");
        assert!(revoked(&s, &q("j5", "cl_5", "k1", 300))
            .await
            .expect("subject mark"));
        assert!(!revoked(&s, &q("j5", "cl_5", "k1", 301))
            .await
            .expect("issued after the subject mark"));
        let globex = Q {
            tenant: tid("globex"),
            ..q("j4", "cl_1", "k1", 10)
        };
        assert!(!revoked(&s, &globex).await.expect("other tenant"));
    }

    /// RS256 and the other algorithms are two lanes (the RS256 companion for ID tokens): each
    /// holds one active key, and activating a pending key retires only its own lane's.
    pub async fn signing_key_lanes_each_hold_one_active_key_and_activate_apart(s: Arc<dyn Store>) {
        let rsa = |kid: &str, state| StoredSigningKey {
            algorithm: SigningAlgorithm::RS256,
            ..key(kid, state)
        };
        assert!(s
            .insert_signing_key(&key("es1", KeyState::Active))
            .await
            .expect("es1"));
        assert!(s
            .insert_signing_key(&rsa("rs1", KeyState::Active))
            .await
            .expect("rs1: the other lane"));
        assert!(!s
            .insert_signing_key(&rsa("rs2", KeyState::Active))
            .await
            .expect("rs2: a second active RS256 key is refused"));
        assert!(s
            .insert_signing_key(&rsa("rs3", KeyState::Pending))
            .await
            .expect("rs3"));
        assert!(s
            .activate_signing_key("rs3", at(60), at(700))
            .await
            .expect("activate"));
        let states: Vec<_> = s
            .list_signing_keys()
            .await
            .expect("list")
            .into_iter()
            .map(|k| (k.kid, k.state))
            .collect();
        assert_eq!(
            states,
            vec![
                ("es1".into(), KeyState::Active),
                ("rs1".into(), KeyState::Retired),
                ("rs3".into(), KeyState::Active),
            ]
        );
    }

    pub async fn activation_retires_the_active_key_atomically(s: Arc<dyn Store>) {
        assert!(s
            .insert_signing_key(&key("k1", KeyState::Active))
            .await
            .expect("k1"));
        let mut pending = key("k2", KeyState::Pending);
        pending.activates_at = at(50);
        assert!(s.insert_signing_key(&pending).await.expect("k2"));
        // Not pending: nothing changes, the active key stays active.
        assert!(!s
            .activate_signing_key("k1", at(60), at(999))
            .await
            .expect("noop"));
        assert!(!s
            .activate_signing_key("nope", at(60), at(999))
            .await
            .expect("noop"));
        let states = |keys: Vec<StoredSigningKey>| {
            keys.into_iter()
                .map(|k| (k.kid, k.state, k.publish_until))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            states(s.list_signing_keys().await.expect("list")),
            vec![
                ("k1".into(), KeyState::Active, Some(at(99))),
                ("k2".into(), KeyState::Pending, Some(at(99)))
            ]
        );
        assert!(s
            .activate_signing_key("k2", at(60), at(700))
            .await
            .expect("activate"));
        let keys = s.list_signing_keys().await.expect("list");
        assert_eq!(
            states(keys.clone()),
            vec![
                ("k1".into(), KeyState::Retired, Some(at(700))),
                ("k2".into(), KeyState::Active, Some(at(99)))
            ]
        );
        assert_eq!(keys[0].retired_at, Some(at(60)));
        assert_eq!(keys[1].activates_at, at(60));
        // A second node doing the same finds nothing to do.
        assert!(!s
            .activate_signing_key("k2", at(61), at(701))
            .await
            .expect("race"));
    }

    pub async fn revoking_a_key_reports_its_previous_state_once(s: Arc<dyn Store>) {
        assert!(s
            .insert_signing_key(&key("k1", KeyState::Active))
            .await
            .expect("k1"));
        assert_eq!(
            s.revoke_signing_key("k1", at(70)).await.expect("revoke"),
            Some(KeyState::Active)
        );
        assert_eq!(
            s.revoke_signing_key("k1", at(80)).await.expect("again"),
            None
        );
        assert_eq!(
            s.revoke_signing_key("nope", at(80)).await.expect("unknown"),
            None
        );
        let k = &s.list_signing_keys().await.expect("list")[0];
        assert_eq!(
            (k.state, k.publish_until, k.retired_at),
            (KeyState::Revoked, Some(at(70)), Some(at(70)))
        );
        // With no active key left, a new one may be inserted as active.
        assert!(s
            .insert_signing_key(&key("k2", KeyState::Active))
            .await
            .expect("k2"));
    }

    /// One of everything an export carries, with every optional field set somewhere.
    async fn populate(s: &Arc<dyn Store>) {
        s.create_tenant(&new_tenant("acme"), at(1))
            .await
            .expect("acme");
        s.create_tenant(&new_tenant("globex"), at(1))
            .await
            .expect("globex");
        s.set_tenant_status(&tid("globex"), TenantStatus::Disabled, at(3))
            .await
            .expect("disable");
        s.put_api_key_policy(
            &tid("acme"),
            &ApiKeyPolicyRecord {
                default_ttl_secs: Some(3_600),
                max_ttl_secs: None,
                allow_never: true,
            },
            at(4),
        )
        .await
        .expect("policy");
        s.put_oauth_policy(&tid("acme"), true, at(4))
            .await
            .expect("oauth policy");
        s.put_branding(&BrandingRecord {
            tenant: tid("acme"),
            display_name: Some("Acme".into()),
            logo_url: None,
            accent_colour: Some("#aa3300".into()),
            updated_at: at(4),
        })
        .await
        .expect("branding");
        s.put_lifetime_policy(&LifetimePolicyRecord {
            tenant: tid("acme"),
            client_secret_max_age_secs: Some(86_400),
            client_secret_expiry_required: true,
            existing: "report".into(),
            updated_at: at(4),
        })
        .await
        .expect("lifetime policy");
        let mut retired = key("k_old", KeyState::Retired);
        retired.retired_at = Some(at(20));
        s.insert_signing_key(&retired).await.expect("retired key");
        s.insert_signing_key(&key("k_new", KeyState::Active))
            .await
            .expect("active key");
        s.insert_admin_credential(&admin("adm1", "system", AdminRole::GlobalAdmin))
            .await
            .expect("admin");
        s.insert_admin_credential(&admin("svc1", "acme", AdminRole::Service))
            .await
            .expect("service");
        s.revoke_admin_credential(&tid("acme"), "svc1", at(30))
            .await
            .expect("revoke service");
        s.create_resource_server(&rs("rs_a", "acme", "payments-api"))
            .await
            .expect("rs");
        let rs_secret = ResourceServerSecretRecord {
            id: "rss1".into(),
            resource_server_id: "rs_a".into(),
            display_prefix: "pcl_rss_live_rss1".into(),
            secret_digest: vec![4; 32],
            created_at: at(5),
            expires_at: None,
            last_used_at: Some(at(6)),
        };
        assert!(s
            .rotate_resource_server_secret(&tid("acme"), &rs_secret, at(50))
            .await
            .expect("rs secret"));
        s.create_client(&client("cl_1", "acme"), Some(&secret("sec1", "cl_1", 2)))
            .await
            .expect("client");
        assert!(s
            .rotate_client_secret(&tid("acme"), &secret("sec2", "cl_1", 7), at(60))
            .await
            .expect("rotate"));
        s.touch_client("cl_1", Some("sec2"), at(8))
            .await
            .expect("touch");
        s.create_client(&app_client("cl_app", "acme"), None)
            .await
            .expect("app client");
        let mut key_a = api_key("key_a", "acme", "live", "partner");
        key_a.audiences = None;
        key_a.ip_allowlist = None;
        s.insert_api_key(&key_a).await.expect("key a");
        s.insert_api_key(&api_key("key_bb", "acme", "test", "other"))
            .await
            .expect("key b");
        assert!(s
            .revoke_api_key(&tid("acme"), "key_bb", "leaked", at(40))
            .await
            .expect("revoke key"));
        s.append_revocation(
            &NewRevocation {
                tenant: tid("acme"),
                kind: RevocationKind::Token,
                subject: "jti-1".into(),
                revoked_before: None,
                expires_at: Some(at(900)),
                reason: Some("admin".into()),
            },
            at(41),
        )
        .await
        .expect("revoke token");
        assert!(s
            .record_assertion_jti("cl_1", "assertion-1", at(2_000), at(42))
            .await
            .expect("jti"));
        let mut alice = crate::users::user(
            "usr_01aaaaaaaaaaaaaaaaaaaaaaaa",
            "acme",
            "Alice",
            Some("Alice@Example.com"),
        );
        alice.password_hash = Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into());
        alice.password_changed_at = Some(at(43));
        alice.last_login_at = Some(at(44));
        alice.email_verified = true;
        alice.profile =
            serde_json::from_str(r#"{"name":"Alice A","locale":"en","zoneinfo":"UTC"}"#)
                .expect("profile");
        s.create_user(&alice).await.expect("alice");
        s.create_user(&crate::users::user(
            "usr_01bbbbbbbbbbbbbbbbbbbbbbbb",
            "acme",
            "bob",
            None,
        ))
        .await
        .expect("bob");
        // Exported since version 6: the CLI's device sign-in of this user keeps its authority.
        s.put_user_admin_role(&UserAdminRole {
            tenant: tid("acme"),
            user_id: uid("usr_01aaaaaaaaaaaaaaaaaaaaaaaa"),
            role: AdminRole::ApiKeyManager,
            granted_at: at(46),
            granted_by: "admin:adm1".into(),
        })
        .await
        .expect("user admin role");
        // Not exported: a one-time token.
        s.insert_user_token(
            &crate::users::token(
                7,
                "acme",
                "usr_01aaaaaaaaaaaaaaaaaaaaaaaa",
                TokenPurpose::Invite,
                5_000,
            ),
            at(45),
        )
        .await
        .expect("token");
        // Archived objects move too: an import must not bring them back to life.
        s.create_client(&client("cl_old", "acme"), None)
            .await
            .expect("client to archive");
        let gone = s
            .archive_client(
                &tid("acme"),
                "cl_old",
                Some("a1"),
                &client_archived("cl_old"),
                at(44),
            )
            .await
            .expect("archive client");
        assert!(
            matches!(gone, ArchiveOutcome::Archived(Some(_))),
            "{gone:?}"
        );
        s.create_resource_server(&rs("rs_old", "acme", "old-api"))
            .await
            .expect("rs to archive");
        s.archive_resource_server(&tid("acme"), "rs_old", None, at(45))
            .await
            .expect("archive rs");
    }

    fn client_archived(id: &str) -> NewRevocation {
        NewRevocation {
            tenant: tid("acme"),
            kind: RevocationKind::Client,
            subject: id.into(),
            revoked_before: Some(at(44)),
            expires_at: Some(at(10_000)),
            reason: Some("client_archived".into()),
        }
    }

    /// Every record of `s`, through the export file format, sorted so that backends with
    /// different text collations compare equal.
    async fn exported(s: &Arc<dyn Store>) -> (Vec<u8>, Vec<export::Record>) {
        let mut file = Vec::new();
        let mut ticks = 0;
        let n = export::write_export(s.as_ref(), &mut file, at(99), 2, &mut |_| ticks += 1)
            .await
            .expect("export");
        assert!(ticks > 1, "progress is reported along the way");
        let mut records: Vec<_> = export::ExportReader::new(&file[..])
            .expect("header")
            .collect::<Result<_>>()
            .expect("read back");
        assert_eq!(records.len() as u64, n);
        records.sort_by_key(|r| format!("{}{r:?}", r.kind()));
        (file, records)
    }

    pub async fn export_import_round_trips_into_either_backend(s: Arc<dyn Store>) {
        populate(&s).await;
        let (file, records) = exported(&s).await;
        let text = String::from_utf8(file.clone()).expect("utf-8");
        let header: serde_json::Value =
            serde_json::from_str(text.lines().next().expect("header")).expect("json");
        assert_eq!(header["format"], export::FORMAT);
        assert_eq!(header["version"], export::FORMAT_VERSION);
        assert_eq!(header["source_backend"], s.backend());
        // Digests and sealed keys only: the private key blob is there as stored, never opened.
        assert!(
            text.contains("\"sealed_private_key\":\"AQIDAP8\""),
            "{text}"
        );
        for kind in [
            "tenant",
            "api_key_policy",
            "oauth_policy",
            "signing_key",
            "admin_credential",
            "resource_server",
            "resource_server_secret",
            "client",
            "client_secret",
            "api_key",
            "revocation",
            "assertion_jti",
            "user",
            "user_admin_role",
            "branding",
            "lifetime_policy",
        ] {
            assert!(
                records.iter().any(|r| r.kind() == kind),
                "the export holds no {kind}"
            );
        }
        let file = Arc::new(file);
        let records = Arc::new(records);
        import_targets(move |target| {
            let file = file.clone();
            let records = records.clone();
            Box::pin(async move {
                let mut reader = export::ExportReader::new(&file[..]).expect("header");
                let mut reported = Vec::new();
                let counts = target
                    .import_records(&mut reader, &mut |kind, n| reported.push((kind, n)))
                    .await
                    .expect("import");
                assert_eq!(counts.total(), records.len() as u64);
                assert_eq!(counts.get("api_key"), 2);
                assert_eq!(counts.get("archived"), 2);
                assert!(reported.contains(&("api_key", 2)), "{reported:?}");
                let (_, again) = exported(&target).await;
                assert_eq!(again, *records, "{} import differs", target.backend());
                // The stores work on what was imported, through their ordinary traits.
                assert_eq!(
                    target.revocation_head().await.expect("head"),
                    s_head(&records)
                );
                assert_eq!(
                    target
                        .get_api_key("key_a")
                        .await
                        .expect("get")
                        .expect("key")
                        .digest,
                    vec![5; 32]
                );
                assert_eq!(
                    target
                        .get_user_admin_role(&tid("acme"), "usr_01aaaaaaaaaaaaaaaaaaaaaaaa")
                        .await
                        .expect("get")
                        .map(|r| (r.role, r.granted_by)),
                    Some((AdminRole::ApiKeyManager, "admin:adm1".to_owned())),
                    "a user's admin role survives the move"
                );
                assert_eq!(
                    target.get_client("cl_app").await.expect("get"),
                    Some(app_client("cl_app", "acme")),
                    "every app-client column survives the move"
                );
                assert!(
                    !target
                        .record_assertion_jti("cl_1", "assertion-1", at(2_000), at(43))
                        .await
                        .expect("jti"),
                    "a seen assertion stays seen after the move"
                );
                // The next revocation continues the log without a gap.
                let next = target
                    .append_revocation(
                        &NewRevocation {
                            tenant: tid("acme"),
                            kind: RevocationKind::Token,
                            subject: "jti-2".into(),
                            revoked_before: None,
                            expires_at: None,
                            reason: None,
                        },
                        at(100),
                    )
                    .await
                    .expect("append");
                assert_eq!(next.seq, s_head(&records) + 1);
            })
        })
        .await;
    }

    fn s_head(records: &[export::Record]) -> i64 {
        records
            .iter()
            .filter_map(|r| match r {
                export::Record::Revocation(e) => Some(e.seq),
                _ => None,
            })
            .max()
            .unwrap_or(0)
    }

    /// Tables are read one after another; without one snapshot, keys revoked between reading
    /// `api_keys` and reading `revocations` would show log entries for keys not yet revoked.
    pub async fn an_export_is_one_snapshot_while_writes_continue(s: Arc<dyn Store>) {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let s = s.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut n = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let id = format!("k{n:06}");
                    s.insert_api_key(&api_key(&id, "system", "live", "o"))
                        .await
                        .expect("insert");
                    s.revoke_api_key(&tid("system"), &id, "admin", at(50))
                        .await
                        .expect("revoke");
                    n += 1;
                    tokio::task::yield_now().await;
                }
            })
        };
        for _ in 0..5 {
            let mut records = Vec::new();
            s.export_records(&mut |r| {
                records.push(r);
                Ok(())
            })
            .await
            .expect("export");
            let keys: Vec<_> = records
                .iter()
                .filter_map(|r| match r {
                    export::Record::ApiKey(k) => Some(k),
                    _ => None,
                })
                .collect();
            let revoked = keys.iter().filter(|k| k.revoked_at.is_some()).count();
            let logged = records
                .iter()
                .filter(|r| matches!(r, export::Record::Revocation(_)))
                .count();
            assert_eq!(
                revoked, logged,
                "every revoked key has its entry, and no more"
            );
            assert!(keys.len() - revoked <= 1);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        writer.await.expect("writer");
    }

    pub async fn import_refuses_a_database_that_is_not_empty(s: Arc<dyn Store>) {
        assert!(s.import_blockers().await.expect("blockers").is_empty());
        let source = {
            let dir = tempfile::tempdir().expect("tempdir");
            let src: Arc<dyn Store> = Arc::new(
                SqliteStore::open(&dir.path().join("src.db"))
                    .await
                    .expect("open"),
            );
            populate(&src).await;
            exported(&src).await.0
        };
        s.create_tenant(&new_tenant("already"), at(1))
            .await
            .expect("tenant");
        assert_eq!(s.import_blockers().await.expect("blockers"), ["tenants"]);
        let err = s
            .import_records(
                &mut export::ExportReader::new(&source[..]).expect("header"),
                &mut |_, _| {},
            )
            .await
            .expect_err("not empty");
        assert!(matches!(err, StoreError::NotEmpty(_)), "{err}");
        assert!(err.to_string().contains("tenants"), "{err}");
        assert!(s.get_client("cl_1").await.expect("get").is_none());
    }

    pub async fn a_failed_import_changes_nothing(s: Arc<dyn Store>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let src: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("src.db"))
                .await
                .expect("open"),
        );
        populate(&src).await;
        let (file, _) = exported(&src).await;
        let text = String::from_utf8(file).expect("utf-8");
        let lines: Vec<&str> = text.lines().collect();
        let import = |body: String| {
            let s = s.clone();
            async move {
                let mut reader = export::ExportReader::new(body.as_bytes())?;
                s.import_records(&mut reader, &mut |_, _| {}).await
            }
        };
        let nothing_written = |s: Arc<dyn Store>| async move {
            assert!(s.import_blockers().await.expect("blockers").is_empty());
            assert_eq!(s.revocation_head().await.expect("head"), 0);
        };

        // Truncated: the last record and the end line are missing.
        let truncated = lines[..lines.len() - 2].join("\n");
        let err = import(truncated).await.expect_err("truncated");
        assert!(err.to_string().contains("truncated"), "{err}");
        nothing_written(s.clone()).await;

        // The end line counts other records than the file holds.
        let mut short = lines.clone();
        short.remove(lines.len() - 2);
        let err = import(short.join("\n")).await.expect_err("miscounted");
        assert!(err.to_string().contains("end line counts"), "{err}");
        nothing_written(s.clone()).await;

        // A secret of a client the file does not hold: refused by the database, rolled back.
        let orphan = lines
            .iter()
            .map(|l| l.replace("\"owner_id\":\"cl_1\"", "\"owner_id\":\"cl_gone\""))
            .collect::<Vec<_>>()
            .join("\n");
        import(orphan).await.expect_err("orphan secret");
        nothing_written(s.clone()).await;

        // A gap in the revocation log would make verifiers skip entries.
        let gap = lines
            .iter()
            .map(|l| l.replace("\"seq\":1,", "\"seq\":7,"))
            .collect::<Vec<_>>()
            .join("\n");
        let err = import(gap).await.expect_err("gap");
        assert!(err.to_string().contains("not complete"), "{err}");
        nothing_written(s.clone()).await;

        // An invalid value is named with its line.
        let bad = lines
            .iter()
            .map(|l| l.replace("\"role\":\"service\"", "\"role\":\"superuser\""))
            .collect::<Vec<_>>()
            .join("\n");
        let err = import(bad).await.expect_err("bad role");
        assert!(err.to_string().contains("invalid admin role"), "{err}");
        nothing_written(s.clone()).await;

        // A field this version does not know is refused, not dropped.
        let extra = text.replacen(
            "\"type\":\"tenant\",",
            "\"type\":\"tenant\",\"extra\":1,",
            1,
        );
        let err = import(extra).await.expect_err("unknown field");
        assert!(err.to_string().contains("unknown field"), "{err}");
        let extra = text.replacen(
            "\"type\":\"api_key\",",
            "\"type\":\"api_key\",\"extra\":1,",
            1,
        );
        import(extra).await.expect_err("unknown API key field");
        nothing_written(s.clone()).await;

        // A newer format version, or something else entirely, is refused before anything.
        let newer = text.replacen(
            &format!("\"version\":{}", export::FORMAT_VERSION),
            "\"version\":99",
            1,
        );
        let err = import(newer).await.expect_err("newer");
        assert!(err.to_string().contains("version 99"), "{err}");
        let err = import("{\"hello\":1}\n".into()).await.expect_err("foreign");
        assert!(err.to_string().contains("not a Portcullis export"), "{err}");
        nothing_written(s.clone()).await;

        // And the untouched file still imports.
        let counts = import(text).await.expect("import");
        assert!(counts.total() > 10);
    }

    fn alert(id: &str, tenant: &str, rule: &str, subject: &str, at_ms: i64) -> AlertUpsert {
        AlertUpsert {
            id: id.into(),
            tenant: tid(tenant),
            rule: rule.into(),
            subject: subject.into(),
            shadow: false,
            evidence: format!("{{\"n\":{at_ms}}}"),
            count: 1,
            seen_at: at(at_ms),
        }
    }

    pub async fn alerts_deduplicate_while_live_and_move_only_forward(s: Arc<dyn Store>) {
        use portcullis_core::alert::AlertStatus as St;
        let a = s
            .upsert_alert(&alert(
                "al1",
                "system",
                "failed_auth_spike",
                "client:c1",
                1_000,
            ))
            .await
            .expect("store");
        assert_eq!((a.id.as_str(), a.status, a.count), ("al1", St::Open, 1));
        assert_eq!((a.first_seen, a.last_seen), (at(1_000), at(1_000)));
        // Same rule and subject: folded in, with the newest evidence; an older finding never
        // moves last_seen back.
        let mut more = alert("al2", "system", "failed_auth_spike", "client:c1", 5_000);
        more.count = 4;
        let a = s.upsert_alert(&more).await.expect("store");
        assert_eq!((a.id.as_str(), a.count), ("al1", 5));
        assert_eq!((a.first_seen, a.last_seen), (at(1_000), at(5_000)));
        assert_eq!(a.evidence, "{\"n\":5000}");
        let a = s
            .upsert_alert(&alert(
                "al3",
                "system",
                "failed_auth_spike",
                "client:c1",
                2_000,
            ))
            .await
            .expect("store");
        assert_eq!((a.id.as_str(), a.count, a.last_seen), ("al1", 6, at(5_000)));
        // Shadow findings and other subjects are separate alerts.
        let mut shadow = alert("al4", "system", "failed_auth_spike", "client:c1", 6_000);
        shadow.shadow = true;
        let sh = s.upsert_alert(&shadow).await.expect("store");
        assert_eq!((sh.id.as_str(), sh.shadow, sh.count), ("al4", true, 1));
        let other = s
            .upsert_alert(&alert(
                "al5",
                "system",
                "failed_auth_spike",
                "client:c2",
                6_000,
            ))
            .await
            .expect("store");
        assert_eq!(other.id, "al5");

        // Acknowledge: compare-and-swap on the status.
        let sys = tid("system");
        assert!(s
            .set_alert_status(
                Some(&sys),
                "al1",
                St::Open,
                St::Acknowledged,
                "admin:a",
                at(7_000)
            )
            .await
            .expect("store"));
        assert!(!s
            .set_alert_status(
                Some(&sys),
                "al1",
                St::Open,
                St::Acknowledged,
                "admin:a",
                at(7_000)
            )
            .await
            .expect("store"));
        // An acknowledged alert still absorbs findings.
        let a = s
            .upsert_alert(&alert(
                "al6",
                "system",
                "failed_auth_spike",
                "client:c1",
                8_000,
            ))
            .await
            .expect("store");
        assert_eq!(
            (a.id.as_str(), a.status, a.count),
            ("al1", St::Acknowledged, 7)
        );
        assert_eq!(a.acknowledged_by.as_deref(), Some("admin:a"));
        assert_eq!(a.acknowledged_at, Some(at(7_000)));
        assert!(s
            .set_alert_status(
                None,
                "al1",
                St::Acknowledged,
                St::Resolved,
                "admin:b",
                at(9_000)
            )
            .await
            .expect("store"));
        let a = s
            .get_alert(Some(&sys), "al1")
            .await
            .expect("store")
            .expect("store");
        assert_eq!(a.status, St::Resolved);
        assert_eq!(a.resolved_by.as_deref(), Some("admin:b"));
        assert_eq!(a.acknowledged_by.as_deref(), Some("admin:a"));
        // Resolved: the next finding opens a new alert.
        let n = s
            .upsert_alert(&alert(
                "al7",
                "system",
                "failed_auth_spike",
                "client:c1",
                10_000,
            ))
            .await
            .expect("store");
        assert_eq!((n.id.as_str(), n.status, n.count), ("al7", St::Open, 1));
        // Unknown ids change nothing.
        assert!(!s
            .set_alert_status(None, "nope", St::Open, St::Resolved, "admin:b", at(9_000))
            .await
            .expect("store"));
        assert!(s.get_alert(None, "nope").await.expect("store").is_none());
    }

    pub async fn alerts_are_listed_with_filters_and_scoped_by_tenant(s: Arc<dyn Store>) {
        use portcullis_core::alert::AlertStatus as St;
        tenants(&s, &["acme", "beta"]).await;
        s.upsert_alert(&alert("a1", "acme", "failed_auth_spike", "client:c", 1_000))
            .await
            .expect("store");
        s.upsert_alert(&alert("a2", "acme", "new_network", "api_key:k", 2_000))
            .await
            .expect("store");
        s.upsert_alert(&alert("b1", "beta", "new_network", "api_key:k", 3_000))
            .await
            .expect("store");
        let (acme, beta) = (tid("acme"), tid("beta"));
        s.set_alert_status(
            Some(&acme),
            "a1",
            St::Open,
            St::Resolved,
            "admin:x",
            at(4_000),
        )
        .await
        .expect("store");
        let list = |tenant: Option<TenantId>, status: Option<St>, rule: Option<&str>| {
            let s = s.clone();
            let f = AlertFilter {
                tenant,
                status,
                rule: rule.map(str::to_owned),
            };
            async move {
                s.list_alerts(&f, &PageRequest::first(100))
                    .await
                    .expect("store")
                    .items
                    .into_iter()
                    .map(|a| a.id)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(list(None, None, None).await, ["b1", "a2", "a1"]);
        // Page by page, one at a time, with an update to an alert in between: the same order
        // (pages follow when an alert was opened, which an update does not move).
        let every = AlertFilter {
            tenant: None,
            status: None,
            rule: None,
        };
        let mut page = PageRequest::first(1);
        let mut seen = Vec::new();
        loop {
            let got = s.list_alerts(&every, &page).await.expect("store");
            seen.extend(got.items.into_iter().map(|a| a.id));
            if seen.len() == 1 {
                s.upsert_alert(&alert("a1x", "acme", "new_network", "api_key:k", 9_000))
                    .await
                    .expect("store");
            }
            match got.next {
                Some(next) => page.after = Some(next),
                None => break,
            }
        }
        assert_eq!(seen, ["b1", "a2", "a1"]);
        assert_eq!(list(Some(acme.clone()), None, None).await, ["a2", "a1"]);
        assert_eq!(list(Some(acme.clone()), Some(St::Open), None).await, ["a2"]);
        assert_eq!(list(None, None, Some("new_network")).await, ["b1", "a2"]);
        assert_eq!(
            list(Some(beta.clone()), Some(St::Resolved), None).await,
            Vec::<String>::new()
        );
        // Another tenant's alert is neither shown nor changed.
        assert!(s
            .get_alert(Some(&beta), "a2")
            .await
            .expect("store")
            .is_none());
        assert!(!s
            .set_alert_status(
                Some(&beta),
                "a2",
                St::Open,
                St::Acknowledged,
                "admin:x",
                at(5_000)
            )
            .await
            .expect("store"));
        assert_eq!(
            s.get_alert(None, "a2")
                .await
                .expect("store")
                .expect("store")
                .status,
            St::Open
        );
    }
}

/// `portcullis backup`'s store half: `VACUUM INTO` while writers keep committing gives a sound
/// file holding a prefix of the writes (every one committed before it, none half-done).
#[tokio::test]
async fn online_backup_is_a_consistent_copy_while_writes_continue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("live.db"))
            .await
            .expect("open"),
    );
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let store = store.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // A revocation and its log entry commit in one transaction: a torn copy would
                // show one without the other.
                store
                    .insert_api_key(&api_key(&format!("k{n:06}"), "system", "live", "o"))
                    .await
                    .expect("insert");
                store
                    .revoke_api_key(&tid("system"), &format!("k{n:06}"), "admin", at(50))
                    .await
                    .expect("revoke");
                n += 1;
            }
            n
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let dest = dir.path().join("backup.db");
    store.backup_to(&dest).await.expect("backup");
    assert!(matches!(
        store.backup_to(&dest).await,
        Err(StoreError::Conflict)
    ));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.expect("writer");

    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dest).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the backup is private");
    let check = SqliteStore::check_file(&dest).await.expect("check");
    assert_eq!(check.problems, Vec::<String>::new());
    assert_eq!(
        check.schema_version,
        SqliteStore::supported_schema_version()
    );
    let copy: Arc<dyn Store> = Arc::new(SqliteStore::open(&dest).await.expect("open copy"));
    let keys = copy
        .list_api_keys(
            &tid("system"),
            &ApiKeyFilter::default(),
            &PageRequest::first(MAX_PAGE_LIMIT),
        )
        .await
        .expect("keys")
        .items;
    let log = copy.revocations_after(0, 100_000).await.expect("log");
    assert!(
        !keys.is_empty(),
        "the backup holds the writes made before it"
    );
    assert!(keys.len() <= written as usize);
    let revoked = keys.iter().filter(|k| k.revoked_at.is_some()).count();
    assert_eq!(revoked, log.len(), "every revocation has its log entry");
    assert!(
        keys.len() - revoked <= 1,
        "at most the last key awaits its revocation"
    );
    assert_eq!(
        copy.revocation_head().await.expect("head"),
        log.len() as i64
    );
}

/// Tenants' sign-in page branding: `conformance/branding.rs`.
mod branding;
/// Back-channel logout (session clients, the delivery queue): `conformance/logout.rs`.
mod logout;
/// Sign-in state (sessions, codes, refresh families, consents): `conformance/sign_in.rs`.
mod sign_in;
mod webhooks;

/// Workload identity federation (trusted issuers, trust rules, subject-token replay):
/// `conformance/federation.rs`.
mod federation;

/// DPoP (proof replay, a refresh family's bound key): `conformance/dpop.rs`.
mod dpop;

/// Device sign-in (RFC 8628 device authorizations) and admin roles held by users:
/// `conformance/device.rs`.
mod device;
/// Credential lifetime policies and admission-match counters: `conformance/lifetime.rs`.
mod lifetime;
/// Mutual TLS (tenants' CA sets, a client's certificate subject): `conformance/mtls.rs`.
mod mtls;
