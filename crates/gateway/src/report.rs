//! Sending this gateway's denials to a Portcullis server (`[audit.report]`), so that its
//! detectors see a failed-authentication spike at the edge as they see one at the token service.
//!
//! [`Reporter`] is the gateway's [`DenialHook`]: it receives the denial events the audit sampler
//! admits (at most `audit.max_denials_per_second`, plus one summary per reason and second) and
//! puts each on a bounded queue with `try_send`: the request path never waits, and a full queue
//! drops the event and counts it. One background task takes events off the queue in batches (at
//! most `batch_size`, sent when full or `interval` after the first event waited) and posts them
//! to `POST /v1/gateway/denials` with the gateway's service credential. A batch the server
//! refuses (4xx) is dropped at once; one it cannot take (unreachable, 5xx, 429) is tried again
//! `retries` times with growing pauses, then dropped. Every drop is counted by reason
//! (`portcullis_gateway_denial_reports_dropped_total`); while the task retries, new events wait
//! in the queue, which bounds memory.
//!
//! This module must never block or slow a request, never hold an unbounded number of events,
//! and never send a credential, header value or query string (a report holds exactly what the
//! local audit event holds, `portcullis_core::denial_report`).

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::denial_report::{WireBatch, WireReport};
use portcullis_core::secret::Secret;
use portcullis_core::tenant::TenantId;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::audit::{DenialHook, Denied};
use crate::metrics::{DropReason, ReportCounters};

/// `[audit.report]` checked and with its credential read ([`crate::config::ReportSection`]).
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// The full endpoint URL.
    pub url: String,
    pub token: Secret<String>,
    pub tenant: Option<TenantId>,
    pub queue_size: usize,
    pub batch_size: usize,
    pub interval: Duration,
    pub retries: u32,
}

/// The denial hook that queues reports for the server.
#[derive(Debug)]
pub struct Reporter {
    tx: mpsc::Sender<WireReport>,
    tenant: Option<String>,
    counters: Arc<ReportCounters>,
}

impl Reporter {
    fn queue(&self, report: WireReport) {
        if self.tx.try_send(report).is_err() {
            self.counters.drop_events(DropReason::QueueFull, 1);
        }
    }
}

impl DenialHook for Reporter {
    fn denied(&self, d: &Denied<'_>) {
        self.queue(WireReport::Denied {
            tenant: self.tenant.clone(),
            request_id: (!d.request_id.is_empty()).then(|| d.request_id.to_owned()),
            route: d.route.to_owned(),
            method: d.method.to_owned(),
            class: d.class.to_owned(),
            reason: d.reason.to_owned(),
            status: d.status,
            client_ip: d.client_ip.map(|ip| ip.to_canonical().to_string()),
            mode: d.mode.to_owned(),
        });
    }

    fn suppressed(&self, reason: &'static str, dropped: u64) {
        self.queue(WireReport::Suppressed {
            tenant: self.tenant.clone(),
            reason: reason.to_owned(),
            dropped,
        });
    }
}

/// Starts reporting: the hook to give the gateway and the sending task (abort it to stop).
pub fn start(
    config: ReportConfig,
    counters: Arc<ReportCounters>,
) -> Result<(Arc<Reporter>, JoinHandle<()>), reqwest::Error> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(5))
        // The credential goes only to the URL the operator wrote, as for every outbound fetch.
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let (tx, rx) = mpsc::channel(config.queue_size.max(1));
    counters.watch_queue(&tx);
    let reporter = Arc::new(Reporter {
        tx,
        tenant: config.tenant.as_ref().map(|t| t.as_str().to_owned()),
        counters: counters.clone(),
    });
    let task = tokio::spawn(run(rx, config, counters, client));
    Ok((reporter, task))
}

async fn run(
    mut rx: mpsc::Receiver<WireReport>,
    config: ReportConfig,
    counters: Arc<ReportCounters>,
    client: reqwest::Client,
) {
    while let Some(first) = rx.recv().await {
        let mut events = Vec::with_capacity(config.batch_size);
        events.push(first);
        let deadline = tokio::time::Instant::now() + config.interval;
        while events.len() < config.batch_size {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(r)) => events.push(r),
                Ok(None) | Err(_) => break,
            }
        }
        send(&client, &config, &counters, WireBatch { events }).await;
    }
}

/// The pause before retry `attempt` (1-based): 0.5s, 1s, 2s, ... at most 8s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.saturating_sub(1).min(4)))
}

async fn send(
    client: &reqwest::Client,
    config: &ReportConfig,
    counters: &ReportCounters,
    batch: WireBatch,
) {
    let n = batch.events.len() as u64;
    for attempt in 0..=config.retries {
        if attempt > 0 {
            tokio::time::sleep(backoff(attempt)).await;
        }
        let answer = client
            .post(&config.url)
            .bearer_auth(config.token.expose())
            .json(&batch)
            .send()
            .await;
        match answer {
            Ok(r) if r.status().is_success() => {
                counters.add_sent(n);
                return;
            }
            Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
                tracing::warn!(
                    status = r.status().as_u16(),
                    "the server refused a batch of denial reports (does the credential have \
                     report_denials for these tenants?)"
                );
                counters.drop_events(DropReason::Refused, n);
                return;
            }
            Ok(r) => tracing::debug!(
                status = r.status().as_u16(),
                attempt,
                "denial report failed"
            ),
            Err(e) => tracing::debug!(error = %e, attempt, "denial report failed"),
        }
    }
    counters.drop_events(DropReason::Unreachable, n);
}

#[cfg(test)]
mod tests {
    /// Every class the gateway can deny with is one `serve` accepts in a report (core's
    /// `denial_report::CLASSES`): a class added to the verify library and not to the report
    /// format would make whole batches refused.
    #[test]
    fn every_denial_class_is_one_a_report_may_carry() {
        use portcullis_core::denial_report::CLASSES;
        for class in portcullis_verify::DenialClass::ALL {
            assert!(CLASSES.contains(&class.name()), "{class:?}");
        }
        // The gateway's own class for a missing client certificate.
        assert!(CLASSES.contains(&"access_denied"));
    }

    use super::*;

    fn config(url: String, queue_size: usize) -> ReportConfig {
        ReportConfig {
            url,
            token: Secret::new("pcl_adm_test".into()),
            tenant: None,
            queue_size,
            batch_size: 10,
            interval: Duration::from_millis(100),
            retries: 0,
        }
    }

    fn denied() -> Denied<'static> {
        Denied {
            request_id: "r1",
            route: "orders",
            method: "GET",
            class: "invalid_token",
            reason: "signature_invalid",
            status: 401,
            client_ip: Some("::ffff:192.0.2.7".parse().expect("ip")),
            mode: "proxy",
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts_without_waiting() {
        let (tx, mut rx) = mpsc::channel(2);
        let counters = Arc::new(ReportCounters::default());
        assert_eq!(counters.queued(), 0, "no queue watched yet");
        counters.watch_queue(&tx);
        let r = Reporter {
            tx,
            tenant: Some("acme".into()),
            counters: counters.clone(),
        };
        for _ in 0..5 {
            r.denied(&denied());
        }
        r.suppressed("token_expired", 7);
        assert_eq!(counters.dropped(DropReason::QueueFull), 4);
        assert_eq!(counters.queued(), 2, "the gauge shows the full queue");
        // What was queued is the wire report of the local event, v4-mapped address unmapped.
        let Ok(WireReport::Denied {
            tenant,
            client_ip,
            class,
            ..
        }) = rx.try_recv()
        else {
            panic!("a denial")
        };
        assert_eq!(
            (tenant.as_deref(), client_ip.as_deref(), class.as_str()),
            (Some("acme"), Some("192.0.2.7"), "invalid_token")
        );
        assert!(rx.try_recv().is_ok());
        assert!(rx.try_recv().is_err(), "bounded at two");
        assert_eq!(counters.queued(), 0, "drained");
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(2));
        assert_eq!(backoff(9), Duration::from_secs(8));
    }

    #[tokio::test]
    async fn a_server_that_is_down_costs_counted_drops() {
        // A port nothing listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let counters = Arc::new(ReportCounters::default());
        let (r, task) = start(
            config(format!("http://127.0.0.1:{port}/v1/gateway/denials"), 100),
            counters.clone(),
        )
        .expect("start");
        for _ in 0..3 {
            r.denied(&denied());
        }
        for _ in 0..200 {
            if counters.dropped(DropReason::Unreachable) == 3 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(counters.dropped(DropReason::Unreachable), 3);
        assert_eq!(counters.sent(), 0);
        task.abort();
    }
}
