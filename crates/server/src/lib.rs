//! The Portcullis server: HTTP endpoints, admin API, key management, audit sink, and the
//! start-up sequence that wires storage, keys and HTTP together.
//!
//! This crate chooses nothing about storage at compile time: it works through
//! `portcullis_store::Store`. Rules live in `portcullis-core`; this crate turns requests into
//! calls to them and answers into HTTP. It must never log a secret.

pub mod admin;
pub mod api_keys;
pub mod audit;
pub mod bootstrap;
pub mod config;
pub mod error;
pub mod extract;
pub mod fault;
pub mod gateway;
pub mod http;
pub mod kek;
pub mod keys;
pub mod logging;
pub mod oauth;
pub mod revocations;
pub mod rotation;
pub mod serve;
pub mod state;
