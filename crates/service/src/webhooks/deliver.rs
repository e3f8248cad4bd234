//! The dispatcher: claims due deliveries from the store under a lease, sends each to its
//! endpoint, and records the outcome (delivered; failed and due again after a backoff; or, after
//! the last attempt, dead). Any number of nodes may run it on one database: a claim is a lease,
//! so an attempt runs on one node at a time, and a node that dies mid-attempt leaves a lease that
//! expires and lets another node retry.
//!
//! What it must never do: follow a redirect (a 3xx is a failed attempt), use a proxy from the
//! environment, read a response body, connect to an address the URL rules refuse (the resolver
//! filters every lookup), or wait on a receiver anywhere but in its own task.

use std::sync::Arc;
use std::time::Duration;

use portcullis_store::{AttemptOutcome, WebhookDeliveryRecord};
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use tokio::task::{JoinHandle, JoinSet};

use super::{address, event, sign, Outcome, Webhooks, MAX_BODY};

/// Why an attempt failed, as recorded on the delivery (never a secret, never a body).
type Failure = (Option<u16>, String);

impl Webhooks {
    /// Starts the dispatcher on this node.
    pub fn spawn_dispatcher(self: &Arc<Self>) -> anyhow::Result<JoinHandle<()>> {
        let s = &self.settings;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(s.timeout_ms))
            .connect_timeout(Duration::from_millis(s.timeout_ms))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(!s.insecure_allow_http)
            .dns_resolver(std::sync::Arc::new(crate::outbound::FilteringResolver(
                crate::outbound::AddressPolicy {
                    private: s.insecure_allow_private_addresses,
                    loopback: false,
                },
            )))
            .user_agent(concat!("portcullis-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let this = self.clone();
        Ok(tokio::spawn(async move { this.run(http).await }))
    }

    async fn run(self: Arc<Self>, http: reqwest::Client) {
        let poll = Duration::from_millis(self.settings.poll_interval_ms);
        loop {
            // Claim until the queue has nothing due, then wait for a wake-up or the poll.
            loop {
                let now = self.clock.now();
                let lease_until = now.saturating_add(Duration::from_secs(self.settings.lease_secs));
                let claimed = match self
                    .store
                    .claim_webhook_deliveries(&self.node, now, lease_until, self.settings.batch)
                    .await
                {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not claim webhook deliveries");
                        break;
                    }
                };
                let full = claimed.len() == self.settings.batch as usize;
                let mut running = JoinSet::new();
                for d in claimed {
                    let this = self.clone();
                    let http = http.clone();
                    running.spawn(async move { this.attempt(&http, d).await });
                }
                while running.join_next().await.is_some() {}
                if !full {
                    break;
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    /// One attempt of one claimed delivery, and its outcome recorded.
    async fn attempt(&self, http: &reqwest::Client, d: WebhookDeliveryRecord) {
        let result = self.send(http, &d).await;
        let now = self.clock.now();
        let attempts = u32::try_from(d.attempts).unwrap_or(u32::MAX);
        let (outcome, counted, status, error) = match result {
            Ok(status) => (
                AttemptOutcome::Delivered,
                Outcome::Delivered,
                Some(status),
                None,
            ),
            Err((status, error)) if attempts >= self.settings.max_attempts => (
                AttemptOutcome::Dead,
                Outcome::DeadLettered,
                status,
                Some(error),
            ),
            Err((status, error)) => {
                let wait = self.settings.backoff(attempts, rand::random::<f64>());
                (
                    AttemptOutcome::Retry {
                        at: now.saturating_add(wait),
                    },
                    Outcome::Retried,
                    status,
                    Some(error),
                )
            }
        };
        match self
            .store
            .finish_webhook_attempt(&d.id, &self.node, &outcome, status, error.as_deref(), now)
            .await
        {
            Ok(true) => self.metrics.add(&d.rule, counted),
            Ok(false) => {
                tracing::warn!(delivery = %d.id, "webhook lease lost before the outcome was recorded")
            }
            Err(e) => {
                tracing::warn!(error = %e, delivery = %d.id, "could not record a webhook attempt")
            }
        }
        if let Some(error) = &error {
            tracing::info!(delivery = %d.id, endpoint = %d.endpoint_id, attempt = d.attempts, error, "webhook attempt failed");
        }
    }

    async fn send(
        &self,
        http: &reqwest::Client,
        d: &WebhookDeliveryRecord,
    ) -> Result<u16, Failure> {
        let fail = |s: &str| (None, s.to_owned());
        let endpoint = self
            .store
            .get_webhook_endpoint(&d.endpoint_tenant, &d.endpoint_id)
            .await
            .map_err(|_| fail("endpoint could not be read"))?
            .ok_or_else(|| fail("endpoint deleted"))?;
        // The rules may have tightened since the endpoint was registered.
        let url = address::validate_url(&endpoint.url, self.settings.allow()).map_err(fail)?;
        let secret = self
            .open_secret(&endpoint)
            .map_err(|_| fail("secret could not be opened (KEK)"))?;
        if d.payload.len() > MAX_BODY {
            return Err(fail("body too large"));
        }
        let timestamp = self.clock.now().as_secs();
        let signature = sign::signature(&secret, &d.id, timestamp, d.payload.as_bytes())
            .ok_or_else(|| fail("secret malformed"))?;
        let response = http
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static(event::CONTENT_TYPE))
            .header("webhook-id", d.id.as_str())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(d.payload.clone())
            .send()
            .await
            .map_err(|e| {
                let why = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "could not connect"
                } else {
                    "request failed"
                };
                fail(why)
            })?;
        let status = response.status();
        // The body is never read: dropping the response closes the connection.
        drop(response);
        if status.is_success() {
            Ok(status.as_u16())
        } else {
            Err((
                Some(status.as_u16()),
                format!("answered {}", status.as_u16()),
            ))
        }
    }
}
