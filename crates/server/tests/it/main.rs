//! The crate's one integration-test binary: each module is one suite (a former
//! `tests/*.rs` file). One binary links once, so a cold `cargo test` spends less time
//! linking, and the suites share the fixtures in `common`.

mod account_pages;
mod admin_api;
mod alerts;
mod api_keys;
mod app_clients;
mod assembly;
mod common;
mod device;
mod gateway_denials;
mod lifecycle_admin;
mod log_follower;
mod logout;
mod oauth;
mod revocations;
mod service_exchange;
mod sign_in_pages;
mod user_tokens;
mod webhooks;
mod workload;
mod workload_client;
