//! The crate's one integration-test binary: each module is one suite (a former
//! `tests/*.rs` file). One binary links once, so a cold `cargo test` spends less time
//! linking, and the suites share the fixtures in `common`.

mod common;
mod feed;
mod http_api_keys;
mod http_layer;
mod jwks_cache;
mod jwt_rules;
