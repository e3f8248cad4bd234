//! `portcullis tenant policy show|set|enforce` (a tenant's credential lifetime policy) and
//! `portcullis report hygiene` (the credential hygiene report, as a table, JSON or CSV), each
//! one admin API call (docs/hygiene.md). This module only maps arguments to the call and
//! prints; the server decides.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::AdminClient;
use crate::commands::{field, print, seg, table};
use crate::{Output, Remote};

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
pub enum ReportCommand {
    /// Credentials never or long unused, never expiring, not rotated, used from several
    /// networks, outside the lifetime policy; rules and redirect URIs never matched; strong
    /// credentials and keys by age. `--output text` (a table), `json` or `csv` (findings).
    Hygiene {
        #[arg(long)]
        tenant: String,
        /// A credential unused this many days is reported (default 90).
        #[arg(long)]
        unused_days: Option<u64>,
        /// A credential older than this many days is reported as not rotated (default 365).
        #[arg(long)]
        max_age_days: Option<u64>,
        /// A signing key or KEK older than this many days is reported (default 180).
        #[arg(long)]
        key_max_age_days: Option<u64>,
        #[command(flatten)]
        remote: Remote,
    },
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
    out.push_str(&table(&v["non_compliant"], &["kind", "id", "label", "violation"]));
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

pub async fn policy(cmd: PolicyCommand) -> anyhow::Result<()> {
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
    let v = AdminClient::new(&remote)?
        .call(method, &path, &[], body)
        .await?;
    print(&remote, &v, text);
    Ok(())
}

const FINDING_COLUMNS: [&str; 6] = [
    "finding",
    "subject_kind",
    "subject",
    "label",
    "age_days",
    "detail",
];

fn cell(v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One CSV field (RFC 4180): quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The findings as CSV, one header line then one line per finding.
pub fn hygiene_csv(v: &Value) -> String {
    let mut out = FINDING_COLUMNS.join(",") + "\n";
    for f in v["findings"].as_array().into_iter().flatten() {
        let row: Vec<String> = FINDING_COLUMNS
            .iter()
            .map(|c| csv_field(&cell(&f[*c])))
            .collect();
        out.push_str(&row.join(","));
        out.push('\n');
    }
    out
}

fn rows(v: &Value, columns: &[&str]) -> String {
    let mut out = columns.join("\t").to_uppercase() + "\n";
    for r in v.as_array().into_iter().flatten() {
        let cells: Vec<String> = columns.iter().map(|c| cell(&r[*c])).collect();
        out.push_str(&cells.join("\t"));
        out.push('\n');
    }
    out
}

fn hygiene_text(v: &Value) -> String {
    let mut out = format!(
        "tenant: {}\ngenerated_at: {}\nunused_days: {}\n\nFINDINGS\n",
        field(v, "tenant"),
        field(v, "generated_at"),
        cell(&v["unused_days"])
    );
    out.push_str(&rows(&v["findings"], &FINDING_COLUMNS));
    out.push_str("\nINVENTORY (oldest first)\n");
    out.push_str(&rows(
        &v["inventory"],
        &["subject_kind", "subject", "label", "age_days"],
    ));
    out.push_str("\nNOTES\n");
    for n in v["notes"].as_array().into_iter().flatten() {
        out.push_str(&format!("- {}\n", n.as_str().unwrap_or_default()));
    }
    out
}

pub async fn report(cmd: ReportCommand) -> anyhow::Result<()> {
    let ReportCommand::Hygiene {
        tenant,
        unused_days,
        max_age_days,
        key_max_age_days,
        remote,
    } = cmd;
    let mut query = Vec::new();
    for (k, v) in [
        ("unused_days", unused_days),
        ("max_age_days", max_age_days),
        ("key_max_age_days", key_max_age_days),
    ] {
        if let Some(v) = v {
            query.push((k, v.to_string()));
        }
    }
    let v = AdminClient::new(&remote)?
        .call(
            Method::GET,
            &format!("/tenants/{}/hygiene-report", seg(&tenant)),
            &query,
            None,
        )
        .await?;
    if remote.output == Output::Csv {
        print!("{}", hygiene_csv(&v));
    } else {
        print(&remote, &v, hygiene_text);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let v = json!({"findings": [
            {"finding": "many_networks", "subject_kind": "client_secret", "subject": "s1",
             "label": "cl_a, \"b\"", "age_days": 3, "detail": "10.0.0.0/24 192.0.2.0/24"},
        ]});
        assert_eq!(
            hygiene_csv(&v),
            "finding,subject_kind,subject,label,age_days,detail\n\
             many_networks,client_secret,s1,\"cl_a, \"\"b\"\"\",3,10.0.0.0/24 192.0.2.0/24\n"
        );
    }
}
