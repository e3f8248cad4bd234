//! Conformance cases for tenants' credential lifetime policies and admission-match counters
//! (issue 19), each run against SQLite and PostgreSQL like the rest of the suite.

use std::sync::Arc;

use super::{at, tenants, tid, with_postgres, with_sqlite};
use portcullis_store::*;

conformance!(lifetime_policies_are_stored_replaced_and_refused_for_an_unknown_tenant);
conformance!(admission_matches_count_and_never_move_backwards);

fn policy(tenant: &str, max: Option<i64>, existing: &str, at_ms: i64) -> LifetimePolicyRecord {
    LifetimePolicyRecord {
        tenant: tid(tenant),
        client_secret_max_age_secs: max,
        client_secret_expiry_required: max.is_none(),
        existing: existing.into(),
        updated_at: at(at_ms),
    }
}

async fn lifetime_policies_are_stored_replaced_and_refused_for_an_unknown_tenant(
    s: Arc<dyn Store>,
) {
    tenants(&s, &["acme", "globex"]).await;
    assert_eq!(
        s.get_lifetime_policy(&tid("acme")).await.expect("get"),
        None
    );
    s.put_lifetime_policy(&policy("acme", Some(86_400), "report", 10))
        .await
        .expect("put");
    let replaced = policy("acme", None, "disable", 20);
    s.put_lifetime_policy(&replaced).await.expect("replace");
    assert_eq!(
        s.get_lifetime_policy(&tid("acme")).await.expect("get"),
        Some(replaced)
    );
    assert_eq!(
        s.get_lifetime_policy(&tid("globex")).await.expect("get"),
        None
    );
    assert!(matches!(
        s.put_lifetime_policy(&policy("nope", None, "ignore", 1))
            .await,
        Err(StoreError::NotFound)
    ));
    // The sweep's question: which tenants' policies say `disable`.
    assert_eq!(
        s.tenants_with_existing_mode("disable").await.expect("list"),
        vec![tid("acme")]
    );
    s.put_lifetime_policy(&policy("globex", None, "disable", 30))
        .await
        .expect("put");
    assert_eq!(
        s.tenants_with_existing_mode("disable").await.expect("list"),
        vec![tid("acme"), tid("globex")]
    );
    s.put_lifetime_policy(&policy("acme", None, "report", 40))
        .await
        .expect("put");
    assert_eq!(
        s.tenants_with_existing_mode("disable").await.expect("list"),
        vec![tid("globex")]
    );
    assert_eq!(
        s.tenants_with_existing_mode("report").await.expect("list"),
        vec![tid("acme")]
    );
}

async fn admission_matches_count_and_never_move_backwards(s: Arc<dyn Store>) {
    tenants(&s, &["acme", "globex"]).await;
    let acme = tid("acme");
    s.record_admission_match(&acme, "trust_rule", "ci", at(100))
        .await
        .expect("record");
    s.record_admission_match(&acme, "trust_rule", "ci", at(50))
        .await
        .expect("record");
    s.record_admission_match(&acme, "redirect_uri", "cl_x https://a/cb", at(70))
        .await
        .expect("record");
    let got = s.admission_matches(&acme).await.expect("list");
    assert_eq!(
        got,
        vec![
            AdmissionMatch {
                kind: "redirect_uri".into(),
                subject: "cl_x https://a/cb".into(),
                match_count: 1,
                last_matched_at: at(70),
            },
            AdmissionMatch {
                kind: "trust_rule".into(),
                subject: "ci".into(),
                match_count: 2,
                last_matched_at: at(100),
            },
        ]
    );
    assert_eq!(
        s.admission_matches(&tid("globex")).await.expect("list"),
        vec![]
    );
    // Credential use (migration 0030) shares the table; any other kind is refused.
    for (kind, subject) in [
        ("client_scope", "cl_x orders:read"),
        ("api_key_scope", "key_1 orders:read"),
        ("api_key_unscoped", "key_1"),
        ("api_key_network", "key_1 198.51.100.0"),
    ] {
        s.record_admission_match(&tid("globex"), kind, subject, at(5))
            .await
            .expect(kind);
    }
    let kinds: Vec<String> = s
        .admission_matches(&tid("globex"))
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.kind)
        .collect();
    assert_eq!(
        kinds,
        [
            "api_key_network",
            "api_key_scope",
            "api_key_unscoped",
            "client_scope"
        ]
    );
    assert!(s
        .record_admission_match(&acme, "anything_else", "x", at(5))
        .await
        .is_err());
}
