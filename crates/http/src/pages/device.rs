//! The device verification page (RFC 8628 section 3.3), `GET`/`POST` [`VERIFICATION_PATH`]:
//! a person types the code their device shows (or opens the complete URI with it filled in),
//! signs in with their user account of the device client's tenant (an existing session is
//! used), sees which client asks and for what, and approves or denies
//! (`portcullis_service::tokens::device`).
//!
//! 1. `GET /device[?user_code=...]`: the code form.
//! 2. `POST /device` (`user_code`): an unknown, expired or decided code re-shows the form with
//!    one message for all (and counts against the source in the token endpoint's failure
//!    throttle, so guessing codes is slowed like guessing client secrets); a pending one shows
//!    the confirmation, or the sign-in form first when the browser has no session of the tenant.
//! 3. `POST /device/sign-in`: the password check of the sign-in pages (their throttle and
//!    admission), a new session, then the confirmation.
//! 4. `POST /device/decide` (`decision=allow|deny`): recorded once; the done page.
//!
//! Every form carries a CSRF token bound to the browser's cookie (the tenant's session cookie,
//! else the pre-session cookie) and is refused without it, changing nothing. This module must
//! never show or log a user code it did not get from the person, or record a decision without
//! a current session of the request's tenant.

use std::time::Duration;

use crate::state::{RouterState, SignInPages};
use askama::Template;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use portcullis_core::audit::{Action, Actor, Outcome, Reason};
use portcullis_core::device::UserCode;
use portcullis_core::secret::Secret;
use portcullis_core::tenant::TenantId;
use portcullis_service::audit::{EventDraft, RequestOrigin};
use portcullis_service::login::{Attempt, LoginOutcome};
use portcullis_service::sign_in::NewSession;
use portcullis_service::tokens::device::{self as device_grant, PendingDevice};
use portcullis_store::SessionRecord;

pub use portcullis_service::tokens::device::VERIFICATION_PATH;

use super::messages::DeviceText;
use super::{
    add_cookie, error_page, fields_refused_in, messages, render, with_retry_after, Chrome,
    CookiePolicy, Csrf, Fields, FieldsRefused, Text,
};

/// Where the sign-in form of the device flow posts.
pub const DEVICE_SIGN_IN_PATH: &str = "/device/sign-in";
/// Where the approve/deny form posts.
pub const DEVICE_DECIDE_PATH: &str = "/device/decide";

/// The id under which wrong user codes are counted in the failure throttle.
const THROTTLE_ID: &str = "device_user_code";
/// Longest form accepted, in pairs (the body limit bounds bytes).
const MAX_PAIRS: usize = 16;
/// The fields the device pages read; each at most once.
const FIELDS: [&str; 5] = ["user_code", "csrf_token", "login", "password", "decision"];

pub fn router() -> Router<RouterState> {
    Router::new()
        .route(VERIFICATION_PATH, get(code_get).post(code_post))
        .route(DEVICE_SIGN_IN_PATH, post(sign_in_post))
        .route(DEVICE_DECIDE_PATH, post(decide_post))
}

#[derive(Template)]
#[template(path = "device.html")]
struct CodePage<'a> {
    chrome: &'a Chrome,
    t: &'a Text,
    d: &'a DeviceText,
    alert: Option<&'a str>,
    action: &'a str,
    csrf: &'a str,
    code: &'a str,
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignInPage<'a> {
    chrome: &'a Chrome,
    t: &'a Text,
    alert: Option<&'a str>,
    client_name: &'a str,
    action: &'a str,
    csrf: &'a str,
    carried: &'a [(String, String)],
    login: &'a str,
    forgot: &'a str,
}

#[derive(Template)]
#[template(path = "device_confirm.html")]
struct ConfirmPage<'a> {
    chrome: &'a Chrome,
    t: &'a Text,
    d: &'a DeviceText,
    client_name: &'a str,
    user: &'a str,
    code: &'a str,
    scopes: &'a [String],
    action: &'a str,
    csrf: &'a str,
    /// The device is a built-in CLI client: its tokens act at the admin API as the person.
    admin_warning: bool,
}

#[derive(Template)]
#[template(path = "device_done.html")]
struct DonePage<'a> {
    chrome: &'a Chrome,
    t: &'a Text,
    title: &'a str,
    body: &'a str,
}

/// What every request of the page knows.
struct Ctx {
    text: &'static Text,
    cookies: CookiePolicy,
    origin: RequestOrigin,
}

impl Ctx {
    fn new(state: &SignInPages, parts: &Parts) -> Self {
        let accept_language = parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        Self {
            text: messages::pick(&[], accept_language),
            cookies: CookiePolicy::for_issuer(&state.oauth.issuer),
            origin: crate::extract::origin(parts),
        }
    }

    /// The frame before the tenant is known.
    fn bare(&self) -> Chrome {
        Chrome::new(None, &Default::default(), self.text)
    }
}

/// A pending request found by its code, with what the pages show of it.
struct Found {
    device: PendingDevice,
    /// As the person should see it: `XXXX-XXXX`.
    code: String,
    client_name: String,
    chrome: Chrome,
}

/// Reads a device page's form or query: at most [`MAX_PAIRS`] pairs, none of its fields twice.
fn read_fields(raw: &str) -> Result<Fields, FieldsRefused> {
    Fields::parse(raw, MAX_PAIRS, &FIELDS)
}

async fn code_get(State(state): State<SignInPages>, parts: Parts) -> Response {
    let ctx = Ctx::new(&state, &parts);
    let query = match read_fields(parts.uri.query().unwrap_or("")) {
        Ok(q) => q,
        Err(refused) => return fields_refused_in(&ctx.bare(), ctx.text, refused),
    };
    // Only a code-shaped value is echoed back into the form.
    let code = query
        .get("user_code")
        .and_then(UserCode::parse)
        .map(|c| c.display())
        .unwrap_or_default();
    code_page(&state, &parts, &ctx, StatusCode::OK, None, &code)
}

/// The code form, its CSRF token bound to the browser's pre-session (or system-tenant session)
/// cookie: the tenant is not known until the code is.
fn code_page(
    state: &SignInPages,
    parts: &Parts,
    ctx: &Ctx,
    status: StatusCode,
    alert: Option<&str>,
    code: &str,
) -> Response {
    let csrf = Csrf::for_page(&parts.headers, ctx.cookies, &TenantId::system());
    let token = csrf.token(state, "device_code");
    let chrome = ctx.bare();
    let mut res = render(
        status,
        &chrome,
        &CodePage {
            chrome: &chrome,
            t: ctx.text,
            d: ctx.text.device,
            alert,
            action: VERIFICATION_PATH,
            csrf: &token,
            code,
        },
        None,
    );
    csrf.set_cookie(&mut res);
    res
}

async fn code_post(State(state): State<SignInPages>, parts: Parts, body: String) -> Response {
    let ctx = Ctx::new(&state, &parts);
    let form = match read_fields(&body) {
        Ok(p) => p,
        Err(refused) => return fields_refused_in(&ctx.bare(), ctx.text, refused),
    };
    let csrf = Csrf::presented(&parts.headers, ctx.cookies, &TenantId::system());
    if !csrf
        .as_ref()
        .is_some_and(|c| c.check(&state, "device_code", form.get("csrf_token")))
    {
        return csrf_refused(&ctx, &ctx.bare());
    }
    let typed = form.get("user_code").unwrap_or("");
    let found = match lookup(&state, &ctx, typed).await {
        Ok(f) => f,
        Err(refused) => return refused.page(&state, &parts, &ctx),
    };
    match current_session(&state, &parts, &ctx, &found.device.tenant).await {
        Ok(Some(session)) => {
            let csrf = Csrf::presented(&parts.headers, ctx.cookies, &found.device.tenant);
            confirm_page(&state, &ctx, &found, &session, csrf).await
        }
        Ok(None) => sign_in_page(&state, &parts, &ctx, &found, StatusCode::OK, None, ""),
        Err(res) => res,
    }
}

/// Why a typed code found nothing to show.
enum Refused {
    /// The source typed too many wrong codes: wait this many seconds.
    Throttled(u64),
    /// Unknown, malformed, expired or already decided: one answer for all.
    Unknown,
    Server(String),
}

impl Refused {
    /// The code form again (or the error page), as the refusal says.
    fn page(self, state: &SignInPages, parts: &Parts, ctx: &Ctx) -> Response {
        let d = ctx.text.device;
        match self {
            Self::Throttled(wait) => with_retry_after(
                code_page(
                    state,
                    parts,
                    ctx,
                    StatusCode::TOO_MANY_REQUESTS,
                    Some(d.throttled),
                    "",
                ),
                Duration::from_secs(wait),
            ),
            Self::Unknown => code_page(
                state,
                parts,
                ctx,
                StatusCode::BAD_REQUEST,
                Some(d.code_unknown),
                "",
            ),
            Self::Server(detail) => server_error(&ctx.bare(), ctx.text, &detail),
        }
    }
}

/// Finds the pending request `typed` names, through the failure throttle: a source that keeps
/// typing wrong codes is refused before any lookup until its window ends.
async fn lookup(state: &SignInPages, ctx: &Ctx, typed: &str) -> Result<Found, Refused> {
    let now = state.clock.now();
    let ip = ctx.origin.client_ip;
    if let Some(wait) = state.oauth.throttle.blocked(THROTTLE_ID, ip, now) {
        return Err(Refused::Throttled(wait));
    }
    let pending = device_grant::pending(state.store.as_ref(), typed, now)
        .await
        .map_err(|e| Refused::Server(e.to_string()))?;
    let Some(device) = pending else {
        state.oauth.throttle.record_failure(THROTTLE_ID, ip, now);
        state.audit.record(
            EventDraft {
                tenant: TenantId::system(),
                actor: Actor::anonymous(),
                credential_id: None,
                action: Action::OAuthDeviceDecide,
                outcome: Outcome::Failure,
                reason: Some(Reason::new("user_code_unknown")),
                target: None,
            },
            &ctx.origin,
        );
        return Err(Refused::Unknown);
    };
    let client_name = match state.store.get_client(&device.client_id).await {
        Ok(Some(c)) => c.name,
        Ok(None) => device.client_id.clone(),
        Err(e) => return Err(Refused::Server(e.to_string())),
    };
    let chrome = Chrome::load(state, &device.tenant, ctx.text).await;
    Ok(Found {
        code: UserCode::parse(typed)
            .map(|c| c.display())
            .unwrap_or_default(),
        device,
        client_name,
        chrome,
    })
}

/// The browser's current session of `tenant`, if any.
async fn current_session(
    state: &SignInPages,
    parts: &Parts,
    ctx: &Ctx,
    tenant: &TenantId,
) -> Result<Option<SessionRecord>, Response> {
    let Some(cookie) = super::cookies::read(&parts.headers, &ctx.cookies.session_name(tenant))
    else {
        return Ok(None);
    };
    state
        .sign_in
        .resolve_session(tenant, &cookie)
        .await
        .map_err(|e| server_error(&ctx.bare(), ctx.text, &e.to_string()))
}

fn sign_in_page(
    state: &SignInPages,
    parts: &Parts,
    ctx: &Ctx,
    found: &Found,
    status: StatusCode,
    alert: Option<&str>,
    login: &str,
) -> Response {
    let csrf = Csrf::for_page(&parts.headers, ctx.cookies, &found.device.tenant);
    let token = csrf.token(state, "device_sign_in");
    let carried = vec![("user_code".to_owned(), found.code.clone())];
    let forgot = format!("/account/{}/forgot", found.device.tenant.as_str());
    let mut res = render(
        status,
        &found.chrome,
        &SignInPage {
            chrome: &found.chrome,
            t: ctx.text,
            alert,
            client_name: &found.client_name,
            action: DEVICE_SIGN_IN_PATH,
            csrf: &token,
            carried: &carried,
            login,
            forgot: &forgot,
        },
        None,
    );
    csrf.set_cookie(&mut res);
    res
}

async fn confirm_page(
    state: &SignInPages,
    ctx: &Ctx,
    found: &Found,
    session: &SessionRecord,
    csrf: Option<Csrf>,
) -> Response {
    let Some(csrf) = csrf else {
        // A session cookie was read, so a binding exists.
        return server_error(
            &found.chrome,
            ctx.text,
            "no CSRF binding for a signed-in browser",
        );
    };
    let user = match super::signed_in_username(state, &found.device.tenant, &session.user_id).await
    {
        Ok(user) => user,
        Err(e) => return server_error(&found.chrome, ctx.text, &e.to_string()),
    };
    let token = csrf.token(state, "device_decide");
    render(
        StatusCode::OK,
        &found.chrome,
        &ConfirmPage {
            chrome: &found.chrome,
            t: ctx.text,
            d: ctx.text.device,
            client_name: &found.client_name,
            user: &user,
            code: &found.code,
            scopes: &found.device.scope,
            action: DEVICE_DECIDE_PATH,
            csrf: &token,
            admin_warning: portcullis_core::client::is_cli_client_id(&found.device.client_id),
        },
        None,
    )
}

async fn sign_in_post(State(state): State<SignInPages>, parts: Parts, body: String) -> Response {
    let ctx = Ctx::new(&state, &parts);
    let form = match read_fields(&body) {
        Ok(p) => p,
        Err(refused) => return fields_refused_in(&ctx.bare(), ctx.text, refused),
    };
    let found = match lookup(&state, &ctx, form.get("user_code").unwrap_or("")).await {
        Ok(f) => f,
        Err(refused) => return refused.page(&state, &parts, &ctx),
    };
    let tenant = found.device.tenant.clone();
    let csrf = Csrf::presented(&parts.headers, ctx.cookies, &tenant);
    if !csrf
        .as_ref()
        .is_some_and(|c| c.check(&state, "device_sign_in", form.get("csrf_token")))
    {
        return csrf_refused(&ctx, &found.chrome);
    }
    let login = form.get("login").unwrap_or("").to_owned();
    let password = Secret::new(form.get("password").unwrap_or("").to_owned());
    let t = ctx.text;
    let attempt = Attempt {
        tenant: &tenant,
        login: &login,
        password: &password,
        origin: &ctx.origin,
    };
    match state.login.authenticate(attempt).await {
        Ok(LoginOutcome::SignedIn(user)) => {
            let name = ctx.cookies.session_name(&tenant);
            let presented = super::cookies::read(&parts.headers, &name);
            let started = state
                .sign_in
                .create_session(
                    NewSession {
                        tenant: tenant.clone(),
                        user_id: user.id.clone(),
                        amr: vec!["pwd".to_owned()],
                        acr: None,
                    },
                    presented.as_deref(),
                    Actor::anonymous(),
                    &ctx.origin,
                )
                .await;
            let started = match started {
                Ok(s) => s,
                Err(e) => return server_error(&found.chrome, t, &e.to_string()),
            };
            let secret = started.secret.expose().to_owned();
            let mut res = confirm_page(
                &state,
                &ctx,
                &found,
                &started.record,
                Some(Csrf::for_session(&secret, ctx.cookies)),
            )
            .await;
            add_cookie(&mut res, ctx.cookies.set(&name, &secret));
            add_cookie(&mut res, ctx.cookies.clear(&ctx.cookies.pre_session_name()));
            res
        }
        Ok(LoginOutcome::Refused) => sign_in_page(
            &state,
            &parts,
            &ctx,
            &found,
            StatusCode::OK,
            Some(t.sign_in_failed),
            &login,
        ),
        Ok(LoginOutcome::Throttled(wait)) => with_retry_after(
            sign_in_page(
                &state,
                &parts,
                &ctx,
                &found,
                StatusCode::TOO_MANY_REQUESTS,
                Some(t.sign_in_throttled),
                &login,
            ),
            wait,
        ),
        Ok(LoginOutcome::Busy(wait)) => with_retry_after(
            sign_in_page(
                &state,
                &parts,
                &ctx,
                &found,
                StatusCode::SERVICE_UNAVAILABLE,
                Some(t.sign_in_busy),
                &login,
            ),
            wait,
        ),
        Err(e) => server_error(&found.chrome, t, &e.to_string()),
    }
}

async fn decide_post(State(state): State<SignInPages>, parts: Parts, body: String) -> Response {
    let ctx = Ctx::new(&state, &parts);
    let form = match read_fields(&body) {
        Ok(p) => p,
        Err(refused) => return fields_refused_in(&ctx.bare(), ctx.text, refused),
    };
    let found = match lookup(&state, &ctx, form.get("user_code").unwrap_or("")).await {
        Ok(f) => f,
        Err(refused) => return refused.page(&state, &parts, &ctx),
    };
    let tenant = found.device.tenant.clone();
    let csrf = Csrf::presented(&parts.headers, ctx.cookies, &tenant);
    if !csrf
        .as_ref()
        .is_some_and(|c| c.check(&state, "device_decide", form.get("csrf_token")))
    {
        return csrf_refused(&ctx, &found.chrome);
    }
    let session = match current_session(&state, &parts, &ctx, &tenant).await {
        Ok(Some(s)) => s,
        // The session ended meanwhile: sign in again.
        Ok(None) => return sign_in_page(&state, &parts, &ctx, &found, StatusCode::OK, None, ""),
        Err(res) => return res,
    };
    let approve = match form.get("decision") {
        Some("allow") => true,
        Some("deny") => false,
        _ => {
            return error_page(
                StatusCode::BAD_REQUEST,
                &found.chrome,
                ctx.text,
                ctx.text.error_bad_request,
                Some("invalid_request"),
            )
        }
    };
    let svc = state.oauth_service();
    let d = ctx.text.device;
    match device_grant::decide(&svc, &found.device, &session, approve, &ctx.origin).await {
        Ok(true) => {
            let (title, body) = if approve {
                (d.approved_title, d.approved_body)
            } else {
                (d.denied_title, d.denied_body)
            };
            render(
                StatusCode::OK,
                &found.chrome,
                &DonePage {
                    chrome: &found.chrome,
                    t: ctx.text,
                    title,
                    body,
                },
                None,
            )
        }
        Ok(false) => error_page(StatusCode::CONFLICT, &found.chrome, ctx.text, d.gone, None),
        Err(e) => server_error(&found.chrome, ctx.text, &e.to_string()),
    }
}

fn csrf_refused(ctx: &Ctx, chrome: &Chrome) -> Response {
    tracing::info!("a device page form was refused: CSRF token missing or not this browser's");
    error_page(
        StatusCode::FORBIDDEN,
        chrome,
        ctx.text,
        ctx.text.error_csrf,
        None,
    )
}

fn server_error(chrome: &Chrome, t: &Text, detail: &str) -> Response {
    tracing::error!(error = detail, "the device verification page failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        chrome,
        t,
        t.error_server,
        Some("server_error"),
    )
}
