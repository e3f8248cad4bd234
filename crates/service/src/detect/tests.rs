//! The detector task on a real audit sink over SQLite: findings become stored, deduplicated,
//! rate-limited alerts with evidence; normal traffic stores none; a lagging task counts what it
//! lost and never slows recording.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::alert::AlertStatus;
use portcullis_core::audit::{Action, Actor, Outcome, Reason};
use portcullis_core::detect::{DetectConfig, Mode, Rule};
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{ManualClock, Timestamp};
use portcullis_store::{
    AdminCredentialStore, AlertFilter, AlertRecord, AlertStore, SqliteStore, Store,
};

use super::*;
use crate::audit::{self, AuditConfig, EventDraft, RequestOrigin};

struct Rig {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
    sink: AuditSink,
    writer: audit::AuditWriter,
    detection: Detection,
}

async fn rig(config: DetectConfig, subscriber_capacity: usize) -> Rig {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("db"))
            .await
            .expect("open"),
    );
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
    let audit_config = AuditConfig {
        subscriber_capacity,
        ..AuditConfig::default()
    };
    let (sink, writer) = audit::spawn(store.clone(), clock.clone(), &audit_config);
    let dyn_store: Arc<dyn Store> = store.clone();
    let detection = spawn(&sink, dyn_store, clock, config, None);
    Rig {
        _dir: dir,
        store,
        sink,
        writer,
        detection,
    }
}

fn origin(ip: &str) -> RequestOrigin {
    RequestOrigin {
        request_id: None,
        client_ip: ip.parse().ok(),
        user_agent: None,
    }
}

fn failed_client_auth(client: &str) -> EventDraft {
    EventDraft {
        tenant: TenantId::parse("acme").expect("tenant"),
        actor: Actor::anonymous(),
        credential_id: Some(client.into()),
        action: Action::OAuthClientAuth,
        outcome: Outcome::Failure,
        reason: Some(Reason::new("client_secret_mismatch")),
        target: None,
    }
}

fn revoked_key_use(key: &str) -> EventDraft {
    EventDraft {
        tenant: TenantId::parse("acme").expect("tenant"),
        actor: Actor::anonymous(),
        credential_id: Some(key.into()),
        action: Action::ApiKeyVerify,
        outcome: Outcome::Failure,
        reason: Some(Reason::new("api_key_revoked")),
        target: None,
    }
}

async fn alerts(store: &SqliteStore) -> Vec<AlertRecord> {
    store
        .list_alerts(
            &AlertFilter {
                tenant: None,
                status: None,
                rule: None,
            },
            &portcullis_store::PageRequest::first(1_000),
        )
        .await
        .expect("list")
        .items
}

/// Waits (bounded) until `done` holds for the stored alerts.
async fn until(store: &SqliteStore, done: impl Fn(&[AlertRecord]) -> bool) -> Vec<AlertRecord> {
    for _ in 0..500 {
        let a = alerts(store).await;
        if done(&a) {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    alerts(store).await
}

#[tokio::test]
async fn repeated_failed_client_authentications_open_one_alert_with_evidence() {
    let r = rig(DetectConfig::default(), 4_096).await;
    for _ in 0..30 {
        r.sink
            .record(failed_client_auth("cl_target"), &origin("192.0.2.10"));
    }
    let found = until(&r.store, |a| a.len() >= 3).await;
    let alert = found
        .iter()
        .find(|a| a.subject == "client:cl_target")
        .expect("client alert");
    assert_eq!(alert.rule, "failed_auth_spike");
    assert_eq!(alert.status, AlertStatus::Open);
    assert_eq!(alert.tenant.as_str(), "acme");
    assert!(!alert.shadow);
    let evidence: serde_json::Value = serde_json::from_str(&alert.evidence).expect("json");
    assert_eq!(evidence["count"], 20);
    assert_eq!(evidence["threshold"], 20);
    assert_eq!(evidence["window_secs"], 300);
    assert_eq!(evidence["subject"], "client:cl_target");
    assert_eq!(
        evidence["sample_event_ids"].as_array().map(Vec::len),
        Some(5)
    );
    // The address and the tenant spiked too; one alert each.
    assert!(found.iter().any(|a| a.subject == "address:192.0.2.10"));
    assert!(found.iter().any(|a| a.subject == "tenant:acme"));
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(r.detection.metrics.fired(Rule::FailedAuthSpike), 3);
    r.detection.shutdown();
    r.writer.shutdown().await;
}

#[tokio::test]
async fn an_alert_storm_is_one_rate_limited_alert_and_normal_traffic_opens_none() {
    let r = rig(DetectConfig::default(), 4_096).await;
    // Normal: successful uses from one network, one stray failure.
    for i in 0..200 {
        let mut d = revoked_key_use("key_ok");
        d.outcome = Outcome::Success;
        d.reason = None;
        r.sink.record(d, &origin(&format!("10.0.0.{}", i % 4)));
    }
    r.sink
        .record(failed_client_auth("cl_ok"), &origin("10.0.0.1"));
    // A storm: one revoked key presented 15 times (under the failed-auth floor, so only the
    // inactive-credential rule speaks).
    for _ in 0..15 {
        r.sink
            .record(revoked_key_use("key_dead"), &origin("203.0.113.5"));
    }
    let found = until(&r.store, |a| !a.is_empty()).await;
    // Let the task finish the storm, then check.
    for _ in 0..200 {
        if r.detection.metrics.suppressed(Rule::InactiveCredentialUse) >= 14 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _ = found;
    let found = alerts(&r.store).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].rule, "inactive_credential_use");
    assert_eq!(found[0].subject, "api_key:key_dead");
    assert_eq!(found[0].count, 1, "the rest waits for the interval");
    assert_eq!(r.detection.metrics.fired(Rule::InactiveCredentialUse), 1);
    assert_eq!(
        r.detection.metrics.suppressed(Rule::InactiveCredentialUse),
        14
    );
    r.detection.shutdown();
    r.writer.shutdown().await;
}

#[tokio::test]
async fn a_rule_in_shadow_mode_stores_marked_alerts_and_counts_them_apart() {
    let mut config = DetectConfig::default();
    config.rules.inactive_credential_use = Mode::Shadow;
    let r = rig(config, 4_096).await;
    r.sink
        .record(revoked_key_use("key_dead"), &origin("203.0.113.5"));
    let found = until(&r.store, |a| !a.is_empty()).await;
    assert_eq!(found.len(), 1);
    assert!(found[0].shadow);
    assert_eq!(r.detection.metrics.shadowed(Rule::InactiveCredentialUse), 1);
    assert_eq!(r.detection.metrics.fired(Rule::InactiveCredentialUse), 0);
    let mut text = portcullis_core::metrics::Text::new();
    r.detection.metrics.write(&mut text);
    let text = text.finish();
    assert!(
        text.contains("portcullis_detect_shadow_total{rule=\"inactive_credential_use\"} 1"),
        "{text}"
    );
    r.detection.shutdown();
    r.writer.shutdown().await;
}

#[tokio::test]
async fn a_lagging_detector_counts_lost_events_and_never_blocks_recording() {
    // A bus of 4: recording 500 events without yielding (this runtime has one thread, so the
    // detector cannot run meanwhile) must not wait for it.
    let r = rig(DetectConfig::default(), 4).await;
    for _ in 0..500 {
        r.sink
            .record(revoked_key_use("key_dead"), &origin("203.0.113.5"));
    }
    for _ in 0..500 {
        if r.detection.metrics.events_lost() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(r.detection.metrics.events_lost() >= 490);
    assert_eq!(r.sink.dropped(), 0);
    r.detection.shutdown();
    r.writer.shutdown().await;
}

#[tokio::test]
async fn a_stored_bootstrap_credential_alerts_on_use_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(
        SqliteStore::open(&dir.path().join("db"))
            .await
            .expect("open"),
    );
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
    // Minted in an earlier run, exactly as the first-start bootstrap does.
    let (boot, _) = crate::admin_credentials::mint(
        &TenantId::system(),
        "bootstrap".into(),
        "system".into(),
        clock.now(),
    );
    let (daily, _) = crate::admin_credentials::mint(
        &TenantId::system(),
        "daily".into(),
        "admin:x".into(),
        clock.now(),
    );
    store.insert_admin_credential(&boot).await.expect("boot");
    store.insert_admin_credential(&daily).await.expect("daily");
    assert!(is_break_glass(&boot) && !is_break_glass(&daily));
    let (sink, _writer) = audit::spawn(store.clone(), clock.clone(), &AuditConfig::default());
    let dyn_store: Arc<dyn Store> = store.clone();
    let _detection = spawn(&sink, dyn_store, clock, DetectConfig::default(), None);
    for id in [&daily.id, &boot.id] {
        sink.record(
            EventDraft {
                tenant: TenantId::system(),
                actor: Actor::admin(id),
                credential_id: Some(id.clone()),
                action: Action::AdminAuthenticate,
                outcome: Outcome::Success,
                reason: None,
                target: None,
            },
            &origin("192.0.2.1"),
        );
    }
    let found = until(&store, |a| !a.is_empty()).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].rule, Rule::BreakGlassUse.as_str());
    assert_eq!(found[0].subject, format!("admin_credential:{}", boot.id));
}
