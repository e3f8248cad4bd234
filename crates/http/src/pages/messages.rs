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
    // Logout.
    pub logout_title: &'static str,
    pub logout_intro: &'static str,
    pub logout_confirm: &'static str,
    pub signed_out_title: &'static str,
    pub signed_out_body: &'static str,
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
    /// The account pages: invitation, password reset, account.
    pub account: &'static AccountText,
    /// The device verification page (`/device`, RFC 8628).
    pub device: &'static DeviceText,
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
    logout_title: "Sign out",
    logout_intro: "Do you want to sign out? You were signed in through",
    logout_confirm: "Sign out",
    signed_out_title: "Signed out",
    signed_out_body: "You are signed out. You can close this window.",
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
    account: &ACCOUNT_EN,
    device: &DEVICE_EN,
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

/// The strings of the account pages (invitation, password reset, the account page).
#[derive(Debug)]
pub struct AccountText {
    pub invite_title: &'static str,
    pub invite_intro: &'static str,
    pub reset_title: &'static str,
    pub reset_intro: &'static str,
    pub new_password_label: &'static str,
    pub confirm_password_label: &'static str,
    pub password_hint: &'static str,
    pub save_password: &'static str,
    pub passwords_differ: &'static str,
    pub password_too_short: &'static str,
    pub password_too_long: &'static str,
    pub password_too_weak: &'static str,
    pub password_contains_username: &'static str,
    pub password_contains_email: &'static str,
    pub password_control_characters: &'static str,
    pub link_invalid_title: &'static str,
    pub link_invalid_text: &'static str,
    pub password_set_title: &'static str,
    pub password_set_text: &'static str,
    pub forgot_link: &'static str,
    pub forgot_title: &'static str,
    pub forgot_intro: &'static str,
    pub email_label: &'static str,
    pub forgot_submit: &'static str,
    pub forgot_sent_title: &'static str,
    pub forgot_sent_text: &'static str,
    pub account_title: &'static str,
    pub signed_in_as: &'static str,
    pub change_password_title: &'static str,
    pub current_password_label: &'static str,
    pub change_password_submit: &'static str,
    pub current_password_wrong: &'static str,
    pub password_changed: &'static str,
    pub sessions_title: &'static str,
    pub session_signed_in_at: &'static str,
    pub session_last_seen: &'static str,
    pub session_current: &'static str,
    pub session_sign_out: &'static str,
    pub session_ended: &'static str,
    pub consents_title: &'static str,
    pub consents_none: &'static str,
    pub consent_access: &'static str,
    pub consent_revoke: &'static str,
    pub consent_revoked: &'static str,
    pub not_found: &'static str,
    pub not_signed_in_title: &'static str,
    pub not_signed_in_text: &'static str,
    pub signed_out_title: &'static str,
    pub signed_out_text: &'static str,
}

pub static ACCOUNT_EN: AccountText = AccountText {
    invite_title: "Choose your password",
    invite_intro: "You were invited to an account. Choose the password you will sign in with, for the account",
    reset_title: "Choose a new password",
    reset_intro: "Choose a new password for the account",
    new_password_label: "New password",
    confirm_password_label: "Repeat the new password",
    password_hint: "Use a long phrase that you do not use anywhere else. Spaces are allowed.",
    save_password: "Save password",
    passwords_differ: "The two passwords are not the same.",
    password_too_short: "The password is too short.",
    password_too_long: "The password is too long.",
    password_too_weak: "The password is too easy to guess. Try a longer phrase of unrelated words.",
    password_contains_username: "The password must not contain your username.",
    password_contains_email: "The password must not contain your email address.",
    password_control_characters: "The password contains characters that cannot be typed.",
    link_invalid_title: "This link cannot be used",
    link_invalid_text: "The link is not valid. It may have been used already or have expired. Ask for a new one.",
    password_set_title: "Your password is saved",
    password_set_text: "You can now sign in to the application with your new password.",
    forgot_link: "Forgot your password?",
    forgot_title: "Reset your password",
    forgot_intro: "Enter the email address of your account. We will send a link to choose a new password.",
    email_label: "Email address",
    forgot_submit: "Send the link",
    forgot_sent_title: "Check your email",
    forgot_sent_text: "If an account has this address, a link to reset its password is on its way. The link works once and expires soon.",
    account_title: "Your account",
    signed_in_as: "Signed in as",
    change_password_title: "Change password",
    current_password_label: "Current password",
    change_password_submit: "Change password",
    current_password_wrong: "The current password is not correct.",
    password_changed: "Your password was changed. Your other sessions were signed out.",
    sessions_title: "Where you are signed in",
    session_signed_in_at: "Signed in",
    session_last_seen: "Last active",
    session_current: "This browser",
    session_sign_out: "Sign out",
    session_ended: "The session was signed out.",
    consents_title: "Apps you allowed",
    consents_none: "You have not allowed any apps.",
    consent_access: "Access",
    consent_revoke: "Revoke access",
    consent_revoked: "The app no longer has access.",
    not_found: "That session or app was not found. It may have ended already.",
    not_signed_in_title: "You are not signed in",
    not_signed_in_text: "Sign in through the application to see your account.",
    signed_out_title: "You are signed out",
    signed_out_text: "You signed out in this browser.",
};

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

/// The strings of the device verification page (`/device`).
#[derive(Debug)]
pub struct DeviceText {
    pub title: &'static str,
    pub intro: &'static str,
    pub code_label: &'static str,
    pub code_hint: &'static str,
    pub submit: &'static str,
    pub code_unknown: &'static str,
    pub throttled: &'static str,
    pub sign_in_intro: &'static str,
    pub confirm_intro: &'static str,
    pub confirm_code: &'static str,
    /// Shown when the device is the Portcullis CLI: approving gives it the person's admin role.
    pub confirm_admin: &'static str,
    pub approved_title: &'static str,
    pub approved_body: &'static str,
    pub denied_title: &'static str,
    pub denied_body: &'static str,
    pub gone: &'static str,
}

pub static DEVICE_EN: DeviceText = DeviceText {
    title: "Connect a device",
    intro: "Enter the code shown on your device (for example by portcullis login).",
    code_label: "Code",
    code_hint: "Eight letters, like BCDF-GHJK. Case and the dash do not matter.",
    submit: "Continue",
    code_unknown: "This code is not valid. It may have expired or been used already; check it, or start again on your device.",
    throttled: "Too many codes were tried. Please wait a moment and try again.",
    sign_in_intro: "Sign in to connect your device to",
    confirm_intro: "A device asks to act as you with",
    confirm_code: "Check that your device shows this code:",
    confirm_admin: "This is the Portcullis command-line tool. Approving lets it act with your administrator role. Approve only if you started portcullis login yourself and it shows this code; if someone sent you this code, deny.",
    approved_title: "Device connected",
    approved_body: "Your device is signed in. You can close this window and return to it.",
    denied_title: "Request denied",
    denied_body: "The device was not signed in. You can close this window.",
    gone: "This request was already decided or has expired. Start again on your device.",
};
