//! The strict JWS compact-serialisation parser: splits a token, decodes each part as strict
//! unpadded base64url, and reads the header and claims as JSON objects that may not repeat a
//! member. Nothing here checks a rule; nothing read here is trusted until
//! [`Unverified::verify_with`] has checked the signature with a key pinned to the token's `alg`.
//!
//! It must never look at `jwk`, `jku`, `x5u` or `x5c` (keys are only ever found in the caller's
//! configured key source), and never accept a `crit` extension: none is understood.

use std::borrow::Cow;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::alg::Alg;
use crate::error::JoseError;
use crate::jwk::VerificationKey;

/// A JSON object whose member names are unique (RFC 7515 section 5.2 lets a parser refuse
/// duplicates; a token that repeats `sub` or `aud` is an attack on whoever reads the other one).
/// Members stay unparsed, borrowed from the decoded bytes, until a rule asks for one: no
/// allocation per member on the hot path.
#[derive(Debug, Default)]
pub struct RawObject<'a> {
    members: Vec<(Cow<'a, str>, &'a RawValue)>,
}

/// A string that borrows from the input unless it contains escapes.
#[derive(Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// Why a member could not be read as the type asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongType;

impl<'a> RawObject<'a> {
    /// Parses a JSON object, refusing repeated member names.
    pub fn parse(bytes: &'a [u8], malformed: JoseError) -> Result<Self, JoseError> {
        match serde_json::from_slice::<RawObject<'a>>(bytes) {
            Ok(o) => Ok(o),
            Err(e) if e.to_string().starts_with(DUPLICATE) => Err(JoseError::DuplicateMember),
            Err(_) => Err(malformed),
        }
    }

    pub fn get(&self, name: &str) -> Option<&'a RawValue> {
        self.members
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// A string member (borrowed when it has no escapes).
    pub fn str(&self, name: &str) -> Result<Option<Cow<'a, str>>, WrongType> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => match plain_string(raw.get()) {
                Some(s) => Ok(Some(Cow::Borrowed(s))),
                None => serde_json::from_str::<Text<'a>>(raw.get())
                    .map(|t| Some(t.0))
                    .map_err(|_| WrongType),
            },
        }
    }

    /// An integer member (a NumericDate here: fractions and out-of-range values are refused).
    pub fn int(&self, name: &str) -> Result<Option<i64>, WrongType> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => match plain_unsigned(raw.get()) {
                Some(digits) => digits.parse::<i64>().map(Some).map_err(|_| WrongType),
                None => serde_json::from_str::<i64>(raw.get())
                    .map(Some)
                    .map_err(|_| WrongType),
            },
        }
    }

    /// A string or an array of strings (the shape of `aud`).
    pub fn strings(&self, name: &str) -> Result<Option<Vec<Cow<'a, str>>>, WrongType> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany<'a> {
            #[serde(borrow)]
            One(Text<'a>),
            #[serde(borrow)]
            Many(Vec<Text<'a>>),
        }
        match self.get(name) {
            None => Ok(None),
            Some(raw) => match serde_json::from_str::<OneOrMany<'a>>(raw.get()) {
                Ok(OneOrMany::One(t)) => Ok(Some(vec![t.0])),
                Ok(OneOrMany::Many(v)) => Ok(Some(v.into_iter().map(|t| t.0).collect())),
                Err(_) => Err(WrongType),
            },
        }
    }

    /// An array of strings.
    pub fn string_array(&self, name: &str) -> Result<Option<Vec<String>>, WrongType> {
        match self.get(name) {
            None => Ok(None),
            Some(raw) => serde_json::from_str::<Vec<String>>(raw.get())
                .map(Some)
                .map_err(|_| WrongType),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for RawObject<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = RawObject<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawObject<'a>, A::Error> {
                let mut members: Vec<(Cow<'a, str>, &'a RawValue)> = Vec::with_capacity(16);
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    if members.iter().any(|(k, _)| *k == key.0) {
                        return Err(serde::de::Error::custom(DUPLICATE));
                    }
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key.0, value));
                }
                Ok(RawObject { members })
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

const DUPLICATE: &str = "duplicate member";

// The two fast paths below read a member without a second JSON parse. They rely on what
// `RawObject::parse` already checked: every member is exactly one valid JSON value, without
// surrounding whitespace, valid UTF-8, and a string in it holds no raw control character. Anything
// else (escapes, signs, fractions, exponents) goes through serde_json as before, so both paths
// accept and refuse exactly the same values (`tests::fast_paths_agree_with_serde_json`).

/// The content of a JSON string value that has no escape: what serde_json would yield, borrowed.
fn plain_string(raw: &str) -> Option<&str> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('\\')).then_some(inner)
}

/// A JSON number made of digits only (no sign, fraction or exponent). serde_json refuses `-0`
/// as an integer, which is why negative numbers take the slow path.
fn plain_unsigned(raw: &str) -> Option<&str> {
    (!raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit())).then_some(raw)
}

/// The header members a verifier reads.
#[derive(Debug)]
pub struct JoseHeader {
    pub alg: Alg,
    pub kid: Option<String>,
    pub typ: Option<String>,
}

/// A split, decoded, not yet verified token. The claims stay as bytes; read them with
/// [`RawObject::parse`].
#[derive(Debug)]
pub struct Unverified<'a> {
    /// `base64url(header) "." base64url(payload)`: what the signature covers.
    pub signing_input: &'a str,
    pub signature: Vec<u8>,
    pub header: JoseHeader,
    pub payload: Vec<u8>,
}

impl Unverified<'_> {
    /// Reads the claims (once): a JSON object without repeated members.
    pub fn claims(&self) -> Result<RawObject<'_>, JoseError> {
        RawObject::parse(&self.payload, JoseError::MalformedClaims)
    }

    /// Checks the signature with `key`. The token's `alg` must be the algorithm the key is
    /// pinned to (never the other way round: a key is not tried with whatever the token names).
    pub fn verify_with(&self, key: &VerificationKey) -> Result<(), JoseError> {
        if key.alg != self.header.alg {
            return Err(JoseError::AlgKeyMismatch);
        }
        if !key.verify(self.signing_input.as_bytes(), &self.signature) {
            return Err(JoseError::BadSignature);
        }
        Ok(())
    }
}

fn b64(part: &str) -> Result<Vec<u8>, JoseError> {
    // The standard engine is strict: no padding, no non-alphabet bytes, no stray trailing bits.
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| JoseError::BadBase64)
}

/// Splits and decodes a compact JWS. `max_len` bounds the work an attacker can cause. The
/// payload is returned decoded but unread: [`RawObject::parse`] reads it (once).
pub fn parse(token: &str, max_len: usize) -> Result<Unverified<'_>, JoseError> {
    if token.len() > max_len {
        return Err(JoseError::TooLarge);
    }
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JoseError::Malformed);
    };
    if h.is_empty() || p.is_empty() {
        return Err(JoseError::Malformed);
    }
    let header_bytes = b64(h)?;
    let header = read_header(&RawObject::parse(
        &header_bytes,
        JoseError::MalformedHeader,
    )?)?;
    // An empty signature is what `alg: none` tokens carry; `none` was refused above, so an
    // empty one here is simply malformed.
    if s.is_empty() {
        return Err(JoseError::Malformed);
    }
    let signature = b64(s)?;
    let payload = b64(p)?;
    Ok(Unverified {
        signing_input: &token[..h.len() + 1 + p.len()],
        signature,
        header,
        payload,
    })
}

fn read_header(h: &RawObject<'_>) -> Result<JoseHeader, JoseError> {
    let alg = h
        .str("alg")
        .map_err(|_| JoseError::MalformedHeader)?
        .ok_or(JoseError::MalformedHeader)?;
    if alg.eq_ignore_ascii_case("none") {
        return Err(JoseError::AlgNone);
    }
    let alg = Alg::parse(&alg).ok_or(JoseError::AlgNotAllowed)?;
    // No extension is understood, so any `crit` (even an empty or malformed one) is refused
    // (RFC 7515 section 4.1.11). That includes `b64: false` (RFC 7797), which must be critical.
    if h.contains("crit") || h.contains("b64") {
        return Err(JoseError::UnsupportedCrit);
    }
    let string = |name: &str| {
        h.str(name)
            .map(|v| v.map(Cow::into_owned))
            .map_err(|_| JoseError::MalformedHeader)
    };
    Ok(JoseHeader {
        alg,
        kid: string("kid")?,
        typ: string("typ")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    /// The parser plus the claims read, as the verifier does.
    fn parse_all(t: &str) -> Result<(), JoseError> {
        let u = parse(t, 8192)?;
        RawObject::parse(&u.payload, JoseError::MalformedClaims).map(|_| ())
    }

    fn token(header: &str, claims: &str) -> String {
        format!("{}.{}.{}", enc(header), enc(claims), enc("sig"))
    }

    #[test]
    fn a_well_formed_token_splits_and_keeps_the_signing_input() {
        let t = token(
            r#"{"alg":"ES256","kid":"k","typ":"at+jwt"}"#,
            r#"{"sub":"a"}"#,
        );
        let u = parse(&t, 8192).expect("parse");
        assert_eq!(u.header.alg, Alg::ES256);
        assert_eq!(u.header.kid.as_deref(), Some("k"));
        assert_eq!(u.signature, b"sig");
        assert_eq!(
            u.signing_input,
            t.rsplit_once('.').map(|x| x.0).unwrap_or("")
        );
    }

    #[test]
    fn structural_garbage_is_refused_with_a_reason() {
        let good_h = enc(r#"{"alg":"ES256"}"#);
        let good_p = enc("{}");
        let cases: Vec<(String, JoseError)> = vec![
            (String::new(), JoseError::Malformed),
            ("a.b".into(), JoseError::Malformed),
            ("a.b.c.d".into(), JoseError::Malformed),
            (format!(".{good_p}.c2ln"), JoseError::Malformed),
            (format!("{good_h}..c2ln"), JoseError::Malformed),
            (format!("{good_h}.{good_p}."), JoseError::Malformed),
            (format!("{good_h}=.{good_p}.c2ln"), JoseError::BadBase64),
            (format!("{good_h}.{good_p}.c2ln=="), JoseError::BadBase64),
            (format!("{good_h}.{good_p}.c2+n"), JoseError::BadBase64),
            (format!("{good_h}.{good_p}.c2l/"), JoseError::BadBase64),
            // "c2k" is "si"; "c2l" differs only in trailing bits, which must be zero.
            (format!("{good_h}.{good_p}.c2l"), JoseError::BadBase64),
            (
                format!("{}.{good_p}.c2ln", enc("[]")),
                JoseError::MalformedHeader,
            ),
            (
                format!("{}.{good_p}.c2ln", enc(r#"{"alg":5}"#)),
                JoseError::MalformedHeader,
            ),
            (
                format!("{}.{good_p}.c2ln", enc(r#"{"kid":"x"}"#)),
                JoseError::MalformedHeader,
            ),
            (
                format!("{good_h}.{}.c2ln", enc("not json")),
                JoseError::MalformedClaims,
            ),
            (
                format!("{good_h}.{}.c2ln", enc(r#"["a"]"#)),
                JoseError::MalformedClaims,
            ),
            (
                format!("{good_h}.{}.c2ln", enc(r#"{"sub":"a","sub":"b"}"#)),
                JoseError::DuplicateMember,
            ),
            (
                format!("{}.{good_p}.c2ln", enc(r#"{"alg":"ES256","alg":"none"}"#)),
                JoseError::DuplicateMember,
            ),
            (
                format!("{}.{good_p}.", enc(r#"{"alg":"none"}"#)),
                JoseError::AlgNone,
            ),
            (
                format!("{}.{good_p}.c2ln", enc(r#"{"alg":"NONE"}"#)),
                JoseError::AlgNone,
            ),
            (
                format!("{}.{good_p}.c2ln", enc(r#"{"alg":"HS256"}"#)),
                JoseError::AlgNotAllowed,
            ),
            (
                format!("{}.{good_p}.c2ln", enc(r#"{"alg":"es256"}"#)),
                JoseError::AlgNotAllowed,
            ),
            (
                format!("{}.{good_p}.c2ln", enc(r#"{"alg":"ES256","crit":["exp"]}"#)),
                JoseError::UnsupportedCrit,
            ),
            (
                format!("{}.{good_p}.c2ln", enc(r#"{"alg":"ES256","crit":[]}"#)),
                JoseError::UnsupportedCrit,
            ),
            (
                format!("{}.{good_p}.c2ln", enc(r#"{"alg":"ES256","b64":false}"#)),
                JoseError::UnsupportedCrit,
            ),
            (
                format!("{}.{good_p}.c2ln", enc(r#"{"alg":"ES256","kid":7}"#)),
                JoseError::MalformedHeader,
            ),
        ];
        for (t, want) in cases {
            assert_eq!(parse_all(&t).err(), Some(want), "{t}");
        }
    }

    #[test]
    fn fast_paths_agree_with_serde_json() {
        let values = [
            r#""plain""#,
            r#""""#,
            r#""with \"escape\"""#,
            r#""\u00e9t\u00e9""#,
            "\"caf\u{e9} \u{1F600}\"",
            r#""a\/b""#,
            "0",
            "7",
            "1795478400",
            "9223372036854775807",
            "9223372036854775808",
            "18446744073709551616",
            "-0",
            "-1",
            "-9223372036854775808",
            "-9223372036854775809",
            "1.0",
            "1e3",
            "1E3",
            "0.5",
            "true",
            "null",
            r#"["a"]"#,
            "{}",
        ];
        for v in values {
            let doc = format!(r#"{{"m": {v} }}"#);
            let o = RawObject::parse(doc.as_bytes(), JoseError::MalformedClaims).expect("parse");
            let want_str = serde_json::from_str::<Text<'_>>(v).map(|t| t.0.into_owned());
            assert_eq!(
                o.str("m").map(|s| s.map(Cow::into_owned)),
                want_str.map(Some).map_err(|_| WrongType),
                "str {v}"
            );
            let want_int = serde_json::from_str::<i64>(v);
            assert_eq!(
                o.int("m"),
                want_int.map(Some).map_err(|_| WrongType),
                "int {v}"
            );
        }
        // A plain string is borrowed from the token, not copied.
        let doc = br#"{"m":"plain"}"#;
        let o = RawObject::parse(doc, JoseError::MalformedClaims).expect("parse");
        assert!(matches!(o.str("m"), Ok(Some(Cow::Borrowed("plain")))));
    }

    #[test]
    fn oversized_tokens_are_refused_before_any_decoding() {
        let t = "a".repeat(8193);
        assert_eq!(parse(&t, 8192).err(), Some(JoseError::TooLarge));
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_parser() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let alphabet = b"abcXYZ019-_.={}\":,[]";
        let seed = token(
            r#"{"alg":"ES256","kid":"k","typ":"at+jwt"}"#,
            r#"{"a":[1,{"b":null}]}"#,
        );
        for _ in 0..20_000 {
            let mut bytes = seed.clone().into_bytes();
            for _ in 0..rng.gen_range(1..6) {
                let i = rng.gen_range(0..bytes.len());
                bytes[i] = alphabet[rng.gen_range(0..alphabet.len())];
            }
            if let Ok(s) = String::from_utf8(bytes) {
                let _ = parse_all(&s);
            }
        }
    }
}
