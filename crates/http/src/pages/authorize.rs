//! The authorization endpoint (`GET`/`POST` [`AUTHORIZE_PATH`]) and the two forms it shows:
//! sign in ([`SIGN_IN_PATH`]) and consent ([`CONSENT_PATH`]).
//!
//! Every request, including each form post, carries the whole authorization request (the forms
//! hold it in hidden fields) and is validated again by `portcullis_core::authorize`; no
//! half-finished flow is kept on the server. In order:
//!
//! 1. A stage-1 failure (no or unknown client, unregistered redirect URI, ...) is an error page,
//!    never a redirect; a stage-2 failure goes back to the redirect URI with `state` and `iss`.
//! 2. Sign-in is needed without a session of the client's tenant, with `prompt=login`, or when
//!    the session is older than `max_age`; with `prompt=none` that is `login_required` instead.
//! 3. Consent is needed unless the client is first-party or a stored consent covers the scopes;
//!    `prompt=consent` asks again; with `prompt=none` that is `consent_required`.
//! 4. Otherwise a code is issued (`SignIn::issue_code`) and sent in the response mode asked for
//!    (`query` or `form_post`) with `state` and `iss`.
//!
//! Form posts are refused with an error page, changing nothing, unless their CSRF token belongs
//! to the browser's cookie. A successful sign-in replaces any presented session (fixation).
//!
//! A request with `request_uri` is a pushed one (RFC 9126, `portcullis_service::tokens::pushed`):
//! the stored parameters are the request (anything else sent beside `client_id` is ignored), the
//! forms carry only `client_id` and `request_uri`, and the pushed request is used up when its
//! code is issued. An unknown, expired, used or other client's `request_uri` is an error page.

use std::time::Duration;

use crate::state::{RouterState, SignInPages};
use askama::Template;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use portcullis_core::audit::{Action, Actor, Outcome};
use portcullis_core::authorize::{
    AuthorizationRequest, AuthorizationResponse, AuthorizeError, AuthorizeParams, ErrorCode,
    ErrorPage as StageOne, FormPost,
};
use portcullis_core::secret::Secret;
use portcullis_core::tenant::TenantStatus;
use portcullis_service::audit::{EventDraft, RequestOrigin};
use portcullis_service::login::{Attempt, LoginOutcome};
use portcullis_service::sign_in::{CodeRequest, NewSession};
use portcullis_store::{ConsentRecord, SessionRecord};

pub use portcullis_service::oauth::AUTHORIZE_PATH;

use super::{
    add_cookie, error_page, fields_refused, messages, render, with_retry_after, Chrome,
    CookiePolicy, Csrf, Fields, FieldsRefused, Text,
};

/// Where the sign-in form posts.
pub const SIGN_IN_PATH: &str = "/oauth2/authorize/sign-in";
/// Where the consent form posts.
pub const CONSENT_PATH: &str = "/oauth2/authorize/consent";

/// Form fields of the pages themselves; everything else is the authorization request.
const OWN_FIELDS: [&str; 4] = ["csrf_token", "login", "password", "decision"];
/// Longest form or query accepted, in pairs (the body limit bounds bytes).
const MAX_PAIRS: usize = 128;

pub fn router() -> Router<RouterState> {
    Router::new()
        .route(AUTHORIZE_PATH, get(authorize_get).post(authorize_post))
        .route(SIGN_IN_PATH, post(sign_in_post))
        .route(CONSENT_PATH, post(consent_post))
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
    /// The tenant's "forgot password" page (`account::forgot_get`).
    forgot: &'a str,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    chrome: &'a Chrome,
    t: &'a Text,
    client_name: &'a str,
    user: &'a str,
    scopes: &'a [String],
    action: &'a str,
    csrf: &'a str,
    carried: &'a [(String, String)],
}

/// The request as received: its pairs, split into the page's own fields and the rest.
struct Received {
    pairs: Vec<(String, String)>,
    own: Vec<(String, String)>,
}

impl Received {
    /// Reads a query or form: at most [`MAX_PAIRS`] pairs, none of the page's own fields twice
    /// (repeated OAuth parameters go on to core's rules, which refuse them).
    fn read(raw: &str) -> Result<Self, FieldsRefused> {
        let (own, pairs) = Fields::parse(raw, MAX_PAIRS, &OWN_FIELDS)?
            .into_pairs()
            .into_iter()
            .partition(|(k, _)| OWN_FIELDS.contains(&k.as_str()));
        Ok(Self { pairs, own })
    }

    fn own(&self, name: &str) -> Option<&str> {
        self.own
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A validated request and what the pages need around it.
struct Flow {
    req: AuthorizationRequest,
    client_name: String,
    text: &'static Text,
    /// The page frame, read (branding, tenant name) only when a page is shown: a redirect with a
    /// code, the common answer with a session and after a sign-in, needs none.
    chrome: tokio::sync::OnceCell<Chrome>,
    cookies: CookiePolicy,
    origin: RequestOrigin,
    carried: Vec<(String, String)>,
    /// The pushed request this flow came from (RFC 9126), used up when its code is issued.
    pushed: Option<[u8; 32]>,
}

impl Flow {
    /// The page frame for this request's tenant, loaded the first time a page needs it.
    async fn chrome(&self, state: &SignInPages) -> &Chrome {
        self.chrome
            .get_or_init(|| Chrome::load(state, &self.req.tenant, self.text))
            .await
    }
}

async fn authorize_get(State(state): State<SignInPages>, parts: Parts) -> Response {
    let received = Received::read(parts.uri.query().unwrap_or(""));
    authorize(state, parts, received).await
}

async fn authorize_post(State(state): State<SignInPages>, parts: Parts, body: String) -> Response {
    authorize(state, parts, Received::read(&body)).await
}

async fn authorize(
    state: SignInPages,
    parts: Parts,
    received: Result<Received, FieldsRefused>,
) -> Response {
    let received = match received {
        Ok(r) => r,
        Err(refused) => return fields_refused(&parts.headers, refused),
    };
    let flow = match establish(&state, &parts, received.pairs).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let session = match current_session(&state, &parts, &flow).await {
        Ok(s) => s,
        Err(res) => return res,
    };
    let now = state.clock.now();
    let too_old = |s: &SessionRecord| {
        flow.req.max_age.is_some_and(|max| {
            max == 0 || now.saturating_sub(Duration::from_secs(max)) > s.auth_time
        })
    };
    match session {
        Some(s) if !flow.req.prompt.login && !too_old(&s) => {
            after_sign_in(
                &state,
                &flow,
                &s,
                Csrf::presented(&parts.headers, flow.cookies, &flow.req.tenant),
            )
            .await
        }
        _ if flow.req.prompt.none => redirect_error(&state, &flow, ErrorCode::LoginRequired),
        _ => {
            let hint = flow.req.login_hint.clone().unwrap_or_default();
            sign_in_page(&state, &parts, &flow, StatusCode::OK, None, &hint).await
        }
    }
}

async fn sign_in_post(State(state): State<SignInPages>, parts: Parts, body: String) -> Response {
    let received = match Received::read(&body) {
        Ok(r) => r,
        Err(refused) => return fields_refused(&parts.headers, refused),
    };
    let login = received.own("login").unwrap_or("").to_owned();
    let password = Secret::new(received.own("password").unwrap_or("").to_owned());
    let csrf_token = received.own("csrf_token").map(str::to_owned);
    let flow = match establish(&state, &parts, received.pairs).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let csrf = Csrf::presented(&parts.headers, flow.cookies, &flow.req.tenant);
    if !csrf
        .as_ref()
        .is_some_and(|c| c.check(&state, "sign_in", csrf_token.as_deref()))
    {
        return csrf_refused(&state, &flow).await;
    }
    let attempt = Attempt {
        tenant: &flow.req.tenant,
        login: &login,
        password: &password,
        origin: &flow.origin,
    };
    let t = flow.text;
    match state.login.authenticate(attempt).await {
        Ok(LoginOutcome::SignedIn(user)) => {
            let presented =
                super::cookies::read(&parts.headers, &flow.cookies.session_name(&flow.req.tenant));
            let started = state
                .sign_in
                .create_session(
                    NewSession {
                        tenant: flow.req.tenant.clone(),
                        user_id: user.id.clone(),
                        amr: vec!["pwd".to_owned()],
                        acr: None,
                    },
                    presented.as_deref(),
                    Actor::anonymous(),
                    &flow.origin,
                )
                .await;
            let started = match started {
                Ok(s) => s,
                Err(e) => return server_error(&state, &flow, &e.to_string()).await,
            };
            let secret = started.secret.expose().to_owned();
            let mut res = after_sign_in(
                &state,
                &flow,
                &started.record,
                Some(Csrf::for_session(&secret, flow.cookies)),
            )
            .await;
            add_cookie(
                &mut res,
                flow.cookies
                    .set(&flow.cookies.session_name(&flow.req.tenant), &secret),
            );
            // The pre-session value served its purpose; a new one comes with the next page.
            add_cookie(
                &mut res,
                flow.cookies.clear(&flow.cookies.pre_session_name()),
            );
            res
        }
        Ok(LoginOutcome::Refused) => {
            sign_in_page(
                &state,
                &parts,
                &flow,
                StatusCode::OK,
                Some(t.sign_in_failed),
                &login,
            )
            .await
        }
        Ok(LoginOutcome::Throttled(wait)) => with_retry_after(
            sign_in_page(
                &state,
                &parts,
                &flow,
                StatusCode::TOO_MANY_REQUESTS,
                Some(t.sign_in_throttled),
                &login,
            )
            .await,
            wait,
        ),
        Ok(LoginOutcome::Busy(wait)) => with_retry_after(
            sign_in_page(
                &state,
                &parts,
                &flow,
                StatusCode::SERVICE_UNAVAILABLE,
                Some(t.sign_in_busy),
                &login,
            )
            .await,
            wait,
        ),
        Err(e) => server_error(&state, &flow, &e.to_string()).await,
    }
}

async fn consent_post(State(state): State<SignInPages>, parts: Parts, body: String) -> Response {
    let received = match Received::read(&body) {
        Ok(r) => r,
        Err(refused) => return fields_refused(&parts.headers, refused),
    };
    let decision = received.own("decision").map(str::to_owned);
    let csrf_token = received.own("csrf_token").map(str::to_owned);
    let flow = match establish(&state, &parts, received.pairs).await {
        Ok(f) => f,
        Err(res) => return res,
    };
    let csrf = Csrf::presented(&parts.headers, flow.cookies, &flow.req.tenant);
    if !csrf
        .as_ref()
        .is_some_and(|c| c.check(&state, "consent", csrf_token.as_deref()))
    {
        return csrf_refused(&state, &flow).await;
    }
    let session = match current_session(&state, &parts, &flow).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            // The session ended meanwhile: sign in again.
            let hint = flow.req.login_hint.clone().unwrap_or_default();
            return sign_in_page(&state, &parts, &flow, StatusCode::OK, None, &hint).await;
        }
        Err(res) => return res,
    };
    match decision.as_deref() {
        Some("allow") => {
            let scopes = flow.req.scope.to_vec();
            let mut granted = match state
                .store
                .get_consent(
                    &flow.req.tenant,
                    session.user_id.as_str(),
                    flow.req.client_id.as_str(),
                )
                .await
            {
                Ok(c) => c.map(|c| c.scopes).unwrap_or_default(),
                Err(e) => return server_error(&state, &flow, &e.to_string()).await,
            };
            for s in &scopes {
                if !granted.contains(s) {
                    granted.push(s.clone());
                }
            }
            granted.sort();
            let record = ConsentRecord {
                tenant: flow.req.tenant.clone(),
                user_id: session.user_id.clone(),
                client_id: flow.req.client_id.clone(),
                scopes: granted,
                granted_at: state.clock.now(),
            };
            if let Err(e) = state.store.put_consent(&record).await {
                return server_error(&state, &flow, &e.to_string()).await;
            }
            state.audit.record(
                EventDraft {
                    tenant: flow.req.tenant.clone(),
                    actor: Actor::anonymous(),
                    credential_id: None,
                    action: Action::ConsentGrant,
                    outcome: Outcome::Success,
                    reason: None,
                    target: Some(flow.req.client_id.as_str().to_owned()),
                },
                &flow.origin,
            );
            issue(&state, &flow, &session).await
        }
        Some("deny") => redirect_error(&state, &flow, ErrorCode::AccessDenied),
        _ => error_page(
            StatusCode::BAD_REQUEST,
            flow.chrome(&state).await,
            flow.text,
            flow.text.error_bad_request,
            Some("invalid_request"),
        ),
    }
}

/// Validates the authorization request: the flow, or the answer for a failure.
async fn establish(
    state: &SignInPages,
    parts: &Parts,
    pairs: Vec<(String, String)>,
) -> Result<Flow, Response> {
    let accept_language = parts
        .headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok());
    let fallback_text = messages::pick(&[], accept_language);
    let origin = crate::extract::origin(parts);
    let bare = || Chrome::new(None, &Default::default(), fallback_text);
    let page = |p: StageOne| {
        let t = fallback_text;
        let message = match p {
            StageOne::UnknownClient | StageOne::ClientDisabled | StageOne::ClientNotForCodeFlow => {
                t.error_unknown_client
            }
            StageOne::MissingRedirectUri
            | StageOne::RepeatedRedirectUri
            | StageOne::UnregisteredRedirectUri => t.error_bad_redirect_uri,
            _ => t.error_bad_request,
        };
        tracing::info!(
            reason = p.reason(),
            "authorization request refused with a page"
        );
        error_page(
            StatusCode::BAD_REQUEST,
            &bare(),
            t,
            message,
            Some(p.error()),
        )
    };
    let now = state.clock.now();
    let Pushed {
        pairs,
        carried,
        digest: pushed,
    } = match pushed_request(state, &pairs, now).await {
        Ok(p) => p,
        Err(Unpushed::Direct) => Pushed {
            carried: pairs.clone(),
            pairs,
            digest: None,
        },
        Err(Unpushed::Invalid(reason)) => {
            tracing::info!(reason, "authorization request refused with a page");
            return Err(error_page(
                StatusCode::BAD_REQUEST,
                &bare(),
                fallback_text,
                fallback_text.error_bad_request,
                Some("invalid_request"),
            ));
        }
        Err(Unpushed::Page(p)) => return Err(page(p)),
        Err(Unpushed::Store(e)) => {
            return Err(server_error_bare(&bare(), fallback_text, &e.to_string()))
        }
    };
    let mut params = AuthorizeParams::from_pairs(pairs.iter().cloned());
    if pushed.is_some() {
        params = params.pushed();
    }
    let client_id = params.client_id().map_err(page)?;
    let directory = &state.oauth.directory;
    let facts = directory
        .client(state.store.as_ref(), client_id.as_str(), now)
        .await
        .map_err(|e| server_error_bare(&bare(), fallback_text, &e.to_string()))?;
    let (app, name) = match &facts {
        Some(f) => {
            let status = directory
                .tenant_status(state.store.as_ref(), &f.client.tenant, now)
                .await
                .map_err(|e| server_error_bare(&bare(), fallback_text, &e.to_string()))?;
            let active = status == Some(TenantStatus::Active);
            let mut app = portcullis_service::oauth::directory::app_client(&f.client, active);
            // The tenant may require pushed requests of every client (RFC 9126 section 6).
            if let Some(a) = app.as_mut().filter(|a| !a.require_pushed_requests) {
                a.require_pushed_requests = directory
                    .tenant_requires_pushed_requests(state.store.as_ref(), &f.client.tenant, now)
                    .await
                    .map_err(|e| server_error_bare(&bare(), fallback_text, &e.to_string()))?;
            }
            (app, f.client.name.clone())
        }
        None => (None, String::new()),
    };
    let req = match params.validate(app.as_ref()) {
        Ok(r) => r,
        Err(AuthorizeError::Page(p)) => return Err(page(p)),
        Err(AuthorizeError::Redirect(e)) => {
            tracing::info!(error = e.error.as_str(), "authorization request refused");
            return Err(respond(e.response(&state.oauth.issuer)));
        }
    };
    let text = messages::pick(&req.ui_locales, accept_language);
    Ok(Flow {
        req,
        client_name: name,
        text,
        chrome: tokio::sync::OnceCell::new(),
        cookies: CookiePolicy::for_issuer(&state.oauth.issuer),
        origin,
        carried,
        pushed,
    })
}

/// A request that came by `request_uri` (RFC 9126 section 4): the pushed parameters are the
/// request, and the pages carry only `client_id` and `request_uri` on.
struct Pushed {
    pairs: Vec<(String, String)>,
    carried: Vec<(String, String)>,
    digest: Option<[u8; 32]>,
}

/// Why a request is not (or not validly) a pushed one.
enum Unpushed {
    /// No `request_uri`: a direct request.
    Direct,
    /// A `request_uri` that is unknown, expired, used, another client's, or repeated.
    Invalid(&'static str),
    Page(StageOne),
    Store(portcullis_store::StoreError),
}

/// Resolves the request's `request_uri`, if it has one, for its `client_id`. Other parameters
/// sent beside them are ignored: the pushed request is the whole request.
async fn pushed_request(
    state: &SignInPages,
    pairs: &[(String, String)],
    now: portcullis_core::time::Timestamp,
) -> Result<Pushed, Unpushed> {
    let mut uris = pairs
        .iter()
        .filter(|(k, v)| k == "request_uri" && !v.is_empty());
    let Some((_, uri)) = uris.next() else {
        return Err(Unpushed::Direct);
    };
    if uris.next().is_some() {
        return Err(Unpushed::Invalid("request_uri_repeated"));
    }
    let client_id = AuthorizeParams::from_pairs(pairs.iter().cloned())
        .client_id()
        .map_err(Unpushed::Page)?;
    let opened = portcullis_service::tokens::pushed::open(
        state.store.as_ref(),
        client_id.as_str(),
        uri,
        now,
    )
    .await
    .map_err(Unpushed::Store)?
    .ok_or(Unpushed::Invalid("request_uri_unknown_expired_or_used"))?;
    Ok(Pushed {
        pairs: opened.pairs,
        carried: vec![
            ("client_id".to_owned(), client_id.as_str().to_owned()),
            ("request_uri".to_owned(), uri.clone()),
        ],
        digest: Some(opened.digest),
    })
}

/// The browser's session of the request's tenant, if any.
async fn current_session(
    state: &SignInPages,
    parts: &Parts,
    flow: &Flow,
) -> Result<Option<SessionRecord>, Response> {
    let Some(cookie) =
        super::cookies::read(&parts.headers, &flow.cookies.session_name(&flow.req.tenant))
    else {
        return Ok(None);
    };
    match state
        .sign_in
        .resolve_session(&flow.req.tenant, &cookie)
        .await
    {
        Ok(s) => Ok(s),
        Err(e) => Err(server_error(state, flow, &e.to_string()).await),
    }
}

/// Signed in: consent if needed, else the code.
async fn after_sign_in(
    state: &SignInPages,
    flow: &Flow,
    session: &SessionRecord,
    csrf: Option<Csrf>,
) -> Response {
    let needs_consent = if flow.req.first_party {
        false
    } else if flow.req.prompt.consent {
        true
    } else {
        match state
            .store
            .get_consent(
                &flow.req.tenant,
                session.user_id.as_str(),
                flow.req.client_id.as_str(),
            )
            .await
        {
            Ok(Some(c)) => !flow
                .req
                .scope
                .iter()
                .all(|s| c.scopes.iter().any(|g| g == s.as_str())),
            Ok(None) => true,
            Err(e) => return server_error(state, flow, &e.to_string()).await,
        }
    };
    if !needs_consent {
        return issue(state, flow, session).await;
    }
    if flow.req.prompt.none {
        return redirect_error(state, flow, ErrorCode::ConsentRequired);
    }
    let Some(csrf) = csrf else {
        // A session cookie was read, so a binding exists; this is unreachable in practice.
        return server_error(state, flow, "no CSRF binding for a signed-in browser").await;
    };
    let user = match super::signed_in_username(state, &flow.req.tenant, &session.user_id).await {
        Ok(user) => user,
        Err(e) => return server_error(state, flow, &e.to_string()).await,
    };
    let token = csrf.token(state, "consent");
    let scopes = flow.req.scope.to_vec();
    let target = super::layout::form_target_source(&flow.req.target.redirect_uri);
    let chrome = flow.chrome(state).await;
    render(
        StatusCode::OK,
        chrome,
        &ConsentPage {
            chrome,
            t: flow.text,
            client_name: &flow.client_name,
            user: &user,
            scopes: &scopes,
            action: CONSENT_PATH,
            csrf: &token,
            carried: &flow.carried,
        },
        target.as_deref(),
    )
}

/// Issues the code and sends the success response.
async fn issue(state: &SignInPages, flow: &Flow, session: &SessionRecord) -> Response {
    if let Some(digest) = &flow.pushed {
        // One code per pushed request: a second tab or node that gets here later fails.
        match portcullis_service::tokens::pushed::use_up(
            state.store.as_ref(),
            digest,
            state.clock.now(),
        )
        .await
        {
            Ok(true) => {}
            Ok(false) => return redirect_error(state, flow, ErrorCode::InvalidRequest),
            Err(e) => return server_error(state, flow, &e.to_string()).await,
        }
    }
    let code = state
        .sign_in
        .issue_code(CodeRequest {
            client_id: &flow.req.client_id,
            redirect_uri: &flow.req.target.redirect_uri,
            code_challenge: flow.req.code_challenge.as_str(),
            nonce: flow.req.nonce.as_deref(),
            scope: flow.req.scope.to_vec(),
            dpop_jkt: flow.req.dpop_jkt.as_ref().map(|t| t.as_str()),
            session,
        })
        .await;
    match code {
        Ok(code) => respond(flow.req.target.success(
            code.expose(),
            flow.req.state.as_deref(),
            &state.oauth.issuer,
        )),
        Err(e) => server_error(state, flow, &e.to_string()).await,
    }
}

async fn sign_in_page(
    state: &SignInPages,
    parts: &Parts,
    flow: &Flow,
    status: StatusCode,
    alert: Option<&str>,
    login: &str,
) -> Response {
    let csrf = Csrf::for_page(&parts.headers, flow.cookies, &flow.req.tenant);
    let token = csrf.token(state, "sign_in");
    let target = super::layout::form_target_source(&flow.req.target.redirect_uri);
    let forgot = format!("/account/{}/forgot", flow.req.tenant.as_str());
    let chrome = flow.chrome(state).await;
    let mut res = render(
        status,
        chrome,
        &SignInPage {
            chrome,
            t: flow.text,
            alert,
            client_name: &flow.client_name,
            action: SIGN_IN_PATH,
            csrf: &token,
            carried: &flow.carried,
            login,
            forgot: &forgot,
        },
        target.as_deref(),
    );
    csrf.set_cookie(&mut res);
    res
}

fn redirect_error(state: &SignInPages, flow: &Flow, error: ErrorCode) -> Response {
    let e = portcullis_core::authorize::AuthorizationError {
        target: flow.req.target.clone(),
        error,
        description: None,
        state: flow.req.state.clone(),
    };
    respond(e.response(&state.oauth.issuer))
}

/// An authorization response on the wire.
fn respond(r: AuthorizationResponse) -> Response {
    match r {
        AuthorizationResponse::Redirect { location } => {
            let mut res = StatusCode::SEE_OTHER.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                res.headers_mut().insert(header::LOCATION, v);
            }
            super::layout::security_headers(
                res.headers_mut(),
                "default-src 'none'; frame-ancestors 'none'",
            );
            res.headers_mut().remove(header::CONTENT_TYPE);
            res
        }
        AuthorizationResponse::FormPost(page) => {
            let mut res = (StatusCode::OK, page.html).into_response();
            super::layout::security_headers(
                res.headers_mut(),
                &FormPost::content_security_policy(),
            );
            res
        }
    }
}

async fn csrf_refused(state: &SignInPages, flow: &Flow) -> Response {
    tracing::info!("a sign-in page form was refused: CSRF token missing or not this browser's");
    error_page(
        StatusCode::FORBIDDEN,
        flow.chrome(state).await,
        flow.text,
        flow.text.error_csrf,
        None,
    )
}

async fn server_error(state: &SignInPages, flow: &Flow, detail: &str) -> Response {
    server_error_bare(flow.chrome(state).await, flow.text, detail)
}

fn server_error_bare(chrome: &Chrome, t: &Text, detail: &str) -> Response {
    tracing::error!(error = detail, "the authorization endpoint failed");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        chrome,
        t,
        t.error_server,
        Some("server_error"),
    )
}
