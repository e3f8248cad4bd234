//! The strict JWS parser, now in `portcullis-jose` (the one JOSE crate of the workspace):
//! [`portcullis_jose::compact`] and [`portcullis_jose::profile::access_token`]. The names are
//! re-exported here so code that imported them from this crate keeps compiling; refusals are
//! [`portcullis_jose::JoseError`], which converts into [`crate::Reason`].
//!
//! This module must never grow parsing code of its own again.

pub use portcullis_jose::compact::{parse, JoseHeader, RawObject, Unverified, WrongType};
pub use portcullis_jose::profile::access_token::is_typ as is_access_token_typ;
pub use portcullis_jose::Alg;
