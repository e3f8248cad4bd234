//! The audit sink: request handlers hand events to a bounded in-memory queue and return at once;
//! one writer task stores them in batches (one transaction per batch). The same events are
//! published, in the order they were recorded, to in-process subscribers ([`AuditSink::subscribe`]).
//!
//! The writer wakes when the flush interval ends or when a full batch is waiting, never per
//! event: on a busy endpoint a wake-up per event (a task poll and often a cross-thread unpark)
//! cost more than writing the event.
//!
//! Crash-loss bound: an event is written at most `audit.flush_interval_ms` (default 200 ms) after
//! it is recorded, so `kill -9` loses at most the events of that last interval. A graceful
//! shutdown (SIGTERM/SIGINT) drains the queue before exit and loses nothing. If the queue is full
//! (database down or far behind), new events are dropped rather than blocking requests; drops are
//! counted, logged and recorded as an `audit.dropped` event once the writer catches up.
//!
//! Subscribers (detectors and alerts, issue 19) read a bounded broadcast: publishing never waits
//! for them. A subscriber that falls more than `audit.subscriber_capacity` events behind loses
//! the oldest ones; its [`Subscription`] skips to the oldest event still held, counts what it
//! missed ([`Subscription::missed`], and [`AuditSink::subscriber_lag`] over all subscribers) and
//! carries on. So a slow detector costs itself events, never a request its latency. With no
//! subscriber, publishing costs one atomic load.
//!
//! This module must never put a secret in an event: events carry credential ids only, and every
//! event is redacted (`AuditEvent::redact_secrets`) before it is queued or published, so a
//! subscriber sees the same redacted events storage does (and also those the full storage queue
//! dropped).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::audit::{Action, Actor, AuditEvent, Outcome, Reason};
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Clock;
use portcullis_store::Store;
use tokio::sync::{broadcast, mpsc, oneshot, Notify};
use tokio::task::JoinHandle;

use serde::{Deserialize, Serialize};

/// The `[audit]` configuration section.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Events written per database transaction at most.
    pub batch_size: usize,
    /// Longest an event waits in memory before it is written. This bounds what a crash loses.
    pub flush_interval_ms: u64,
    /// Events buffered in memory; beyond it new events are dropped and counted, never blocking
    /// a request.
    pub queue_capacity: usize,
    /// Events an in-process subscriber may fall behind before it loses the oldest (counted).
    pub subscriber_capacity: usize,
    /// How often the audit chain's head is checkpointed (signed with the signing key).
    pub checkpoint_interval_secs: u64,
    /// Events older than this many days are pruned (after the chain verified, up to a
    /// checkpoint); 0 keeps the audit log forever.
    pub retention_days: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self {
            batch_size: 256,
            flush_interval_ms: 200,
            queue_capacity: 65_536,
            subscriber_capacity: 4_096,
            checkpoint_interval_secs: 300,
            retention_days: 0,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<AuditEvent>,
    dropped: Arc<AtomicU64>,
    clock: Arc<dyn Clock>,
    /// Wakes the writer early when a full batch is queued.
    batch_ready: Arc<Notify>,
    batch_size: usize,
    bus: Bus,
}

/// The in-process side of the sink: a bounded broadcast of redacted events.
#[derive(Debug, Clone)]
struct Bus {
    tx: broadcast::Sender<Arc<AuditEvent>>,
    /// Events a subscriber may fall behind before it loses the oldest.
    capacity: usize,
    /// Events lost by lagging subscribers, summed over all of them.
    lagged: Arc<AtomicU64>,
}

impl Bus {
    fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        let (tx, _) = broadcast::channel(capacity);
        Self {
            tx,
            capacity,
            lagged: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Never waits: a full channel overwrites its oldest event, which lagging receivers miss.
    fn publish(&self, event: &AuditEvent) {
        if self.tx.receiver_count() > 0 {
            // An error only means the last subscriber left meanwhile.
            let _ = self.tx.send(Arc::new(event.clone()));
        }
    }
}

/// One in-process subscriber's view of the audit events: every event recorded after
/// [`AuditSink::subscribe`], redacted, in the order it was recorded, except those it lost by
/// falling more than `audit.subscriber_capacity` behind (counted in [`Subscription::missed`]).
///
/// Read it with [`Subscription::recv`] or as a `Stream` ([`Subscription::into_stream`]). It
/// ends when every sink handle is gone (the server shut down).
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Arc<AuditEvent>>,
    lagged: Arc<AtomicU64>,
    missed: u64,
    capacity: usize,
}

impl Subscription {
    /// The next event; `None` once the sink is gone. Lost events are skipped and counted.
    pub async fn recv(&mut self) -> Option<Arc<AuditEvent>> {
        loop {
            match self.rx.recv().await {
                Ok(e) => return Some(e),
                Err(broadcast::error::RecvError::Lagged(n)) => self.note_lag(n),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The next event if one is waiting, without waiting.
    pub fn try_recv(&mut self) -> Option<Arc<AuditEvent>> {
        loop {
            match self.rx.try_recv() {
                Ok(e) => return Some(e),
                Err(broadcast::error::TryRecvError::Lagged(n)) => self.note_lag(n),
                Err(_) => return None,
            }
        }
    }

    /// Events this subscriber may fall behind before it loses the oldest
    /// (`audit.subscriber_capacity`).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Events this subscriber lost by lagging, so far.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// The events as a `Stream` (lost events are skipped and counted in
    /// [`AuditSink::subscriber_lag`]).
    pub fn into_stream(self) -> impl tokio_stream::Stream<Item = Arc<AuditEvent>> + Send {
        let lagged = self.lagged;
        tokio_stream::StreamExt::filter_map(
            tokio_stream::wrappers::BroadcastStream::new(self.rx),
            move |item| match item {
                Ok(e) => Some(e),
                Err(tokio_stream::wrappers::errors::BroadcastStreamRecvError::Lagged(n)) => {
                    lagged.fetch_add(n, Ordering::Relaxed);
                    None
                }
            },
        )
    }

    fn note_lag(&mut self, n: u64) {
        self.missed += n;
        let total = self.lagged.fetch_add(n, Ordering::Relaxed) + n;
        if total.is_power_of_two() {
            tracing::warn!(
                lagged = total,
                "an audit subscriber fell behind and lost events"
            );
        }
    }
}

#[derive(Debug)]
pub struct AuditWriter {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

/// What an event is about, filled in by the caller.
#[derive(Debug, Clone)]
pub struct EventDraft {
    pub tenant: TenantId,
    pub actor: Actor,
    pub credential_id: Option<String>,
    pub action: Action,
    pub outcome: Outcome,
    pub reason: Option<Reason>,
    pub target: Option<String>,
}

/// Who sent the request, as far as the audit log cares.
#[derive(Debug, Clone, Default)]
pub struct RequestOrigin {
    pub request_id: Option<String>,
    /// The client's address as the HTTP edge resolved it (`extract::origin`): the connecting
    /// peer, or behind a trusted proxy the address it forwarded.
    pub client_ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl AuditSink {
    /// Records an event without waiting for storage.
    pub fn record(&self, draft: EventDraft, origin: &RequestOrigin) {
        let mut event = AuditEvent {
            id: uuid::Uuid::now_v7().to_string(),
            occurred_at: self.clock.now(),
            tenant: draft.tenant,
            actor: draft.actor,
            credential_id: draft.credential_id,
            client_ip: origin.client_ip.map(|ip| ip.to_string()),
            user_agent: origin
                .user_agent
                .as_deref()
                .map(AuditEvent::truncate_user_agent),
            action: draft.action,
            outcome: draft.outcome,
            reason: draft.reason,
            request_id: origin.request_id.clone(),
            target: draft.target,
        };
        event.redact_secrets();
        self.bus.publish(&event);
        if self.tx.try_send(event).is_err() {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::error!(dropped = n, "audit queue full: dropping events");
            }
            self.batch_ready.notify_one();
            return;
        }
        let queued = self.tx.max_capacity() - self.tx.capacity();
        if queued >= self.batch_size {
            // Cheap when a wake-up is already pending: Notify keeps at most one permit.
            self.batch_ready.notify_one();
        }
    }

    /// Events dropped so far (queue full or storage unavailable).
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Events waiting in the queue now, and the queue's capacity.
    pub fn queued(&self) -> (usize, usize) {
        let max = self.tx.max_capacity();
        (max - self.tx.capacity(), max)
    }

    /// A new in-process subscriber: it receives every event recorded from now on (including
    /// the writer's `audit.dropped` reports), redacted, in order, and never slows the request
    /// path (see the module docs for what happens when it lags). For detectors: run one task
    /// per subscriber and keep per-event work small; a subscriber that needs storage should
    /// batch, as the writer does.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.bus.tx.subscribe(),
            lagged: self.bus.lagged.clone(),
            missed: 0,
            capacity: self.bus.capacity,
        }
    }

    /// Events lost by lagging subscribers, summed over all of them since start.
    pub fn subscriber_lag(&self) -> u64 {
        self.bus.lagged.load(Ordering::Relaxed)
    }
}

pub fn spawn(
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    config: &AuditConfig,
) -> (AuditSink, AuditWriter) {
    let (tx, rx) = mpsc::channel(config.queue_capacity);
    let (stop_tx, stop_rx) = oneshot::channel();
    let dropped = Arc::new(AtomicU64::new(0));
    let batch_ready = Arc::new(Notify::new());
    let bus = Bus::new(config.subscriber_capacity);
    let sink = AuditSink {
        tx,
        dropped: dropped.clone(),
        clock: clock.clone(),
        batch_ready: batch_ready.clone(),
        batch_size: config.batch_size,
        bus: bus.clone(),
    };
    let writer = Writer {
        store,
        clock,
        rx,
        batch_ready,
        dropped,
        reported_drops: 0,
        batch_size: config.batch_size,
        interval: Duration::from_millis(config.flush_interval_ms),
        bus,
    };
    let task = tokio::spawn(writer.run(stop_rx));
    (
        sink,
        AuditWriter {
            stop: stop_tx,
            task,
        },
    )
}

impl AuditWriter {
    /// Writes everything queued so far, then stops.
    pub async fn shutdown(self) {
        let _ = self.stop.send(());
        if let Err(e) = self.task.await {
            tracing::error!(error = %e, "audit writer failed during shutdown");
        }
    }
}

struct Writer {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    rx: mpsc::Receiver<AuditEvent>,
    batch_ready: Arc<Notify>,
    dropped: Arc<AtomicU64>,
    reported_drops: u64,
    batch_size: usize,
    interval: Duration,
    bus: Bus,
}

impl Writer {
    async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let mut batch = Vec::with_capacity(self.batch_size);
        let mut stopping = false;
        while !stopping {
            // Sleep until the interval ends or a full batch waits; a stop request ends the wait
            // at once, so shutdown never sits out the interval.
            tokio::select! {
                _ = &mut stop => stopping = true,
                _ = self.batch_ready.notified() => {}
                _ = tokio::time::sleep(self.interval) => {}
            }
            // Write what is queued now, a batch at a time; senders may still exist, so take
            // only what is there.
            loop {
                while batch.len() < self.batch_size {
                    match self.rx.try_recv() {
                        Ok(e) => batch.push(e),
                        Err(_) => break,
                    }
                }
                let full = batch.len() >= self.batch_size;
                self.write(&mut batch).await;
                if !full {
                    break;
                }
            }
        }
    }

    async fn write(&mut self, batch: &mut Vec<AuditEvent>) {
        self.note_drops(batch);
        if batch.is_empty() {
            return;
        }
        let mut delay = Duration::from_millis(50);
        for attempt in 1..=5 {
            match self.store.append_audit_events(batch).await {
                Ok(()) => {
                    batch.clear();
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, events = batch.len(), "audit write failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
            }
        }
        let n = batch.len() as u64;
        self.dropped.fetch_add(n, Ordering::Relaxed);
        tracing::error!(events = n, "audit batch could not be written; dropped");
        batch.clear();
    }

    /// Turns newly counted drops into one event, so the log itself shows its gaps.
    fn note_drops(&mut self, batch: &mut Vec<AuditEvent>) {
        let total = self.dropped.load(Ordering::Relaxed);
        if total > self.reported_drops {
            let new = total - self.reported_drops;
            self.reported_drops = total;
            let report = AuditEvent {
                id: uuid::Uuid::now_v7().to_string(),
                occurred_at: self.clock.now(),
                tenant: TenantId::system(),
                actor: Actor::system(),
                credential_id: None,
                client_ip: None,
                user_agent: None,
                action: Action::AuditDropped,
                outcome: Outcome::Failure,
                reason: Some(Reason::with_detail("queue_full_or_store_unavailable", new)),
                request_id: None,
                target: None,
            };
            self.bus.publish(&report);
            batch.push(report);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_core::time::{ManualClock, Timestamp};
    use portcullis_store::{AuditQuery, SqliteStore};

    fn draft(action: &'static str) -> EventDraft {
        EventDraft {
            tenant: TenantId::system(),
            actor: Actor::system(),
            credential_id: None,
            action: Action::parse(action),
            outcome: Outcome::Success,
            reason: None,
            target: None,
        }
    }

    async fn all_events(store: &SqliteStore) -> Vec<AuditEvent> {
        use portcullis_store::AuditStore;
        let mut query = AuditQuery {
            tenant: TenantId::system(),
            since: None,
            until: None,
            action: None,
            page: portcullis_store::PageRequest::first(portcullis_store::MAX_PAGE_LIMIT),
        };
        let mut events = Vec::new();
        loop {
            let page = store.query_audit_events(&query).await.expect("query");
            events.extend(page.items);
            match page.next {
                Some(next) => query.page.after = Some(next),
                None => return events,
            }
        }
    }

    /// A sink over a fresh SQLite store. Keep the `TempDir` alive for the test's duration.
    async fn sink_with(
        batch_size: usize,
        flush_interval_ms: u64,
        queue_capacity: usize,
    ) -> (tempfile::TempDir, Arc<SqliteStore>, AuditSink, AuditWriter) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            SqliteStore::open(&dir.path().join("db"))
                .await
                .expect("open"),
        );
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp::from_secs(5)));
        let config = AuditConfig {
            batch_size,
            flush_interval_ms,
            queue_capacity,
            ..AuditConfig::default()
        };
        let (sink, writer) = spawn(store.clone(), clock, &config);
        (dir, store, sink, writer)
    }

    #[tokio::test]
    async fn shutdown_flushes_everything_recorded() {
        // Long interval: only shutdown can explain the events being written.
        let (_dir, store, sink, writer) = sink_with(7, 60_000, 10_000).await;
        for _ in 0..1_000 {
            sink.record(draft("test.event"), &RequestOrigin::default());
        }
        writer.shutdown().await;
        assert_eq!(all_events(&store).await.len(), 1_000);
        assert_eq!(sink.dropped(), 0);
    }

    #[tokio::test]
    async fn events_are_written_within_the_flush_interval_without_shutdown() {
        let (_dir, store, sink, writer) = sink_with(100, 20, 100).await;
        sink.record(draft("one"), &RequestOrigin::default());
        let mut found = false;
        for _ in 0..200 {
            if !all_events(&store).await.is_empty() {
                found = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(found, "event never reached the store");
        writer.shutdown().await;
    }

    #[tokio::test]
    async fn a_full_batch_is_written_without_waiting_for_the_interval() {
        // A minute-long interval: only a full batch can explain a write within the test.
        let (_dir, store, sink, writer) = sink_with(10, 60_000, 1_000).await;
        for _ in 0..25 {
            sink.record(draft("busy"), &RequestOrigin::default());
        }
        let mut written = 0;
        for _ in 0..500 {
            written = all_events(&store).await.len();
            if written >= 20 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(written >= 20, "only {written} of two full batches written");
        writer.shutdown().await;
        assert_eq!(
            all_events(&store).await.len(),
            25,
            "shutdown writes the rest"
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_reports_instead_of_blocking() {
        let (_dir, store, sink, writer) = sink_with(10, 60_000, 5).await;
        // The writer may take up to one batch off the queue concurrently, so at least
        // 100 - 5 - 10 events have nowhere to go.
        for _ in 0..100 {
            sink.record(draft("flood"), &RequestOrigin::default());
        }
        let dropped = sink.dropped();
        assert!(dropped >= 85, "dropped {dropped}");
        writer.shutdown().await;
        let events = all_events(&store).await;
        let report = events
            .iter()
            .find(|e| e.action == "audit.dropped")
            .expect("drop report event");
        assert_eq!(
            report.reason.as_deref(),
            Some(&*format!("queue_full_or_store_unavailable:{dropped}"))
        );
        assert_eq!(events.len() as u64, 100 - dropped + 1);
    }

    #[tokio::test]
    async fn a_subscriber_sees_every_event_in_order_as_stored() {
        let (_dir, store, sink, writer) = sink_with(10, 60_000, 1_000).await;
        let mut sub = sink.subscribe();
        for i in 0..50 {
            let mut d = draft("oauth.token.issue");
            d.target = Some(format!("t{i}"));
            sink.record(d, &RequestOrigin::default());
        }
        let mut seen = Vec::new();
        for _ in 0..50 {
            let e = sub.recv().await.expect("event");
            assert_eq!(e.action, Action::OAuthTokenIssue);
            seen.push(e.target.clone().expect("target"));
        }
        let expected: Vec<String> = (0..50).map(|i| format!("t{i}")).collect();
        assert_eq!(seen, expected);
        assert_eq!(sub.missed(), 0);
        writer.shutdown().await;
        // What the subscriber got is what storage holds.
        let stored = all_events(&store).await;
        assert_eq!(stored.len(), 50);
        assert!(stored.iter().all(|e| e.action == Action::OAuthTokenIssue));
    }

    #[tokio::test]
    async fn a_subscriber_receives_redacted_events() {
        let (_dir, _store, sink, writer) = sink_with(10, 60_000, 1_000).await;
        let mut sub = sink.subscribe();
        let secret = portcullis_core::credential::Credential::generate(
            portcullis_core::credential::CredentialKind::ClientSecret,
            portcullis_core::credential::Environment::live(),
            &mut rand::thread_rng(),
        );
        let mut d = draft("oauth.client_auth");
        d.actor = Actor::client(secret.expose());
        d.reason = Some(Reason::with_detail("bad", secret.expose()));
        d.target = Some(secret.expose().to_owned());
        sink.record(d, &RequestOrigin::default());
        let e = sub.recv().await.expect("event");
        let json = serde_json::to_string(&*e).expect("json");
        assert!(!json.contains(secret.expose()), "{json}");
        assert!(json.contains("[redacted]"), "{json}");
        writer.shutdown().await;
    }

    #[tokio::test]
    async fn a_lagging_subscriber_loses_counted_events_and_never_blocks_recording() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            SqliteStore::open(&dir.path().join("db"))
                .await
                .expect("open"),
        );
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(Timestamp::from_secs(5)));
        let config = AuditConfig {
            batch_size: 50,
            flush_interval_ms: 60_000,
            queue_capacity: 10_000,
            subscriber_capacity: 8,
            ..AuditConfig::default()
        };
        let (sink, writer) = spawn(store.clone(), clock, &config);
        let mut slow = sink.subscribe();
        // Never read while recording: if publishing waited for it, this would hang.
        for i in 0..100 {
            let mut d = draft("api_key.verify");
            d.target = Some(i.to_string());
            sink.record(d, &RequestOrigin::default());
        }
        // It keeps the newest 8, in order, and counts the 92 it lost.
        let mut kept = Vec::new();
        while let Some(e) = slow.try_recv() {
            kept.push(e.target.clone().expect("target"));
        }
        let newest: Vec<String> = (92..100).map(|i: i32| i.to_string()).collect();
        assert_eq!(kept, newest);
        assert_eq!(slow.missed(), 92);
        assert_eq!(sink.subscriber_lag(), 92);
        // Storage lost nothing.
        writer.shutdown().await;
        assert_eq!(all_events(&store).await.len(), 100);
        assert_eq!(sink.dropped(), 0);
    }

    #[tokio::test]
    async fn drop_reports_reach_subscribers_and_the_stream_ends_with_the_sink() {
        use tokio_stream::StreamExt;
        let (_dir, _store, sink, writer) = sink_with(10, 60_000, 5).await;
        let sub = sink.subscribe();
        for _ in 0..100 {
            sink.record(draft("flood"), &RequestOrigin::default());
        }
        writer.shutdown().await;
        drop(sink);
        let events: Vec<_> = sub.into_stream().collect().await;
        assert_eq!(events.len(), 101, "100 recorded and one drop report");
        let report = events.last().expect("report");
        assert_eq!(report.action, Action::AuditDropped);
        assert_eq!(
            report.reason.as_ref().map(Reason::code),
            Some("queue_full_or_store_unavailable")
        );
    }
}
