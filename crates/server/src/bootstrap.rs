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

/// The built-in public client `portcullis login` signs people in with (RFC 8628 device
/// authorization grant), in the system tenant.
pub const CLI_CLIENT_ID: &str = portcullis_service::tokens::cli_session::CLI_CLIENT_ID;

/// Creates the built-in CLI client if it does not exist yet; an existing one (even one an
/// operator disabled) is left as it is. Idempotent, and safe when several nodes start at once:
/// the loser of the insert sees a conflict and moves on.
pub async fn ensure_cli_client(store: &dyn Store, clock: &dyn Clock) -> anyhow::Result<bool> {
    use portcullis_core::client::{ApplicationType, ClientType};
    use portcullis_core::oauth::{AuthMethod, GrantType};
    if store.get_client(CLI_CLIENT_ID).await?.is_some() {
        return Ok(false);
    }
    let now = clock.now();
    let client = portcullis_store::OAuthClient {
        id: CLI_CLIENT_ID.into(),
        tenant: TenantId::system(),
        name: "Portcullis CLI".into(),
        environment: "live".into(),
        auth_method: AuthMethod::None.as_str().to_owned(),
        grant_types: vec![
            GrantType::DeviceCode.as_str().to_owned(),
            GrantType::RefreshToken.as_str().to_owned(),
        ],
        scopes: vec!["offline_access".into()],
        audiences: Vec::new(),
        access_token_ttl_secs: 300,
        can_introspect: false,
        jwks: None,
        jwks_uri: None,
        status: portcullis_store::ClientStatus::Active,
        created_at: now,
        updated_at: now,
        last_used_at: None,
        client_type: ClientType::Public,
        application_type: ApplicationType::Native,
        redirect_uris: Vec::new(),
        post_logout_redirect_uris: Vec::new(),
        allowed_web_origins: Vec::new(),
        first_party: true,
        backchannel_logout_uri: None,
        backchannel_logout_session_required: false,
        require_pushed_requests: false,
        id_token_signed_response_alg: None,
        require_dpop: false,
        tls_subject: None,
        certificate_bound_tokens: false,
    };
    match store.create_client(&client, None).await {
        Ok(()) => Ok(true),
        Err(portcullis_store::StoreError::Conflict) => Ok(false),
        Err(e) => Err(e.into()),
    }
}
