//! What the Portcullis token service does, without HTTP: signing keys, the KEK and rotation
//! (`keys`, `kek`, `rotation`), the client directory and client-registration rules (`oauth`),
//! client authentication (`client_auth`), issuing, introspecting and revoking tokens
//! (`tokens`), admin and service credentials (`admin_credentials`), users' password hashes,
//! one-time links and mail (`passwords`, `users`, `mail`), API key verification (`api_keys`),
//! the audit sink (`audit`) and the denials standalone gateways report into it
//! (`gateway_denials`), following the revocation log (`revocations`), the counters `serve`
//! exposes as metrics (`metrics`), the server-side sign-in state (`sign_in`: sessions,
//! authorization codes, refresh-token families), and the state they share (`state`: one state
//! type per subsystem, built from the app's).
//!
//! Rules themselves live in `portcullis-core`; this crate applies them to storage through
//! `portcullis_store::Store`. It must never depend on a web framework (`.ci/run` fails if axum
//! enters its dependency tree), never log a secret, and never import upwards: the HTTP surfaces
//! (`portcullis-http`) and the assembly (`portcullis-server`) depend on it, not the reverse.

pub mod account;
pub mod admin_credentials;
pub mod api_keys;
pub mod audit;
pub mod audit_chain;
pub mod client_auth;
pub mod detect;
pub mod fact_cache;
pub mod fault;
pub mod federation;
pub mod gateway_denials;
pub mod kek;
pub mod keys;
pub mod lifecycle;
pub mod lifetime_enforcement;
pub mod login;
pub mod logout;
pub mod mail;
pub mod match_marks;
pub mod metrics;
pub mod mtls;
pub mod oauth;
pub mod outbound;
pub mod passwords;
pub mod remote_jwks;
pub mod revocations;
pub mod rotation;
pub mod sign_in;
pub mod state;
pub mod time_text;
pub mod tokens;
pub mod use_mark;
pub mod users;
pub mod webhooks;
