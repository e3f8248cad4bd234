//! Portcullis verify: what a Rust API embeds to decide, in process, whether a request's
//! credential (a JWT access token or a Portcullis API key) may perform an operation.
//!
//! The strict path is the default: every JWT rule of DESIGN.md section 5 is on and cannot be
//! switched off piecemeal; anything weaker is named `insecure_*`. Keys come only from the
//! configured source (static JWKS, JWKS URL, or discovery), revocations are pushed from the
//! server's feed, and a verifier that has lost the feed longer than its staleness bound fails
//! closed.
//!
//! ```no_run
//! use portcullis_verify::{FeedConfig, IssuerConfig, KeySource, Policy, RevocationSource, Verifier, VerifierConfig};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let issuer = IssuerConfig::new(
//!     "https://auth.example.com",
//!     KeySource::Discovery("https://auth.example.com/.well-known/oauth-authorization-server".into()),
//! );
//! let feed = FeedConfig::new("https://auth.example.com", std::env::var("PORTCULLIS_FEED_TOKEN")?);
//! let verifier = Verifier::new(VerifierConfig::new(issuer, "payments-api", RevocationSource::Feed(feed)))?;
//! let app: axum::Router = axum::Router::new().route(
//!     "/t/{tenant}/invoices",
//!     axum::routing::get(|p: portcullis_verify::Principal| async move { p.subject })
//!         .route_layer(verifier.require(Policy::access_token().all_scopes(["invoices:read"]).tenant_from_path("tenant"))),
//! );
//! # Ok(()) }
//! ```
//!
//! This crate never logs a credential, never fetches a key location named by a token, and
//! never answers a client with the precise reason for a refusal.

pub mod api_key;
pub mod denial;
pub mod dpop;
pub mod feed;
pub mod fetch;
pub mod http;
pub mod jwks;
pub mod jws;
pub mod keys;
pub mod policy;
pub mod principal;
pub mod sse;
pub mod token_cache;
pub mod verifier;

pub use api_key::{ApiKeyBackend, ApiKeyFailure, ApiKeyIdentity, ApiKeyQuery};
pub use denial::{Denial, DenialClass, Reason};
pub use dpop::{DpopConfig, DpopRequest};
pub use feed::{FeedConfig, RevocationSource, Revocations};
pub use http::{authorize_request, denial_response, RequireLayer};
pub use jwks::{JwksTiming, KeySource};
pub use policy::{authorize, Policy, Requirement, TenantBinding};
pub use portcullis_core::confirmation::{
    BindingError, ClientCertificate, Confirmation, Possession, Scheme, Thumbprint,
};
pub use portcullis_jose::Alg;
pub use principal::{CredentialKind, Principal};
pub use verifier::{
    ApiKeyConfig, ApiKeySource, IssuerConfig, Presented, RequestFacts, SystemClock, Verifier,
    VerifierConfig, MAX_LEEWAY,
};

/// A configuration the verifier refuses to start with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid verifier configuration: {0}")]
pub struct ConfigError(pub String);
