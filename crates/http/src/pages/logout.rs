//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) at `GET`/`POST`
//! [`END_SESSION_PATH`], with its confirmation form and the signed-out page.
//!
//! In order:
//!
//! 1. `id_token_hint`, when sent, must be one of our ID tokens: signature checked with our
//!    published keys and issuer ours; an expired one is accepted. Anything else is an error
//!    page, changing nothing.
//! 2. The client is `client_id`, or the hint's audience; both sent must agree. With no client
//!    there is no tenant to sign out of: an error page.
//! 3. `post_logout_redirect_uri` is used only if the client registered it exactly
//!    (`portcullis_core::logout::post_logout_redirect`); anything else shows the signed-out
//!    page and never redirects (no open redirect). `state` goes back with the redirect.
//! 4. Without a hint naming the browser's very session (`sid` and `sub`), the user confirms on
//!    a CSRF-protected form first: a link from another site cannot sign anyone out.
//! 5. The session ends through `SignIn::revoke_session` (a `session` revocation entry: every
//!    verifier refuses tokens with that `sid`; back-channel logouts are queued) and the cookie
//!    is cleared.
//!
//! This module must never redirect to a URI the client did not register, and never end a
//! session on a request that is neither confirmed nor hinted for that session.

use crate::state::{RouterState, SignInPages};
use askama::Template;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use portcullis_core::audit::Actor;
use portcullis_core::logout::{needs_confirmation, post_logout_redirect, HintMatch};
use portcullis_service::keys::jwt::verify_id_token_hint;
use portcullis_store::ClientStatus;

pub use portcullis_service::oauth::END_SESSION_PATH;

use super::{
    add_cookie, error_page, messages, render, Chrome, CookiePolicy, Csrf, Fields, FieldsRefused,
    Text,
};

/// The request members this endpoint reads (others are ignored).
const PARAMS: [&str; 5] = [
    "id_token_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
    "ui_locales",
];
/// Every field read here, each at most once: the OpenID members and the confirmation form's.
const SINGLES: [&str; 7] = [
    PARAMS[0],
    PARAMS[1],
    PARAMS[2],
    PARAMS[3],
    PARAMS[4],
    "csrf_token",
    "confirm",
];
/// Longest form or query accepted, in pairs.
const MAX_PAIRS: usize = 32;
/// The CSRF purpose of the confirmation form.
const PURPOSE: &str = "logout";

pub fn router() -> Router<RouterState> {
    Router::new().route(END_SESSION_PATH, get(logout_get).post(logout_post))
}

#[derive(Template)]
#[template(path = "logout_confirm.html")]
struct ConfirmPage<'a> {
    chrome: &'a Chrome,
    t: &'a Text,
    client_name: &'a str,
    action: &'a str,
    csrf: &'a str,
    carried: &'a [(String, String)],
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage<'a> {
    chrome: &'a Chrome,
    t: &'a Text,
}

async fn logout_get(State(state): State<SignInPages>, parts: Parts) -> Response {
    let fields = Fields::parse(parts.uri.query().unwrap_or(""), MAX_PAIRS, &SINGLES);
    logout(state, parts, fields, false).await
}

async fn logout_post(State(state): State<SignInPages>, parts: Parts, body: String) -> Response {
    logout(
        state,
        parts,
        Fields::parse(&body, MAX_PAIRS, &SINGLES),
        true,
    )
    .await
}

async fn logout(
    state: SignInPages,
    parts: Parts,
    fields: Result<Fields, FieldsRefused>,
    posted: bool,
) -> Response {
    let accept_language = parts
        .headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let ui_locales: Vec<String> = fields
        .as_ref()
        .ok()
        .and_then(|f| f.get("ui_locales"))
        .map(|v| v.split(' ').map(str::to_owned).collect())
        .unwrap_or_default();
    let t = messages::pick(&ui_locales, accept_language);
    let bare = Chrome::new(None, &Default::default(), t);
    let refuse = |reason: &'static str| {
        tracing::info!(reason, "logout request refused with a page");
        error_page(
            StatusCode::BAD_REQUEST,
            &bare,
            t,
            t.error_bad_request,
            Some("invalid_request"),
        )
    };
    let fields = match fields {
        Ok(f) => f,
        Err(refused) => return refuse(refused.reason()),
    };
    // An empty member is an absent one.
    let got = PARAMS.map(|name| fields.get(name).filter(|v| !v.is_empty()));
    let [hint_token, client_param, redirect_param, rp_state, _] = got;
    let now = state.clock.now();
    let store = state.store.as_ref();
    let directory = &state.oauth.directory;

    let hint = match hint_token {
        None => None,
        Some(token) => {
            let keys = match directory.signing_keys(store, now).await {
                Ok(k) => k,
                Err(e) => return server_error(&bare, t, &e.to_string()),
            };
            match verify_id_token_hint(token, &keys, &state.oauth.issuer, now) {
                Ok(h) => Some(h),
                Err(e) => return refuse(e.as_str()),
            }
        }
    };
    let hinted_client = hint
        .as_ref()
        .and_then(|h| match (&h.azp, h.aud.as_slice()) {
            (Some(azp), _) => Some(azp.clone()),
            (None, [one]) => Some(one.clone()),
            _ => None,
        });
    let client_id = match (client_param, &hinted_client) {
        (Some(c), Some(h)) if c != h => return refuse("client_id_not_the_hints"),
        (Some(c), _) => c.to_owned(),
        (None, Some(h)) => h.clone(),
        (None, None) => return refuse("no_client"),
    };
    let client = match directory.client(store, &client_id, now).await {
        Ok(Some(f)) if f.client.status == ClientStatus::Active => f.client.clone(),
        Ok(_) => return refuse("unknown_client"),
        Err(e) => return server_error(&bare, t, &e.to_string()),
    };
    let tenant = client.tenant.clone();
    let redirect = post_logout_redirect(&client.post_logout_redirect_uris, redirect_param);
    if redirect_param.is_some() && redirect.is_none() {
        tracing::info!("post_logout_redirect_uri not registered for the client: no redirect");
    }
    let chrome = Chrome::load(&state, &tenant, t).await;
    let cookies = CookiePolicy::for_issuer(&state.oauth.issuer);
    let cookie_name = cookies.session_name(&tenant);
    let presented = super::cookies::read(&parts.headers, &cookie_name);
    let session = match &presented {
        None => None,
        Some(c) => match state.sign_in.resolve_session(&tenant, c).await {
            Ok(s) => s,
            Err(e) => return server_error(&chrome, t, &e.to_string()),
        },
    };
    let Some(session) = session else {
        // Nothing to end here: the user is signed out already.
        let mut res = finish(&chrome, t, redirect, rp_state);
        if presented.is_some() {
            add_cookie(&mut res, cookies.clear(&cookie_name));
        }
        return res;
    };
    let matched = match &hint {
        None => HintMatch::Missing,
        Some(h)
            if h.sid.as_deref() == Some(session.id.as_str())
                && h.sub == session.user_id.as_str() =>
        {
            HintMatch::SameSession
        }
        Some(_) => HintMatch::OtherSession,
    };
    if needs_confirmation(matched) {
        let csrf = Csrf::for_page(&parts.headers, cookies, &tenant);
        let presented_token = fields.get("csrf_token");
        let confirmed = posted
            && fields.get("confirm") == Some("yes")
            && csrf.check(&state, PURPOSE, presented_token);
        if !confirmed {
            if posted && presented_token.is_some() {
                tracing::info!("a logout confirmation was refused: CSRF token not this browser's");
                return error_page(StatusCode::FORBIDDEN, &chrome, t, t.error_csrf, None);
            }
            let carried: Vec<(String, String)> = PARAMS
                .iter()
                .zip(got)
                .filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), v.to_owned())))
                .chain(
                    hint.is_none()
                        .then(|| ("client_id".to_owned(), client_id.clone())),
                )
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .collect();
            let token = csrf.token(&state, PURPOSE);
            let mut res = render(
                StatusCode::OK,
                &chrome,
                &ConfirmPage {
                    chrome: &chrome,
                    t,
                    client_name: &client.name,
                    action: END_SESSION_PATH,
                    csrf: &token,
                    carried: &carried,
                },
                None,
            );
            csrf.set_cookie(&mut res);
            return res;
        }
    }
    let origin = crate::extract::origin(&parts);
    if let Err(e) = state
        .sign_in
        .revoke_session(
            &tenant,
            session.id.as_str(),
            "rp_logout",
            Actor::anonymous(),
            &origin,
        )
        .await
    {
        return server_error(&chrome, t, &e.to_string());
    }
    let mut res = finish(&chrome, t, redirect, rp_state);
    add_cookie(&mut res, cookies.clear(&cookie_name));
    res
}

/// The answer once the user is signed out: a redirect to the registered URI (with `state`), or
/// the signed-out page.
fn finish(chrome: &Chrome, t: &Text, redirect: Option<&str>, rp_state: Option<&str>) -> Response {
    match redirect {
        Some(uri) => {
            let mut target = uri.to_owned();
            if let Some(s) = rp_state {
                let sep = if target.contains('?') { '&' } else { '?' };
                target.push(sep);
                target.push_str(
                    &form_urlencoded::Serializer::new(String::new())
                        .append_pair("state", s)
                        .finish(),
                );
            }
            match HeaderValue::from_str(&target) {
                Ok(v) => {
                    let mut res = StatusCode::SEE_OTHER.into_response();
                    res.headers_mut().insert(header::LOCATION, v);
                    res.headers_mut()
                        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                    res
                }
                Err(_) => signed_out(chrome, t),
            }
        }
        None => signed_out(chrome, t),
    }
}

fn signed_out(chrome: &Chrome, t: &Text) -> Response {
    render(StatusCode::OK, chrome, &SignedOutPage { chrome, t }, None)
}

fn server_error(chrome: &Chrome, t: &Text, detail: &str) -> Response {
    tracing::error!(error = detail, "the logout endpoint failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        chrome,
        t,
        t.error_server,
        Some("server_error"),
    )
}
