//! `portcullis alerts list|show|ack|resolve`: the detectors' alerts through the admin API.
//! Each subcommand is one call; this module only maps arguments to it and prints.

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use crate::client::AdminClient;
use crate::commands::{field, list_all, print, seg, table};
use crate::Remote;

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// List alerts, newest first: a tenant's, or without --tenant every tenant's (global admins).
    List {
        #[arg(long)]
        tenant: Option<String>,
        /// open, acknowledged or resolved.
        #[arg(long)]
        status: Option<String>,
        /// A rule name (failed_auth_spike, credential_stuffing, unusual_refresh, ...: see docs/alerts.md).
        #[arg(long)]
        rule: Option<String>,
        /// At most this many alerts in all, newest first (read page by page).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one alert with its evidence.
    Show {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Acknowledge an open alert (someone is on it; new findings still add to it).
    Ack {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Resolve an alert (the next finding for the same rule and subject opens a new one).
    Resolve {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

const COLUMNS: [&str; 7] = [
    "id",
    "tenant",
    "rule",
    "subject",
    "status",
    "count",
    "last_seen",
];

fn alert_text(v: &Value) -> String {
    let mut out = String::new();
    for k in [
        "id",
        "tenant",
        "rule",
        "subject",
        "status",
        "first_seen",
        "last_seen",
        "acknowledged_by",
        "resolved_by",
    ] {
        out.push_str(&format!("{k}: {}\n", field(v, k)));
    }
    out.push_str(&format!("count: {}\nshadow: {}\n", v["count"], v["shadow"]));
    out.push_str(&format!(
        "evidence: {}\n",
        serde_json::to_string_pretty(&v["evidence"]).unwrap_or_default()
    ));
    out
}

pub async fn run(cmd: AlertsCommand) -> anyhow::Result<()> {
    match cmd {
        AlertsCommand::List {
            tenant,
            status,
            rule,
            limit,
            remote,
        } => {
            let mut query = Vec::new();
            query.extend(status.map(|s| ("status", s)));
            query.extend(rule.map(|s| ("rule", s)));
            let path = match &tenant {
                Some(t) => format!("/tenants/{}/alerts", seg(t)),
                None => "/alerts".to_owned(),
            };
            let max = usize::try_from(limit).unwrap_or(usize::MAX);
            let v = list_all(&remote, &path, &query, Some(max)).await?;
            print(&remote, &v, |v| table(v, &COLUMNS));
        }
        AlertsCommand::Show { tenant, id, remote } => {
            let v = AdminClient::new(&remote)?
                .call(
                    Method::GET,
                    &format!("/tenants/{}/alerts/{}", seg(&tenant), seg(&id)),
                    &[],
                    None,
                )
                .await?;
            print(&remote, &v, alert_text);
        }
        AlertsCommand::Ack { tenant, id, remote } => change(&tenant, &id, "ack", &remote).await?,
        AlertsCommand::Resolve { tenant, id, remote } => {
            change(&tenant, &id, "resolve", &remote).await?
        }
    }
    Ok(())
}

async fn change(tenant: &str, id: &str, verb: &str, remote: &Remote) -> anyhow::Result<()> {
    let v = AdminClient::new(remote)?
        .call(
            Method::POST,
            &format!("/tenants/{}/alerts/{}/{verb}", seg(tenant), seg(id)),
            &[],
            None,
        )
        .await?;
    print(remote, &v, alert_text);
    Ok(())
}
