//! Untrusted text through the authorization-request rules: as a redirect URI (the strict URI
//! reader, the registration rules, the matching rule) and as a query string (the two-stage
//! validation against a fixed native client). Nothing may panic; a registrable URI matches
//! itself; a validated request, or an error sent by redirect, names a registered URI.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_core::authorize::{redirect, AppClient, AuthorizeError, AuthorizeParams};
use portcullis_core::client::{ApplicationType, ClientId, RedirectUri};
use portcullis_core::oauth::{GrantType, ScopeSet};
use portcullis_core::tenant::TenantId;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = portcullis_core::uri::Uri::parse(s);
    for app in [ApplicationType::Web, ApplicationType::Native] {
        if let Ok(r) = RedirectUri::parse(s, app) {
            assert!(redirect::matches(s, std::slice::from_ref(&r), app));
        }
    }
    let (Some(id), Ok(tenant), Ok(scopes)) = (
        ClientId::parse("cl_fuzz"),
        TenantId::parse("acme"),
        ScopeSet::parse_delimited("openid"),
    ) else {
        return;
    };
    let registered: Vec<RedirectUri> = ["http://127.0.0.1/cb", "com.example.app:/cb"]
        .iter()
        .filter_map(|u| RedirectUri::parse(u, ApplicationType::Native).ok())
        .collect();
    let client = AppClient {
        client_id: id,
        tenant,
        application_type: ApplicationType::Native,
        grant_types: vec![GrantType::AuthorizationCode],
        redirect_uris: registered.clone(),
        scopes,
        first_party: false,
        active: true,
    };
    let pairs = s.split('&').map(|p| match p.split_once('=') {
        Some((k, v)) => (k.to_owned(), v.to_owned()),
        None => (p.to_owned(), String::new()),
    });
    let params = AuthorizeParams::from_pairs(pairs);
    let native = ApplicationType::Native;
    match params.validate(Some(&client)) {
        Ok(r) => assert!(redirect::matches(&r.target.redirect_uri, &registered, native)),
        Err(AuthorizeError::Redirect(e)) => {
            assert!(redirect::matches(&e.target.redirect_uri, &registered, native));
            let _ = e.response("https://auth.example");
        }
        Err(AuthorizeError::Page(_)) => {}
    }
});
