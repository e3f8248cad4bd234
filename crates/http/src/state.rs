//! The state of the router that serves the admin API and the sign-in pages, and the sub-states
//! their handlers take. [`RouterState`] is the app's state behind a type of this crate, so that
//! each subsystem's state can be derived from it through axum's `FromRef`: a handler names the
//! one sub-state it works on (`State<OAuthAdmin>`, `State<UsersAdmin>`, ...), and its signature
//! says which subsystem it touches. The admin extractors (`admin::auth`) take [`AdminAuth`] from
//! any router state that yields one. The OAuth, API key and feed surfaces hold their service
//! state as their own router's state instead (`app`).
//!
//! Each sub-state holds only the parts its subsystem uses, cloned from the app's state (cheap:
//! `Arc`s). This module must never hold a rule or a handler, and no sub-state here may grow into
//! a second `AppState`: a subsystem that needs something new gets it in its own sub-state.

use std::sync::Arc;

use axum::extract::FromRef;
use portcullis_core::time::Clock;
use portcullis_service::account::Account;
use portcullis_service::api_keys::{ApiKeyService, ApiKeys};
use portcullis_service::audit::AuditSink;
use portcullis_service::login::Login;
use portcullis_service::logout::Backchannel;
use portcullis_service::oauth::{OAuthService, OAuthState};
use portcullis_service::sign_in::SignIn;
use portcullis_service::state::AppState;
use portcullis_service::users::Users;
use portcullis_service::webhooks::Webhooks;
use portcullis_store::Store;

/// The state of the router that serves the admin API, the sign-in pages and readiness: the
/// app's state, which handlers never take whole; they take a sub-state made from it.
#[derive(Debug, Clone)]
pub struct RouterState(AppState);

impl RouterState {
    pub fn new(app: AppState) -> Self {
        Self(app)
    }
}

/// A sub-state of the app's state: the parts every subsystem's handlers use (storage, clock,
/// audit sink, the OAuth state) and the subsystem's own, each cloned from the `AppState` field
/// of the same name, with its `FromRef` from [`RouterState`].
macro_rules! sub_state {
    ($(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name {
            pub store: Arc<dyn Store>,
            pub clock: Arc<dyn Clock>,
            pub audit: AuditSink,
            pub oauth: Arc<OAuthState>,
            $(pub $field: $ty,)*
        }

        impl FromRef<RouterState> for $name {
            fn from_ref(RouterState(app): &RouterState) -> Self {
                Self {
                    store: app.store.clone(),
                    clock: app.clock.clone(),
                    audit: app.audit.clone(),
                    oauth: app.oauth.clone(),
                    $($field: app.$field.clone(),)*
                }
            }
        }
    };
}

sub_state! {
    /// What authenticating an admin credential or a person's CLI sign-in reads and records
    /// (storage, clock, audit; the OAuth state and sign-in state check a CLI session's token), and
    /// where admin credentials are created and revoked (`admin::tokens`).
    AdminAuth {
        sign_in: Arc<SignIn>,
    }
}

sub_state! {
    /// The OAuth client directory as the admin API changes it: clients, resource servers, a
    /// tenant's OAuth policy and CA sets. The OAuth state's directory is told of each change; the
    /// back-channel logout settings hold the outbound rules a client's logout URI is checked by.
    OAuthAdmin {
        logout: Arc<Backchannel>,
    }
}

sub_state! {
    /// Federation as the admin API changes it: trusted issuers and their keys (held in the OAuth
    /// state, which is told of each change).
    FederationAdmin {}
}

sub_state! {
    /// Tenants as the admin API changes them: disabling or archiving one reaches the OAuth
    /// directory and the API key verifier's cache.
    TenantsAdmin {
        api_keys: Arc<ApiKeys>,
    }
}

sub_state! {
    /// A tenant's users as the admin API manages them: users, their admin roles and sessions, and
    /// the tenant's branding of the pages they sign in on. The OAuth state gives token lifetimes
    /// (how long a change must be remembered), `users` the one-time links and mail.
    UsersAdmin {
        users: Arc<Users>,
        sign_in: Arc<SignIn>,
    }
}

sub_state! {
    /// The audit log and what watches it: audit events and the audit chain, alerts and webhooks
    /// (`webhooks`: endpoints and the delivery queue). The OAuth state is read for its issuer only,
    /// which the chain's checkpoints name.
    AuditAdmin {
        webhooks: Arc<Webhooks>,
    }
}

impl AdminAuth {
    /// The token service a CLI sign-in's token is checked with.
    pub fn cli_sessions(&self) -> OAuthService {
        OAuthService {
            store: self.store.clone(),
            clock: self.clock.clone(),
            audit: self.audit.clone(),
            oauth: self.oauth.clone(),
            sign_in: self.sign_in.clone(),
        }
    }
}

/// The sign-in pages: the authorization, logout, device and account pages. `login` is password
/// sign-in and the page keys (CSRF), `sign_in` sessions and codes, `account` the account
/// operations (links, passwords, the account page).
#[derive(Debug, Clone)]
pub struct SignInPages {
    pub store: Arc<dyn Store>,
    pub clock: Arc<dyn Clock>,
    pub audit: AuditSink,
    pub oauth: Arc<OAuthState>,
    pub sign_in: Arc<SignIn>,
    pub login: Arc<Login>,
    pub account: Account,
}

impl SignInPages {
    /// The OAuth subsystem's state, for the grants a page completes (device approval).
    pub fn oauth_service(&self) -> OAuthService {
        OAuthService {
            store: self.store.clone(),
            clock: self.clock.clone(),
            audit: self.audit.clone(),
            oauth: self.oauth.clone(),
            sign_in: self.sign_in.clone(),
        }
    }
}

impl FromRef<RouterState> for SignInPages {
    fn from_ref(RouterState(app): &RouterState) -> Self {
        Self {
            store: app.store.clone(),
            clock: app.clock.clone(),
            audit: app.audit.clone(),
            oauth: app.oauth.clone(),
            sign_in: app.sign_in.clone(),
            login: app.login.clone(),
            account: Account::new(app),
        }
    }
}

/// The API key subsystem's state: API keys and their lifetime policy on the admin API (the
/// verifier's cache they invalidate is the verify endpoints').
impl FromRef<RouterState> for ApiKeyService {
    fn from_ref(RouterState(app): &RouterState) -> Self {
        app.api_key_service()
    }
}

/// The OAuth subsystem's state: signing keys (rotation works on it) and readiness (the live
/// signer).
impl FromRef<RouterState> for OAuthService {
    fn from_ref(RouterState(app): &RouterState) -> Self {
        app.oauth_service()
    }
}
