//! `portcullis token exchange`: the client side of workload identity. A CI job or a pod hands
//! its platform token to its tenant's token endpoint (`/oauth2/tenants/{tenant}/token`) by
//! RFC 8693 token exchange (or the RFC 7523 JWT-bearer grant) and prints the access token.
//!
//! The platform token comes from `--subject-token-file`, else from the environment: GitHub
//! Actions' `ACTIONS_ID_TOKEN_REQUEST_URL` and `ACTIONS_ID_TOKEN_REQUEST_TOKEN` (the token is
//! requested for `--platform-audience`), else `PORTCULLIS_SUBJECT_TOKEN` (GitLab: name an
//! `id_tokens` entry so). This module must never print or log the platform token or the
//! request token, and holds no secret of its own.

use anyhow::{bail, Context};
use serde_json::Value;

use crate::Output;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GrantKind {
    /// RFC 8693 token exchange.
    Exchange,
    /// RFC 7523 section 2.1 JWT bearer.
    JwtBearer,
}

#[derive(Debug, clap::Args)]
pub struct ExchangeArgs {
    /// The tenant whose trust rules judge the token.
    #[arg(long, env = "PORTCULLIS_TENANT")]
    tenant: String,
    /// A file holding the platform token (a Kubernetes projected token, a JWT-SVID, a token a
    /// CI step saved); without it, the environment is read (see the module docs).
    #[arg(long)]
    subject_token_file: Option<std::path::PathBuf>,
    /// `id_token` sends `subject_token_type` `...:id_token` instead of `...:jwt`.
    #[arg(long, default_value = "jwt", value_parser = ["jwt", "id_token"])]
    subject_token_type: String,
    /// The audience to ask GitHub Actions for (the rule's subject-token audience).
    #[arg(long)]
    platform_audience: Option<String>,
    /// The API (resource server audience) the access token is for; default: the rule's first.
    #[arg(long, alias = "resource")]
    audience: Option<String>,
    /// Scopes to ask for (comma-separated or repeated); default: all the rule grants.
    #[arg(long = "scope", value_delimiter = ',')]
    scopes: Vec<String>,
    /// The trust rule to apply; default: the most specific match.
    #[arg(long)]
    rule: Option<String>,
    #[arg(long, value_enum, default_value = "exchange")]
    grant: GrantKind,
    /// Base URL of the Portcullis server.
    #[arg(long, env = "PORTCULLIS_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// `text` prints the access token alone; `json` the whole token response.
    #[arg(long, value_enum, default_value = "text")]
    output: Output,
}

/// A platform token, never shown by `Debug`.
struct PlatformToken(String);

impl std::fmt::Debug for PlatformToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

async fn platform_token(
    args: &ExchangeArgs,
    http: &reqwest::Client,
) -> anyhow::Result<PlatformToken> {
    let token = if let Some(path) = &args.subject_token_file {
        std::fs::read_to_string(path)
            .with_context(|| format!("could not read {}", path.display()))?
    } else if let (Ok(url), Ok(bearer)) = (
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL"),
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
    ) {
        let Some(audience) = &args.platform_audience else {
            bail!("on GitHub Actions, --platform-audience names the audience the rule expects");
        };
        let mut url = reqwest::Url::parse(&url).context("ACTIONS_ID_TOKEN_REQUEST_URL")?;
        url.query_pairs_mut().append_pair("audience", audience);
        let resp = http
            .get(url)
            .bearer_auth(bearer)
            .send()
            .await
            .context("could not reach GitHub's token service")?;
        if !resp.status().is_success() {
            bail!(
                "GitHub's token service answered {} (does the job have `permissions: id-token: write`?)",
                resp.status()
            );
        }
        let v: Value = resp.json().await.context("GitHub's token answer")?;
        v["value"]
            .as_str()
            .context("GitHub's token answer has no value")?
            .to_owned()
    } else if let Ok(t) = std::env::var("PORTCULLIS_SUBJECT_TOKEN") {
        t
    } else {
        bail!(
            "no platform token: pass --subject-token-file, run on GitHub Actions with \
             id-token: write, or set PORTCULLIS_SUBJECT_TOKEN (GitLab id_tokens)"
        );
    };
    let token = token.trim().to_owned();
    if token.is_empty() {
        bail!("the platform token is empty");
    }
    Ok(PlatformToken(token))
}

pub async fn run(args: ExchangeArgs) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let token = platform_token(&args, &http).await?;
    let base = args.url.trim_end_matches('/');
    let mut form: Vec<(&str, String)> = match args.grant {
        GrantKind::Exchange => vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange".into(),
            ),
            ("subject_token", token.0.clone()),
            (
                "subject_token_type",
                format!(
                    "urn:ietf:params:oauth:token-type:{}",
                    args.subject_token_type
                ),
            ),
        ],
        GrantKind::JwtBearer => vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:jwt-bearer".into(),
            ),
            ("assertion", token.0.clone()),
        ],
    };
    let scopes: Vec<&str> = args
        .scopes
        .iter()
        .flat_map(|s| s.split_whitespace())
        .collect();
    if !scopes.is_empty() {
        form.push(("scope", scopes.join(" ")));
    }
    if let Some(aud) = &args.audience {
        form.push(("audience", aud.clone()));
    }
    if let Some(rule) = &args.rule {
        form.push(("rule", rule.clone()));
    }
    let tenant: String = form_urlencoded::byte_serialize(args.tenant.as_bytes()).collect();
    let request = http.post(format!("{base}/oauth2/tenants/{tenant}/token"));
    let body = crate::token_response::token_request(base, request, &form).await?;
    crate::token_response::print_token(&body, args.output)
}
