//! The verifier's copy of the revocation log, and the task that keeps it current by following
//! the server's resumable stream (`GET /v1/revocations/stream`, Server-Sent Events).
//!
//! The task resumes from the last position it applied (`Last-Event-ID`), so a disconnect loses
//! nothing; it reconnects with capped exponential backoff and jitter. Every event or heartbeat
//! counts as contact. When there has been no contact for longer than the staleness bound (or
//! the first catch-up has not finished), [`Revocations::check_fresh`] refuses, so verification
//! fails closed; `insecure_allow_stale` keeps serving instead, logging loudly.
//!
//! This module must never treat a failed or partial read as "nothing is revoked".

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use portcullis_core::revocation::{
    Applied, RevocationRecord, RevocationSet, RevokedBy, TokenIdentity, FEED_PROTOCOL_VERSION,
    FEED_VERSION_HEADER,
};
use portcullis_core::secret::Secret;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{Clock, Timestamp};
use rand::Rng;
use serde::Deserialize;

use crate::denial::Reason;
use crate::sse;

/// Where revocations come from.
#[derive(Debug, Clone)]
pub enum RevocationSource {
    /// Follow a Portcullis server's revocation stream.
    Feed(FeedConfig),
    /// The embedding program applies records itself ([`Revocations::apply`]) and reports
    /// contact ([`Revocations::touch`]); staleness rules still apply.
    Embedded { staleness_bound: Duration },
    /// No revocation checks at all: revoked credentials stay valid until they expire. Only for
    /// development; logged loudly at start.
    InsecureNone,
}

#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// The server's base URL, e.g. `https://auth.example.com`.
    pub base_url: String,
    /// A Portcullis admin token allowed to read the feed.
    pub token: Secret<String>,
    /// Longest time without contact before verification fails closed (default 30 s).
    pub staleness_bound: Duration,
    /// Keep verifying on a stale feed (revocations may be missed). Logged loudly.
    pub insecure_allow_stale: bool,
    /// Allow plain HTTP to a non-loopback server.
    pub insecure_allow_http: bool,
    /// A stream that sends nothing for this long is dropped and reopened (default 10 s; the
    /// server sends heartbeats every second).
    pub idle_timeout: Duration,
}

impl FeedConfig {
    pub fn new(base_url: impl Into<String>, token: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            token: Secret::new(token.into()),
            staleness_bound: Duration::from_secs(30),
            insecure_allow_stale: false,
            insecure_allow_http: false,
            idle_timeout: Duration::from_secs(10),
        }
    }
}

/// What a record asks the verifier's caches to drop.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CacheDrop<'a> {
    /// Everything cached for this API key id.
    ApiKey(&'a str),
    /// Everything cached for this tenant's API keys.
    Tenant(&'a TenantId),
    /// This signing key (by `kid`) and every cached verification of a token it signed.
    SigningKey(&'a str),
}

type DropHook = Box<dyn Fn(CacheDrop<'_>) + Send + Sync>;

/// Revocation state shared by every verification.
pub struct Revocations {
    set: RwLock<RevocationSet>,
    clock: Arc<dyn Clock>,
    /// Last contact with the feed, ms since the epoch (0 = never).
    last_contact: AtomicI64,
    caught_up: AtomicBool,
    /// `None`: checks disabled (`InsecureNone`).
    staleness_bound: Option<Duration>,
    allow_stale: bool,
    last_stale_warning: AtomicI64,
    on_drop: RwLock<Option<DropHook>>,
    connected: AtomicBool,
}

impl std::fmt::Debug for Revocations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Revocations")
            .field("position", &self.position())
            .field("caught_up", &self.caught_up.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum StreamError {
    /// The server's log ends before our position.
    PastEnd,
    Other(String),
}

impl From<String> for StreamError {
    fn from(e: String) -> Self {
        Self::Other(e)
    }
}

/// Refuses a feed of another protocol version: its records may mean something this verifier
/// would misread, so it keeps retrying (and fails closed once stale) instead. A server that
/// names no version predates versioning and speaks version 1.
fn check_protocol(value: Option<&reqwest::header::HeaderValue>) -> Result<(), String> {
    let Some(value) = value else {
        return Ok(());
    };
    match value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
    {
        Some(FEED_PROTOCOL_VERSION) => Ok(()),
        _ => {
            let shown = String::from_utf8_lossy(value.as_bytes()).into_owned();
            tracing::error!(
                server = %shown,
                ours = FEED_PROTOCOL_VERSION,
                "the revocation feed speaks another protocol version; upgrade this verifier (verification fails closed meanwhile)"
            );
            Err(format!(
                "unsupported revocation feed protocol version {shown:?}"
            ))
        }
    }
}

#[derive(Debug, Deserialize)]
struct Heartbeat {
    position: i64,
}

impl Revocations {
    pub fn new(
        clock: Arc<dyn Clock>,
        staleness_bound: Option<Duration>,
        allow_stale: bool,
    ) -> Self {
        Self {
            set: RwLock::new(RevocationSet::new()),
            clock,
            last_contact: AtomicI64::new(0),
            caught_up: AtomicBool::new(false),
            staleness_bound,
            allow_stale,
            last_stale_warning: AtomicI64::new(0),
            on_drop: RwLock::new(None),
            connected: AtomicBool::new(false),
        }
    }

    /// Registers what to call when a record makes cached state wrong (cache invalidation).
    pub(crate) fn on_drop(&self, hook: DropHook) {
        *self.on_drop.write().unwrap_or_else(|p| p.into_inner()) = Some(hook);
    }

    /// The position of the last record applied.
    pub fn position(&self) -> i64 {
        self.set
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .position()
    }

    /// Whether the feed is currently connected (for metrics and readiness).
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    /// Milliseconds since the last contact, if there was any (feed lag for metrics).
    pub fn lag(&self) -> Option<Duration> {
        let at = self.last_contact.load(Ordering::Relaxed);
        (at > 0).then(|| {
            let now = self.clock.now().as_millis();
            Duration::from_millis(u64::try_from(now - at).unwrap_or(0))
        })
    }

    /// Applies one record from the log.
    pub fn apply(&self, r: &RevocationRecord) {
        let applied = self.set.write().unwrap_or_else(|p| p.into_inner()).apply(r);
        let hook = self.on_drop.read().unwrap_or_else(|p| p.into_inner());
        if let Some(hook) = &*hook {
            match &applied {
                Applied::ApiKey(id) => hook(CacheDrop::ApiKey(id)),
                Applied::Tenant(tenant) => hook(CacheDrop::Tenant(tenant)),
                Applied::SigningKey(kid) => hook(CacheDrop::SigningKey(kid)),
                // A newer server's kind: its backend knows what it means for an API key.
                Applied::Unknown(id) => hook(CacheDrop::ApiKey(id)),
                Applied::Duplicate | Applied::Recorded => {}
            }
        }
    }

    /// Records contact with the feed, having received everything up to `position`.
    pub fn touch(&self, position: i64) {
        let now = self.clock.now();
        {
            let mut set = self.set.write().unwrap_or_else(|p| p.into_inner());
            set.advance_to(position);
            set.prune(now);
        }
        self.last_contact.store(now.as_millis(), Ordering::Relaxed);
        self.caught_up.store(true, Ordering::Relaxed);
    }

    fn contact(&self) {
        self.last_contact
            .store(self.clock.now().as_millis(), Ordering::Relaxed);
    }

    /// Refuses when the feed is stale (see module docs).
    pub fn check_fresh(&self) -> Result<(), Reason> {
        let Some(bound) = self.staleness_bound else {
            return Ok(());
        };
        let now = self.clock.now();
        let last = Timestamp::from_millis(self.last_contact.load(Ordering::Relaxed));
        let fresh = self.caught_up.load(Ordering::Relaxed) && now.saturating_sub(bound) <= last;
        if fresh {
            return Ok(());
        }
        if self.allow_stale {
            let prev = self.last_stale_warning.load(Ordering::Relaxed);
            if now.as_millis() - prev >= 10_000 {
                self.last_stale_warning
                    .store(now.as_millis(), Ordering::Relaxed);
                tracing::error!(
                    last_contact_ms = last.as_millis(),
                    "INSECURE: revocation feed is stale and insecure_allow_stale is set; revoked credentials may be accepted"
                );
            }
            return Ok(());
        }
        Err(Reason::RevocationFeedStale)
    }

    pub fn token_revoked(&self, t: &TokenIdentity<'_>) -> Option<RevokedBy> {
        self.set
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .token_revoked(t)
    }

    pub fn api_key_revoked(&self, key_id: &str) -> bool {
        self.set
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .api_key_revoked(key_id)
    }

    /// Starts the task that follows the server's stream. It runs until the runtime stops.
    /// Starts the follower task. Abort the returned handle to stop it (the verifier does when
    /// it is dropped).
    pub fn spawn_feed(
        self: &Arc<Self>,
        cfg: FeedConfig,
    ) -> Result<tokio::task::AbortHandle, crate::ConfigError> {
        let url = reqwest::Url::parse(&cfg.base_url)
            .and_then(|u| u.join("v1/revocations/stream"))
            .map_err(|e| crate::ConfigError(format!("revocation feed URL: {e}")))?;
        if !crate::fetch::url_allowed(&url, cfg.insecure_allow_http) {
            return Err(crate::ConfigError(
                "revocation feed URL must be https (or loopback http, or insecure_allow_http)"
                    .into(),
            ));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| crate::ConfigError(format!("revocation feed client: {e}")))?;
        let me = Arc::clone(self);
        Ok(tokio::spawn(async move { me.follow(client, url, cfg).await }).abort_handle())
    }

    /// Forgets everything applied and starts again from position 0. Used when the server says
    /// our position is past the end of its log (its database was restored or replaced): the
    /// state we hold may not match its log any more. Verification fails closed (not caught up)
    /// until the replay finishes.
    pub fn reset(&self) {
        *self.set.write().unwrap_or_else(|p| p.into_inner()) = RevocationSet::new();
        self.caught_up.store(false, Ordering::Relaxed);
    }

    async fn follow(self: Arc<Self>, client: reqwest::Client, url: reqwest::Url, cfg: FeedConfig) {
        const MIN_BACKOFF: Duration = Duration::from_millis(100);
        const MAX_BACKOFF: Duration = Duration::from_secs(5);
        let mut backoff = MIN_BACKOFF;
        loop {
            let result = self.stream_once(&client, &url, &cfg).await;
            let was_connected = self.connected.swap(false, Ordering::Relaxed);
            match result {
                Ok(()) => tracing::info!("revocation stream ended; reconnecting"),
                Err(StreamError::PastEnd) => {
                    tracing::error!(
                        position = self.position(),
                        "the server's revocation log ends before our position (restored or replaced database); replaying it from the start"
                    );
                    self.reset();
                    continue;
                }
                Err(StreamError::Other(e)) => {
                    tracing::warn!(error = %e, position = self.position(), "revocation stream failed; reconnecting")
                }
            }
            if was_connected {
                backoff = MIN_BACKOFF;
            }
            let jitter = rand::thread_rng().gen_range(0..=backoff.as_millis() as u64 / 2);
            tokio::time::sleep(backoff + Duration::from_millis(jitter)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn stream_once(
        &self,
        client: &reqwest::Client,
        url: &reqwest::Url,
        cfg: &FeedConfig,
    ) -> Result<(), StreamError> {
        let position = self.position();
        let mut resp = tokio::time::timeout(
            cfg.idle_timeout,
            client
                .get(url.clone())
                .bearer_auth(cfg.token.expose())
                .header("accept", "text/event-stream")
                .header("last-event-id", position.to_string())
                .send(),
        )
        .await
        .map_err(|_| "timed out opening the stream".to_owned())?
        .map_err(|e| e.to_string())?;
        // 400 to a resume point above 0 means it is past the end of the server's log
        // (docs/revocation-feed.md); from 0 it would be our bug, not theirs: keep retrying.
        if resp.status() == reqwest::StatusCode::BAD_REQUEST && position > 0 {
            return Err(StreamError::PastEnd);
        }
        if !resp.status().is_success() {
            return Err(format!("server answered {}", resp.status()).into());
        }
        check_protocol(resp.headers().get(FEED_VERSION_HEADER))?;
        self.connected.store(true, Ordering::Relaxed);
        let mut parser = sse::Parser::new();
        loop {
            let chunk = tokio::time::timeout(cfg.idle_timeout, resp.chunk())
                .await
                .map_err(|_| "stream idle past idle_timeout".to_owned())?
                .map_err(|e| e.to_string())?;
            let Some(chunk) = chunk else {
                return Ok(());
            };
            for ev in parser.push(&chunk).map_err(|e| e.to_string())? {
                self.handle(&ev)?;
            }
        }
    }

    fn handle(&self, ev: &sse::Event) -> Result<(), String> {
        match ev.event.as_str() {
            "revocation" => {
                let r: RevocationRecord = serde_json::from_str(&ev.data)
                    .map_err(|e| format!("bad revocation record: {e}"))?;
                if ev.id.as_deref() != Some(r.seq.to_string().as_str()) {
                    return Err("revocation event id does not match its seq".into());
                }
                self.apply(&r);
                self.contact();
            }
            "heartbeat" => {
                let h: Heartbeat =
                    serde_json::from_str(&ev.data).map_err(|e| format!("bad heartbeat: {e}"))?;
                self.touch(h.position);
            }
            _ => {}
        }
        Ok(())
    }
}
