//! The crate's one integration-test binary: each module is one suite (a former
//! `tests/*.rs` file). One binary links once, so a cold `cargo test` spends less time
//! linking, and the suites share the fixtures in `common`.

mod caddy;
mod common;
mod dpop;
mod embedding;
mod forward_auth;
mod h2c;
mod identity;
mod nginx;
mod proxy;
mod reload;
mod route_bindings;
mod tls;
mod upstream_pool;
mod websocket;
