//! The crate's one integration-test binary: each module is one suite (a former
//! `tests/*.rs` file). One binary links once, so a cold `cargo test` spends less time
//! linking, and the suites share the fixtures in `common`.

mod api_keys_e2e;
mod browser;
mod common;
mod device_login;
mod docs_examples;
mod faults;
mod gateway;
mod gateway_embedded;
mod lifecycle;
mod mtls;
mod relying_party;
mod revocation_feed;
mod rotation_crash;
mod scale_out;
mod token_service;
mod verify_e2e;
mod workload_client;
