//! The stored facts the OAuth endpoints read on every request — a client with its secret
//! digests, a tenant's status, a tenant's resource server by audience, a tenant's CA sets read
//! into trust anchors — served from short-lived caches ([`FactCache`]) in front of storage.
//!
//! Staleness bound: a write made through this process (admin API or CLI against this node)
//! calls one of the `*_changed` methods before it answers, so the very next request reads the new
//! state. A write made on another node sharing the database is seen once the cached entry is
//! older than `oauth.cache_ttl_ms` (default 1 s). `oauth.cache_ttl_ms = 0` turns caching off.
//!
//! This module caches facts, never decisions: every request still compares the presented secret
//! against the cached digests in constant time and checks expiry, status and tenant itself.
//! Client ids that match no client are remembered in a cache of their own, so a flood of made-up
//! ids can only push out other made-up ids, never a real client; every such request still counts
//! as a failure for the throttle.

use std::sync::Arc;
use std::time::Duration;

use portcullis_core::authorize::AppClient;
use portcullis_core::client::{ClientId, RedirectUri};
use portcullis_core::oauth::{Audience, ClientPolicy, GrantType, ResourcePolicy, ScopeSet};
use portcullis_core::tenant::{TenantId, TenantStatus};
use portcullis_core::time::Timestamp;
use portcullis_jose::profile::client_assertion::{ClientKeys, MAX_CLIENT_KEYS};
use portcullis_store::{OAuthClient, ResourceServer, Store, StoreError};

use crate::fact_cache::FactCache;
use crate::keys::jwt::PublishedKeys;
use crate::mtls::{BadTlsSubject, TlsSubject, TrustAnchors};
use crate::use_mark::UseMark;

/// A client as stored, with what each request derives from it computed once.
#[derive(Debug)]
pub struct ClientFacts {
    pub client: OAuthClient,
    /// Digests and validity of the client's secrets, newest first.
    pub secrets: Vec<SecretFacts>,
    /// The client as core's grant rules see it; `None` if the stored row does not parse (then
    /// the token endpoint answers with a server error, as it would without the cache).
    pub policy: Option<ClientPolicy>,
    /// The inline JWKS of a `private_key_jwt` client, parsed once; `None` if there is none or it
    /// does not parse (then the client's assertions are refused: `invalid_client`).
    pub inline_jwks: Option<Arc<ClientKeys>>,
    /// The certificate fact a `tls_client_auth` client is registered with, read once: `None`
    /// if the client has none, `Some(Err)` if the stored one no longer reads (then its
    /// certificates are refused).
    pub tls_subject: Option<Result<TlsSubject, BadTlsSubject>>,
    /// When this process last wrote the client's use (starts at the stored `last_used_at`).
    pub last_use: UseMark,
}

/// A client secret as authentication needs it: no display data, no secret.
#[derive(Debug, Clone)]
pub struct SecretFacts {
    pub id: String,
    pub digest: Vec<u8>,
    pub expires_at: Option<Timestamp>,
}

impl ClientFacts {
    /// The client's policy and its typed id, for the grants that need both (the user grants, the
    /// device authorization request); a stored row that yields neither is a server error.
    pub fn policy_and_id(
        &self,
    ) -> Result<(&ClientPolicy, ClientId), crate::oauth::error::OAuthError> {
        match (self.policy.as_ref(), ClientId::parse(&self.client.id)) {
            (Some(policy), Some(id)) => Ok((policy, id)),
            _ => Err(crate::oauth::error::OAuthError::internal(format!(
                "stored client {} is invalid",
                self.client.id
            ))),
        }
    }

    pub fn new(client: OAuthClient, secrets: Vec<portcullis_store::ClientSecretRecord>) -> Self {
        let policy = client_policy(&client);
        let last_use = UseMark::new(client.last_used_at);
        let inline_jwks = client.jwks.as_deref().and_then(|j| {
            let parsed = serde_json::from_str(j)
                .map_err(|_| portcullis_jose::JwksError::NotAJwks)
                .and_then(|doc| ClientKeys::parse(&doc, MAX_CLIENT_KEYS));
            match parsed {
                Ok(keys) => Some(Arc::new(keys)),
                Err(e) => {
                    tracing::warn!(client = %client.id, error = %e, "stored client JWKS does not parse; its assertions are refused");
                    None
                }
            }
        });
        let tls_subject = client
            .tls_subject
            .as_ref()
            .map(|t| TlsSubject::from_stored(&t.kind, &t.value));
        Self {
            secrets: secrets
                .into_iter()
                .map(|s| SecretFacts {
                    id: s.id,
                    digest: s.secret_digest,
                    expires_at: s.expires_at,
                })
                .collect(),
            client,
            policy,
            inline_jwks,
            tls_subject,
            last_use,
        }
    }
}

/// A resource server with the digests of its introspection credentials.
#[derive(Debug)]
pub struct ResourceServerCredential {
    pub server: ResourceServer,
    pub secrets: Vec<SecretFacts>,
    /// When this process last wrote a use of one of its secrets.
    pub last_use: UseMark,
}

impl ResourceServerCredential {
    pub fn new(
        server: ResourceServer,
        secrets: Vec<portcullis_store::ResourceServerSecretRecord>,
    ) -> Self {
        let last_used = secrets.iter().filter_map(|s| s.last_used_at).max();
        Self {
            server,
            secrets: secrets
                .into_iter()
                .map(|s| SecretFacts {
                    id: s.id,
                    digest: s.secret_digest,
                    expires_at: s.expires_at,
                })
                .collect(),
            last_use: UseMark::new(last_used),
        }
    }
}

/// The stored client as core's grant rules see it.
fn client_policy(client: &OAuthClient) -> Option<ClientPolicy> {
    Some(ClientPolicy {
        client_id: client.id.clone(),
        tenant: client.tenant.clone(),
        grant_types: client
            .grant_types
            .iter()
            .map(|g| GrantType::parse(g))
            .collect::<Result<_, _>>()
            .ok()?,
        scopes: ScopeSet::from_strs(client.scopes.iter().map(String::as_str)).ok()?,
        audiences: client
            .audiences
            .iter()
            .map(|a| Audience::parse(a))
            .collect::<Result<_, _>>()
            .ok()?,
        access_token_ttl: Duration::from_secs(
            u64::try_from(client.access_token_ttl_secs).unwrap_or(0),
        ),
    })
}

/// The stored client as core's authorization-request rules see it
/// (`portcullis_core::authorize::AppClient`); `None` if a stored value no longer parses (the
/// authorization endpoint then shows its error page, as for an unknown client). `tenant_active`
/// is the tenant's status, which the client row does not hold.
pub fn app_client(client: &OAuthClient, tenant_active: bool) -> Option<AppClient> {
    Some(AppClient {
        client_id: ClientId::parse(&client.id)?,
        tenant: client.tenant.clone(),
        application_type: client.application_type,
        grant_types: client
            .grant_types
            .iter()
            .map(|g| GrantType::parse(g))
            .collect::<Result<_, _>>()
            .ok()?,
        redirect_uris: client
            .redirect_uris
            .iter()
            .map(|u| RedirectUri::parse(u, client.application_type))
            .collect::<Result<_, _>>()
            .ok()?,
        scopes: ScopeSet::from_strs(client.scopes.iter().map(String::as_str)).ok()?,
        first_party: client.first_party,
        active: tenant_active && client.status == portcullis_store::ClientStatus::Active,
        require_pushed_requests: client.require_pushed_requests,
    })
}

/// A resource server with its scopes parsed, as the grant decision needs it.
#[derive(Debug)]
pub struct ResourceFacts {
    pub server: ResourceServer,
    /// `None` if the stored scopes do not parse.
    pub policy: Option<ResourcePolicy>,
}

impl ResourceFacts {
    fn new(server: ResourceServer) -> Self {
        let policy = Audience::parse(&server.audience).ok().and_then(|audience| {
            ScopeSet::from_strs(server.scopes.iter().map(String::as_str))
                .ok()
                .map(|scopes| ResourcePolicy { audience, scopes })
        });
        Self { server, policy }
    }
}

/// Cache sizes and lifetime, from `[oauth]` configuration.
#[derive(Debug, Clone, Copy)]
pub struct DirectorySettings {
    pub capacity: usize,
    pub ttl: Duration,
}

/// Cached reads of clients, tenants and resource servers. See the module documentation.
#[derive(Debug)]
pub struct Directory {
    ttl: Duration,
    clients: FactCache<String, Arc<ClientFacts>>,
    /// Ids that matched no client (or no resource server) when last read.
    unknown_clients: FactCache<String, ()>,
    /// Resource servers by id, with their introspection credentials.
    introspectors: FactCache<String, Arc<ResourceServerCredential>>,
    tenants: FactCache<TenantId, TenantStatus>,
    /// Whether a tenant's OAuth policy requires pushed authorization requests, read on every
    /// `/authorize`; dropped with the tenant's status by [`Directory::tenant_changed`].
    pushed_request_policies: FactCache<TenantId, bool>,
    resources: FactCache<(TenantId, String), Arc<ResourceFacts>>,
    /// Every stored signing key, with the public keys parsed once per fill, for verifying this
    /// server's own tokens (introspection, revocation). A revoked key is refused by the
    /// revocation check whatever this holds, and a new key is published long before it signs,
    /// so the TTL is the only staleness.
    signing_keys: FactCache<(), Arc<PublishedKeys>>,
    /// Every browser origin an active client registered, read whole once per TTL, for CORS
    /// preflights (which name no client): no query per preflight, and a made-up origin costs a
    /// set lookup. Any client write through this process drops it.
    web_origins: FactCache<(), Arc<std::collections::HashSet<String>>>,
    /// Each tenant's CA sets read into one chain verifier (`tls_client_auth`), so a request
    /// neither reads nor parses them. A CA set created or removed through this process drops
    /// the tenant's entry; another node's change is seen after the TTL, like every fact here.
    trust_anchors: FactCache<TenantId, Arc<TrustAnchors>>,
}

impl Directory {
    pub fn new(settings: DirectorySettings) -> Self {
        let DirectorySettings { capacity, ttl } = settings;
        Self {
            ttl,
            clients: FactCache::new(capacity, ttl),
            unknown_clients: FactCache::new(capacity, ttl),
            introspectors: FactCache::new(capacity, ttl),
            tenants: FactCache::new(capacity, ttl),
            pushed_request_policies: FactCache::new(capacity, ttl),
            resources: FactCache::new(capacity, ttl),
            signing_keys: FactCache::new(1, ttl),
            web_origins: FactCache::new(1, ttl),
            trust_anchors: FactCache::new(capacity, ttl),
        }
    }

    /// How long a change made on another node may take to be seen here.
    pub fn staleness_bound(&self) -> Duration {
        self.ttl
    }

    /// A client and its secrets, or `None` if no such client exists.
    pub async fn client(
        &self,
        store: &dyn Store,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Arc<ClientFacts>>, StoreError> {
        self.credential(&self.clients, id, now, || async {
            let Some(client) = store.get_client(id).await? else {
                return Ok(None);
            };
            let secrets = store.list_client_secrets(&client.id).await?;
            Ok(Some(ClientFacts::new(client, secrets)))
        })
        .await
    }

    /// A resource server and its secrets by id, or `None` if there is no such resource server.
    /// Ids that match nothing are remembered with unknown client ids (the prefixes differ).
    pub async fn resource_server_credential(
        &self,
        store: &dyn Store,
        id: &str,
        now: Timestamp,
    ) -> Result<Option<Arc<ResourceServerCredential>>, StoreError> {
        self.credential(&self.introspectors, id, now, || async {
            let Some(server) = store.find_resource_server(id).await? else {
                return Ok(None);
            };
            let secrets = store.list_resource_server_secrets(&server.id).await?;
            Ok(Some(ResourceServerCredential::new(server, secrets)))
        })
        .await
    }

    /// Read-through for credentials looked up by id: a hit, a remembered miss, or `load`.
    /// A miss goes to `unknown_clients`, so unknown ids cannot evict real credentials. The
    /// epochs are taken before the read, so a write that lands during it is never cached over.
    async fn credential<V, F, Fut>(
        &self,
        cache: &FactCache<String, Arc<V>>,
        id: &str,
        now: Timestamp,
        load: F,
    ) -> Result<Option<Arc<V>>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Option<V>, StoreError>>,
    {
        if let Some(hit) = cache.get(id, now) {
            return Ok(Some(hit));
        }
        if self.unknown_clients.get(id, now).is_some() {
            return Ok(None);
        }
        let epoch = cache.epoch();
        let unknown_epoch = self.unknown_clients.epoch();
        let Some(facts) = load().await? else {
            self.unknown_clients
                .insert(id.to_owned(), (), unknown_epoch, now);
            return Ok(None);
        };
        let facts = Arc::new(facts);
        cache.insert(id.to_owned(), facts.clone(), epoch, now);
        Ok(Some(facts))
    }

    /// A tenant's status, or `None` if there is no such tenant (not cached: only a client's own
    /// tenant is looked up, and a client without one is a broken row).
    pub async fn tenant_status(
        &self,
        store: &dyn Store,
        tenant: &TenantId,
        now: Timestamp,
    ) -> Result<Option<TenantStatus>, StoreError> {
        if let Some(hit) = self.tenants.get(tenant, now) {
            return Ok(Some(hit));
        }
        let epoch = self.tenants.epoch();
        let Some(t) = store.get_tenant(tenant).await? else {
            return Ok(None);
        };
        self.tenants.insert(t.id, t.status, epoch, now);
        Ok(Some(t.status))
    }

    /// Whether the tenant requires every client to push its authorization requests (RFC 9126
    /// section 6; the tenant's OAuth policy), read once per authorization request. Cached like
    /// the tenant's status: a change through this process calls [`Directory::tenant_changed`]
    /// and is seen at once; one made on another node within the staleness bound.
    pub async fn tenant_requires_pushed_requests(
        &self,
        store: &dyn Store,
        tenant: &TenantId,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        if let Some(hit) = self.pushed_request_policies.get(tenant, now) {
            return Ok(hit);
        }
        let epoch = self.pushed_request_policies.epoch();
        let required = store
            .get_oauth_policy(tenant)
            .await?
            .is_some_and(|p| p.require_pushed_requests);
        self.pushed_request_policies
            .insert(tenant.clone(), required, epoch, now);
        Ok(required)
    }

    /// The tenant's resource server with this audience, or `None` (not cached: callers only ask
    /// for audiences a client is allowed, and a missing one is a broken configuration).
    pub async fn resource(
        &self,
        store: &dyn Store,
        tenant: &TenantId,
        audience: &str,
        now: Timestamp,
    ) -> Result<Option<Arc<ResourceFacts>>, StoreError> {
        let key = (tenant.clone(), audience.to_owned());
        if let Some(hit) = self.resources.get(&key, now) {
            return Ok(Some(hit));
        }
        let epoch = self.resources.epoch();
        let Some(rs) = store
            .find_resource_server_by_audience(tenant, audience)
            .await?
        else {
            return Ok(None);
        };
        let facts = Arc::new(ResourceFacts::new(rs));
        self.resources.insert(key, facts.clone(), epoch, now);
        Ok(Some(facts))
    }

    /// A client (created, or its status, settings or secrets changed) was written through this
    /// process.
    pub fn client_changed(&self, id: &str) {
        self.clients.invalidate(id);
        self.unknown_clients.invalidate(id);
        self.web_origins.invalidate(&());
    }

    /// Whether an active client registered `origin` (exactly), from the cached set of every
    /// registered origin.
    pub async fn web_origin_registered(
        &self,
        store: &dyn Store,
        origin: &str,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        if let Some(hit) = self.web_origins.get(&(), now) {
            return Ok(hit.contains(origin));
        }
        let epoch = self.web_origins.epoch();
        let all: Arc<std::collections::HashSet<String>> =
            Arc::new(store.registered_web_origins().await?.into_iter().collect());
        self.web_origins.insert((), all.clone(), epoch, now);
        Ok(all.contains(origin))
    }

    /// Every stored signing key, parsed for verification (cached for the staleness bound).
    pub async fn signing_keys(
        &self,
        store: &dyn Store,
        now: Timestamp,
    ) -> Result<Arc<PublishedKeys>, StoreError> {
        if let Some(hit) = self.signing_keys.get(&(), now) {
            return Ok(hit);
        }
        let epoch = self.signing_keys.epoch();
        let keys = Arc::new(PublishedKeys::new(
            store.list_signing_keys().await?.into(),
            now,
        ));
        self.signing_keys.insert((), keys.clone(), epoch, now);
        Ok(keys)
    }

    /// A signing key was created, activated, retired or revoked through this process.
    pub fn signing_keys_changed(&self) {
        self.signing_keys.invalidate(&());
    }

    /// The tenant's CA sets for `tls_client_auth`, read into one chain verifier (cached for the
    /// staleness bound; [`Self::ca_sets_changed`] drops it).
    pub async fn trust_anchors(
        &self,
        store: &dyn Store,
        tenant: &TenantId,
        now: Timestamp,
    ) -> Result<Arc<TrustAnchors>, StoreError> {
        if let Some(hit) = self.trust_anchors.get(tenant, now) {
            return Ok(hit);
        }
        let epoch = self.trust_anchors.epoch();
        let sets = store.list_ca_sets(tenant).await?;
        let anchors = Arc::new(TrustAnchors::from_pem_sets(
            sets.iter().map(|s| s.pem.as_str()),
        ));
        self.trust_anchors
            .insert(tenant.clone(), anchors.clone(), epoch, now);
        Ok(anchors)
    }

    /// A CA set of `tenant` was created or removed through this process.
    pub fn ca_sets_changed(&self, tenant: &TenantId) {
        self.trust_anchors.invalidate(tenant);
    }

    /// A tenant's status or OAuth policy was written through this process.
    pub fn tenant_changed(&self, tenant: &TenantId) {
        self.tenants.invalidate(tenant);
        self.pushed_request_policies.invalidate(tenant);
    }

    /// A resource server of `tenant` (`id`) was created, changed or removed, or its credentials
    /// rotated, through this process.
    pub fn resource_server_changed(&self, tenant: &TenantId, id: &str) {
        self.resources.invalidate_where(|(t, _)| t == tenant);
        self.introspectors.invalidate(id);
        self.unknown_clients.invalidate(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(last_used_at: Option<Timestamp>) -> OAuthClient {
        OAuthClient {
            id: "cl_a".into(),
            tenant: TenantId::parse("acme").expect("tenant"),
            name: "a".into(),
            environment: "live".into(),
            auth_method: "client_secret_basic".into(),
            grant_types: vec!["client_credentials".into()],
            scopes: vec!["payments:read".into()],
            audiences: vec!["payments-api".into()],
            access_token_ttl_secs: 600,
            can_introspect: false,
            jwks: None,
            jwks_uri: None,
            status: portcullis_store::ClientStatus::Active,
            created_at: Timestamp::from_secs(0),
            updated_at: Timestamp::from_secs(0),
            last_used_at,
            client_type: portcullis_store::ClientType::Confidential,
            application_type: portcullis_store::ApplicationType::Web,
            redirect_uris: vec![],
            post_logout_redirect_uris: vec![],
            allowed_web_origins: vec![],
            first_party: false,
            backchannel_logout_uri: None,
            backchannel_logout_session_required: false,
            require_pushed_requests: false,
            require_dpop: false,
            id_token_signed_response_alg: None,
            tls_subject: None,
            certificate_bound_tokens: false,
        }
    }

    #[test]
    fn a_stored_app_client_reads_as_core_sees_it() {
        let mut c = client(None);
        c.client_type = portcullis_store::ClientType::Public;
        c.application_type = portcullis_store::ApplicationType::Native;
        c.auth_method = "none".into();
        c.grant_types = vec!["authorization_code".into()];
        c.redirect_uris = vec!["http://127.0.0.1/cb".into()];
        c.scopes = vec!["openid".into()];
        let app = app_client(&c, true).expect("parses");
        assert!(app.active);
        assert_eq!(app.redirect_uris[0].as_str(), "http://127.0.0.1/cb");
        assert_eq!(app.grant_types, vec![GrantType::AuthorizationCode]);
        assert!(
            !app_client(&c, false).expect("parses").active,
            "tenant disabled"
        );
        c.status = portcullis_store::ClientStatus::Disabled;
        assert!(!app_client(&c, true).expect("parses").active);
        // A stored URI that the rules no longer accept makes the client unusable, not looser.
        c.redirect_uris = vec!["http://localhost/cb".into()];
        assert!(app_client(&c, true).is_none());
    }

    /// A cached client's use mark starts at its stored last use: no write for a use within the
    /// granularity of it, one for the first use of a client never used.
    #[tokio::test]
    async fn a_cached_clients_use_mark_starts_at_its_stored_last_use() {
        let g = Duration::from_secs(30);
        let ok = || std::future::ready(Ok(()));
        let facts = ClientFacts::new(client(Some(Timestamp::from_secs(100))), vec![]);
        assert!(
            !facts.last_use.record(Timestamp::from_secs(120), g, ok),
            "recent"
        );
        assert!(facts.last_use.record(Timestamp::from_secs(131), g, ok));
        let never = ClientFacts::new(client(None), vec![]);
        assert!(never.last_use.record(Timestamp::from_secs(0), g, ok));
    }

    /// The tenant's pushed-request policy is read once per TTL, not per authorization request,
    /// and `tenant_changed` (what the admin API calls after writing it) drops it at once.
    #[tokio::test]
    async fn a_tenants_pushed_request_policy_is_cached_until_the_tenant_changes() {
        use portcullis_store::{NewTenant, SqliteStore, TenantOAuthPolicyStore, TenantStore};
        let dir = tempfile::tempdir().expect("dir");
        let store = SqliteStore::open(&dir.path().join("db"))
            .await
            .expect("store");
        let acme = TenantId::parse("acme").expect("tenant");
        store
            .create_tenant(
                &NewTenant {
                    id: acme.clone(),
                    display_name: "Acme".into(),
                },
                Timestamp::from_secs(1),
            )
            .await
            .expect("tenant");
        let directory = Directory::new(DirectorySettings {
            capacity: 16,
            ttl: Duration::from_secs(1),
        });
        let t0 = Timestamp::from_secs(100);
        let ask = |now| directory.tenant_requires_pushed_requests(&store, &acme, now);
        assert!(!ask(t0).await.expect("read"), "no policy: not required");

        // Written behind the directory's back (as another node would): the cached answer holds
        // for the staleness bound, then the new one is read.
        store.put_oauth_policy(&acme, true, t0).await.expect("put");
        assert!(!ask(t0.saturating_add(Duration::from_millis(999)))
            .await
            .expect("read"));
        assert!(ask(t0.saturating_add(Duration::from_secs(1)))
            .await
            .expect("read"));

        // Written through this process: seen by the very next request.
        let t1 = Timestamp::from_secs(200);
        assert!(ask(t1).await.expect("read"));
        store.put_oauth_policy(&acme, false, t1).await.expect("put");
        assert!(ask(t1).await.expect("read"), "still cached");
        directory.tenant_changed(&acme);
        assert!(!ask(t1).await.expect("read"), "dropped by tenant_changed");
    }

    #[test]
    fn an_unparseable_stored_client_has_no_policy() {
        let mut c = client(None);
        c.grant_types = vec!["password".into()];
        assert!(ClientFacts::new(c, vec![]).policy.is_none());
        assert!(ClientFacts::new(client(None), vec![]).policy.is_some());
    }
}
