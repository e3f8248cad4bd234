//! The Portcullis server assembly: configuration (`config`), the choice of storage backend and
//! the start-up sequence (`serve`), the background tasks it supervises, the bootstrap admin
//! (`bootstrap`), logging (`logging`), the metrics listener (`metrics`) and the embedded gateway
//! (`gateway`).
//!
//! What the token service does lives in `portcullis-service`; its HTTP surfaces in
//! `portcullis-http`. This crate wires them together and must hold no rule of its own about
//! tokens, keys or credentials. It must never log a secret.

pub mod api_key_backend;
pub mod bootstrap;
pub mod config;
pub mod gateway;
pub mod logging;
pub mod metrics;
pub mod serve;
pub mod tls_listener;
