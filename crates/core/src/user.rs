//! Users of a tenant (the people who sign in to a tenant's apps): their id, the names they are
//! found by, their status and the OpenID Connect profile claims they carry.
//!
//! Everything a request or a form says about a user is parsed here into a type ([`UserId`],
//! [`Username`], [`Email`], [`UserProfile`]) before anything else sees it. Usernames and email
//! addresses carry a *normalised* form ([`Username::normalized`], [`Email::normalized`]): the
//! key under which a tenant allows only one user, so `Alice` and `alice`, or `ALICE@Example.com`
//! and `alice@example.com`, are the same account. The form as typed is kept for display.
//!
//! One-time user tokens (invitations and password resets) are [`OneTimeToken`]s: random, shown
//! once in the link mailed to the user, stored only as their SHA-256 digest.
//!
//! This module must never do I/O, read the clock, or decide anything about passwords (that is
//! [`crate::password`]).

use rand::RngCore;
use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

use crate::secret::Secret;
use crate::time::Timestamp;

/// Why a value is not a valid user attribute. The message is safe to show to an administrator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserFieldError {
    #[error("a user id is `usr_` followed by 26 lowercase base32 characters")]
    BadUserId,
    #[error("a username is 1 to {max} characters: letters, digits and . _ - @ +")]
    BadUsername { max: usize },
    #[error("not a valid email address (at most {max} characters, one @, a domain with a dot)")]
    BadEmail { max: usize },
    #[error("{field} is at most {max} characters and holds no control characters")]
    BadText { field: &'static str, max: usize },
    #[error("locale is a language tag such as `en` or `pt-BR`")]
    BadLocale,
    #[error("zoneinfo is an IANA time zone name such as `Europe/Paris`")]
    BadZoneinfo,
    #[error("{field} is an https URL of at most {max} characters")]
    BadUrl { field: &'static str, max: usize },
    #[error("status is one of invited, active, disabled")]
    BadStatus,
}

// ---------------------------------------------------------------------------------------------
// UserId

const USER_ID_PREFIX: &str = "usr_";
const USER_ID_BODY: usize = 26;
/// Crockford's base32 alphabet, lowercase: no i, l, o, u.
const BASE32: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A user's id: `usr_` and 26 lowercase base32 characters holding 128 bits, the first 48 of
/// which are the creation time in milliseconds (like a UUIDv7 or ULID), so ids sort roughly by
/// creation and make a stable pagination key. Never reused, never changes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct UserId(String);

impl UserId {
    /// A new id for a user created at `now`; `rng` must be a cryptographically secure generator
    /// (ids are not secret, but must not be guessable in advance either).
    pub fn generate(now: Timestamp, rng: &mut dyn RngCore) -> Self {
        let mut random = [0u8; 10];
        rng.fill_bytes(&mut random);
        let ms = u128::from(u64::try_from(now.as_millis().max(0)).unwrap_or(0) & 0xFFFF_FFFF_FFFF);
        let mut n = ms << 80;
        for (i, b) in random.iter().enumerate() {
            n |= u128::from(*b) << (8 * (9 - i));
        }
        let mut body = [0u8; USER_ID_BODY];
        for (i, c) in body.iter_mut().enumerate() {
            let shift = 5 * (USER_ID_BODY - 1 - i);
            // 26 * 5 = 130 bits: the top character holds only the top 3 bits.
            *c = BASE32[((n >> shift) & 0x1f) as usize];
        }
        let body = String::from_utf8_lossy(&body).into_owned();
        Self(format!("{USER_ID_PREFIX}{body}"))
    }

    pub fn parse(s: &str) -> Result<Self, UserFieldError> {
        let body = s
            .strip_prefix(USER_ID_PREFIX)
            .ok_or(UserFieldError::BadUserId)?;
        let ok = body.len() == USER_ID_BODY
            && body.bytes().all(|b| BASE32.contains(&b))
            // 128 bits in 130: the first character is at most 7.
            && body.as_bytes()[0] <= b'7';
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(UserFieldError::BadUserId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Username and Email

/// Longest username, in characters.
pub const USERNAME_MAX: usize = 64;
/// Longest email address (RFC 5321's path limit less the angle brackets).
pub const EMAIL_MAX: usize = 254;
const EMAIL_LOCAL_MAX: usize = 64;

/// Unicode NFKC, then lowercase: the key under which two names are the same.
fn fold(s: &str) -> String {
    s.nfkc().collect::<String>().to_lowercase()
}

/// The form a search prefix is compared in against normalised usernames and emails.
pub fn search_key(s: &str) -> String {
    fold(s.trim())
}

/// A username as given (NFKC-normalised, surrounding space trimmed) and its case-folded form,
/// the per-tenant uniqueness key. It is the `preferred_username` claim.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Username {
    display: String,
    normalized: String,
}

impl Username {
    pub fn parse(s: &str) -> Result<Self, UserFieldError> {
        let display: String = s.trim().nfkc().collect();
        let n = display.chars().count();
        let ok = (1..=USERNAME_MAX).contains(&n)
            && display
                .chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'));
        if !ok {
            return Err(UserFieldError::BadUsername { max: USERNAME_MAX });
        }
        let normalized = fold(&display);
        Ok(Self {
            display,
            normalized,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The uniqueness key: NFKC and lowercase.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

impl std::fmt::Display for Username {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl Serialize for Username {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.display)
    }
}

impl<'de> Deserialize<'de> for Username {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// An email address, checked for shape (not deliverability: that is what the invitation proves)
/// and kept as given; [`Email::normalized`], the whole address lowercased, is the per-tenant
/// uniqueness key. Quoted local parts, comments and IP-literal domains are refused: nobody signs
/// up with them and every one is a parser to get wrong.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email {
    display: String,
    normalized: String,
}

impl Email {
    pub fn parse(s: &str) -> Result<Self, UserFieldError> {
        let bad = UserFieldError::BadEmail { max: EMAIL_MAX };
        let display: String = s.trim().nfkc().collect();
        if display.chars().count() > EMAIL_MAX {
            return Err(bad);
        }
        let (local, domain) = display.rsplit_once('@').ok_or_else(|| bad.clone())?;
        let local_ok = !local.is_empty()
            && local.chars().count() <= EMAIL_LOCAL_MAX
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local.chars().all(|c| {
                c.is_alphanumeric() || (c.is_ascii_punctuation() && !"\"(),:;<>@[\\]".contains(c))
            });
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                (1..=63).contains(&l.chars().count())
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            })
            && labels
                .last()
                .is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()));
        if !(local_ok && domain_ok) {
            return Err(bad);
        }
        let normalized = fold(&display);
        Ok(Self {
            display,
            normalized,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.display
    }

    /// The uniqueness key: NFKC and lowercase.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    /// The part before the `@`, as given.
    pub fn local_part(&self) -> &str {
        self.display
            .rsplit_once('@')
            .map_or(self.display.as_str(), |(l, _)| l)
    }
}

impl std::fmt::Display for Email {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.display)
    }
}

impl Serialize for Email {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.display)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

// ---------------------------------------------------------------------------------------------
// Status

/// Where a user stands. Only an `Active` user may sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    /// Created and sent an invitation; has no password until the invitation is accepted.
    Invited,
    Active,
    /// Refused at sign-in; keeps its data and can be enabled again.
    Disabled,
}

impl UserStatus {
    pub const ALL: [Self; 3] = [Self::Invited, Self::Active, Self::Disabled];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invited => "invited",
            Self::Active => "active",
            Self::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Result<Self, UserFieldError> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or(UserFieldError::BadStatus)
    }

    pub fn may_sign_in(self) -> bool {
        matches!(self, Self::Active)
    }
}

// ---------------------------------------------------------------------------------------------
// Profile claims

/// Longest free-text claim (names, nickname), in characters.
pub const PROFILE_TEXT_MAX: usize = 256;
/// Longest URL claim (picture, website).
pub const PROFILE_URL_MAX: usize = 2048;

macro_rules! checked_string {
    ($(#[$doc:meta])* $name:ident, $check:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                let check: fn(&str) -> Result<String, UserFieldError> = $check;
                check(&s).map(Self).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn text(field: &'static str, s: &str) -> Result<String, UserFieldError> {
    let v: String = s.trim().nfc().collect();
    if v.chars().count() > PROFILE_TEXT_MAX || v.chars().any(char::is_control) {
        return Err(UserFieldError::BadText {
            field,
            max: PROFILE_TEXT_MAX,
        });
    }
    Ok(v)
}

fn https_url(field: &'static str, s: &str) -> Result<String, UserFieldError> {
    let bad = UserFieldError::BadUrl {
        field,
        max: PROFILE_URL_MAX,
    };
    let host = s.strip_prefix("https://").ok_or_else(|| bad.clone())?;
    let authority = host.split(['/', '?', '#']).next().unwrap_or("");
    let ok = s.len() <= PROFILE_URL_MAX
        && !authority.is_empty()
        && !authority.contains('@')
        && s.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        Ok(s.to_owned())
    } else {
        Err(bad)
    }
}

checked_string!(
    /// A free-text profile claim (`name`, `given_name`, `family_name`, `nickname`): NFC, trimmed,
    /// at most [`PROFILE_TEXT_MAX`] characters, no control characters.
    ProfileText,
    |s| text("a name", s)
);

impl ProfileText {
    pub fn parse(field: &'static str, s: &str) -> Result<Self, UserFieldError> {
        text(field, s).map(Self)
    }
}

checked_string!(
    /// An https URL claim (`picture`, `website`).
    ProfileUrl,
    |s| https_url("a URL", s)
);

impl ProfileUrl {
    pub fn parse(field: &'static str, s: &str) -> Result<Self, UserFieldError> {
        https_url(field, s).map(Self)
    }
}

checked_string!(
    /// A BCP 47 language tag as OpenID Connect's `locale` claim uses it (`en`, `pt-BR`,
    /// `zh-Hant-TW`): a 2 or 3 letter language and up to four alphanumeric subtags.
    Locale,
    |s| {
        let mut parts = s.split('-');
        let lang_ok = parts
            .next()
            .is_some_and(|l| (2..=3).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_alphabetic()));
        let rest: Vec<&str> = parts.collect();
        let ok = lang_ok
            && rest.len() <= 4
            && rest
                .iter()
                .all(|p| (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric()));
        if ok {
            Ok(s.to_owned())
        } else {
            Err(UserFieldError::BadLocale)
        }
    }
);

checked_string!(
    /// An IANA time zone name for the `zoneinfo` claim (`Europe/Paris`, `America/Argentina/Salta`,
    /// `UTC`). Checked for shape, not against a zone database (the core carries none).
    Zoneinfo,
    |s| {
        let ok = (1..=64).contains(&s.len())
            && s.as_bytes()[0].is_ascii_uppercase()
            && !s.contains("//")
            && !s.ends_with('/')
            && !s.contains("..")
            && s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'));
        if ok {
            Ok(s.to_owned())
        } else {
            Err(UserFieldError::BadZoneinfo)
        }
    }
);

impl Locale {
    pub fn parse(s: &str) -> Result<Self, UserFieldError> {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .map_err(|_| UserFieldError::BadLocale)
    }
}

impl Zoneinfo {
    pub fn parse(s: &str) -> Result<Self, UserFieldError> {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .map_err(|_| UserFieldError::BadZoneinfo)
    }
}

/// The standard OpenID Connect profile claims (Core 5.1) a user carries besides its username
/// (`preferred_username`) and email. Every field is optional; an unknown field is refused, so a
/// misspelt claim is an error instead of silently dropped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserProfile {
    /// The display name (`name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<ProfileText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub given_name: Option<ProfileText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family_name: Option<ProfileText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nickname: Option<ProfileText>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub picture: Option<ProfileUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub website: Option<ProfileUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<Locale>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoneinfo: Option<Zoneinfo>,
}

impl UserProfile {
    /// The profile as stored (a JSON object).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_else(|_| "{}".to_owned())
    }

    /// Reads a stored profile, validating every claim again.
    pub fn from_json(s: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(s)
    }
}

// ---------------------------------------------------------------------------------------------
// One-time tokens

/// What a one-time user token is for. A token of one purpose is never accepted for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenPurpose {
    /// Accept an invitation: set the first password, become active.
    Invite,
    /// Reset a forgotten password.
    PasswordReset,
}

impl TokenPurpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invite => "invite",
            Self::PasswordReset => "password_reset",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Invite, Self::PasswordReset]
            .into_iter()
            .find(|p| p.as_str() == s)
    }

    /// How long a fresh token of this purpose lives by default: an invitation a week (people
    /// read mail late), a reset an hour (short-lived, NIST SP 800-63B's recovery codes).
    pub fn default_ttl(self) -> std::time::Duration {
        match self {
            Self::Invite => std::time::Duration::from_secs(7 * 24 * 3600),
            Self::PasswordReset => std::time::Duration::from_secs(3600),
        }
    }
}

const ONE_TIME_PREFIX: &str = "pcl_ut_";
const ONE_TIME_LEN: usize = 43;

/// A one-time token as mailed to the user: `pcl_ut_` and 43 base62 characters (~256 bits). Only
/// [`OneTimeToken::digest`] is stored; the value prints as `[redacted]`.
#[derive(Debug, Clone)]
pub struct OneTimeToken(Secret<String>);

impl OneTimeToken {
    pub fn generate(rng: &mut dyn RngCore) -> Self {
        Self(Secret::new(format!(
            "{ONE_TIME_PREFIX}{}",
            crate::base62::random(rng, ONE_TIME_LEN)
        )))
    }

    /// Checks the shape only (no lookup): anything else is refused before storage is asked.
    pub fn parse(s: &str) -> Option<Self> {
        let body = s.strip_prefix(ONE_TIME_PREFIX)?;
        (body.len() == ONE_TIME_LEN && crate::base62::is_base62(body))
            .then(|| Self(Secret::new(s.to_owned())))
    }

    /// SHA-256 of the whole token: what storage keeps and looks up.
    pub fn digest(&self) -> [u8; 32] {
        crate::credential::digest(self.0.expose())
    }

    /// The token, for the one place it goes: the link in the user's mail.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn user_ids_round_trip_sort_by_time_and_refuse_garbage() {
        let mut rng = SmallRng::seed_from_u64(7);
        let a = UserId::generate(Timestamp::from_millis(1_700_000_000_000), &mut rng);
        let b = UserId::generate(Timestamp::from_millis(1_700_000_000_001), &mut rng);
        assert!(a < b, "{a} {b}");
        assert_eq!(a.as_str().len(), 30);
        assert_eq!(UserId::parse(a.as_str()), Ok(a.clone()));
        for bad in [
            "",
            "usr_",
            "usr_0123456789abcdefghjkmnpqr",   // 25
            "usr_0123456789abcdefghjkmnpqrst", // 27
            "usr_0123456789ABCDEFGHJKMNPQRS",
            "usr_0123456789abcdefghjkmnpqri", // i is not base32
            "usr_8123456789abcdefghjkmnpqrs", // more than 128 bits
            "key_0123456789abcdefghjkmnpqrs",
        ] {
            assert_eq!(UserId::parse(bad), Err(UserFieldError::BadUserId), "{bad}");
        }
        assert!(serde_json::from_str::<UserId>("\"usr_x\"").is_err());
    }

    #[test]
    fn usernames_are_unique_case_insensitively_and_refuse_odd_characters() {
        let a = Username::parse(" Alice ").expect("valid");
        assert_eq!(a.as_str(), "Alice");
        assert_eq!(a.normalized(), "alice");
        // Fullwidth letters are the same name after NFKC.
        let b = Username::parse("ＡＬＩＣＥ").expect("valid");
        assert_eq!(b.normalized(), "alice");
        assert!(Username::parse("jöhn.doe+1@x").is_ok());
        for bad in [
            "",
            "  ",
            "a b",
            "a/b",
            "a\u{0}b",
            "<script>",
            &"a".repeat(USERNAME_MAX + 1),
        ] {
            assert!(Username::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Username::parse(&"a".repeat(USERNAME_MAX)).is_ok());
    }

    #[test]
    fn emails_are_checked_for_shape_and_compared_case_insensitively() {
        let e = Email::parse("Alice.Smith+tag@Example.COM").expect("valid");
        assert_eq!(e.as_str(), "Alice.Smith+tag@Example.COM");
        assert_eq!(e.normalized(), "alice.smith+tag@example.com");
        assert_eq!(e.local_part(), "Alice.Smith+tag");
        assert!(Email::parse("a@b.co").is_ok());
        assert!(Email::parse("jörg@bücher.de").is_ok());
        let long_local = format!("{}@x.io", "a".repeat(65));
        let long = format!("{}@{}.io", "a".repeat(60), "b".repeat(200));
        for bad in [
            "",
            "plain",
            "@example.com",
            "a@",
            "a@localhost",
            "a@@example.com",
            "a b@example.com",
            "\"a\"@example.com",
            "a@[127.0.0.1]",
            "a@1.2.3.4",
            ".a@example.com",
            "a..b@example.com",
            "a@-x.com",
            "a@x..com",
            "a<b>@example.com",
            &long_local,
            &long,
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn statuses_round_trip() {
        for s in UserStatus::ALL {
            assert_eq!(UserStatus::parse(s.as_str()), Ok(s));
        }
        assert_eq!(UserStatus::parse("Active"), Err(UserFieldError::BadStatus));
        assert!(UserStatus::Active.may_sign_in());
        assert!(!UserStatus::Invited.may_sign_in());
        assert!(!UserStatus::Disabled.may_sign_in());
    }

    #[test]
    fn profiles_validate_every_claim_and_refuse_unknown_ones() {
        let p: UserProfile = serde_json::from_str(
            r#"{"name":" Alice Smith ","given_name":"Alice","locale":"pt-BR",
                "zoneinfo":"America/Argentina/Salta","picture":"https://cdn.example/a.png"}"#,
        )
        .expect("valid");
        assert_eq!(
            p.name.as_ref().map(ProfileText::as_str),
            Some("Alice Smith")
        );
        assert_eq!(UserProfile::from_json(&p.to_json()).expect("round trip"), p);
        for bad in [
            r#"{"name":"a\u0007b"}"#,
            r#"{"locale":"english"}"#,
            r#"{"locale":"en_US"}"#,
            r#"{"zoneinfo":"../etc/passwd"}"#,
            r#"{"zoneinfo":"europe/paris"}"#,
            r#"{"picture":"http://example.com/a.png"}"#,
            r#"{"picture":"javascript:alert(1)"}"#,
            r#"{"website":"https://user@evil.example/"}"#,
            r#"{"website":"https:// spaced"}"#,
            r#"{"email":"a@b.co"}"#,
            r#"{"nmae":"typo"}"#,
        ] {
            assert!(serde_json::from_str::<UserProfile>(bad).is_err(), "{bad}");
        }
        let long = format!(r#"{{"name":"{}"}}"#, "a".repeat(PROFILE_TEXT_MAX + 1));
        assert!(serde_json::from_str::<UserProfile>(&long).is_err());
        assert_eq!(
            Locale::parse("en").map(|l| l.as_str().to_owned()),
            Ok("en".into())
        );
        assert_eq!(
            Zoneinfo::parse("UTC").map(|z| z.as_str().to_owned()),
            Ok("UTC".into())
        );
    }

    #[test]
    fn one_time_tokens_are_redacted_parsed_by_shape_and_digested() {
        let mut rng = SmallRng::seed_from_u64(1);
        let t = OneTimeToken::generate(&mut rng);
        assert!(t.expose().starts_with("pcl_ut_"));
        assert!(!format!("{t:?}").contains(t.expose()));
        let parsed = OneTimeToken::parse(t.expose()).expect("parses");
        assert_eq!(parsed.digest(), t.digest());
        assert_ne!(OneTimeToken::generate(&mut rng).digest(), t.digest());
        for bad in [
            "",
            "pcl_ut_",
            "pcl_ut_short",
            "pcl_key_x",
            &format!("{}!", t.expose()),
        ] {
            assert!(OneTimeToken::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(TokenPurpose::parse("invite"), Some(TokenPurpose::Invite));
        assert_eq!(TokenPurpose::parse("reset"), None);
    }
}
