//! Posting a form to the server's OAuth endpoints (token, device authorization): the one place
//! the CLI writes an `application/x-www-form-urlencoded` request. Reading the answer is the
//! caller's (`token_response` for the token commands, `login` for device sign-in). This module
//! must never print or log the form: it carries client secrets and tokens.

use anyhow::Context;

/// Sends `request` with `form` as its `application/x-www-form-urlencoded` body: the answer's
/// status and text. The one way the CLI posts to the OAuth endpoints (`token`, `login`).
pub(crate) async fn post_form<K, V>(
    base: &str,
    request: reqwest::RequestBuilder,
    form: impl IntoIterator<Item = (K, V)>,
) -> anyhow::Result<(reqwest::StatusCode, String)>
where
    K: AsRef<str>,
    V: AsRef<str>,
{
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let resp = request
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .with_context(|| format!("could not reach {base}"))?;
    let status = resp.status();
    Ok((status, resp.text().await.unwrap_or_default()))
}
