//! The message catalogue: every string a person reads on a Portcullis page, by key, per
//! language. A key is a field of [`Text`], so a template that names a missing key does not
//! compile, and a new language is one more `static` of [`Text`] listed in [`CATALOGUE`] (a
//! translator fills every field; the compiler refuses a missing one).
//!
//! [`pick`] chooses the language: the first of the request's `ui_locales` (OpenID Connect) the
//! catalogue has, else the first of the browser's `Accept-Language` it has, else English. Tags
//! match on their primary language (`en-GB` finds `en`). This module must never hold markup:
//! every value is text, escaped where a template shows it.

/// Every user-facing string of the pages, by key.
#[derive(Debug)]
pub struct Text {
    /// The BCP 47 tag of the language (the pages' `lang` attribute).
    pub lang: &'static str,
    pub skip_to_content: &'static str,
    pub powered_by: &'static str,
    // Sign in.
    pub sign_in_title: &'static str,
    pub sign_in_intro: &'static str,
    pub sign_in_login_label: &'static str,
    pub sign_in_password_label: &'static str,
    pub sign_in_submit: &'static str,
    pub sign_in_failed: &'static str,
    pub sign_in_throttled: &'static str,
    pub sign_in_busy: &'static str,
    // Consent.
    pub consent_title: &'static str,
    pub consent_intro: &'static str,
    pub consent_scopes: &'static str,
    pub consent_allow: &'static str,
    pub consent_deny: &'static str,
    pub consent_signed_in_as: &'static str,
    // Errors.
    pub error_title: &'static str,
    pub error_intro: &'static str,
    pub error_code_label: &'static str,
    pub error_bad_request: &'static str,
    pub error_unknown_client: &'static str,
    pub error_bad_redirect_uri: &'static str,
    pub error_csrf: &'static str,
    pub error_server: &'static str,
    pub error_busy: &'static str,
    pub error_not_found: &'static str,
    /// Shown to the user with the internal error code `invalid_request` and the like.
    pub error_back_to_app: &'static str,
}

pub static EN: Text = Text {
    lang: "en",
    skip_to_content: "Skip to content",
    powered_by: "Sign-in by Portcullis",
    sign_in_title: "Sign in",
    sign_in_intro: "Sign in to continue to",
    sign_in_login_label: "Username or email",
    sign_in_password_label: "Password",
    sign_in_submit: "Sign in",
    sign_in_failed: "The username or password is not correct.",
    sign_in_throttled: "Too many attempts. Please wait a moment and try again.",
    sign_in_busy: "Signing in is busy right now. Please try again shortly.",
    consent_title: "Allow access",
    consent_intro: "wants to access your account.",
    consent_scopes: "It asks for:",
    consent_allow: "Allow",
    consent_deny: "Deny",
    consent_signed_in_as: "Signed in as",
    error_title: "Something went wrong",
    error_intro: "The sign-in request could not be completed.",
    error_code_label: "Error code",
    error_bad_request: "The request from the application is not valid.",
    error_unknown_client: "The application is not known or is not allowed to sign users in.",
    error_bad_redirect_uri: "The application asked to return to an address it has not registered.",
    error_csrf: "This form has expired or was not sent by this browser. Go back, reload the page and try again.",
    error_server: "An unexpected error occurred. Please try again later.",
    error_busy: "The service is busy. Please try again shortly.",
    error_not_found: "This page does not exist.",
    error_back_to_app: "Return to the application and start again.",
};

/// The languages the catalogue has, by primary tag.
pub static CATALOGUE: &[&Text] = &[&EN];

fn find(tag: &str) -> Option<&'static Text> {
    let primary = tag.split('-').next().unwrap_or("").trim();
    CATALOGUE
        .iter()
        .copied()
        .find(|t| t.lang.eq_ignore_ascii_case(primary))
}

/// The language for a request: `ui_locales` first, then `Accept-Language`, then English.
pub fn pick(ui_locales: &[String], accept_language: Option<&str>) -> &'static Text {
    if let Some(t) = ui_locales.iter().find_map(|l| find(l)) {
        return t;
    }
    if let Some(header) = accept_language {
        // Entries in order of preference: by q value, highest first; ties keep header order.
        let mut tags: Vec<(u16, usize, &str)> = header
            .split(',')
            .take(32)
            .enumerate()
            .filter_map(|(i, part)| {
                let mut it = part.split(';');
                let tag = it.next()?.trim();
                let q = it
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .unwrap_or(1.0);
                let q = (q.clamp(0.0, 1.0) * 1000.0) as u16;
                (q > 0 && !tag.is_empty()).then_some((q, i, tag))
            })
            .collect();
        tags.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        if let Some(t) = tags.iter().find_map(|(_, _, tag)| find(tag)) {
            return t;
        }
    }
    &EN
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn english_is_the_fallback_and_regional_tags_match_their_language() {
        assert_eq!(pick(&[], None).lang, "en");
        assert_eq!(pick(&["de".into(), "en-GB".into()], None).lang, "en");
        assert_eq!(pick(&[], Some("fr-CH, fr;q=0.9, en;q=0.8")).lang, "en");
        assert_eq!(pick(&[], Some("garbage;;q=x,,")).lang, "en");
    }
}
