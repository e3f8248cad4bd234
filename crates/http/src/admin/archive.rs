//! What the archive operations of tenants, clients and resource servers share: the
//! `include_archived` list filter and the answer to archiving twice.
//!
//! Archiving is final. The rules (what is revoked, in which transaction) are in the store's
//! `ArchiveStore` and in the handlers of each object; this module must never un-archive.

use portcullis_store::{ArchiveOutcome, ArchivedFilter, RevocationEntry};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;

/// The filter of lists that hold archivable objects.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ArchivedParams {
    /// Also list archived objects (default `false`: live ones only).
    #[serde(default)]
    include_archived: bool,
}

impl ArchivedParams {
    pub fn filter(&self) -> ArchivedFilter {
        if self.include_archived {
            ArchivedFilter::Include
        } else {
            ArchivedFilter::Exclude
        }
    }
}

/// The store's answer as the API's: archiving twice is a conflict, an unknown object not found.
pub fn outcome(o: ArchiveOutcome) -> Result<Option<RevocationEntry>, ApiError> {
    match o {
        ArchiveOutcome::Archived(entry) => Ok(entry),
        ArchiveOutcome::AlreadyArchived => Err(already_archived()),
        ArchiveOutcome::NotFound => Err(ApiError::not_found()),
    }
}

/// Any change to an archived object.
pub fn already_archived() -> ApiError {
    ApiError::conflict("archived: an archived object cannot be changed or restored")
}
