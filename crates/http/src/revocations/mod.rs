//! The revocation feed: the server's durable, ordered revocation log as verifiers read it.
//!
//! * `GET /v1/revocations?after=N&limit=M`: one page, `{"entries": [RevocationRecord...],
//!   "position": P}`. `P` is the last position examined for this page; every entry at or before
//!   it was returned, had expired, or belongs to another tenant. A reader is current when `P`
//!   equals the `after` it sent.
//! * `GET /v1/revocations/stream`: the same entries as Server-Sent Events, resumable with
//!   `Last-Event-ID` (see `stream.rs`).
//!
//! Both are authenticated with the same bearer credentials as the admin API and need the
//! `read_revocation_feed` permission, decided by core: a verifier's or gateway's `service`
//! credential has it, as do administrators. A credential of the system tenant reads every entry;
//! any other reads its tenant's entries and signing-key entries (which concern every tenant).
//! Entries are sent as [`RevocationRecord`]s: the internal reason never leaves.
//!
//! This module must never skip an unexpired entry a reader may see, never report a position
//! past an entry it has not sent, and never serve a reader whose position lies beyond the log
//! (a restored or replaced database): that reader is told to start again from 0.

mod stream;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use portcullis_core::admin::{AdminTarget, Permission};
use portcullis_core::revocation::RevocationRecord;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_store::RevocationRange;
use serde::{Deserialize, Serialize};

use crate::admin::auth::{authenticate, authorize};
use crate::error::ApiError;
use crate::extract::{origin, ApiQuery};
use portcullis_service::revocations::FeedService;

/// Entries per snapshot page unless the reader asks otherwise.
pub const DEFAULT_LIMIT: u32 = 1_000;
/// Most entries per snapshot page.
pub const MAX_LIMIT: u32 = 10_000;

/// The feed's routes, over the feed's own state (not the whole `AppState`).
pub fn router() -> Router<FeedService> {
    Router::new()
        .route("/v1/revocations", get(snapshot))
        .route("/v1/revocations/stream", get(stream::stream))
}

/// An authenticated reader of the feed and the entries it may see.
#[derive(Debug)]
pub struct FeedReader {
    /// `None`: every entry (a system-tenant credential); `Some(t)`: `t`'s entries and
    /// signing-key entries.
    tenant: Option<TenantId>,
}

impl FromRequestParts<FeedService> for FeedReader {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &FeedService) -> Result<Self, ApiError> {
        let origin = origin(parts);
        let principal = authenticate(parts, state, &origin).await?;
        let home = principal.home();
        authorize(
            state,
            &principal,
            Permission::ReadRevocationFeed,
            home.clone(),
            &origin,
        )?;
        Ok(Self {
            tenant: match home {
                AdminTarget::Global => None,
                AdminTarget::Tenant(t) => Some(t.clone()),
            },
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotParams {
    after: Option<u64>,
    limit: Option<u32>,
}

#[derive(Debug, Serialize)]
pub struct Snapshot {
    entries: Vec<RevocationRecord>,
    position: i64,
}

/// A position sent by a reader, checked against the log head. A position past the head means
/// the reader followed another (or an older) log: it must start again from 0, or it would
/// silently skip the entries this log will number as it did.
fn check_position(position: i64, head: i64) -> Result<(), ApiError> {
    if position > head {
        return Err(ApiError::invalid_request(format!(
            "position {position} is past the end of the revocation log ({head}); start again \
             from 0"
        )));
    }
    Ok(())
}

pub(crate) fn position_from(after: Option<u64>) -> Result<i64, ApiError> {
    after
        .map(i64::try_from)
        .transpose()
        .map_err(|_| ApiError::invalid_request("after is out of range"))
        .map(|a| a.unwrap_or(0))
}

/// The range of a page: from `after` up to `limit` positions, never past `head`, without
/// what expired by `now` or what `tenant`'s reader may not see.
fn page(
    after: i64,
    limit: u32,
    head: i64,
    tenant: Option<&TenantId>,
    now: Timestamp,
) -> RevocationRange {
    RevocationRange {
        after,
        through: head.min(after.saturating_add(i64::from(limit))),
        live_at: Some(portcullis_core::revocation::needed_if_expiring_after(now)),
        tenant: tenant.cloned(),
    }
}

async fn snapshot(
    reader: FeedReader,
    State(state): State<FeedService>,
    ApiQuery(params): ApiQuery<SnapshotParams>,
) -> Result<Response, ApiError> {
    let after = position_from(params.after)?;
    let limit = params.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid_request(format!(
            "limit must be between 1 and {MAX_LIMIT}"
        )));
    }
    let head = state.store.revocation_head().await?;
    check_position(after, head)?;
    let range = page(
        after,
        limit,
        head,
        reader.tenant.as_ref(),
        state.clock.now(),
    );
    let entries = state.store.revocations_in_range(&range).await?;
    let mut response = Json(Snapshot {
        entries: entries.into_iter().map(|e| e.into_record()).collect(),
        position: range.through,
    })
    .into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(FEED_VERSION_HEADER, feed_version());
    Ok(response)
}

/// Names the feed's wire protocol version on the snapshot and the stream, so a verifier built
/// for another version fails closed instead of misreading (`portcullis_core::revocation`).
pub use portcullis_core::revocation::FEED_VERSION_HEADER;

fn feed_version() -> HeaderValue {
    HeaderValue::from(portcullis_core::revocation::FEED_PROTOCOL_VERSION)
}
