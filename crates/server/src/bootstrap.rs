//! First-start bootstrap: with no active global admin, create one and write its token once to a
//! 0600 file in the data directory. The path is logged; the token never is.
//!
//! Order matters for crash safety: the file is written (atomically) before the credential row,
//! so a crash leaves either nothing usable (redone on restart, overwriting the file) or a file
//! that matches a stored credential. Revoking every global admin and restarting issues a new
//! bootstrap credential: the recovery path for a lost token.

use std::path::{Path, PathBuf};

use portcullis_core::audit::{Action, Actor, Outcome};
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Clock;
use portcullis_store::Store;

use portcullis_service::audit::{AuditSink, EventDraft, RequestOrigin};
use portcullis_service::kek::write_private_file_atomically;

pub const BOOTSTRAP_FILE: &str = "bootstrap-admin-token";

pub async fn ensure_global_admin(
    store: &dyn Store,
    clock: &dyn Clock,
    audit: &AuditSink,
    data_dir: &Path,
) -> anyhow::Result<Option<PathBuf>> {
    if store.count_active_global_admins().await? > 0 {
        return Ok(None);
    }
    let (record, credential) = portcullis_service::admin_credentials::mint(
        &TenantId::system(),
        "bootstrap".into(),
        "system".into(),
        clock.now(),
    );
    let path = data_dir.join(BOOTSTRAP_FILE);
    write_private_file_atomically(&path, format!("{}\n", credential.expose()).as_bytes())
        .map_err(|e| anyhow::anyhow!("could not write {}: {e}", path.display()))?;
    portcullis_service::fault::crash_point("after-bootstrap-file");
    store.insert_admin_credential(&record).await?;
    audit.record(
        EventDraft {
            tenant: TenantId::system(),
            actor: Actor::system(),
            credential_id: None,
            action: Action::AdminTokenBootstrap,
            outcome: Outcome::Success,
            reason: None,
            target: Some(record.id),
        },
        &RequestOrigin::default(),
    );
    Ok(Some(path))
}
