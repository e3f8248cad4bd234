use super::*;
use crate::client::ApplicationType::{Native, Web};

const ISSUER: &str = "https://auth.example";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const CB: &str = "https://app.example.com/cb";

fn client(app: ApplicationType, uris: &[&str]) -> AppClient {
    AppClient {
        client_id: ClientId::parse("cl_app").expect("id"),
        tenant: TenantId::parse("acme").expect("tenant"),
        application_type: app,
        grant_types: vec![GrantType::AuthorizationCode, GrantType::RefreshToken],
        redirect_uris: uris
            .iter()
            .map(|u| RedirectUri::parse(u, app).expect("registrable"))
            .collect(),
        scopes: ScopeSet::parse_delimited("openid profile offline_access payments:read")
            .expect("scopes"),
        first_party: false,
        active: true,
        require_pushed_requests: false,
    }
}

fn web() -> AppClient {
    client(Web, &[CB, "https://app.example.com/q?tenant=acme"])
}

fn params(query: &str) -> AuthorizeParams {
    AuthorizeParams::from_pairs(form_urlencoded::parse(query.as_bytes()).into_owned())
}

/// A valid request with `extra` appended and the parameters named in `drop` removed.
fn query(extra: &str, drop: &[&str]) -> String {
    let base = [
        ("client_id", "cl_app"),
        ("redirect_uri", CB),
        ("response_type", "code"),
        ("scope", "openid payments:read"),
        ("state", "st-1"),
        ("nonce", "n-1"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in base.iter().filter(|(k, _)| !drop.contains(k)) {
        s.append_pair(k, v);
    }
    let mut q = s.finish();
    if !extra.is_empty() {
        q.push('&');
        q.push_str(extra);
    }
    q
}

fn check(q: &str, c: &AppClient) -> Result<AuthorizationRequest, AuthorizeError> {
    params(q).validate(Some(c))
}

fn page(q: &str, c: &AppClient) -> ErrorPage {
    match check(q, c) {
        Err(AuthorizeError::Page(p)) => p,
        other => panic!("expected an error page for {q}, got {other:?}"),
    }
}

fn redirected(q: &str, c: &AppClient) -> AuthorizationError {
    match check(q, c) {
        Err(AuthorizeError::Redirect(e)) => *e,
        other => panic!("expected a redirect error for {q}, got {other:?}"),
    }
}

#[test]
fn a_valid_request_is_typed_whole() {
    let r = check(
        &query(
            "prompt=login+consent&max_age=300&login_hint=ann%40example.com&ui_locales=fr-CA+en&response_mode=form_post&unknown=ignored",
            &[],
        ),
        &web(),
    )
    .expect("valid");
    assert_eq!(r.client_id.as_str(), "cl_app");
    assert_eq!(r.tenant.as_str(), "acme");
    assert_eq!(
        r.target,
        RedirectTarget {
            redirect_uri: CB.into(),
            mode: ResponseMode::FormPost
        }
    );
    assert_eq!(r.scope.to_delimited(), "openid payments:read");
    assert!(r.is_openid());
    assert_eq!(r.state.as_deref(), Some("st-1"));
    assert_eq!(r.nonce.as_deref(), Some("n-1"));
    assert_eq!(r.code_challenge.as_str(), CHALLENGE);
    assert_eq!(
        r.prompt,
        Prompt {
            none: false,
            login: true,
            consent: true
        }
    );
    assert_eq!(r.max_age, Some(300));
    assert_eq!(r.login_hint.as_deref(), Some("ann@example.com"));
    assert_eq!(r.ui_locales, vec!["fr-CA", "en"]);
    assert!(!r.first_party);

    // Optional parameters may be left out, or sent empty (= omitted).
    let r = check(
        &query("prompt=&max_age=&nonce=", &["state", "nonce"]),
        &web(),
    )
    .expect("minimal");
    assert_eq!((r.state, r.nonce, r.max_age), (None, None, None));
    assert_eq!(r.target.mode, ResponseMode::Query);
}

#[test]
fn client_and_redirect_uri_failures_are_shown_never_redirected() {
    let c = web();
    assert_eq!(
        page(&query("", &["client_id"]), &c),
        ErrorPage::MissingClientId
    );
    assert_eq!(
        page(&query("client_id=", &["client_id"]), &c),
        ErrorPage::MissingClientId
    );
    assert_eq!(
        page(&query("client_id=cl_app", &[]), &c),
        ErrorPage::RepeatedClientId
    );
    assert_eq!(
        page(&query("client_id=a%20b", &["client_id"]), &c),
        ErrorPage::MalformedClientId
    );
    assert_eq!(
        params(&query("", &[])).validate(None),
        Err(AuthorizeError::Page(ErrorPage::UnknownClient))
    );
    // The lookup returned another client than the one named.
    assert_eq!(
        page(&query("client_id=cl_other", &["client_id"]), &c),
        ErrorPage::UnknownClient
    );
    let mut disabled = web();
    disabled.active = false;
    assert_eq!(page(&query("", &[]), &disabled), ErrorPage::ClientDisabled);
    let mut machine = web();
    machine.grant_types = vec![GrantType::ClientCredentials];
    assert_eq!(
        page(&query("", &[]), &machine),
        ErrorPage::ClientNotForCodeFlow
    );
    assert_eq!(
        page(&query("", &["redirect_uri"]), &c),
        ErrorPage::MissingRedirectUri
    );
    assert_eq!(
        page(&query("redirect_uri=", &["redirect_uri"]), &c),
        ErrorPage::MissingRedirectUri
    );
    assert_eq!(
        page(
            &query("redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb", &[]),
            &c
        ),
        ErrorPage::RepeatedRedirectUri
    );
    assert_eq!(
        page(
            &query(
                "redirect_uri=https%3A%2F%2Fevil.example%2Fcb",
                &["redirect_uri"]
            ),
            &c
        ),
        ErrorPage::UnregisteredRedirectUri
    );
    // Stage-1 failures win over every stage-2 fault in the same request.
    assert_eq!(
        page(
            "client_id=cl_app&redirect_uri=https%3A%2F%2Fevil.example%2F&response_type=token&state=s",
            &c
        ),
        ErrorPage::UnregisteredRedirectUri
    );
    let many: String = (0..=MAX_PARAMETERS)
        .map(|i| format!("p{i}=x&"))
        .collect::<String>()
        + &query("", &[]);
    assert_eq!(page(&many, &c), ErrorPage::TooManyParameters);
    assert_eq!(ErrorPage::UnknownClient.error(), "invalid_client");
    assert_eq!(
        ErrorPage::ClientNotForCodeFlow.error(),
        "unauthorized_client"
    );
    assert_eq!(
        ErrorPage::UnregisteredRedirectUri.error(),
        "invalid_request"
    );
    assert_eq!(
        ErrorPage::UnregisteredRedirectUri.reason(),
        "redirect_uri_unregistered"
    );
}

/// Every redirect-URI item of issue 16's "Bad input" list, through the whole request.
#[test]
fn bad_redirect_uris_are_error_pages() {
    let c = web();
    for bad in [
        "https://app.example.com/cb/more",           // added path
        "https://app.example.com/cb?x=1",            // added query
        "https://app.example.com/q?tenant=acme&x=1", // added to the registered query
        "https://app.example.com/cb#f",              // fragment
        "https://user@app.example.com/cb",           // user-info
        "https://app.example.com:8443/cb",           // other port (not loopback)
        "http://app.example.com/cb",                 // other scheme
        "https://app.example.com/c",                 // prefix
        "https://app.example.com/cbx",               // suffix
        "https://app.example.com.evil.example/cb",   // host suffix
    ] {
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.append_pair("redirect_uri", bad);
        let q = query(&s.finish(), &["redirect_uri"]);
        assert_eq!(page(&q, &c), ErrorPage::UnregisteredRedirectUri, "{bad}");
    }
    let native = client(Native, &["http://127.0.0.1/cb", "com.example.app:/cb"]);
    for (uri, ok) in [
        ("http://127.0.0.1:53124/cb", true),
        ("http://127.0.0.1/cb", true),
        ("com.example.app:/cb", true),
        ("http://localhost:53124/cb", false),
        ("http://[::1]:53124/cb", false),
        ("http://127.0.0.1:53124/cb2", false),
        ("com.example.app:/cb?x", false),
    ] {
        let mut s = form_urlencoded::Serializer::new(String::new());
        s.append_pair("redirect_uri", uri);
        let q = query(&s.finish(), &["redirect_uri"]);
        match check(&q, &native) {
            Ok(r) => {
                assert!(ok, "{uri} should be refused");
                assert_eq!(
                    r.target.redirect_uri, uri,
                    "the response goes where the app listens"
                );
            }
            Err(e) => {
                assert!(!ok, "{uri}: {e:?}");
                assert_eq!(e, AuthorizeError::Page(ErrorPage::UnregisteredRedirectUri));
            }
        }
    }
}

/// Every PKCE item of the "Bad input" list that the authorization request sees.
#[test]
fn pkce_is_s256_for_every_client() {
    let c = web();
    for (q, description) in [
        (
            query("", &["code_challenge", "code_challenge_method"]),
            "code_challenge is required (PKCE with S256)",
        ),
        (
            query("", &["code_challenge"]),
            "code_challenge is required (PKCE with S256)",
        ),
        (
            query("", &["code_challenge_method"]),
            "code_challenge_method must be S256",
        ),
        (
            query("code_challenge_method=plain", &["code_challenge_method"]),
            "code_challenge_method must be S256",
        ),
        (
            query("code_challenge_method=s256", &["code_challenge_method"]),
            "code_challenge_method must be S256",
        ),
        (
            query(
                "code_challenge=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXkdBjft",
                &["code_challenge"],
            ),
            "code_challenge must be the base64url SHA-256 of the code_verifier: 43 characters",
        ),
        (
            query("code_challenge=short", &["code_challenge"]),
            "code_challenge must be the base64url SHA-256 of the code_verifier: 43 characters",
        ),
    ] {
        let e = redirected(&q, &c);
        assert_eq!(e.error, ErrorCode::InvalidRequest, "{q}");
        assert_eq!(e.description.as_deref(), Some(description), "{q}");
        assert_eq!(
            e.state.as_deref(),
            Some("st-1"),
            "state goes back with the error"
        );
    }
    // Native and first-party clients are no exception.
    let mut native = client(Native, &["com.example.app:/cb"]);
    native.first_party = true;
    let q = query(
        "redirect_uri=com.example.app%3A%2Fcb",
        &["redirect_uri", "code_challenge_method"],
    );
    assert_eq!(redirected(&q, &native).error, ErrorCode::InvalidRequest);
}

#[test]
fn every_stage_two_fault_has_its_standard_code() {
    use ErrorCode::*;
    let c = web();
    for (q, code) in [
        (query("", &["response_type"]), InvalidRequest),
        (
            query("response_type=token", &["response_type"]),
            UnsupportedResponseType,
        ),
        (
            query("response_type=code+id_token", &["response_type"]),
            UnsupportedResponseType,
        ),
        (
            query("response_type=id_token", &["response_type"]),
            UnsupportedResponseType,
        ),
        (
            query("response_type=none", &["response_type"]),
            UnsupportedResponseType,
        ),
        (
            query("response_type=CODE", &["response_type"]),
            UnsupportedResponseType,
        ),
        (query("response_type=code", &[]), InvalidRequest),
        (query("nonce=n-2", &[]), InvalidRequest),
        (
            query("request=eyJhbGciOiJub25lIn0.e30.", &[]),
            RequestNotSupported,
        ),
        (
            query("request_uri=https%3A%2F%2Fx.example%2Fr", &[]),
            RequestUriNotSupported,
        ),
        (query("registration=%7B%7D", &[]), RegistrationNotSupported),
        (query("", &["scope"]), InvalidScope),
        (query("scope=", &["scope"]), InvalidScope),
        (query("scope=payments%3Aadmin", &["scope"]), InvalidScope),
        (query("scope=openid+email", &["scope"]), InvalidScope),
        (query("scope=bad%22scope", &["scope"]), InvalidScope),
        (query("prompt=none+login", &[]), InvalidRequest),
        (query("prompt=consent+none", &[]), InvalidRequest),
        (query("prompt=select_account", &[]), InvalidRequest),
        (query("max_age=-1", &[]), InvalidRequest),
        (query("max_age=%2B5", &[]), InvalidRequest),
        (query("max_age=1e3", &[]), InvalidRequest),
        (query("max_age=99999999999", &[]), InvalidRequest),
        (query("nonce=caf%C3%A9", &["nonce"]), InvalidRequest),
        (
            query(&format!("nonce={}", "n".repeat(513)), &["nonce"]),
            InvalidRequest,
        ),
        (query("login_hint=a%0Ab", &[]), InvalidRequest),
        (
            query(&format!("login_hint={}", "h".repeat(257)), &[]),
            InvalidRequest,
        ),
        (query("ui_locales=fr_FR", &[]), InvalidRequest),
        (query("ui_locales=-x", &[]), InvalidRequest),
        (
            query(&format!("ui_locales={}", ["en"; 17].join("+")), &[]),
            InvalidRequest,
        ),
    ] {
        let e = redirected(&q, &c);
        assert_eq!(e.error, code, "{q}: {e:?}");
        assert_eq!(e.target.redirect_uri, CB);
        assert!(e.description.is_some());
    }
    // prompt=none alone is valid (what it needs is the endpoint's to check).
    let r = check(&query("prompt=none", &[]), &c).expect("prompt none");
    assert!(r.prompt.none);
    let r = check(&query("max_age=0", &[]), &c).expect("max_age 0");
    assert_eq!(r.max_age, Some(0));
}

#[test]
fn errors_carry_state_only_when_it_is_one_valid_value() {
    let c = web();
    let e = redirected(&query("response_type=token", &["response_type"]), &c);
    assert_eq!(e.state.as_deref(), Some("st-1"));
    let e = redirected(&query("state=st-2", &[]), &c);
    assert_eq!((e.error, e.state), (ErrorCode::InvalidRequest, None));
    let e = redirected(&query("state=a%0Ab", &["state"]), &c);
    assert_eq!((e.error, e.state), (ErrorCode::InvalidRequest, None));
    let e = redirected(
        &query(&format!("state={}", "s".repeat(2049)), &["state"]),
        &c,
    );
    assert_eq!(e.state, None);
    let e = redirected(
        &query("response_type=token", &["response_type", "state"]),
        &c,
    );
    assert_eq!(e.state, None);
}

#[test]
fn the_response_mode_decides_how_an_error_travels() {
    let c = web();
    let e = redirected(
        &query(
            "response_mode=form_post&response_type=token",
            &["response_type"],
        ),
        &c,
    );
    assert_eq!(e.target.mode, ResponseMode::FormPost);
    let AuthorizationResponse::FormPost(page) = e.response(ISSUER) else {
        panic!("form post");
    };
    assert!(page
        .html
        .contains("name=\"error\" value=\"unsupported_response_type\""));
    assert!(page
        .html
        .contains("name=\"iss\" value=\"https://auth.example\""));
    // An unknown or repeated response_mode is itself reported, by query.
    for q in [
        query("response_mode=fragment", &[]),
        query("response_mode=query&response_mode=form_post", &[]),
    ] {
        let e = redirected(&q, &c);
        assert_eq!(
            (e.error, e.target.mode),
            (ErrorCode::InvalidRequest, ResponseMode::Query),
            "{q}"
        );
    }
}

#[test]
fn responses_carry_iss_and_state_and_keep_the_registered_query() {
    let c = web();
    let r = check(
        &query(
            "redirect_uri=https%3A%2F%2Fapp.example.com%2Fq%3Ftenant%3Dacme&state=a+b%26c",
            &["redirect_uri", "state"],
        ),
        &c,
    )
    .expect("valid");
    assert_eq!(
        r.target.success("c0de", r.state.as_deref(), ISSUER),
        AuthorizationResponse::Redirect {
            location: "https://app.example.com/q?tenant=acme&code=c0de&state=a+b%26c&iss=https%3A%2F%2Fauth.example".into()
        }
    );
    let e = redirected(&query("scope=payments%3Aadmin", &["scope"]), &c);
    assert_eq!(
        e.response(ISSUER),
        AuthorizationResponse::Redirect {
            location: "https://app.example.com/cb?error=invalid_scope&error_description=the+scope+asked+for+is+not+allowed+for+this+client&state=st-1&iss=https%3A%2F%2Fauth.example".into()
        }
    );
    let r = check(&query("", &["state"]), &c).expect("no state");
    assert_eq!(
        r.target.success("c0de", None, ISSUER),
        AuthorizationResponse::Redirect {
            location: "https://app.example.com/cb?code=c0de&iss=https%3A%2F%2Fauth.example".into()
        }
    );
}

#[test]
fn repeated_parameter_names_are_shown_safely() {
    let e = redirected(&query("x%0Ay=1&x%0Ay=2", &[]), &web());
    let d = e.description.expect("description");
    assert!(!d.contains('\n'), "{d:?}");
    assert!(d.contains("repeated"));
}

/// Random URIs and requests: nothing panics, a registrable URI always matches itself and no
/// mutation of it matches unless it is the loopback port rule, and stage-2 errors only ever go
/// to a URI the client registered.
#[test]
fn arbitrary_input_never_panics_and_never_loosens_matching() {
    use rand::{rngs::SmallRng, Rng, SeedableRng};
    let mut rng = SmallRng::seed_from_u64(0x5EED);
    let alphabet: Vec<char> = "hts:/p.?#@[]:1*&=%2Fa-_~ \\é\tcom.x127.0.0.1lcalhost"
        .chars()
        .collect();
    let seeds = [
        "https://app.example.com/cb",
        "http://127.0.0.1:8080/cb?x=1",
        "http://[::1]/cb",
        "com.example.app:/cb",
    ];
    let c = client(Native, &["http://127.0.0.1/cb", "com.example.app:/cb"]);
    for i in 0..20_000 {
        let mut s: String = seeds[i % seeds.len()].to_owned();
        for _ in 0..rng.gen_range(0..4) {
            let at = rng.gen_range(0..=s.chars().count());
            let ch = alphabet[rng.gen_range(0..alphabet.len())];
            let byte_at = s.char_indices().nth(at).map_or(s.len(), |(b, _)| b);
            s.insert(byte_at, ch);
        }
        let _ = crate::uri::Uri::parse(&s);
        for app in [Web, Native] {
            if let Ok(r) = RedirectUri::parse(&s, app) {
                assert!(redirect::matches(&s, std::slice::from_ref(&r), app), "{s}");
            }
        }
        if redirect::matches(&s, &c.redirect_uris, Native) {
            let exact = c.redirect_uris.iter().any(|r| r.as_str() == s);
            let loopback = crate::client::loopback_parts(&s) == Some(("127.0.0.1", "/cb"));
            assert!(
                exact || loopback,
                "{s:?} matched neither exactly nor by port"
            );
        }
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("redirect_uri", &s);
        let q = query(&q.finish(), &["redirect_uri"]);
        match params(&q).validate(Some(&c)) {
            Ok(r) => assert!(redirect::matches(
                &r.target.redirect_uri,
                &c.redirect_uris,
                Native
            )),
            Err(AuthorizeError::Redirect(e)) => {
                assert!(redirect::matches(
                    &e.target.redirect_uri,
                    &c.redirect_uris,
                    Native
                ))
            }
            Err(AuthorizeError::Page(_)) => {}
        }
    }
}

#[test]
fn a_client_that_must_push_is_refused_a_direct_request_but_not_a_pushed_one() {
    let must_push = AppClient {
        require_pushed_requests: true,
        ..web()
    };
    let q = query("", &[]);
    let Err(AuthorizeError::Redirect(e)) = params(&q).validate(Some(&must_push)) else {
        panic!("a direct request is refused");
    };
    assert_eq!(e.error, ErrorCode::InvalidRequest);
    assert_eq!(e.state.as_deref(), Some("st-1"), "state still goes back");
    assert!(params(&q).pushed().validate(Some(&must_push)).is_ok());
    // A client without the requirement takes both.
    assert!(params(&q).validate(Some(&web())).is_ok());
    assert!(params(&q).pushed().validate(Some(&web())).is_ok());
    // Stage 1 still comes first: an unregistered redirect URI is a page, pushed or not.
    let bad = query("&redirect_uri=https://evil.example/cb", &["redirect_uri"]);
    assert!(matches!(
        params(&bad).validate(Some(&must_push)),
        Err(AuthorizeError::Page(ErrorPage::UnregisteredRedirectUri))
    ));
}

#[test]
fn dpop_jkt_binds_the_request_to_a_key_and_must_be_a_thumbprint() {
    const JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    let ok = check(&query(&format!("dpop_jkt={JKT}"), &[]), &web()).expect("valid");
    assert_eq!(ok.dpop_jkt.as_ref().map(Thumbprint::as_str), Some(JKT));
    assert_eq!(
        check(&query("", &[]), &web()).expect("valid").dpop_jkt,
        None,
        "unbound without the parameter"
    );
    assert_eq!(
        check(&query("dpop_jkt=", &[]), &web())
            .expect("empty")
            .dpop_jkt,
        None,
        "empty counts as omitted"
    );
    // Not 43 base64url characters of a SHA-256 digest, or repeated: refused to the client.
    for bad in [
        "dpop_jkt=abc".to_owned(),
        format!("dpop_jkt={JKT}="),
        format!("dpop_jkt={}", &JKT[..42]),
        format!("dpop_jkt={}%2B", &JKT[..42]),
        format!("dpop_jkt={JKT}&dpop_jkt={JKT}"),
    ] {
        let Err(AuthorizeError::Redirect(e)) = check(&query(&bad, &[]), &web()) else {
            panic!("{bad} is refused");
        };
        assert_eq!(e.error, ErrorCode::InvalidRequest, "{bad}");
        assert_eq!(e.state.as_deref(), Some("st-1"));
    }
}
