//! Records of the audit chain ([`crate::AuditChainStore`]): chained events in position order,
//! the chain head, checkpoints, and the oldest-first reads of the audit export.

use portcullis_core::audit::AuditEvent;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;

/// An event with its place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainedEvent {
    pub pos: i64,
    pub hash: Vec<u8>,
    pub event: AuditEvent,
}

/// The hash of the chain at a position, and (once the service signed it) the compact JWS over
/// it and the key id that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditCheckpoint {
    pub pos: i64,
    pub hash: Vec<u8>,
    pub created_at: Timestamp,
    pub kid: Option<String>,
    pub signature: Option<String>,
}

/// What a prune removed: events up to (and including) chain position `up_to`, the checkpoint
/// kept as the new start, and the unchained events older than the cut-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditPrune {
    pub up_to: i64,
    pub deleted: u64,
}

/// An oldest-first read of the audit log for export: events of `tenant` (every tenant's if
/// `None`) that occurred at or after `since`, after insertion position `after_seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditExportQuery {
    pub tenant: Option<TenantId>,
    pub since: Option<Timestamp>,
    pub after_seq: i64,
    pub limit: u32,
}
