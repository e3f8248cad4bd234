//! The recognisable bearer-secret format shared by API keys, client secrets, admin tokens and
//! refresh tokens.
//!
//! ```text
//! pcl_<kind>_<environment>_<id:12><secret:22><checksum:6>
//! pcl_key_live_4fJd9QkZr2Lm8sVbN1pXyT6eWqHcGa03uRkE7Y   (illustrative)
//! ```
//!
//! * `pcl` names the product and `kind` the credential type, so secret scanners can tell what
//!   they found and whom to notify.
//! * `environment` (`live`, `test`, ...) lets a verifier refuse a key from the wrong environment
//!   before any lookup.
//! * `id` is 12 random base62 characters (~71 bits), not secret, used for O(1) lookup.
//! * `secret` is 22 base62 characters (~131 bits of entropy).
//! * `checksum` is the CRC32 of everything before it, as 6 fixed-width base62 digits, so typos
//!   and garbage are rejected without touching storage.
//!
//! Only the SHA-256 [`Credential::digest`] of the whole string is ever stored. This module must
//! never log or format the secret part; [`Credential`] prints redacted.

use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::base62;
use crate::secret::Secret;

pub const PRODUCT_PREFIX: &str = "pcl";
const ID_LEN: usize = 12;
const SECRET_LEN: usize = 22;
const CHECKSUM_LEN: usize = 6;
const BODY_LEN: usize = ID_LEN + SECRET_LEN + CHECKSUM_LEN;
/// Nothing longer than this is parsed at all (longest kind + longest environment + body).
pub const MAX_LEN: usize = 64;

/// The regular expression secret scanners should use to find Portcullis credentials.
pub const SCANNER_REGEX: &str = r"\bpcl_(key|cs|adm|rt)_[a-z][a-z0-9]{0,15}_[0-9A-Za-z]{40}\b";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CredentialKind {
    ApiKey,
    ClientSecret,
    AdminToken,
    RefreshToken,
}

impl CredentialKind {
    pub const fn code(self) -> &'static str {
        match self {
            Self::ApiKey => "key",
            Self::ClientSecret => "cs",
            Self::AdminToken => "adm",
            Self::RefreshToken => "rt",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        [
            Self::ApiKey,
            Self::ClientSecret,
            Self::AdminToken,
            Self::RefreshToken,
        ]
        .into_iter()
        .find(|k| k.code() == code)
    }
}

/// A deployment environment label: a lowercase slug of 1 to 16 characters, starting with a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Environment(String);

impl Environment {
    pub fn parse(s: &str) -> Result<Self, CredentialFormatError> {
        let ok = (1..=16).contains(&s.len())
            && s.as_bytes()[0].is_ascii_lowercase()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(CredentialFormatError::BadEnvironment)
        }
    }

    pub fn live() -> Self {
        Self("live".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a string is not a well-formed credential. These are internal reason codes: callers
/// answer every one of them with the same external error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CredentialFormatError {
    #[error("credential_too_long")]
    TooLong,
    #[error("credential_bad_prefix")]
    BadPrefix,
    #[error("credential_unknown_kind")]
    UnknownKind,
    #[error("credential_bad_environment")]
    BadEnvironment,
    #[error("credential_bad_body")]
    BadBody,
    #[error("credential_checksum_mismatch")]
    ChecksumMismatch,
}

/// A parsed, checksum-valid credential. Holding one says nothing about whether it is known,
/// enabled or unexpired: that is the verifier's job.
#[derive(Clone)]
pub struct Credential {
    kind: CredentialKind,
    environment: Environment,
    id: String,
    full: Secret<String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("kind", &self.kind)
            .field("environment", &self.environment)
            .field("id", &self.id)
            .field("full", &self.full)
            .finish()
    }
}

impl Credential {
    /// A fresh credential. `rng` must be a cryptographically secure generator.
    pub fn generate(kind: CredentialKind, environment: Environment, rng: &mut dyn RngCore) -> Self {
        let id = base62::random(rng, ID_LEN);
        let secret = base62::random(rng, SECRET_LEN);
        let unchecked = format!(
            "{PRODUCT_PREFIX}_{}_{}_{id}{secret}",
            kind.code(),
            environment
        );
        let full = format!("{unchecked}{}", checksum(&unchecked));
        Self {
            kind,
            environment,
            id,
            full: Secret::new(full),
        }
    }

    /// Parses untrusted input. Cheap, and never touches storage.
    pub fn parse(s: &str) -> Result<Self, CredentialFormatError> {
        if s.len() > MAX_LEN {
            return Err(CredentialFormatError::TooLong);
        }
        let mut parts = s.splitn(4, '_');
        let (Some(product), Some(kind), Some(env), Some(body)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(CredentialFormatError::BadPrefix);
        };
        if product != PRODUCT_PREFIX {
            return Err(CredentialFormatError::BadPrefix);
        }
        let kind = CredentialKind::from_code(kind).ok_or(CredentialFormatError::UnknownKind)?;
        let environment = Environment::parse(env)?;
        if body.len() != BODY_LEN || !base62::is_base62(body) {
            return Err(CredentialFormatError::BadBody);
        }
        let (unchecked, sum) = s.split_at(s.len() - CHECKSUM_LEN);
        if !crate::secret::constant_time_eq(checksum(unchecked).as_bytes(), sum.as_bytes()) {
            return Err(CredentialFormatError::ChecksumMismatch);
        }
        Ok(Self {
            kind,
            environment,
            id: body[..ID_LEN].to_owned(),
            full: Secret::new(s.to_owned()),
        })
    }

    pub fn kind(&self) -> CredentialKind {
        self.kind
    }

    pub fn environment(&self) -> &Environment {
        &self.environment
    }

    /// The non-secret lookup id embedded in the credential.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A non-secret prefix safe to show in listings and logs: product, kind, environment, id.
    pub fn display_prefix(&self) -> String {
        format!(
            "{PRODUCT_PREFIX}_{}_{}_{}",
            self.kind.code(),
            self.environment,
            self.id
        )
    }

    /// SHA-256 of the whole credential: what storage keeps. The secret part has >= 128 bits of
    /// entropy, so a fast digest is enough (no password hash needed) and useless if leaked.
    pub fn digest(&self) -> [u8; 32] {
        digest(self.full.expose())
    }

    /// The full credential, for showing exactly once to the party it was issued to.
    pub fn expose(&self) -> &str {
        self.full.expose()
    }
}

/// What a secret-shaped run of text is replaced with by [`redact_secrets`]: the non-secret
/// prefix (product, kind, environment, id) is kept so an operator can still tell which
/// credential was sent.
pub const REDACTED_SUFFIX: &str = "[redacted]";

/// `text` with every run that has the shape of a Portcullis secret (product prefix, known kind,
/// environment, 40-character body) replaced by its non-secret prefix and `[redacted]`.
///
/// The shape is enough: a secret with one mistyped character (bad checksum) is still almost all
/// of a secret. For anything recorded as an identifier (audit fields, log fields) that a
/// client controls: a client that sends its secret where its id belongs must not have it
/// stored. Costs one substring search when there is nothing to redact.
pub fn redact_secrets(text: &str) -> std::borrow::Cow<'_, str> {
    let needle = "pcl_";
    if !text.contains(needle) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(needle) {
        let (before, candidate) = rest.split_at(at);
        out.push_str(before);
        // A run of the characters a credential is made of.
        let run_len = candidate
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        let run = &candidate[..run_len];
        match secret_shape(run) {
            Some(prefix_len) => {
                out.push_str(&run[..prefix_len]);
                out.push_str(REDACTED_SUFFIX);
                rest = &candidate[run_len..];
            }
            None => {
                out.push_str(needle);
                rest = &candidate[needle.len()..];
            }
        }
    }
    out.push_str(rest);
    std::borrow::Cow::Owned(out)
}

/// If `run` starts with something shaped like a credential, the length of its non-secret
/// prefix (`pcl_<kind>_<env>_<id>`). Checksums are not checked (see [`redact_secrets`]).
fn secret_shape(run: &str) -> Option<usize> {
    let mut parts = run.splitn(4, '_');
    let (Some(product), Some(kind), Some(env), Some(body)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    if product != PRODUCT_PREFIX
        || CredentialKind::from_code(kind).is_none()
        || Environment::parse(env).is_err()
        || body.len() < BODY_LEN
        || !base62::is_base62(&body[..BODY_LEN])
    {
        return None;
    }
    Some(product.len() + kind.len() + env.len() + 3 + ID_LEN)
}

/// SHA-256 of a credential string.
pub fn digest(full: &str) -> [u8; 32] {
    Sha256::digest(full.as_bytes()).into()
}

fn checksum(unchecked: &str) -> String {
    base62::encode_fixed(
        u64::from(crc32fast::hash(unchecked.as_bytes())),
        CHECKSUM_LEN,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::SmallRng, SeedableRng};

    fn rng() -> SmallRng {
        SmallRng::seed_from_u64(1)
    }

    fn fresh(kind: CredentialKind) -> Credential {
        Credential::generate(kind, Environment::live(), &mut rng())
    }

    #[test]
    fn secret_shaped_text_is_redacted_to_its_prefix() {
        let c = fresh(CredentialKind::ClientSecret);
        let full = c.expose();
        assert_eq!(
            redact_secrets(full),
            format!("{}[redacted]", c.display_prefix())
        );
        // Inside other text, twice, and with a mistyped checksum.
        let mut typo = full.to_owned();
        typo.pop();
        typo.push(if full.ends_with('A') { 'B' } else { 'A' });
        let text = format!("client:{full} and {typo}!");
        let red = redact_secrets(&text);
        assert!(!red.contains(&full[20..]), "{red}");
        assert!(!red.contains(&typo[20..]), "{red}");
        assert_eq!(
            red,
            format!(
                "client:{p}[redacted] and {p}[redacted]!",
                p = c.display_prefix()
            )
        );
        // Ids and near-misses are left alone.
        for plain in [
            "cl_4fJd9QkZr2Lm",
            "pcl_cs_live_short",
            "pcl_",
            "xpcl_zz_live_4fJd9QkZr2Lm8sVbN1pXyT6eWqHcGa03uRkE7Y",
            "",
        ] {
            assert_eq!(redact_secrets(plain), plain);
        }
        for kind in [
            CredentialKind::ApiKey,
            CredentialKind::AdminToken,
            CredentialKind::RefreshToken,
        ] {
            let c = fresh(kind);
            assert!(!redact_secrets(c.expose()).contains(&c.expose()[25..]));
        }
    }

    #[test]
    fn generated_credentials_round_trip_through_parse() {
        for kind in [
            CredentialKind::ApiKey,
            CredentialKind::ClientSecret,
            CredentialKind::AdminToken,
            CredentialKind::RefreshToken,
        ] {
            let c = fresh(kind);
            let parsed = Credential::parse(c.expose()).expect("parses");
            assert_eq!(parsed.kind(), kind);
            assert_eq!(parsed.id(), c.id());
            assert_eq!(parsed.digest(), c.digest());
            assert!(c
                .expose()
                .starts_with(&format!("pcl_{}_live_", kind.code())));
        }
    }

    #[test]
    fn format_matches_the_published_scanner_regex_shape() {
        let c = fresh(CredentialKind::ApiKey);
        let body = c.expose().rsplit('_').next().expect("has body");
        assert_eq!(body.len(), 40);
        assert!(c.expose().len() <= MAX_LEN);
        assert!(SCANNER_REGEX.contains("{40}"));
    }

    #[test]
    fn every_single_character_typo_is_caught_by_the_checksum() {
        let c = fresh(CredentialKind::ApiKey);
        let s = c.expose();
        let body_start = s.len() - BODY_LEN;
        for i in body_start..s.len() {
            let mut bytes = s.as_bytes().to_vec();
            bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
            let typo = String::from_utf8(bytes).expect("ascii");
            assert_eq!(
                Credential::parse(&typo).err(),
                Some(CredentialFormatError::ChecksumMismatch),
                "typo at {i} accepted"
            );
        }
    }

    #[test]
    fn malformed_inputs_are_rejected_with_a_reason() {
        use CredentialFormatError::*;
        let good = fresh(CredentialKind::ApiKey).expose().to_owned();
        let cases: Vec<(String, CredentialFormatError)> = vec![
            ("".into(), BadPrefix),
            ("pcl".into(), BadPrefix),
            (good.replacen("pcl_", "pxl_", 1), BadPrefix),
            (good.replacen("_key_", "_zzz_", 1), UnknownKind),
            (good.replacen("_live_", "_LIVE_", 1), BadEnvironment),
            (good.replacen("_live_", "__", 1), BadEnvironment),
            (format!("{good}x"), BadBody),
            (good[..good.len() - 1].to_owned(), BadBody),
            (
                good.replacen("_live_", "_live_!", 1)[..good.len()].to_owned(),
                BadBody,
            ),
            ("a".repeat(10_000), TooLong),
            (format!("{good}{}", "A".repeat(64)), TooLong),
        ];
        for (input, want) in cases {
            assert_eq!(
                Credential::parse(&input).err(),
                Some(want),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn non_ascii_input_does_not_panic() {
        for s in [
            "pcl_key_live_é",
            "pcl_key_ｌive_abc",
            "pcl_\u{0}_x_y",
            "pcl_key_live_ßßßßßßßßßßßßßßßßßßßß",
        ] {
            assert!(Credential::parse(s).is_err());
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = fresh(CredentialKind::AdminToken);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains(c.expose()));
        assert!(dbg.contains("[redacted]"));
        assert!(c.display_prefix().len() < c.expose().len() - SECRET_LEN);
    }

    #[test]
    fn distinct_credentials_from_a_real_rng_do_not_collide() {
        let mut rng = rand::thread_rng();
        let a = Credential::generate(CredentialKind::ApiKey, Environment::live(), &mut rng);
        let b = Credential::generate(CredentialKind::ApiKey, Environment::live(), &mut rng);
        assert_ne!(a.id(), b.id());
        assert_ne!(a.digest(), b.digest());
    }
}

/// Randomised robustness tests for the parser that sees untrusted bytes first. Deterministic
/// seeds, so a failure reproduces.
#[cfg(test)]
mod robustness {
    use super::*;
    use rand::{rngs::SmallRng, Rng, SeedableRng};

    #[test]
    fn arbitrary_strings_never_panic() {
        let mut rng = SmallRng::seed_from_u64(0xC0FFEE);
        let alphabet: Vec<char> = "pcl_keyadmrs0123456789ABCxyz-é\u{0}ｌ ".chars().collect();
        for _ in 0..50_000 {
            let len = rng.gen_range(0..80);
            let s: String = (0..len)
                .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
                .collect();
            let _ = Credential::parse(&s);
            let _ = crate::tenant::TenantId::parse(&s);
        }
    }

    #[test]
    fn mutated_credentials_are_rejected() {
        let mut rng = SmallRng::seed_from_u64(7);
        for _ in 0..2_000 {
            let kind = [CredentialKind::ApiKey, CredentialKind::AdminToken][rng.gen_range(0..2)];
            let original = Credential::generate(kind, Environment::live(), &mut rng);
            let mut bytes = original.expose().as_bytes().to_vec();
            match rng.gen_range(0..3) {
                0 => {
                    let i = rng.gen_range(0..bytes.len());
                    bytes[i] = rng.gen();
                }
                1 => {
                    let i = rng.gen_range(0..bytes.len());
                    bytes.remove(i);
                }
                _ => {
                    let i = rng.gen_range(0..=bytes.len());
                    bytes.insert(i, rng.gen());
                }
            }
            let Ok(mutated) = String::from_utf8(bytes) else {
                continue;
            };
            if mutated == original.expose() {
                continue;
            }
            // CRC32 detects every single-byte change; an insertion or deletion breaks the
            // fixed-width body or, in the prefix, the checksum (about 2^-32 chance of passing,
            // and the seed is fixed).
            assert!(
                Credential::parse(&mutated).is_err(),
                "mutation accepted: {mutated:?}"
            );
        }
    }
}
