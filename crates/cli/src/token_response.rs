//! The token endpoint's answer as the `portcullis token` commands read it: the successful
//! response, or the OAuth error as a short error message; and printing the token. Shared by
//! `token` (client credentials) and `token_exchange`. Must never print anything but the token
//! response the user asked for.

use anyhow::bail;
use serde_json::Value;

use crate::client::not_portcullis;
use crate::Output;

/// Sends a token request with `form` as its `application/x-www-form-urlencoded` body and
/// returns the successful response, or the OAuth error as an error.
pub(crate) async fn token_request(
    base: &str,
    request: reqwest::RequestBuilder,
    form: &[(&str, String)],
) -> anyhow::Result<Value> {
    let (status, text) =
        crate::form_post::post_form(base, request, form.iter().map(|(k, v)| (*k, v))).await?;
    let body = serde_json::from_str::<Value>(&text).ok();
    if !status.is_success() {
        let Some(code) = body.as_ref().and_then(|v| v["error"].as_str()) else {
            return Err(not_portcullis(
                base,
                &format!("its token endpoint answered {status} without an OAuth error"),
            ));
        };
        match body.as_ref().and_then(|v| v["error_description"].as_str()) {
            Some(d) => bail!("{code}: {d}"),
            None => bail!("{code}"),
        }
    }
    let Some(body) = body.filter(|v| v["access_token"].is_string()) else {
        return Err(not_portcullis(
            base,
            &format!("its token endpoint answered {status} without an access token"),
        ));
    };
    Ok(body)
}

/// Prints the access token alone (`text`) or the whole response (`json`).
pub(crate) fn print_token(body: &Value, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(body)?),
        Output::Text => {
            println!("{}", body["access_token"].as_str().unwrap_or_default())
        }
    }
    Ok(())
}
