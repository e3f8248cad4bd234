//! Portcullis JOSE: the only code in the workspace that signs, parses and verifies JWS (compact
//! serialisation) and reads JWK/JWKS documents.
//!
//! * [`compact`]: the strict parser (three strict base64url parts, size limit, no repeated JSON
//!   members, no `alg: none`, no `crit`, no key-carrying header ever read).
//! * [`jwk`]: public keys from JWK/JWKS, each pinned to one algorithm and parsed once; RFC 7638
//!   thumbprints.
//! * [`sign`]: private keys parsed once and a signer whose protected header is encoded once.
//! * [`profile`]: one typed profile per token kind (access token, ID token, client assertion,
//!   identity JWT) with its own header and claim rules; a new kind is a new profile, not a new
//!   parser.
//!
//! Time is always a value passed in (a [`portcullis_core::time::Timestamp`]), never read here.
//! This crate must never do I/O (fetching a JWKS is the caller's job), never read a key from a
//! token, and never print private key material (Debug shows `[redacted]`).

pub mod alg;
pub mod compact;
pub mod error;
pub mod jwk;
pub mod profile;
pub mod sign;

pub use alg::Alg;
pub use compact::{JoseHeader, RawObject, Unverified};
pub use error::JoseError;
pub use jwk::{
    parse_jwk_set, parse_jwks, parse_jwks_all_usable, thumbprint, JwksError, KeySet,
    VerificationKey,
};
pub use profile::client_assertion::ClientKeys;
pub use sign::{SignError, Signer, SigningKeyPair};
