//! `portcullis login` and `portcullis logout`: a person signs the CLI in with their own user
//! account through the browser (RFC 8628 device authorization grant, the built-in public client
//! `portcullis-cli`), and the CLI keeps a short-lived access token and a rotating refresh token
//! in `$XDG_CONFIG_HOME/portcullis/credentials.json` (else `~/.config/...`), written atomically
//! with mode 0600. Admin commands use it when no admin token is given ([`Session`]), refreshing
//! the access token when it is about to expire and saving the rotated refresh token. Logout
//! revokes both tokens at the server and deletes the file.
//!
//! This module must never print a token, take one on the command line, or leave the file
//! readable by others.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use serde_json::{json, Value};

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// An access token this close to its expiry is refreshed before use.
const REFRESH_MARGIN_SECS: u64 = 30;

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Base URL of the Portcullis server.
    #[arg(long, env = "PORTCULLIS_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The tenant whose user signs in (its built-in client `portcullis-cli-<tenant>`; the
    /// system tenant's is `portcullis-cli`).
    #[arg(long, default_value = "system", conflicts_with = "client_id")]
    tenant: String,
    /// Another public client to sign in with (registered for the device_code grant); its
    /// tokens work at its own APIs, not at the admin API.
    #[arg(long)]
    client_id: Option<String>,
}

impl LoginArgs {
    /// The client the sign-in is made with: `--client-id`, else `--tenant`'s built-in one.
    fn client_id(&self) -> anyhow::Result<String> {
        if let Some(id) = &self.client_id {
            return Ok(id.clone());
        }
        let tenant = portcullis_core::tenant::TenantId::parse(&self.tenant)
            .map_err(|_| anyhow::anyhow!("--tenant {:?} is not a tenant id", self.tenant))?;
        Ok(portcullis_core::client::cli_client_id(&tenant))
    }
}

#[derive(Debug, clap::Args)]
pub struct LogoutArgs {}

/// The stored sign-in.
#[derive(Debug, Clone)]
pub struct Stored {
    pub url: String,
    pub client_id: String,
    pub access_token: String,
    pub refresh_token: Option<String>,
    /// Unix seconds.
    pub expires_at: u64,
}

impl Stored {
    fn to_json(&self) -> Value {
        json!({
            "url": self.url,
            "client_id": self.client_id,
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at,
        })
    }

    fn from_json(v: &Value) -> Option<Self> {
        Some(Self {
            url: v["url"].as_str()?.to_owned(),
            client_id: v["client_id"].as_str()?.to_owned(),
            access_token: v["access_token"].as_str()?.to_owned(),
            refresh_token: v["refresh_token"].as_str().map(str::to_owned),
            expires_at: v["expires_at"].as_u64()?,
        })
    }
}

/// Where the sign-in is kept.
pub fn credentials_path() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => PathBuf::from(home).join(".config"),
            None => bail!("neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep the sign-in"),
        },
    };
    Ok(base.join("portcullis").join("credentials.json"))
}

/// The stored sign-in, if there is one.
pub fn load() -> anyhow::Result<Option<Stored>> {
    let path = credentials_path()?;
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("could not read {}", path.display())),
    };
    let value: Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON; run portcullis login", path.display()))?;
    Stored::from_json(&value)
        .map(Some)
        .with_context(|| format!("{} is not a sign-in; run portcullis login", path.display()))
}

fn save(stored: &Stored) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    let path = credentials_path()?;
    if let Some(dir) = path.parent() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(|| format!("could not create {}", dir.display()))?;
    }
    let body = serde_json::to_vec_pretty(&stored.to_json())?;
    portcullis_service::kek::write_private_file_atomically(&path, &body)
        .with_context(|| format!("could not write {}", path.display()))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn http() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?)
}

/// Posts a form to the server; the JSON answer and its status.
async fn post_form(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    form: &[(&str, &str)],
) -> anyhow::Result<(reqwest::StatusCode, Value)> {
    let (status, text) = crate::form_post::post_form(
        base,
        http.post(format!("{base}{path}")),
        form.iter().copied(),
    )
    .await?;
    let value = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).with_context(|| {
            format!("{base} answered {status} with something that is not JSON; check --url")
        })?
    };
    Ok((status, value))
}

fn stored_from_answer(url: &str, client_id: &str, v: &Value) -> anyhow::Result<Stored> {
    let access_token = v["access_token"]
        .as_str()
        .context("the token answer has no access_token")?
        .to_owned();
    let expires_in = v["expires_in"].as_u64().unwrap_or(60);
    Ok(Stored {
        url: url.to_owned(),
        client_id: client_id.to_owned(),
        access_token,
        refresh_token: v["refresh_token"].as_str().map(str::to_owned),
        expires_at: now_secs() + expires_in,
    })
}

/// `portcullis login`.
pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let client_id = args.client_id()?;
    let base = args.url.trim_end_matches('/').to_owned();
    let http = http()?;
    let (status, start) = post_form(
        &http,
        &base,
        "/oauth2/device_authorization",
        &[("client_id", &client_id)],
    )
    .await?;
    if !status.is_success() {
        bail!(
            "the server refused to start a sign-in ({status}): {}",
            describe(&start)
        );
    }
    let device_code = start["device_code"]
        .as_str()
        .context("the answer has no device_code")?
        .to_owned();
    let user_code = start["user_code"].as_str().unwrap_or_default();
    let uri = start["verification_uri"].as_str().unwrap_or_default();
    let complete = start["verification_uri_complete"].as_str().unwrap_or(uri);
    let mut interval = start["interval"].as_u64().unwrap_or(5).max(1);
    let expires_in = start["expires_in"].as_u64().unwrap_or(600);
    println!("To sign in, open {uri} and enter the code {user_code}");
    println!("(or open {complete})");
    println!("Waiting for approval...");
    let deadline = now_secs() + expires_in;
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        let (status, answer) = post_form(
            &http,
            &base,
            "/oauth2/token",
            &[
                ("grant_type", DEVICE_CODE_GRANT),
                ("device_code", &device_code),
                ("client_id", &client_id),
            ],
        )
        .await?;
        if status.is_success() {
            let stored = stored_from_answer(&base, &client_id, &answer)?;
            save(&stored)?;
            println!(
                "Signed in. Credentials saved to {}",
                credentials_path()?.display()
            );
            return Ok(());
        }
        match answer["error"].as_str() {
            Some("authorization_pending") => {}
            Some("slow_down") => interval += 5,
            Some("expired_token") => {
                bail!("the code expired before it was approved; run portcullis login again")
            }
            Some("access_denied") => bail!("the sign-in was denied"),
            _ => bail!("sign-in failed ({status}): {}", describe(&answer)),
        }
        if now_secs() > deadline {
            bail!("the code expired before it was approved; run portcullis login again");
        }
    }
}

/// `portcullis logout`: revokes the refresh token (its whole family) and the access token at
/// the server, then deletes the file. The file goes even when the server cannot be reached,
/// and the command says so.
pub async fn logout(_args: LogoutArgs) -> anyhow::Result<()> {
    let path = credentials_path()?;
    let Some(stored) = load()? else {
        println!("Not signed in.");
        return Ok(());
    };
    let http = http()?;
    let mut failures = Vec::new();
    let tokens = [
        (stored.refresh_token.as_deref(), "refresh_token"),
        (Some(stored.access_token.as_str()), "access_token"),
    ];
    for (token, hint) in tokens {
        let Some(token) = token else { continue };
        match post_form(
            &http,
            &stored.url,
            "/oauth2/revoke",
            &[
                ("token", token),
                ("token_type_hint", hint),
                ("client_id", &stored.client_id),
            ],
        )
        .await
        {
            Ok((s, _)) if s.is_success() => {}
            Ok((s, v)) => failures.push(format!("{hint}: {s} {}", describe(&v))),
            Err(e) => failures.push(format!("{hint}: {e}")),
        }
    }
    std::fs::remove_file(&path).with_context(|| format!("could not delete {}", path.display()))?;
    if failures.is_empty() {
        println!("Signed out; the tokens are revoked.");
        Ok(())
    } else {
        bail!(
            "deleted {} but could not revoke at the server: {}",
            path.display(),
            failures.join("; ")
        )
    }
}

/// The access token to send to `url`, from the stored sign-in: refreshed (and the rotated
/// refresh token saved) when it is about to expire. `None` when there is no sign-in for `url`.
pub async fn access_token_for(url: &str) -> anyhow::Result<Option<String>> {
    let Some(stored) = load()? else {
        return Ok(None);
    };
    if stored.url.trim_end_matches('/') != url.trim_end_matches('/') {
        return Ok(None);
    }
    if stored.expires_at > now_secs() + REFRESH_MARGIN_SECS {
        return Ok(Some(stored.access_token));
    }
    let Some(refresh) = stored.refresh_token.as_deref() else {
        bail!("the sign-in has expired; run portcullis login");
    };
    let (status, answer) = post_form(
        &http()?,
        &stored.url,
        "/oauth2/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh),
            ("client_id", &stored.client_id),
        ],
    )
    .await?;
    if !status.is_success() {
        bail!(
            "the sign-in could not be refreshed ({status}: {}); run portcullis login",
            describe(&answer)
        );
    }
    let mut renewed = stored_from_answer(&stored.url, &stored.client_id, &answer)?;
    if renewed.refresh_token.is_none() {
        renewed.refresh_token = stored.refresh_token.clone();
    }
    save(&renewed)?;
    Ok(Some(renewed.access_token))
}

fn describe(v: &Value) -> String {
    match (v["error"].as_str(), v["error_description"].as_str()) {
        (Some(e), Some(d)) => format!("{e}: {d}"),
        (Some(e), None) => e.to_owned(),
        _ => "no error code".to_owned(),
    }
}
