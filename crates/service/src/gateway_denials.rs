//! Denials reported by standalone gateways (`POST /v1/gateway/denials`): each report becomes the
//! same `gateway.denied` (or `gateway.denials_suppressed`) audit event the embedded gateway
//! records, published on the audit bus, so the detectors (the failed-auth spike per tenant and
//! per source address) count failures at the edge as they count those at the token service.
//!
//! The differences from the embedded gateway's events: the actor names the reporting gateway
//! by its service credential (`gateway:<credential id>`), and the tenant is the one the report
//! names, or the reporting credential's own when it names none (the embedded gateway reports
//! under `system`).
//!
//! A batch is all or nothing: a credential may report only for tenants it reaches with
//! `report_denials` (core's `decide`, asked once per tenant named, before anything is
//! recorded). This module must never record part of a refused batch, never record a report
//! for a tenant the credential does not reach, and never wait on storage (the audit sink queues
//! and drops under pressure, counted, as for every event).

use std::collections::BTreeSet;
use std::sync::Arc;

use portcullis_core::admin::{AdminDenied, AdminPrincipal, AdminTarget, Permission};
use portcullis_core::audit::{Action, Actor, Outcome, Reason};
use portcullis_core::denial_report::Report;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Clock;
use portcullis_store::Store;

use crate::audit::{AuditSink, EventDraft, RequestOrigin};

/// The state of the denial-report endpoint: what authenticating its caller and recording the
/// events need, nothing else.
#[derive(Debug, Clone)]
pub struct DenialIngest {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub audit: AuditSink,
}

/// A report for a tenant the caller does not reach (or a caller without `report_denials`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub denied: AdminDenied,
    pub tenant: TenantId,
}

/// Records every report of a parsed batch for `reporter`, or none: each tenant the batch names
/// (a report naming none is for the reporter's own tenant) is authorized first. Returns how many
/// events were recorded.
pub fn record(
    audit: &AuditSink,
    reporter: &AdminPrincipal,
    reports: Vec<Report>,
) -> Result<usize, Refused> {
    let tenants: BTreeSet<&TenantId> = reports
        .iter()
        .map(|r| r.tenant().unwrap_or(&reporter.tenant))
        .collect();
    for t in tenants {
        reporter
            .authorize(Permission::ReportDenials, AdminTarget::Tenant(t))
            .map_err(|denied| Refused {
                denied,
                tenant: t.clone(),
            })?;
    }
    let actor = Actor::remote_gateway(&reporter.credential_id);
    let n = reports.len();
    for r in reports {
        let tenant = r.tenant().unwrap_or(&reporter.tenant).clone();
        match r {
            Report::Denied(d) => audit.record(
                EventDraft {
                    tenant,
                    actor: actor.clone(),
                    credential_id: None,
                    action: Action::GatewayDenied,
                    outcome: Outcome::Denied,
                    reason: Some(Reason::with_detail(d.class, &d.reason)),
                    target: Some(d.route),
                },
                &RequestOrigin {
                    request_id: d.request_id,
                    client_ip: d.client_ip,
                    user_agent: None,
                },
            ),
            Report::Suppressed {
                reason, dropped, ..
            } => audit.record(
                EventDraft {
                    tenant,
                    actor: actor.clone(),
                    credential_id: None,
                    action: Action::GatewayDenialsSuppressed,
                    outcome: Outcome::Denied,
                    // `reason` was parsed as a reason code (`denial_report::parse_batch`).
                    reason: Some(Reason::from_stored(format!("{reason}:{dropped}"))),
                    target: None,
                },
                &RequestOrigin::default(),
            ),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::admin::AdminRole;
    use portcullis_core::denial_report::{parse_batch, WireBatch};
    use portcullis_core::time::{ManualClock, Timestamp};

    fn t(s: &str) -> TenantId {
        TenantId::parse(s).expect("tenant")
    }

    fn reporter(role: AdminRole, tenant: &str) -> AdminPrincipal {
        AdminPrincipal {
            credential_id: "adm_gw".into(),
            tenant: t(tenant),
            role,
        }
    }

    fn batch(tenants: &[Option<&str>]) -> Vec<Report> {
        let events = tenants
            .iter()
            .map(|tenant| {
                let tenant = tenant.map(|t| format!("\"tenant\":\"{t}\","));
                format!(
                    r#"{{"type":"denied",{}"route":"orders","method":"GET","class":"invalid_token",
                    "reason":"signature_invalid","status":401,"client_ip":"192.0.2.9","mode":"proxy"}}"#,
                    tenant.unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join(",");
        let wire: WireBatch =
            serde_json::from_str(&format!(r#"{{"events":[{events}]}}"#)).expect("wire");
        parse_batch(wire).expect("parsed")
    }

    /// A sink (over a throwaway store) and a subscriber to its bus; keep the `TempDir`.
    async fn sink() -> (tempfile::TempDir, AuditSink, crate::audit::Subscription) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(
            portcullis_store::SqliteStore::open(&dir.path().join("db"))
                .await
                .expect("store"),
        );
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
        let (sink, _writer) = crate::audit::spawn(store, clock, &Default::default());
        let sub = sink.subscribe();
        (dir, sink, sub)
    }

    #[tokio::test]
    async fn reports_become_gateway_events_naming_the_reporter() {
        let (_dir, sink, mut sub) = sink().await;
        let n = record(
            &sink,
            &reporter(AdminRole::Service, "acme"),
            batch(&[Some("acme"), None]),
        )
        .expect("recorded");
        assert_eq!(n, 2);
        for _ in 0..2 {
            let e = sub.try_recv().expect("published");
            assert_eq!(e.action, Action::GatewayDenied);
            assert_eq!(e.tenant, t("acme"));
            assert_eq!(e.actor.as_str(), "gateway:adm_gw");
            assert_eq!(e.outcome, Outcome::Denied);
            assert_eq!(
                e.reason.as_ref().map(|r| r.as_str()),
                Some("invalid_token:signature_invalid")
            );
            assert_eq!(e.target.as_deref(), Some("orders"));
            assert_eq!(e.client_ip.as_deref(), Some("192.0.2.9"));
        }
        assert!(sub.try_recv().is_none());
    }

    #[tokio::test]
    async fn a_report_for_another_tenant_refuses_the_whole_batch() {
        let (_dir, sink, mut sub) = sink().await;
        let refused = record(
            &sink,
            &reporter(AdminRole::Service, "acme"),
            batch(&[Some("acme"), Some("globex")]),
        );
        assert_eq!(
            refused,
            Err(Refused {
                denied: AdminDenied::TenantMismatch,
                tenant: t("globex")
            })
        );
        assert!(sub.try_recv().is_none(), "nothing recorded");
        // An installation-wide service credential reaches both.
        assert_eq!(
            record(
                &sink,
                &reporter(AdminRole::Service, "system"),
                batch(&[Some("acme"), Some("globex"), None])
            ),
            Ok(3)
        );
        let tenants: Vec<String> = std::iter::from_fn(|| sub.try_recv())
            .map(|e| e.tenant.to_string())
            .collect();
        assert_eq!(tenants, ["acme", "globex", "system"]);
    }

    #[tokio::test]
    async fn only_service_credentials_report() {
        let (_dir, sink, mut sub) = sink().await;
        for (role, tenant) in [
            (AdminRole::GlobalAdmin, "system"),
            (AdminRole::TenantAdmin, "acme"),
            (AdminRole::Auditor, "acme"),
            (AdminRole::ApiKeyManager, "acme"),
        ] {
            assert_eq!(
                record(&sink, &reporter(role, tenant), batch(&[None])).map_err(|r| r.denied),
                Err(AdminDenied::RoleLacksPermission),
                "{role:?}"
            );
        }
        assert!(sub.try_recv().is_none());
    }
}
