//! Conformance cases for webhook endpoints and their delivery queue, each run against SQLite and
//! PostgreSQL like the rest of the suite: tenant scoping, the lease that lets one caller claim a
//! delivery at a time (also under concurrent claims), outcomes recorded only by the lease
//! holder, the dead-letter list and redelivery, and export/import of endpoints.

use std::collections::HashSet;
use std::sync::Arc;

use super::{at, tenants, tid, with_postgres, with_sqlite};
use portcullis_store::export::TransferStore as _;
use portcullis_store::*;

conformance!(
    webhook_endpoints_are_tenant_scoped_and_take_their_deliveries_with_them,
    a_delivery_is_claimed_once_under_a_lease_and_finished_by_its_holder,
    concurrent_claims_never_share_a_delivery,
    webhook_endpoints_are_exported_and_imported_sealed,
    retention_prunes_only_resolved_alerts_and_delivered_webhooks_past_their_time,
);

fn endpoint(id: &str, tenant: &str, ms: i64) -> WebhookEndpointRecord {
    WebhookEndpointRecord {
        id: id.into(),
        tenant: tid(tenant),
        url: format!("https://hooks.example.com/{id}"),
        description: format!("{id} hook"),
        kek_id: "kek1".into(),
        sealed_secret: vec![1, 2, 3, 0, 255],
        created_at: at(ms),
        secret_rotated_at: at(ms),
    }
}

fn delivery(id: &str, endpoint: &str, endpoint_tenant: &str, ms: i64) -> WebhookDeliveryRecord {
    WebhookDeliveryRecord {
        id: id.into(),
        endpoint_id: endpoint.into(),
        endpoint_tenant: tid(endpoint_tenant),
        tenant: tid("acme"),
        alert_id: "al1".into(),
        rule: "failed_auth_spike".into(),
        event_type: "dev.portcullis.alert.opened".into(),
        payload: format!("{{\"id\":\"{id}\"}}"),
        status: DeliveryStatus::Pending,
        attempts: 0,
        next_attempt_at: at(ms),
        lease_owner: None,
        lease_until: None,
        last_error: None,
        last_status: None,
        created_at: at(ms),
        finished_at: None,
    }
}

async fn ids(s: &Arc<dyn Store>, f: &DeliveryFilter) -> Vec<String> {
    s.list_webhook_deliveries(f, &PageRequest::first(100))
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|d| d.id)
        .collect()
}

pub async fn webhook_endpoints_are_tenant_scoped_and_take_their_deliveries_with_them(
    s: Arc<dyn Store>,
) {
    tenants(&s, &["acme", "globex"]).await;
    for e in [
        endpoint("wh_a1", "acme", 10),
        endpoint("wh_a2", "acme", 20),
        endpoint("wh_g1", "globex", 30),
        endpoint("wh_s1", "system", 40),
    ] {
        s.create_webhook_endpoint(&e).await.expect("create");
    }
    assert!(matches!(
        s.create_webhook_endpoint(&endpoint("wh_x", "nosuch", 1))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.create_webhook_endpoint(&endpoint("wh_a1", "acme", 1))
            .await,
        Err(StoreError::Conflict)
    ));
    let acme: Vec<_> = s
        .list_webhook_endpoints(&tid("acme"), &PageRequest::first(100))
        .await
        .expect("list")
        .items
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(acme, ["wh_a2", "wh_a1"]);
    assert_eq!(
        s.get_webhook_endpoint(&tid("acme"), "wh_a1")
            .await
            .expect("get"),
        Some(endpoint("wh_a1", "acme", 10))
    );
    assert!(s
        .get_webhook_endpoint(&tid("globex"), "wh_a1")
        .await
        .expect("get")
        .is_none());
    let receiving: Vec<_> = s
        .webhook_endpoints_for(&tid("acme"))
        .await
        .expect("for")
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(receiving, ["wh_a1", "wh_a2", "wh_s1"]);

    // A secret changes only in its own tenant; a re-seal only from the KEK it names.
    assert!(!s
        .set_webhook_secret(&tid("globex"), "wh_a1", "kek2", &[9], at(50))
        .await
        .expect("set"));
    assert!(s
        .set_webhook_secret(&tid("acme"), "wh_a1", "kek2", &[9], at(50))
        .await
        .expect("set"));
    let e = s
        .get_webhook_endpoint(&tid("acme"), "wh_a1")
        .await
        .expect("get")
        .expect("there");
    assert_eq!(
        (e.kek_id.as_str(), e.sealed_secret.as_slice()),
        ("kek2", &[9u8][..])
    );
    assert_eq!(e.secret_rotated_at, at(50));
    assert!(!s
        .reseal_webhook_secret("wh_a1", "kek1", "kek3", &[7])
        .await
        .expect("reseal"));
    assert!(s
        .reseal_webhook_secret("wh_a1", "kek2", "kek3", &[7])
        .await
        .expect("reseal"));
    assert_eq!(s.all_webhook_endpoints().await.expect("all").len(), 4);

    s.enqueue_webhook_deliveries(&[
        delivery("msg_1", "wh_a1", "acme", 100),
        delivery("msg_2", "wh_a2", "acme", 100),
        delivery("msg_3", "wh_s1", "system", 100),
    ])
    .await
    .expect("enqueue");
    let acme_only = DeliveryFilter {
        endpoint_tenant: Some(tid("acme")),
        ..DeliveryFilter::default()
    };
    assert_eq!(ids(&s, &acme_only).await.len(), 2);
    assert_eq!(ids(&s, &DeliveryFilter::default()).await.len(), 3);
    assert!(s
        .get_webhook_delivery(Some(&tid("acme")), "msg_3")
        .await
        .expect("get")
        .is_none());
    assert!(s
        .get_webhook_delivery(None, "msg_3")
        .await
        .expect("get")
        .is_some());

    // Deleting is scoped, and takes the endpoint's deliveries.
    assert!(!s
        .delete_webhook_endpoint(&tid("globex"), "wh_a1")
        .await
        .expect("delete"));
    assert!(s
        .delete_webhook_endpoint(&tid("acme"), "wh_a1")
        .await
        .expect("delete"));
    assert_eq!(ids(&s, &acme_only).await, ["msg_2"]);
    assert!(s
        .get_webhook_endpoint(&tid("acme"), "wh_a1")
        .await
        .expect("get")
        .is_none());
}

pub async fn a_delivery_is_claimed_once_under_a_lease_and_finished_by_its_holder(
    s: Arc<dyn Store>,
) {
    tenants(&s, &["acme"]).await;
    s.create_webhook_endpoint(&endpoint("wh_a1", "acme", 10))
        .await
        .expect("create");
    s.enqueue_webhook_deliveries(&[
        delivery("msg_1", "wh_a1", "acme", 100),
        delivery("msg_2", "wh_a1", "acme", 101),
        delivery("msg_3", "wh_a1", "acme", 5_000),
    ])
    .await
    .expect("enqueue");
    // Not due yet: msg_3.
    let a = s
        .claim_webhook_deliveries("node-a", at(1_000), at(61_000), 1)
        .await
        .expect("claim");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].id, "msg_1");
    assert_eq!(a[0].attempts, 1);
    assert_eq!(a[0].lease_owner.as_deref(), Some("node-a"));
    let b = s
        .claim_webhook_deliveries("node-b", at(1_000), at(61_000), 10)
        .await
        .expect("claim");
    assert_eq!(
        b.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        ["msg_2"]
    );
    // Leased: nobody else gets them.
    assert!(s
        .claim_webhook_deliveries("node-c", at(2_000), at(62_000), 10)
        .await
        .expect("claim")
        .is_empty());

    // Only the holder records an outcome.
    let retry = AttemptOutcome::Retry { at: at(10_000) };
    assert!(!s
        .finish_webhook_attempt(
            "msg_1",
            "node-b",
            &retry,
            Some(500),
            Some("answered 500"),
            at(2_000)
        )
        .await
        .expect("finish"));
    assert!(s
        .finish_webhook_attempt(
            "msg_1",
            "node-a",
            &retry,
            Some(500),
            Some("answered 500"),
            at(2_000)
        )
        .await
        .expect("finish"));
    let d = s
        .get_webhook_delivery(None, "msg_1")
        .await
        .expect("get")
        .expect("there");
    assert_eq!(d.status, DeliveryStatus::Pending);
    assert_eq!(d.next_attempt_at, at(10_000));
    assert_eq!(d.last_status, Some(500));
    assert_eq!(d.last_error.as_deref(), Some("answered 500"));
    assert!(d.lease_owner.is_none());

    // msg_2's holder died: once its lease expires another node takes it, and the dead node's
    // late outcome changes nothing.
    let c = s
        .claim_webhook_deliveries("node-c", at(61_000), at(121_000), 10)
        .await
        .expect("claim");
    let mut got: Vec<_> = c.iter().map(|d| (d.id.clone(), d.attempts)).collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("msg_1".to_owned(), 2),
            ("msg_2".to_owned(), 2),
            ("msg_3".to_owned(), 1)
        ]
    );
    assert!(!s
        .finish_webhook_attempt(
            "msg_2",
            "node-b",
            &AttemptOutcome::Delivered,
            Some(200),
            None,
            at(61_500)
        )
        .await
        .expect("finish"));
    assert!(s
        .finish_webhook_attempt(
            "msg_2",
            "node-c",
            &AttemptOutcome::Delivered,
            Some(200),
            None,
            at(61_500)
        )
        .await
        .expect("finish"));
    assert!(s
        .finish_webhook_attempt(
            "msg_1",
            "node-c",
            &AttemptOutcome::Dead,
            None,
            Some("could not connect"),
            at(61_500)
        )
        .await
        .expect("finish"));
    // A finished delivery takes no further outcome.
    assert!(!s
        .finish_webhook_attempt(
            "msg_2",
            "node-c",
            &AttemptOutcome::Dead,
            None,
            None,
            at(61_600)
        )
        .await
        .expect("finish"));
    let dead = DeliveryFilter {
        status: Some(DeliveryStatus::Dead),
        ..DeliveryFilter::default()
    };
    assert_eq!(ids(&s, &dead).await, ["msg_1"]);
    let d = s
        .get_webhook_delivery(None, "msg_2")
        .await
        .expect("get")
        .expect("there");
    assert_eq!(
        (d.status, d.finished_at),
        (DeliveryStatus::Delivered, Some(at(61_500)))
    );

    // Redelivery: dead only, scoped, attempts start over, due at once.
    assert!(!s
        .redeliver_webhook(None, "msg_2", at(70_000))
        .await
        .expect("redeliver"));
    assert!(!s
        .redeliver_webhook(Some(&tid("system")), "msg_1", at(70_000))
        .await
        .expect("redeliver"));
    assert!(s
        .redeliver_webhook(Some(&tid("acme")), "msg_1", at(70_000))
        .await
        .expect("redeliver"));
    assert!(!s
        .redeliver_webhook(None, "msg_1", at(70_000))
        .await
        .expect("redeliver twice"));
    let again = s
        .claim_webhook_deliveries("node-a", at(70_000), at(130_000), 10)
        .await
        .expect("claim");
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id.as_str(), again[0].attempts), ("msg_1", 1));
}

pub async fn concurrent_claims_never_share_a_delivery(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    s.create_webhook_endpoint(&endpoint("wh_a1", "acme", 10))
        .await
        .expect("create");
    let queued: Vec<_> = (0..40)
        .map(|i| delivery(&format!("msg_{i:02}"), "wh_a1", "acme", 100 + i))
        .collect();
    s.enqueue_webhook_deliveries(&queued)
        .await
        .expect("enqueue");
    let mut tasks = Vec::new();
    for n in 0..8 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = s
                    .claim_webhook_deliveries(&format!("node-{n}"), at(1_000), at(60_000), 3)
                    .await
                    .expect("claim");
                if got.is_empty() {
                    break;
                }
                mine.extend(got.into_iter().map(|d| d.id));
            }
            mine
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let distinct: HashSet<_> = all.iter().cloned().collect();
    assert_eq!(
        all.len(),
        40,
        "every delivery claimed exactly once: {all:?}"
    );
    assert_eq!(distinct.len(), 40);
}

pub async fn webhook_endpoints_are_exported_and_imported_sealed(s: Arc<dyn Store>) {
    tenants(&s, &["acme"]).await;
    let acme = endpoint("wh_a1", "acme", 10);
    let global = endpoint("wh_s1", "system", 20);
    s.create_webhook_endpoint(&acme).await.expect("create");
    s.create_webhook_endpoint(&global).await.expect("create");
    s.enqueue_webhook_deliveries(&[delivery("msg_1", "wh_a1", "acme", 100)])
        .await
        .expect("enqueue");
    let mut file = Vec::new();
    export::write_export(s.as_ref(), &mut file, at(1), 1_000, &mut |_| {})
        .await
        .expect("write");
    let dir = tempfile::tempdir().expect("tempdir");
    let target = SqliteStore::open(&dir.path().join("t.db"))
        .await
        .expect("open");
    let counts = target
        .import_records(
            &mut export::ExportReader::new(&file[..]).expect("header"),
            &mut |_, _| {},
        )
        .await
        .expect("import");
    assert_eq!(counts.get("webhook_endpoint"), 2);
    assert_eq!(
        target
            .get_webhook_endpoint(&tid("acme"), "wh_a1")
            .await
            .expect("get"),
        Some(acme)
    );
    assert_eq!(
        target
            .get_webhook_endpoint(&tid("system"), "wh_s1")
            .await
            .expect("get"),
        Some(global)
    );
    // The queue stays behind, and a database holding one refuses an import.
    assert!(target
        .list_webhook_deliveries(&DeliveryFilter::default(), &PageRequest::first(10))
        .await
        .expect("list")
        .items
        .is_empty());
    let blockers = s.import_blockers().await.expect("blockers");
    assert!(blockers.contains(&"webhook_endpoints"), "{blockers:?}");
    assert!(blockers.contains(&"webhook_deliveries"), "{blockers:?}");
}

pub async fn retention_prunes_only_resolved_alerts_and_delivered_webhooks_past_their_time(
    s: Arc<dyn Store>,
) {
    use portcullis_core::alert::AlertStatus as St;
    tenants(&s, &["acme"]).await;
    let upsert = |id: &str, subject: &str| AlertUpsert {
        id: id.into(),
        tenant: tid("acme"),
        rule: "failed_auth_spike".into(),
        subject: subject.into(),
        shadow: false,
        evidence: "{}".into(),
        count: 1,
        seen_at: at(1_000),
    };
    for (id, subject) in [
        ("al_old", "client:a"),
        ("al_new", "client:b"),
        ("al_open", "client:c"),
        ("al_ack", "client:d"),
    ] {
        s.upsert_alert(&upsert(id, subject)).await.expect("upsert");
    }
    for (id, to, when) in [
        ("al_old", St::Resolved, 2_000),
        ("al_new", St::Resolved, 9_000),
        ("al_ack", St::Acknowledged, 2_000),
    ] {
        assert!(s
            .set_alert_status(None, id, St::Open, to, "admin:x", at(when))
            .await
            .expect("status"));
    }
    s.create_webhook_endpoint(&endpoint("wh_a1", "acme", 10))
        .await
        .expect("create");
    s.enqueue_webhook_deliveries(&[
        delivery("msg_done_old", "wh_a1", "acme", 100),
        delivery("msg_done_new", "wh_a1", "acme", 100),
        delivery("msg_dead", "wh_a1", "acme", 100),
        delivery("msg_pending", "wh_a1", "acme", 100),
    ])
    .await
    .expect("enqueue");
    let claimed = s
        .claim_webhook_deliveries("n", at(100), at(60_000), 3)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 3);
    let mut outcomes = vec![
        (AttemptOutcome::Delivered, 2_000),
        (AttemptOutcome::Delivered, 9_000),
        (AttemptOutcome::Dead, 2_000),
    ]
    .into_iter();
    let mut finished = Vec::new();
    for d in &claimed {
        let (outcome, when) = outcomes.next().expect("outcome");
        assert!(s
            .finish_webhook_attempt(&d.id, "n", &outcome, None, None, at(when))
            .await
            .expect("finish"));
        finished.push((d.id.clone(), outcome));
    }
    assert_eq!(s.prune_alerts(at(5_000)).await.expect("prune"), (1, 1));
    assert!(s.get_alert(None, "al_old").await.expect("get").is_none());
    for kept in ["al_new", "al_open", "al_ack"] {
        assert!(
            s.get_alert(None, kept).await.expect("get").is_some(),
            "{kept}"
        );
    }
    let left = ids(&s, &DeliveryFilter::default()).await;
    assert_eq!(left.len(), 3, "{left:?}");
    let pruned: Vec<_> = finished
        .iter()
        .filter(|(id, _)| !left.contains(id))
        .collect();
    assert_eq!(pruned.len(), 1);
    assert_eq!(pruned[0].1, AttemptOutcome::Delivered);
    assert_eq!(
        s.prune_alerts(at(5_000)).await.expect("prune again"),
        (0, 0)
    );
}
