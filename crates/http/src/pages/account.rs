//! The account pages under `/account/{tenant}/`: the invitation and password-reset links
//! (`invite?token=`, `reset?token=`, the links `portcullis_service::users` mails), the
//! "forgot password" form (`forgot`), and the signed-in user's account page (the tenant's root:
//! change password, sessions with "sign out", consents with "revoke").
//!
//! Handlers stay thin: every decision is `portcullis_service::account`. Every form carries a
//! CSRF token bound to the browser's cookie (`super::Csrf`); one without, or with another
//! browser's, is refused with a page and changes nothing. A link that cannot be used, whatever
//! the reason, gets one neutral page; the forgot form answers one neutral page whatever the
//! address. This module must never show or log a token or a password, or tell whether an
//! address has an account.

use crate::state::{RouterState, SignInPages};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use portcullis_core::secret::Secret;
use portcullis_core::tenant::TenantId;
use portcullis_core::user::TokenPurpose;
use portcullis_service::account::{Account, AccountError};
use portcullis_service::audit::RequestOrigin;
use portcullis_service::state::rfc3339;
use portcullis_store::SessionRecord;

use super::{
    add_cookie, error_page, fields_refused_in, messages, render, with_retry_after, Chrome,
    CookiePolicy, Csrf, Fields, Text,
};

/// Longest form accepted, in pairs.
const MAX_PAIRS: usize = 16;

pub fn router() -> Router<RouterState> {
    Router::new()
        .route("/account/{tenant}/", get(account_get))
        .route(
            "/account/{tenant}/invite",
            get(invite_get).post(invite_post),
        )
        .route("/account/{tenant}/reset", get(reset_get).post(reset_post))
        .route(
            "/account/{tenant}/forgot",
            get(forgot_get).post(forgot_post),
        )
        .route("/account/{tenant}/password", post(password_post))
        .route("/account/{tenant}/sessions/end", post(end_session_post))
        .route(
            "/account/{tenant}/consents/revoke",
            post(revoke_consent_post),
        )
}

#[derive(Template)]
#[template(path = "account_password.html")]
struct PasswordPage<'a> {
    chrome: &'a Chrome,
    t: &'a Text,
    title: &'a str,
    intro: &'a str,
    alert: Option<&'a str>,
    username: &'a str,
    action: &'a str,
    csrf: &'a str,
    token: &'a str,
}

#[derive(Template)]
#[template(path = "account_notice.html")]
struct NoticePage<'a> {
    chrome: &'a Chrome,
    t: &'a Text,
    title: &'a str,
    text: &'a str,
    link: Option<(String, &'a str)>,
}

#[derive(Template)]
#[template(path = "account_forgot.html")]
struct ForgotPage<'a> {
    chrome: &'a Chrome,
    t: &'a Text,
    action: &'a str,
    csrf: &'a str,
}

struct SessionRow {
    sid: String,
    current: bool,
    signed_in: String,
    last_seen: String,
}

struct ConsentRow {
    client_id: String,
    client_name: String,
    scopes: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    chrome: &'a Chrome,
    t: &'a Text,
    alert: Option<&'a str>,
    notice: Option<&'a str>,
    username: &'a str,
    base: &'a str,
    csrf: &'a str,
    sessions: &'a [SessionRow],
    consents: &'a [ConsentRow],
}

/// What every account request starts from: the tenant, the language, the branding.
struct Ctx {
    tenant: TenantId,
    text: &'static Text,
    chrome: Chrome,
    cookies: CookiePolicy,
    origin: RequestOrigin,
    account: Account,
}

impl Ctx {
    /// `None` (a "not found" page) for a tenant id that cannot exist.
    async fn new(state: &SignInPages, parts: &Parts, tenant: &str) -> Result<Self, Response> {
        let accept = parts
            .headers
            .get(header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok());
        let text = messages::pick(&[], accept);
        let Ok(tenant) = TenantId::parse(tenant) else {
            let chrome = Chrome::new(None, &Default::default(), text);
            return Err(error_page(
                StatusCode::NOT_FOUND,
                &chrome,
                text,
                text.error_not_found,
                None,
            ));
        };
        let chrome = Chrome::load(state, &tenant, text).await;
        Ok(Self {
            tenant,
            text,
            chrome,
            cookies: CookiePolicy::for_issuer(&state.oauth.issuer),
            origin: crate::extract::origin(parts),
            account: state.account.clone(),
        })
    }

    fn base(&self) -> String {
        format!("/account/{}/", self.tenant)
    }

    fn notice(
        &self,
        status: StatusCode,
        title: &str,
        text: &str,
        link: Option<(String, &str)>,
    ) -> Response {
        render(
            status,
            &self.chrome,
            &NoticePage {
                chrome: &self.chrome,
                t: self.text,
                title,
                text,
                link,
            },
            None,
        )
    }

    /// The one page for every link that cannot be used.
    fn invalid_link(&self) -> Response {
        let a = self.text.account;
        self.notice(
            StatusCode::BAD_REQUEST,
            a.link_invalid_title,
            a.link_invalid_text,
            Some((format!("{}forgot", self.base()), a.forgot_link)),
        )
    }

    /// A posted form, or the 400 page if it has too many fields or repeats one.
    // The error is the page the handler answers with at once; boxing it would buy nothing.
    #[allow(clippy::result_large_err)]
    fn form(&self, body: &str) -> Result<Form, Response> {
        Fields::parse(body, MAX_PAIRS, &FIELDS)
            .map_err(|refused| fields_refused_in(&self.chrome, self.text, refused))
    }

    fn csrf_refused(&self) -> Response {
        tracing::info!(
            "an account page form was refused: CSRF token missing or not this browser's"
        );
        error_page(
            StatusCode::FORBIDDEN,
            &self.chrome,
            self.text,
            self.text.error_csrf,
            None,
        )
    }

    fn failed(&self, e: &AccountError) -> Response {
        match e {
            AccountError::Throttled { retry_after } => {
                let res = error_page(
                    StatusCode::TOO_MANY_REQUESTS,
                    &self.chrome,
                    self.text,
                    self.text.sign_in_throttled,
                    None,
                );
                with_retry_after(res, *retry_after)
            }
            AccountError::Busy { retry_after } => {
                let res = error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &self.chrome,
                    self.text,
                    self.text.error_busy,
                    None,
                );
                with_retry_after(res, *retry_after)
            }
            other => {
                tracing::error!(error = %other, "an account page failed");
                error_page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &self.chrome,
                    self.text,
                    self.text.error_server,
                    Some("server_error"),
                )
            }
        }
    }

    /// The browser's session of this tenant, if it has an active one.
    async fn session(
        &self,
        state: &SignInPages,
        parts: &Parts,
    ) -> Result<Option<SessionRecord>, Response> {
        let Some(cookie) =
            super::cookies::read(&parts.headers, &self.cookies.session_name(&self.tenant))
        else {
            return Ok(None);
        };
        state
            .sign_in
            .resolve_session(&self.tenant, &cookie)
            .await
            .map_err(|e| self.failed(&AccountError::Unavailable(store_reason(&e))))
    }

    /// Whether the posted form's CSRF token is this browser's for `purpose`.
    fn csrf_ok(&self, state: &SignInPages, parts: &Parts, purpose: &str, form: &Form) -> bool {
        Csrf::presented(&parts.headers, self.cookies, &self.tenant)
            .is_some_and(|c| c.check(state, purpose, form.get("csrf_token")))
    }
}

fn store_reason(e: &portcullis_service::sign_in::SignInError) -> &'static str {
    e.reason().unwrap_or("storage failed")
}

/// The fields the account pages' forms read; each at most once.
const FIELDS: [&str; 8] = [
    "csrf_token",
    "token",
    "password",
    "confirm",
    "current",
    "email",
    "sid",
    "client_id",
];

/// A posted form, read strictly ([`Fields::parse`]).
type Form = Fields;

/// A password field of a form ("" when absent).
fn secret(form: &Form, name: &str) -> Secret<String> {
    Secret::new(form.get(name).unwrap_or("").to_owned())
}

fn query_token(parts: &Parts) -> String {
    form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes())
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn refusal_text(t: &Text, code: &str) -> &'static str {
    let a = t.account;
    match code {
        "password_too_short" => a.password_too_short,
        "password_too_long" => a.password_too_long,
        "password_contains_username" => a.password_contains_username,
        "password_contains_email" => a.password_contains_email,
        "password_control_characters" => a.password_control_characters,
        _ => a.password_too_weak,
    }
}

fn page_name(purpose: TokenPurpose) -> &'static str {
    match purpose {
        TokenPurpose::Invite => "invite",
        TokenPurpose::PasswordReset => "reset",
    }
}

fn csrf_purpose(purpose: TokenPurpose) -> &'static str {
    match purpose {
        TokenPurpose::Invite => "account_invite",
        TokenPurpose::PasswordReset => "account_reset",
    }
}

// ---- invitation and reset links

async fn invite_get(
    State(state): State<SignInPages>,
    Path(tenant): Path<String>,
    parts: Parts,
) -> Response {
    link_get(state, tenant, parts, TokenPurpose::Invite).await
}

async fn reset_get(
    State(state): State<SignInPages>,
    Path(tenant): Path<String>,
    parts: Parts,
) -> Response {
    link_get(state, tenant, parts, TokenPurpose::PasswordReset).await
}

async fn invite_post(
    State(state): State<SignInPages>,
    Path(tenant): Path<String>,
    parts: Parts,
    body: String,
) -> Response {
    link_post(state, tenant, parts, body, TokenPurpose::Invite).await
}

async fn reset_post(
    State(state): State<SignInPages>,
    Path(tenant): Path<String>,
    parts: Parts,
    body: String,
) -> Response {
    link_post(state, tenant, parts, body, TokenPurpose::PasswordReset).await
}

async fn link_get(
    state: SignInPages,
    tenant: String,
    parts: Parts,
    purpose: TokenPurpose,
) -> Response {
    let ctx = match Ctx::new(&state, &parts, &tenant).await {
        Ok(c) => c,
        Err(res) => return res,
    };
    let token = query_token(&parts);
    match ctx.account.open_link(&ctx.tenant, &token, purpose).await {
        Ok(link) => {
            let csrf = Csrf::for_page(&parts.headers, ctx.cookies, &ctx.tenant);
            let mut res = password_page(
                &state,
                &ctx,
                &csrf,
                purpose,
                link.user.username.as_str(),
                &token,
                None,
                StatusCode::OK,
            );
            csrf.set_cookie(&mut res);
            res
        }
        Err(AccountError::InvalidLink(_)) => ctx.invalid_link(),
        Err(e) => ctx.failed(&e),
    }
}

#[allow(clippy::too_many_arguments)]
fn password_page(
    state: &SignInPages,
    ctx: &Ctx,
    csrf: &Csrf,
    purpose: TokenPurpose,
    username: &str,
    token: &str,
    alert: Option<&str>,
    status: StatusCode,
) -> Response {
    let a = ctx.text.account;
    let (title, intro) = match purpose {
        TokenPurpose::Invite => (a.invite_title, a.invite_intro),
        TokenPurpose::PasswordReset => (a.reset_title, a.reset_intro),
    };
    let action = format!("{}{}", ctx.base(), page_name(purpose));
    render(
        status,
        &ctx.chrome,
        &PasswordPage {
            chrome: &ctx.chrome,
            t: ctx.text,
            title,
            intro,
            alert,
            username,
            action: &action,
            csrf: &csrf.token(state, csrf_purpose(purpose)),
            token,
        },
        None,
    )
}

async fn link_post(
    state: SignInPages,
    tenant: String,
    parts: Parts,
    body: String,
    purpose: TokenPurpose,
) -> Response {
    let ctx = match Ctx::new(&state, &parts, &tenant).await {
        Ok(c) => c,
        Err(res) => return res,
    };
    let form = match ctx.form(&body) {
        Ok(f) => f,
        Err(res) => return res,
    };
    if !ctx.csrf_ok(&state, &parts, csrf_purpose(purpose), &form) {
        return ctx.csrf_refused();
    }
    let token = form.get("token").unwrap_or("").to_owned();
    let password = secret(&form, "password");
    let again = |alert: &str, username: &str| {
        let csrf = Csrf::for_page(&parts.headers, ctx.cookies, &ctx.tenant);
        password_page(
            &state,
            &ctx,
            &csrf,
            purpose,
            username,
            &token,
            Some(alert),
            StatusCode::BAD_REQUEST,
        )
    };
    if password.expose() != form.get("confirm").unwrap_or("") {
        // Shown only for a usable link: the page names the account.
        return match ctx.account.open_link(&ctx.tenant, &token, purpose).await {
            Ok(link) => again(
                ctx.text.account.passwords_differ,
                link.user.username.as_str(),
            ),
            Err(AccountError::InvalidLink(_)) => ctx.invalid_link(),
            Err(e) => ctx.failed(&e),
        };
    }
    match ctx
        .account
        .set_password_with_link(&ctx.tenant, &token, purpose, &password, &ctx.origin)
        .await
    {
        Ok(_) => {
            let a = ctx.text.account;
            ctx.notice(
                StatusCode::OK,
                a.password_set_title,
                a.password_set_text,
                None,
            )
        }
        Err(AccountError::InvalidLink(_)) => ctx.invalid_link(),
        Err(AccountError::Password(r)) => {
            let username = match ctx.account.open_link(&ctx.tenant, &token, purpose).await {
                Ok(link) => link.user.username.as_str().to_owned(),
                Err(_) => return ctx.invalid_link(),
            };
            again(refusal_text(ctx.text, r.code()), &username)
        }
        Err(e) => ctx.failed(&e),
    }
}

// ---- forgot password

async fn forgot_get(
    State(state): State<SignInPages>,
    Path(tenant): Path<String>,
    parts: Parts,
) -> Response {
    let ctx = match Ctx::new(&state, &parts, &tenant).await {
        Ok(c) => c,
        Err(res) => return res,
    };
    let csrf = Csrf::for_page(&parts.headers, ctx.cookies, &ctx.tenant);
    let action = format!("{}forgot", ctx.base());
    let mut res = render(
        StatusCode::OK,
        &ctx.chrome,
        &ForgotPage {
            chrome: &ctx.chrome,
            t: ctx.text,
            action: &action,
            csrf: &csrf.token(&state, "account_forgot"),
        },
        None,
    );
    csrf.set_cookie(&mut res);
    res
}

async fn forgot_post(
    State(state): State<SignInPages>,
    Path(tenant): Path<String>,
    parts: Parts,
    body: String,
) -> Response {
    let ctx = match Ctx::new(&state, &parts, &tenant).await {
        Ok(c) => c,
        Err(res) => return res,
    };
    let form = match ctx.form(&body) {
        Ok(f) => f,
        Err(res) => return res,
    };
    if !ctx.csrf_ok(&state, &parts, "account_forgot", &form) {
        return ctx.csrf_refused();
    }
    // The same answer, at once, whatever the address (the work is in the background).
    ctx.account
        .request_reset(&ctx.tenant, form.get("email").unwrap_or(""), &ctx.origin);
    let a = ctx.text.account;
    ctx.notice(
        StatusCode::OK,
        a.forgot_sent_title,
        a.forgot_sent_text,
        None,
    )
}

// ---- the account page

async fn account_get(
    State(state): State<SignInPages>,
    Path(tenant): Path<String>,
    parts: Parts,
) -> Response {
    let ctx = match Ctx::new(&state, &parts, &tenant).await {
        Ok(c) => c,
        Err(res) => return res,
    };
    match ctx.session(&state, &parts).await {
        Ok(Some(session)) => {
            account_page(&state, &ctx, &parts, &session, StatusCode::OK, None, None).await
        }
        Ok(None) => not_signed_in(&ctx),
        Err(res) => res,
    }
}

fn not_signed_in(ctx: &Ctx) -> Response {
    let a = ctx.text.account;
    ctx.notice(
        StatusCode::UNAUTHORIZED,
        a.not_signed_in_title,
        a.not_signed_in_text,
        None,
    )
}

/// The account page after a change the user asked for: `done` on success, "not found" (404)
/// for a session or consent that is not the user's, the error page otherwise.
async fn changed(
    state: &SignInPages,
    ctx: &Ctx,
    parts: &Parts,
    session: &SessionRecord,
    result: Result<(), AccountError>,
    done: &str,
) -> Response {
    let (status, alert, notice) = match result {
        Ok(()) => (StatusCode::OK, None, Some(done)),
        Err(AccountError::NotFound) => (
            StatusCode::NOT_FOUND,
            Some(ctx.text.account.not_found),
            None,
        ),
        Err(e) => return ctx.failed(&e),
    };
    account_page(state, ctx, parts, session, status, alert, notice).await
}

async fn account_page(
    state: &SignInPages,
    ctx: &Ctx,
    parts: &Parts,
    session: &SessionRecord,
    status: StatusCode,
    alert: Option<&str>,
    notice: Option<&str>,
) -> Response {
    let loaded = async {
        let user = ctx
            .account
            .user(&ctx.tenant, &session.user_id)
            .await?
            .ok_or(AccountError::NotFound)?;
        let sessions = ctx.account.sessions(session).await?;
        let consents = ctx.account.consents(session).await?;
        let mut rows = Vec::with_capacity(consents.len());
        for c in consents {
            let name = state
                .store
                .get_tenant_client(&ctx.tenant, c.client_id.as_str())
                .await?
                .map_or_else(|| c.client_id.to_string(), |cl| cl.name);
            rows.push(ConsentRow {
                client_id: c.client_id.to_string(),
                client_name: name,
                scopes: c.scopes.join(" "),
            });
        }
        Ok::<_, AccountError>((user, sessions, rows))
    }
    .await;
    let (user, sessions, consents) = match loaded {
        Ok(x) => x,
        Err(AccountError::NotFound) => return not_signed_in(ctx),
        Err(e) => return ctx.failed(&e),
    };
    let sessions: Vec<SessionRow> = sessions
        .into_iter()
        .map(|s| SessionRow {
            current: s.id == session.id,
            signed_in: minutes(rfc3339(s.auth_time)),
            last_seen: minutes(rfc3339(s.last_seen_at)),
            sid: s.id.to_string(),
        })
        .collect();
    let csrf = Csrf::for_page(&parts.headers, ctx.cookies, &ctx.tenant);
    let base = ctx.base();
    let mut res = render(
        status,
        &ctx.chrome,
        &AccountPage {
            chrome: &ctx.chrome,
            t: ctx.text,
            alert,
            notice,
            username: user.username.as_str(),
            base: &base,
            csrf: &csrf.token(state, "account"),
            sessions: &sessions,
            consents: &consents,
        },
        None,
    );
    csrf.set_cookie(&mut res);
    res
}

/// `2026-12-06T11:30:12.345Z` as `2026-12-06 11:30 UTC`.
fn minutes(rfc3339: String) -> String {
    match (rfc3339.get(..10), rfc3339.get(11..16)) {
        (Some(day), Some(time)) => format!("{day} {time} UTC"),
        _ => rfc3339,
    }
}

/// The signed-in session and the checked form of an account-page post, or the answer.
async fn signed_in_form(
    state: &SignInPages,
    ctx: &Ctx,
    parts: &Parts,
    body: &str,
) -> Result<(SessionRecord, Form), Response> {
    let form = ctx.form(body)?;
    if !ctx.csrf_ok(state, parts, "account", &form) {
        return Err(ctx.csrf_refused());
    }
    match ctx.session(state, parts).await? {
        Some(s) => Ok((s, form)),
        None => Err(not_signed_in(ctx)),
    }
}

async fn password_post(
    State(state): State<SignInPages>,
    Path(tenant): Path<String>,
    parts: Parts,
    body: String,
) -> Response {
    let ctx = match Ctx::new(&state, &parts, &tenant).await {
        Ok(c) => c,
        Err(res) => return res,
    };
    let (session, form) = match signed_in_form(&state, &ctx, &parts, &body).await {
        Ok(x) => x,
        Err(res) => return res,
    };
    let a = ctx.text.account;
    let new = secret(&form, "password");
    if new.expose() != form.get("confirm").unwrap_or("") {
        return account_page(
            &state,
            &ctx,
            &parts,
            &session,
            StatusCode::BAD_REQUEST,
            Some(a.passwords_differ),
            None,
        )
        .await;
    }
    let outcome = ctx
        .account
        .change_password(&session, &secret(&form, "current"), &new, &ctx.origin)
        .await;
    match outcome {
        Ok(_) => {
            account_page(
                &state,
                &ctx,
                &parts,
                &session,
                StatusCode::OK,
                None,
                Some(a.password_changed),
            )
            .await
        }
        Err(AccountError::WrongPassword) => {
            account_page(
                &state,
                &ctx,
                &parts,
                &session,
                StatusCode::BAD_REQUEST,
                Some(a.current_password_wrong),
                None,
            )
            .await
        }
        Err(AccountError::Password(r)) => {
            account_page(
                &state,
                &ctx,
                &parts,
                &session,
                StatusCode::BAD_REQUEST,
                Some(refusal_text(ctx.text, r.code())),
                None,
            )
            .await
        }
        Err(e) => ctx.failed(&e),
    }
}

async fn end_session_post(
    State(state): State<SignInPages>,
    Path(tenant): Path<String>,
    parts: Parts,
    body: String,
) -> Response {
    let ctx = match Ctx::new(&state, &parts, &tenant).await {
        Ok(c) => c,
        Err(res) => return res,
    };
    let (session, form) = match signed_in_form(&state, &ctx, &parts, &body).await {
        Ok(x) => x,
        Err(res) => return res,
    };
    let a = ctx.text.account;
    let sid = form.get("sid").unwrap_or("");
    match ctx.account.end_session(&session, sid, &ctx.origin).await {
        Ok(()) if sid == session.id.as_str() => {
            let mut res = ctx.notice(StatusCode::OK, a.signed_out_title, a.signed_out_text, None);
            add_cookie(
                &mut res,
                ctx.cookies.clear(&ctx.cookies.session_name(&ctx.tenant)),
            );
            res
        }
        result => changed(&state, &ctx, &parts, &session, result, a.session_ended).await,
    }
}

async fn revoke_consent_post(
    State(state): State<SignInPages>,
    Path(tenant): Path<String>,
    parts: Parts,
    body: String,
) -> Response {
    let ctx = match Ctx::new(&state, &parts, &tenant).await {
        Ok(c) => c,
        Err(res) => return res,
    };
    let (session, form) = match signed_in_form(&state, &ctx, &parts, &body).await {
        Ok(x) => x,
        Err(res) => return res,
    };
    let a = ctx.text.account;
    let client = form.get("client_id").unwrap_or("");
    let result = ctx
        .account
        .revoke_consent(&session, client, &ctx.origin)
        .await;
    changed(&state, &ctx, &parts, &session, result, a.consent_revoked).await
}
