//! Admin subcommands: each maps to one admin API call and prints text or JSON.

use clap::Subcommand;
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
    /// List tenants.
    List {
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
    /// Re-enable a disabled tenant.
    Enable {
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub enum AdminTokenCommand {
    /// Create an admin token for a tenant (`system` for a global admin). Shown once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
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
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        remote: Remote,
    },
}

/// Path segments typed by the user are percent-encoded so they cannot change the route.
fn seg(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn print(remote: &Remote, value: &Value, text: impl FnOnce(&Value) -> String) {
    match remote.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
        ),
        Output::Text => print!("{}", text(value)),
    }
}

fn field<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("-")
}

fn table(rows: &Value, columns: &[&str]) -> String {
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
        "id: {}\ndisplay_name: {}\nstatus: {}\ncreated_at: {}\nupdated_at: {}\n",
        field(v, "id"),
        field(v, "display_name"),
        field(v, "status"),
        field(v, "created_at"),
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
            let v = AdminClient::new(&remote)?
                .call(Method::POST, "/tenants", &[], Some(body))
                .await?;
            print(&remote, &v, tenant_text);
        }
        TenantCommand::List { remote } => {
            let v = AdminClient::new(&remote)?
                .call(Method::GET, "/tenants", &[], None)
                .await?;
            print(&remote, &v, |v| {
                table(v, &["id", "status", "display_name", "created_at"])
            });
        }
        TenantCommand::Show { id, remote } => {
            let v = AdminClient::new(&remote)?
                .call(Method::GET, &format!("/tenants/{}", seg(&id)), &[], None)
                .await?;
            print(&remote, &v, tenant_text);
        }
        TenantCommand::Disable { id, remote } => set_tenant_status(&id, &remote, "disable").await?,
        TenantCommand::Enable { id, remote } => set_tenant_status(&id, &remote, "enable").await?,
    }
    Ok(())
}

async fn set_tenant_status(id: &str, remote: &Remote, verb: &str) -> anyhow::Result<()> {
    let v = AdminClient::new(remote)?
        .call(
            Method::POST,
            &format!("/tenants/{}/{verb}", seg(id)),
            &[],
            None,
        )
        .await?;
    print(remote, &v, tenant_text);
    Ok(())
}

pub async fn admin_token(cmd: AdminTokenCommand) -> anyhow::Result<()> {
    match cmd {
        AdminTokenCommand::Create {
            tenant,
            name,
            remote,
        } => {
            let v = AdminClient::new(&remote)?
                .call(
                    Method::POST,
                    &format!("/tenants/{}/admin-tokens", seg(&tenant)),
                    &[],
                    Some(json!({ "name": name })),
                )
                .await?;
            print(&remote, &v, |v| {
                format!(
                    "id: {}\nrole: {}\ntoken: {}\n(the token is shown only this once)\n",
                    field(v, "id"),
                    field(v, "role"),
                    field(v, "token")
                )
            });
        }
        AdminTokenCommand::List { tenant, remote } => {
            let v = AdminClient::new(&remote)?
                .call(
                    Method::GET,
                    &format!("/tenants/{}/admin-tokens", seg(&tenant)),
                    &[],
                    None,
                )
                .await?;
            print(&remote, &v, |v| {
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
            });
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
    let AuditCommand::List {
        tenant,
        since,
        until,
        action,
        limit,
        remote,
    } = cmd;
    let mut query = vec![("limit", limit.to_string())];
    query.extend(since.map(|s| ("since", s)));
    query.extend(until.map(|s| ("until", s)));
    query.extend(action.map(|s| ("action", s)));
    let v = AdminClient::new(&remote)?
        .call(
            Method::GET,
            &format!("/tenants/{}/audit-events", seg(&tenant)),
            &query,
            None,
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

pub async fn list_signing_keys(remote: &Remote) -> anyhow::Result<()> {
    let v = AdminClient::new(remote)?
        .call(Method::GET, "/signing-keys", &[], None)
        .await?;
    print(remote, &v, |v| {
        table(v, &["kid", "algorithm", "state", "kek_id", "created_at"])
    });
    Ok(())
}
