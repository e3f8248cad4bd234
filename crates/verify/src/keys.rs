//! Verification keys pinned to one algorithm, now in `portcullis-jose` (the one JOSE crate of
//! the workspace): [`portcullis_jose::jwk`]. The names are re-exported here so code that
//! imported them from this crate keeps compiling.
//!
//! This module must never grow key parsing of its own again.

pub use portcullis_jose::jwk::{parse_jwks, JwksError, KeySet, VerificationKey};
