//! The detector task: reads the audit bus, runs the core detectors ([`portcullis_core::detect`])
//! on every event, rate-limits their findings per rule and subject, and hands each resulting
//! alert update to a writer task that stores it ([`AlertStore::upsert_alert`], which
//! deduplicates). Shadow findings are stored too, marked, and never alert. The writer then
//! queues the stored alert's webhook deliveries ([`crate::webhooks::Webhooks::enqueue`]; never
//! for shadow alerts), which the webhook dispatcher sends on its own.
//!
//! It must never block the bus or a request: it is a bus subscriber (a lagging one loses events,
//! counted in [`DetectMetrics`]), and the hand-off to the writer is a bounded queue that drops,
//! counted, when storage falls behind. Per-event work is the detectors' bounded-map updates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::detect::limit::{Limiter, Update};
use portcullis_core::detect::{DetectConfig, Detector, Rule};
use portcullis_core::metrics::{Kind, Text};
use portcullis_core::time::Clock;
use portcullis_store::{AlertUpsert, Store};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::audit::{AuditSink, Subscription};

/// Alert updates waiting for storage before new ones are dropped (counted).
const WRITE_QUEUE: usize = 1_024;
/// How long the detector task pauses after draining the bus before it waits again: what an
/// alert may be delayed by, and what the bus must buffer meanwhile (`audit.subscriber_capacity`,
/// 4,096 events by default, holds about 90 ms at 44,000 events a second).
const BATCH_PAUSE: Duration = Duration::from_millis(2);
/// A bus smaller than this gets no pause: it could not hold 2 ms of a busy server's events.
const PAUSE_MIN_CAPACITY: usize = 1_024;
/// Most events handled per drain before the task lets others run (it is behind: no pause).
const BATCH_MAX: usize = 1_024;
/// How often suppressed findings whose interval has passed are written.
const DUE_TICK: Duration = Duration::from_secs(5);
/// How often resolved alerts past `alert_retention_days` are pruned.
const PRUNE_TICK: Duration = Duration::from_secs(3_600);

/// The detectors' counters, per rule: alerts fired, findings recorded in shadow mode, findings
/// suppressed by the rate limit; and the events the detector task lost by lagging behind the
/// bus, and alert updates dropped or failed on their way to storage.
#[derive(Debug, Default)]
pub struct DetectMetrics {
    fired: [AtomicU64; Rule::ALL.len()],
    shadow: [AtomicU64; Rule::ALL.len()],
    suppressed: [AtomicU64; Rule::ALL.len()],
    events_lost: AtomicU64,
    updates_dropped: AtomicU64,
    subjects: AtomicU64,
}

fn rule_index(rule: Rule) -> usize {
    Rule::ALL.iter().position(|r| *r == rule).unwrap_or(0)
}

impl DetectMetrics {
    pub fn fired(&self, rule: Rule) -> u64 {
        self.fired[rule_index(rule)].load(Ordering::Relaxed)
    }

    pub fn shadowed(&self, rule: Rule) -> u64 {
        self.shadow[rule_index(rule)].load(Ordering::Relaxed)
    }

    pub fn suppressed(&self, rule: Rule) -> u64 {
        self.suppressed[rule_index(rule)].load(Ordering::Relaxed)
    }

    /// Audit events the detector task never saw because it lagged behind the bus.
    pub fn events_lost(&self) -> u64 {
        self.events_lost.load(Ordering::Relaxed)
    }

    /// Alert updates dropped (write queue full) or that storage refused.
    pub fn updates_dropped(&self) -> u64 {
        self.updates_dropped.load(Ordering::Relaxed)
    }

    pub fn write(&self, t: &mut Text) {
        for (name, help, values) in [
            (
                "portcullis_detect_alerts_fired_total",
                "Detector findings that raised or updated an alert, by rule.",
                &self.fired,
            ),
            (
                "portcullis_detect_shadow_total",
                "Findings of rules in shadow mode (recorded, not alerted), by rule.",
                &self.shadow,
            ),
            (
                "portcullis_detect_suppressed_total",
                "Findings folded into a later alert update by the per-rule rate limit, by rule.",
                &self.suppressed,
            ),
        ] {
            t.header(name, help, Kind::Counter);
            for r in Rule::ALL {
                let n = values[rule_index(r)].load(Ordering::Relaxed);
                t.sample(name, &[("rule", r.as_str())], n);
            }
        }
        t.single(
            "portcullis_detect_events_lost_total",
            "Audit events the detector task lost by falling behind the audit bus.",
            Kind::Counter,
            self.events_lost(),
        );
        t.single(
            "portcullis_detect_updates_dropped_total",
            "Alert updates dropped before storage (queue full or database error).",
            Kind::Counter,
            self.updates_dropped(),
        );
        t.single(
            "portcullis_detect_subjects",
            "Subjects the detectors hold state for.",
            Kind::Gauge,
            self.subjects.load(Ordering::Relaxed),
        );
    }
}

/// The running detector and alert writer tasks.
#[derive(Debug)]
pub struct Detection {
    pub metrics: Arc<DetectMetrics>,
    detector: JoinHandle<()>,
    writer: JoinHandle<()>,
    pruner: Option<JoinHandle<()>>,
}

impl Detection {
    /// Stops both tasks (pending rate-limited counts are lost; stored alerts are not).
    pub fn shutdown(&self) {
        self.detector.abort();
        self.writer.abort();
        if let Some(p) = &self.pruner {
            p.abort();
        }
    }
}

/// Starts the detectors on `sink`'s bus, storing alerts in `store` and queueing their webhook
/// deliveries with `webhooks`.
pub fn spawn(
    sink: &AuditSink,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: DetectConfig,
    webhooks: Option<Arc<crate::webhooks::Webhooks>>,
) -> Detection {
    let metrics = Arc::new(DetectMetrics::default());
    let (tx, rx) = mpsc::channel(WRITE_QUEUE);
    let limiter = Limiter::new(config.alert_interval_secs, config.max_subjects);
    let pruner = (config.alert_retention_days > 0).then(|| {
        let retention = Duration::from_secs(config.alert_retention_days.saturating_mul(86_400));
        tokio::spawn(prune(store.clone(), clock.clone(), retention))
    });
    let task = Task {
        store: store.clone(),
        sub: sink.subscribe(),
        detector: Detector::new(config, clock.clone()),
        limiter,
        clock,
        tx,
        metrics: metrics.clone(),
    };
    let detector = tokio::spawn(task.run());
    let writer = tokio::spawn(write(store, rx, metrics.clone(), webhooks));
    Detection {
        metrics,
        detector,
        writer,
        pruner,
    }
}

struct Task {
    store: Arc<dyn Store>,
    sub: Subscription,
    detector: Detector,
    limiter: Limiter,
    clock: Arc<dyn Clock>,
    tx: mpsc::Sender<AlertUpsert>,
    metrics: Arc<DetectMetrics>,
}

impl Task {
    /// Marks the stored break-glass credentials (the first-start bootstrap ones, named
    /// `bootstrap` and created by `system`), so their use alerts after a restart too. A store
    /// error leaves the rule to learn from the next bootstrap event; it never stops the task.
    async fn mark_break_glass(&mut self) {
        let mut page = portcullis_store::PageRequest::first(portcullis_store::MAX_PAGE_LIMIT);
        // Bounded: global admins are few; stop after a fixed number of pages whatever.
        for _ in 0..100 {
            let got = match self
                .store
                .list_admin_credentials(&portcullis_core::tenant::TenantId::system(), &page)
                .await
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the break-glass credentials");
                    return;
                }
            };
            for c in &got.items {
                if is_break_glass(c) {
                    self.detector.add_break_glass(&c.id);
                }
            }
            match got.next {
                Some(next) => page.after = Some(next),
                None => return,
            }
        }
    }

    async fn run(mut self) {
        self.mark_break_glass().await;
        let mut tick = tokio::time::interval(DUE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.sub.recv() => {
                    let Some(event) = event else { break };
                    self.observe(&event);
                    // Then what is already queued (up to a batch), and a short pause before
                    // waiting again: under load the task wakes once per pause instead of once
                    // per event (each wake-up is a hand-off between threads that requests pay
                    // for). A full batch means it is behind: it yields instead of pausing.
                    let mut handled = 1;
                    while handled < BATCH_MAX {
                        let Some(event) = self.sub.try_recv() else { break };
                        self.observe(&event);
                        handled += 1;
                    }
                    self.metrics.events_lost.store(self.sub.missed(), Ordering::Relaxed);
                    self.metrics
                        .subjects
                        .store(self.detector.subjects() as u64, Ordering::Relaxed);
                    if handled < BATCH_MAX && self.sub.capacity() >= PAUSE_MIN_CAPACITY {
                        tokio::time::sleep(BATCH_PAUSE).await;
                    } else {
                        tokio::task::yield_now().await;
                    }
                }
                _ = tick.tick() => {
                    for update in self.limiter.due(self.clock.now()) {
                        self.send(update);
                    }
                }
            }
        }
    }

    fn observe(&mut self, event: &portcullis_core::audit::AuditEvent) {
        for finding in self.detector.observe(event) {
            let rule = finding.rule;
            match self.limiter.admit(finding) {
                Some(update) => self.send(update),
                None => {
                    self.metrics.suppressed[rule_index(rule)].fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn send(&self, update: Update) {
        let f = &update.finding;
        let counter = if f.shadow {
            &self.metrics.shadow
        } else {
            &self.metrics.fired
        };
        counter[rule_index(f.rule)].fetch_add(1, Ordering::Relaxed);
        let upsert = to_upsert(&update);
        if self.tx.try_send(upsert).is_err() {
            self.metrics.updates_dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The first-start bootstrap credential, as `server::bootstrap` mints it.
pub fn is_break_glass(c: &portcullis_store::AdminCredentialRecord) -> bool {
    c.name == "bootstrap" && c.created_by.as_deref() == Some("system")
}

/// The stored form of an update: its evidence as JSON.
fn to_upsert(u: &Update) -> AlertUpsert {
    let f = &u.finding;
    let evidence = serde_json::json!({
        "rule": f.rule.as_str(),
        "subject": f.subject.to_string(),
        "window_start": crate::state::rfc3339(f.window_start),
        "window_secs": f.window_secs,
        "count": f.count,
        "threshold": f.threshold,
        "baseline": f.baseline,
        "detail": f.detail,
        "findings": u.count,
        "sample_event_ids": f.samples,
    });
    AlertUpsert {
        id: uuid::Uuid::now_v7().to_string(),
        tenant: f.tenant.clone(),
        rule: f.rule.as_str().to_owned(),
        subject: f.subject.to_string(),
        shadow: f.shadow,
        evidence: evidence.to_string(),
        count: i64::try_from(u.count).unwrap_or(i64::MAX),
        seen_at: f.at,
    }
}

/// Deletes resolved alerts and delivered webhook deliveries older than `retention`, hourly.
async fn prune(store: Arc<dyn Store>, clock: Arc<dyn Clock>, retention: Duration) {
    let mut tick = tokio::time::interval(PRUNE_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let before = clock.now().saturating_sub(retention);
        match store.prune_alerts(before).await {
            Ok((0, 0)) => {}
            Ok((alerts, deliveries)) => {
                tracing::info!(
                    alerts,
                    deliveries,
                    "pruned resolved alerts and delivered webhooks"
                )
            }
            Err(e) => tracing::warn!(error = %e, "could not prune resolved alerts"),
        }
    }
}

async fn write(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<AlertUpsert>,
    metrics: Arc<DetectMetrics>,
    webhooks: Option<Arc<crate::webhooks::Webhooks>>,
) {
    while let Some(upsert) = rx.recv().await {
        match store.upsert_alert(&upsert).await {
            Err(e) => {
                metrics.updates_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, rule = %upsert.rule, "could not store an alert update");
            }
            Ok(alert) if !alert.shadow => {
                tracing::warn!(rule = %upsert.rule, tenant = %upsert.tenant, subject = %upsert.subject, "alert");
                if let Some(w) = &webhooks {
                    // The upsert opened the alert if it kept the id this update proposed.
                    w.enqueue(&alert, alert.id == upsert.id).await;
                }
            }
            Ok(_) => {}
        }
    }
}

#[cfg(test)]
mod tests;
