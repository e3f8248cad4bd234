//! The crate's one integration-test binary: each module is one suite (a former
//! `tests/*.rs` file). One binary links once, so a cold `cargo test` spends less time
//! linking, and the suites share the fixtures in `common`.

mod audit_chain;
mod conformance;
mod migrations;
mod pg;
mod pg_pool;
mod revocation_head;
mod schema_version;
mod users;
