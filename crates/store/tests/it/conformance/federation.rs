//! Conformance cases for workload identity federation: trusted issuers, trust rules and the
//! subject-token replay table, each run against SQLite and PostgreSQL like the rest of the
//! suite.

use std::sync::Arc;

use super::{at, tenants, tid, with_postgres, with_sqlite};
use portcullis_store::*;

conformance!(
    trusted_issuers_round_trip_per_tenant_with_every_key_source,
    an_issuer_with_rules_cannot_be_removed,
    trust_rules_round_trip_are_tenant_scoped_and_need_their_issuer,
    a_subject_token_id_is_used_once_per_issuer_until_it_expires,
    racing_uses_of_one_subject_token_yield_one_winner,
    racing_reuses_of_an_expired_subject_token_id_yield_one_winner,
    a_spent_subject_token_id_is_refused_through_another_connection,
    federation_state_is_exported_and_blocks_an_import,
);

const GH: &str = "https://token.actions.githubusercontent.com";
const KUBE: &str = "https://kube.internal";

fn issuer(tenant: &str, url: &str, key_source: KeySourceRecord) -> TrustedIssuerRecord {
    TrustedIssuerRecord {
        tenant: tid(tenant),
        issuer: url.into(),
        preset: "github_actions".into(),
        key_source,
        algorithms: vec!["RS256".into(), "ES256".into()],
        max_token_age_s: 3600,
        created_at: at(1_000),
        updated_at: at(1_000),
    }
}

fn rule(tenant: &str, id: &str, url: &str) -> TrustRuleRecord {
    TrustRuleRecord {
        tenant: tid(tenant),
        id: id.into(),
        issuer: url.into(),
        audience: "https://portcullis.example".into(),
        conditions: r#"[{"claim":"repository_id","equals":"2002"}]"#.into(),
        audiences: vec!["deploy-api".into(), "artifacts".into()],
        scopes: vec!["deploy".into(), "read".into()],
        max_lifetime_s: 900,
        max_token_age_s: None,
        bound_to_subject_lifetime: true,
        client_id: None,
        created_at: at(2_000),
        updated_at: at(2_000),
    }
}

async fn trusted_issuers_round_trip_per_tenant_with_every_key_source(s: Arc<dyn Store>) {
    tenants(&s, &["acme", "other"]).await;
    let sources = [
        KeySourceRecord::Discovery,
        KeySourceRecord::JwksUri("https://keys.example/jwks.json".into()),
        KeySourceRecord::Jwks(r#"{"keys":[]}"#.into()),
        KeySourceRecord::SpiffeBundle(r#"{"keys":[],"spiffe_refresh_hint":60}"#.into()),
    ];
    let mut made = Vec::new();
    for (i, src) in sources.into_iter().enumerate() {
        let rec = issuer("acme", &format!("https://issuer{i}.example"), src);
        s.create_trusted_issuer(&rec).await.expect("create");
        made.push(rec);
    }
    assert_eq!(
        s.list_trusted_issuers(&tid("acme")).await.expect("list"),
        made
    );
    assert!(s
        .list_trusted_issuers(&tid("other"))
        .await
        .expect("list")
        .is_empty());
    // One issuer per tenant once; another tenant may trust the same issuer.
    assert!(matches!(
        s.create_trusted_issuer(&made[0]).await,
        Err(StoreError::Conflict)
    ));
    let mut theirs = made[0].clone();
    theirs.tenant = tid("other");
    s.create_trusted_issuer(&theirs)
        .await
        .expect("other tenant");
    // Unknown tenant.
    let mut ghost = made[0].clone();
    ghost.tenant = tid("ghost");
    assert!(matches!(
        s.create_trusted_issuer(&ghost).await,
        Err(StoreError::NotFound)
    ));
    // Update replaces what may change and keeps created_at.
    let mut changed = made[1].clone();
    changed.key_source = KeySourceRecord::Discovery;
    changed.algorithms = vec!["ES384".into()];
    changed.max_token_age_s = 60;
    changed.updated_at = at(5_000);
    changed.created_at = at(9_999);
    assert!(s.update_trusted_issuer(&changed).await.expect("update"));
    let read = s
        .get_trusted_issuer(&tid("acme"), &changed.issuer)
        .await
        .expect("get")
        .expect("present");
    assert_eq!(read.key_source, KeySourceRecord::Discovery);
    assert_eq!(read.algorithms, vec!["ES384".to_owned()]);
    assert_eq!(read.max_token_age_s, 60);
    assert_eq!(read.updated_at, at(5_000));
    assert_eq!(read.created_at, at(1_000));
    // Not in another tenant.
    assert_eq!(
        s.get_trusted_issuer(&tid("other"), &changed.issuer)
            .await
            .expect("get"),
        None
    );
    let mut elsewhere = changed.clone();
    elsewhere.tenant = tid("other");
    assert!(!s.update_trusted_issuer(&elsewhere).await.expect("update"));
    assert!(s
        .delete_trusted_issuer(&tid("acme"), &changed.issuer)
        .await
        .expect("delete"));
    assert!(!s
        .delete_trusted_issuer(&tid("acme"), &changed.issuer)
        .await
        .expect("delete again"));
}

async fn an_issuer_with_rules_cannot_be_removed(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    s.create_trusted_issuer(&issuer("acme", GH, KeySourceRecord::Discovery))
        .await
        .expect("issuer");
    s.create_trust_rule(&rule("acme", "deploy-main", GH))
        .await
        .expect("rule");
    assert!(matches!(
        s.delete_trusted_issuer(&tid("acme"), GH).await,
        Err(StoreError::Conflict)
    ));
    assert!(s
        .get_trusted_issuer(&tid("acme"), GH)
        .await
        .expect("get")
        .is_some());
    assert!(s
        .delete_trust_rule(&tid("acme"), "deploy-main")
        .await
        .expect("delete rule"));
    assert!(s
        .delete_trusted_issuer(&tid("acme"), GH)
        .await
        .expect("delete"));
}

async fn trust_rules_round_trip_are_tenant_scoped_and_need_their_issuer(s: Arc<dyn Store>) {
    tenants(&s, &["acme", "other"]).await;
    for (t, url) in [("acme", GH), ("acme", KUBE), ("other", GH)] {
        s.create_trusted_issuer(&issuer(t, url, KeySourceRecord::Discovery))
            .await
            .expect("issuer");
    }
    let a = rule("acme", "deploy-main", GH);
    let mut b = rule("acme", "api-pod", KUBE);
    b.max_token_age_s = Some(86_400);
    b.bound_to_subject_lifetime = false;
    b.scopes = vec![];
    s.create_trust_rule(&a).await.expect("a");
    s.create_trust_rule(&b).await.expect("b");
    assert_eq!(
        s.list_trust_rules(&tid("acme"), None).await.expect("list"),
        vec![b.clone(), a.clone()]
    );
    assert_eq!(
        s.list_trust_rules(&tid("acme"), Some(GH))
            .await
            .expect("list"),
        vec![a.clone()]
    );
    assert!(s
        .list_trust_rules(&tid("other"), None)
        .await
        .expect("list")
        .is_empty());
    assert_eq!(
        s.get_trust_rule(&tid("acme"), "api-pod")
            .await
            .expect("get"),
        Some(b.clone())
    );
    assert_eq!(
        s.get_trust_rule(&tid("other"), "api-pod")
            .await
            .expect("get"),
        None
    );
    // Duplicate id in the tenant; the same id in another tenant is fine.
    assert!(matches!(
        s.create_trust_rule(&a).await,
        Err(StoreError::Conflict)
    ));
    s.create_trust_rule(&rule("other", "deploy-main", GH))
        .await
        .expect("other tenant");
    // A rule needs its tenant to trust its issuer.
    assert!(matches!(
        s.create_trust_rule(&rule("other", "kube", KUBE)).await,
        Err(StoreError::NotFound)
    ));
    // Update: everything but id, issuer and created_at.
    let mut a2 = a.clone();
    a2.audience = "portcullis".into();
    a2.conditions = r#"[{"claim":"repository_owner_id","equals":"1001"}]"#.into();
    a2.scopes = vec!["read".into()];
    a2.max_lifetime_s = 60;
    a2.max_token_age_s = Some(120);
    a2.bound_to_subject_lifetime = false;
    // Binding to a client is part of the rule, like any other field.
    a2.client_id = Some("cl_deploy".into());
    a2.updated_at = at(3_000);
    assert!(s
        .update_trust_rule(&a2, a.updated_at)
        .await
        .expect("update"));
    // Compare-and-swap on the version read: a write from a stale read changes nothing.
    let mut stale = a.clone();
    stale.client_id = None;
    stale.updated_at = at(4_000);
    assert!(!s
        .update_trust_rule(&stale, a.updated_at)
        .await
        .expect("stale"));
    assert_eq!(
        s.get_trust_rule(&tid("acme"), "deploy-main")
            .await
            .expect("get"),
        Some(a2.clone())
    );
    // Not through another tenant or another issuer.
    let mut moved = a2.clone();
    moved.issuer = KUBE.into();
    assert!(!s
        .update_trust_rule(&moved, a2.updated_at)
        .await
        .expect("update"));
    let theirs_read = s
        .get_trust_rule(&tid("other"), "deploy-main")
        .await
        .expect("get")
        .expect("their rule");
    let mut theirs = a2.clone();
    theirs.tenant = tid("other");
    theirs.created_at = theirs_read.created_at;
    theirs.audience = "stolen".into();
    assert!(s
        .update_trust_rule(&theirs, theirs_read.updated_at)
        .await
        .expect("their own rule"));
    assert_eq!(
        s.get_trust_rule(&tid("acme"), "deploy-main")
            .await
            .expect("get")
            .map(|r| r.audience),
        Some("portcullis".into())
    );
    assert!(!s
        .delete_trust_rule(&tid("acme"), "nope")
        .await
        .expect("delete"));
    // A rule deleted and created again under the same id is another rule: a write from a read
    // of the old one changes nothing, even where the `updated_at`s happen to agree.
    assert!(s
        .delete_trust_rule(&tid("acme"), "api-pod")
        .await
        .expect("delete"));
    let mut again = b.clone();
    again.created_at = at(b.created_at.as_millis() + 1);
    again.updated_at = b.updated_at;
    again.scopes = vec!["write".into()];
    s.create_trust_rule(&again).await.expect("created again");
    let mut from_old_read = b.clone();
    from_old_read.client_id = Some("cl_deploy".into());
    assert!(!s
        .update_trust_rule(&from_old_read, b.updated_at)
        .await
        .expect("old read"));
    assert_eq!(
        s.get_trust_rule(&tid("acme"), "api-pod")
            .await
            .expect("get"),
        Some(again)
    );
}

async fn a_subject_token_id_is_used_once_per_issuer_until_it_expires(s: Arc<dyn Store>) {
    assert!(s
        .record_subject_jti(GH, "j1", at(10_000), at(1_000))
        .await
        .expect("first"));
    assert!(!s
        .record_subject_jti(GH, "j1", at(10_000), at(2_000))
        .await
        .expect("replay"));
    // Per issuer: the same id from another issuer is another token.
    assert!(s
        .record_subject_jti(KUBE, "j1", at(10_000), at(2_000))
        .await
        .expect("other"));
    // Still refused just before expiry, accepted again only once it has expired.
    assert!(!s
        .record_subject_jti(GH, "j1", at(20_000), at(9_999))
        .await
        .expect("late replay"));
    assert!(s
        .record_subject_jti(GH, "j1", at(20_000), at(10_000))
        .await
        .expect("expired"));
    // Pruning removes what has expired, and only that.
    assert!(s
        .record_subject_jti(GH, "j2", at(5_000), at(1_000))
        .await
        .expect("j2"));
    assert_eq!(s.prune_subject_jtis(at(10_001)).await.expect("prune"), 2);
    assert!(!s
        .record_subject_jti(GH, "j1", at(30_000), at(10_002))
        .await
        .expect("kept"));
}

async fn racing_uses_of_one_subject_token_yield_one_winner(s: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.record_subject_jti(GH, "race", at(10_000), at(1_000))
                .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        if t.await.expect("join").expect("record") {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
}

/// An id whose record has expired (not yet pruned) is taken over by exactly one of several
/// racing requests: the upsert's `WHERE` is decided on the row the database locked.
async fn racing_reuses_of_an_expired_subject_token_id_yield_one_winner(s: Arc<dyn Store>) {
    assert!(s
        .record_subject_jti(GH, "again", at(5_000), at(1_000))
        .await
        .expect("first"));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.record_subject_jti(GH, "again", at(20_000), at(6_000))
                .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        if t.await.expect("join").expect("record") {
            wins += 1;
        }
    }
    assert_eq!(wins, 1);
    // The winner's keep-until holds: not pruned, still spent.
    assert_eq!(s.prune_subject_jtis(at(6_001)).await.expect("prune"), 0);
    assert!(!s
        .record_subject_jti(GH, "again", at(30_000), at(19_999))
        .await
        .expect("replay"));
}

/// Single use is the database's, not a connection's or a process's: many concurrent uses
/// spread over the pool's connections (as over nodes) still leave one winner per id, and a
/// spent id is refused on whichever connection asks next.
async fn a_spent_subject_token_id_is_refused_through_another_connection(s: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..32 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            s.record_subject_jti(GH, &format!("id-{}", i % 4), at(10_000), at(1_000))
                .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        if t.await.expect("join").expect("record") {
            wins += 1;
        }
    }
    assert_eq!(wins, 4, "one winner per id");
    for i in 0..4 {
        assert!(!s
            .record_subject_jti(GH, &format!("id-{i}"), at(10_000), at(2_000))
            .await
            .expect("replay"));
    }
}

async fn federation_state_is_exported_and_blocks_an_import(s: Arc<dyn Store>) {
    use portcullis_store::export::{self, TransferStore as _};
    tenants(&s, &["acme"]).await;
    let iss = issuer(
        "acme",
        KUBE,
        KeySourceRecord::Jwks(r#"{"keys":[{"kty":"EC"}]}"#.into()),
    );
    s.create_trusted_issuer(&iss).await.expect("issuer");
    let mut r = rule("acme", "api-pod", KUBE);
    r.max_token_age_s = Some(86_400);
    s.create_trust_rule(&r).await.expect("rule");
    assert!(s
        .record_subject_jti(KUBE, "j1", at(50_000), at(1_000))
        .await
        .expect("jti"));
    let mut file = Vec::new();
    export::write_export(s.as_ref(), &mut file, at(1), 1_000, &mut |_| {})
        .await
        .expect("write");
    let dir = tempfile::tempdir().expect("tempdir");
    let target = SqliteStore::open(&dir.path().join("t.db"))
        .await
        .expect("open");
    target
        .import_records(
            &mut export::ExportReader::new(&file[..]).expect("header"),
            &mut |_, _| {},
        )
        .await
        .expect("import");
    assert_eq!(
        target
            .get_trusted_issuer(&tid("acme"), KUBE)
            .await
            .expect("get"),
        Some(iss)
    );
    assert_eq!(
        target
            .get_trust_rule(&tid("acme"), "api-pod")
            .await
            .expect("get"),
        Some(r)
    );
    // The replay record moved with it.
    assert!(!target
        .record_subject_jti(KUBE, "j1", at(50_000), at(2_000))
        .await
        .expect("replay"));
    let blockers = s.import_blockers().await.expect("blockers");
    for table in ["trusted_issuers", "trust_rules", "subject_token_jtis"] {
        assert!(blockers.contains(&table), "{table}: {blockers:?}");
    }
}

/// A spent subject-token id is still spent after a restart (SQLite: the file reopened; the
/// upsert's commit is as durable as any other write, `synchronous = FULL`) and on another node
/// (PostgreSQL: a second store on the same schema).
#[tokio::test]
async fn a_spent_subject_token_id_survives_a_restart_and_is_seen_by_another_node() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("test.db");
    let first = SqliteStore::open(&path).await.expect("open");
    assert!(first
        .record_subject_jti(GH, "restart", at(10_000), at(1_000))
        .await
        .expect("first"));
    drop(first);
    let reopened = SqliteStore::open(&path).await.expect("reopen");
    assert!(!reopened
        .record_subject_jti(GH, "restart", at(10_000), at(2_000))
        .await
        .expect("replay after restart"));

    let Some(url) =
        crate::pg::url("a_spent_subject_token_id_survives_a_restart_and_is_seen_by_another_node")
    else {
        return;
    };
    let schema = crate::pg::fresh_schema();
    let node_a = PgStore::connect_in_schema(&url, &schema)
        .await
        .expect("PostgreSQL named by PORTCULLIS_TEST_DATABASE_URL must be reachable");
    let node_b = PgStore::connect_in_schema(&url, &schema)
        .await
        .expect("second node");
    assert!(node_a
        .record_subject_jti(GH, "two-nodes", at(10_000), at(1_000))
        .await
        .expect("node a"));
    assert!(!node_b
        .record_subject_jti(GH, "two-nodes", at(10_000), at(2_000))
        .await
        .expect("node b replay"));
    let pool = node_a.pool().clone();
    drop(node_b);
    let _ = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
        .execute(&pool)
        .await;
}
