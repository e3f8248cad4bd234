//! Credential lifecycle for the admin API: a tenant's lifetime policy as core's types, the facts
//! the hygiene report is computed from, and the credentials that break the policy.
//!
//! Everything here reads storage and hands the facts to `portcullis_core::lifetime` and
//! `portcullis_core::hygiene`, which decide. This module must never decide compliance itself,
//! never load a secret or digest into a fact, and never change anything (disabling is the
//! caller's, audited, step).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_core::admin::AdminRole;
use portcullis_core::api_key::ExpiryPolicy;
use portcullis_core::audit::{Action, Outcome};
use portcullis_core::hygiene::{
    CredentialFacts, CredentialKind, HygieneFacts, KeyFacts, KeyKind, MatchFacts, MatchKind,
};
use portcullis_core::lifetime::{api_key_violation, ExistingMode, LifetimePolicy, Violation};
use portcullis_core::signing::KeyState;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_store::{
    AdmissionMatch, ApiKeyFilter, ApiKeyRecord, ArchivedFilter, AuditQuery, PageRequest, Store,
    StoreError, MAX_PAGE_LIMIT,
};

/// `admission_matches` kinds: what admitted a grant (a trust rule, a redirect URI).
pub const TRUST_RULE: &str = "trust_rule";
pub const REDIRECT_URI: &str = "redirect_uri";
/// `admission_matches` kinds of scope use (migration 0030), for "scopes broader than used": a
/// token issued to a client carried a scope (subject `client_id scope`, or the client id alone
/// for a token without scope) ...
pub const CLIENT_SCOPE: &str = "client_scope";
/// ... a verification of an API key required a scope (subject `key_id scope`) ...
pub const API_KEY_SCOPE: &str = "api_key_scope";
/// ... or named none (subject `key_id`): its caller (the gateway, the verify library, an
/// endpoint taking keys) checks scopes itself, so which of the key's scopes were used is unknown.
pub const API_KEY_UNSCOPED: &str = "api_key_unscoped";
/// `admission_matches` kind: an API key was used from a network (subject `key_id address`,
/// the network's first address, `portcullis_core::network::network_base`), for "used from more
/// than one network".
pub const API_KEY_NETWORK: &str = "api_key_network";

/// Records that `subject` (of `kind`) admitted a grant, for the hygiene report's "never
/// matched": written, off the request path, when this node has not recorded it within the last
/// hour (`marks`). A failed write is logged and never refuses the grant; the next match tries
/// again.
pub fn record_match(
    store: &Arc<dyn Store>,
    marks: &crate::match_marks::MatchMarks,
    tenant: &TenantId,
    kind: &'static str,
    subject: &str,
    now: Timestamp,
) {
    mark_of(marks, kind, tenant, subject).record(now, crate::match_marks::MARK_INTERVAL, || {
        let (store, tenant, subject) = (store.clone(), tenant.clone(), subject.to_owned());
        async move {
            store
                .record_admission_match(&tenant, kind, &subject, now)
                .await
        }
    });
}

/// The mark of one subject: kind, tenant and subject make its key.
fn mark_of(
    marks: &crate::match_marks::MatchMarks,
    kind: &str,
    tenant: &TenantId,
    subject: &str,
) -> crate::use_mark::UseMark {
    marks.mark(&format!("{kind} {} {subject}", tenant.as_str()))
}

/// Records the scope use of a token issued to `client_id` with `scope` (space-separated; `None`
/// or empty: no scope), like [`record_match`]: one mark per client and scope (never per scope
/// string, so a client asking for another subset on every request causes no more writes than
/// one asking for all of them).
pub fn record_client_scope_use(
    store: &Arc<dyn Store>,
    marks: &crate::match_marks::MatchMarks,
    tenant: &TenantId,
    client_id: &str,
    scope: Option<&str>,
    now: Timestamp,
) {
    let mut any = false;
    for s in scope
        .unwrap_or_default()
        .split(' ')
        .filter(|s| !s.is_empty())
    {
        any = true;
        record_match(
            store,
            marks,
            tenant,
            CLIENT_SCOPE,
            &format!("{client_id} {s}"),
            now,
        );
    }
    if !any {
        record_match(store, marks, tenant, CLIENT_SCOPE, client_id, now);
    }
}

/// [`record_match`] written by the caller, awaited, instead of on a task of its own: for a
/// background task that records many subjects in a row (the API key usage flush), so they reach
/// the store one at a time and never as a burst of concurrent writes. A failed write is logged
/// and leaves the mark unclaimed for the next attempt. `true` if a row was written.
pub async fn record_match_awaited(
    store: &dyn Store,
    marks: &crate::match_marks::MatchMarks,
    tenant: &TenantId,
    kind: &'static str,
    subject: &str,
    now: Timestamp,
) -> bool {
    let mark = mark_of(marks, kind, tenant, subject);
    let Some(previous) = mark.claim(now, crate::match_marks::MARK_INTERVAL) else {
        return false;
    };
    match store
        .record_admission_match(tenant, kind, subject, now)
        .await
    {
        Ok(()) => true,
        Err(e) => {
            mark.release(now, previous);
            tracing::warn!(error = %e, kind, "could not record a use");
            false
        }
    }
}

/// The scopes each credential's uses named, and the networks each API key was used from, inside
/// the report's window: read from the use rows of `admission_matches`.
#[derive(Debug, Default)]
struct CredentialUse {
    clients: HashMap<String, BTreeSet<String>>,
    api_keys: HashMap<String, BTreeSet<String>>,
    /// Keys with a use that named no scope inside the window.
    unscoped_api_keys: HashSet<String>,
    /// The networks each key was used from inside the window.
    api_key_networks: HashMap<String, Vec<IpAddr>>,
}

impl CredentialUse {
    fn read(matched: &[AdmissionMatch], since: Timestamp) -> Self {
        let mut out = Self::default();
        for m in matched.iter().filter(|m| m.last_matched_at >= since) {
            let (id, scope) = match m.subject.split_once(' ') {
                Some((id, scope)) => (id, Some(scope)),
                None => (m.subject.as_str(), None),
            };
            let used = match m.kind.as_str() {
                CLIENT_SCOPE => out.clients.entry(id.to_owned()).or_default(),
                API_KEY_SCOPE => out.api_keys.entry(id.to_owned()).or_default(),
                API_KEY_UNSCOPED => {
                    out.unscoped_api_keys.insert(id.to_owned());
                    continue;
                }
                API_KEY_NETWORK => {
                    if let Some(ip) = scope.and_then(|a| a.parse::<IpAddr>().ok()) {
                        out.api_key_networks
                            .entry(id.to_owned())
                            .or_default()
                            .push(ip);
                    }
                    continue;
                }
                _ => continue,
            };
            used.extend(scope.map(str::to_owned));
        }
        out
    }

    /// The scopes a client's tokens carried in the window; `None`: no token recorded in it (an
    /// idle client, or uses older than the recording), so no finding is made from it.
    fn client_scopes(&self, client_id: &str) -> Option<Vec<String>> {
        self.clients
            .get(client_id)
            .map(|s| s.iter().cloned().collect())
    }

    /// The networks a key was used from in the window; `None`: none recorded (an idle key, or
    /// uses older than the recording), so no finding is made from it.
    fn api_key_networks(&self, key_id: &str) -> Option<Vec<IpAddr>> {
        self.api_key_networks.get(key_id).cloned()
    }

    /// The scopes a key's verifications required in the window; `None` when one named no
    /// scope (unknown) or none was recorded.
    fn api_key_scopes(&self, key_id: &str) -> Option<Vec<String>> {
        if self.unscoped_api_keys.contains(key_id) {
            return None;
        }
        self.api_keys
            .get(key_id)
            .map(|s| s.iter().cloned().collect())
    }
}

/// Most audit events one report reads (newest first); past it the note says so.
const MAX_AUDIT_EVENTS: usize = 100_000;

/// The tenant's lifetime policy (the default, asking nothing, if none is stored).
pub async fn lifetime_policy(
    store: &dyn Store,
    tenant: &TenantId,
) -> Result<LifetimePolicy, StoreError> {
    Ok(match store.get_lifetime_policy(tenant).await? {
        None => LifetimePolicy::default(),
        Some(p) => LifetimePolicy {
            client_secret_max_age_secs: p
                .client_secret_max_age_secs
                .and_then(|s| u64::try_from(s).ok()),
            client_secret_expiry_required: p.client_secret_expiry_required,
            existing: ExistingMode::parse(&p.existing).unwrap_or_default(),
        },
    })
}

/// The tenant's API key expiry policy (the default if none is stored).
pub async fn api_key_policy(
    store: &dyn Store,
    tenant: &TenantId,
) -> Result<ExpiryPolicy, StoreError> {
    Ok(match store.get_api_key_policy(tenant).await? {
        None => ExpiryPolicy::default(),
        Some(p) => ExpiryPolicy {
            default_ttl_secs: p.default_ttl_secs.and_then(|s| u64::try_from(s).ok()),
            max_ttl_secs: p.max_ttl_secs.and_then(|s| u64::try_from(s).ok()),
            allow_never: p.allow_never,
        },
    })
}

/// Whether an API key can still be used at `now` (not revoked, expired or rotated out).
fn api_key_usable(k: &ApiKeyRecord, now: Timestamp) -> bool {
    k.revoked_at.is_none()
        && k.expires_at.is_none_or(|t| t > now)
        && k.rotation_overlap_ends_at.is_none_or(|t| t > now)
}

async fn all_api_keys(
    store: &dyn Store,
    tenant: &TenantId,
) -> Result<Vec<ApiKeyRecord>, StoreError> {
    let mut page = PageRequest::first(MAX_PAGE_LIMIT);
    let mut out = Vec::new();
    loop {
        let p = store
            .list_api_keys(tenant, &ApiKeyFilter::default(), &page)
            .await?;
        out.extend(p.items);
        match p.next {
            Some(next) => page.after = Some(next),
            None => return Ok(out),
        }
    }
}

/// A usable client secret with what it belongs to.
struct Secret {
    id: String,
    client_id: String,
    scopes: Vec<String>,
    redirect_uris: Vec<String>,
    client_created_at: Timestamp,
    created_at: Timestamp,
    expires_at: Option<Timestamp>,
    last_used_at: Option<Timestamp>,
}

/// Every unexpired secret of the tenant's active clients, and every active client's redirect
/// URIs (as secrets with no id, for the "never matched" facts).
async fn client_secrets(
    store: &dyn Store,
    tenant: &TenantId,
    now: Timestamp,
) -> Result<Vec<Secret>, StoreError> {
    let mut page = PageRequest::first(MAX_PAGE_LIMIT);
    let mut out = Vec::new();
    loop {
        let p = store
            .list_clients(tenant, &page, ArchivedFilter::Exclude)
            .await?;
        for c in p.items.into_iter().map(|a| a.item) {
            if c.status != portcullis_store::ClientStatus::Active {
                continue;
            }
            let secrets = store.list_client_secrets(&c.id).await?;
            let mut any = false;
            for s in secrets {
                if s.expires_at.is_some_and(|t| t <= now) {
                    continue;
                }
                any = true;
                out.push(Secret {
                    id: s.id,
                    client_id: c.id.clone(),
                    scopes: c.scopes.clone(),
                    redirect_uris: c.redirect_uris.clone(),
                    client_created_at: c.created_at,
                    created_at: s.created_at,
                    expires_at: s.expires_at,
                    last_used_at: s.last_used_at,
                });
            }
            if !any {
                out.push(Secret {
                    id: String::new(),
                    client_id: c.id.clone(),
                    scopes: Vec::new(),
                    redirect_uris: c.redirect_uris.clone(),
                    client_created_at: c.created_at,
                    created_at: c.created_at,
                    expires_at: None,
                    last_used_at: None,
                });
            }
        }
        match p.next {
            Some(next) => page.after = Some(next),
            None => return Ok(out),
        }
    }
}

/// Source addresses of successful token issuances per client id inside the window, from the
/// audit log, and whether the read stopped at [`MAX_AUDIT_EVENTS`].
async fn client_addresses(
    store: &dyn Store,
    tenant: &TenantId,
    since: Timestamp,
) -> Result<(HashMap<String, Vec<IpAddr>>, bool), StoreError> {
    let mut query = AuditQuery {
        tenant: tenant.clone(),
        since: Some(since),
        until: None,
        action: Some(Action::OAuthTokenIssue.as_str().to_owned()),
        page: PageRequest::first(MAX_PAGE_LIMIT),
    };
    let mut seen = 0usize;
    let mut out: HashMap<String, Vec<IpAddr>> = Default::default();
    loop {
        let page = store.query_audit_events(&query).await?;
        for e in &page.items {
            seen += 1;
            if e.outcome != Outcome::Success {
                continue;
            }
            if let (Some(id), Some(ip)) = (&e.credential_id, &e.client_ip) {
                if let Ok(ip) = ip.parse() {
                    out.entry(id.clone()).or_default().push(ip);
                }
            }
        }
        if seen >= MAX_AUDIT_EVENTS {
            return Ok((out, true));
        }
        match page.next {
            Some(next) => query.page.after = Some(next),
            None => return Ok((out, false)),
        }
    }
}

/// The facts of `tenant`'s hygiene report at `now`, with `unused` as the window. Signing keys
/// and KEKs are installation-wide: they are included only with `include_keys` (a caller who
/// may read signing keys).
pub async fn hygiene_facts(
    store: &dyn Store,
    tenant: &TenantId,
    unused: Duration,
    now: Timestamp,
    include_keys: bool,
) -> Result<HygieneFacts, StoreError> {
    let mut facts = HygieneFacts {
        api_key_policy: api_key_policy(store, tenant).await?,
        lifetime_policy: lifetime_policy(store, tenant).await?,
        ..HygieneFacts::default()
    };
    facts.notes.push(
        "many_networks for API keys: the networks of the verifications this server made \
         (the verify endpoint, the embedded gateway); a verify library or standalone gateway \
         asks again only when its cache entry lapses, so a key's networks may be undercounted, \
         never invented"
            .into(),
    );
    facts.notes.push(
        "broad_scopes for API keys: a key verified without naming scopes (by the gateway, the \
         verify library or an endpoint taking keys, which check scopes themselves) has unknown \
         scope use, so no broad-scope finding is made for it"
            .into(),
    );
    facts.notes.push(
        "more than one environment: a credential is bound to its environment (the verifier \
         refuses it elsewhere), so it cannot be used from two; no such finding exists"
            .into(),
    );
    let since = now.saturating_sub(unused);
    let matched = store.admission_matches(tenant).await?;
    let uses = CredentialUse::read(&matched, since);
    for k in all_api_keys(store, tenant).await? {
        if !api_key_usable(&k, now) {
            continue;
        }
        facts.credentials.push(CredentialFacts {
            kind: CredentialKind::ApiKey,
            label: k.name.clone(),
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            used_from: uses.api_key_networks(&k.id),
            granted_scopes: Some(
                k.scopes
                    .split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
            used_scopes: uses.api_key_scopes(&k.id),
            id: k.id,
        });
    }
    let (addresses, capped) = client_addresses(store, tenant, since).await?;
    if capped {
        facts.notes.push(format!(
            "many_networks for client secrets read the newest {MAX_AUDIT_EVENTS} token issuances only"
        ));
    }
    // Looked up once per redirect URI and trust rule: a map, not a scan of every row (the use
    // rows of credentials share the table).
    let matched_at: HashMap<(&str, &str), Timestamp> = matched
        .iter()
        .filter(|m| m.kind == REDIRECT_URI || m.kind == TRUST_RULE)
        .map(|m| ((m.kind.as_str(), m.subject.as_str()), m.last_matched_at))
        .collect();
    let last_match = |kind: &'static str, subject: &str| matched_at.get(&(kind, subject)).copied();
    let mut redirect_seen = HashSet::new();
    for s in client_secrets(store, tenant, now).await? {
        if redirect_seen.insert(s.client_id.clone()) {
            for uri in &s.redirect_uris {
                let subject = format!("{} {uri}", s.client_id);
                facts.matches.push(MatchFacts {
                    kind: MatchKind::RedirectUri,
                    last_matched_at: last_match(REDIRECT_URI, &subject),
                    id: subject,
                    created_at: s.client_created_at,
                });
            }
        }
        if s.id.is_empty() {
            continue;
        }
        facts.credentials.push(CredentialFacts {
            kind: CredentialKind::ClientSecret,
            label: s.client_id.clone(),
            created_at: s.created_at,
            expires_at: s.expires_at,
            last_used_at: s.last_used_at,
            used_from: Some(addresses.get(&s.client_id).cloned().unwrap_or_default()),
            used_scopes: uses.client_scopes(&s.client_id),
            granted_scopes: Some(s.scopes),
            id: s.id,
        });
    }
    let mut page = PageRequest::first(MAX_PAGE_LIMIT);
    loop {
        let p = store.list_admin_credentials(tenant, &page).await?;
        for c in p.items {
            if c.revoked_at.is_some() {
                continue;
            }
            facts.credentials.push(CredentialFacts {
                kind: if c.role == AdminRole::Service {
                    CredentialKind::ServiceCredential
                } else {
                    CredentialKind::AdminCredential
                },
                label: format!("{} ({})", c.name, c.role.as_str()),
                created_at: c.created_at,
                expires_at: None,
                last_used_at: c.last_used_at,
                used_from: None,
                granted_scopes: None,
                used_scopes: None,
                id: c.id,
            });
        }
        match p.next {
            Some(next) => page.after = Some(next),
            None => break,
        }
    }
    for r in store.list_trust_rules(tenant, None).await? {
        facts.matches.push(MatchFacts {
            kind: MatchKind::TrustRule,
            last_matched_at: last_match(TRUST_RULE, &r.id),
            id: r.id,
            created_at: r.created_at,
        });
    }
    if include_keys {
        let keys = store.list_signing_keys().await?;
        let mut keks: std::collections::BTreeMap<String, Timestamp> = Default::default();
        for k in &keys {
            let oldest = keks.entry(k.kek_id.clone()).or_insert(k.created_at);
            *oldest = (*oldest).min(k.created_at);
            if k.state == KeyState::Revoked || k.publish_until.is_some_and(|t| t <= now) {
                continue;
            }
            facts.keys.push(KeyFacts {
                kind: KeyKind::SigningKey,
                id: k.kid.clone(),
                created_at: Some(k.created_at),
            });
        }
        for (id, oldest) in keks {
            facts.keys.push(KeyFacts {
                kind: KeyKind::Kek,
                id,
                created_at: Some(oldest),
            });
        }
        facts.notes.push(
            "a KEK's age is that of the oldest signing key sealed under it (the KEK comes from \
             a file or the environment and has no recorded creation time)"
                .into(),
        );
    }
    Ok(facts)
}

/// A credential that breaks the tenant's lifetime policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonCompliant {
    pub kind: CredentialKind,
    pub id: String,
    /// The key's name, or the secret's client id.
    pub label: String,
    pub violation: Violation,
}

/// Every usable API key and client secret of `tenant` that breaks its policies at `now`.
pub async fn non_compliant(
    store: &dyn Store,
    tenant: &TenantId,
    now: Timestamp,
) -> Result<Vec<NonCompliant>, StoreError> {
    let keys_policy = api_key_policy(store, tenant).await?;
    let secrets_policy = lifetime_policy(store, tenant).await?;
    let mut out = Vec::new();
    for k in all_api_keys(store, tenant).await? {
        if !api_key_usable(&k, now) {
            continue;
        }
        if let Some(v) = api_key_violation(&keys_policy, k.created_at, k.expires_at, now) {
            out.push(NonCompliant {
                kind: CredentialKind::ApiKey,
                id: k.id,
                label: k.name,
                violation: v,
            });
        }
    }
    for s in client_secrets(store, tenant, now).await? {
        if s.id.is_empty() {
            continue;
        }
        if let Some(v) = secrets_policy.client_secret_violation(s.created_at, s.expires_at, now) {
            out.push(NonCompliant {
                kind: CredentialKind::ClientSecret,
                id: s.id,
                label: s.client_id,
                violation: v,
            });
        }
    }
    Ok(out)
}
