//! Admin subcommands: each maps to one admin API call and prints text or JSON.
//!
//! The admin API pages its lists (`{"items": [...], "next_cursor": ...}`); a `list` command
//! follows the cursors ([`list_all`]) and prints every row, as one JSON array with `--json`, so
//! its output is what it was before lists were paged.

use anyhow::Context;
use clap::Subcommand;
use portcullis_core::admin::AdminRole;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::AdminClient;
use crate::{Output, Remote};

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Tenant id: a lowercase slug such as `acme`.
        id: String,
        /// Display name (defaults to the id).
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List tenants (archived ones only with --include-archived).
    List {
        /// Also list archived tenants.
        #[arg(long)]
        include_archived: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one tenant.
    Show {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Disable a tenant: its admins and credentials stop working.
    Disable {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Re-enable a disabled tenant (never an archived one).
    Enable {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Archive a tenant for good: disabled, its tokens revoked, its API keys, clients and admin
    /// tokens refused; it can never be enabled again and its id is never reused.
    Archive {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show or set the tenant's sign-in page branding.
    #[command(subcommand)]
    Branding(BrandingCommand),
    /// Show or set the tenant's OAuth policy: rules for every client of the tenant.
    #[command(subcommand, name = "oauth-policy")]
    OAuthPolicy(OAuthPolicyCommand),
    /// Manage the tenant's CA sets: the CAs a `tls_client_auth` client's certificate must
    /// chain to (RFC 8705).
    #[command(subcommand, name = "ca-sets")]
    CaSets(CaSetCommand),
    /// Show, set or enforce the tenant's credential lifetime policy (docs/hygiene.md).
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, Subcommand)]
pub enum OAuthPolicyCommand {
    /// Show the policy.
    Show {
        /// Tenant id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Set the policy.
    Set {
        /// Tenant id.
        id: String,
        /// Every authorization request of every client must be pushed first (RFC 9126 PAR).
        #[arg(long, required_unless_present = "no_require_par")]
        require_par: bool,
        /// Clients push their requests only when their own setting says so.
        #[arg(long, conflicts_with = "require_par")]
        no_require_par: bool,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub enum CaSetCommand {
    /// Add a CA set from a PEM file of one or more CA certificates.
    Create {
        /// Tenant id.
        id: String,
        /// A name unique within the tenant.
        #[arg(long)]
        name: String,
        /// PEM file with the CA certificate(s).
        #[arg(long)]
        pem_file: std::path::PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the tenant's CA sets.
    List {
        /// Tenant id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Remove a CA set: certificates it vouched for no longer authenticate clients.
    Delete {
        /// Tenant id.
        id: String,
        /// The set's id (`ca_...`).
        set: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show the tenant's lifetime policy (API keys and client secrets).
    Show {
        /// Tenant id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Set the policy (global administrators). Client-secret settings and --existing replace
    /// the stored ones; API key settings left out are kept.
    Set {
        /// Tenant id.
        id: String,
        /// Longest lifetime of an API key: a duration (`365d`) or `none`.
        #[arg(long)]
        api_key_max_lifetime: Option<String>,
        /// Whether every API key must expire.
        #[arg(long)]
        api_key_expiry_required: Option<bool>,
        /// Longest a client secret may live: a duration (`180d`) or `none` (the default).
        #[arg(long)]
        client_secret_max_age: Option<String>,
        /// Every client secret must expire.
        #[arg(long)]
        client_secret_expiry_required: bool,
        /// Existing non-compliant credentials: ignore (default), report or disable.
        #[arg(long)]
        existing: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List credentials that break the policy; with mode `disable`, disable those API keys.
    Enforce {
        /// Tenant id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub enum BrandingCommand {
    /// Show the branding.
    Show {
        /// Tenant id.
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Replace the branding (an option left out is cleared).
    Set {
        /// Tenant id.
        id: String,
        /// Shown in the page header instead of the tenant id.
        #[arg(long)]
        display_name: Option<String>,
        /// An https URL of the logo.
        #[arg(long)]
        logo_url: Option<String>,
        /// The accent colour of buttons, `#rrggbb`.
        #[arg(long)]
        accent_colour: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminTokenCommand {
    /// Create an admin or service token for a tenant. Shown once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// global_admin, tenant_admin, auditor, api_key_manager or service (default: the
        /// tenant's administrator, global_admin for `system`, tenant_admin otherwise). A
        /// verifier or gateway gets `service`.
        #[arg(long, value_parser = parse_role)]
        role: Option<AdminRole>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List a tenant's admin tokens (never the secrets).
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Revoke an admin token by id.
    Revoke {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List a tenant's audit events, newest first.
    List {
        #[arg(long)]
        tenant: String,
        /// RFC 3339 time or a duration back from now, e.g. `1h`.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        until: Option<String>,
        /// Only this action, e.g. `tenant.create`.
        #[arg(long)]
        action: Option<String>,
        /// Show at most this many events (the newest; read page by page).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        remote: Remote,
    },
    /// Check the audit log's hash chain and signed checkpoints; exits 1 naming the first
    /// broken position if an event was edited, deleted or reordered.
    Verify {
        #[command(flatten)]
        remote: Remote,
    },
    /// Stream audit events, oldest first, as JSON Lines to standard output.
    Export {
        /// Only this tenant's events (a tenant admin must name its tenant; a global admin may
        /// leave it out for every tenant's).
        #[arg(long)]
        tenant: Option<String>,
        /// RFC 3339 time or a duration back from now, e.g. `24h`.
        #[arg(long)]
        since: Option<String>,
        /// Output format: jsonl (the only one).
        #[arg(long, default_value = "jsonl")]
        format: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub enum ResourceServerCommand {
    /// Declare an API: the audience tokens for it carry, and the scopes it defines.
    Create {
        #[arg(long)]
        tenant: String,
        /// Audience identifier, e.g. `payments-api` or `https://payments.example.com`.
        #[arg(long)]
        audience: String,
        #[arg(long)]
        name: Option<String>,
        /// Scopes this API defines (comma-separated or repeated).
        #[arg(long = "scope", alias = "scopes", value_delimiter = ',')]
        scopes: Vec<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List a tenant's resource servers (archived ones only with --include-archived).
    List {
        #[arg(long)]
        tenant: String,
        /// Also list archived resource servers.
        #[arg(long)]
        include_archived: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show a resource server and its introspection credentials (never a secret).
    Show {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Issue a credential for the introspection endpoint (shown only this once); older ones keep
    /// working for the overlap window. The first call creates the first credential.
    RotateSecret {
        #[arg(long)]
        tenant: String,
        id: String,
        /// How long older secrets keep working: a duration such as `1h` or `30m` (default
        /// `24h`; `0` = at once; a bare number is seconds).
        #[arg(long, value_parser = parse_duration_secs)]
        overlap: Option<u64>,
        /// Environment label embedded in the secret (default `live`).
        #[arg(long)]
        environment: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Archive a resource server for good: no more tokens for its audience, its introspection
    /// secrets stop at once. Tokens already issued for it stay valid until they expire.
    Archive {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create an OAuth client. Its secret is shown only this once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// Allowed scopes (comma-separated or repeated).
        #[arg(long = "scope", alias = "scopes", value_delimiter = ',')]
        scopes: Vec<String>,
        /// Allowed audiences (comma-separated or repeated); the first is the default. Required
        /// for client_credentials; an app that only signs users in needs none.
        #[arg(long = "audience", value_delimiter = ',')]
        audiences: Vec<String>,
        /// client_secret_basic (default), client_secret_post, private_key_jwt, tls_client_auth,
        /// self_signed_tls_client_auth, none (the default of public clients), or
        /// workload_identity_jwt (no secret: a trust rule bound to the client admits its jobs'
        /// platform tokens as its client_assertion; docs/workload-identity.md).
        #[arg(long)]
        auth_method: Option<String>,
        #[command(flatten)]
        app: AppFlags,
        #[command(flatten)]
        tls: TlsSubjectFlags,
        /// Bind this client's access tokens to the client certificate it presents (RFC 8705;
        /// always so for tls_client_auth and self_signed_tls_client_auth clients).
        #[arg(long)]
        certificate_bound_tokens: bool,
        /// confidential (default; public for native apps) or public (single-page and native
        /// apps: no secret).
        #[arg(long)]
        client_type: Option<String>,
        /// web (default) or native.
        #[arg(long)]
        application_type: Option<String>,
        /// For private_key_jwt and self_signed_tls_client_auth: a file holding the client's
        /// public keys (a JWKS).
        #[arg(long, conflicts_with = "jwks_uri")]
        jwks_file: Option<std::path::PathBuf>,
        /// For private_key_jwt and self_signed_tls_client_auth: where the server fetches the
        /// client's JWKS (https).
        #[arg(long)]
        jwks_uri: Option<String>,
        /// Access-token lifetime: a duration such as `10m` or `1h` (default `10m`, at most the
        /// server's maximum; a bare number is seconds).
        #[arg(long, value_parser = parse_duration_secs)]
        access_token_ttl: Option<u64>,
        /// Environment label embedded in the secret (default `live`).
        #[arg(long)]
        environment: Option<String>,
        /// Lifetime of the client secret: a duration such as `90d` (default: the tenant's
        /// lifetime policy's maximum, or no expiry).
        #[arg(long, value_parser = parse_duration_secs)]
        secret_expires_in: Option<u64>,
        /// Allow this client to call the introspection endpoint.
        #[arg(long)]
        introspection: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Change a client's registration: the flags given replace the stored values (a list flag
    /// replaces the whole list; `--clear-redirect-uris` and the like empty one).
    Update {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        name: Option<String>,
        /// Allowed scopes (comma-separated or repeated).
        #[arg(long = "scope", value_delimiter = ',')]
        scopes: Vec<String>,
        /// Allowed audiences (comma-separated or repeated).
        #[arg(long = "audience", value_delimiter = ',')]
        audiences: Vec<String>,
        #[command(flatten)]
        app: AppFlags,
        #[arg(long)]
        clear_redirect_uris: bool,
        #[arg(long)]
        clear_post_logout_redirect_uris: bool,
        #[arg(long)]
        clear_web_origins: bool,
        /// Stop back-channel logout notifications.
        #[arg(long, conflicts_with = "backchannel_logout_uri")]
        clear_backchannel_logout_uri: bool,
        /// Make the client third party again (consent asked).
        #[arg(long, conflicts_with = "first_party")]
        not_first_party: bool,
        /// Accept direct authorization requests again (no PAR required).
        #[arg(long, conflicts_with = "require_par")]
        no_require_par: bool,
        /// Accept token requests without a DPoP proof again (bearer tokens).
        #[arg(long, conflicts_with = "require_dpop")]
        no_require_dpop: bool,
        /// A tls_client_auth client's new certificate fact (replaces the registered one).
        #[command(flatten)]
        tls: TlsSubjectFlags,
        /// Bind this client's access tokens to the client certificate it presents.
        #[arg(long, conflicts_with = "no_certificate_bound_tokens")]
        certificate_bound_tokens: bool,
        /// Stop binding this (non-mTLS) client's tokens to its certificate.
        #[arg(long)]
        no_certificate_bound_tokens: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// List a tenant's clients (archived ones only with --include-archived).
    List {
        #[arg(long)]
        tenant: String,
        /// Also list archived clients.
        #[arg(long)]
        include_archived: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one client and its secrets (prefixes and dates, never the secrets).
    Show {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Issue a new secret; older secrets keep working for the overlap window.
    RotateSecret {
        #[arg(long)]
        tenant: String,
        id: String,
        /// How long older secrets keep working: a duration such as `1h` or `30m` (default
        /// `24h`; `0` = at once; a bare number is seconds).
        #[arg(long, value_parser = parse_duration_secs)]
        overlap: Option<u64>,
        /// Lifetime of the new secret: a duration such as `90d` (default: the tenant's
        /// lifetime policy's maximum, or no expiry).
        #[arg(long, value_parser = parse_duration_secs)]
        secret_expires_in: Option<u64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Disable a client and revoke every token issued to it.
    Disable {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Enable a disabled client again (tokens revoked by the disable stay revoked).
    Enable {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Archive a client for good: disabled, its secrets stop at once, its tokens revoked.
    Archive {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

/// The mutual-TLS registration flags (RFC 8705), shared by `client create` and `client update`:
/// the one certificate fact of a `tls_client_auth` client, and certificate-bound tokens for
/// clients that authenticate otherwise.
#[derive(Debug, clap::Args)]
#[group(multiple = false)]
pub struct TlsSubjectFlags {
    /// tls_client_auth: the certificate's subject DN (`CN=payments,O=Acme`).
    #[arg(long)]
    tls_subject_dn: Option<String>,
    /// tls_client_auth: a DNS name SAN of the certificate.
    #[arg(long)]
    tls_san_dns: Option<String>,
    /// tls_client_auth: a URI SAN of the certificate (a SPIFFE ID, for example).
    #[arg(long)]
    tls_san_uri: Option<String>,
    /// tls_client_auth: an IP address SAN of the certificate.
    #[arg(long)]
    tls_san_ip: Option<String>,
    /// tls_client_auth: an email SAN of the certificate.
    #[arg(long)]
    tls_san_email: Option<String>,
}

impl TlsSubjectFlags {
    fn fill(&self, body: &mut Value) {
        for (value, member) in [
            (&self.tls_subject_dn, "tls_client_auth_subject_dn"),
            (&self.tls_san_dns, "tls_client_auth_san_dns"),
            (&self.tls_san_uri, "tls_client_auth_san_uri"),
            (&self.tls_san_ip, "tls_client_auth_san_ip"),
            (&self.tls_san_email, "tls_client_auth_san_email"),
        ] {
            if let Some(v) = value {
                body[member] = json!(v);
            }
        }
    }
}

/// The registration flags of browser and native app clients, shared by `client create` and
/// `client update`.
#[derive(Debug, clap::Args)]
pub struct AppFlags {
    /// Grant types (comma-separated or repeated): client_credentials, authorization_code,
    /// refresh_token.
    #[arg(long = "grant-type", value_delimiter = ',')]
    grant_types: Vec<String>,
    /// A redirect URI (repeat for several); compared exactly.
    #[arg(long = "redirect-uri")]
    redirect_uris: Vec<String>,
    /// A post-logout redirect URI (repeat for several).
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Vec<String>,
    /// Single-page apps: an origin allowed to call the token endpoint (repeat for several).
    #[arg(long = "web-origin")]
    web_origins: Vec<String>,
    /// The tenant's own app: no consent screen.
    #[arg(long)]
    first_party: bool,
    /// Where logout tokens are POSTed when a session the client got tokens in ends
    /// (OpenID Connect Back-Channel Logout).
    #[arg(long)]
    backchannel_logout_uri: Option<String>,
    /// The client needs `sid` in its logout tokens.
    #[arg(long)]
    backchannel_logout_session_required: bool,
    /// Every authorization request must be pushed first (RFC 9126 PAR).
    #[arg(long)]
    require_par: bool,
    /// Every token request must carry a valid DPoP proof (RFC 9449): tokens are always bound
    /// to the client's key.
    #[arg(long)]
    require_dpop: bool,
}

impl AppFlags {
    /// Adds the flags given to a request body.
    fn fill(&self, body: &mut Value) {
        if !self.grant_types.is_empty() {
            body["grant_types"] = json!(self.grant_types);
        }
        if !self.redirect_uris.is_empty() {
            body["redirect_uris"] = json!(self.redirect_uris);
        }
        if !self.post_logout_redirect_uris.is_empty() {
            body["post_logout_redirect_uris"] = json!(self.post_logout_redirect_uris);
        }
        if !self.web_origins.is_empty() {
            body["allowed_web_origins"] = json!(self.web_origins);
        }
        if self.first_party {
            body["first_party"] = json!(true);
        }
        if let Some(uri) = &self.backchannel_logout_uri {
            body["backchannel_logout_uri"] = json!(uri);
        }
        if self.backchannel_logout_session_required {
            body["backchannel_logout_session_required"] = json!(true);
        }
        if self.require_par {
            body["require_pushed_authorization_requests"] = json!(true);
        }
        if self.require_dpop {
            body["dpop_bound_access_tokens"] = json!(true);
        }
    }
}

/// A duration flag (`--overlap`, `--access-token-ttl`): humantime (`1h`, `30m`, `1h 30m`,
/// `0`) or, so that older scripts keep working, a bare number of seconds.
pub fn parse_duration_secs(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<u64>() {
        return Ok(secs);
    }
    humantime::parse_duration(s)
        .map(|d| d.as_secs())
        .map_err(|_| format!("{s:?} is not a duration; use e.g. `30m`, `1h`, `24h` or `0`"))
}

/// Path segments typed by the user are percent-encoded so they cannot change the route.
pub(crate) fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Calls the admin API and prints the answer as text or JSON.
pub(crate) async fn fetch_and_print(
    remote: &Remote,
    method: Method,
    path: &str,
    query: &[(&str, String)],
    body: Option<Value>,
    text: impl FnOnce(&Value) -> String,
) -> anyhow::Result<()> {
    let v = AdminClient::new(remote)?
        .call(method, path, query, body)
        .await?;
    print(remote, &v, text);
    Ok(())
}

/// Rows the CLI asks for per page (the server's cap).
const PAGE: usize = 1_000;

/// Every row of a paged admin list (or the first `max`): follows `next_cursor` page by page and
/// returns the rows as one JSON array.
pub(crate) async fn list_all(
    remote: &Remote,
    path: &str,
    query: &[(&str, String)],
    max: Option<usize>,
) -> anyhow::Result<Value> {
    let client = AdminClient::new(remote)?;
    let mut items: Vec<Value> = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let wanted = max.map_or(PAGE, |m| m.saturating_sub(items.len()).min(PAGE));
        if wanted == 0 {
            break;
        }
        let mut q = query.to_vec();
        q.push(("limit", wanted.to_string()));
        q.extend(cursor.take().map(|c| ("cursor", c)));
        let v = client.call(Method::GET, path, &q, None).await?;
        let page = v["items"].as_array().with_context(|| {
            format!("the answer to GET {path} is not a page of items: is the server a Portcullis of this version?")
        })?;
        items.extend(page.iter().cloned());
        match v["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    Ok(Value::Array(items))
}

/// Lists every row of `path` and prints them as text or JSON.
pub(crate) async fn list_and_print(
    remote: &Remote,
    path: &str,
    query: &[(&str, String)],
    text: impl FnOnce(&Value) -> String,
) -> anyhow::Result<()> {
    let rows = list_all(remote, path, query, None).await?;
    print(remote, &rows, text);
    Ok(())
}

fn archived_query(include_archived: bool) -> Vec<(&'static str, String)> {
    if include_archived {
        vec![("include_archived", "true".to_owned())]
    } else {
        Vec::new()
    }
}

pub(crate) fn print(remote: &Remote, value: &Value, text: impl FnOnce(&Value) -> String) {
    print_as(remote.output, value, text);
}

/// Prints `value` as JSON or as `text` renders it.
pub(crate) fn print_as(output: Output, value: &Value, text: impl FnOnce(&Value) -> String) {
    match output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        ),
        Output::Text => print!("{}", text(value)),
    }
}

pub(crate) fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("-")
}

pub(crate) fn table(rows: &Value, columns: &[&str]) -> String {
    let mut out = columns.join("\t").to_uppercase() + "\n";
    for row in rows.as_array().into_iter().flatten() {
        let cells: Vec<&str> = columns.iter().map(|c| field(row, c)).collect();
        out.push_str(&cells.join("\t"));
        out.push('\n');
    }
    out
}

fn tenant_text(v: &Value) -> String {
    format!(
        "id: {}\ndisplay_name: {}\nstatus: {}\ncreated_at: {}\nupdated_at: {}\narchived_at: {}\n",
        field(v, "id"),
        field(v, "display_name"),
        field(v, "status"),
        field(v, "created_at"),
        field(v, "updated_at"),
        field(v, "archived_at")
    )
}

fn oauth_policy_text(v: &Value) -> String {
    format!(
        "require_pushed_authorization_requests: {}\nupdated_at: {}\n",
        v["require_pushed_authorization_requests"] == json!(true),
        field(v, "updated_at")
    )
}

fn ca_set_text(v: &Value) -> String {
    format!(
        "id: {}\nname: {}\ncertificates: {}\ncreated_at: {}\n",
        field(v, "id"),
        field(v, "name"),
        v["certificates"],
        field(v, "created_at")
    )
}

fn branding_text(v: &Value) -> String {
    format!(
        "display_name: {}\nlogo_url: {}\naccent_colour: {}\nupdated_at: {}\n",
        field(v, "display_name"),
        field(v, "logo_url"),
        field(v, "accent_colour"),
        field(v, "updated_at")
    )
}

pub async fn tenant(cmd: TenantCommand) -> anyhow::Result<()> {
    match cmd {
        TenantCommand::Create { id, name, remote } => {
            let mut body = json!({ "id": id });
            if let Some(name) = name {
                body["display_name"] = json!(name);
            }
            fetch_and_print(
                &remote,
                Method::POST,
                "/tenants",
                &[],
                Some(body),
                tenant_text,
            )
            .await?;
        }
        TenantCommand::List {
            include_archived,
            remote,
        } => {
            list_and_print(
                &remote,
                "/tenants",
                &archived_query(include_archived),
                |v| {
                    table(
                        v,
                        &["id", "status", "display_name", "created_at", "archived_at"],
                    )
                },
            )
            .await?;
        }
        TenantCommand::Show { id, remote } => {
            fetch_and_print(
                &remote,
                Method::GET,
                &format!("/tenants/{}", seg(&id)),
                &[],
                None,
                tenant_text,
            )
            .await?;
        }
        TenantCommand::Disable { id, remote } => set_tenant_status(&id, &remote, "disable").await?,
        TenantCommand::Enable { id, remote } => set_tenant_status(&id, &remote, "enable").await?,
        TenantCommand::Archive { id, remote } => set_tenant_status(&id, &remote, "archive").await?,
        TenantCommand::Policy(cmd) => policy(cmd).await?,
        TenantCommand::Branding(BrandingCommand::Show { id, remote }) => {
            fetch_and_print(
                &remote,
                Method::GET,
                &format!("/tenants/{}/branding", seg(&id)),
                &[],
                None,
                branding_text,
            )
            .await?;
        }
        TenantCommand::Branding(BrandingCommand::Set {
            id,
            display_name,
            logo_url,
            accent_colour,
            remote,
        }) => {
            fetch_and_print(
                &remote,
                Method::PUT,
                &format!("/tenants/{}/branding", seg(&id)),
                &[],
                Some(json!({
                    "display_name": display_name,
                    "logo_url": logo_url,
                    "accent_colour": accent_colour,
                })),
                branding_text,
            )
            .await?;
        }
        TenantCommand::OAuthPolicy(OAuthPolicyCommand::Show { id, remote }) => {
            fetch_and_print(
                &remote,
                Method::GET,
                &format!("/tenants/{}/oauth-policy", seg(&id)),
                &[],
                None,
                oauth_policy_text,
            )
            .await?;
        }
        TenantCommand::OAuthPolicy(OAuthPolicyCommand::Set {
            id,
            require_par,
            no_require_par: _,
            remote,
        }) => {
            fetch_and_print(
                &remote,
                Method::PUT,
                &format!("/tenants/{}/oauth-policy", seg(&id)),
                &[],
                Some(json!({ "require_pushed_authorization_requests": require_par })),
                oauth_policy_text,
            )
            .await?;
        }
        TenantCommand::CaSets(CaSetCommand::Create {
            id,
            name,
            pem_file,
            remote,
        }) => {
            let pem = std::fs::read_to_string(&pem_file)
                .with_context(|| format!("could not read {}", pem_file.display()))?;
            fetch_and_print(
                &remote,
                Method::POST,
                &format!("/tenants/{}/ca-sets", seg(&id)),
                &[],
                Some(json!({ "name": name, "pem": pem })),
                ca_set_text,
            )
            .await?;
        }
        TenantCommand::CaSets(CaSetCommand::List { id, remote }) => {
            fetch_and_print(
                &remote,
                Method::GET,
                &format!("/tenants/{}/ca-sets", seg(&id)),
                &[],
                None,
                |v| {
                    let mut out = "ID\tNAME\tCERTIFICATES\tCREATED_AT\n".to_owned();
                    for set in v["items"].as_array().into_iter().flatten() {
                        out.push_str(&format!(
                            "{}\t{}\t{}\t{}\n",
                            field(set, "id"),
                            field(set, "name"),
                            set["certificates"],
                            field(set, "created_at")
                        ));
                    }
                    out
                },
            )
            .await?;
        }
        TenantCommand::CaSets(CaSetCommand::Delete { id, set, remote }) => {
            AdminClient::new(&remote)?
                .call(
                    Method::DELETE,
                    &format!("/tenants/{}/ca-sets/{}", seg(&id), seg(&set)),
                    &[],
                    None,
                )
                .await?;
            println!("removed CA set {set}");
        }
    }
    Ok(())
}

fn policy_text(v: &Value) -> String {
    let mut out = String::new();
    for k in [
        "api_key_max_lifetime",
        "api_key_expiry_required",
        "client_secret_max_age",
        "client_secret_expiry_required",
        "existing",
        "updated_at",
    ] {
        let value = match &v[k] {
            Value::Bool(b) => b.to_string(),
            other => other.as_str().unwrap_or("-").to_owned(),
        };
        out.push_str(&format!("{k}: {value}\n"));
    }
    out
}

fn enforce_text(v: &Value) -> String {
    let mut out = format!("existing: {}\n", field(v, "existing"));
    out.push_str(&table(
        &v["non_compliant"],
        &["kind", "id", "label", "violation"],
    ));
    let disabled: Vec<&str> = v["disabled"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    out.push_str(&format!("disabled: {}\n", disabled.len()));
    for id in disabled {
        out.push_str(&format!("  {id}\n"));
    }
    out
}

async fn policy(cmd: PolicyCommand) -> anyhow::Result<()> {
    let (remote, method, path, body, text): (_, _, _, _, fn(&Value) -> String) = match cmd {
        PolicyCommand::Show { id, remote } => (
            remote,
            Method::GET,
            format!("/tenants/{}/lifetime-policy", seg(&id)),
            None,
            policy_text,
        ),
        PolicyCommand::Set {
            id,
            api_key_max_lifetime,
            api_key_expiry_required,
            client_secret_max_age,
            client_secret_expiry_required,
            existing,
            remote,
        } => (
            remote,
            Method::PUT,
            format!("/tenants/{}/lifetime-policy", seg(&id)),
            Some(json!({
                "api_key_max_lifetime": api_key_max_lifetime,
                "api_key_expiry_required": api_key_expiry_required,
                "client_secret_max_age": client_secret_max_age,
                "client_secret_expiry_required": client_secret_expiry_required,
                "existing": existing,
            })),
            policy_text,
        ),
        PolicyCommand::Enforce { id, remote } => (
            remote,
            Method::POST,
            format!("/tenants/{}/lifetime-policy/enforce", seg(&id)),
            None,
            enforce_text,
        ),
    };
    fetch_and_print(&remote, method, &path, &[], body, text).await
}

async fn set_tenant_status(id: &str, remote: &Remote, verb: &str) -> anyhow::Result<()> {
    fetch_and_print(
        remote,
        Method::POST,
        &format!("/tenants/{}/{verb}", seg(id)),
        &[],
        None,
        tenant_text,
    )
    .await
}

/// `POST .../clients/{id}/disable` or `/enable`, printing the client.
async fn client_status_action(
    remote: &Remote,
    tenant: &str,
    id: &str,
    verb: &str,
) -> anyhow::Result<()> {
    fetch_and_print(
        remote,
        Method::POST,
        &format!("/tenants/{}/clients/{}/{verb}", seg(tenant), seg(id)),
        &[],
        None,
        client_text,
    )
    .await
}

/// A `--role` value, checked before anything is sent.
fn parse_role(s: &str) -> Result<AdminRole, String> {
    AdminRole::parse(s).ok_or_else(|| {
        let known: Vec<_> = AdminRole::ALL.iter().map(|r| r.as_str()).collect();
        format!("unknown role {s:?}; one of {}", known.join(", "))
    })
}

pub async fn admin_token(cmd: AdminTokenCommand) -> anyhow::Result<()> {
    match cmd {
        AdminTokenCommand::Create {
            tenant,
            name,
            role,
            remote,
        } => {
            let mut body = json!({ "name": name });
            if let Some(role) = role {
                body["role"] = json!(role.as_str());
            }
            fetch_and_print(
                &remote,
                Method::POST,
                &format!("/tenants/{}/admin-tokens", seg(&tenant)),
                &[],
                Some(body),
                |v| {
                    format!(
                        "id: {}\nrole: {}\ntoken: {}\n(the token is shown only this once)\n",
                        field(v, "id"),
                        field(v, "role"),
                        field(v, "token")
                    )
                },
            )
            .await?;
        }
        AdminTokenCommand::List { tenant, remote } => {
            list_and_print(
                &remote,
                &format!("/tenants/{}/admin-tokens", seg(&tenant)),
                &[],
                |v| {
                    table(
                        v,
                        &[
                            "id",
                            "role",
                            "name",
                            "display_prefix",
                            "created_at",
                            "revoked_at",
                            "last_used_at",
                        ],
                    )
                },
            )
            .await?;
        }
        AdminTokenCommand::Revoke { tenant, id, remote } => {
            AdminClient::new(&remote)?
                .call(
                    Method::DELETE,
                    &format!("/tenants/{}/admin-tokens/{}", seg(&tenant), seg(&id)),
                    &[],
                    None,
                )
                .await?;
            print(&remote, &json!({ "revoked": id }), |_| {
                format!("revoked {id}\n")
            });
        }
    }
    Ok(())
}

pub async fn audit(cmd: AuditCommand) -> anyhow::Result<()> {
    let (tenant, since, until, action, limit, remote) = match cmd {
        AuditCommand::List {
            tenant,
            since,
            until,
            action,
            limit,
            remote,
        } => (tenant, since, until, action, limit, remote),
        AuditCommand::Verify { remote } => return audit_verify(&remote).await,
        AuditCommand::Export {
            tenant,
            since,
            format,
            remote,
        } => return audit_export(&remote, tenant, since, format).await,
    };
    let mut query = Vec::new();
    query.extend(since.map(|s| ("since", s)));
    query.extend(until.map(|s| ("until", s)));
    query.extend(action.map(|s| ("action", s)));
    let v = list_all(
        &remote,
        &format!("/tenants/{}/audit-events", seg(&tenant)),
        &query,
        Some(usize::try_from(limit).unwrap_or(usize::MAX)),
    )
    .await?;
    print(&remote, &v, |v| {
        table(
            v,
            &[
                "occurred_at_rfc3339",
                "action",
                "outcome",
                "actor",
                "target",
                "reason",
                "request_id",
            ],
        )
    });
    Ok(())
}

async fn audit_verify(remote: &Remote) -> anyhow::Result<()> {
    let client = crate::client::AdminClient::new(remote)?;
    let v = client.call(Method::GET, "/audit/verify", &[], None).await?;
    print(remote, &v, |v| format!("{}\n", field(v, "message")));
    if v["ok"].as_bool() != Some(true) {
        // The report is printed; the exit status says it is broken.
        std::process::exit(1);
    }
    Ok(())
}

async fn audit_export(
    remote: &Remote,
    tenant: Option<String>,
    since: Option<String>,
    format: String,
) -> anyhow::Result<()> {
    if format != "jsonl" {
        anyhow::bail!("--format must be jsonl");
    }
    let client = crate::client::AdminClient::new(remote)?;
    let mut query = vec![("format", format)];
    query.extend(since.map(|s| ("since", s)));
    let path = match tenant {
        Some(t) => format!("/tenants/{}/audit-events/export", seg(&t)),
        None => "/audit-events/export".to_owned(),
    };
    let mut out = std::io::stdout();
    client.stream_to(&path, &query, &mut out).await?;
    Ok(())
}

pub async fn list_signing_keys(remote: &Remote) -> anyhow::Result<()> {
    let v = list_all(remote, "/signing-keys", &[], None).await?;
    print(remote, &v, |v| {
        table(v, &["kid", "algorithm", "state", "kek_id", "created_at"])
    });
    Ok(())
}

fn client_text(v: &Value) -> String {
    let list = |k: &str| {
        v[k].as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default()
    };
    let mut out = format!(
        "client_id: {}\ntenant: {}\nname: {}\nstatus: {}\nclient_type: {}\napplication_type: {}\nauth_method: {}\ngrant_types: {}\nscopes: {}\naudiences: {}\naccess_token_ttl_secs: {}\nlast_used_at: {}\narchived_at: {}\n",
        field(v, "client_id"),
        field(v, "tenant"),
        field(v, "name"),
        field(v, "status"),
        field(v, "client_type"),
        field(v, "application_type"),
        field(v, "auth_method"),
        list("grant_types"),
        list("scopes"),
        list("audiences"),
        v["access_token_ttl_secs"],
        field(v, "last_used_at"),
        field(v, "archived_at"),
    );
    for (key, label) in [
        ("redirect_uris", "redirect_uris"),
        ("post_logout_redirect_uris", "post_logout_redirect_uris"),
        ("allowed_web_origins", "allowed_web_origins"),
    ] {
        if v[key].as_array().is_some_and(|a| !a.is_empty()) {
            out.push_str(&format!("{label}: {}\n", list(key)));
        }
    }
    if v["first_party"] == json!(true) {
        out.push_str("first_party: true\n");
    }
    if let Some(uri) = v["backchannel_logout_uri"].as_str() {
        out.push_str(&format!("backchannel_logout_uri: {uri}\n"));
        if v["backchannel_logout_session_required"] == json!(true) {
            out.push_str("backchannel_logout_session_required: true\n");
        }
    }
    if v["require_pushed_authorization_requests"] == json!(true) {
        out.push_str("require_pushed_authorization_requests: true\n");
    }
    if v["dpop_bound_access_tokens"] == json!(true) {
        out.push_str("dpop_bound_access_tokens: true\n");
    }
    for member in [
        "tls_client_auth_subject_dn",
        "tls_client_auth_san_dns",
        "tls_client_auth_san_uri",
        "tls_client_auth_san_ip",
        "tls_client_auth_san_email",
    ] {
        if let Some(value) = v[member].as_str() {
            out.push_str(&format!("{member}: {value}\n"));
        }
    }
    if v["tls_client_certificate_bound_access_tokens"] == json!(true) {
        out.push_str("tls_client_certificate_bound_access_tokens: true\n");
    }
    if let Some(secret) = v["client_secret"].as_str() {
        out.push_str(&format!(
            "client_secret: {secret}\n(the secret is shown only this once)\n"
        ));
    }
    if v["secrets"].is_array() {
        out.push_str("secrets:\n");
        out.push_str(&table(
            &v["secrets"],
            &["display_prefix", "created_at", "expires_at", "last_used_at"],
        ));
    }
    out
}

pub async fn resource_server(cmd: ResourceServerCommand) -> anyhow::Result<()> {
    match cmd {
        ResourceServerCommand::Create {
            tenant,
            audience,
            name,
            scopes,
            remote,
        } => {
            let mut body = json!({ "audience": audience, "scopes": scopes });
            if let Some(name) = name {
                body["name"] = json!(name);
            }
            fetch_and_print(
                &remote,
                Method::POST,
                &format!("/tenants/{}/resource-servers", seg(&tenant)),
                &[],
                Some(body),
                |v| {
                    format!(
                        "id: {}\naudience: {}\nscopes: {}\n",
                        field(v, "id"),
                        field(v, "audience"),
                        v["scopes"]
                    )
                },
            )
            .await?;
        }
        ResourceServerCommand::List {
            tenant,
            include_archived,
            remote,
        } => {
            list_and_print(
                &remote,
                &format!("/tenants/{}/resource-servers", seg(&tenant)),
                &archived_query(include_archived),
                |v| table(v, &["id", "audience", "name", "created_at", "archived_at"]),
            )
            .await?;
        }
        ResourceServerCommand::Show { tenant, id, remote } => {
            fetch_and_print(
                &remote,
                Method::GET,
                &format!("/tenants/{}/resource-servers/{}", seg(&tenant), seg(&id)),
                &[],
                None,
                |v| {
                    format!(
                        "id: {}\naudience: {}\nscopes: {}\nintrospection credentials:\n{}",
                        field(v, "id"),
                        field(v, "audience"),
                        v["scopes"],
                        table(
                            &v["secrets"],
                            &[
                                "id",
                                "display_prefix",
                                "created_at",
                                "expires_at",
                                "last_used_at"
                            ]
                        )
                    )
                },
            )
            .await?;
        }
        ResourceServerCommand::RotateSecret {
            tenant,
            id,
            overlap,
            environment,
            remote,
        } => {
            let mut body = json!({});
            if let Some(o) = overlap {
                body["overlap_secs"] = json!(o);
            }
            if let Some(e) = environment {
                body["environment"] = json!(e);
            }
            fetch_and_print(
                &remote,
                Method::POST,
                &format!(
                    "/tenants/{}/resource-servers/{}/rotate-secret",
                    seg(&tenant),
                    seg(&id)
                ),
                &[],
                Some(body),
                |v| {
                    format!(
                        "client_id: {}\nclient_secret: {}\nprevious secrets expire at: {}\n\
                         (use these at the introspection endpoint; the secret is shown only this once)\n",
                        field(v, "client_id"),
                        field(v, "client_secret"),
                        field(v, "previous_secrets_expire_at")
                    )
                },
            )
            .await?;
        }
        ResourceServerCommand::Archive { tenant, id, remote } => {
            fetch_and_print(
                &remote,
                Method::POST,
                &format!(
                    "/tenants/{}/resource-servers/{}/archive",
                    seg(&tenant),
                    seg(&id)
                ),
                &[],
                None,
                |v| {
                    format!(
                        "id: {}\naudience: {}\narchived_at: {}\n",
                        field(v, "id"),
                        field(v, "audience"),
                        field(v, "archived_at")
                    )
                },
            )
            .await?;
        }
    }
    Ok(())
}

pub async fn client(cmd: ClientCommand) -> anyhow::Result<()> {
    match cmd {
        ClientCommand::Create {
            tenant,
            name,
            scopes,
            audiences,
            auth_method,
            app,
            tls,
            certificate_bound_tokens,
            client_type,
            application_type,
            jwks_file,
            jwks_uri,
            access_token_ttl,
            environment,
            secret_expires_in,
            introspection,
            remote,
        } => {
            let jwks: Option<Value> = match jwks_file {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("could not read {}", path.display()))?;
                    Some(
                        serde_json::from_str(&text)
                            .with_context(|| format!("{} is not JSON", path.display()))?,
                    )
                }
                None => None,
            };
            let mut body = json!({
                "name": name,
                "scopes": scopes,
                "audiences": audiences,
                "introspection": introspection,
            });
            if let Some(m) = auth_method {
                body["auth_method"] = json!(m);
            }
            if let Some(t) = access_token_ttl {
                body["access_token_ttl_secs"] = json!(t);
            }
            if let Some(t) = secret_expires_in {
                body["secret_expires_in_secs"] = json!(t);
            }
            if let Some(j) = jwks {
                body["jwks"] = j;
            }
            if let Some(u) = jwks_uri {
                body["jwks_uri"] = json!(u);
            }
            if let Some(e) = environment {
                body["environment"] = json!(e);
            }
            if let Some(t) = client_type {
                body["client_type"] = json!(t);
            }
            if let Some(t) = application_type {
                body["application_type"] = json!(t);
            }
            app.fill(&mut body);
            tls.fill(&mut body);
            if certificate_bound_tokens {
                body["tls_client_certificate_bound_access_tokens"] = json!(true);
            }
            fetch_and_print(
                &remote,
                Method::POST,
                &format!("/tenants/{}/clients", seg(&tenant)),
                &[],
                Some(body),
                client_text,
            )
            .await?;
        }
        ClientCommand::Update {
            tenant,
            id,
            name,
            scopes,
            audiences,
            app,
            clear_redirect_uris,
            clear_post_logout_redirect_uris,
            clear_web_origins,
            clear_backchannel_logout_uri,
            not_first_party,
            no_require_par,
            no_require_dpop,
            tls,
            certificate_bound_tokens,
            no_certificate_bound_tokens,
            remote,
        } => {
            let mut body = json!({});
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            if !scopes.is_empty() {
                body["scopes"] = json!(scopes);
            }
            if !audiences.is_empty() {
                body["audiences"] = json!(audiences);
            }
            app.fill(&mut body);
            let empty: [&str; 0] = [];
            if clear_redirect_uris {
                body["redirect_uris"] = json!(empty);
            }
            if clear_post_logout_redirect_uris {
                body["post_logout_redirect_uris"] = json!(empty);
            }
            if clear_web_origins {
                body["allowed_web_origins"] = json!(empty);
            }
            if not_first_party {
                body["first_party"] = json!(false);
            }
            if clear_backchannel_logout_uri {
                body["backchannel_logout_uri"] = json!("");
            }
            if no_require_par {
                body["require_pushed_authorization_requests"] = json!(false);
            }
            if no_require_dpop {
                body["dpop_bound_access_tokens"] = json!(false);
            }
            tls.fill(&mut body);
            if certificate_bound_tokens || no_certificate_bound_tokens {
                body["tls_client_certificate_bound_access_tokens"] =
                    json!(certificate_bound_tokens);
            }
            fetch_and_print(
                &remote,
                Method::PATCH,
                &format!("/tenants/{}/clients/{}", seg(&tenant), seg(&id)),
                &[],
                Some(body),
                client_text,
            )
            .await?;
        }
        ClientCommand::List {
            tenant,
            include_archived,
            remote,
        } => {
            list_and_print(
                &remote,
                &format!("/tenants/{}/clients", seg(&tenant)),
                &archived_query(include_archived),
                |v| {
                    table(
                        v,
                        &[
                            "client_id",
                            "name",
                            "status",
                            "auth_method",
                            "last_used_at",
                            "archived_at",
                        ],
                    )
                },
            )
            .await?;
        }
        ClientCommand::Show { tenant, id, remote } => {
            fetch_and_print(
                &remote,
                Method::GET,
                &format!("/tenants/{}/clients/{}", seg(&tenant), seg(&id)),
                &[],
                None,
                client_text,
            )
            .await?;
        }
        ClientCommand::RotateSecret {
            tenant,
            id,
            overlap,
            secret_expires_in,
            remote,
        } => {
            let mut body = json!({});
            if let Some(o) = overlap {
                body["overlap_secs"] = json!(o);
            }
            if let Some(t) = secret_expires_in {
                body["secret_expires_in_secs"] = json!(t);
            }
            fetch_and_print(&remote, Method::POST,
                    &format!(
                        "/tenants/{}/clients/{}/rotate-secret",
                        seg(&tenant),
                        seg(&id)
                    ),
                    &[],
                    Some(body), |v| {
                format!(
                    "client_id: {}\nclient_secret: {}\nprevious secrets expire at: {}\n(the secret is shown only this once)\n",
                    field(v, "client_id"),
                    field(v, "client_secret"),
                    field(v, "previous_secrets_expire_at")
                )
            }).await?;
        }
        ClientCommand::Disable { tenant, id, remote } => {
            client_status_action(&remote, &tenant, &id, "disable").await?
        }
        ClientCommand::Enable { tenant, id, remote } => {
            client_status_action(&remote, &tenant, &id, "enable").await?
        }
        ClientCommand::Archive { tenant, id, remote } => {
            fetch_and_print(
                &remote,
                Method::POST,
                &format!("/tenants/{}/clients/{}/archive", seg(&tenant), seg(&id)),
                &[],
                None,
                client_text,
            )
            .await?;
        }
    }
    Ok(())
}

pub async fn rotate_signing_key(remote: &Remote) -> anyhow::Result<()> {
    let v = AdminClient::new(remote)?
        .call(Method::POST, "/signing-keys/rotate", &[], None)
        .await?;
    print(remote, &v, |v| {
        format!(
            "kid: {}\nstate: {}\nsigns from: {}\n",
            field(v, "kid"),
            field(v, "state"),
            field(v, "activates_at")
        )
    });
    Ok(())
}

pub async fn revoke_signing_key(kid: &str, remote: &Remote) -> anyhow::Result<()> {
    AdminClient::new(remote)?
        .call(
            Method::POST,
            &format!("/signing-keys/{}/revoke", seg(kid)),
            &[],
            None,
        )
        .await?;
    print(remote, &json!({ "revoked": kid }), |_| {
        format!("revoked {kid}\n")
    });
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key. The key is shown only this once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// The partner or consumer the key is issued to.
        #[arg(long)]
        owner: String,
        #[arg(long, default_value = "")]
        description: String,
        /// `live`, `test`, ...
        #[arg(long, default_value = "live")]
        environment: String,
        /// Granted scopes (comma-separated or repeated).
        #[arg(long = "scope", alias = "scopes", value_delimiter = ',')]
        scopes: Vec<String>,
        /// Allowed audiences (comma-separated or repeated).
        #[arg(long = "audience", value_delimiter = ',')]
        audiences: Vec<String>,
        /// A CIDR or address the key may be used from; repeat for several.
        #[arg(long = "allow-ip")]
        allow_ips: Vec<String>,
        /// Lifetime (`90d`, `12h`) or `never`; default: the tenant's policy.
        #[arg(long)]
        expires_in: Option<String>,
        /// Rate limit as `<requests>/<seconds>`, e.g. `100/60`.
        #[arg(long)]
        rate_limit: Option<String>,
        /// Metadata as a JSON object.
        #[arg(long)]
        metadata: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List a tenant's keys (never the secrets).
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        environment: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one key.
    Show {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Change a key's attributes.
    Update {
        #[arg(long)]
        tenant: String,
        id: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Replaces the scopes (comma-separated or repeated).
        #[arg(long = "scope", alias = "scopes", value_delimiter = ',')]
        scopes: Vec<String>,
        /// Replaces the IP allowlist; repeat for several.
        #[arg(long = "allow-ip")]
        allow_ips: Vec<String>,
        /// Removes the IP allowlist.
        #[arg(long, conflicts_with = "allow_ips")]
        clear_allow_ip: bool,
        #[arg(long)]
        metadata: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Disable a key (reversible).
    Disable {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Re-enable a disabled key.
    Enable {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Revoke a key for good, or every key of an owner (`--owner`).
    Revoke {
        #[arg(long)]
        tenant: String,
        #[arg(required_unless_present = "owner", conflicts_with = "owner")]
        id: Option<String>,
        /// Revoke every key issued to this owner (partner offboarding).
        #[arg(long)]
        owner: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
    /// Issue a replacement key; the old one keeps working for `--overlap`.
    Rotate {
        #[arg(long)]
        tenant: String,
        id: String,
        /// How long the old key keeps working: a duration such as `1h` or `30m` (default `24h`,
        /// so callers can switch over; `0` = stops at once, for a leaked key; a bare number
        /// is seconds).
        #[arg(long, default_value = "24h", value_parser = parse_duration_secs)]
        overlap: u64,
        #[arg(long)]
        expires_in: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
}

fn key_text(v: &Value) -> String {
    let list = |key: &str| {
        v[key]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_else(|| "-".into())
    };
    let mut out = String::new();
    for k in [
        "id",
        "display_prefix",
        "status",
        "environment",
        "name",
        "owner",
        "created_at",
        "expires_at",
        "replaced_by",
        "rotation_overlap_ends_at",
        "last_used_at",
        "last_used_ip",
    ] {
        out.push_str(&format!("{k}: {}\n", field(v, k)));
    }
    out.push_str(&format!("scopes: {}\n", list("scopes")));
    out.push_str(&format!("ip_allowlist: {}\n", list("ip_allowlist")));
    out
}

fn created_text(v: &Value) -> String {
    format!(
        "{}key: {}\n(the key is shown only this once)\n",
        key_text(v),
        field(v, "key")
    )
}

fn parse_metadata(m: Option<String>) -> anyhow::Result<Option<Value>> {
    m.map(|m| {
        serde_json::from_str::<Value>(&m)
            .map_err(|e| anyhow::anyhow!("--metadata is not JSON: {e}"))
    })
    .transpose()
}

pub async fn api_key(cmd: ApiKeyCommand) -> anyhow::Result<()> {
    let base = |tenant: &str| format!("/tenants/{}/api-keys", seg(tenant));
    match cmd {
        ApiKeyCommand::Create {
            tenant,
            name,
            owner,
            description,
            environment,
            scopes,
            audiences,
            allow_ips,
            expires_in,
            rate_limit,
            metadata,
            remote,
        } => {
            let mut body = json!({
                "name": name,
                "owner": owner,
                "description": description,
                "environment": environment,
                "scopes": scopes,
            });
            if !audiences.is_empty() {
                body["audiences"] = json!(audiences);
            }
            if !allow_ips.is_empty() {
                body["ip_allowlist"] = json!(allow_ips);
            }
            if let Some(e) = expires_in {
                body["expires_in"] = json!(e);
            }
            if let Some(r) = rate_limit {
                let (n, w) = r
                    .split_once('/')
                    .and_then(|(n, w)| Some((n.parse::<u32>().ok()?, w.parse::<u32>().ok()?)))
                    .ok_or_else(|| {
                        anyhow::anyhow!("--rate-limit is <requests>/<seconds>, e.g. 100/60")
                    })?;
                body["rate_limit"] = json!({"requests": n, "window_secs": w});
            }
            if let Some(m) = parse_metadata(metadata)? {
                body["metadata"] = m;
            }
            fetch_and_print(
                &remote,
                Method::POST,
                &base(&tenant),
                &[],
                Some(body),
                created_text,
            )
            .await?;
        }
        ApiKeyCommand::List {
            tenant,
            environment,
            owner,
            remote,
        } => {
            let mut query = Vec::new();
            query.extend(environment.map(|e| ("environment", e)));
            query.extend(owner.map(|o| ("owner", o)));
            list_and_print(&remote, &base(&tenant), &query, |v| {
                table(
                    v,
                    &[
                        "id",
                        "environment",
                        "status",
                        "owner",
                        "name",
                        "expires_at",
                        "replaced_by",
                        "last_used_at",
                    ],
                )
            })
            .await?;
        }
        ApiKeyCommand::Show { tenant, id, remote } => {
            fetch_and_print(
                &remote,
                Method::GET,
                &format!("{}/{}", base(&tenant), seg(&id)),
                &[],
                None,
                key_text,
            )
            .await?;
        }
        ApiKeyCommand::Update {
            tenant,
            id,
            name,
            description,
            scopes,
            allow_ips,
            clear_allow_ip,
            metadata,
            remote,
        } => {
            let mut body = json!({});
            if let Some(n) = name {
                body["name"] = json!(n);
            }
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            if !scopes.is_empty() {
                body["scopes"] = json!(scopes);
            }
            if clear_allow_ip {
                body["ip_allowlist"] = json!([]);
            } else if !allow_ips.is_empty() {
                body["ip_allowlist"] = json!(allow_ips);
            }
            if let Some(m) = parse_metadata(metadata)? {
                body["metadata"] = m;
            }
            fetch_and_print(
                &remote,
                Method::PATCH,
                &format!("{}/{}", base(&tenant), seg(&id)),
                &[],
                Some(body),
                key_text,
            )
            .await?;
        }
        ApiKeyCommand::Disable { tenant, id, remote } => {
            key_action(&remote, &format!("{}/{}/disable", base(&tenant), seg(&id))).await?
        }
        ApiKeyCommand::Enable { tenant, id, remote } => {
            key_action(&remote, &format!("{}/{}/enable", base(&tenant), seg(&id))).await?
        }
        ApiKeyCommand::Revoke {
            tenant,
            id,
            owner,
            remote,
        } => match (id, owner) {
            (_, Some(owner)) => {
                fetch_and_print(
                    &remote,
                    Method::POST,
                    &format!("{}/revoke-by-owner", base(&tenant)),
                    &[],
                    Some(json!({ "owner": owner })),
                    |v| {
                        let ids: Vec<&str> = v["revoked"]
                            .as_array()
                            .map(|a| a.iter().filter_map(Value::as_str).collect())
                            .unwrap_or_default();
                        format!("revoked {} key(s): {}\n", ids.len(), ids.join(" "))
                    },
                )
                .await?;
            }
            (Some(id), None) => {
                key_action(&remote, &format!("{}/{}/revoke", base(&tenant), seg(&id))).await?
            }
            (None, None) => anyhow::bail!("give a key id or --owner"),
        },
        ApiKeyCommand::Rotate {
            tenant,
            id,
            overlap,
            expires_in,
            remote,
        } => {
            let mut body = json!({ "overlap": format!("{overlap}s") });
            if let Some(e) = expires_in {
                body["expires_in"] = json!(e);
            }
            fetch_and_print(
                &remote,
                Method::POST,
                &format!("{}/{}/rotate", base(&tenant), seg(&id)),
                &[],
                Some(body),
                |v| {
                    format!(
                        "new key:\n{}\nold key:\n{}",
                        created_text(&v["new"]),
                        key_text(&v["old"])
                    )
                },
            )
            .await?;
        }
    }
    Ok(())
}

async fn key_action(remote: &Remote, path: &str) -> anyhow::Result<()> {
    let v = AdminClient::new(remote)?
        .call(Method::POST, path, &[], None)
        .await?;
    print(remote, &v, key_text);
    Ok(())
}
