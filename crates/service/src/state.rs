//! The state the service's subsystems share: storage, clock, audit sink, signing keys, API key
//! verification, the OAuth state and the revocation feed's settings. Built once by the assembly
//! (`portcullis-server`). Each subsystem's surface takes only its own state, made from this one
//! ([`AppState::oauth_service`], [`AppState::api_key_service`], [`AppState::feed_service`]);
//! the admin API and the sign-in pages take sub-states the HTTP crate derives from it.
//!
//! This module must never hold a rule: it only groups what the subsystems need.

use std::sync::Arc;

use portcullis_core::time::Clock;
use portcullis_store::Store;

use crate::api_keys::ApiKeys;
use crate::audit::AuditSink;
use crate::keys::KeySet;

#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub audit: AuditSink,
    pub keys: Arc<KeySet>,
    pub api_keys: Arc<ApiKeys>,
    /// Issuer, token lifetimes, the signer and the failure throttle of the OAuth endpoints.
    pub oauth: Arc<crate::oauth::OAuthState>,
    /// The revocation feed's heartbeat and shutdown signal.
    pub revocations: Arc<crate::revocations::Feed>,
    /// Users' password rule and hashing pool, one-time links and the mailer.
    pub users: Arc<crate::users::Users>,
    /// Sessions, authorization codes and refresh-token families (`sign_in`).
    pub sign_in: Arc<crate::sign_in::SignIn>,
    /// Webhook endpoints, the delivery queue and its counters (`webhooks`).
    pub webhooks: Arc<crate::webhooks::Webhooks>,
    /// Back-channel logout delivery and the `[logout]` settings (registration checks read its
    /// outbound rules).
    pub logout: Arc<crate::logout::Backchannel>,
    /// Password sign-in on the pages (throttle, detectors) and the page keys (CSRF).
    pub login: Arc<crate::login::Login>,
}

impl AppState {
    /// The OAuth subsystem's state: what the token, introspection and revocation endpoints use.
    pub fn oauth_service(&self) -> crate::oauth::OAuthService {
        crate::oauth::OAuthService {
            store: self.store.clone(),
            clock: self.clock.clone(),
            audit: self.audit.clone(),
            oauth: self.oauth.clone(),
            sign_in: self.sign_in.clone(),
        }
    }

    /// The API key subsystem's state: what the verify, leak-report and whoami endpoints use.
    pub fn api_key_service(&self) -> crate::api_keys::ApiKeyService {
        crate::api_keys::ApiKeyService {
            store: self.store.clone(),
            clock: self.clock.clone(),
            audit: self.audit.clone(),
            keys: self.api_keys.clone(),
        }
    }

    /// The denial-report endpoint's state (made once, with the router: it holds the rate
    /// buckets).
    pub fn denial_ingest(&self) -> crate::gateway_denials::DenialIngest {
        crate::gateway_denials::DenialIngest {
            store: self.store.clone(),
            clock: self.clock.clone(),
            audit: self.audit.clone(),
            limits: Default::default(),
        }
    }

    /// The revocation feed's state: what the snapshot and stream endpoints use.
    pub fn feed_service(&self) -> crate::revocations::FeedService {
        crate::revocations::FeedService {
            store: self.store.clone(),
            clock: self.clock.clone(),
            audit: self.audit.clone(),
            feed: self.revocations.clone(),
        }
    }
}

pub use crate::time_text::rfc3339;
