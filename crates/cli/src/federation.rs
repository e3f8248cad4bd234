//! `portcullis federation issuers|rules ...`: a tenant's trusted external issuers and trust
//! rules (workload identity, docs/workload-identity.md) through the admin API. Each subcommand
//! is one call; this module only maps arguments to it and prints. A rule is read from a JSON
//! file (its conditions are a list of objects), so what is saved is what the operator reviewed.

use std::path::PathBuf;

use anyhow::Context;
use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::AdminClient;
use crate::commands::{print, seg, table};
use crate::Remote;

#[derive(Debug, Subcommand)]
pub enum FederationCommand {
    /// Trusted external issuers: CI platforms, clusters, SPIFFE trust domains.
    #[command(subcommand)]
    Issuers(IssuersCommand),
    /// Trust rules: which external tokens get which tokens here.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Dry-run a token against the tenant's rules and print every check with its result (the
    /// token is not spent). Exits 1 when the token would be refused.
    Test {
        #[arg(long)]
        tenant: String,
        /// A file holding the external token.
        #[arg(long)]
        token: PathBuf,
        /// The rule a request would name.
        #[arg(long)]
        rule: Option<String>,
        /// The scope a request would ask for.
        #[arg(long)]
        scope: Option<String>,
        /// The audience a request would ask for.
        #[arg(long)]
        audience: Option<String>,
        /// Try the token as this client's `client_assertion` (the rules bound to it) rather
        /// than as a workload grant.
        #[arg(long)]
        client: Option<String>,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub enum IssuersCommand {
    /// Trust an issuer. Keys come from its discovery document unless a source is given.
    Add {
        #[arg(long)]
        tenant: String,
        /// github_actions, gitlab, kubernetes, spiffe_jwt_svid, buildkite, circleci, generic_oidc.
        #[arg(long)]
        preset: String,
        /// The tokens' `iss` (default for github_actions, gitlab and buildkite: the hosted one).
        #[arg(long)]
        issuer: Option<String>,
        /// A fixed JWKS URL (https).
        #[arg(long, conflicts_with_all = ["jwks_file", "spiffe_bundle_file"])]
        jwks_uri: Option<String>,
        /// An uploaded JWKS (a cluster's keys: `kubectl get --raw /openid/v1/jwks`).
        #[arg(long, conflicts_with = "spiffe_bundle_file")]
        jwks_file: Option<PathBuf>,
        /// A SPIFFE trust bundle (JWKS form).
        #[arg(long)]
        spiffe_bundle_file: Option<PathBuf>,
        /// Accepted algorithm (repeat; default RS256 and ES256).
        #[arg(long = "algorithm")]
        algorithms: Vec<String>,
        /// Longest subject-token lifetime accepted, in seconds.
        #[arg(long)]
        max_token_age_secs: Option<u64>,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the tenant's trusted issuers.
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Stop trusting an issuer (remove its rules first).
    Remove {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        issuer: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Add a rule from a JSON file (`id`, `issuer`, `audience`, `conditions`, `audiences`,
    /// `scopes`, ...; see docs/workload-identity.md).
    Add {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        file: PathBuf,
        #[command(flatten)]
        remote: Remote,
    },
    /// List the tenant's rules.
    List {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Show one rule.
    Show {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Bind a rule to a workload_identity_jwt client: the client then authenticates with
    /// the external tokens the rule admits (as its client_assertion), and the rule serves no
    /// workload grant. `--unbind` undoes it.
    Bind {
        #[arg(long)]
        tenant: String,
        id: String,
        /// The client (registered with auth_method workload_identity_jwt).
        #[arg(long, required_unless_present = "unbind", conflicts_with = "unbind")]
        client: Option<String>,
        /// Bind the rule to no client: it serves the workload grants again.
        #[arg(long)]
        unbind: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Remove a rule.
    Remove {
        #[arg(long)]
        tenant: String,
        id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

const ISSUER_COLUMNS: [&str; 2] = ["issuer", "preset"];
const RULE_COLUMNS: [&str; 4] = ["id", "issuer", "audience", "client_id"];

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

/// One line per check (`ok` or `FAIL`), then the outcome.
fn explained(v: &Value) -> String {
    let mut out = String::new();
    for c in v["checks"].as_array().into_iter().flatten() {
        let mark = if c["ok"] == Value::Bool(true) {
            "ok  "
        } else {
            "FAIL"
        };
        out.push_str(&format!(
            "{mark} {:<21} {}\n",
            c["check"].as_str().unwrap_or_default(),
            c["detail"].as_str().unwrap_or_default()
        ));
    }
    match v["rule"].as_str() {
        Some(rule) if v["admitted"] == Value::Bool(true) => out.push_str(&format!(
            "admitted by rule {rule}: audience {}, scope \"{}\", {} s\n",
            v["audience"].as_str().unwrap_or_default(),
            v["scope"].as_str().unwrap_or_default(),
            v["lifetime_secs"]
        )),
        _ => out.push_str(
            "refused (the caller would get invalid_grant; invalid_client for a client assertion)\n",
        ),
    }
    out
}

fn read_json(path: &PathBuf) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

pub async fn run(cmd: FederationCommand) -> anyhow::Result<()> {
    match cmd {
        FederationCommand::Issuers(cmd) => issuers(cmd).await,
        FederationCommand::Rules(cmd) => rules(cmd).await,
        FederationCommand::Test {
            tenant,
            token,
            rule,
            scope,
            audience,
            client,
            remote,
        } => {
            let token = std::fs::read_to_string(&token)
                .with_context(|| format!("could not read {}", token.display()))?;
            let v = AdminClient::new(&remote)?
                .call(
                    Method::POST,
                    &format!("/tenants/{}/federation/test", seg(&tenant)),
                    &[],
                    Some(json!({"token": token.trim(), "rule": rule, "scope": scope,
                                "audience": audience, "client_id": client})),
                )
                .await?;
            print(&remote, &v, explained);
            if v["admitted"] != Value::Bool(true) {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}

async fn issuers(cmd: IssuersCommand) -> anyhow::Result<()> {
    match cmd {
        IssuersCommand::Add {
            tenant,
            preset,
            issuer,
            jwks_uri,
            jwks_file,
            spiffe_bundle_file,
            algorithms,
            max_token_age_secs,
            remote,
        } => {
            let key_source = match (jwks_uri, jwks_file, spiffe_bundle_file) {
                (Some(uri), _, _) => json!({"kind": "jwks_uri", "uri": uri}),
                (_, Some(f), _) => json!({"kind": "jwks", "keys": read_json(&f)?}),
                (_, _, Some(f)) => json!({"kind": "spiffe_bundle", "keys": read_json(&f)?}),
                _ => json!({"kind": "discovery"}),
            };
            let mut body = json!({"preset": preset, "key_source": key_source});
            if let Some(i) = issuer {
                body["issuer"] = json!(i);
            }
            if !algorithms.is_empty() {
                body["algorithms"] = json!(algorithms);
            }
            if let Some(s) = max_token_age_secs {
                body["max_token_age_secs"] = json!(s);
            }
            let v = AdminClient::new(&remote)?
                .call(
                    Method::POST,
                    &format!("/tenants/{}/federation/issuers", seg(&tenant)),
                    &[],
                    Some(body),
                )
                .await?;
            print(&remote, &v, pretty);
        }
        IssuersCommand::List { tenant, remote } => {
            let v = AdminClient::new(&remote)?
                .call(
                    Method::GET,
                    &format!("/tenants/{}/federation/issuers", seg(&tenant)),
                    &[],
                    None,
                )
                .await?;
            print(&remote, &v, |v| table(v, &ISSUER_COLUMNS));
        }
        IssuersCommand::Remove {
            tenant,
            issuer,
            remote,
        } => {
            AdminClient::new(&remote)?
                .call(
                    Method::DELETE,
                    &format!("/tenants/{}/federation/issuers", seg(&tenant)),
                    &[("issuer", issuer.clone())],
                    None,
                )
                .await?;
            println!("no longer trusted: {issuer}");
        }
    }
    Ok(())
}

async fn rules(cmd: RulesCommand) -> anyhow::Result<()> {
    match cmd {
        RulesCommand::Add {
            tenant,
            file,
            remote,
        } => {
            let v = AdminClient::new(&remote)?
                .call(
                    Method::POST,
                    &format!("/tenants/{}/federation/rules", seg(&tenant)),
                    &[],
                    Some(read_json(&file)?),
                )
                .await?;
            print(&remote, &v, pretty);
            // The rule is saved; its lint warnings are said where a person reads them.
            for w in v["warnings"].as_array().into_iter().flatten() {
                eprintln!(
                    "warning: {}: {}",
                    w["code"].as_str().unwrap_or("?"),
                    w["message"].as_str().unwrap_or("")
                );
            }
        }
        RulesCommand::List { tenant, remote } => {
            let v = AdminClient::new(&remote)?
                .call(
                    Method::GET,
                    &format!("/tenants/{}/federation/rules", seg(&tenant)),
                    &[],
                    None,
                )
                .await?;
            print(&remote, &v, |v| table(v, &RULE_COLUMNS));
        }
        RulesCommand::Show { tenant, id, remote } => {
            let v = AdminClient::new(&remote)?
                .call(
                    Method::GET,
                    &format!("/tenants/{}/federation/rules/{}", seg(&tenant), seg(&id)),
                    &[],
                    None,
                )
                .await?;
            print(&remote, &v, pretty);
        }
        RulesCommand::Bind {
            tenant,
            id,
            client,
            unbind: _,
            remote,
        } => {
            let v = AdminClient::new(&remote)?
                .call(
                    Method::PUT,
                    &format!(
                        "/tenants/{}/federation/rules/{}/client",
                        seg(&tenant),
                        seg(&id)
                    ),
                    &[],
                    Some(json!({ "client_id": client })),
                )
                .await?;
            print(&remote, &v, pretty);
        }
        RulesCommand::Remove { tenant, id, remote } => {
            AdminClient::new(&remote)?
                .call(
                    Method::DELETE,
                    &format!("/tenants/{}/federation/rules/{}", seg(&tenant), seg(&id)),
                    &[],
                    None,
                )
                .await?;
            println!("removed rule {id}");
        }
    }
    Ok(())
}
