//! Portcullis core: the rules, with no I/O.
//!
//! This crate decides; it never opens a socket, reads a file, touches a database or reads the
//! system clock. Time comes in through [`time::Clock`], randomness through a caller-supplied
//! `rand_core` generator. Everything here is synchronous and unit-testable.
//!
//! Untrusted input is parsed into types at the edge ([`tenant::TenantId`],
//! [`credential::Credential`]) so that code further in cannot hold an invalid value.

pub mod admin;
pub mod admission;
pub mod alert;
pub mod api_key;
pub mod audit;
pub mod audit_chain;
pub mod auth_code;
pub mod authorize;
pub mod base62;
pub mod branding;
pub mod client;
pub mod confirmation;
pub mod credential;
pub mod delegation;
pub mod denial_report;
pub mod detect;
pub mod device;
pub mod federation;
pub mod forwarded;
pub mod hygiene;
pub mod lifetime;
pub mod logout;
pub mod metrics;
pub mod network;
pub mod oauth;
pub mod password;
pub mod pem;
pub mod rate_limit;
pub mod refresh;
pub mod revocation;
pub mod secret;
pub mod session;
pub mod sign_in_throttle;
pub mod signing;
pub mod tenant;
pub mod time;
pub mod uri;
pub mod user;
pub mod user_token;
