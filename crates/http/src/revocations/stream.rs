//! `GET /v1/revocations/stream`: the revocation log as Server-Sent Events.
//!
//! The resume point is the `Last-Event-ID` header (what an SSE client sends on reconnecting),
//! else the `after` query parameter, else 0; each must be a decimal position, anything else is
//! 400 `invalid_request`. The stream sends, in order and without gaps:
//!
//! ```text
//! id: <seq>
//! event: revocation
//! data: <RevocationRecord JSON>
//!
//! ```
//!
//! for every entry the reader may see (expired ones may be left out), then, right after
//! catching up and every `revocations.heartbeat_interval_ms`,
//!
//! ```text
//! event: heartbeat
//! data: {"position": P, "time": <unix ms>}
//!
//! ```
//!
//! with no `id:` line, so a heartbeat never moves the client's `Last-Event-ID`. `P` is the
//! position streamed so far: every entry at or before it was sent, had expired, or is another
//! tenant's. New entries are pushed when the store's head watch moves (this node's appends at
//! once, other nodes' through `LISTEN/NOTIFY`), not found by polling.
//!
//! A stream writes into a small bounded channel: a slow reader slows its own stream and costs
//! no more memory. This module must never put an `id:` on anything but a log entry.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use portcullis_core::tenant::TenantId;
use portcullis_store::RevocationEntry;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use super::{check_position, page, position_from, FeedReader};
use crate::error::ApiError;
use crate::extract::ApiQuery;
use portcullis_service::revocations::FeedService;

/// Entries read from storage at a time while catching up.
const PAGE: u32 = 1_000;
/// Events buffered between a stream's task and its connection.
const BUFFER: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamParams {
    after: Option<u64>,
}

/// The resume point: `Last-Event-ID`, else `after`, else 0.
fn resume_point(headers: &HeaderMap, after: Option<u64>) -> Result<i64, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return position_from(after);
    };
    let malformed = || ApiError::invalid_request("Last-Event-ID must be a log position");
    let text = value.to_str().map_err(|_| malformed())?;
    if text.is_empty() || text.len() > 18 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed());
    }
    text.parse::<i64>().map_err(|_| malformed())
}

pub async fn stream(
    reader: FeedReader,
    State(state): State<FeedService>,
    headers: HeaderMap,
    ApiQuery(params): ApiQuery<StreamParams>,
) -> Result<Response, ApiError> {
    let start = resume_point(&headers, params.after)?;
    // Watch before reading the head: an append committed after the read moves the watch.
    let mut head_watch = state.store.watch_revocation_head();
    let known = *head_watch.borrow_and_update();
    let head = state.store.revocation_head().await?.max(known);
    check_position(start, head)?;
    let (tx, rx) = mpsc::channel(BUFFER);
    tokio::spawn(
        Streamer {
            state,
            tenant: reader.tenant,
            position: start,
            tx,
        }
        .run(head, head_watch),
    );
    let body = Body::from_stream(ReceiverStream::new(rx));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    // Reverse proxies such as nginx would otherwise hold events back in their buffers.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    h.insert(super::FEED_VERSION_HEADER, super::feed_version());
    Ok(response)
}

/// Why a stream ended early: the reader went away, the server is stopping, or storage failed.
#[derive(Debug)]
struct Ended;

struct Streamer {
    state: FeedService,
    tenant: Option<TenantId>,
    /// Every entry at or before this has been sent, had expired, or is another tenant's.
    position: i64,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
}

impl Streamer {
    async fn run(mut self, head: i64, head_watch: watch::Receiver<i64>) {
        if let Err(Ended) = self.follow(head, head_watch).await {
            tracing::debug!(position = self.position, "revocation stream ended");
        }
    }

    async fn follow(
        &mut self,
        mut head: i64,
        mut head_watch: watch::Receiver<i64>,
    ) -> Result<(), Ended> {
        let mut shutdown = self.state.feed.shutdown_signal();
        let interval = self.state.feed.heartbeat();
        self.catch_up(head).await?;
        self.heartbeat().await?;
        let mut next_heartbeat = Instant::now() + interval;
        loop {
            tokio::select! {
                changed = head_watch.changed() => {
                    changed.map_err(|_| Ended)?;
                    head = head.max(*head_watch.borrow_and_update());
                    self.catch_up(head).await?;
                }
                () = tokio::time::sleep_until(next_heartbeat) => {
                    self.heartbeat().await?;
                    next_heartbeat = Instant::now() + interval;
                }
                () = self.tx.closed() => return Err(Ended),
                () = stopped(&mut shutdown) => return Err(Ended),
            }
        }
    }

    /// Sends every entry up to `head` the reader may see, a page at a time.
    async fn catch_up(&mut self, head: i64) -> Result<(), Ended> {
        while self.position < head {
            let range = page(
                self.position,
                PAGE,
                head,
                self.tenant.as_ref(),
                self.state.clock.now(),
            );
            let entries = self
                .state
                .store
                .revocations_in_range(&range)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %e, "revocation stream could not read the log; closing it for the reader to resume");
                    Ended
                })?;
            for entry in entries {
                self.send(record_event(entry)?).await?;
            }
            self.position = range.through;
        }
        Ok(())
    }

    async fn heartbeat(&self) -> Result<(), Ended> {
        let data = json!({
            "position": self.position,
            "time": self.state.clock.now().as_millis(),
        });
        self.send(format!("event: heartbeat\ndata: {data}\n\n"))
            .await
    }

    async fn send(&self, event: String) -> Result<(), Ended> {
        self.tx
            .send(Ok(Bytes::from(event)))
            .await
            .map_err(|_| Ended)
    }
}

/// Resolves once the server is stopping (or gone).
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

fn record_event(entry: RevocationEntry) -> Result<String, Ended> {
    let seq = entry.seq;
    // Serialising plain data cannot fail; if it ever did, the reader resumes from here rather
    // than miss the entry.
    let data = serde_json::to_string(&entry.into_record()).map_err(|e| {
        tracing::error!(error = %e, seq, "could not serialise a revocation entry");
        Ended
    })?;
    Ok(format!("id: {seq}\nevent: revocation\ndata: {data}\n\n"))
}
