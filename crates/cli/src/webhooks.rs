//! `portcullis webhooks create|list|show|delete|rotate-secret|deliveries|redeliver`: webhook
//! endpoints for alerts and their deliveries through the admin API. Without `--tenant` each
//! acts on the installation's endpoints (every tenant's alerts; global admins). Each
//! subcommand is one call; this module only maps arguments to it and prints.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::AdminClient;
use crate::commands::{field, list_all, print, seg, table};
use crate::Remote;

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Register an endpoint; prints its signing secret, shown this once.
    Create {
        /// The tenant whose alerts it receives; without it, every tenant's (global admins).
        #[arg(long)]
        tenant: Option<String>,
        /// https URL the alerts are POSTed to.
        #[arg(value_name = "URL")]
        endpoint_url: String,
        #[arg(long, default_value = "")]
        description: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List endpoints, newest first.
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one endpoint (never its secret).
    Show {
        #[arg(long)]
        tenant: Option<String>,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Delete an endpoint and its queued deliveries.
    Delete {
        #[arg(long)]
        tenant: Option<String>,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Replace an endpoint's secret at once; prints the new one, shown this once.
    RotateSecret {
        #[arg(long)]
        tenant: Option<String>,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// List deliveries, newest first; `--status dead` is the dead-letter list.
    Deliveries {
        #[arg(long)]
        tenant: Option<String>,
        /// pending, delivered or dead.
        #[arg(long)]
        status: Option<String>,
        /// Only this endpoint's.
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        remote: Remote,
    },
    /// Queue a dead-lettered delivery again (its attempts start over).
    Redeliver {
        #[arg(long)]
        tenant: Option<String>,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

const COLUMNS: [&str; 4] = ["id", "tenant", "url", "description"];
const DELIVERY_COLUMNS: [&str; 7] = [
    "id",
    "endpoint_id",
    "rule",
    "type",
    "status",
    "attempts",
    "last_error",
];

fn base(tenant: Option<&str>, what: &str) -> String {
    match tenant {
        Some(t) => format!("/tenants/{}/{what}", seg(t)),
        None => format!("/{what}"),
    }
}

fn endpoint_text(v: &Value) -> String {
    let mut out = String::new();
    for k in [
        "id",
        "tenant",
        "url",
        "description",
        "created_at",
        "secret_rotated_at",
    ] {
        out.push_str(&format!("{k}: {}\n", field(v, k)));
    }
    if let Some(secret) = v["secret"].as_str() {
        out.push_str(&format!(
            "secret: {secret}\n(shown once: store it in the receiver, which verifies every \
             webhook-signature with it)\n"
        ));
    }
    out
}

fn delivery_text(v: &Value) -> String {
    let mut out = String::new();
    for k in [
        "id",
        "endpoint_id",
        "tenant",
        "alert_id",
        "rule",
        "type",
        "status",
        "next_attempt_at",
        "last_error",
    ] {
        out.push_str(&format!("{k}: {}\n", field(v, k)));
    }
    out.push_str(&format!("attempts: {}\n", v["attempts"]));
    out
}

pub async fn run(cmd: WebhooksCommand) -> anyhow::Result<()> {
    match cmd {
        WebhooksCommand::Create {
            tenant,
            endpoint_url,
            description,
            remote,
        } => {
            let body = json!({ "url": endpoint_url, "description": description });
            let v = AdminClient::new(&remote)?
                .call(
                    Method::POST,
                    &base(tenant.as_deref(), "webhooks"),
                    &[],
                    Some(body),
                )
                .await?;
            print(&remote, &v, endpoint_text);
        }
        WebhooksCommand::List {
            tenant,
            limit,
            remote,
        } => {
            let max = usize::try_from(limit).unwrap_or(usize::MAX);
            let v = list_all(
                &remote,
                &base(tenant.as_deref(), "webhooks"),
                &[],
                Some(max),
            )
            .await?;
            print(&remote, &v, |v| table(v, &COLUMNS));
        }
        WebhooksCommand::Show { tenant, id, remote } => {
            let path = format!("{}/{}", base(tenant.as_deref(), "webhooks"), seg(&id));
            let v = AdminClient::new(&remote)?
                .call(Method::GET, &path, &[], None)
                .await?;
            print(&remote, &v, endpoint_text);
        }
        WebhooksCommand::Delete { tenant, id, remote } => {
            let path = format!("{}/{}", base(tenant.as_deref(), "webhooks"), seg(&id));
            AdminClient::new(&remote)?
                .call(Method::DELETE, &path, &[], None)
                .await?;
            println!("deleted {id}");
        }
        WebhooksCommand::RotateSecret { tenant, id, remote } => {
            let path = format!(
                "{}/{}/rotate-secret",
                base(tenant.as_deref(), "webhooks"),
                seg(&id)
            );
            let v = AdminClient::new(&remote)?
                .call(Method::POST, &path, &[], None)
                .await?;
            print(&remote, &v, endpoint_text);
        }
        WebhooksCommand::Deliveries {
            tenant,
            status,
            endpoint,
            limit,
            remote,
        } => {
            let mut query = Vec::new();
            query.extend(status.map(|s| ("status", s)));
            query.extend(endpoint.map(|s| ("endpoint", s)));
            let max = usize::try_from(limit).unwrap_or(usize::MAX);
            let path = base(tenant.as_deref(), "webhook-deliveries");
            let v = list_all(&remote, &path, &query, Some(max)).await?;
            print(&remote, &v, |v| table(v, &DELIVERY_COLUMNS));
        }
        WebhooksCommand::Redeliver { tenant, id, remote } => {
            let path = format!(
                "{}/{}/redeliver",
                base(tenant.as_deref(), "webhook-deliveries"),
                seg(&id)
            );
            let v = AdminClient::new(&remote)?
                .call(Method::POST, &path, &[], None)
                .await?;
            print(&remote, &v, delivery_text);
        }
    }
    Ok(())
}
