//! `portcullis token`: one client-credentials request (RFC 6749 section 4.4) for a quick check
//! that a client works, printing the access token so a shell can use it.
//!
//! The client secret comes from `--client-secret`, `PORTCULLIS_CLIENT_SECRET` or standard input,
//! so it need not appear in the process list. This module must never print or log the secret,
//! and must never talk to the admin API: it is an OAuth client like any other.

use std::io::{IsTerminal, Read};

use anyhow::{bail, Context};

use crate::Output;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: Option<TokenCommand>,
    /// The client's id.
    #[arg(long, required = true)]
    client_id: Option<String>,
    /// The client's secret; `-` reads it from standard input, as does leaving it out when
    /// PORTCULLIS_CLIENT_SECRET is unset and standard input is not a terminal.
    #[arg(long, env = "PORTCULLIS_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// Scopes to ask for (comma-separated or repeated); default: every scope the client has.
    #[arg(long = "scope", alias = "scopes", value_delimiter = ',')]
    scopes: Vec<String>,
    /// The audience (resource) to ask for; default: the client's first audience.
    #[arg(long, alias = "resource")]
    audience: Option<String>,
    /// Base URL of a running Portcullis server.
    #[arg(long, env = "PORTCULLIS_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// `text` prints the access token alone; `json` the whole token response.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Exchange a workload's platform token (a CI job's OIDC token, a pod's service-account
    /// token, a JWT-SVID) for an access token at a tenant's token endpoint (RFC 8693, or the
    /// RFC 7523 JWT-bearer grant with `--grant jwt-bearer`).
    Exchange(crate::token_exchange::ExchangeArgs),
}

/// Wrapped so that `Debug` (and so any error chain) never shows it.
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

fn secret(args: &TokenArgs) -> anyhow::Result<Secret> {
    let from_stdin = || -> anyhow::Result<Secret> {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("could not read the client secret from standard input")?;
        Ok(Secret(s.trim().to_owned()))
    };
    let secret = match args.client_secret.as_deref() {
        Some("-") => from_stdin()?,
        Some(s) => Secret(s.trim().to_owned()),
        None if !std::io::stdin().is_terminal() => from_stdin()?,
        None => bail!(
            "no client secret: pass --client-secret, set PORTCULLIS_CLIENT_SECRET, or pipe it \
             on standard input"
        ),
    };
    if secret.0.is_empty() {
        bail!("the client secret is empty");
    }
    Ok(secret)
}

pub async fn run(args: TokenArgs) -> anyhow::Result<()> {
    if let Some(TokenCommand::Exchange(exchange)) = args.command {
        return crate::token_exchange::run(exchange).await;
    }
    let Some(client_id) = args.client_id.as_deref() else {
        bail!("--client-id is required");
    };
    let secret = secret(&args)?;
    let base = args.url.trim_end_matches('/');
    let mut form: Vec<(&str, String)> = vec![("grant_type", "client_credentials".into())];
    let scopes: Vec<&str> = args
        .scopes
        .iter()
        .flat_map(|s| s.split_whitespace())
        .collect();
    if !scopes.is_empty() {
        form.push(("scope", scopes.join(" ")));
    }
    if let Some(aud) = &args.audience {
        form.push(("resource", aud.clone()));
    }
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let request = http
        .post(format!("{base}/oauth2/token"))
        .basic_auth(form_encode(client_id), Some(form_encode(&secret.0)));
    let body = crate::token_response::token_request(base, request, &form).await?;
    crate::token_response::print_token(&body, args.output)
}

/// `application/x-www-form-urlencoded` encoding of the client id and secret before Basic
/// authentication (RFC 6749 section 2.3.1).
fn form_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
