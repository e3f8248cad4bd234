//! Conformance cases for mutual-TLS client authentication (RFC 8705), each run against SQLite
//! and PostgreSQL like the rest of the suite: tenants' CA sets (stored per tenant, unique by
//! name, deleted, carried by export and import) and a client's registered certificate subject
//! and binding flag.

use std::sync::Arc;

use super::{at, tenants, tid, with_postgres, with_sqlite};
use portcullis_store::export::TransferStore as _;
use portcullis_store::*;

conformance!(
    ca_sets_are_per_tenant_unique_by_name_and_deletable,
    a_client_keeps_its_certificate_subject_through_update_and_export,
);

const PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

fn ca_set(id: &str, tenant: &str, name: &str, created: i64) -> CaSetRecord {
    CaSetRecord {
        id: id.into(),
        tenant: tid(tenant),
        name: name.into(),
        pem: PEM.into(),
        created_at: at(created),
    }
}

fn mtls_client(id: &str) -> OAuthClient {
    OAuthClient {
        id: id.into(),
        tenant: tid("acme"),
        name: "payments".into(),
        environment: "live".into(),
        auth_method: "tls_client_auth".into(),
        grant_types: vec!["client_credentials".into()],
        scopes: vec![],
        audiences: vec!["payments-api".into()],
        access_token_ttl_secs: 600,
        can_introspect: false,
        jwks: None,
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
        id_token_signed_response_alg: None,
        require_dpop: false,
        tls_subject: Some(TlsSubjectRecord {
            kind: "tls_client_auth_san_uri".into(),
            value: "spiffe://acme.test/payments".into(),
        }),
        certificate_bound_tokens: false,
    }
}

async fn ca_sets_are_per_tenant_unique_by_name_and_deletable(s: Arc<dyn Store>) {
    tenants(&s, &["acme", "globex"]).await;
    assert_eq!(s.list_ca_sets(&tid("acme")).await.expect("list"), vec![]);
    let first = ca_set("ca_1", "acme", "clients", 10);
    let second = ca_set("ca_2", "acme", "partners", 20);
    s.insert_ca_set(&second).await.expect("insert");
    s.insert_ca_set(&first).await.expect("insert");
    // The same name in another tenant is another set; in the same tenant, a conflict.
    s.insert_ca_set(&ca_set("ca_3", "globex", "clients", 5))
        .await
        .expect("other tenant");
    assert!(matches!(
        s.insert_ca_set(&ca_set("ca_4", "acme", "clients", 30))
            .await,
        Err(StoreError::Conflict)
    ));
    assert!(matches!(
        s.insert_ca_set(&ca_set("ca_5", "nope", "clients", 30))
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        s.list_ca_sets(&tid("acme")).await.expect("list"),
        vec![first.clone(), second.clone()],
        "oldest first"
    );
    // Deleting names the tenant: another tenant's id is not deleted.
    assert!(!s
        .delete_ca_set(&tid("globex"), "ca_1")
        .await
        .expect("delete"));
    assert!(s.delete_ca_set(&tid("acme"), "ca_1").await.expect("delete"));
    assert!(!s.delete_ca_set(&tid("acme"), "ca_1").await.expect("again"));
    assert_eq!(
        s.list_ca_sets(&tid("acme")).await.expect("list"),
        vec![second.clone()]
    );
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
        target.list_ca_sets(&tid("acme")).await.expect("list"),
        vec![second]
    );
    assert_eq!(
        target
            .list_ca_sets(&tid("globex"))
            .await
            .expect("list")
            .len(),
        1
    );
}

async fn a_client_keeps_its_certificate_subject_through_update_and_export(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    let c = mtls_client("cl_mtls");
    s.create_client(&c, None).await.expect("create");
    assert_eq!(s.get_client("cl_mtls").await.expect("get"), Some(c.clone()));
    let changed = OAuthClient {
        tls_subject: Some(TlsSubjectRecord {
            kind: "tls_client_auth_san_dns".into(),
            value: "svc.acme.test".into(),
        }),
        certificate_bound_tokens: true,
        ..c.clone()
    };
    assert!(s.update_client(&changed, at(5)).await.expect("update"));
    let back = s.get_client("cl_mtls").await.expect("get").expect("found");
    assert_eq!(back.tls_subject, changed.tls_subject);
    assert!(back.certificate_bound_tokens);
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
    assert_eq!(target.get_client("cl_mtls").await.expect("get"), Some(back));
}
