//! Conformance cases for tenants' sign-in page branding (issue 16), each run against SQLite and
//! PostgreSQL like the rest of the suite: stored, replaced, refused for an unknown tenant, and
//! carried by export and import.

use std::sync::Arc;

use super::{at, tenants, tid, with_postgres, with_sqlite};
use portcullis_store::export::TransferStore as _;
use portcullis_store::*;

conformance!(branding_is_stored_replaced_and_exported);

fn branding(tenant: &str, name: Option<&str>, at_ms: i64) -> BrandingRecord {
    BrandingRecord {
        tenant: tid(tenant),
        display_name: name.map(str::to_owned),
        logo_url: Some("https://cdn.example.com/l.png".into()),
        accent_colour: Some("#112233".into()),
        updated_at: at(at_ms),
    }
}

async fn branding_is_stored_replaced_and_exported(s: Arc<dyn Store>) {
    tenants(&s, &["acme", "globex"]).await;
    assert_eq!(s.get_branding(&tid("acme")).await.expect("get"), None);
    s.put_branding(&branding("acme", Some("Acme"), 10))
        .await
        .expect("put");
    let replaced = BrandingRecord {
        logo_url: None,
        ..branding("acme", None, 20)
    };
    s.put_branding(&replaced).await.expect("replace");
    assert_eq!(
        s.get_branding(&tid("acme")).await.expect("get"),
        Some(replaced.clone())
    );
    assert_eq!(s.get_branding(&tid("globex")).await.expect("get"), None);
    assert!(matches!(
        s.put_branding(&branding("nope", Some("x"), 1)).await,
        Err(StoreError::NotFound)
    ));
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
        target.get_branding(&tid("acme")).await.expect("get"),
        Some(replaced)
    );
}
