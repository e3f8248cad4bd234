//! A small client for the admin API. The credential comes from `PORTCULLIS_ADMIN_TOKEN`, else
//! the sign-in of `portcullis login` (`crate::login`), else the bootstrap file in the data
//! directory; it is never taken as a command-line argument, where other users could read it
//! from the process list.

use anyhow::{bail, Context};
use reqwest::Method;
use serde_json::Value;

use crate::{Remote, Server};

pub struct AdminClient {
    base: String,
    /// The bearer credential, resolved on first use ([`Self::bearer`]).
    token: std::sync::Mutex<Option<String>>,
    bootstrap_file: std::path::PathBuf,
    http: reqwest::Client,
}

impl AdminClient {
    pub fn new(remote: &Remote) -> anyhow::Result<Self> {
        Self::for_server(&remote.server)
    }

    pub fn for_server(server: &Server) -> anyhow::Result<Self> {
        let token = match std::env::var("PORTCULLIS_ADMIN_TOKEN") {
            Ok(t) if !t.trim().is_empty() => Some(t.trim().to_owned()),
            _ => None,
        };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(Self {
            base: server.url.trim_end_matches('/').to_owned(),
            token: std::sync::Mutex::new(token),
            bootstrap_file: server.data_dir.join("bootstrap-admin-token"),
            http,
        })
    }

    /// The credential: `PORTCULLIS_ADMIN_TOKEN`; else the access token of `portcullis login`
    /// for this server (refreshed if about to expire); else the bootstrap token file in the
    /// data directory (the break-glass credential, docs/device-sign-in.md).
    async fn bearer(&self) -> anyhow::Result<String> {
        if let Some(t) = self.token.lock().ok().and_then(|t| t.clone()) {
            return Ok(t);
        }
        let token = match crate::login::access_token_for(&self.base).await? {
            Some(t) => t,
            None => std::fs::read_to_string(&self.bootstrap_file)
                .with_context(|| {
                    format!(
                        "no admin credential: run portcullis login, set PORTCULLIS_ADMIN_TOKEN, \
                         or point --data-dir at a directory holding {}",
                        self.bootstrap_file.display()
                    )
                })?
                .trim()
                .to_owned(),
        };
        if let Ok(mut slot) = self.token.lock() {
            *slot = Some(token.clone());
        }
        Ok(token)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}/admin/v1{path}", self.base);
        let token = self.bearer().await?;
        let mut req = self
            .http
            .request(method.clone(), &url)
            .bearer_auth(&token)
            .query(query);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("could not reach {}", self.base))?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let value = answer(&self.base, status, &text)?;
        if !value.is_null() {
            crate::answer_shape::check(method.as_str(), path, &value).map_err(|e| {
                not_portcullis(
                    &self.base,
                    &format!(
                        "it answered {status} with JSON that is not this command's answer: {e}"
                    ),
                )
            })?;
        }
        Ok(value)
    }
}

impl AdminClient {
    /// Streams the body of a GET to `out` as it arrives (no overall timeout: an export of a
    /// large log takes as long as it takes; each read still fails on a dead connection).
    pub async fn stream_to(
        &self,
        path: &str,
        query: &[(&str, String)],
        out: &mut (dyn std::io::Write + Send),
    ) -> anyhow::Result<u64> {
        let url = format!("{}/admin/v1{path}", self.base);
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(30))
            .build()?;
        let token = self.bearer().await?;
        let mut resp = http
            .get(&url)
            .bearer_auth(&token)
            .query(query)
            .send()
            .await
            .with_context(|| format!("could not reach {}", self.base))?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            answer(&self.base, status, &text)?;
            bail!("{} answered {status}", self.base);
        }
        let mut n = 0u64;
        while let Some(chunk) = resp
            .chunk()
            .await
            .context("the export stream broke off before its end")?
        {
            out.write_all(&chunk)?;
            n += chunk.len() as u64;
        }
        out.flush()?;
        Ok(n)
    }
}

/// Reads an admin API answer. Portcullis answers JSON everywhere: an object or array on
/// success, `{"error": ...}` on failure. Anything else (an HTML 404 page, another service's
/// JSON) means `--url` names something that is not Portcullis, and the user is told so rather
/// than shown a bare status or a table of dashes.
pub fn answer(base: &str, status: reqwest::StatusCode, text: &str) -> anyhow::Result<Value> {
    let json = serde_json::from_str::<Value>(text).ok();
    if !status.is_success() {
        let error = json.as_ref().and_then(|v| v["error"].as_str());
        return match error {
            Some(code) => match json.as_ref().and_then(|v| v["error_description"].as_str()) {
                Some(d) => bail!("server answered {status}: {code}: {d}"),
                None => bail!("server answered {status}: {code}"),
            },
            None => Err(not_portcullis(base, &format!("it answered {status}"))),
        };
    }
    match json {
        Some(v @ (Value::Object(_) | Value::Array(_))) => Ok(v),
        None if text.is_empty() => Ok(Value::Null),
        _ => Err(not_portcullis(
            base,
            &format!("it answered {status} with a body that is not a Portcullis answer"),
        )),
    }
}

pub fn not_portcullis(base: &str, detail: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{base} does not look like a Portcullis server ({detail}); check --url or PORTCULLIS_URL"
    )
}
