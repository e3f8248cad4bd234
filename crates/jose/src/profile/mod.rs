//! One typed profile per token kind: its header rule (`typ`), its claim rules and the typed
//! claims it yields. A new kind of token is a new module here, built on the one parser in
//! [`crate::compact`] and the one key type in [`crate::jwk`], never a new parser.
//!
//! Each profile splits its work in the same steps, so a caller that must fetch keys
//! asynchronously (the verify library, the token service's `jwks_uri` cache) can do so between
//! them: parse (size, structure, header, `typ`) -> read the claims -> find the key ->
//! [`crate::Unverified::verify_with`]. Time is a value the caller passes in (`now`), never read
//! here, so every rule is testable without sleeping. This module must never do I/O.

pub mod access_token;
pub mod audit_checkpoint;
pub mod client_assertion;
pub mod dpop_nonce;
pub mod dpop_proof;
pub mod external;
pub mod id_token;
pub mod identity;
pub mod logout_token;

use std::borrow::Cow;

use crate::compact::RawObject;
use crate::error::JoseError;

/// A required string claim.
fn required<'a>(c: &RawObject<'a>, name: &'static str) -> Result<Cow<'a, str>, JoseError> {
    c.str(name)
        .map_err(|_| JoseError::MalformedClaims)?
        .ok_or(JoseError::MissingClaim(name))
}

/// A required NumericDate claim.
fn required_int(c: &RawObject<'_>, name: &'static str) -> Result<i64, JoseError> {
    c.int(name)
        .map_err(|_| JoseError::MalformedClaims)?
        .ok_or(JoseError::MissingClaim(name))
}

/// Whether a `typ` value names `want` (`x` or `application/x`), compared case-insensitively
/// (RFC 7515 section 4.1.9, RFC 8725 section 3.11).
fn typ_is(typ: &str, want: &str) -> bool {
    let t = typ.strip_prefix("application/").unwrap_or(typ);
    t.eq_ignore_ascii_case(want)
}
