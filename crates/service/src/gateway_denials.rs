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
use std::net::IpAddr;
use std::sync::Arc;

use portcullis_core::admin::{AdminDenied, AdminPrincipal, AdminTarget, Permission};
use portcullis_core::audit::{Action, Actor, Outcome, Reason};
use portcullis_core::denial_report::Report;
use portcullis_core::rate_limit::{Buckets, Limited, Rate};
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Clock;
use portcullis_store::Store;

use crate::audit::{AuditSink, EventDraft, RequestOrigin};

/// The state of the denial-report endpoint: what authenticating its caller, limiting its rate
/// and recording the events need, nothing else. Made once, when the router is built (the rate
/// buckets live as long as it does).
#[derive(Debug, Clone)]
pub struct DenialIngest {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub audit: AuditSink,
    /// Batches per reporting credential, at [`DenialIngest::RATE`].
    pub limits: Arc<Buckets>,
}

impl DenialIngest {
    /// Batches one credential may send: 20 a second, bursts of 40 (at most 4,000 events a
    /// second, far beyond a gateway's sampled denials). Beyond it: 429 with `Retry-After`,
    /// which the gateway's reporter retries, so one tenant's credential cannot flood the shared
    /// audit queue.
    pub const RATE: Rate = Rate::constant(20.0, 40.0);

    /// Admits one batch from `reporter` under [`Self::RATE`].
    pub fn admit(&self, reporter: &AdminPrincipal) -> Result<(), Limited> {
        self.limits
            .check(&reporter.credential_id, Self::RATE, self.clock.now())
    }
}

/// A report for a tenant the caller does not reach (or a caller without `report_denials`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub denied: AdminDenied,
    pub tenant: TenantId,
}

/// Records one `gateway.denied` event: the one shape for the embedded gateway's denials and
/// for reported ones.
#[allow(clippy::too_many_arguments)]
pub fn record_denied(
    audit: &AuditSink,
    tenant: TenantId,
    actor: Actor,
    class: &'static str,
    reason: &str,
    route: String,
    request_id: Option<String>,
    client_ip: Option<IpAddr>,
) {
    audit.record(
        EventDraft {
            tenant,
            actor,
            credential_id: None,
            action: Action::GatewayDenied,
            outcome: Outcome::Denied,
            reason: Some(Reason::with_detail(class, reason)),
            target: Some(route),
        },
        &RequestOrigin {
            request_id,
            client_ip,
            user_agent: None,
        },
    );
}

/// Records one `gateway.denials_suppressed` event (`reason` is a reason code).
pub fn record_suppressed(
    audit: &AuditSink,
    tenant: TenantId,
    actor: Actor,
    reason: &str,
    dropped: u64,
) {
    audit.record(
        EventDraft {
            tenant,
            actor,
            credential_id: None,
            action: Action::GatewayDenialsSuppressed,
            outcome: Outcome::Denied,
            reason: Some(Reason::from_stored(format!("{reason}:{dropped}"))),
            target: None,
        },
        &RequestOrigin::default(),
    );
}

/// Records every report of a parsed batch for `reporter`, or none: each tenant the batch names
/// (a report naming none is for the reporter's own tenant) is authorized first. Returns how many
/// events were recorded.
///
/// The source address is kept only from an installation-wide credential (the system tenant's).
/// The address detector follows an address across tenants, so a tenant's own credential
/// naming any address it likes could take over (or hide) another tenant's alert for it, or
/// raise that address's baseline; its reports count for its tenant, without an address.
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
    let addresses_trusted = reporter.tenant.is_system();
    let n = reports.len();
    for r in reports {
        let tenant = r.tenant().unwrap_or(&reporter.tenant).clone();
        match r {
            Report::Denied(d) => record_denied(
                audit,
                tenant,
                actor.clone(),
                d.class,
                &d.reason,
                d.route,
                d.request_id,
                d.client_ip.filter(|_| addresses_trusted),
            ),
            Report::Suppressed {
                reason, dropped, ..
            } => record_suppressed(audit, tenant, actor.clone(), &reason, dropped),
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

    /// A throwaway store, a test clock and an audit sink over them; keep the `TempDir`.
    async fn fixture() -> (
        tempfile::TempDir,
        Arc<dyn Store>,
        Arc<ManualClock>,
        AuditSink,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: Arc<dyn Store> = Arc::new(
            portcullis_store::SqliteStore::open(&dir.path().join("db"))
                .await
                .expect("store"),
        );
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
        let (sink, _writer) =
            crate::audit::spawn(store.clone(), clock.clone(), &Default::default());
        (dir, store, clock, sink)
    }

    /// A sink and a subscriber to its bus; keep the `TempDir`.
    async fn sink() -> (tempfile::TempDir, AuditSink, crate::audit::Subscription) {
        let (dir, _, _, sink) = fixture().await;
        let sub = sink.subscribe();
        (dir, sink, sub)
    }

    #[tokio::test]
    async fn reports_become_gateway_events_naming_the_reporter() {
        let (_dir, sink, mut sub) = sink().await;
        let n = record(
            &sink,
            &reporter(AdminRole::Service, "system"),
            batch(&[Some("acme"), Some("acme")]),
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
    async fn a_tenants_own_credential_reports_for_its_tenant_without_source_addresses() {
        // The address detector follows an address across tenants: a tenant's credential must
        // not be able to feed it any address it likes.
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
            assert_eq!(e.client_ip, None, "no address from a tenant's credential");
        }
        assert!(sub.try_recv().is_none());
    }

    #[tokio::test]
    async fn batches_past_the_rate_are_refused_per_credential() {
        let (_dir, store, clock, audit) = fixture().await;
        let ingest = DenialIngest {
            store,
            clock: clock.clone(),
            audit,
            limits: Default::default(),
        };
        let one = reporter(AdminRole::Service, "acme");
        let burst = DenialIngest::RATE.burst() as usize;
        for i in 0..burst {
            assert!(ingest.admit(&one).is_ok(), "batch {i} of the burst");
        }
        let limited = ingest.admit(&one).expect_err("past the burst");
        assert!(limited.retry_after_secs >= 1);
        // Another credential has its own bucket; time refills this one.
        let mut other = one.clone();
        other.credential_id = "adm_other".into();
        assert!(ingest.admit(&other).is_ok());
        clock.advance(std::time::Duration::from_secs(1));
        assert!(ingest.admit(&one).is_ok());
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
