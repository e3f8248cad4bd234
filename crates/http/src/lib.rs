//! The HTTP surfaces of Portcullis: one axum router per surface (OAuth endpoints in `oauth`, the
//! API key endpoints in `api_keys`, the admin API in `admin`, the revocation feed in
//! `revocations`, standalone gateways' denial reports in `gateway_denials`, the OpenAPI document
//! in `openapi`, health and readiness in `app`), the sub-states the admin API and the sign-in
//! pages take (`state`), request metrics (`metrics`), the extractors they share (`extract`) and
//! the mapping from failures to HTTP answers (`error` for the JSON APIs, `oauth::reply` for RFC
//! 6749 answers).
//!
//! Handlers turn requests into calls to `portcullis-service` and answers into HTTP. This crate
//! must never hold a rule of its own about tokens, keys or credentials (those live in core and
//! the service crate), never start background tasks (the assembly in `portcullis-server` does),
//! and never log a secret.

pub mod admin;
pub mod api_keys;
pub mod app;
pub mod error;
pub mod extract;
pub mod gateway_denials;
pub mod metrics;
pub mod oauth;
pub mod openapi;
pub mod openapi_public;
pub mod page;
pub mod pages;
pub mod revocations;
pub mod state;
