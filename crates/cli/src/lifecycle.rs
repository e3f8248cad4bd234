//! `portcullis report hygiene`: the credential hygiene report, as a table, JSON or CSV, from one
//! admin API call (docs/hygiene.md; `tenant policy` is in `commands`). This module only maps
//! arguments to the call and prints; the server decides.

use clap::{Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::Value;

use crate::client::AdminClient;
use crate::commands::{field, print_as, seg};
use crate::{Output, Server};

/// The report's formats: every command's, plus CSV of the findings (the report is the one
/// command whose output is rows a spreadsheet wants, so only it takes `--output csv`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportOutput {
    /// Text (tables).
    #[value(alias = "table")]
    Text,
    Json,
    /// Comma-separated values: the findings.
    Csv,
}

/// The server to ask, and the report's format.
#[derive(Debug, clap::Args)]
pub struct ReportRemote {
    #[command(flatten)]
    server: Server,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    output: ReportOutput,
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
        remote: ReportRemote,
    },
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
    let v = AdminClient::for_server(&remote.server)?
        .call(
            Method::GET,
            &format!("/tenants/{}/hygiene-report", seg(&tenant)),
            &query,
            None,
        )
        .await?;
    match remote.output {
        ReportOutput::Csv => print!("{}", hygiene_csv(&v)),
        ReportOutput::Text => print_as(Output::Text, &v, hygiene_text),
        ReportOutput::Json => print_as(Output::Json, &v, hygiene_text),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
