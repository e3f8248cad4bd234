//! The rule for new passwords: NIST SP 800-63B section 5.1.1.2, plus an offline strength check.
//!
//! * Length counts Unicode characters after NFKC normalisation ([`normalize`]), the form in which
//!   a password is hashed and later verified, so the same password typed on two keyboards
//!   matches. At least [`PasswordPolicy::min_chars`] (12 by default), at most
//!   [`PasswordPolicy::max_chars`] (128 by default; never below 64, as NIST requires).
//! * No composition rules (no "one digit, one symbol"), no hints, no periodic change.
//! * Refused when zxcvbn's estimator (its built-in dictionaries of common passwords, names and
//!   words, keyboard patterns, dates, repeats) scores it below [`PasswordPolicy::min_score`], or
//!   when it contains the user's username or email address.
//!
//! Each refusal is a [`PasswordRefusal`], for the page to explain. This module must never do
//! I/O (no breach-corpus lookup over the network: the issue forbids it) and never lets the
//! password leave a [`Secret`].

use unicode_normalization::UnicodeNormalization;

use crate::secret::Secret;

/// NIST's floor: a verifier must accept at least 64 characters.
pub const MAX_CHARS_FLOOR: usize = 64;
/// NIST's floor for a chosen password when no other factor is required... raised to 12 by
/// default here, as the issue asks; a policy may not go below 8.
pub const MIN_CHARS_FLOOR: usize = 8;
/// Only this many characters are given to the strength estimator: its cost grows quickly with
/// length, and a password this long that is otherwise weak is not a realistic case.
const ESTIMATE_CHARS: usize = 100;
/// Shortest username or email local part that a password is checked for containing: shorter
/// ones ("al") would refuse many good passwords by accident.
const CONTAINS_MIN: usize = 3;

/// The new-password rule of a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    pub min_chars: usize,
    pub max_chars: usize,
    /// The lowest zxcvbn score (0 to 4) accepted; 3 ("safely unguessable") by default.
    pub min_score: u8,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_chars: 12,
            max_chars: 128,
            min_score: 3,
        }
    }
}

/// Why a policy cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("min_chars must be at least {MIN_CHARS_FLOOR} (NIST SP 800-63B)")]
    MinTooLow,
    #[error(
        "max_chars must be at least {MAX_CHARS_FLOOR} (NIST SP 800-63B) and at least min_chars"
    )]
    MaxTooLow,
    #[error("min_score is 0 to 4")]
    BadScore,
}

/// Why a new password was refused. Serialised as its code for the page and the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRefusal {
    #[error("the password must be at least {min} characters long")]
    TooShort { min: usize },
    #[error("the password must be at most {max} characters long")]
    TooLong { max: usize },
    #[error("the password contains control characters")]
    ControlCharacters,
    #[error("the password contains the username")]
    ContainsUsername,
    #[error("the password contains the email address")]
    ContainsEmail,
    /// Common, or built from dictionary words, names, dates, keyboard patterns or repeats.
    #[error("the password is too easy to guess")]
    TooWeak { score: u8, min: u8 },
}

impl PasswordRefusal {
    /// A stable code for the message catalogue and the API's error field.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "password_too_short",
            Self::TooLong { .. } => "password_too_long",
            Self::ControlCharacters => "password_control_characters",
            Self::ContainsUsername => "password_contains_username",
            Self::ContainsEmail => "password_contains_email",
            Self::TooWeak { .. } => "password_too_weak",
        }
    }
}

/// What the password must not contain: the account's own names.
#[derive(Debug, Clone, Copy, Default)]
pub struct PasswordContext<'a> {
    pub username: Option<&'a crate::user::Username>,
    pub email: Option<&'a crate::user::Email>,
}

/// A password that passed the policy, in normal form: what is handed to the hasher.
#[derive(Debug, Clone)]
pub struct NewPassword(Secret<String>);

impl NewPassword {
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// The form in which a password is hashed and verified: Unicode NFKC (NIST SP 800-63B
/// 5.1.1.2). Apply it to a presented password before verifying, exactly as to a new one.
pub fn normalize(password: &Secret<String>) -> Secret<String> {
    Secret::new(password.expose().nfkc().collect())
}

impl PasswordPolicy {
    pub fn validate(self) -> Result<Self, PolicyError> {
        if self.min_chars < MIN_CHARS_FLOOR {
            return Err(PolicyError::MinTooLow);
        }
        if self.max_chars < MAX_CHARS_FLOOR || self.max_chars < self.min_chars {
            return Err(PolicyError::MaxTooLow);
        }
        if self.min_score > 4 {
            return Err(PolicyError::BadScore);
        }
        Ok(self)
    }

    /// Checks a candidate new password; returns it normalised, or the first reason it fails.
    pub fn check(
        &self,
        candidate: &Secret<String>,
        context: PasswordContext<'_>,
    ) -> Result<NewPassword, PasswordRefusal> {
        let normal = normalize(candidate);
        let pw = normal.expose();
        let chars = pw.chars().count();
        if chars < self.min_chars {
            return Err(PasswordRefusal::TooShort {
                min: self.min_chars,
            });
        }
        if chars > self.max_chars {
            return Err(PasswordRefusal::TooLong {
                max: self.max_chars,
            });
        }
        if pw.chars().any(char::is_control) {
            return Err(PasswordRefusal::ControlCharacters);
        }
        let folded = pw.to_lowercase();
        if let Some(u) = context.username {
            if u.normalized().chars().count() >= CONTAINS_MIN && folded.contains(u.normalized()) {
                return Err(PasswordRefusal::ContainsUsername);
            }
        }
        let mut inputs: Vec<&str> = Vec::new();
        if let Some(e) = context.email {
            let local = e
                .normalized()
                .rsplit_once('@')
                .map_or(e.normalized(), |(l, _)| l);
            if folded.contains(e.normalized())
                || (local.chars().count() >= CONTAINS_MIN && folded.contains(local))
            {
                return Err(PasswordRefusal::ContainsEmail);
            }
            inputs.push(e.normalized());
            inputs.push(local);
        }
        if let Some(u) = context.username {
            inputs.push(u.normalized());
        }
        let estimated: String = pw.chars().take(ESTIMATE_CHARS).collect();
        let score = u8::from(zxcvbn::zxcvbn(&estimated, &inputs).score());
        if score < self.min_score {
            return Err(PasswordRefusal::TooWeak {
                score,
                min: self.min_score,
            });
        }
        Ok(NewPassword(normal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::user::{Email, Username};

    fn s(v: &str) -> Secret<String> {
        Secret::new(v.to_owned())
    }

    const GOOD: &str = "correct horse battery staple orbit";

    #[test]
    fn a_long_unusual_passphrase_passes_in_normal_form() {
        let p = PasswordPolicy::default();
        let ok = p
            .check(&s(GOOD), PasswordContext::default())
            .expect("accepted");
        assert_eq!(ok.expose(), GOOD);
        // Fullwidth characters are normalised before hashing (NFKC).
        let wide = p
            .check(
                &s("ｃｏｒｒｅｃｔ horse battery staple orbit"),
                PasswordContext::default(),
            )
            .expect("accepted");
        assert_eq!(wide.expose(), GOOD);
        assert_eq!(format!("{ok:?}"), "NewPassword([redacted])");
    }

    #[test]
    fn length_limits_count_characters_and_accept_at_least_64() {
        let p = PasswordPolicy::default();
        assert_eq!(
            p.check(&s("Xq7#mP2!vL9"), PasswordContext::default()).err(),
            Some(PasswordRefusal::TooShort { min: 12 })
        );
        // Twelve characters of which several are multi-byte: counted as twelve.
        assert!(p
            .check(&s("ñandú-zébr@7ü"), PasswordContext::default())
            .is_ok());
        let long64: String = "vX9q-Lm3t-Rw8z-Kp2n-".repeat(4).chars().take(64).collect();
        assert!(p.check(&s(&long64), PasswordContext::default()).is_ok());
        let too_long = "a9Zx".repeat(33);
        assert_eq!(
            p.check(&s(&too_long), PasswordContext::default()).err(),
            Some(PasswordRefusal::TooLong { max: 128 })
        );
    }

    #[test]
    fn no_composition_rules_but_common_and_patterned_passwords_are_weak() {
        let p = PasswordPolicy::default();
        // All lowercase letters and spaces, no digit or symbol: fine.
        assert!(p.check(&s(GOOD), PasswordContext::default()).is_ok());
        for weak in [
            "password1234",
            "123456789012",
            "qwertyuiopasdf",
            "aaaaaaaaaaaaaaaa",
            "iloveyou12345",
            "Password123!",
        ] {
            let got = p.check(&s(weak), PasswordContext::default());
            assert!(
                matches!(got, Err(PasswordRefusal::TooWeak { .. })),
                "{weak}: {got:?}"
            );
        }
    }

    #[test]
    fn a_password_containing_the_username_or_email_is_refused() {
        let p = PasswordPolicy::default();
        let user = Username::parse("Margarethe").expect("valid");
        let email = Email::parse("Zebulon.Q@example.org").expect("valid");
        let ctx = PasswordContext {
            username: Some(&user),
            email: Some(&email),
        };
        assert_eq!(
            p.check(&s("MARGARETHE-orbit-velvet-9"), ctx).err(),
            Some(PasswordRefusal::ContainsUsername)
        );
        assert_eq!(
            p.check(&s("orbit zebulon.q velvet 9"), ctx).err(),
            Some(PasswordRefusal::ContainsEmail)
        );
        assert!(p.check(&s(GOOD), ctx).is_ok());
    }

    #[test]
    fn control_characters_are_refused() {
        let p = PasswordPolicy::default();
        assert_eq!(
            p.check(
                &s("correct horse\u{0}battery staple"),
                PasswordContext::default()
            )
            .err(),
            Some(PasswordRefusal::ControlCharacters)
        );
    }

    #[test]
    fn policies_below_nist_are_refused() {
        let base = PasswordPolicy::default();
        assert_eq!(base.validate(), Ok(base));
        let low = PasswordPolicy {
            min_chars: 7,
            ..base
        };
        assert_eq!(low.validate(), Err(PolicyError::MinTooLow));
        let short_max = PasswordPolicy {
            max_chars: 63,
            ..base
        };
        assert_eq!(short_max.validate(), Err(PolicyError::MaxTooLow));
        let score = PasswordPolicy {
            min_score: 5,
            ..base
        };
        assert_eq!(score.validate(), Err(PolicyError::BadScore));
        let refusal = PasswordRefusal::TooWeak { score: 1, min: 3 };
        assert_eq!(refusal.code(), "password_too_weak");
    }
}
